"""`ghost webhooks add/list/remove/test`: signed webhook subscriptions to indexed events.

They live in the indexer's database (`--db`, else the default index); `ghost indexer serve` (or
`ghost indexer run --serve`) delivers them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import typer

from ghostpay.cli import params
from ghostpay.cli.context import CliError, state
from ghostpay.cli.output import done, emit, key_value_table, table

app = typer.Typer(
    help="Signed webhooks: POST indexed events (payments, work orders…) to your URL.",
    no_args_is_help=True,
    add_completion=False,
)


def _endpoint_json(e: Any, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": e.id,
        "url": e.url,
        "events": e.events.split(","),
        "agent": e.agent,
        "created_at": int(e.created_at),
        **({"deliveries": counts} if counts is not None else {}),
    }


@app.command()
def add(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="Where to POST (http:// or https://)."),
    events: str = typer.Option(
        ..., "--events", "-e", help="Event names or patterns, comma-separated: X402PaymentRecorded,WorkOrder*"
    ),
    agent: str | None = typer.Option(None, "--agent", help="Only events of this agent (address)."),
    from_start: bool = typer.Option(False, "--from-start", help="Also deliver every event already indexed."),
    allow_private: bool = typer.Option(
        False,
        "--allow-private",
        help="Let the URL reach loopback, private and link-local addresses "
        "(refused by default: the indexer would send requests inside "
        "your network).",
    ),
) -> None:
    """Subscribe URL to events; prints the signing secret (shown once: store it with your receiver).

    URLs whose host is or resolves to a loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7) or
    link-local (169.254/16, e.g. a cloud metadata service) address are refused unless --allow-private;
    the host is checked again before each delivery.

    Example: ghost webhooks add https://example.com/hooks --events X402PaymentRecorded,WorkOrder*
    """
    from ghostpay.analytics import webhooks
    from ghostpay.cli.indexed import open_index
    from ghostpay.exceptions import InvalidArgument

    st = state(ctx)
    if agent is not None:
        agent = str(params.pubkey(agent, "--agent"))
    try:
        endpoint = webhooks.add_endpoint(open_index(st), url, events, agent, from_start, allow_private)
    except InvalidArgument as exc:
        raise CliError(str(exc), 2) from None
    data = {**_endpoint_json(endpoint), "secret": endpoint.secret}
    emit(
        st,
        data,
        lambda out: out.print(
            key_value_table(
                [
                    ("id", endpoint.id),
                    ("url", endpoint.url),
                    ("events", endpoint.events),
                    ("agent", agent or "any"),
                    ("secret", endpoint.secret),
                ],
                title="[green]✔[/green] webhook added (delivered by `ghost indexer serve`; "
                "verify the GhostPay-Signature header with the secret)",
            )
        ),
    )


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Webhooks with their deliveries: pending, delivered, failed (gave up after 24 h).

    Example: ghost --db index.db webhooks list
    """
    from ghostpay.analytics import webhooks
    from ghostpay.cli.indexed import open_index

    st = state(ctx)
    engine = open_index(st)
    endpoints = webhooks.list_endpoints(engine)
    counts = webhooks.pending_for(engine, [e.id for e in endpoints])
    data = [_endpoint_json(e, counts[e.id]) for e in endpoints]
    emit(
        st,
        data,
        lambda out: out.print(
            table(
                ["id", "url", "events", "agent", "pending", "delivered", "failed"],
                [
                    (
                        d["id"],
                        d["url"],
                        ",".join(d["events"]),
                        d["agent"] or "any",
                        d["deliveries"].get("pending", 0),
                        d["deliveries"].get("delivered", 0),
                        d["deliveries"].get("failed", 0),
                    )
                    for d in data
                ],
            )
            if data
            else "no webhooks; add one with 'ghost webhooks add URL --events X402PaymentRecorded'"
        ),
    )


@app.command()
def remove(ctx: typer.Context, webhook: str = typer.Argument(..., help="The webhook's id (wh_…).")) -> None:
    """Unsubscribe; its undelivered deliveries are dropped.

    Example: ghost --db index.db webhooks remove wh_3f2a9c0d1e7b
    """
    from ghostpay.analytics import webhooks
    from ghostpay.cli.indexed import open_index

    st = state(ctx)
    webhooks.remove_endpoint(open_index(st), webhook)
    done(st, f"removed webhook {webhook}", {"removed": webhook})


@app.command()
def test(
    ctx: typer.Context,
    webhook: str = typer.Argument(..., help="The webhook's id (wh_…)."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds to wait for the answer."),
) -> None:
    """POST a signed WebhookTest event now and show the answer (exit 1 unless it is 2xx).

    Example: ghost --db index.db webhooks test wh_3f2a9c0d1e7b
    """
    import httpx

    from ghostpay.analytics import webhooks
    from ghostpay.cli.indexed import open_index

    st = state(ctx)
    engine = open_index(st)
    url = webhooks.get_endpoint(engine, webhook).url
    started = time.perf_counter()
    try:
        response = asyncio.run(webhooks.send_test(engine, webhook, timeout))
    except httpx.HTTPError as exc:
        raise CliError(f"{url}: {type(exc).__name__}: {exc or 'no answer'}; is the receiver running?") from None
    elapsed = round((time.perf_counter() - started) * 1000)
    data = {"webhook": webhook, "url": url, "status": response.status_code, "elapsed_ms": elapsed}
    if not response.is_success:
        raise CliError(f"{url} answered HTTP {response.status_code}; deliveries need a 2xx answer")
    done(st, f"{url} answered HTTP {response.status_code} in {elapsed} ms", data)
