"""The index holds one chain and has one writer, and a flaky node does not cost the back-fill: a database
built from another chain is refused with the --reset hint, a second indexer is refused, HTTP 429 / 5xx are
retried after Retry-After, and a back-fill cut by a long outage resumes from its cursor."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from ghostpay.indexer.guard import ChainMismatch, IndexerBusy
from ghostpay.indexer.models import IndexedTransaction
from ghostpay.indexer.service import Indexer, IndexerConfig
from tests.cli.conftest import GHOST
from tests.fault_proxy import FaultProxy
from tests.indexer.conftest import backfill, config, make_history, open_db, run_verify
from tests.indexer.history import HistorySpec
from tests.localnet.conftest import LocalnetProcess

SMALL = HistorySpec(agents=3, payers=2, payments=30, days=1, work_orders=False)


def indexed_transactions(url: str) -> int:
    with Session(open_db(url)) as session:
        return session.exec(select(func.count()).select_from(IndexedTransaction)).one()


def test_a_database_from_another_chain_is_refused_with_the_reset_hint(chain, tmp_path: Path) -> None:
    import subprocess

    url = f"sqlite:///{tmp_path / 'index.db'}"
    make_history(chain, SMALL)
    backfill(chain, url)
    other = LocalnetProcess(tmp_path / "other-ledger").start()
    try:
        with pytest.raises(ChainMismatch, match="another chain .* --reset"):
            backfill(other, url)
        assert indexed_transactions(url) > 0  # nothing was mixed in, nothing lost
        run = [GHOST, "indexer", "run", "--once", "-u", other.http_url, "--db", str(tmp_path / "index.db")]
        refused = subprocess.run(run, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 78 and "indexes another chain" in refused.stderr  # EX_CONFIG: no restart loop
        assert "ghost indexer run --reset" in refused.stderr and "Traceback" not in refused.stderr
        reset = subprocess.run(run + ["--reset"], capture_output=True, text=True, timeout=60)
        assert reset.returncode == 0, reset.stderr
        assert indexed_transactions(url) == 0  # the other chain has no GhostPay transactions yet
    finally:
        other.stop()


async def test_a_second_writer_is_refused(chain, db_url: str) -> None:
    first = Indexer(config(chain, db_url))
    running = asyncio.create_task(first.run())
    await asyncio.wait_for(first.live.wait(), 30)
    try:
        with pytest.raises(IndexerBusy, match="another indexer is writing"):
            await Indexer(config(chain, db_url)).run(once=True)
    finally:
        first.stop()
        await running
    await Indexer(config(chain, db_url)).run(once=True)  # released at the end of the run


def test_429_and_5xx_are_retried_after_retry_after(chain, tmp_path: Path, caplog) -> None:
    history = make_history(chain, SMALL)
    url = f"sqlite:///{tmp_path / 'index.db'}"
    with FaultProxy(chain.http_url) as proxy, caplog.at_level(logging.WARNING, "ghostpay.indexer.source"):
        proxy.throttle(every=3, status=429, retry_after=0.3)
        progress: list[tuple[int, int]] = []
        indexer = Indexer(
            IndexerConfig(proxy.url, chain.ws_url, url, batch_size=5),
            on_progress=lambda done, total: progress.append((done, total)),
        )
        totals = asyncio.run(indexer.run(once=True))
        assert proxy.refused > 0 and totals.stats.transactions == history.transactions
    # the progress hook (the CLI draws its bar with it) counts up to the whole back-fill in batch steps
    listed = history.transactions + history.failed  # failed ones are counted, not fetched
    assert progress[0] == (0, listed) and progress[-1] == (listed, listed)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress) and len(progress) > 3
    assert "answered HTTP 429; retrying in 0.30s" in caplog.text
    assert run_verify(chain, url).ok


def test_a_backfill_cut_by_an_outage_resumes_from_its_cursor(chain, tmp_path: Path) -> None:
    history = make_history(chain, SMALL)
    url = f"sqlite:///{tmp_path / 'index.db'}"
    with FaultProxy(chain.http_url) as proxy:
        proxy.fail_between(6, 10**9)  # after a few batches, the node fails for good
        cut = IndexerConfig(proxy.url, chain.ws_url, url, batch_size=5, rpc_retries=1)
        with pytest.raises(Exception, match="503"):
            asyncio.run(Indexer(cut).run(once=True))
        first = indexed_transactions(url)
        assert 0 < first < history.transactions
        proxy.failing = None
        totals = asyncio.run(Indexer(cut).run(once=True))
    assert totals.stats.transactions == history.transactions - first  # resumed: nothing applied twice
    assert indexed_transactions(url) == history.transactions and run_verify(chain, url).ok


def test_the_cli_refuses_a_second_indexer_in_one_line(chain, tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    db = tmp_path / "busy.db"
    run = [GHOST, "indexer", "run", "-u", chain.http_url, "--db", str(db), "--log-level", "warning"]
    first = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "busy.db.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # the file is created just before it is locked
        second = subprocess.run(run + ["--once"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and second.stdout == ""
        assert second.stderr.strip().splitlines() == [
            f"error: another indexer is writing sqlite:///{db}; stop it first, or index into another --db"
        ]
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
