"""`ghost payment`: simulate, send and verify x402 payments, and rate the paid call."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import typer

from ghostpay.cli import params
from ghostpay.cli.agent import AGENT_OPTION
from ghostpay.cli.context import CliError, describe, state
from ghostpay.cli.output import emit, explorer_url, format_amount, key_value_table, mint_symbol, print_tx, tx_data

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient

app = typer.Typer(
    help="Pay agents per call (x402), verify payments, give feedback.", no_args_is_help=True, rich_markup_mode=None
)

AMOUNT_OPTION = typer.Option(None, "--amount", help="Whole tokens (default: the agent's price in that token).")
TOKEN_OPTION = typer.Option(
    None, "--token", "-t", help="Mint or symbol to pay in, one the agent accepts (default: its first token)."
)
REFERENCE_OPTION = typer.Option(..., "--reference", "-r", help="The payment reference (64 hex digits).")


@app.command()
def simulate(
    ctx: typer.Context, agent: str = AGENT_OPTION, amount: str | None = AMOUNT_OPTION, token: str | None = TOKEN_OPTION
) -> None:
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
        failure = {
            "name": name if isinstance(name, str) else type(error).__name__,
            "code": code if isinstance(code, int) else None,
            "message": described[0] if described else str(error),
        }
    symbol = mint_symbol(st, sim.mint)
    data = {
        "agent": agent,
        "would_succeed": error is None,
        "amount": sim.amount,
        "amount_atomic": sim.amount_atomic,
        "token": str(sim.mint),
        "token_symbol": symbol,
        "compute_units": sim.compute_units,
        "fee_lamports": sim.fee,
        "error": failure,
        "logs": sim.logs,
    }
    rows = [
        ("agent", agent),
        ("amount", format_amount(sim.amount, symbol) if sim.amount is not None else "?"),
        ("token", str(sim.mint)),
        (
            "result",
            "[green]would succeed[/green]"
            if error is None
            else f"[red]would fail[/red]: {failure['message'] if failure else ''}",
        ),
        ("compute units", f"{sim.compute_units:,}" if sim.compute_units is not None else "?"),
        ("fee", f"{sim.fee:,} lamports ({sim.fee / 1e9:.9f} SOL)" if sim.fee is not None else "?"),
    ]
    emit(st, data, lambda out: out.print(key_value_table(rows, title="Payment simulation (nothing sent)")))
    if error is not None:
        raise typer.Exit(1)


@app.command()
def send(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    amount: str | None = AMOUNT_OPTION,
    token: str | None = TOKEN_OPTION,
    reference: str | None = typer.Option(
        None,
        "--reference",
        "-r",
        help="64 hex digits naming the payment (default: random); 'payment verify' and 'payment feedback' take it.",
    ),
) -> None:
    """Pay one call and record it on chain (TransferChecked + record_x402_payment in one transaction).

    The pair's first payment opens your PayerStats for the agent (about 0.0018 SOL of rent, yours back
    when you close it); every later one costs the transaction fee alone. The payment is journalled in
    the data folder before it is sent, its signed bytes included: if the connection fails and its
    outcome is unknown, running the same command again finds out whether it landed, sends the same
    bytes again while they can still land (they land at most once), and pays anew only once they never
    can, so it can never pay twice.

    Example: ghost payment send -a <AGENT> --token EURC   (pays the agent's EURC price)
    """
    from ghostpay.cli import journal

    st = state(ctx)
    ref = params.agent_ref(agent)
    value = params.amount(amount, "--amount", token=token) if amount is not None else None
    mint = params.token(st, token, "--token") if token else None
    given = params.reference(reference) if reference else None
    notes: list[str] = []

    async def work(gp: GhostPayClient) -> Any:
        address = gp.agent_address(ref)
        command = {
            "chain": await gp.genesis_hash(),
            "wallet": str(gp.wallet),
            "agent": str(address),
            "amount": None if value is None else str(value),
            "token": None if mint is None else str(mint),
            **({"reference": given.hex()} if given else {}),
        }
        with journal.running("payment", command):
            return await pay(gp, address, command)

    async def pay(gp: GhostPayClient, address: Any, command: dict[str, Any]) -> Any:
        from ghostpay.exceptions import GhostPayError, OutcomeUnknown
        from ghostpay.pda import new_reference

        entry = journal.pending("payment", command)
        if entry is not None:  # an earlier run's outcome is unknown: did it land, can it still?
            st.journal = entry
            raw = bytes.fromhex(entry.reference or "")
            earlier = await gp.landed_transaction(entry.signatures)
            if earlier is not None:
                entry.close()
                notes.append(f"already paid by an earlier run (reference {raw.hex()}); not paying again")
                return await gp.payment_result(earlier), True
            resumed = await gp.resume_transaction(
                entry.signatures, entry.signed_transaction(), entry.last_valid_block_height
            )
            if resumed is not None:
                entry.close()
                notes.append(f"the earlier run's transaction (reference {raw.hex()}) was sent again and landed")
                return await gp.payment_result(resumed), False
            notes.append(
                f"the earlier run's transaction never landed (its blockhash expired): paying now, with its "
                f"reference {raw.hex()}"
            )
        else:
            raw = given or new_reference()
            entry = journal.open_entry("payment", command, reference=raw.hex())
        st.journal = entry
        try:
            paid = await gp.pay_agent(ref, amount=value, mint=mint, reference=raw)  # an unknown id is named as typed
        except OutcomeUnknown:
            raise  # the entry stays open for the retry
        except GhostPayError:
            entry.close()  # refused or failed on chain: nothing was paid
            raise
        entry.close()
        return paid, False

    paid, already = st.run(work, status="Paying…")
    symbol = mint_symbol(st, paid.mint)
    data = tx_data(
        st,
        "already paid" if already else "paid",
        paid.signature,
        None if already else paid.compute_units,
        agent=agent,
        amount=paid.amount,
        amount_atomic=paid.amount_atomic,
        token=str(paid.mint),
        token_symbol=symbol,
        reference=paid.reference.hex(),
        payer_stats=str(paid.payer_stats),
        notes=notes,
    )
    for note in notes if not st.json else []:
        print(f"note: {note}", file=sys.stderr)
    print_tx(
        st,
        data,
        [("agent", agent), ("amount", format_amount(paid.amount, symbol)), ("reference", paid.reference.hex())],
    )


@app.command()
def verify(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    reference: str = REFERENCE_OPTION,
    search: int = typer.Option(
        200,
        "--search",
        min=1,
        max=10_000,
        help="Without --db: how many of the agent's newest transactions are searched "
        "(a payment older than those is not found).",
    ),
) -> None:
    """Was this reference paid to the agent? Exit status 0 if paid, 1 if not.

    No account is made per payment: the payment's transaction and its event are the receipt. With --db
    the indexer database answers (up to its lag); without, the agent's newest transactions on the chain
    are searched (--search), then a legacy receipt account (made before PayerStats) is looked up.

    Example: ghost payment verify --agent AGENT --reference 5e5e…5e (64 hex digits)
    """
    st = state(ctx)
    ref = params.agent_ref(agent)
    raw = params.reference(reference)
    if st.settings.db:
        from ghostpay.cli.agent import address_of
        from ghostpay.cli.indexed import payment_history_indexed

        address = address_of(st, ref)
        with st.spinner("Reading the index…"):
            rows = payment_history_indexed(st, address, 1, "date", reference=raw.hex())
        found = _indexed_payment(address, rows[0]) if rows else None
    else:
        receipt = st.run(
            lambda gp: gp.get_receipt(ref, raw, search=search),
            signer=isinstance(ref, str),
            status="Searching the agent's transactions…",
        )
        found = None if receipt is None else _receipt_payment(st, receipt)
    if found is None:
        emit(
            st,
            {"agent": agent, "reference": raw.hex(), "paid": False},
            lambda out: out.print(f"[red]✘[/red] no payment with reference {raw.hex()} to {agent}"),
        )
        raise typer.Exit(1)
    from ghostpay.cli.agent import when

    data = {
        "reference": raw.hex(),
        "paid": True,
        **found,
        "explorer": explorer_url("tx", found["signature"], st.rpc_url)
        if found["signature"]
        else explorer_url("address", found["receipt"], st.rpc_url),
    }
    rated = {True: "given", False: "not yet", None: "unknown (see 'ghost payment feedback')"}[found["rated"]]
    fields: list[tuple[str, object]] = [
        ("agent", found["agent"]),
        ("payer", found["payer"]),
        ("amount", format_amount(Decimal(found["amount"]), found["token_symbol"])),
        ("paid at", when(found["paid_at"])),
        ("found in", found["source"]),
        ("transaction" if found["signature"] else "legacy receipt", found["signature"] or found["receipt"]),
        ("explorer", data["explorer"]),
        ("feedback", rated),
    ]
    emit(st, data, lambda out: out.print(key_value_table(fields, title="[green]✔[/green] paid")))


def _indexed_payment(agent: str, row: dict[str, Any]) -> dict[str, Any]:
    """A payment row of the index as `verify` shows it."""
    return {
        "agent": agent,
        "payer": row["payer"],
        "token": row["mint"],
        "token_symbol": row["token_symbol"],
        "amount": row["amount"],
        "amount_atomic": row["amount_atomic"],
        "paid_at": row["timestamp"],
        "signature": row["signature"],
        "slot": row["slot"],
        "source": "indexer",
        "receipt": None,
        "rated": row["outcome"] != "recorded",
    }


def _receipt_payment(st: Any, receipt: Any) -> dict[str, Any]:
    """A Receipt found by the SDK (on the chain, or a legacy receipt account) as `verify` shows it."""
    return {
        "agent": str(receipt.agent),
        "payer": str(receipt.payer),
        "token": str(receipt.mint),
        "token_symbol": mint_symbol(st, receipt.mint),
        "amount": str(receipt.amount),
        "amount_atomic": receipt.amount_atomic,
        "paid_at": receipt.paid_at,
        "signature": str(receipt.signature) if receipt.signature else None,
        "slot": receipt.slot,
        "source": receipt.source,
        "receipt": str(receipt.address) if receipt.address else None,
        "rated": receipt.rated,
    }


@app.command()
def feedback(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    reference: str = REFERENCE_OPTION,
    rating: int = typer.Option(0, "--rating", min=0, max=5, help="1-5 stars (0: no rating)."),
    response_time_ms: int = typer.Option(
        0,
        "--response-time",
        "--response-time-ms",
        min=0,
        max=3_600_000,
        help="How long the call took, in ms (0: not measured).",
    ),
    failed: bool = typer.Option(False, "--failed", help="The paid call failed."),
) -> None:
    """Rate a paid call as its payer: success, response time, stars. Updates the agent's score.

    One rating per call you paid the agent, while your newest payment to it is within the feedback
    window (30 days); the reference names the call rated. Refused (NothingToRate) once every call you
    paid is rated.

    Example: ghost payment feedback --agent AGENT --reference REFERENCE --rating 5 --response-time 800
    """
    st = state(ctx)
    ref = params.agent_ref(agent)
    raw = params.reference(reference)

    async def work(gp: GhostPayClient) -> Any:
        paid = await gp.get_receipt(ref, raw)
        if paid is None:
            raise CliError(
                f"no payment with reference {raw.hex()} to {agent} among its newest transactions; "
                "check with 'ghost payment verify'"
            )
        if paid.payer != gp.wallet:
            raise CliError(f"the payment with reference {raw.hex()} was made by {paid.payer}: only its payer rates it")
        result = await gp.submit_feedback(
            ref, raw, success=not failed, response_time_ms=response_time_ms, rating=rating
        )
        return result, await gp.get_agent(ref)

    result, info = st.run(work, status="Submitting feedback…")
    data = tx_data(
        st,
        "feedback submitted",
        result.signature,
        result.compute_units,
        agent=str(info.address),
        reference=raw.hex(),
        success=not failed,
        rating=rating,
        response_time_ms=response_time_ms,
        reputation_score=info.reputation_score,
    )
    print_tx(
        st,
        data,
        [
            ("agent", str(info.address)),
            ("rating", "★" * rating or "none"),
            ("success", str(not failed)),
            ("new score", f"{info.reputation_score / 100:.2f}%"),
        ],
    )


@app.command("close-stats")
def close_stats(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    payer: str | None = typer.Option(
        None,
        "--payer",
        help="Whose PayerStats (default: yours); "
        "as its rent payer you may close it once it has been idle "
        "for the feedback window.",
    ),
) -> None:
    """Close a PayerStats (one payer's paid calls to one agent) and get its rent back.

    Its payer may close it any time: the calls still open for rating can no longer be rated. The next
    payment to the agent opens it again.

    Example: ghost payment close-stats --agent AGENT
    """
    st = state(ctx)
    ref = params.agent_ref(agent)
    who = params.pubkey(payer, "--payer") if payer else None
    result = st.run(lambda gp: gp.close_payer_stats(ref, who), status="Closing…")
    print_tx(
        st,
        tx_data(st, "closed", result.signature, result.compute_units, agent=agent, payer_stats=str(result.address)),
        [("agent", agent), ("payer stats", str(result.address))],
    )
