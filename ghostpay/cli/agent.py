"""`ghost agent`: register agents, price them for x402, find them, read their reputation and payments.

Commands that change an agent take `--agent/-a` (its address, or the agent_id of one of your
wallet's agents) and check first that your wallet owns it; read-only commands take AGENT.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import typer

from ghostpay.cli import agent_erc8004, params
from ghostpay.cli.context import CliError, State, state
from ghostpay.cli.output import (
    emit,
    explorer_url,
    format_amount,
    key_value_table,
    mint_symbol,
    print_tx,
    table,
    tx_data,
    whole,
)
from ghostpay.cli.prompts import checked, confirm_irreversible

if TYPE_CHECKING:
    from ghostpay.client import AgentInfo, GhostPayClient, TxResult
    from ghostpay.discovery import SortKey

app = typer.Typer(
    help="Register, price, update and find agents; read their reputation and payments.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

AGENT_OPTION = typer.Option(..., "--agent", "-a", help="The agent: its address, or the agent_id of one of yours.")
TOKENS_HELP = (
    "Accepted tokens with their price per call in whole units of each: USDC=0.01,EURC=0.01 (mints or "
    "symbols; the first is the default). With --price: one token."
)
SORTS: tuple[str, ...] = ("reputation", "price", "newest", "oldest", "calls", "name", "trust")
INDEX_ONLY = "trust"  # a sort only the index can answer (the trust score is computed there)


# shared helpers ----------------------------------------------------------------------------------------


def when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if timestamp else "never"


async def owned(gp: GhostPayClient, ref: params.AgentArg) -> AgentInfo:
    """The agent, if the wallet owns it (CliError naming the owner otherwise)."""
    info = await gp.get_agent(ref)
    if info.owner != gp.wallet:
        raise CliError(
            f"agent {info.address} belongs to {info.owner}, not to your wallet {gp.wallet}; "
            "pass -k/--keypair with its owner's keypair"
        )
    return info


Mints = dict[str, Any]  # mint address -> its MintInfo (or IndexedMint), None when unknown


async def mints_of(gp: GhostPayClient, info: AgentInfo) -> Mints:
    """The agent's accepted mints and the mints it earned in, with their decimals."""
    found = await gp.get_mints([*info.accepted_tokens, *(e.mint for e in info.earnings)])
    return {str(mint): mint_info for mint, mint_info in found.items()}


def amount_text(st: State, atomic: int, mint: object, mints: Mints) -> str:
    """`0.01 USDC`, exact in the mint's decimals; atomic units when they are unknown."""
    found = mints.get(str(mint))
    if found is None:
        return f"{atomic:,} atomic units of {mint_symbol(st, mint)}"
    return format_amount(whole(atomic, found.decimals), mint_symbol(st, mint))


def prices_text(st: State, info: Any, mints: Mints) -> str:
    """Every accepted token's price per call, the default one first."""
    return ", ".join(amount_text(st, atomic, mint, mints) for mint, atomic in info.prices_atomic.items()) or "—"


def prices_json(st: State, info: Any, mints: Mints) -> list[dict[str, Any]]:
    """The price per call in each accepted mint, exact, the default one first."""
    out = []
    for mint, atomic in info.prices_atomic.items():
        found = mints.get(str(mint))
        out.append(
            {
                "token": str(mint),
                "symbol": mint_symbol(st, mint),
                "price_atomic": atomic,
                "price": whole(atomic, found.decimals) if found else None,
                "decimals": found.decimals if found else None,
            }
        )
    return out


def _in_tokens(decimals: int | None, atomic: int) -> Decimal | None:
    """An atomic amount in whole tokens; None for a mint whose decimals are unknown."""
    return None if decimals is None else whole(atomic, decimals)


def earnings_json(st: State, info: Any, mints: Mints) -> list[dict[str, Any]]:
    """What the agent earned in each mint this registration: x402 payments and escrow, exact."""
    out = []
    for e in info.earnings:
        found = mints.get(str(e.mint))
        decimals = found.decimals if found else None
        out.append(
            {
                "token": str(e.mint),
                "symbol": mint_symbol(st, e.mint),
                "decimals": decimals,
                "x402_payments": _in_tokens(decimals, e.x402_payments_atomic),
                "x402_payments_atomic": e.x402_payments_atomic,
                "escrow_earnings": _in_tokens(decimals, e.escrow_earnings_atomic),
                "escrow_earnings_atomic": e.escrow_earnings_atomic,
                "total": _in_tokens(decimals, e.x402_payments_atomic + e.escrow_earnings_atomic),
            }
        )
    return out


def earnings_text(st: State, info: Any, mints: Mints, *, x402_only: bool = False) -> str:
    """`1.50 USDC, 20.00 PYUSD`: the total earned in each mint (or its x402 payments only)."""
    parts = [
        amount_text(st, e.x402_payments_atomic + (0 if x402_only else e.escrow_earnings_atomic), e.mint, mints)
        for e in info.earnings
        if e.x402_payments_atomic or not x402_only
    ]
    return ", ".join(parts) or "—"


def agent_json(st: State, info: Any, mints: Mints) -> dict[str, Any]:
    """An agent for --output json; `price`, `token`… are those of the default (first) token."""
    from ghostpay.reputation import tier

    prices = prices_json(st, info, mints)
    default = prices[0] if prices else {}
    return {
        "address": str(info.address),
        "owner": str(info.owner),
        "agent_id": info.agent_id,
        "name": info.name,
        "agent_type": info.agent_type,
        "description": info.description,
        "metadata_uri": info.metadata_uri,
        "capabilities": info.capabilities,
        "is_active": info.is_active,
        "x402_enabled": info.x402_enabled,
        "prices": prices,
        "price": default.get("price"),
        "price_atomic": default.get("price_atomic"),
        "token": default.get("token"),
        "token_symbol": default.get("symbol"),
        "decimals": default.get("decimals"),
        "accepted_tokens": [str(t) for t in info.accepted_tokens],
        "endpoint": info.endpoint,
        "payment_address": str(info.payment_address),
        "reputation_score": info.reputation_score,
        "reputation_tier": tier(info.reputation_score, info.total_calls > 0).value,
        "registration": info.registration,
        "earnings": earnings_json(st, info, mints),
        "total_calls": info.total_calls,
        "last_payment_at": info.last_payment_at,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "explorer": explorer_url("address", info.address, st.rpc_url),
    }


def agent_rows(st: State, info: AgentInfo, mints: Mints) -> list[tuple[str, str]]:
    data = agent_json(st, info, mints)
    rows = [
        ("address", data["address"]),
        ("explorer", data["explorer"]),
        ("owner", data["owner"]),
        ("agent_id", info.agent_id),
        ("name", info.name),
        ("type", str(info.agent_type)),
    ]
    rows += [("description", info.description)] if info.description else []
    rows += [("metadata", info.metadata_uri)] if info.metadata_uri else []
    rows += [
        ("capabilities", ", ".join(info.capabilities) or "—"),
        ("status", "[green]active[/green]" if info.is_active else "[yellow]inactive[/yellow]"),
        ("x402", "[green]enabled[/green]" if info.x402_enabled else "disabled"),
    ]
    if info.accepted_tokens:
        rows += [
            ("price per call", prices_text(st, info, mints)),
            ("accepted tokens", ", ".join(f"{mint_symbol(st, t)} ({t})" for t in info.accepted_tokens)),
            ("endpoint", info.endpoint),
            ("payment address", str(info.payment_address)),
        ]
    rows += [
        ("reputation", f"{info.reputation_score / 100:.2f}% ({data['reputation_tier']})"),
        ("paid calls", f"{info.total_calls:,}"),
        ("earned", earnings_text(st, info, mints)),
        ("registration", f"#{info.registration}"),
        ("created", when(info.created_at)),
    ]
    return rows


def agents_table(st: State, agents: list[tuple[Any, Mints]], title: str, decimals: Any = None) -> Any:
    """`decimals` (mint -> its decimals, from the index's read path): with it, the evidence and trust columns."""
    from ghostpay.cli.evidence_view import evidence_text, trust_text

    shown = decimals is not None and any(getattr(a, "evidence", None) is not None for a, _ in agents)
    columns = ["agent", "name", "x402 price per call", "reputation", "paid calls", "capabilities", "status"]
    return table(
        columns + (["evidence in trusted mints", "trust"] if shown else []),
        [
            (
                str(a.address),
                f"{a.name}\n[dim]{a.agent_id}[/dim]",
                prices_text(st, a, m) if a.x402_enabled else "—",
                f"{a.reputation_score / 100:.2f}%",
                f"{a.total_calls:,}",
                ", ".join(a.capabilities),
                "active" if a.is_active else "inactive",
                *((evidence_text(st, a.evidence, decimals), trust_text(a.evidence)) if shown else ()),
            )
            for a, m in agents
        ],
        title,
    )


async def with_mints(gp: GhostPayClient, agents: list[AgentInfo]) -> list[tuple[AgentInfo, Mints]]:
    return [(a, await mints_of(gp, a)) for a in agents]


def tx_out(st: State, action: str, result: TxResult, info_address: object, **extra: Any) -> None:
    data = tx_data(st, action, result.signature, result.compute_units, agent=str(info_address), **extra)
    print_tx(st, data, [("agent", str(info_address))] + [(k.replace("_", " "), str(v)) for k, v in extra.items()])


def x402_settings(
    st: State,
    price: str | None,
    tokens: list[str] | None,
    endpoint: str | None,
    payment_address: str | None,
    required: bool,
) -> Any:
    """X402Settings from the options (None when none is given and they are optional)."""
    given = [price, tokens, endpoint, payment_address]
    if not required and all(v is None or v == [] for v in given):
        return None
    missing = [name for name, value in (("--tokens", tokens), ("--endpoint", endpoint)) if not value]
    if missing:
        raise typer.BadParameter(
            f"x402 pricing needs {', '.join(missing)} as well (e.g. --tokens USDC=0.01 --endpoint https://…)"
        )
    from ghostpay.client import X402Settings

    assert tokens is not None and endpoint is not None
    return X402Settings(
        params.token_prices(st, tokens, price),
        params.endpoint(endpoint),
        params.pubkey(payment_address, "payment address") if payment_address else None,
    )


async def check_x402(st: State, gp: GhostPayClient, settings: Any) -> None:
    """Before sending: each price within the program's range, said in tokens of its mint."""
    for mint_key, price in settings.prices.items():
        mint = await gp.get_mint(mint_key)
        params.in_token_range(price, mint.decimals, "PRICE_PER_CALL", "the price", mint_symbol(st, mint.address))


def settings_text(st: State, prices: dict[Any, Decimal]) -> str:
    """`USDC=0.01,EURC=0.0095`: the prices as the user wrote them."""
    return ",".join(f"{mint_symbol(st, mint)}={format(price, 'f')}" for mint, price in prices.items())


def interactive(st: State, yes: bool) -> bool:
    return not yes and not st.json and sys.stdin.isatty()


def address_of(st: State, ref: params.AgentArg) -> str:
    """The agent's address (an agent_id is one of the wallet's agents)."""
    if not isinstance(ref, str):
        return str(ref)
    from ghostpay.pda import agent_address
    from ghostpay.program_id import PROGRAM_ID

    program = params.pubkey(st.settings.program_id, "program id") if st.settings.program_id else PROGRAM_ID
    return str(agent_address(st.wallet_address(), ref, program)[0])


# register and change ---------------------------------------------------------------------------------


@app.command()
def register(
    ctx: typer.Context,
    agent_id: str | None = typer.Argument(None, help="A short id, unique among your agents (1-32 bytes)."),
    name: str | None = typer.Option(None, "--name", "-n", help="Display name (1-64 bytes)."),
    description: str | None = typer.Option(None, "--description", "-d", help="Up to 512 bytes."),
    agent_type: int = typer.Option(0, "--type", min=0, max=255, help="Agent type (0-255)."),
    metadata_uri: str = typer.Option("", "--metadata-uri", help="A URI with more about the agent."),
    registration_file: bool = typer.Option(
        False,
        "--registration-file",
        help="Set the metadata URI to the ERC-8004 registration file 'ghost x402 proxy' serves at the "
        "--endpoint's origin (/.well-known/agent-registration.json).",
    ),
    capability: list[str] | None = typer.Option(
        None, "--capability", "--capabilities", "-c", help="Capabilities, repeated or comma-separated (at most 8)."
    ),
    price: str | None = typer.Option(
        None, "--price", help="x402 price per call in whole tokens, when --tokens names one token."
    ),
    tokens: list[str] | None = typer.Option(None, "--tokens", "--token", "-t", help=TOKENS_HELP),
    endpoint: str | None = typer.Option(None, "--endpoint", help="x402 service endpoint, http(s)://…"),
    payment_address: str | None = typer.Option(
        None, "--payment-address", help="Wallet that receives payments (default: you)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not prompt; fail if a required field is missing."),
) -> None:
    """Register an agent; with the x402 options it is registered and priced in one transaction.

    On a terminal, missing fields are prompted for (and the result confirmed) unless --yes.

    Example: ghost agent register translator -n Translator -c translate --tokens USDC=0.01,EURC=0.01
    --endpoint https://translator.example/x402 --yes
    """
    st = state(ctx)
    ask = interactive(st, yes)
    if agent_id is None:
        if not ask:
            raise typer.BadParameter("missing AGENT_ID (or run on a terminal without --yes to be prompted)")
        agent_id = typer.prompt(
            "Agent id (1-32 bytes, unique among your agents)",
            value_proc=checked(lambda v: params.check_len(v.strip(), "the agent_id", "MAX_AGENT_ID_LEN", minimum=1)),
        )
    if name is None:
        if not ask:
            raise typer.BadParameter("missing --name (or run on a terminal without --yes to be prompted)")
        name = typer.prompt(
            "Name",
            default=agent_id,
            value_proc=checked(lambda v: params.check_len(v, "the name", "MAX_NAME_LEN", minimum=1)),
        )
    if ask and description is None:
        description = typer.prompt(
            "Description",
            default="",
            show_default=False,
            value_proc=checked(lambda v: params.check_len(v, "the description", "MAX_DESCRIPTION_LEN")),
        )
    if ask and capability is None:
        capability = [
            typer.prompt(
                "Capabilities (comma-separated)",
                default="",
                show_default=False,
                value_proc=checked(lambda v: params.capabilities([v]) and v),
            )
        ]
    if (
        ask
        and price is None
        and not tokens
        and endpoint is None
        and typer.confirm("Price calls with x402?", default=True)
    ):
        tokens = [
            typer.prompt(
                "Accepted tokens and their price per call (e.g. USDC=0.01,EURC=0.01)",
                value_proc=checked(lambda v: params.token_prices(st, [v], None) and v),
            )
        ]
        endpoint = typer.prompt("Service endpoint (https://…)", value_proc=checked(params.endpoint))
    agent_id = params.check_len(agent_id.strip(), "the agent_id", "MAX_AGENT_ID_LEN", minimum=1)
    name = params.check_len(name, "the name", "MAX_NAME_LEN", minimum=1)
    description = params.check_len(description or "", "the description", "MAX_DESCRIPTION_LEN")
    caps = params.capabilities(capability) or []
    x402 = x402_settings(st, price, tokens, endpoint, payment_address, required=False)
    if registration_file:
        metadata_uri = agent_erc8004.metadata_uri_for(metadata_uri, x402.endpoint if x402 else None)
    params.check_len(metadata_uri, "the metadata URI", "MAX_METADATA_URI_LEN")
    if ask and not typer.confirm(
        f"Register {agent_id!r} ({name})"
        + (f" at {settings_text(st, x402.prices)} per call" if x402 else "")
        + f" on {st.rpc_url}?",
        default=True,
    ):
        raise typer.Abort()

    async def work(gp: GhostPayClient) -> TxResult:
        if x402 is not None:
            await check_x402(st, gp, x402)
        return await gp.register_agent(
            agent_id,
            name,
            agent_type=agent_type,
            description=description,
            metadata_uri=metadata_uri,
            capabilities=caps,
            x402=x402,
        )

    result = st.run(work, status="Registering the agent…")
    tx_out(
        st,
        "registered",
        result,
        result.address,
        agent_id=agent_id,
        x402=x402 is not None,
        agent_explorer=explorer_url("address", result.address, st.rpc_url),
        **({"metadata_uri": metadata_uri} if registration_file else {}),
    )


@app.command("configure-x402")
def configure_x402(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    tokens: list[str] = typer.Option(..., "--tokens", "--token", "-t", help=TOKENS_HELP),
    endpoint: str = typer.Option(..., "--endpoint", help="x402 service endpoint, http(s)://…"),
    price: str | None = typer.Option(None, "--price", help="Price per call, when --tokens names one token."),
    payment_address: str | None = typer.Option(
        None, "--payment-address", help="Wallet that receives payments (default: you)."
    ),
) -> None:
    """Enable x402 payments, or replace the tokens and their prices, endpoint and payment address at once.

    Example: ghost agent configure-x402 -a translator --tokens USDC=0.01,EURC=0.01 --endpoint https://t.example
    """
    st = state(ctx)
    ref = params.agent_ref(agent)
    settings = x402_settings(st, price, tokens, endpoint, payment_address, required=True)

    async def work(gp: GhostPayClient) -> TxResult:
        info = await owned(gp, ref)
        await check_x402(st, gp, settings)
        return await gp.configure_x402(info.address, settings)

    result = st.run(work, status="Configuring x402…")
    tx_out(
        st,
        "x402 configured",
        result,
        result.address,
        prices=settings_text(st, settings.prices),
        tokens=",".join(str(t) for t in settings.prices),
        endpoint=settings.endpoint,
    )


def owner_tx(
    ctx: typer.Context, agent: str, action: str, call: Any, extra: dict[str, Any] | None = None, **fields: Any
) -> None:
    """Check ownership, send `call(gp, info)`, print the transaction with `fields` (and `extra`, which
    `call` may fill in)."""
    st = state(ctx)
    ref = params.agent_ref(agent)

    async def work(gp: GhostPayClient) -> TxResult:
        info = await owned(gp, ref)
        return await call(gp, info)

    result = st.run(work, status=f"{action[:1].upper()}{action[1:]}…")
    tx_out(st, action, result, result.address, **fields, **(extra or {}))


@app.command("set-price")
def set_price(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    tokens: list[str] | None = typer.Option(
        None,
        "--tokens",
        "--token",
        "-t",
        help="New prices of accepted tokens: USDC=0.02,EURC=0.02 (the others keep theirs); with "
        "--price: the one token it prices.",
    ),
    price: str | None = typer.Option(
        None, "--price", help="Whole tokens per call, for one token (--token T, or the agent's only token)."
    ),
) -> None:
    """Change the x402 price per call in some of the accepted tokens.

    Example: ghost agent set-price -a translator --tokens USDC=0.02   (or --price 0.02 for a one-token agent)
    """
    st = state(ctx)
    if not tokens and price is None:
        raise typer.BadParameter("give the new prices: --tokens USDC=0.02[,EURC=0.02] or --price P")
    prices = params.token_prices(st, tokens, price) if tokens else None
    single = params.amount(price, "--price") if price is not None and not tokens else None
    shown: dict[str, Any] = {}  # the prices set, for the output: known once the agent is read

    async def call(gp: GhostPayClient, info: AgentInfo) -> TxResult:
        chosen = prices
        if chosen is None:  # --price alone: the agent's only token
            if len(info.accepted_tokens) != 1:
                raise CliError(
                    f"agent {info.address} accepts {len(info.accepted_tokens)} tokens; say which with "
                    "--token T --price P, or --tokens T=P,...",
                    2,
                )
            assert single is not None  # --price without --tokens
            chosen = {info.accepted_tokens[0]: single}
        for mint_key, value in chosen.items():  # in range, said in tokens, before anything is sent
            mint = await gp.get_mint(mint_key)
            params.in_token_range(value, mint.decimals, "PRICE_PER_CALL", "the price", mint_symbol(st, mint.address))
        shown.update(prices=settings_text(st, chosen))
        return await gp.set_price(info.address, chosen)

    owner_tx(ctx, agent, "price set", call, extra=shown)


@app.command("set-tokens")
def set_tokens(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    tokens: list[str] = typer.Option(..., "--tokens", "--token", "-t", help=TOKENS_HELP),
    price: str | None = typer.Option(None, "--price", help="Price per call, for a single token."),
) -> None:
    """Replace the accepted tokens and their prices.

    Example: ghost agent set-tokens -a translator --tokens USDC=0.01,EURC=0.0095
    """
    st = state(ctx)
    prices = params.token_prices(st, tokens, price)
    owner_tx(
        ctx,
        agent,
        "tokens set",
        lambda gp, info: gp.set_tokens(info.address, prices),
        prices=settings_text(st, prices),
        tokens=",".join(str(m) for m in prices),
    )


@app.command("update-endpoint")
def update_endpoint(
    ctx: typer.Context, agent: str = AGENT_OPTION, endpoint: str = typer.Option(..., "--endpoint", help="http(s)://…")
) -> None:
    """Change the x402 service endpoint.

    Example: ghost agent update-endpoint --agent translator --endpoint https://t.example/v2
    """
    url = params.endpoint(endpoint)
    owner_tx(ctx, agent, "endpoint updated", lambda gp, info: gp.set_endpoint(info.address, url), endpoint=url)


@app.command("disable-x402")
def disable_x402(ctx: typer.Context, agent: str = AGENT_OPTION) -> None:
    """Stop accepting x402 payments (the pricing stays stored; configure-x402 enables it again).

    Example: ghost agent disable-x402 --agent translator
    """
    owner_tx(ctx, agent, "x402 disabled", lambda gp, info: gp.disable_x402(info.address))


@app.command()
def update(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    name: str | None = typer.Option(None, "--name", "-n"),
    description: str | None = typer.Option(None, "--description", "-d"),
    agent_type: int | None = typer.Option(None, "--type", min=0, max=255),
    metadata_uri: str | None = typer.Option(None, "--metadata-uri"),
    capability: list[str] | None = typer.Option(
        None, "--capability", "--capabilities", "-c", help="Replaces the list: repeated or comma-separated."
    ),
) -> None:
    """Change any of name, description, type, metadata URI and capabilities.

    Example: ghost agent update --agent translator --description "English <-> French" -c translate,summarize
    """
    if name is not None:
        params.check_len(name, "the name", "MAX_NAME_LEN", minimum=1)
    if description is not None:
        params.check_len(description, "the description", "MAX_DESCRIPTION_LEN")
    if metadata_uri is not None:
        params.check_len(metadata_uri, "the metadata URI", "MAX_METADATA_URI_LEN")
    caps = params.capabilities(capability)
    if all(v is None for v in (name, description, agent_type, metadata_uri, caps)):
        raise typer.BadParameter(
            "nothing to update: give --name, --description, --type, --metadata-uri or --capability"
        )
    changed = {
        k: v
        for k, v in (
            ("name", name),
            ("description", description),
            ("type", agent_type),
            ("metadata_uri", metadata_uri),
            ("capabilities", caps),
        )
        if v is not None
    }
    shown: dict[str, Any] = {k: (",".join(v) if isinstance(v, list) else v) for k, v in changed.items()}
    owner_tx(
        ctx,
        agent,
        "agent updated",
        lambda gp, info: gp.update_agent(
            info.address,
            name=name,
            agent_type=agent_type,
            description=description,
            metadata_uri=metadata_uri,
            capabilities=caps,
        ),
        **shown,
    )


@app.command()
def activate(ctx: typer.Context, agent: str = AGENT_OPTION) -> None:
    """Mark the agent active (found by search again).

    Example: ghost agent activate --agent translator
    """
    owner_tx(ctx, agent, "agent activated", lambda gp, info: gp.activate(info.address))


@app.command()
def deactivate(ctx: typer.Context, agent: str = AGENT_OPTION) -> None:
    """Mark the agent inactive (hidden from search).

    Example: ghost agent deactivate --agent translator
    """
    owner_tx(ctx, agent, "agent deactivated", lambda gp, info: gp.deactivate(info.address))


@app.command()
def close(
    ctx: typer.Context,
    agent: str = AGENT_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Close the agent, refunding its rent. Refused with open work orders, and until 30 days after its last
    payment, while its buyers can still rate it: run 'ghost agent deactivate' first to stop new payments. Its
    reputation stays on chain: registering the same agent id again continues it. Asks first on a terminal;
    elsewhere --yes is required.

    Example: ghost agent close --agent translator --yes
    """
    confirm_irreversible(state(ctx), yes, f"Close agent {agent}? This cannot be undone", "ghost agent close")
    owner_tx(ctx, agent, "agent closed", lambda gp, info: gp.close_agent(info.address))


# read ------------------------------------------------------------------------------------------------


@app.command()
def show(ctx: typer.Context, agent: str = typer.Argument(..., help="Address, or the agent_id of yours.")) -> None:
    """Show one agent with its x402 pricing and reputation; with --db, the index's evidence in trusted mints (paid
    calls, payers, volume, days, escrow releases) and trust score beside it.

    Example: ghost agent show translator
    """
    st = state(ctx)
    ref = params.agent_ref(agent)

    async def work(gp: GhostPayClient) -> tuple[AgentInfo, Mints]:
        info = await gp.get_agent(ref)
        return info, await mints_of(gp, info)

    info, mints = st.run(work, signer=isinstance(ref, str))
    data, rows = agent_json(st, info, mints), agent_rows(st, info, mints)
    if st.settings.db:  # the evidence the index holds, beside the on-chain score
        from ghostpay.cli.evidence_view import evidence_json, evidence_text, trust_text
        from ghostpay.cli.indexed import Decimals, agent_evidence

        found, decimals = agent_evidence(st, str(info.address)), Decimals(st)
        data["evidence"] = evidence_json(st, found, decimals)
        at = next(i for i, (name, _) in enumerate(rows) if name == "reputation") + 1
        rows[at:at] = [("evidence (trusted)", evidence_text(st, found, decimals)), ("trust", trust_text(found))]
    emit(st, data, lambda out: out.print(key_value_table(rows, title=f"Agent {info.name}")))


@app.command()
def card(
    ctx: typer.Context,
    agent: str = typer.Argument(..., help="Address, or the agent_id of yours."),
    url: str | None = typer.Option(
        None, "--url", help="The agent's A2A JSON-RPC endpoint (default: its on-chain x402 endpoint)."
    ),
) -> None:
    """Print the agent's A2A Agent Card (JSON), made from its on-chain account.

    The card `ghost x402 proxy` serves at /.well-known/agent-card.json: name, description, version,
    capabilities as skills, the endpoint as a JSON-RPC interface, the a2a-x402 extension with its prices.

    Example: ghost agent card translator --url https://translator.example/translate
    """
    st = state(ctx)
    ref = params.agent_ref(agent)

    async def work(gp: GhostPayClient) -> dict[str, Any]:
        from ghostpay.x402.a2a.card import card_json, chain_card

        info = await gp.get_agent(ref)
        endpoint = url or info.endpoint
        if not endpoint:
            raise CliError(f"agent {info.address} has no x402 endpoint on chain: pass --url")
        try:
            return card_json(await chain_card(gp, info, [endpoint]))
        except ValueError as exc:
            raise CliError(str(exc)) from None

    import json

    typer.echo(json.dumps(st.run(work, signer=isinstance(ref, str)), indent=2))


@app.command("list")
def list_(
    ctx: typer.Context, owner: str | None = typer.Option(None, "--owner", help="Whose agents (default: your wallet's).")
) -> None:
    """List the agents of an owner, active or not, oldest first.

    Example: ghost agent list --owner 7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU
    """
    st = state(ctx)
    owner_key = params.pubkey(owner, "owner") if owner else None

    async def work(gp: GhostPayClient) -> list[tuple[AgentInfo, Mints]]:
        return await with_mints(gp, await gp.list_agents(owner_key or gp.wallet))

    agents = st.run(work, signer=owner_key is None)
    emit(
        st,
        {"agents": [agent_json(st, a, m) for a, m in agents]},
        lambda out: out.print(agents_table(st, agents, f"{len(agents)} agent(s)")),
    )


@app.command()
def search(
    ctx: typer.Context,
    capability: str | None = typer.Option(None, "--capability", "-c", help="Has this capability."),
    x402_enabled: bool | None = typer.Option(
        None, "--x402-enabled/--x402-disabled", help="Takes x402 payments (or not)."
    ),
    token: str | None = typer.Option(None, "--token", "-t", help="Accepts this mint (address or symbol)."),
    max_price: str | None = typer.Option(
        None,
        "--max-price",
        help="At most this price per call in --token (whole tokens): each accepted token has its own price.",
    ),
    min_reputation: str | None = typer.Option(
        None, "--min-reputation", help="At least this score: basis points (0-10000) or NN%."
    ),
    sort: str | None = typer.Option(
        None,
        "--sort",
        help=f"One of: {', '.join(SORTS)} (price: in --token, else in each agent's default token; trust: the "
        "index's trust score over the payment graph, needs --db).",
    ),
    include_inactive: bool = typer.Option(False, "--include-inactive", help="Inactive agents too."),
    min_payers: int | None = typer.Option(
        None, "--min-payers", min=0, help="At least this many distinct payers in trusted mints (needs --db)."
    ),
    min_volume: list[str] | None = typer.Option(
        None,
        "--min-volume",
        help="At least this much paid in a token, x402 and escrow: USDC=10 (whole tokens; repeatable; needs --db).",
    ),
    limit: int = typer.Option(50, "--limit", "-l", min=1, help="At most this many."),
    url: str | None = typer.Option(
        None,
        "--url",
        help="Read the agent at this URL instead (another ecosystem's): its ERC-8004 registration file and A2A "
        "Agent Card (/.well-known/agent-registration.json, /.well-known/agent-card.json, or a document's URL).",
    ),
    allow_private: bool = typer.Option(
        False,
        "--allow-private",
        help="With --url: let it and the URLs its documents name reach loopback, private and link-local "
        "addresses (refused by default).",
    ),
) -> None:
    """Find agents: from the indexer database when one is configured (--db), else from the chain; or read
    one agent's documents at --url and show what it offers and accepts. With --db each agent shows its evidence
    in trusted mints (paid calls, payers, volume, days) and its trust score.

    Example: ghost agent search -c translate --token USDC --max-price 0.05 --sort price; ghost --db index.db agent
    search --min-payers 5 --min-volume USDC=10 --sort trust
    """
    st = state(ctx)
    if url is not None:
        agent_erc8004.search_url(st, url, allow_private)
        return
    if not st.settings.db and (min_payers is not None or min_volume or sort == INDEX_ONLY):
        raise typer.BadParameter(
            "--min-payers, --min-volume and --sort trust read the indexer's database: give --db (ghost indexer run)"
        )
    if max_price is not None and token is None:
        raise typer.BadParameter(
            "--max-price needs --token: each accepted token has its own price (e.g. --token USDC --max-price 0.05)"
        )
    mint = params.token_address(st, token, "--token") if token else None
    ceiling = params.amount(max_price, "--max-price", allow_zero=True, token=token) if max_price is not None else None
    floor = params.min_reputation(min_reputation)
    order: Any = params.choice(sort, SORTS, "--sort") if sort else None
    filters = {
        "capability": capability,
        "x402_enabled": x402_enabled,
        "token": mint,
        "max_price": ceiling,
        "min_reputation": floor,
        "sort": order,
        "limit": limit,
        "include_inactive": include_inactive,
        "min_payers": min_payers,
        "min_volume": min_volume,
    }
    query = (mint, ceiling, floor, order, capability, x402_enabled, include_inactive, limit)
    found: list[tuple[Any, Mints]]  # IndexedAgent or AgentInfo rows: agent_json and agents_table read both
    decimals = None
    if st.settings.db:
        from ghostpay.cli.evidence_view import evidence_json, min_volumes
        from ghostpay.cli.indexed import Decimals, search_indexed

        source, decimals = "indexer", Decimals(st)
        volumes = min_volumes(st, min_volume, decimals)
        with st.spinner("Searching the index…"):
            found, total, capped = search_indexed(st, *query, min_payers, volumes, decimals)
    else:
        source, capped = "chain", False
        found, total = st.run(lambda gp: search_chain(gp, *query), signer=False, status="Searching…")
    more = f", showing {len(found)}" if total > len(found) else ""
    counted = f"{total:,}+" if capped else str(total)  # an index counts up to paging.TOTAL_CAP
    rows = [
        {
            **agent_json(st, a, m),
            **({"evidence": evidence_json(st, getattr(a, "evidence", None), decimals)} if decimals else {}),
        }
        for a, m in found
    ]
    emit(
        st,
        {"source": source, "filters": filters, "total": total, "total_capped": capped, "agents": rows},
        lambda out: out.print(agents_table(st, found, f"{counted} agent(s) found (from the {source}{more})", decimals)),
    )


async def search_chain(
    gp: GhostPayClient,
    mint: str | None,
    ceiling: Decimal | None,
    floor: int | None,
    order: SortKey | None,  # never "trust": the index's only
    capability: str | None,
    x402_enabled: bool | None,
    include_inactive: bool,
    limit: int,
) -> tuple[list[tuple[AgentInfo, Mints]], int]:
    """getProgramAccounts with memcmp filters, the rest checked exactly by the SDK on lean listings (only the
    first `limit` are decoded in full). Returns them and how many matched."""
    agents, total = await gp.search_agents_counted(
        x402_enabled=True if mint is not None and x402_enabled is None else x402_enabled,
        capability=capability,
        token=mint,
        max_price=ceiling,
        min_reputation=floor,
        active=None if include_inactive else True,
        sort=order,
        limit=limit,
    )
    return await with_mints(gp, agents), total


app.command("registration-file")(agent_erc8004.registration_file)


@app.command()
def reputation(
    ctx: typer.Context,
    agent: str = typer.Argument(..., help="Address, or the agent_id of yours."),
    detailed: bool = typer.Option(False, "--detailed", help="The four components with their weights."),
    show_metrics: bool = typer.Option(False, "--show-metrics", help="The raw on-chain metrics too."),
) -> None:
    """An agent's reputation: score, tier, and (--detailed) how it is computed.

    Example: ghost agent reputation translator --detailed
    """
    from ghostpay.reputation import (
        WEIGHT_PAYMENT_SUCCESS,
        WEIGHT_RESPONSE_TIME,
        WEIGHT_SERVICE_QUALITY,
        WEIGHT_VOLUME_CONSISTENCY,
    )

    st = state(ctx)
    ref = params.agent_ref(agent)
    rep = st.run(lambda gp: gp.get_reputation(ref), signer=isinstance(ref, str))
    c = rep.components
    components = [
        ("payment success", c.payment_success, WEIGHT_PAYMENT_SUCCESS),
        ("service quality", c.service_quality, WEIGHT_SERVICE_QUALITY),
        ("response time", c.response_time, WEIGHT_RESPONSE_TIME),
        ("volume consistency", c.volume_consistency, WEIGHT_VOLUME_CONSISTENCY),
    ]
    metrics = rep.metrics.to_json()
    data: dict[str, Any] = {
        "agent": str(rep.agent),
        "score": rep.score,
        "tier": rep.tier.value,
        "percent": f"{rep.score / 100:.2f}",
        "components": {name.replace(" ", "_"): value for name, value, _ in components},
        "payments": metrics["successful_payments"] + metrics["failed_payments"],
        "explorer": explorer_url("address", rep.agent, st.rpc_url),
    }
    if show_metrics:
        data["metrics"] = metrics

    def render(out: Any) -> None:
        rows = [
            ("agent", str(rep.agent)),
            ("score", f"{rep.score:,} bps ({rep.score / 100:.2f}%)"),
            ("tier", rep.tier.value),
            ("payments scored", f"{data['payments']:,} (paid x402 calls and settled work orders)"),
        ]
        out.print(key_value_table(rows, title="Reputation"))
        if detailed:
            out.print(
                table(
                    ["component", "score", "weight", "contributes"],
                    [(n, f"{v / 100:.2f}%", f"{w}%", f"{v * w / 10_000:.2f}") for n, v, w in components]
                    + [("total", "", "100%", f"{rep.score / 100:.2f}")],
                    title="Components (0-100)",
                )
            )
        if show_metrics:
            out.print(
                table(
                    ["metric", "value"],
                    [
                        (k, ", ".join(map(str, v)) if isinstance(v, list) else str(v))
                        for k, v in metrics.items()
                        if k != "agent"
                    ],
                    title="On-chain metrics",
                )
            )

    emit(st, data, render)


@app.command("payment-history")
def payment_history(
    ctx: typer.Context,
    agent: str = typer.Argument(..., help="Address, or the agent_id of yours."),
    limit: int = typer.Option(20, "--limit", "-l", min=1, help="At most this many payments."),
    sort_by: str = typer.Option("date", "--sort-by", help="date (newest first) or amount (largest first)."),
) -> None:
    """Recorded x402 payments to an agent: from the indexer database if configured, else from its transactions.

    Example: ghost --db index.db agent payment-history translator --sort-by amount
    """
    st = state(ctx)
    ref = params.agent_ref(agent)
    params.choice(sort_by, ("date", "amount"), "--sort-by")
    if st.settings.db:
        from ghostpay.cli.indexed import payment_history_indexed

        with st.spinner("Reading the index…"):
            source, rows = "indexer", payment_history_indexed(st, address_of(st, ref), limit, sort_by)
    else:
        source, rows = (
            "chain",
            st.run(
                lambda gp: history_chain(st, gp, ref, limit),
                signer=isinstance(ref, str),
                status="Reading the agent's transactions…",
            ),
        )
    rows.sort(key=(lambda r: r["amount_atomic"]) if sort_by == "amount" else (lambda r: r["timestamp"]), reverse=True)
    rows = rows[:limit]
    emit(
        st,
        {"agent": agent, "source": source, "payments": rows},
        lambda out: out.print(
            table(
                ["date", "payer", "amount", "rent payer", "reference", "signature"],
                [
                    (
                        when(r["timestamp"]),
                        r["payer"],
                        format_amount(Decimal(r["amount"]), r["token_symbol"]),
                        "the payer" if r["rent_payer"] == r["payer"] else r["rent_payer"],
                        r["reference"][:16] + "…",
                        r["signature"],
                    )
                    for r in rows
                ],
                title=f"{len(rows)} payment(s) (from the {source})",
            )
        ),
    )


async def history_chain(st: State, gp: GhostPayClient, ref: params.AgentArg, limit: int) -> list[dict[str, Any]]:
    from ghostpay.tokens import from_atomic

    events = await gp.get_payment_events(ref, limit=max(limit * 4, 50))
    rows = []
    for event in events:
        mint = await gp.get_mint(event.mint)
        rows.append(
            {
                "signature": str(event.signature),
                "slot": event.slot,
                "payer": str(event.payer),
                "rent_payer": str(event.rent_payer),
                "mint": str(event.mint),
                "token_symbol": mint_symbol(st, event.mint),
                "amount": format(from_atomic(event.amount, mint.decimals), "f"),
                "amount_atomic": event.amount,
                "reference": bytes(event.reference).hex(),
                "timestamp": event.timestamp,
                "call_number": event.total_calls,
            }
        )
    return rows


@app.command("payment-status")
def payment_status(
    ctx: typer.Context, agent: str = typer.Argument(..., help="Address, or the agent_id of yours.")
) -> None:
    """x402 earnings and call counts, and the payment wallet's balance of each accepted token.

    Example: ghost agent payment-status translator
    """
    st = state(ctx)
    ref = params.agent_ref(agent)

    async def work(gp: GhostPayClient) -> tuple[Any, Mints, Any, list[tuple[Any, Decimal]]]:
        info = await gp.get_agent(ref)
        metrics = await gp.get_metrics(info.address)
        mints = await mints_of(gp, info)
        balances = [(mints[str(t)], await gp.get_token_balance(info.payment_address, t)) for t in info.accepted_tokens]
        return info, mints, metrics, balances

    info, mints, metrics, balances = st.run(work, signer=isinstance(ref, str))
    data = {
        "agent": str(info.address),
        "x402_enabled": info.x402_enabled,
        "total_calls": info.total_calls,
        "earnings": earnings_json(st, info, mints),
        "prices": prices_json(st, info, mints),
        "successful_payments": metrics.successful_payments,
        "failed_payments": metrics.failed_payments,
        "last_payment_at": info.last_payment_at,
        "payment_address": str(info.payment_address),
        "balances": [
            {"token": str(m.address), "symbol": mint_symbol(st, m.address), "balance": b} for m, b in balances
        ],
    }
    rows = [
        ("agent", str(info.address)),
        ("x402", "enabled" if info.x402_enabled else "disabled"),
        ("price per call", prices_text(st, info, mints)),
        ("paid calls", f"{info.total_calls:,}"),
        ("earned through x402", earnings_text(st, info, mints, x402_only=True)),
        ("reported failed", f"{metrics.failed_payments:,}"),
        ("last payment", when(info.last_payment_at)),
        ("payment address", str(info.payment_address)),
    ]
    rows += [
        (f"balance {mint_symbol(st, m.address)}", format_amount(b, mint_symbol(st, m.address))) for m, b in balances
    ]
    emit(st, data, lambda out: out.print(key_value_table(rows, title=f"x402 payments to {info.name}")))
