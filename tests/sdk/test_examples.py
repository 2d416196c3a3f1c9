"""The examples/ scripts run as documented: against the session localnet (URL as argument), and
unchanged against a second localnet on other ports (URL from GHOSTPAY_URL): nothing in them or
in the SDK is tied to one endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.localnet.conftest import ROOT, LocalnetProcess

EXAMPLES = ROOT / "examples"
EXPECTED = {
    "register_and_price.py": "new price: 0.040000 per call, still 10.00 in the other",
    "find_and_pay.py": "tier",
    "hire_through_escrow.py": "jobs completed: 1",
}


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example(net: LocalnetProcess, name: str) -> None:
    assert EXPECTED[name] in run_example(name, net.http_url)


@pytest.fixture
def second_net(net: LocalnetProcess, tmp_path) -> Iterator[LocalnetProcess]:
    other = LocalnetProcess(tmp_path / "ledger").start()
    assert other.rpc_port != net.rpc_port
    yield other
    other.stop()


def test_same_script_on_a_second_endpoint(second_net: LocalnetProcess) -> None:
    out = run_example("hire_through_escrow.py", env={"GHOSTPAY_URL": second_net.http_url})
    assert "jobs completed: 1" in out and "client holds 32.000000" in out and "declined; client holds 32.000000" in out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_without_a_localnet_says_how_to_start_one(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "no Solana RPC answers at http://127.0.0.1:9: start a localnet with 'ghost localnet start --detach' "
        "(or pass an RPC URL)"
    ]
