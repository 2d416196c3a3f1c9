"""The installed `ghost` script in real subprocesses (a representative subset), `--help` without the Solana
stack, the localnet in the background, and an interactive `ghost agent register` in a pseudo-terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.cli.conftest import GHOST, ghost, ghost_process, register_in_a_pty
from tests.localnet.conftest import free_port_pair

HEAVY = ("solana", "solders", "anchorpy", "spl", "sqlmodel", "sqlalchemy", "httpx")


def test_help_does_not_import_the_solana_stack() -> None:
    probe = (
        "import sys\nfrom ghostpay.cli.main import app\n"
        "for argv in (['--help'], ['agent', '--help'], ['payment', 'send', '--help'], ['indexer', '--help']):\n"
        "    try:\n        app(argv)\n    except SystemExit as exc:\n        assert exc.code == 0, argv\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_runs_ghost() -> None:
    """`python -m ghostpay.cli` is `ghost` (the indexer's commands included: the indexer package has no
    `__main__` of its own, since it must not import the CLI above it)."""
    done = subprocess.run(
        [sys.executable, "-m", "ghostpay.cli", "indexer", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "run" in done.stdout and "verify" in done.stdout


def test_installed_script_text_json_and_errors(wallets, usdc) -> None:
    key, owner = wallets.new()
    helped = ghost_process("--help", output=None)
    assert helped.code == 0 and "agent" in helped.stdout and "payment" in helped.stdout
    registered = ghost_process(
        "agent",
        "register",
        "proc",
        "--name",
        "Proc",
        "-c",
        "ocr",
        "--price",
        "0.01",
        "--tokens",
        "USDC",
        "--endpoint",
        "https://p.example",
        "--yes",
        keypair=key,
    ).data
    shown = ghost_process("agent", "show", registered["agent"], output=None)
    assert shown.code == 0 and "Agent Proc" in shown.stdout and "0.01 USDC" in shown.stdout
    found = ghost_process("agent", "search", "--x402-enabled", "--capability", "ocr", output=None)
    assert found.code == 0 and registered["agent"] in found.stdout
    # one JSON document and nothing else on stdout
    listed = ghost_process("agent", "list", "--owner", str(owner.pubkey()))
    assert json.loads(listed.stdout)["agents"][0]["name"] == "Proc" and listed.stderr == ""
    ghost_process("agent", "show", str(owner.pubkey())).one_line_error(1)
    ghost_process("agent", "set-price", "-a", registered["agent"], "--price", "-1", keypair=key).one_line_error(2)
    ghost_process("-u", "http://127.0.0.1:9", "agent", "show", registered["agent"]).one_line_error(1)


def test_localnet_start_detached_status_stop(tmp_path) -> None:
    port, _ = free_port_pair()
    env = {**os.environ, "GHOSTPAY_HOME": str(tmp_path / "home"), "GHOST_URL": f"http://127.0.0.1:{port}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([GHOST, "--output", "json", *args], capture_output=True, text=True, env=env, timeout=60)

    started = run("localnet", "start", "--detach", "--rpc-port", str(port), "--ledger", str(tmp_path / "ledger"))
    assert started.returncode == 0, started.stderr
    record = json.loads(started.stdout)
    try:
        assert record["running"] and record["rpc_url"] == f"http://127.0.0.1:{port}"
        again = run("localnet", "start", "--detach", "--rpc-port", str(port))
        assert again.returncode == 1 and "already running" in again.stderr
        status = json.loads(run("localnet", "status").stdout)
        assert status["running"] and status["pid"] == record["pid"] and status["slot"] >= 0
    finally:
        stopped = run("localnet", "stop")
    assert stopped.returncode == 0 and json.loads(stopped.stdout)["stopped"]
    after = run("localnet", "status")
    assert after.returncode == 1 and json.loads(after.stdout)["running"] is False
    assert "no localnet started" in run("localnet", "stop").stderr


def test_interactive_register_in_a_pseudo_terminal(wallets) -> None:
    key, owner = wallets.new()
    register_in_a_pty(
        key,
        [
            ("Agent id", "pty-agent"),
            ("Name", "PTY Agent"),
            ("Description", "Typed in a tty"),
            ("Capabilities", "chat, translate"),
            (r"Price calls with x402\?", "y"),
            ("Accepted tokens and their price", "USDC=0.02"),
            ("Service endpoint", "https://pty.example/api"),
            ("Register 'pty-agent'", "y"),
        ],
    )
    shown = ghost("agent", "show", "pty-agent", keypair=key).data
    assert (shown["name"], shown["description"], shown["capabilities"], shown["price"], shown["endpoint"]) == (
        "PTY Agent",
        "Typed in a tty",
        ["chat", "translate"],
        "0.020000",
        "https://pty.example/api",
    )
    assert shown["owner"] == str(owner.pubkey())


def test_localnet_in_the_foreground_prints_one_json_document(tmp_path) -> None:
    port, _ = free_port_pair()
    env = {**os.environ, "GHOSTPAY_HOME": str(tmp_path / "home")}
    server = subprocess.Popen(
        [GHOST, "--output", "json", "localnet", "start", "--rpc-port", str(port), "--ledger", str(tmp_path / "ledger")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        assert ready["running"] and ready["rpc_url"] == f"http://127.0.0.1:{port}" and ready["pid"] == server.pid
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=20)
    assert server.returncode == 0 and out == "" and err == ""
    assert not list((tmp_path / "home" / "localnet").glob("run-*.json"))
