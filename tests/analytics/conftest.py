"""Fixtures of the analytics tests: a localnet with a known, indexed history (`World`), the API served
by uvicorn on a real port, and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ghostpay.analytics.api import ApiSettings
from ghostpay.analytics.server import serve
from ghostpay.sockets import listening_socket
from ghostpay.token_labels import LABELS_FILE
from tests.analytics.world import World, build_sync
from tests.indexer.postgres import postgres  # noqa: F401 - the session fixture
from tests.localnet.conftest import LocalnetProcess


class ServedApi:
    """`ghostpay.analytics.server.serve` in a thread of its own (its own event loop), on a free port."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.sock = listening_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop = asyncio.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(
            serve(self.settings, self.sock, on_ready=lambda _: self.ready.set(), stop_event=self.stop)
        )

    def __enter__(self) -> ServedApi:
        self.thread.start()
        assert self.ready.wait(30), "the API did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(15)
        self.sock.close()

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


def start_localnet(folder: Path, tries: int = 3) -> LocalnetProcess:
    """A localnet on free ports; tried again when another process took a port between the pick and the bind
    (the machine is shared: that race is real)."""
    from ghostpay.localnet.process import LocalnetStartError

    try:
        return LocalnetProcess(folder / f"ledger{tries}").start()
    except LocalnetStartError as exc:
        if "address already in use" not in str(exc) or tries == 1:
            raise
        return start_localnet(folder, tries - 1)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One localnet with the known history, indexed into SQLite; tests that add payments index them too."""
    folder = tmp_path_factory.mktemp("analytics")
    net = start_localnet(folder)
    try:
        yield build_sync(net, f"sqlite:///{folder / 'index.db'}", folder / "home")
    finally:
        net.stop()


@pytest.fixture
def fresh_world(tmp_path: Path) -> Iterator[World]:
    """A world of its own, for tests that change it while watching."""
    net = start_localnet(tmp_path)
    try:
        yield build_sync(net, f"sqlite:///{tmp_path / 'index.db'}", tmp_path / "home")
    finally:
        net.stop()


@pytest.fixture(scope="session")
def api(world: World) -> Iterator[ServedApi]:
    with ServedApi(
        ApiSettings(
            world.db_url,
            rpc_url=world.net.http_url,
            webhooks=False,
            poll_interval=0.05,
            token_labels=str(world.home / LABELS_FILE),
        )
    ) as s:
        yield s


def wait_for(check, timeout: float = 30.0, what: str = "the condition"):  # type: ignore[no-untyped-def]
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class GhostServer:
    """The installed `ghost` script serving on a free port in a subprocess; `url` from the line it prints."""

    def __init__(self, world: World, *command: str) -> None:
        import sys

        ghost = str(Path(sys.executable).with_name("ghost"))
        self.argv = [ghost, "-u", world.net.http_url, "--db", world.db_url, *command, "--port", "0"]
        self.env = {**os.environ, "GHOSTPAY_HOME": str(world.home)}  # the world's token labels
        self.url = ""

    def __enter__(self) -> GhostServer:
        import re
        import select
        import subprocess

        self.process = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env
        )
        assert self.process.stderr is not None
        deadline, seen = time.monotonic() + 60, []
        while not self.url and time.monotonic() < deadline:
            if select.select([self.process.stderr], [], [], 0.5)[0]:
                line = self.process.stderr.readline()
                seen.append(line)
                found = re.search(r"GhostPay dashboard: (http://\S+)", line)
                self.url = found.group(1) if found else ""
            assert self.process.poll() is None or self.url, "".join(seen)
        assert self.url, "".join(seen)
        return self

    def __exit__(self, *_: object) -> None:
        import signal

        self.process.send_signal(signal.SIGTERM)
        self.exit_code = self.process.wait(30)
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()
