"""`ghost localnet`: run the LiteSVM localnet (or solana-test-validator) with GhostPay loaded.

`start` serves in the foreground (Ctrl-C stops it) or, with `--detach`, in the background; either
way it records its process and URLs in `<ghost path>/localnet/localnet.json`, which `status` and
`stop` read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from ghostpay.cli.context import CliError, state
from ghostpay.cli.output import emit, key_value_table
from ghostpay.paths import data_dir

app = typer.Typer(help="A local Solana validator (LiteSVM) with GhostPay loaded.", no_args_is_help=True)
ENGINES = ("litesvm", "solana-test-validator")
START_TIMEOUT_SECONDS = 30.0


def state_file() -> Path:
    return data_dir() / "localnet" / "localnet.json"


def read_state() -> dict[str, Any] | None:
    """The running localnet recorded by `start`, or None (a stale record is removed)."""
    try:
        record = json.loads(state_file().read_text())
        os.kill(int(record["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        state_file().unlink(missing_ok=True)
        return None
    return record


def rpc(url: str, method: str, timeout: float = 2.0) -> Any:
    import httpx

    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=timeout).json()
    return reply.get("result")


def healthy(url: str) -> bool:
    try:
        return rpc(url, "getHealth", timeout=0.5) == "ok"
    except Exception:  # noqa: BLE001 - connection refused, timeout, not JSON: not healthy
        return False


@app.command()
def start(
    ctx: typer.Context,
    rpc_port: int = typer.Option(8899, help="HTTP JSON-RPC port."),
    ws_port: Optional[int] = typer.Option(None, help="Websocket pub-sub port (default: RPC port + 1)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    ledger: Optional[Path] = typer.Option(None, help="Ledger directory (default: <data dir>/localnet/ledger)."),
    reset: bool = typer.Option(False, "--reset", help="Start from an empty ledger."),
    program_so: Optional[Path] = typer.Option(None, help="Load this GhostPay .so instead of the packaged one."),
    engine: str = typer.Option("litesvm", help=f"One of: {', '.join(ENGINES)}."),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing but errors."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background; stop with 'ghost localnet "
                                                              "stop'."),
) -> None:
    """Serve Solana's JSON-RPC and pub-sub (until Ctrl-C, or in the background with --detach)."""
    if engine not in ENGINES:
        raise CliError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    running = read_state()
    if running is not None:
        raise CliError(f"a localnet is already running (pid {running['pid']}, {running['rpc_url']}); "
                       "stop it with 'ghost localnet stop'")
    ws = ws_port if ws_port is not None else rpc_port + 1
    record = {"rpc_url": f"http://{host}:{rpc_port}", "ws_url": f"ws://{host}:{ws}",
              "ledger": str(ledger) if ledger else None, "engine": engine, "started_at": int(time.time())}
    if detach:
        detached(ctx, record, rpc_port, ws, host, ledger, reset, program_so, engine)
        return
    from ghostpay.localnet.server import LocalnetConfig, LocalnetError

    st = state(ctx)
    config = LocalnetConfig(host, rpc_port, ws, ledger, reset, program_so, quiet or st.json)
    record.update(pid=os.getpid(), ledger=str(config.ledger_dir))
    write_state(record)
    if st.json:  # the server prints nothing; one JSON document once it answers
        announce_when_ready(record)
    try:
        if engine == "solana-test-validator":
            from ghostpay.localnet.engine import run_test_validator

            run_test_validator(config)
        from ghostpay.localnet.server import run

        run(config)
    except LocalnetError as exc:
        raise CliError(str(exc)) from None
    finally:
        state_file().unlink(missing_ok=True)


def announce_when_ready(record: dict[str, Any]) -> None:
    import threading

    def wait() -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if healthy(record["rpc_url"]):
                print(json.dumps({"running": True, **record}), flush=True)
                return
            time.sleep(0.05)

    threading.Thread(target=wait, name="ghost-localnet-ready", daemon=True).start()


def write_state(record: dict[str, Any]) -> None:
    state_file().parent.mkdir(parents=True, exist_ok=True)
    state_file().write_text(json.dumps(record))


def detached(ctx: typer.Context, record: dict[str, Any], rpc_port: int, ws_port: int, host: str,
             ledger: Optional[Path], reset: bool, program_so: Optional[Path], engine: str) -> None:
    st = state(ctx)
    log = data_dir() / "localnet" / "localnet.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "ghostpay.localnet", "--host", host, "--rpc-port", str(rpc_port),
               "--ws-port", str(ws_port), "--engine", engine]
    command += ["--ledger", str(ledger)] if ledger else []
    command += ["--reset"] if reset else []
    command += ["--program-so", str(program_so)] if program_so else []
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with st.spinner("Starting the localnet…"):
        while not healthy(record["rpc_url"]):
            if proc.poll() is not None:
                lines = log.read_text(errors="replace").strip().splitlines()
                raise CliError(f"the localnet exited: {lines[-1] if lines else 'no output'} (log: {log})")
            if time.monotonic() > deadline:
                proc.terminate()
                raise CliError(f"the localnet did not become healthy in {START_TIMEOUT_SECONDS:.0f}s (log: {log})")
            time.sleep(0.05)
    from ghostpay.localnet.server import default_ledger

    record.update(pid=proc.pid, log=str(log), ledger=record["ledger"] or str(default_ledger()))
    write_state(record)
    emit(st, {"running": True, **record}, lambda out: out.print(key_value_table(
        [("JSON-RPC", record["rpc_url"]), ("WebSocket", record["ws_url"]), ("pid", str(proc.pid)),
         ("ledger", record["ledger"]), ("log", str(log)), ("stop", "ghost localnet stop")],
        title="[green]✔[/green] localnet running in the background")))


@app.command()
def status(ctx: typer.Context) -> None:
    """Is a localnet running? Its URLs, slot and version (exit status 1 if none answers)."""
    st = state(ctx)
    record = read_state()
    url = record["rpc_url"] if record else st.rpc_url
    if not healthy(url):
        emit(st, {"running": False, "rpc_url": url},
             lambda out: out.print(f"no localnet answers at {url}; start one with 'ghost localnet start --detach'"))
        raise typer.Exit(1)
    slot, version = rpc(url, "getSlot"), rpc(url, "getVersion") or {}
    data = {"running": True, "rpc_url": url, "slot": slot, "version": version.get("solana-core"),
            **({k: record[k] for k in ("pid", "ws_url", "ledger") if k in record} if record else {})}
    emit(st, data, lambda out: out.print(key_value_table([(k.replace("_", " "), str(v)) for k, v in data.items()
                                                          if k != "running"],
                                                         title="[green]✔[/green] localnet running")))


@app.command()
def stop(ctx: typer.Context) -> None:
    """Stop the localnet started with 'ghost localnet start' (its ledger is kept)."""
    st = state(ctx)
    record = read_state()
    if record is None:
        raise CliError("no localnet started with 'ghost localnet start' is running")
    pid = int(record["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child (started in this process): reap it
                break
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    state_file().unlink(missing_ok=True)
    emit(st, {"stopped": True, "pid": pid, "rpc_url": record["rpc_url"]},
         lambda out: out.print(f"stopped the localnet (pid {pid}) at {record['rpc_url']}; ledger kept"))


@app.command()
def path(ctx: typer.Context) -> None:
    """Print the default ledger directory."""
    from ghostpay.localnet.server import default_ledger

    emit(state(ctx), {"path": str(default_ledger())}, lambda out: out.print(str(default_ledger())))


@app.command()
def reset(ctx: typer.Context,
          ledger: Optional[Path] = typer.Option(None, help="Ledger directory (default: the default ledger).")) -> None:
    """Delete a ledger (the localnet must not be running on it)."""
    from ghostpay.localnet.server import default_ledger, reset_ledger

    directory = ledger if ledger is not None else default_ledger()
    reset_ledger(directory)
    emit(state(ctx), {"reset": str(directory)}, lambda out: out.print(f"reset {directory}"))
