"""A localnet in a subprocess on free ports with a temporary ledger."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port_pair() -> tuple[int, int]:
    """Two free TCP ports, the second one above the first (like 8899 / 8900)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port, port + 1


class LocalnetProcess:
    """`python -m ghostpay.localnet` on `ledger`, started on free ports."""

    def __init__(self, ledger: Path, *extra: str) -> None:
        self.ledger = ledger
        self.extra = list(extra)
        self.rpc_port, self.ws_port = free_port_pair()
        self.proc: subprocess.Popen[str] | None = None
        self.startup_seconds = 0.0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def start(self) -> "LocalnetProcess":
        started = time.perf_counter()
        env = dict(os.environ, GHOSTPAY_HOME=str(self.ledger.parent / "home"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ghostpay.localnet", "--ledger", str(self.ledger), "--rpc-port",
             str(self.rpc_port), "--ws-port", str(self.ws_port), *self.extra],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"localnet exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                response = httpx.post(self.http_url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
                                      timeout=0.5)
                if response.json().get("result") == "ok":
                    self.startup_seconds = time.perf_counter() - started
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError("localnet did not become healthy")

    def rpc(self, method: str, *params: object) -> dict:
        return httpx.post(self.http_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                          timeout=10).json()

    def stop(self, sig: int = signal.SIGINT) -> str:
        """Stop with `sig`; returns the process's stdout."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=10)
        return out


@pytest.fixture(scope="session")
def localnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalnetProcess]:
    """One localnet shared by the tests that do not restart it."""
    net = LocalnetProcess(tmp_path_factory.mktemp("localnet") / "ledger").start()
    yield net
    net.stop()
