"""`ghost localnet` guards its data: reset refuses a ledger in use, --detach on a busy port fails with a clear
error (never success with a dead pid), and two localnets run from one data folder on other ports and ledgers."""

from __future__ import annotations

import json
import os
import socket
import subprocess

from tests.cli.conftest import GHOST
from tests.localnet.conftest import free_port_pair


def runner(tmp_path):
    env = {**os.environ, "GHOSTPAY_HOME": str(tmp_path / "home")}
    env.pop("GHOST_URL", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([GHOST, "--output", "json", *args], capture_output=True, text=True, env=env, timeout=60)

    return run


def one_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and done.stdout == "", done.stderr
    return lines[0]


def test_two_localnets_from_one_data_folder_and_reset_refused_while_running(tmp_path) -> None:
    run = runner(tmp_path)
    (a, _), (b, _) = free_port_pair(), free_port_pair()
    first = run("localnet", "start", "--detach", "--rpc-port", str(a), "--ledger", str(tmp_path / "one"))
    assert first.returncode == 0, first.stderr
    try:
        second = run("localnet", "start", "--detach", "--rpc-port", str(b), "--ledger", str(tmp_path / "two"))
        assert second.returncode == 0, second.stderr
        try:
            pids = {json.loads(first.stdout)["pid"], json.loads(second.stdout)["pid"]}
            assert len(pids) == 2
            assert "pick one with --rpc-port" in one_line(run("localnet", "status"), 2)
            status = json.loads(run("localnet", "status", "--rpc-port", str(b)).stdout)
            assert status["running"] and status["rpc_url"].endswith(f":{b}") and status["ledger"].endswith("two")
            by_url = json.loads(run("-u", f"http://127.0.0.1:{a}", "localnet", "status").stdout)
            assert by_url["ledger"].endswith("one")

            refused = one_line(run("localnet", "reset", "--yes", "--ledger", str(tmp_path / "one")), 1)
            assert "in use by a running localnet" in refused and "stop it first" in refused
            assert (tmp_path / "one" / "ledger.sqlite3").exists()
            slot = json.loads(run("localnet", "status", "--rpc-port", str(a)).stdout)["slot"]
            assert slot >= 0
        finally:
            assert run("localnet", "stop", "--rpc-port", str(b)).returncode == 0
        assert json.loads(run("localnet", "status").stdout)["rpc_url"].endswith(f":{a}")  # the only one left
    finally:
        assert run("localnet", "stop", "--rpc-port", str(a)).returncode == 0
    done = run("localnet", "reset", "--yes", "--ledger", str(tmp_path / "one"))
    assert done.returncode == 0 and not (tmp_path / "one" / "ledger.sqlite3").exists()


def test_detach_on_a_busy_port_fails_clearly(tmp_path) -> None:
    run = runner(tmp_path)
    port, _ = free_port_pair()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        busy = one_line(
            run("localnet", "start", "--detach", "--rpc-port", str(port), "--ledger", str(tmp_path / "l")), 1
        )
    assert f"port {port} on 127.0.0.1 is already in use" in busy and "--rpc-port" in busy
    assert not list((tmp_path / "home" / "localnet").glob("run-*.json"))
    assert "65534" in one_line(run("localnet", "start", "--rpc-port", "99999"), 2)
