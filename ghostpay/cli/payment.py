"""`ghost payment`: simulate, send and verify x402 payments, and rate the paid call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import typer

from ghostpay.cli import params
from ghostpay.cli.agent import AGENT_OPTION
from ghostpay.cli.context import CliError, describe, state
from ghostpay.cli.output import emit, explorer_url, format_amount, key_value_table, mint_symbol, print_tx, tx_data

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient

app = typer.Typer(help="Pay agents per call (x402), verify receipts, give feedback.", no_args_is_help=True)

AMOUNT_OPTION = typer.Option(None, "--amount", help="Whole tokens (default: the agent's price in that token).")
TOKEN_OPTION = typer.Option(None, "--token", "-t",
                            help="Mint or symbol to pay in, one the agent accepts (default: its first token).")
REFERENCE_OPTION = typer.Option(..., "--reference", "-r", help="The payment reference (64 hex digits).")


@app.command()
def simulate(ctx: typer.Context, agent: str = AGENT_OPTION, amount: Optional[str] = AMOUNT_OPTION,
             token: Optional[str] = TOKEN_OPTION) -> None:
    """Simulate paying one call (TransferChecked + record_x402_payment): compute units, fee, and what would
    fail. Nothing is sent or spent; exit status 1 if it would fail."""
    st = state(ctx)
    ref = params.agent_ref(agent)
    value = params.amount(amount) if amount is not None else None
    mint = params.token(st, token) if token else None
    sim = st.run(lambda gp: gp.simulate_payment(ref, amount=value, mint=mint), status="Simulating…")
    error = sim.error
    failure = None
    if error is not None:
        name, code = getattr(error, "name", None), getattr(error, "code", None)
        described = describe(error, st.rpc_url)
        failure = {"name": name if isinstance(name, str) else type(error).__name__, "code": code
                   if isinstance(code, int) else None,
                   "message": described[0] if described else str(error)}
    data = {"agent": agent, "would_succeed": error is None, "compute_units": sim.compute_units,
            "fee_lamports": sim.fee, "error": failure, "logs": sim.logs}
    rows = [("agent", agent), ("result", "[green]would succeed[/green]" if error is None
                                else f"[red]would fail[/red]: {failure['message'] if failure else ''}"),
            ("compute units", f"{sim.compute_units:,}" if sim.compute_units is not None else "?"),
            ("fee", f"{sim.fee:,} lamports ({sim.fee / 1e9:.9f} SOL)" if sim.fee is not None else "?")]
    emit(st, data, lambda out: out.print(key_value_table(rows, title="Payment simulation (nothing sent)")))
    if error is not None:
        raise typer.Exit(1)


@app.command()
def send(ctx: typer.Context, agent: str = AGENT_OPTION, amount: Optional[str] = AMOUNT_OPTION,
         token: Optional[str] = TOKEN_OPTION,
         reference: Optional[str] = typer.Option(None, "--reference", "-r",
                                                 help="64 hex digits (default: random); a retry with the same "
                                                      "reference cannot pay twice.")) -> None:
    """Pay one call and record it on chain (TransferChecked + record_x402_payment in one transaction).

    Example: ghost payment send -a <AGENT> --token EURC   (pays the agent's EURC price)
    """
    st = state(ctx)
    ref = params.agent_ref(agent)
    value = params.amount(amount) if amount is not None else None
    mint = params.token(st, token) if token else None
    reference_bytes = params.reference(reference) if reference else None
    paid = st.run(lambda gp: gp.pay_agent(ref, amount=value, mint=mint, reference=reference_bytes),
                  status="Paying…")
    symbol = mint_symbol(st, paid.mint)
    data = tx_data(st, "paid", paid.signature, paid.compute_units, agent=agent, amount=paid.amount,
                   amount_atomic=paid.amount_atomic, token=str(paid.mint), token_symbol=symbol,
                   reference=paid.reference.hex(), receipt=str(paid.receipt))
    print_tx(st, data, [("agent", agent), ("amount", format_amount(paid.amount, symbol)),
                        ("reference", paid.reference.hex()), ("receipt", str(paid.receipt))])


@app.command()
def verify(ctx: typer.Context, agent: str = AGENT_OPTION, reference: str = REFERENCE_OPTION) -> None:
    """Is there a receipt for this reference? Exit status 0 if paid, 1 if not."""
    st = state(ctx)
    ref = params.agent_ref(agent)
    raw = params.reference(reference)
    receipt = st.run(lambda gp: gp.get_receipt(ref, raw), signer=isinstance(ref, str))
    if receipt is None:
        emit(st, {"agent": agent, "reference": raw.hex(), "paid": False},
             lambda out: out.print(f"[red]✘[/red] no payment with reference {raw.hex()} to {agent}"))
        raise typer.Exit(1)
    symbol = mint_symbol(st, receipt.mint)
    data = {"agent": str(receipt.agent), "reference": raw.hex(), "paid": True, "receipt": str(receipt.address),
            "payer": str(receipt.payer), "rent_payer": str(receipt.rent_payer), "registration": receipt.registration,
            "token": str(receipt.mint), "token_symbol": symbol,
            "amount": receipt.amount, "amount_atomic": receipt.amount_atomic, "paid_at": receipt.paid_at,
            "feedback_submitted": receipt.feedback_submitted,
            "explorer": explorer_url("address", receipt.address, st.rpc_url)}
    from ghostpay.cli.agent import when

    rows = [("agent", str(receipt.agent)), ("payer", str(receipt.payer)),
            ("receipt rent paid by", "the payer" if receipt.rent_payer == receipt.payer else str(receipt.rent_payer)),
            ("amount", format_amount(receipt.amount, symbol)), ("paid at", when(receipt.paid_at)),
            ("receipt", str(receipt.address)), ("explorer", data["explorer"]),
            ("feedback", "given" if receipt.feedback_submitted else "not yet")]
    emit(st, data, lambda out: out.print(key_value_table(rows, title="[green]✔[/green] paid")))


@app.command()
def feedback(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    reference: str = REFERENCE_OPTION,
    rating: int = typer.Option(0, "--rating", min=0, max=5, help="1-5 stars (0: no rating)."),
    response_time_ms: int = typer.Option(0, "--response-time", "--response-time-ms", min=0, max=3_600_000,
                                         help="How long the call took, in ms (0: not measured)."),
    failed: bool = typer.Option(False, "--failed", help="The paid call failed."),
) -> None:
    """Rate a paid call, once, as its payer: success, response time, stars. Updates the agent's score."""
    st = state(ctx)
    ref = params.agent_ref(agent)
    raw = params.reference(reference)

    async def work(gp: "GhostPayClient") -> Any:
        receipt = await gp.get_receipt(ref, raw)
        if receipt is None:
            raise CliError(f"no payment with reference {raw.hex()} to {agent}; check with 'ghost payment verify'")
        result = await gp.submit_feedback(ref, raw, success=not failed, response_time_ms=response_time_ms,
                                          rating=rating)
        return result, await gp.get_agent(ref)

    result, info = st.run(work, status="Submitting feedback…")
    data = tx_data(st, "feedback submitted", result.signature, result.compute_units, agent=str(info.address),
                   reference=raw.hex(), success=not failed, rating=rating, response_time_ms=response_time_ms,
                   reputation_score=info.reputation_score)
    print_tx(st, data, [("agent", str(info.address)), ("rating", "★" * rating or "none"),
                        ("success", str(not failed)), ("new score", f"{info.reputation_score / 100:.2f}%")])
