"""`ghost x402`: sell and buy HTTP calls with x402 payments."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ghostpay.cli import params
from ghostpay.cli.context import CliError, state, unreachable_service
from ghostpay.cli.serving import KEEP_ALIVE_SECONDS, listening_socket

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

    from ghostpay.client import GhostPayClient
    from ghostpay.x402.buyer.models import FeedbackMode

app = typer.Typer(help="HTTP calls paid with x402: sell an API behind a paywall, pay for calls.", no_args_is_help=True)
DEFAULT_FACILITATOR = "http://127.0.0.1:8403"
FACILITATOR_KEY_ENV = "GHOSTPAY_FACILITATOR_KEY"


def declared_discovery(routes: list[str], *files: Path | None) -> dict[str, Any] | None:
    """The Bazaar declaration of --input-schema, --input-example, --output-schema, --output-example (None: none)."""
    if not any(files):
        return None
    from ghostpay.exceptions import InvalidArgument
    from ghostpay.x402.bazaar.declare import declaration, read_json

    names = ("input schema", "input example", "output schema", "output example")
    try:
        loaded = [None if f is None else read_json(f, name) for f, name in zip(files, names, strict=True)]
        return declaration(
            routes, input_schema=loaded[0], input_example=loaded[1], output_schema=loaded[2], output_example=loaded[3]
        )
    except InvalidArgument as exc:
        raise CliError(str(exc)) from None


@app.command()
def proxy(
    ctx: typer.Context,
    agent: str = typer.Option(
        ...,
        "--agent",
        "-a",
        help="The agent whose on-chain price the calls cost (address, or agent_id of your wallet's agent).",
    ),
    upstream: str = typer.Option(..., "--upstream", help="The HTTP service to sell, e.g. http://127.0.0.1:9000."),
    route: list[str] | None = typer.Option(
        None, "--route", "-r", help="A priced route, 'METHOD /path' or '/path/*' (repeat it); default: every route."
    ),
    facilitator: str = typer.Option(
        DEFAULT_FACILITATOR,
        "--facilitator",
        help="The x402 facilitator's URL; several comma-separated (replicas on one PostgreSQL): each call goes "
        "to the next in turn, and to another when one does not answer.",
    ),
    facilitator_key_file: Path | None = typer.Option(
        None,
        "--facilitator-key-file",
        help="Your seller key "
        "at the facilitator (ghost facilitator keys add): this "
        "file's first line, or $GHOSTPAY_FACILITATOR_KEY; each "
        "request to it is signed with it.",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8402, help="Port to listen on."),
    create_payee_accounts: bool = typer.Option(
        False,
        "--create-payee-accounts",
        help="Create the payment address's missing token accounts (paid by -k) instead of refusing to start.",
    ),
    max_timeout: int = typer.Option(60, min=5, help="Seconds a buyer has to pay (maxTimeoutSeconds)."),
    stats_route: str | None = typer.Option(
        None,
        help="Serve the paid calls' statuses and latencies as JSON at this path, e.g. /_x402/stats (not forwarded).",
    ),
    description: str | None = typer.Option(
        None,
        "--description",
        help="What a paid call buys, in the 402 (default: the agent's on-chain description, followed live).",
    ),
    mime_type: str = typer.Option(
        "application/json", "--mime-type", help="The media type of the paid answer, in the 402."
    ),
    paywall_title: str = typer.Option(
        "",
        "--paywall-title",
        help="The title of the paywall page a browser gets instead of the JSON 402 (the official x402 "
        "Solana paywall; default: the agent's on-chain name, which the page always shows).",
    ),
    input_schema: Path | None = typer.Option(
        None,
        "--input-schema",
        help="A JSON Schema file of the routes' input (query parameters, or the JSON body of POST/PUT/PATCH "
        "routes): declared in the 402 as the x402 Bazaar extension, catalogued by facilitators when paid.",
    ),
    input_example: Path | None = typer.Option(
        None, "--input-example", help="A JSON file: an example input (query parameters or body), declared likewise."
    ),
    output_schema: Path | None = typer.Option(
        None, "--output-schema", help="A JSON Schema file of the paid answer (with --output-example)."
    ),
    output_example: Path | None = typer.Option(
        None, "--output-example", help="A JSON file: an example paid answer, declared likewise."
    ),
    idempotency: bool = typer.Option(
        True,
        "--idempotency/--no-idempotency",
        help="Declare payment identifiers in the 402s and answer a paid call retried with the same identifier "
        "from a cache, without charging it again.",
    ),
    idempotency_db: Path | None = typer.Option(
        None,
        "--idempotency-db",
        help="The cache of paid answers (SQLite); default: x402-idempotency/<agent>.sqlite3 in 'ghost path'.",
    ),
    session: str | None = typer.Option(
        None,
        "--session",
        help="Sessions (Sign-In-With-Solana, the x402 sign-in-with-x extension): a buyer who paid for a route "
        "comes back for this long after its payment (3600, 30m, 1h, 7d) without paying, by signing the 402's "
        "challenge with the key that paid. Default: no sessions.",
    ),
    session_origin: str | None = typer.Option(
        None,
        "--session-origin",
        help="The origin buyers call (https://api.example) that session challenges are bound to, when the "
        "proxy is reached through another address; default: the address it listens on.",
    ),
    session_db: Path | None = typer.Option(
        None,
        "--session-db",
        help="Payments and used challenges of sessions (SQLite); default: x402-sessions/<agent>.sqlite3 in "
        "'ghost path'.",
    ),
) -> None:
    """Put the agent's on-chain x402 price in front of any HTTP service.

    Calls to a priced route answer 402 until paid; paid ones go to the upstream, whose answer streams
    back with PAYMENT-RESPONSE. A price change on chain applies to the next 402. The upstream sees the
    payer in X-GhostPay-Payer (also -Amount, -Mint, -Verified). A browser (Accept: text/html) gets the
    official x402 Solana paywall page instead of the JSON 402, with the agent's name and price.
    GET /.well-known/agent-card.json is the agent's A2A Agent Card, and priced POST routes take A2A
    JSON-RPC calls paid with the a2a-x402 extension (docs/a2a.md).

    With --session 1h a buyer who paid for a route signs in instead of paying again for an hour after its
    payment ('ghost x402 call' and x402_http do it by themselves).

    Example:  ghost x402 proxy --agent translator --upstream http://127.0.0.1:9000 --route 'POST /translate'
    """
    ref = params.agent_ref(agent)
    sessions = _session_settings(session, session_origin, session_db)
    if not upstream.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{upstream!r} is not an http(s) URL", param_hint="--upstream")
    st = state(ctx)
    import uvicorn

    from ghostpay.cluster import ws_url_for
    from ghostpay.keypairs import load_keypair
    from ghostpay.x402.proxy import ProxySettings, create_proxy_app
    from ghostpay.x402.seller_offer import PayeeAccountsMissing, PaywallError

    path = st.keypair_path()
    keypair = load_keypair(path) if path.exists() else None
    if isinstance(ref, str) and keypair is None:  # SellerSettings derives an agent_id's address from its owner
        raise CliError(
            f"agent {ref!r} is an agent_id: it needs your keypair ({path} not found); pass the agent's address instead"
        )
    if create_payee_accounts and keypair is None:
        raise CliError(f"--create-payee-accounts pays with your keypair, and {path} is not found")
    from ghostpay.x402.idempotency import IdempotencySettings
    from ghostpay.x402.seller import SellerSettings

    discovery = declared_discovery(route or [], input_schema, input_example, output_schema, output_example)
    seller = SellerSettings(
        ref,
        st.rpc_url,
        facilitator,
        tuple(route or ("*",)),
        ws_url_for(st.rpc_url),
        max_timeout_seconds=max_timeout,
        payee_accounts="create" if create_payee_accounts else "check",
        keypair=keypair,
        stats_route=stats_route,
        description=description or "",
        mime_type=mime_type,
        facilitator_key=params.bearer_token(facilitator_key_file, FACILITATOR_KEY_ENV),
        paywall_title=paywall_title,
        discovery=discovery,
        idempotency=IdempotencySettings(idempotency_db) if idempotency else None,
        session=sessions,
    )
    app_ = create_proxy_app(ProxySettings(upstream, seller))
    server = uvicorn.Server(
        uvicorn.Config(
            app_,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            ws="none",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    )
    url = f"http://{host}:{port}"

    sock = listening_socket(host, port)

    async def main() -> None:
        try:
            await app_.seller.start()
        except PayeeAccountsMissing as exc:
            from ghostpay.cli.output import mint_symbol

            tokens = ", ".join(f"{mint_symbol(st, m)} ({m})" for m in exc.mints)
            raise CliError(
                f"the payment address {exc.payment_address} has no token account for {tokens}, so "
                "buyers' payments would fail; pass --create-payee-accounts to create it (paid by -k), "
                "or create it yourself"
            ) from None
        except PaywallError as exc:
            raise CliError(str(exc)) from None
        offer = app_.seller.watch.offer
        prices = [
            {"mint": str(p.mint.address), "amount": p.amount, "decimals": p.mint.decimals}
            for p in (offer.prices if offer else ())
        ]
        announce = {
            "url": url,
            "agent": str(seller.agent),
            "upstream": upstream,
            "routes": list(seller.routes),
            "network": app_.seller.network.caip2,
            "facilitator": facilitator,
            "prices": prices,
        }
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if server.started:
            if st.json:
                print(json.dumps({"running": True, **announce}), flush=True)
            else:
                unavailable = offer.unavailable if offer else None
                print(
                    f"x402 proxy on {url} → {upstream} for agent {seller.agent} ({', '.join(seller.routes)})"
                    + (f"; note: {unavailable}, calls answer 503 until that changes" if unavailable else "")
                    + "; Ctrl-C stops it",
                    flush=True,
                )
        await serving

    # The event loop uvicorn would pick for itself (uvloop when installed), as `ghost facilitator start` gets.
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(main())


def _session_settings(period: str | None, origin: str | None, db: Path | None) -> Any:
    """SessionSettings from --session, --session-origin and --session-db (None without --session)."""
    if period is None:
        if origin is not None or db is not None:
            raise typer.BadParameter("needs --session", param_hint="--session-origin/--session-db")
        return None
    from ghostpay.x402.sessions import SessionSettings

    seconds = params.duration(period, "--session")
    if seconds <= 0:
        raise typer.BadParameter("a session lasts at least a second", param_hint="--session")
    try:
        return SessionSettings(seconds, db, origin)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--session-origin") from None


# buying -------------------------------------------------------------------------------------------------

METHOD_OPTION = typer.Option("GET", "--request", "-X", help="HTTP method.")
HEADER_OPTION = typer.Option(None, "--header", "-H", help="A request header 'Name: value' (repeat it).")
DATA_OPTION = typer.Option(None, "--data", "-d", help="The request body; @FILE reads it from a file.")
JSON_OPTION = typer.Option(None, "--json", help="A JSON request body (sets Content-Type: application/json).")


def _request(headers: list[str] | None, data: str | None, json_body: str | None) -> dict:
    """httpx request arguments from curl-like options."""
    if data is not None and json_body is not None:
        raise typer.BadParameter("give --data or --json, not both")
    parsed = {}
    for header in headers or ():
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise typer.BadParameter(f"a header is 'Name: value', not {header!r}", param_hint="-H/--header")
        parsed[name.strip()] = value.strip()
    request: dict = {"headers": parsed}
    if json_body is not None:
        try:
            request["json"] = json.loads(json_body)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--json") from None
    elif data is not None:
        if data.startswith("@"):
            try:
                request["content"] = Path(data[1:]).read_bytes()
            except OSError as exc:
                raise CliError(f"cannot read {data[1:]}: {exc.strerror}") from None
        else:
            request["content"] = data.encode()
    return request


CALL_JOURNAL = "x402_call"  # `ghost x402 call`'s journal entries: the payment identifier of a call in flight


def _body_hash(request: dict) -> str:
    """The request body's sha256 (a --json body as httpx sends it), naming the call in the journal."""
    import hashlib

    body = request.get("content", b"")
    if "json" in request:
        body = json.dumps(request["json"]).encode()
    return hashlib.sha256(body).hexdigest()


def _paid_request(exc: Exception) -> bool:
    """Whether a payment for the failed request left the process (the buyer marks the request)."""
    from ghostpay.x402.buyer import PAYMENT_SENT

    try:
        return bool(exc.request.extensions.get(PAYMENT_SENT))  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # raised without its request
        return False


def _url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{url!r} is not an http(s) URL", param_hint="URL")
    return url


@app.command()
def call(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="The URL to call."),
    method: str = METHOD_OPTION,
    header: list[str] | None = HEADER_OPTION,
    data: str | None = DATA_OPTION,
    json_body: str | None = JSON_OPTION,
    max_price: str | None = typer.Option(
        None, "--max-price", help="Pay up to this (whole tokens) without asking; never more."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        "-t",
        help="Pay with this mint (address or label); default: the first accepted mint the wallet holds.",
    ),
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        help="Pay without asking, x402.confirm_above included (the other spending guards still apply).",
    ),
    feedback: str = typer.Option(
        "off",
        "--feedback",
        help="auto: rate a verified paid call on chain from its status and response time; off: do not.",
    ),
    include: bool = typer.Option(
        False, "--include", "-i", help="Print the response's status line and headers before its body, as curl -i."
    ),
    idempotency_key: str | None = typer.Option(
        None,
        "--idempotency-key",
        help="The payment identifier sent to a seller that declares it (16-128 of A-Z a-z 0-9 _ -): run the call "
        "again with the same key and the seller answers it from its cache instead of charging it again; "
        "default: a new one per invocation, journalled: after a failed connection the same command reuses it.",
    ),
    a2a: bool = typer.Option(
        False,
        "--a2a",
        help="URL is an A2A agent (its card at /.well-known/agent-card.json): send --json as a data part or --data "
        "as text in an A2A message and pay its a2a-x402 price; the answer is the task's artifact.",
    ),
) -> None:
    """Call a URL like curl, paying its x402 price (HTTP 402) from your wallet.

    The 402's seller, price and mint are shown and you are asked before paying, unless --yes or the
    price is within --max-price. The x402.* spending guards of the config file always apply
    ('ghost x402 spending'). Prints the body; with --output json: status, headers, body and the
    payment record. Exit status 1 when the answer is an HTTP error.

    Example:  ghost x402 call http://127.0.0.1:8402/translate -X POST --json '{"text": "hi"}' --max-price 0.05
    """
    st = state(ctx)
    url = _url(url)
    request = _request(header, data, json_body)
    cap = params.amount(max_price, "--max-price", allow_zero=True) if max_price is not None else None
    modes: tuple[FeedbackMode, ...] = ("off", "auto")
    mode = params.choice(feedback, modes, "--feedback")

    from ghostpay.cli.guards import spending_guards
    from ghostpay.cli.output import emit, format_amount, mint_symbol, span
    from ghostpay.x402.buyer import payment_record, session_call

    # within --max-price (or with --yes) nobody is asked; otherwise every payment is confirmed
    confirm_above = None if yes or cap is not None else Decimal(0)
    guards = spending_guards(st, confirm_above=confirm_above, confirmed=yes)
    mint = params.token(st, token, "--token") if token else None
    from x402.extensions.payment_identifier import generate_payment_id, is_valid_payment_id

    if idempotency_key is not None and not is_valid_payment_id(idempotency_key):
        raise typer.BadParameter(
            "16 to 128 characters among letters, digits, '-' and '_'", param_hint="--idempotency-key"
        )
    if a2a:
        _call_a2a(st, url, request, guards, cap, mint)
        return

    async def work(gp: GhostPayClient) -> httpx.Response:
        from ghostpay.cli import journal

        command = {
            "chain": await gp.genesis_hash(),
            "wallet": str(gp.wallet),
            "method": method.upper(),
            "url": url,
            "body": _body_hash(request),
        }
        with journal.running(CALL_JOURNAL, command):
            return await call_once(gp, command)

    async def call_once(gp: GhostPayClient, command: dict[str, Any]) -> httpx.Response:
        import httpx

        from ghostpay.cli import journal
        from ghostpay.cli.guards import guarded_wallet
        from ghostpay.x402 import x402_http

        entry = journal.pending(CALL_JOURNAL, command)
        key = idempotency_key or (entry.idempotency_key if entry else None) or generate_payment_id()
        if entry is None or entry.idempotency_key != key:
            entry = journal.open_entry(CALL_JOURNAL, command, idempotency_key=key)
        async with x402_http(
            gp,
            guards=guarded_wallet(st, guards),
            max_price=cap,
            tokens=[mint] if mint else (),
            feedback=mode,
            idempotency_key=key,
        ) as http:
            try:
                response = await http.request(method.upper(), url, **request)
            except httpx.TransportError as exc:
                if not _paid_request(exc):
                    entry.close()
                    raise
                # the payment was sent and may have settled: the entry stays for the rerun
                raise CliError(
                    f"{unreachable_service(exc) or repr(exc)}; a payment was sent and its outcome is unknown: run "
                    f"the same command again, it sends the same payment identifier ({key}) and a seller that "
                    "declares payment identifiers answers from its cache instead of charging again"
                ) from None
            except BaseException:
                entry.close()  # refused before paying, or failed with a known outcome
                raise
        entry.close()
        return response

    response = st.run(work, status="Calling…")
    record = payment_record(response)
    on_session = session_call(response)
    body = response.text
    try:
        shown_body = response.json() if st.json else body
    except ValueError:
        shown_body = body
    data_out = {
        "status": response.status_code,
        "url": url,
        "headers": dict(response.headers),
        "body": shown_body,
        "payment": record.to_json() if record else None,
        "session": on_session.to_json() if on_session else None,
    }

    def render(out: Console) -> None:
        if record is not None:
            paid = format_amount(record.amount, mint_symbol(st, record.mint))
            state_text = f"settled {record.signature}" if record.settled else f"not settled ({record.error})"
            if record.replayed:
                state_text = (
                    f"answered again from the seller's cache (key {record.idempotency_key}), paid by {record.signature}"
                )
            typer.echo(
                f"paid {paid} to {record.seller}: {state_text}; HTTP {record.status} in "
                f"{record.latency_ms} ms" + (", recorded on chain" if record.verified else ""),
                err=True,
            )
        if on_session is not None:
            typer.echo(
                f"served on a session: nothing paid (signed in as {on_session.payer}, who paid for this route "
                f"within the seller's {span(round(on_session.period_seconds))}"
                + (f", by {on_session.paid_by})" if on_session.paid_by else ")"),
                err=True,
            )
        if include:
            typer.echo(f"{response.http_version} {response.status_code} {response.reason_phrase}".rstrip())
            for name, value in response.headers.multi_items():
                typer.echo(f"{name}: {value}")
            typer.echo("")
        typer.echo(body, nl=not body.endswith("\n"))

    emit(st, data_out, render)
    if response.status_code >= 400:
        if not st.json:
            typer.echo(f"error: HTTP {response.status_code} from {url}", err=True)
        raise typer.Exit(1)


def _call_a2a(st: Any, url: str, request: dict, guards: Any, cap: Decimal | None, mint: Any) -> None:
    """`ghost x402 call --a2a`: one paid A2A message (a2a-x402), its answer printed like an HTTP body's."""
    from ghostpay.cli.guards import guarded_wallet
    from ghostpay.cli.output import emit, format_amount, mint_symbol
    from ghostpay.x402.a2a.buyer import A2ABuyer, A2ACall

    if "json" in request:
        content: str | dict[str, Any] = request["json"]
        if not isinstance(content, dict):
            raise typer.BadParameter("an A2A data part is a JSON object", param_hint="--json")
    elif "content" in request:
        content = request["content"].decode("utf-8", "replace")
    else:
        raise typer.BadParameter("an A2A message needs --json (a data part) or --data (text)", param_hint="--a2a")

    async def work(gp: GhostPayClient) -> A2ACall:
        async with A2ABuyer(
            gp, guards=guarded_wallet(st, guards), max_price=cap, tokens=[mint] if mint else ()
        ) as buyer:
            return await buyer.call(url, content)

    paid = st.run(work, status="Calling…")

    def render(out: Console) -> None:
        record = paid.payment
        if record is not None:
            paid_text = format_amount(record.amount, mint_symbol(st, record.mint))
            typer.echo(
                f"paid {paid_text} to {record.seller}: settled {record.signature}; task {paid.task.id} completed"
                + (", recorded on chain" if record.verified else ""),
                err=True,
            )
        answer = paid.answer
        typer.echo(answer if isinstance(answer, str) else json.dumps(answer))

    emit(st, paid.to_json(), render)


@app.command()
def quote(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="The URL to ask."),
    method: str = METHOD_OPTION,
    header: list[str] | None = HEADER_OPTION,
    data: str | None = DATA_OPTION,
    json_body: str | None = JSON_OPTION,
) -> None:
    """Show what a URL asks to be paid (its 402 requirements, decoded), without paying.

    Example:  ghost x402 quote http://127.0.0.1:8402/translate -X POST
    """
    st = state(ctx)
    url = _url(url)
    request = _request(header, data, json_body)
    from ghostpay.cli.output import emit, format_amount, key_value_table, mint_symbol
    from ghostpay.x402.buyer import fetch_quotes

    status, quotes = st.run(lambda gp: fetch_quotes(gp, method.upper(), url, **request), signer=False, status="Asking…")
    rows: list[dict[str, Any]] = [
        {
            "x402_version": q.x402_version,
            "scheme": q.scheme,
            "network": q.network,
            "mint": q.mint,
            "symbol": mint_symbol(st, q.mint),
            "amount": q.amount,
            "amount_atomic": q.amount_atomic,
            "decimals": q.decimals,
            "pay_to": q.pay_to,
            "agent": q.agent,
            "fee_payer": q.fee_payer,
            "resource": q.resource,
            "max_timeout_seconds": q.max_timeout_seconds,
            "assumed": list(q.assumed),
        }
        for q in quotes
    ]

    def render(out: Console) -> None:
        if status != 402:
            out.print(f"{url} answered HTTP {status}: it asks for no payment")
            return
        out.print(f"{url} asks for one of:")
        for n, (r, q) in enumerate(zip(rows, quotes, strict=True), 1):
            price = (
                format_amount(r["amount"], r["symbol"])
                if r["amount"] is not None
                else f"{r['amount_atomic']} atomic units (the mint cannot be read)"
            )
            out.print(
                key_value_table(
                    [("price", price), ("mint", r["mint"]), ("pay to", r["pay_to"])]
                    + ([("agent", r["agent"])] if r["agent"] else [])
                    + [
                        ("network", r["network"]),
                        ("x402", f"v{r['x402_version']} {r['scheme']}"),
                        ("fee payer", q.fee_payer or "(none: cannot be paid)"),
                        ("resource", q.resource),
                        ("pay within", f"{q.max_timeout_seconds} s"),
                    ]
                    + ([("assumed", ", ".join(q.assumed))] if q.assumed else []),
                    title=f"option {n}",
                )
            )

    emit(st, {"url": url, "status": status, "requirements": rows}, render)


@app.command()
def discover(
    ctx: typer.Context,
    query: str = typer.Argument(
        "",
        help="Search words, and GhostPay's terms: capability:NAME, max_price:MINT=ATOMIC, min_reputation:N, "
        "sort:reputation|price. Empty: list every resource.",
    ),
    facilitator: str = typer.Option(
        DEFAULT_FACILITATOR,
        "--facilitator",
        help="The facilitator whose x402 Bazaar to ask (or a `ghost indexer serve` URL: its index's Bazaar).",
    ),
    limit: int = typer.Option(20, "--limit", min=1, max=100, help="At most this many resources."),
) -> None:
    """Find paid services in a facilitator's x402 Bazaar: every x402 agent on chain with its prices and the
    evidence to rank it by (reputation, verified paid calls, payers), asked with the official Bazaar client.

    Example:  ghost x402 discover 'capability:summarize sort:reputation' --facilitator http://127.0.0.1:8403
    """
    st = state(ctx)
    import httpx
    from solders.pubkey import Pubkey
    from x402.extensions.bazaar import ListDiscoveryResourcesParams, SearchDiscoveryResourcesParams, with_bazaar
    from x402.http import FacilitatorConfig
    from x402.http.facilitator_client import HTTPFacilitatorClientSync

    from ghostpay.cli.output import emit, format_amount, mint_symbol, table
    from ghostpay.tokens import from_atomic
    from ghostpay.x402.bazaar.listing import EVIDENCE_KEY

    # with_bazaar is annotated for the async client, but its calls are blocking: the sync client is the one that works
    client = HTTPFacilitatorClientSync(FacilitatorConfig(url=_url(facilitator).rstrip("/")))
    bazaar = with_bazaar(client)  # type: ignore[arg-type]
    try:
        if query:
            search = SearchDiscoveryResourcesParams(query=query, limit=limit)
            items = bazaar.extensions.bazaar.search(search).resources
        else:
            items = bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(limit=limit)).items
    except (ValueError, httpx.HTTPError) as exc:
        raise CliError(f"the Bazaar of {facilitator} did not answer: {str(exc)[:300]}") from None
    mints = {Pubkey.from_string(a["asset"]) for item in items for a in item.accepts or []}
    decimals = {str(m): info.decimals for m, info in st.run(lambda gp: gp.get_mints(mints), signer=False).items()}
    found = [item.to_dict() for item in items]

    def price(accept: dict[str, Any]) -> str:
        amount = from_atomic(int(accept["amount"]), decimals[accept["asset"]])
        return format_amount(amount, mint_symbol(st, accept["asset"]))

    def render(out: Console) -> None:
        if not found:
            out.print(f"nothing in the Bazaar of {facilitator} matches")
            return
        rows = []
        for item in found:
            evidence = (item.get("extensions") or {}).get(EVIDENCE_KEY) or {}
            reputation = evidence.get("reputation") or {}
            rows.append(
                (
                    evidence.get("agentId", ""),
                    item["resource"],
                    ", ".join(price(a) for a in item["accepts"]),
                    f"{reputation.get('score', '')} {reputation.get('tier', '')}".strip(),
                    evidence.get("verifiedPaidCalls", ""),
                    evidence.get("payers", ""),
                )
            )
        out.print(table(["agent", "resource", "price a call", "reputation", "paid calls", "payers"], rows))

    emit(st, {"facilitator": facilitator, "query": query, "items": found}, render)


@app.command()
def spending(
    ctx: typer.Context,
    recent: int = typer.Option(10, "--recent", min=0, help="How many of the latest payments to list."),
) -> None:
    """Show the spending guards (the config file's x402.* settings), what your wallet spent and what is left.

    Budgets count every payment sent from this wallet by any ghost command or SDK client with guards,
    in every process, from the spend ledger: the data folder's ('ghost path'), or x402.ledger (GHOST_X402_LEDGER).

    Example:  ghost config set x402.daily_budget 5 && ghost x402 spending
    """
    st = state(ctx)
    from ghostpay.cli.guards import guard_settings, guarded_wallet, spending_guards
    from ghostpay.cli.output import emit, format_amount, key_value_table, mint_symbol, table, whole
    from ghostpay.keypairs import load_keypair
    from ghostpay.spending import WINDOWS, spending_report

    path = st.keypair_path()
    if not path.exists():
        raise CliError(f"keypair file {path} not found; pass -k/--keypair FILE")
    wallet = str(load_keypair(path).pubkey())
    guards = spending_guards(st)
    guarded = guarded_wallet(st, guards)
    if guards.named_tokens():  # budgets by label: those of this cluster's mints
        from ghostpay.cli.guards import resolve_labels

        resolve_labels(st, guards)
        guarded.on_cluster(st.labels())
    ledger = guarded.ledger
    mints: list[dict[str, Any]] = [
        {
            "mint": m.mint,
            "symbol": mint_symbol(st, m.mint),
            "decimals": m.decimals,
            "per_call": m.per_call,
            **{
                window: {"spent": w.spent, "budget": w.budget, "remaining": w.remaining}
                for window, w in m.windows.items()
            },
        }
        for m in spending_report(guarded, wallet)
    ]
    calls = ledger.calls_last_minute(wallet)
    latest = [
        {
            "id": r["id"],
            "mint": r["mint"],
            "amount": whole(r["amount"], r["decimals"]),
            "seller": r["seller"],
            "state": r["state"],
            "signature": r["signature"],
            "url": r["url"],
            "at": r["created_at"],
        }
        for r in ledger.entries(wallet, recent)
    ]
    data = {
        "wallet": wallet,
        "ledger": ledger.location,
        "guards": guard_settings(st),
        "mints": mints,
        "calls_last_minute": calls,
        "calls_per_minute": guards.calls_per_minute,
        "recent": latest,
    }

    def render(out: Console) -> None:
        settings = guard_settings(st)
        out.print(
            key_value_table(
                [(f"x402.{k}", v) for k, v in settings.items()]
                or [("guards", "none set: 'ghost config set x402.daily_budget 5' sets one")],
                title=f"Spending guards of {wallet}",
            )
        )

        def cell(value: Decimal | None, symbol: str) -> str:
            return "—" if value is None else format_amount(value, symbol)

        out.print(
            table(
                ["mint", "hour: spent / budget", "day: spent / budget", "total: spent / budget", "day: left"],
                [
                    (
                        m["symbol"],
                        *(f"{cell(m[w]['spent'], '')} / {cell(m[w]['budget'], '')}" for w in WINDOWS),
                        cell(m["day"]["remaining"], m["symbol"]),
                    )
                    for m in mints
                ],
                title="Spent (rolling hour and day)",
            )
        )
        limit = guards.calls_per_minute
        out.print(f"paid calls in the last minute: {calls}" + (f" of {limit}" if limit else ""))
        if latest:
            out.print(
                table(
                    ["amount", "seller", "state", "signature"],
                    [
                        (
                            format_amount(e["amount"], mint_symbol(st, e["mint"])),
                            e["seller"],
                            e["state"],
                            e["signature"] or "",
                        )
                        for e in latest
                    ],
                    title="Latest payments",
                )
            )

    emit(st, data, render)
