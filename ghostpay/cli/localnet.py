"""`ghost localnet`: run the LiteSVM localnet (or solana-test-validator) with GhostPay loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ghostpay.localnet.engine import ENGINES
from ghostpay.localnet.server import LocalnetConfig, LocalnetError, default_ledger, reset_ledger

app = typer.Typer(help="A local Solana validator (LiteSVM) with GhostPay loaded.", no_args_is_help=True)


@app.command()
def start(
    rpc_port: int = typer.Option(8899, help="HTTP JSON-RPC port."),
    ws_port: Optional[int] = typer.Option(None, help="Websocket pub-sub port [default: RPC port + 1]."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    ledger: Optional[Path] = typer.Option(None, help="Ledger directory [default: <data dir>/localnet/ledger]."),
    reset: bool = typer.Option(False, "--reset", help="Start from an empty ledger."),
    program_so: Optional[Path] = typer.Option(None, help="Load this GhostPay .so instead of the packaged one."),
    engine: str = typer.Option("litesvm", help=f"One of: {', '.join(ENGINES)}."),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing but errors."),
) -> None:
    """Serve Solana's JSON-RPC and pub-sub until Ctrl-C; state persists in the ledger."""
    if engine not in ENGINES:
        typer.echo(f"error: unknown engine {engine!r}; choose one of {', '.join(ENGINES)}", err=True)
        raise typer.Exit(1)
    config = LocalnetConfig(host, rpc_port, ws_port if ws_port is not None else rpc_port + 1, ledger, reset,
                            program_so, quiet)
    try:
        if engine == "solana-test-validator":
            from ghostpay.localnet.engine import run_test_validator

            run_test_validator(config)
        from ghostpay.localnet.server import run

        run(config)
    except LocalnetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def path() -> None:
    """Print the default ledger directory."""
    typer.echo(str(default_ledger()))


@app.command()
def reset(ledger: Optional[Path] = typer.Option(None, help="Ledger directory [default: the default ledger].")) -> None:
    """Delete a ledger (the localnet must not be running on it)."""
    directory = ledger if ledger is not None else default_ledger()
    reset_ledger(directory)
    typer.echo(f"reset {directory}")
