"""`ghost escrow`: hire an agent through a token escrow (work orders), on the SDK's work-order methods.

The client creates and funds a work order naming an arbiter; the provider agent's owner accepts it (agreeing
to that arbiter) or declines it (a full refund), then delivers; the client releases (in milestones or at
once) or rejects within the review period, which gives the provider the review period again to deliver anew
or dispute; after the review period the provider may claim; either party may dispute while neither can settle
alone, and the arbiter splits the remainder; the client cancels before acceptance or takes a refund after a
missed deadline (and, after a rejection, the grace period). A dispute left unruled for DISPUTE_RULING_SECONDS
(14 days), or a refund the client does not claim, is settled by default by either party (`settle`): the rest
back to the client. ORDER is the work order's address (`ghost escrow list` shows them).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ghostpay.cli import params
from ghostpay.cli.agent import when
from ghostpay.cli.context import CliError, state
from ghostpay.cli.output import (
    emit,
    explorer_url,
    format_amount,
    key_value_table,
    mint_symbol,
    print_tx,
    span,
    table,
    tx_data,
)

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient, TxResult, WorkOrderInfo

app = typer.Typer(
    help="Hire agents through token escrow: work orders from creation to payment.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ORDER_ARGUMENT = typer.Argument(..., help="The work order's address.")
STATUSES = ("Created", "Accepted", "Submitted", "Rejected", "Disputed")  # the live ones


def order_json(st: Any, o: WorkOrderInfo) -> dict[str, Any]:
    from ghostpay.cli.output import jsonable

    data = jsonable(o)
    data.update(
        token_symbol=mint_symbol(st, o.mint),
        rejected_at=o.account.rejected_at,
        ruling_due=o.ruling_due,
        explorer=explorer_url("address", o.address, st.rpc_url),
    )
    return data


def order_rows(st: Any, o: WorkOrderInfo) -> list[tuple[str, str]]:
    symbol = mint_symbol(st, o.mint)
    rows = [
        ("work order", str(o.address)),
        ("explorer", explorer_url("address", o.address, st.rpc_url)),
        ("title", o.title),
        ("status", o.status),
        ("amount", format_amount(o.amount, symbol)),
        ("released", format_amount(o.released, symbol)),
        ("in escrow", format_amount(o.remaining, symbol)),
        ("client", str(o.client)),
        ("agent", str(o.agent)),
        ("provider", str(o.provider_owner)),
        ("arbiter", str(o.arbiter)),
        ("deadline", when(o.deadline)),
        ("review period", span(o.review_period_seconds)),
    ]
    rows += [("description", o.description)] if o.description else []
    rows += [("requirements", "; ".join(o.requirements))] if o.requirements else []
    if o.deliverable_uri:
        rows += [("delivered", f"{o.deliverable_uri} ({when(o.delivered_at)})"), ("content hash", o.content_hash.hex())]
    if o.status == "Rejected":  # the provider may deliver again or dispute until the grace period ends
        rejected_at = o.account.rejected_at
        rows += [("rejected", when(rejected_at)), ("grace period ends", when(rejected_at + o.review_period_seconds))]
    if o.ruling_due is not None:  # after it either party may settle by default
        rows += [("disputed", when(o.disputed_at)), ("ruling due", when(o.ruling_due))]
    return rows


def order_tx(
    ctx: typer.Context,
    order: str,
    action: str,
    call: Callable[[GhostPayClient, Any], Awaitable[TxResult]],
    **extra: Any,
) -> None:
    """Run one work-order transaction and print it, with the order's state after (if it is still open)."""
    st = state(ctx)
    address = params.pubkey(order, "work order address")

    async def work(gp: GhostPayClient) -> tuple[TxResult, WorkOrderInfo | None]:
        from ghostpay.exceptions import AccountNotFound

        result = await call(gp, address)
        try:
            return result, await gp.get_work_order(address)
        except AccountNotFound:
            return result, None

    result, after = st.run(work, status=f"{action[:1].upper()}{action[1:]}…")
    status = after.status if after is not None else "closed"
    data = tx_data(st, action, result.signature, result.compute_units, work_order=str(address), status=status, **extra)
    print_tx(
        st,
        data,
        [("work order", str(address)), ("status", status)] + [(k.replace("_", " "), str(v)) for k, v in extra.items()],
    )


async def landed(gp: GhostPayClient, signatures: list[str]) -> bool:
    """Whether one of a journal entry's signatures landed and succeeded."""
    for signature in signatures:
        found = await gp.get_signature_status(signature)
        if found is not None and found.err is None:
            return True
    return False


@app.command()
def create(
    ctx: typer.Context,
    agent: str = typer.Option(..., "--agent", "-a", help="The provider agent (address)."),
    amount: str = typer.Option(..., "--amount", help="Whole tokens put in escrow."),
    title: str = typer.Option(..., "--title", help="What the job is (1-100 bytes)."),
    arbiter: str = typer.Option(..., "--arbiter", help="Who settles a dispute (neither party)."),
    deadline: str = typer.Option(
        "7d",
        "--deadline",
        help="Delivery deadline: a duration from now (7d, 12h), an ISO date-time with a zone, or unix seconds.",
    ),
    review_period: str = typer.Option(
        "3d", "--review-period", help="How long the client has to review a delivery before the provider may claim."
    ),
    description: str = typer.Option("", "--description", "-d", help="Up to 512 bytes."),
    requirement: list[str] | None = typer.Option(None, "--requirement", "-r", help="Repeat for each (at most 10)."),
    token: str | None = typer.Option(None, "--token", "-t", help="Mint (default: the agent's first token)."),
    order_id: int | None = typer.Option(None, "--order-id", min=0, max=2**64 - 1, help="u64 (default: random)."),
) -> None:
    """Create a work order: the amount moves from your token account into a new escrow vault.

    Journalled like 'payment send': after an unknown outcome, the same command checks first and reuses
    the order id, so it cannot create (and fund) the order twice.

    Example: ghost escrow create --agent translator --amount 50 --title "Translate the manual" --arbiter ARBITER
    """
    st = state(ctx)
    ref = params.agent_ref(agent)
    value = params.amount(amount, "--amount", token=token)
    params.check_len(title, "the title", "MAX_TITLE_LEN", minimum=1)
    params.check_len(description, "the description", "MAX_WORK_ORDER_DESCRIPTION_LEN")
    requirements = list(requirement or [])
    if len(requirements) > params.limits()["MAX_REQUIREMENTS"]:
        raise typer.BadParameter(f"at most {params.limits()['MAX_REQUIREMENTS']} requirements")
    for item in requirements:
        params.check_len(item, "a requirement", "MAX_REQUIREMENT_LEN", minimum=1)
    arbiter_key = params.pubkey(arbiter, "arbiter")
    when_due = params.deadline(deadline)
    review = params.duration(review_period, "--review-period", "REVIEW_PERIOD_SECONDS")
    mint = params.token(st, token, "--token") if token else None

    async def work(gp: GhostPayClient) -> Any:
        from ghostpay.cli import journal

        provider = await gp.get_agent(ref)
        if not provider.accepted_tokens and mint is None:
            raise CliError(f"agent {provider.address} lists no accepted token: pass --token MINT", 2)
        mint_info = await gp.get_mint(mint or provider.accepted_tokens[0])
        params.in_token_range(
            value, mint_info.decimals, "WORK_ORDER_AMOUNT", "--amount", mint_symbol(st, mint_info.address)
        )
        command = {
            "chain": await gp.genesis_hash(),
            "wallet": str(gp.wallet),
            "agent": str(gp.agent_address(ref)),
            "amount": str(value),
            "token": None if mint is None else str(mint),
            "title": title,
            "arbiter": str(arbiter_key),
            "order_id": order_id,
        }
        with journal.running("work_order", command):
            return await create_once(gp, command)

    async def create_once(gp: GhostPayClient, command: dict[str, Any]) -> Any:
        from ghostpay.cli import journal
        from ghostpay.exceptions import AccountNotFound, GhostPayError, OutcomeUnknown
        from ghostpay.pda import new_order_id

        entry = journal.pending("work_order", command)
        if entry is not None and entry.order_id is not None:  # an earlier run's outcome is unknown
            try:
                existing = await gp.get_work_order(gp.work_order_address(entry.order_id))
            except AccountNotFound:
                existing = None
            if existing is not None:
                entry.close()
                return existing
            if await landed(gp, entry.signatures):  # it was created, and closed since
                entry.close()
                raise CliError(
                    f"an earlier run already created this work order (order id {entry.order_id}, "
                    f"{gp.work_order_address(entry.order_id)}); see 'ghost escrow list --mine'"
                )
            chosen = entry.order_id
        else:
            chosen = order_id if order_id is not None else new_order_id(gp.wallet, gp.program_id)
            entry = journal.open_entry("work_order", command, order_id=chosen)
        st.journal = entry
        try:
            created = await gp.create_work_order(
                ref,
                value,
                deadline=when_due,
                arbiter=arbiter_key,
                title=title,
                description=description,
                requirements=requirements,
                review_period=review,
                mint=mint,
                order_id=chosen,
            )
        except OutcomeUnknown:
            raise  # the entry stays open for the retry
        except GhostPayError:
            entry.close()
            raise
        entry.close()
        return created

    new = st.run(work, status="Creating the work order…")
    if not hasattr(new, "result"):  # a WorkOrderInfo: an earlier run created it
        if not st.json:
            print(
                f"note: an earlier run already created this work order (order id {new.order_id}); "
                "not creating it again",
                file=sys.stderr,
            )
        emit(
            st,
            {**order_json(st, new), "action": "already created"},
            lambda out: out.print(key_value_table(order_rows(st, new), title="[green]✔[/green] already created")),
        )
        return
    symbol = mint_symbol(st, new.mint)
    data = tx_data(
        st,
        "work order created",
        new.signature,
        new.result.compute_units,
        work_order=str(new.address),
        order_id=new.order_id,
        vault=str(new.vault),
        amount=new.amount,
        amount_atomic=new.amount_atomic,
        token=str(new.mint),
        token_symbol=symbol,
        work_order_explorer=explorer_url("address", new.address, st.rpc_url),
    )
    print_tx(
        st,
        data,
        [
            ("work order", str(new.address)),
            ("amount", format_amount(new.amount, symbol)),
            ("vault", str(new.vault)),
            ("order id", str(new.order_id)),
        ],
    )


@app.command()
def accept(
    ctx: typer.Context,
    order: str = ORDER_ARGUMENT,
    arbiter: str | None = typer.Option(
        None,
        "--arbiter",
        help="The arbiter you agree to; the program refuses the accept "
        "if the order names another (default: the order's, as "
        "`ghost escrow show` prints it).",
    ),
) -> None:
    """Accept a work order, as the provider agent's owner, agreeing to its arbiter.

    Example: ghost escrow accept <ORDER> --arbiter <ARBITER>
    """
    agreed = params.pubkey(arbiter, "arbiter") if arbiter else None
    order_tx(
        ctx,
        order,
        "work order accepted",
        lambda gp, o: gp.accept_work_order(o, arbiter=agreed),
        **({"arbiter": str(agreed)} if agreed else {}),
    )


@app.command()
def decline(ctx: typer.Context, order: str = ORDER_ARGUMENT) -> None:
    """Turn down a work order you never accepted, as the provider agent's owner: the client gets it all back.

    Example: ghost escrow decline <ORDER>
    """
    order_tx(ctx, order, "work order declined", lambda gp, o: gp.decline_work_order(o))


@app.command()
def deliver(
    ctx: typer.Context,
    order: str = ORDER_ARGUMENT,
    uri: str = typer.Option(..., "--uri", help="Where the deliverable is (up to 200 bytes)."),
    content_hash: str | None = typer.Option(None, "--hash", help="SHA-256 of the deliverable (64 hex digits)."),
    file: Path | None = typer.Option(
        None, "--file", help="Hash this file instead of giving --hash.", exists=True, dir_okay=False
    ),
) -> None:
    """Deliver the work, as the provider's owner: a URI and the content's hash; starts the review period.

    Example: ghost escrow deliver ORDER --uri https://files.example/guide.md --file guide.md
    """
    params.check_len(uri, "the deliverable URI", "MAX_DELIVERABLE_URI_LEN", minimum=1)
    if (content_hash is None) == (file is None):
        raise typer.BadParameter("give exactly one of --hash HEX and --file PATH")
    digest = hashlib.sha256(file.read_bytes()).digest() if file is not None else params.reference(content_hash or "")
    order_tx(
        ctx,
        order,
        "work delivered",
        lambda gp, o: gp.submit_delivery(o, uri, digest),
        uri=uri,
        content_hash=digest.hex(),
    )


@app.command()
def reject(
    ctx: typer.Context,
    order: str = ORDER_ARGUMENT,
    reason: str = typer.Option(..., "--reason", help="Why (up to 200 bytes)."),
) -> None:
    """Send a delivery back to the provider, as the client.

    Example: ghost escrow reject ORDER --reason "the French part is missing"
    """
    params.check_len(reason, "the reason", "MAX_REASON_LEN")
    order_tx(ctx, order, "delivery rejected", lambda gp, o: gp.reject_delivery(o, reason), reason=reason)


@app.command()
def release(
    ctx: typer.Context,
    order: str = ORDER_ARGUMENT,
    amount: str | None = typer.Option(
        None, "--amount", help="A milestone, in whole tokens (default: everything left)."
    ),
) -> None:
    """Pay the provider from escrow, as the client; releasing the rest completes the work order.

    Example: ghost escrow release ORDER --amount 20   (a milestone; without --amount: the rest)
    """
    value = params.amount(amount) if amount is not None else None
    order_tx(
        ctx,
        order,
        "payment released",
        lambda gp, o: gp.release_payment(o, value),
        **({"amount": value} if value is not None else {}),
    )


@app.command()
def claim(ctx: typer.Context, order: str = ORDER_ARGUMENT) -> None:
    """Take the rest after the review period ran out, as the provider's owner.

    Example: ghost escrow claim ORDER
    """
    order_tx(ctx, order, "payment claimed", lambda gp, o: gp.claim_payment(o))


@app.command()
def dispute(
    ctx: typer.Context,
    order: str = ORDER_ARGUMENT,
    reason: str = typer.Option(..., "--reason", help="Why (up to 200 bytes)."),
) -> None:
    """Open a dispute, as the client or the provider; the arbiter settles it.

    Example: ghost escrow dispute ORDER --reason "delivered late and incomplete"
    """
    params.check_len(reason, "the reason", "MAX_REASON_LEN")
    order_tx(ctx, order, "dispute opened", lambda gp, o: gp.open_dispute(o, reason), reason=reason)


@app.command()
def resolve(
    ctx: typer.Context,
    order: str = ORDER_ARGUMENT,
    client_share: str = typer.Option(
        ..., "--client-share", help="The client's part of what is left: basis points or a percentage (30%)."
    ),
) -> None:
    """Settle a dispute, as the arbiter: split the rest between client and provider.

    Example: ghost escrow resolve ORDER --client-share 30%
    """
    bps = params.basis_points(client_share, "--client-share")
    order_tx(ctx, order, "dispute resolved", lambda gp, o: gp.resolve_dispute(o, bps), client_share_bps=bps)


@app.command()
def cancel(ctx: typer.Context, order: str = ORDER_ARGUMENT) -> None:
    """Cancel a work order nobody accepted yet, as the client: everything comes back.

    Example: ghost escrow cancel ORDER
    """
    order_tx(ctx, order, "work order cancelled", lambda gp, o: gp.cancel_work_order(o))


@app.command()
def refund(ctx: typer.Context, order: str = ORDER_ARGUMENT) -> None:
    """Take back the rest after a missed deadline with no delivery standing (none, or a rejected one whose
    grace period passed), as the client.

    Example: ghost escrow refund ORDER
    """
    order_tx(ctx, order, "refund claimed", lambda gp, o: gp.claim_refund(o))


@app.command()
def settle(ctx: typer.Context, order: str = ORDER_ARGUMENT) -> None:
    """Settle a work order left hanging by the default, as the client or the provider: the rest goes back to
    the client. For a dispute the arbiter did not rule on by its 'ruling due' time (`ghost escrow show`), or
    whenever the client's refund is due and the client has not claimed it (so a provider can close its agent).

    Example: ghost escrow settle ORDER
    """
    order_tx(ctx, order, "settled by default", lambda gp, o: gp.settle_by_default(o))


@app.command()
def show(ctx: typer.Context, order: str = ORDER_ARGUMENT) -> None:
    """One open work order (closed ones live on in the events and the indexer).

    Example: ghost escrow show ORDER
    """
    st = state(ctx)
    address = params.pubkey(order, "work order address")
    info = st.run(lambda gp: gp.get_work_order(address), signer=False)
    emit(
        st,
        order_json(st, info),
        lambda out: out.print(key_value_table(order_rows(st, info), title=f"Work order {info.title!r}")),
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    client: str | None = typer.Option(None, "--client", help="Created by this wallet."),
    agent: str | None = typer.Option(None, "--agent", "-a", help="For this provider agent."),
    provider: str | None = typer.Option(None, "--provider", help="For agents of this owner."),
    arbiter: str | None = typer.Option(None, "--arbiter", help="Arbitrated by this wallet."),
    status: str | None = typer.Option(None, "--status", help=f"One of: {', '.join(STATUSES)}."),
    mine: bool = typer.Option(False, "--mine", help="Where your wallet is the client, provider or arbiter."),
) -> None:
    """Open work orders matching every filter, oldest first.

    Example: ghost escrow list --mine --status Submitted
    """
    st = state(ctx)
    keys = {
        name: params.pubkey(value, name) if value else None
        for name, value in (("client", client), ("provider", provider), ("arbiter", arbiter))
    }
    agent_ref = params.agent_ref(agent) if agent else None
    wanted = params.choice(status.capitalize(), STATUSES, "--status") if status else None

    async def work(gp: GhostPayClient) -> list[WorkOrderInfo]:
        if agent_ref is not None:
            await gp.get_agent(agent_ref)  # not an agent: an error, not "0 work orders"
        if not mine:
            return await gp.list_work_orders(agent=agent_ref, mint=None, status=wanted, **keys)
        seen: dict[str, WorkOrderInfo] = {}
        for role in ("client", "provider", "arbiter"):
            for o in await gp.list_work_orders(agent=agent_ref, status=wanted, **{**keys, role: gp.wallet}):
                seen[str(o.address)] = o
        return sorted(seen.values(), key=lambda o: (o.created_at, bytes(o.address)))

    orders = st.run(work, signer=mine or isinstance(agent_ref, str))
    emit(
        st,
        {"work_orders": [order_json(st, o) for o in orders]},
        lambda out: out.print(
            table(
                ["work order", "title", "status", "amount", "in escrow", "agent", "deadline"],
                [
                    (
                        str(o.address),
                        o.title,
                        o.status,
                        format_amount(o.amount, mint_symbol(st, o.mint)),
                        format_amount(o.remaining, mint_symbol(st, o.mint)),
                        str(o.agent),
                        when(o.deadline),
                    )
                    for o in orders
                ],
                title=f"{len(orders)} open work order(s)",
            )
        ),
    )
