"""`ghost indexer`: run the event indexer, show its status, verify it against the chain.

Heavy modules (sqlmodel, anchorpy bindings) are imported inside the commands so `ghost --help`
stays fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict
from typing import Any, Optional

import typer

from ghostpay.cli import serve as serve_cli

app = typer.Typer(help="Index GhostPay events into SQLite or PostgreSQL; status; verify against the chain.",
                  no_args_is_help=True, add_completion=False)

LOCALNET_URL = "http://127.0.0.1:8899"
URL_HELP = "RPC URL or moniker (localnet, devnet, mainnet-beta); the websocket URL is derived."
DB_HELP = "sqlite:///path.db or postgresql://user@host/db (default: indexer.db in the ghost data folder)."


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _default_db() -> str:
    from ghostpay.paths import data_dir

    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'indexer.db'}"


def _config(url: str, ws_url: Optional[str], db: Optional[str], batch_size: int = 200) -> Any:
    from ghostpay.cluster import resolve
    from ghostpay.exceptions import InvalidArgument
    from ghostpay.indexer.service import IndexerConfig

    try:
        cluster = resolve(url, ws_url)
    except InvalidArgument as exc:
        _fail(str(exc))
    return IndexerConfig(cluster.http_url, cluster.ws_url, db or _default_db(), batch_size=batch_size)


def _engine(db: str) -> Any:
    from sqlalchemy.exc import ArgumentError, OperationalError

    from ghostpay.indexer.models import connect

    try:
        return connect(db)
    except (ArgumentError, OperationalError, RuntimeError, ModuleNotFoundError) as exc:
        _fail(f"database {db}: {str(exc).splitlines()[0]}")


def _network_errors() -> tuple[type[BaseException], ...]:
    import httpx
    import websockets

    from ghostpay.indexer.source import SourceError

    return (httpx.HTTPError, OSError, websockets.WebSocketException, SourceError)


def _setup_logging(level: str) -> None:
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        _fail(f"--log-level must be debug, info, warning or error, not {level!r}")
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if numeric > logging.DEBUG:  # one line per HTTP request is noise at info
        logging.getLogger("httpx").setLevel(logging.WARNING)


@app.command()
def run(
    url: str = typer.Option(LOCALNET_URL, "--url", "-u", help=URL_HELP),
    ws_url: Optional[str] = typer.Option(None, "--ws-url", help="Websocket URL (default: derived from --url)."),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    once: bool = typer.Option(False, "--once", help="Back-fill to the chain's tip and exit."),
    batch_size: int = typer.Option(200, "--batch-size", min=1, help="Transactions per database commit."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
    with_server: bool = typer.Option(False, "--serve", help="Also serve the API and dashboard (as `indexer serve`)."),
    host: str = typer.Option(serve_cli.DEFAULT_HOST, "--host", help="With --serve: " + serve_cli.HOST_HELP),
    port: int = typer.Option(serve_cli.DEFAULT_PORT, "--port", min=0, max=65535,
                             help="With --serve: " + serve_cli.PORT_HELP),
) -> None:
    """Back-fill every GhostPay event after the cursor, then follow logsSubscribe (until SIGTERM).

    Example: ghost --db index.db indexer run --serve   (index and serve the dashboard in one process)
    """
    _setup_logging(log_level)
    config = _config(url, ws_url, db, batch_size)
    _engine(config.db_url)  # a bad URL is one clean line before anything starts
    if with_server:
        if once:
            _fail("--serve keeps running; it cannot go with --once")
        serve_cli.run_server(config, host, port, True, True, False)
        return
    from ghostpay.indexer.service import serve

    try:
        asyncio.run(serve(config, once=once))
    except _network_errors() as exc:
        _fail(f"{config.http_url}: {type(exc).__name__}: {exc}")


@app.command()
def status(
    url: str = typer.Option(LOCALNET_URL, "--url", "-u", help=URL_HELP),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The cursor's slot, the lag behind the chain, row counts and skipped input."""
    from sqlmodel import Session

    from ghostpay.indexer.queries import index_status
    from ghostpay.indexer.source import RpcSource

    config = _config(url, None, db)
    with Session(_engine(config.db_url)) as session:
        state = index_status(session)

    async def chain_slot() -> Optional[int]:
        rpc = RpcSource(config.http_url)
        try:
            return await rpc.slot()
        except _network_errors():  # status still shows the database when the node is down
            return None
        finally:
            await rpc.close()

    slot = asyncio.run(chain_slot())
    lag = slot - state.cursor_slot if slot is not None and state.cursor_slot is not None else None
    out = {"chain_slot": slot, "lag_slots": lag, **asdict(state)}
    if json_output:
        print(json.dumps(out))
        return
    typer.echo(f"cursor slot     {state.cursor_slot if state.cursor_slot is not None else '(empty)'}")
    typer.echo(f"chain slot      {slot if slot is not None else '(unreachable)'}")
    typer.echo(f"lag             {lag if lag is not None else '-'} slots")
    typer.echo(f"schema version  {state.schema_version}")
    for table, count in state.rows.items():
        typer.echo(f"{table:<16}{count:>10,}")
    for name, count in sorted(state.skipped.items()):
        typer.echo(f"skipped {name:<20}{count:>6,}")


@app.command()
def verify(
    url: str = typer.Option(LOCALNET_URL, "--url", "-u", help=URL_HELP),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Compare every indexed agent's counters and recomputed score with its on-chain accounts; exit 1 on any difference."""
    from ghostpay.indexer.source import RpcSource
    from ghostpay.indexer.verify import verify as verify_index

    config = _config(url, None, db)
    engine = _engine(config.db_url)

    async def check() -> Any:
        rpc = RpcSource(config.http_url)
        try:
            return await verify_index(engine, rpc)
        finally:
            await rpc.close()

    try:
        report = asyncio.run(check())
    except _network_errors() as exc:
        _fail(f"{config.http_url}: {type(exc).__name__}: {exc}")
    if json_output:
        print(json.dumps(report.to_json()))
    else:
        for d in report.differences:
            typer.echo(f"{d.agent} {d.field}: indexed {d.indexed!r}, chain {d.chain!r}")
        typer.echo(f"{report.agents} agents compared, {len(report.differences)} differences")
    if not report.ok:
        raise typer.Exit(1)


app.command("serve")(serve_cli.serve_command)
