"""A localnet in a subprocess on free ports: for `ghost demo`, the tests and the benchmark.

net = LocalnetProcess(Path("/tmp/ledger")).start()   # returns once getHealth is ok
net.rpc("getSlot")["result"]
net.stop()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from ghostpay.child_process import python_module_command, start_attached_child

STARTUP_TIMEOUT_SECONDS = 15.0
HEALTH_POLL_SECONDS = 0.01
PORT_ATTEMPTS = 3


class LocalnetStartError(RuntimeError):
    """The localnet exited or did not become healthy in time."""


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
    """`python -m ghostpay.localnet` on `ledger`, started on free ports.

    `home` sets GHOSTPAY_HOME for the child (tests isolate their data folder);
    by default it shares the user's, where the localnet caches programs.
    """

    def __init__(self, ledger: Path, *extra: str, home: Path | None = None) -> None:
        self.ledger = ledger
        self.extra = list(extra)
        self.home = home
        self.rpc_port, self.ws_port = free_port_pair()
        self.proc: subprocess.Popen[str] | None = None
        self.startup_seconds = 0.0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def start(self) -> LocalnetProcess:
        """Starts the server and returns once `getHealth` answers ok. Free ports can be taken by another
        process between picking and binding them: then it starts again on new ones (a few times)."""
        for attempt in range(PORT_ATTEMPTS):
            try:
                return self._start()
            except LocalnetStartError as exc:
                if "already in use" not in str(exc) or attempt == PORT_ATTEMPTS - 1:
                    raise
                self.rpc_port, self.ws_port = free_port_pair()
        raise AssertionError("unreachable")

    def _start(self) -> LocalnetProcess:
        started = time.perf_counter()
        env = dict(os.environ)
        if self.home is not None:
            env["GHOSTPAY_HOME"] = str(self.home)
        self.proc = start_attached_child(
            python_module_command(
                "ghostpay.localnet",
                "--ledger",
                str(self.ledger),
                "--rpc-port",
                str(self.rpc_port),
                "--ws-port",
                str(self.ws_port),
                *self.extra,
            ),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read().strip() if self.proc.stderr else ""
                raise LocalnetStartError(f"localnet exited: {stderr}")
            try:
                if self.rpc("getHealth", timeout=0.5).get("result") == "ok":
                    self.startup_seconds = time.perf_counter() - started
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(HEALTH_POLL_SECONDS)
        self.stop(signal.SIGKILL)
        raise LocalnetStartError("localnet did not become healthy")

    def rpc(self, method: str, *params: object, timeout: float = 10) -> dict:
        """One JSON-RPC call; the whole reply (`result` or `error`)."""
        return httpx.post(
            self.http_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=timeout
        ).json()

    def stop(self, sig: int = signal.SIGINT) -> str:
        """Stop with `sig`; returns the process's stdout."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=10)
        return out
