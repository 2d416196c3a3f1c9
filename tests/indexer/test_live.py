"""The live service: it follows logsSubscribe, back-fills the gap after its websocket is cut or
the localnet restarts while transactions keep flowing, skips bad input without stopping, and
stops cleanly on SIGTERM; `status` and `verify` report on what it wrote."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import websockets
from sqlmodel import Session

from ghostpay.indexer.models import Cursor, SkipCounter
from ghostpay.indexer.service import Indexer
from ghostpay.program_id import PROGRAM_ID
from tests.indexer.conftest import backfill_async, config, dump_tables, open_db, verify_async
from tests.indexer.history import HistorySpec, generate
from tests.localnet.conftest import ROOT, LocalnetProcess

WAIT = float(
    os.environ.get("WAIT", "60")
)  # generous: an upper bound on waiting for catch-up, never a measured expectation
SMALL = HistorySpec(payments=30, days=2, work_orders=False)


class CuttableProxy:
    """A TCP proxy in front of the localnet's websocket that can drop every connection and refuse
    new ones until restored."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.base_events.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()
        self.cut_off = False
        self.accepted = 0

    async def start(self) -> CuttableProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.close()
            return
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self.cut_off = True
        for writer in self.open:
            writer.transport.abort()  # a dropped connection, not a polite close
        self.open.clear()

    def restore(self) -> None:
        self.cut_off = False

    async def stop(self) -> None:
        self.cut()
        assert self.server is not None
        self.server.close()


async def newest_signature(net: LocalnetProcess) -> str:
    answer = net.rpc("getSignaturesForAddress", str(PROGRAM_ID), {"limit": 1})
    return answer["result"][0]["signature"]


async def caught_up(indexer: Indexer, net: LocalnetProcess) -> None:
    """Wait until the indexer's cursor is the chain's newest transaction of the program."""

    async def poll() -> None:
        while True:
            cursor = indexer.cursor()
            if cursor is not None and cursor.signature == await newest_signature(net):
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), WAIT)


@asynccontextmanager
async def running(indexer: Indexer) -> AsyncIterator[asyncio.Task[Any]]:
    task = asyncio.create_task(indexer.run())
    try:
        await asyncio.wait_for(indexer.live.wait(), WAIT)
        yield task
    finally:
        indexer.stop()
        await asyncio.wait_for(task, WAIT)


async def assert_complete(net: LocalnetProcess, url: str, tmp_path: Path) -> None:
    """The live tables equal one clean back-fill of the whole chain, and the chain agrees."""
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    await backfill_async(net, clean)
    assert dump_tables(open_db(url)) == dump_tables(open_db(clean))
    assert (await verify_async(net, url)).differences == []


async def test_a_cut_websocket_is_back_filled_while_transactions_flow(chain: LocalnetProcess, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    proxy = await CuttableProxy(chain.ws_port).start()
    indexer = Indexer(config(chain, url, ws_url=proxy.url, reconnect_delay=0.05))
    try:
        async with running(indexer):
            await generate(chain.http_url, SMALL)
            await caught_up(indexer, chain)
            live_before = indexer.totals.backfills

            async def cut_then_restore(day: int) -> None:  # mid-history: the rest flows while cut off
                if day == 0:
                    proxy.cut()
                else:
                    proxy.restore()

            await generate(
                chain.http_url,
                HistorySpec(payments=30, days=2, work_orders=False, seed=3),
                between_days=cut_then_restore,
            )
            await caught_up(indexer, chain)
            assert indexer.totals.reconnects >= 1 and indexer.totals.backfills > live_before
            assert proxy.accepted >= 2
            assert indexer.totals.stats.duplicates >= 0
    finally:
        await proxy.stop()
    await assert_complete(chain, url, tmp_path)


async def test_a_localnet_restart_on_its_ledger_is_back_filled(chain: LocalnetProcess, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    indexer = Indexer(config(chain, url, reconnect_delay=0.05, max_reconnect_delay=0.2))

    async def restart(day: int) -> None:
        if day == 0:
            await asyncio.to_thread(chain.stop)
            await asyncio.to_thread(chain.start)

    async with running(indexer):
        await generate(chain.http_url, HistorySpec(payments=40, days=2, work_orders=False), between_days=restart)
        await caught_up(indexer, chain)
        assert indexer.totals.reconnects >= 1
    await assert_complete(chain, url, tmp_path)


async def test_bad_input_is_counted_and_skipped_without_stopping(chain: LocalnetProcess, tmp_path: Path) -> None:
    """A websocket that sends junk, a notification whose `Program data:` lines are malformed, unknown
    or another program's, and then drops: the service counts, skips, reconnects and keeps indexing."""
    ours = str(PROGRAM_ID)
    bad_logs = [
        f"Program {ours} invoke [1]",
        "Program data: %%%",
        "Program data: " + base64.b64encode(b"\x01" * 8 + b"?").decode(),
        "Program Other111111111111111111111111111111111 invoke [2]",
        "Program data: AAAA",
        "Program Other111111111111111111111111111111111 success",
        f"Program {ours} success",
    ]
    notification = {
        "jsonrpc": "2.0",
        "method": "logsNotification",
        "params": {
            "subscription": 7,
            "result": {"context": {"slot": 0}, "value": {"signature": "1" * 64, "err": None, "logs": bad_logs}},
        },
    }
    connections = 0
    history_sent = asyncio.Event()

    async def fake(ws: Any) -> None:
        nonlocal connections
        connections += 1
        await ws.recv()
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "result": 7}))
        if connections == 1:
            await history_sent.wait()  # so the back-fill after this drop has something to find
            for junk in ("not json", json.dumps({"params": {"result": None}}), json.dumps(notification)):
                await ws.send(junk)
            await ws.close()
        else:
            await ws.wait_closed()

    async with websockets.serve(fake, "127.0.0.1", 0) as server:
        ws_url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        url = f"sqlite:///{tmp_path / 'live.db'}"
        indexer = Indexer(config(chain, url, ws_url=ws_url, reconnect_delay=0.05))
        async with running(indexer) as task:
            await generate(chain.http_url, SMALL)  # reaches the indexer only through back-fills
            history_sent.set()

            async def two_connections() -> None:
                while connections < 2 or not indexer.live.is_set():
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(two_connections(), WAIT)
            await asyncio.wait_for(indexer.live.wait(), WAIT)
            await caught_up(indexer, chain)
            assert not task.done()
    with Session(open_db(url)) as session:
        skipped = {c.name: c.count for c in session.exec(SkipCounter.__table__.select()).all()}  # type: ignore[attr-defined]
    assert (skipped["malformed"], skipped["unknown"], skipped["foreign"]) == (1, 1, 1)
    assert skipped["failed_transactions"] >= 2


def ghost(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(ROOT / ".venv/bin/ghost"), "indexer", *args], capture_output=True, text=True, timeout=WAIT
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


async def test_the_cli_service_stops_cleanly_on_sigterm_and_reports(chain: LocalnetProcess, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    service = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ghostpay.cli",
            "indexer",
            "run",
            "--url",
            chain.http_url,
            "--db",
            url,
            "--log-level",
            "info",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await generate(chain.http_url, SMALL)
        newest = await newest_signature(chain)

        async def cursor_at_newest() -> None:
            while True:
                with Session(open_db(url)) as session:
                    cursor = session.get(Cursor, 1)
                if cursor is not None and cursor.signature == newest:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(cursor_at_newest(), WAIT)
    finally:
        service.send_signal(signal.SIGTERM)
        _, stderr = service.communicate(timeout=WAIT)
    assert service.returncode == 0, stderr
    assert "INFO ghostpay.indexer.service: stopped:" in stderr and "back-fill:" in stderr

    status = json.loads(ghost("status", "--url", chain.http_url, "--db", url, "--json").stdout)
    assert status["cursor_signature"] == newest and status["lag_slots"] >= 0
    assert status["rows"]["agents"] == SMALL.agents and status["rows"]["raw_events"] > 0
    report = json.loads(ghost("verify", "--url", chain.http_url, "--db", url, "--json").stdout)
    assert report == {"agents": SMALL.agents - 1, "ok": True, "differences": []}

    bad = ghost("status", "--db", "nosuchdb://x", check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error: cannot open the indexer database nosuchdb://x")
    unreachable = ghost("run", "--once", "--url", "http://127.0.0.1:9", "--db", url, check=False)
    assert unreachable.returncode == 1 and unreachable.stderr.strip().splitlines()[-1].startswith("error:")


async def test_lag_on_a_quiet_chain_stays_near_zero(chain: LocalnetProcess, tmp_path: Path) -> None:
    """Caught up and nothing happening: the cursor stays at the last program transaction while slots go by;
    lag counts from the newest slot the indexer saw (it was 54 → 85 slots in 10 s, and alerts fired)."""
    from ghostpay.indexer.queries import index_status

    await generate(chain.http_url, HistorySpec(payments=2, days=1, work_orders=False))
    url = f"sqlite:///{tmp_path / 'quiet.db'}"
    indexer = Indexer(config(chain, url, seen_interval=0.2))
    async with running(indexer):
        await caught_up(indexer, chain)
        lags = []
        for _ in range(3):
            await asyncio.sleep(1.5)  # ≈ 4 slots go by, no program transaction
            chain_slot = chain.rpc("getSlot")["result"]
            with Session(open_db(url)) as session:
                state = index_status(session)
            lags.append((chain_slot - state.cursor_slot, state.lag(chain_slot)))
    cursor_lags, lags_seen = zip(*lags, strict=True)
    assert cursor_lags[-1] > cursor_lags[0] + 5  # what the cursor alone gave: growing with the clock
    assert max(lags_seen) <= 5  # one seen_interval plus a slot or two, never the idle time
