"""`ghost indexer serve` (and `ghost indexer run --serve`): the HTTP API, dashboard, live feed, Prometheus
metrics and webhook deliveries over the indexer's database. Heavy imports happen inside the functions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from ghostpay.cli import params

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
HOST_HELP = "Interface to listen on (0.0.0.0: every interface)."
PORT_HELP = "Port to listen on (0: any free port)."


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def bind_or_fail(host: str, port: int) -> Any:
    """The server's listening socket, or the one-line error naming the busy port."""
    from ghostpay.sockets import listening_socket

    try:
        return listening_socket(host, port)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another port with --port")


TOKEN_ENV = "GHOST_API_TOKEN"
TOKEN_HELP = (
    "Require 'Authorization: Bearer TOKEN' (or ?token=TOKEN) on the API, feed and metrics, TOKEN being this "
    "file's first line (or $GHOST_API_TOKEN); the dashboard is then opened as /?token=TOKEN."
)


def run_server(
    config: Any,
    host: str,
    port: int,
    with_indexer: bool,
    webhooks: bool,
    json_output: bool,
    sock: Any = None,
    token: str | None = None,
    poll_feed: bool = False,
) -> None:
    """Serve `config.db_url` (following the chain too when `with_indexer`) until SIGINT / SIGTERM, on `sock`
    when the caller bound it already."""
    import httpx
    import websockets

    from ghostpay.analytics.api import ApiSettings
    from ghostpay.analytics.server import serve
    from ghostpay.indexer.guard import GuardError
    from ghostpay.indexer.source import SourceError

    sock = sock if sock is not None else bind_or_fail(host, port)

    def ready(url: str) -> None:
        if json_output:
            print(
                json.dumps({"url": url, "dashboard": url, "docs": url + "docs", "metrics": url + "metrics"}), flush=True
            )
        else:
            typer.echo(
                f"GhostPay dashboard: {url}  (API docs: {url}docs, Prometheus: {url}metrics); Ctrl-C stops", err=True
            )

    settings = ApiSettings(config.db_url, rpc_url=config.http_url, webhooks=webhooks, token=token, poll_feed=poll_feed)
    try:
        asyncio.run(serve(settings, sock, config if with_indexer else None, ready))
    except GuardError as exc:  # another chain's database, or another indexer writing it
        _fail(str(exc))
    except (httpx.HTTPError, OSError, websockets.WebSocketException, SourceError) as exc:
        _fail(f"{config.http_url}: {type(exc).__name__}: {exc}")
    finally:
        sock.close()


def serve_command(
    url: str = typer.Option(
        "http://127.0.0.1:8899",
        "--url",
        "-u",
        help="RPC URL or moniker, for mint decimals and the lag (default: localnet).",
    ),
    db: str | None = typer.Option(
        None, "--db", help="sqlite:///path.db or postgresql://… (default: indexer.db in the ghost data folder)."
    ),
    host: str = typer.Option(DEFAULT_HOST, "--host", help=HOST_HELP),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=0, max=65535, help=PORT_HELP),
    webhooks: bool = typer.Option(
        True, "--webhooks/--no-webhooks", help="Deliver webhooks from this process (`ghost webhooks add`)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the URLs as one JSON line when ready."),
    log_level: str = typer.Option("warning", "--log-level", help="debug, info, warning or error."),
    token_file: Path | None = typer.Option(None, "--token-file", help=TOKEN_HELP),
    poll_feed: bool = typer.Option(
        False,
        "--poll-feed",
        help="PostgreSQL: look for new events every 0.5 s for the live feed rather than LISTEN for the indexer's "
        "NOTIFY (needed behind a pooler in transaction mode, e.g. PgBouncer, which does not pass LISTEN). "
        "SQLite always polls.",
    ),
) -> None:
    """Serve the index over HTTP: dashboard at /, JSON API under /api, docs at /docs, Prometheus at /metrics.

    Read-only on the index (run `ghost indexer run` beside it, or use `ghost indexer run --serve`).

    Example: ghost --db index.db indexer serve --port 8080, then open http://127.0.0.1:8080/
    """
    from ghostpay.cli.indexing import index_engine, indexer_config, setup_logging

    setup_logging(log_level)
    config = indexer_config(url, None, db)
    index_engine(config.db_url)
    token = params.bearer_token(token_file, TOKEN_ENV)
    run_server(config, host, port, False, webhooks, json_output, token=token, poll_feed=poll_feed)
