"""`ghost localnet`: run the LiteSVM localnet (or solana-test-validator) with GhostPay loaded.

`start` serves in the foreground (Ctrl-C stops it) or, with `--detach`, in the background; either
way it records its process and URLs in `<ghost path>/localnet/run-<rpc port>.json`, which `status` and
`stop` read. Several localnets run side by side on different ports and ledgers; `--rpc-port` picks one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import typer

from ghostpay.child_process import python_module_command
from ghostpay.cli.context import CliError, state
from ghostpay.cli.output import emit, key_value_table
from ghostpay.cli.prompts import confirm_irreversible
from ghostpay.paths import data_dir

app = typer.Typer(
    help="A local Solana validator (LiteSVM) with GhostPay loaded.", no_args_is_help=True, rich_markup_mode=None
)
ENGINES = ("litesvm", "solana-test-validator")
START_TIMEOUT_SECONDS = 30.0

DEFAULT_RPC_PORT = 8899


def records_dir() -> Path:
    return data_dir() / "localnet"


def state_file(rpc_port: int) -> Path:
    return records_dir() / f"run-{rpc_port}.json"


def running() -> list[dict[str, Any]]:
    """The localnets recorded by `start` whose process is alive (stale records are removed)."""
    found = []
    for path in sorted(records_dir().glob("run-*.json")):
        try:
            record = json.loads(path.read_text())
            os.kill(int(record["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        found.append(record)
    return found


def port_of(url: str) -> int | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).port
    except ValueError:
        return None


def pick(st: Any, rpc_port: int | None) -> dict[str, Any] | None:
    """The recorded localnet that `--rpc-port`, else `-u`, else being the only one, designates."""
    records = running()
    if rpc_port is not None:
        return next((r for r in records if r["rpc_port"] == rpc_port), None)
    by_url = [r for r in records if r["rpc_port"] == port_of(st.rpc_url)]
    if by_url or len(records) <= 1:
        return (by_url or records)[0] if by_url or records else None
    ports = ", ".join(str(r["rpc_port"]) for r in records)
    raise CliError(f"{len(records)} localnets are running (RPC ports {ports}); pick one with --rpc-port", 2)


def port_in_use(host: str, port: int) -> bool:
    """Whether a program listens on the port. The probe binds as the server will (SO_REUSEADDR), so the
    TIME-WAIT connections a killed localnet leaves behind for a minute do not count."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def not_running_hint(url: str) -> str:
    """No localnet at `url`: how to start one there, and which ports do have one."""
    from urllib.parse import urlsplit

    port = urlsplit(url).port
    start = "ghost localnet start --detach" + (f" --rpc-port {port}" if port and port != DEFAULT_RPC_PORT else "")
    others = sorted(r["rpc_port"] for r in running() if r["rpc_port"] != port)
    elsewhere = (
        f"; one runs on port {others[0]}: ghost localnet status --rpc-port {others[0]}"
        if len(others) == 1
        else f"; localnets run on ports {', '.join(map(str, others))}"
        if others
        else ""
    )
    return f"no localnet answers at {url}; start one there with '{start}'{elsewhere}"


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
    rpc_port: int = typer.Option(DEFAULT_RPC_PORT, min=1, max=65534, help="HTTP JSON-RPC port."),
    ws_port: int | None = typer.Option(None, min=1, max=65535, help="Websocket pub-sub port (default: RPC port + 1)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    ledger: Path | None = typer.Option(None, help="Ledger directory (default: <data dir>/localnet/ledger)."),
    reset: bool = typer.Option(False, "--reset", help="Start from an empty ledger."),
    program_so: Path | None = typer.Option(None, help="Load this GhostPay .so instead of the packaged one."),
    engine: str = typer.Option("litesvm", help=f"One of: {', '.join(ENGINES)}."),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing but errors."),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Run in the background; stop with 'ghost localnet stop'."
    ),
) -> None:
    """Serve Solana's JSON-RPC and pub-sub (until Ctrl-C, or in the background with --detach).

    A second localnet runs beside the first on other ports and another ledger.

    Example: ghost localnet start --detach --rpc-port 8999 --ledger /tmp/second-ledger
    """
    if engine not in ENGINES:
        raise typer.BadParameter(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    same = next((r for r in running() if r["rpc_port"] == rpc_port), None)
    if same is not None:
        raise CliError(
            f"a localnet is already running on port {rpc_port} (pid {same['pid']}, {same['rpc_url']}); "
            f"stop it with 'ghost localnet stop --rpc-port {rpc_port}' or pick another --rpc-port"
        )
    ws = ws_port if ws_port is not None else rpc_port + 1
    for port, what in ((rpc_port, "--rpc-port"), (ws, "--ws-port")):
        if port_in_use(host, port):
            raise CliError(f"port {port} on {host} is already in use by another program; pick another {what}")
    record = {
        "rpc_url": f"http://{host}:{rpc_port}",
        "ws_url": f"ws://{host}:{ws}",
        "rpc_port": rpc_port,
        "ledger": str(ledger) if ledger else None,
        "engine": engine,
        "started_at": int(time.time()),
    }
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
        state_file(rpc_port).unlink(missing_ok=True)


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
    path = state_file(record["rpc_port"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def detached(
    ctx: typer.Context,
    record: dict[str, Any],
    rpc_port: int,
    ws_port: int,
    host: str,
    ledger: Path | None,
    reset: bool,
    program_so: Path | None,
    engine: str,
) -> None:
    st = state(ctx)
    log = records_dir() / f"localnet-{rpc_port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = python_module_command(
        "ghostpay.localnet", "--host", host, "--rpc-port", str(rpc_port), "--ws-port", str(ws_port), "--engine", engine
    )
    command += ["--ledger", str(ledger)] if ledger else []
    command += ["--reset"] if reset else []
    command += ["--program-so", str(program_so)] if program_so else []
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with st.spinner("Starting the localnet…"):
        while proc.poll() is not None or not healthy(record["rpc_url"]):
            if proc.poll() is not None:  # checked after every probe too: an answer from another server is no proof
                lines = log.read_text(errors="replace").strip().splitlines()
                raise CliError(
                    f"the localnet exited: {lines[-1].removeprefix('error: ') if lines else 'no output'} (log: {log})"
                )
            if time.monotonic() > deadline:
                proc.terminate()
                raise CliError(f"the localnet did not become healthy in {START_TIMEOUT_SECONDS:.0f}s (log: {log})")
            time.sleep(0.05)
    from ghostpay.localnet.server import default_ledger

    record.update(pid=proc.pid, log=str(log), ledger=record["ledger"] or str(default_ledger()))
    write_state(record)
    emit(
        st,
        {"running": True, **record},
        lambda out: out.print(
            key_value_table(
                [
                    ("JSON-RPC", record["rpc_url"]),
                    ("WebSocket", record["ws_url"]),
                    ("pid", str(proc.pid)),
                    ("ledger", record["ledger"]),
                    ("log", str(log)),
                    ("stop", f"ghost localnet stop --rpc-port {rpc_port}"),
                ],
                title="[green]✔[/green] localnet running in the background",
            )
        ),
    )


RPC_PORT_OPTION = typer.Option(
    None,
    "--rpc-port",
    min=1,
    max=65535,
    help="Which localnet, by RPC port (default: the one -u points at, or the only one).",
)


@app.command()
def status(ctx: typer.Context, rpc_port: int | None = RPC_PORT_OPTION) -> None:
    """Is a localnet running? Its URLs, slot and version (exit status 1 if none answers).

    Example: ghost localnet status --rpc-port 8999
    """
    st = state(ctx)
    record = pick(st, rpc_port)
    url = record["rpc_url"] if record else f"http://127.0.0.1:{rpc_port}" if rpc_port else st.rpc_url
    if not healthy(url):
        emit(st, {"running": False, "rpc_url": url}, lambda out: out.print(not_running_hint(url)))
        raise typer.Exit(1)
    slot, version = rpc(url, "getSlot"), rpc(url, "getVersion") or {}
    data: dict[str, Any] = {
        "running": True,
        "rpc_url": url,
        "slot": slot,
        "version": version.get("solana-core"),
        **({k: record[k] for k in ("pid", "ws_url", "ledger") if k in record} if record else {}),
    }
    emit(
        st,
        data,
        lambda out: out.print(
            key_value_table(
                [(k.replace("_", " "), str(v)) for k, v in data.items() if k != "running"],
                title="[green]✔[/green] localnet running",
            )
        ),
    )


@app.command()
def stop(ctx: typer.Context, rpc_port: int | None = RPC_PORT_OPTION) -> None:
    """Stop a localnet started with 'ghost localnet start' (its ledger is kept).

    Example: ghost localnet stop --rpc-port 8999
    """
    st = state(ctx)
    record = pick(st, rpc_port)
    if record is None:
        where = f" on port {rpc_port}" if rpc_port else ""
        raise CliError(f"no localnet started with 'ghost localnet start' is running{where}")
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
    state_file(record["rpc_port"]).unlink(missing_ok=True)
    emit(
        st,
        {"stopped": True, "pid": pid, "rpc_url": record["rpc_url"]},
        lambda out: out.print(f"stopped the localnet (pid {pid}) at {record['rpc_url']}; ledger kept"),
    )


@app.command()
def path(ctx: typer.Context) -> None:
    """Print the default ledger directory.

    Example: ghost localnet path
    """
    from ghostpay.localnet.server import default_ledger

    emit(state(ctx), {"path": str(default_ledger())}, lambda out: out.print(str(default_ledger())))


@app.command()
def reset(
    ctx: typer.Context,
    ledger: Path | None = typer.Option(None, help="Ledger directory (default: the default ledger)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a ledger; refused while a localnet runs on it. Asks first on a terminal; elsewhere --yes is
    required.

    Example: ghost localnet reset --ledger /tmp/second-ledger
    """
    from ghostpay.localnet.server import LocalnetError, default_ledger, reset_ledger

    directory = ledger if ledger is not None else default_ledger()
    confirm_irreversible(
        state(ctx),
        yes,
        f"Delete the ledger {directory}? Its accounts and transactions are lost",
        "ghost localnet reset",
    )
    try:
        reset_ledger(directory)
    except LocalnetError as exc:
        raise CliError(str(exc)) from None
    emit(state(ctx), {"reset": str(directory)}, lambda out: out.print(f"reset {directory}"))
