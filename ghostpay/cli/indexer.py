"""`ghost indexer`: run the event indexer, show its status, verify it against the chain.

Heavy modules (sqlmodel, anchorpy bindings) are imported inside the commands so `ghost --help`
stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from ghostpay.cli import params, serve as serve_cli, trust as trust_cli
from ghostpay.cli.indexing import fail, index_engine, indexer_config, setup_logging

app = typer.Typer(
    help="Index GhostPay events into SQLite or PostgreSQL; status; verify against the chain.",
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
)

LOCALNET_URL = "http://127.0.0.1:8899"
URL_HELP = "RPC URL or moniker (localnet, devnet, mainnet-beta); the websocket URL is derived."
DB_HELP = (
    "A SQLite path, sqlite:///path.db or postgresql://user@host/db (default: indexer.db in the ghost data folder)."
)


app.command("trust")(trust_cli.trust)

EXIT_WRONG_CHAIN = 78  # sysexits' EX_CONFIG: restarting cannot help (the systemd unit stops on it)


def _network_errors() -> tuple[type[BaseException], ...]:
    import httpx
    import websockets

    from ghostpay.indexer.source import SourceError

    return (httpx.HTTPError, OSError, websockets.WebSocketException, SourceError)


@app.command()
def run(
    url: str = typer.Option(LOCALNET_URL, "--url", "-u", help=URL_HELP),
    ws_url: str | None = typer.Option(None, "--ws-url", help="Websocket URL (default: derived from --url)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    once: bool = typer.Option(False, "--once", help="Back-fill to the chain's tip and exit."),
    batch_size: int = typer.Option(200, "--batch-size", min=1, help="Transactions per database commit."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
    reset: bool = typer.Option(False, "--reset", help="Empty the database first (e.g. to index another chain)."),
    with_server: bool = typer.Option(False, "--serve", help="Also serve the API and dashboard (as `indexer serve`)."),
    host: str = typer.Option(serve_cli.DEFAULT_HOST, "--host", help="With --serve: " + serve_cli.HOST_HELP),
    port: int = typer.Option(
        serve_cli.DEFAULT_PORT, "--port", min=0, max=65535, help="With --serve: " + serve_cli.PORT_HELP
    ),
    token_file: Path | None = typer.Option(None, "--token-file", help="With --serve: " + serve_cli.TOKEN_HELP),
) -> None:
    """Back-fill every GhostPay event after the cursor, then follow logsSubscribe (until SIGTERM).

    The database records the chain it indexes (genesis hash) and refuses another one; one indexer at a
    time writes it. HTTP 429 and 5xx answers are retried (after Retry-After); a long back-fill shows a
    progress bar on a terminal.

    Example: ghost indexer run --once --db index.db, or ghost --db index.db indexer run --serve (index and
    serve the dashboard in one process)
    """
    setup_logging(log_level)
    config = indexer_config(url, ws_url, db, batch_size)
    engine = index_engine(config.db_url)  # a bad URL is one clean line before anything starts
    if with_server and once:
        fail("--serve keeps running; it cannot go with --once")
    from ghostpay.indexer.guard import ChainMismatch, GuardError, WriterLock, reset_database
    from ghostpay.indexer.service import serve

    if reset:
        try:
            with WriterLock(engine):
                reset_database(engine)
        except GuardError as exc:
            fail(str(exc))
    try:
        if with_server:
            serve_cli.run_server(
                config, host, port, True, True, False, token=params.bearer_token(token_file, serve_cli.TOKEN_ENV)
            )
            return
        with backfill_progress() as on_progress:
            asyncio.run(serve(config, once=once, on_progress=on_progress))
    except ChainMismatch as exc:
        fail(str(exc), EXIT_WRONG_CHAIN)
    except GuardError as exc:
        fail(str(exc))
    except _network_errors() as exc:
        fail(f"{config.http_url}: {type(exc).__name__}: {exc}")


PROGRESS_THRESHOLD = 500  # transactions: below this a back-fill takes a moment, no bar


@contextlib.contextmanager
def backfill_progress() -> Iterator[Any]:
    """A progress hook drawing a bar on stderr while a long back-fill runs (a terminal only)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("back-fill"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("transactions"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task: list[Any] = []

    def on_progress(done: int, total: int) -> None:
        if total < PROGRESS_THRESHOLD:
            return
        if not task:
            bar.start()
            task.append(bar.add_task("back-fill", total=total))
        bar.update(task[0], completed=done, total=total)
        if done >= total:
            bar.stop()

    try:
        yield on_progress
    finally:
        bar.stop()


@app.command()
def status(
    url: str = typer.Option(LOCALNET_URL, "--url", "-u", help=URL_HELP),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The cursor's slot, the lag behind the chain, row counts and skipped input.

    Lag counts from the newer of the cursor (the last program transaction applied) and the last slot a
    running indexer saw while caught up, so it stays near 0 on a quiet chain that is fully indexed.

    Example: ghost indexer status --db index.db
    """
    from sqlmodel import Session

    from ghostpay.indexer.queries import index_status
    from ghostpay.indexer.source import RpcSource

    config = indexer_config(url, None, db)
    with Session(index_engine(config.db_url, read_only=True)) as session:
        state = index_status(session)

    async def chain_slot() -> int | None:
        rpc = RpcSource(config.http_url)
        try:
            return await rpc.slot()
        except _network_errors():  # status still shows the database when the node is down
            return None
        finally:
            await rpc.close()

    slot = asyncio.run(chain_slot())
    lag = state.lag(slot)
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
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Compare every indexed agent's counters and recomputed score with its on-chain accounts; exit 1 on any difference.

    Example: ghost indexer verify --db index.db
    """
    from ghostpay.indexer.source import RpcSource
    from ghostpay.indexer.verify import verify as verify_index

    config = indexer_config(url, None, db)
    engine = index_engine(config.db_url, read_only=True)

    async def check() -> Any:
        rpc = RpcSource(config.http_url)
        try:
            return await verify_index(engine, rpc)
        finally:
            await rpc.close()

    try:
        report = asyncio.run(check())
    except _network_errors() as exc:
        fail(f"{config.http_url}: {type(exc).__name__}: {exc}")
    if json_output:
        print(json.dumps(report.to_json()))
    else:
        for d in report.differences:
            typer.echo(f"{d.agent} {d.field}: indexed {d.indexed!r}, chain {d.chain!r}")
        typer.echo(f"{report.agents} agents compared, {len(report.differences)} differences")
    if not report.ok:
        raise typer.Exit(1)


app.command("serve")(serve_cli.serve_command)
