"""`ghost payment`: simulate, send and verify x402 payments, and rate the paid call."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Optional

import typer

from ghostpay.cli import params
from ghostpay.cli.agent import AGENT_OPTION
from ghostpay.cli.context import CliError, describe, state
from ghostpay.cli.output import emit, explorer_url, format_amount, key_value_table, mint_symbol, print_tx, tx_data

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient

app = typer.Typer(help="Pay agents per call (x402), verify receipts, give feedback.", no_args_is_help=True,
                  rich_markup_mode=None)

AMOUNT_OPTION = typer.Option(None, "--amount", help="Whole tokens (default: the agent's price in that token).")
TOKEN_OPTION = typer.Option(None, "--token", "-t",
                            help="Mint or symbol to pay in, one the agent accepts (default: its first token).")
REFERENCE_OPTION = typer.Option(..., "--reference", "-r", help="The payment reference (64 hex digits).")


@app.command()
def simulate(ctx: typer.Context, agent: str = AGENT_OPTION, amount: Optional[str] = AMOUNT_OPTION,
             token: Optional[str] = TOKEN_OPTION) -> None:
    """Simulate paying one call (TransferChecked + record_x402_payment): the amount and token it would pay,
    compute units, fee, and what would fail. Nothing is sent or spent; exit status 1 if it would fail.

    Example: ghost payment simulate --agent translator --amount 0.02
    """
    st = state(ctx)
    ref = params.agent_ref(agent)
    value = params.amount(amount, "--amount", token=token) if amount is not None else None
    mint = params.token(st, token, "--token") if token else None
    sim = st.run(lambda gp: gp.simulate_payment(ref, amount=value, mint=mint), status="Simulating…")
    error = sim.error
    failure = None
    if error is not None:
        name, code = getattr(error, "name", None), getattr(error, "code", None)
        described = describe(error, st.rpc_url)
        failure = {"name": name if isinstance(name, str) else type(error).__name__, "code": code
                   if isinstance(code, int) else None,
                   "message": described[0] if described else str(error)}
    symbol = mint_symbol(st, sim.mint)
    data = {"agent": agent, "would_succeed": error is None, "amount": sim.amount, "amount_atomic": sim.amount_atomic,
            "token": str(sim.mint), "token_symbol": symbol, "compute_units": sim.compute_units,
            "fee_lamports": sim.fee, "error": failure, "logs": sim.logs}
    rows = [("agent", agent), ("amount", format_amount(sim.amount, symbol) if sim.amount is not None else "?"),
            ("token", str(sim.mint)),
            ("result", "[green]would succeed[/green]" if error is None
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

    The payment is journalled in the data folder before it is sent: if the connection fails and its
    outcome is unknown, running the same command again checks it first and retries with the same
    reference, so it can never pay twice.

    Example: ghost payment send -a <AGENT> --token EURC   (pays the agent's EURC price)
    """
    from ghostpay.cli import journal

    st = state(ctx)
    ref = params.agent_ref(agent)
    value = params.amount(amount, "--amount", token=token) if amount is not None else None
    mint = params.token(st, token, "--token") if token else None
    given = params.reference(reference) if reference else None
    notes: list[str] = []

    async def work(gp: "GhostPayClient") -> Any:
        address = gp.agent_address(ref)
        command = {"chain": await gp.genesis_hash(), "wallet": str(gp.wallet), "agent": str(address),
                   "amount": None if value is None else str(value), "token": None if mint is None else str(mint),
                   **({"reference": given.hex()} if given else {})}
        with journal.running("payment", command):
            return await pay(gp, address, command)

    async def pay(gp: "GhostPayClient", address: Any, command: dict[str, Any]) -> Any:
        from ghostpay.exceptions import GhostPayError, OutcomeUnknown, PaymentAlreadyRecorded
        from ghostpay.pda import new_reference

        entry = journal.pending("payment", command)
        if entry is not None:  # an earlier run's outcome is unknown: did it land?
            raw = bytes.fromhex(entry.reference or "")
            receipt = await gp.get_receipt(address, raw)
            if receipt is not None:
                entry.close()
                notes.append(f"already paid by an earlier run (reference {raw.hex()}); not paying again")
                return receipt, await landed(gp, entry.signatures)
            notes.append(f"retrying the earlier unconfirmed payment with its reference {raw.hex()}")
        else:
            raw = given or new_reference(address, gp.program_id)  # a bump-255 receipt: the cheapest to record
            entry = journal.open_entry("payment", command, reference=raw.hex())
        st.journal = entry
        try:
            paid = await gp.pay_agent(ref, amount=value, mint=mint, reference=raw)  # an unknown id is named as typed
        except PaymentAlreadyRecorded:
            receipt = await gp.get_receipt(address, raw)
            if receipt is None or receipt.payer != gp.wallet or not entry.signatures[:-1]:
                entry.close()
                raise
            entry.close()  # our earlier transaction landed after all
            notes.append(f"already paid by an earlier run (reference {raw.hex()}); not paying again")
            return receipt, await landed(gp, entry.signatures)
        except OutcomeUnknown:
            raise  # the entry stays open for the retry
        except GhostPayError:
            entry.close()  # refused or failed on chain: nothing was paid
            raise
        entry.close()
        return paid, str(paid.signature)

    paid, signature = st.run(work, status="Paying…")
    symbol = mint_symbol(st, paid.mint)
    already = not hasattr(paid, "receipt")  # a Receipt found, not a PaymentResult
    receipt = str(paid.address) if already else str(paid.receipt)
    data = tx_data(st, "already paid" if already else "paid", signature, None if already else paid.compute_units,
                   agent=agent, amount=paid.amount, amount_atomic=paid.amount_atomic, token=str(paid.mint),
                   token_symbol=symbol, reference=paid.reference.hex(), receipt=receipt, notes=notes)
    for note in notes if not st.json else []:
        print(f"note: {note}", file=sys.stderr)
    print_tx(st, data, [("agent", agent), ("amount", format_amount(paid.amount, symbol)),
                        ("reference", paid.reference.hex()), ("receipt", receipt)])


async def landed(gp: "GhostPayClient", signatures: list[str]) -> str | None:
    """Which of a journal entry's signatures landed (None if the node no longer knows)."""
    for signature in signatures:
        found = await gp.get_signature_status(signature)
        if found is not None and found.err is None:
            return signature
    return None


@app.command()
def verify(ctx: typer.Context, agent: str = AGENT_OPTION, reference: str = REFERENCE_OPTION) -> None:
    """Is there a receipt for this reference? Exit status 0 if paid, 1 if not.

    Example: ghost payment verify --agent AGENT --reference 5e5e…5e (64 hex digits)
    """
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
    """Rate a paid call, once, as its payer: success, response time, stars. Updates the agent's score.

    Example: ghost payment feedback --agent AGENT --reference REFERENCE --rating 5 --response-time 800
    """
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
