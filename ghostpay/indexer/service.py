"""The indexer service: back-fill to the chain's tip, then follow the websocket, forever.

On start and after every disconnect it subscribes first (notifications queue up), back-fills
everything after the cursor with getSignaturesForAddress + getTransaction, then applies the
queued and new notifications; transactions seen twice are skipped by the processor, so the
overlap costs nothing and nothing falls in a gap. SIGTERM / SIGINT finish the current batch,
commit it with the cursor, and return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from solders.pubkey import Pubkey
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ghostpay.events import DecodedLogs, decode_logs
from ghostpay.gc_tuning import gc_relaxed
from ghostpay.indexer.guard import GuardError, WriterLock, check_chain
from ghostpay.indexer.models import Cursor, SeenSlot, connect
from ghostpay.indexer.process import Batch, BatchStats
from ghostpay.indexer.source import ChainTransaction, LogStream, RpcSource, SignatureInfo
from ghostpay.indexer.writer import WriterProcess
from ghostpay.program_id import PROGRAM_ID

log = logging.getLogger(__name__)

DEFAULT_BATCH = 200  # transactions per database transaction during back-fill
T = TypeVar("T")


@dataclass
class IndexerConfig:
    http_url: str
    ws_url: str
    db_url: str
    program_id: Pubkey = PROGRAM_ID
    commitment: str = "confirmed"
    batch_size: int = DEFAULT_BATCH
    reconnect_delay: float = 0.25
    max_reconnect_delay: float = 8.0
    rpc_retries: int = 6  # HTTP 429 / 5xx answers retried per request before the error ends the attempt
    seen_interval: float = 2.0  # while caught up and idle, note the chain's slot this often (lag on a quiet chain)
    trust_interval: float = 60.0  # while following, recompute the trust score at most this often (after new events)
    token_labels: str | None = None  # the label store whose test mints a localnet trusts (None: the data folder's)


@dataclass
class Totals:
    """What this run has applied (all batches)."""

    stats: BatchStats = field(default_factory=BatchStats)
    backfills: int = 0
    reconnects: int = 0

    def add(self, stats: BatchStats) -> None:
        t = self.stats
        t.transactions += stats.transactions
        t.duplicates += stats.duplicates
        t.failed += stats.failed
        t.events += stats.events
        t.skipped.add(stats.skipped)


CommitHook = Callable[[list[str], float], None]
"""Called after each commit with the signatures it applied and the time.perf_counter() of the commit."""
ProgressHook = Callable[[int, int], None]
"""Called during a back-fill with (transactions done, transactions to do)."""


class _Idle:
    """What `_next` returns when nothing arrived in time."""


IDLE = _Idle()


def note_seen_slot(engine: Engine, slot: int) -> None:
    with Session(engine) as session:
        row = session.get(SeenSlot, 1) or SeenSlot(id=1, slot=slot, seen_at=time.time())
        row.slot, row.seen_at = max(row.slot, slot), time.time()
        session.add(row)
        session.commit()


class Indexer:
    def __init__(
        self,
        config: IndexerConfig,
        engine: Engine | None = None,
        on_commit: CommitHook | None = None,
        on_progress: ProgressHook | None = None,
    ) -> None:
        self.config = config
        self.engine = engine or connect(config.db_url)
        self.rpc = RpcSource(config.http_url, config.program_id, config.commitment, retries=config.rpc_retries)
        self.on_commit = on_commit
        self.on_progress = on_progress
        self.chain_checked = False
        self.totals = Totals()
        self.stopping = asyncio.Event()
        self.live = asyncio.Event()  # set while subscribed and caught up
        # Batches are applied on the loop; PostgreSQL's are written on a database thread (by a process of their
        # own, `_writer`), SQLite's on the loop too. This process's GIL runs that work wherever it is, and threads
        # only contended for it (bench.indexer: a SQLite back-fill at 0.60 of the raw floor's rate with an apply
        # and a write thread, 0.69 without; PostgreSQL 0.66 -> 0.70 without the apply thread). An in-memory
        # SQLite database's connections are per thread besides.
        self._threaded = self.engine.dialect.name != "sqlite"
        self._write_thread: ThreadPoolExecutor | None = None  # started on first use, stopped when `run` returns
        self._trust_stale = True  # events were applied since the trust score was last computed
        self._trust_at = 0.0  # time.monotonic() of that computation
        self._decimals: dict[str, int] = {}  # of trusted mints, from the RPC

    async def _on_write_thread(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` on the database write thread; on SQLite, here on the loop (see `__init__`). Cancelled,
        it still waits for the work to finish, so the caller never rolls back a connection that the thread is
        using."""
        if not self._threaded:
            return work(*args)
        if self._write_thread is None:
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="indexer-write")
        future = asyncio.get_running_loop().run_in_executor(self._write_thread, work, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait({future})
            raise

    # cursor -------------------------------------------------------------------------------------------

    def cursor(self) -> Cursor | None:
        with Session(self.engine) as session:
            return session.get(Cursor, 1)

    # applying -----------------------------------------------------------------------------------------

    async def apply(
        self, transactions: list[ChainTransaction], decoded: dict[str, DecodedLogs] | None = None
    ) -> BatchStats:
        """Apply transactions (oldest first) in one database transaction, with the agent accounts they need;
        `decoded`: their logs decoded already."""
        return await self._write(await self._prepare(transactions, decoded))

    async def _prepare(
        self, transactions: list[ChainTransaction], decoded: dict[str, DecodedLogs] | None, after: Batch | None = None
    ) -> Batch:
        """A batch applied in memory and ready to write (`after`: the batch before it, maybe still writing)."""
        batch = Batch(self.engine, self.config.program_id, after)
        try:
            batch.apply_all(transactions, decoded)
            found = await self.rpc.agent_accounts(sorted(batch.needs_account)) if batch.needs_account else {}
            batch.prepare(found)
        except BaseException:
            batch.rollback()
            raise
        return batch

    async def _write(self, batch: Batch, writer: WriterProcess | None = None) -> BatchStats:
        """Write and commit a prepared batch (through `writer`, if given)."""
        try:
            if writer is not None:
                await self._on_write_thread(batch.write_to, writer)
            else:
                await self._on_write_thread(batch.write)
        except BaseException:
            batch.rollback()
            raise
        self.totals.add(batch.stats)
        if batch.stats.events:
            self._trust_stale = True
        if self.on_commit is not None and batch.applied_signatures:
            self.on_commit(batch.applied_signatures, time.perf_counter())
        return batch.stats

    async def _fetch(self, infos: list[SignatureInfo]) -> tuple[list[ChainTransaction], dict[str, DecodedLogs]]:
        """The transactions of `infos` in order, and the logs of those that did not fail decoded;
        failed ones are not fetched, only counted."""
        fetched = await self.rpc.transactions([i.signature for i in infos if not i.failed])
        decoded = {
            tx.signature: decode_logs(tx.logs, self.config.program_id, signature=tx.signature, slot=tx.slot)
            for tx in fetched
            if not tx.failed
        }
        found = iter(fetched)
        return [ChainTransaction(i.signature, i.slot, (), True) if i.failed else next(found) for i in infos], decoded

    async def backfill(self) -> int:
        """Apply every transaction after the cursor, in batches; returns how many were new."""
        cursor = self.cursor()
        infos = await self.rpc.signatures_after(cursor.signature if cursor else None)
        self.totals.backfills += 1
        log.info(
            "back-fill: %d transactions after %s", len(infos), f"slot {cursor.slot}" if cursor else "the beginning"
        )
        size = self.config.batch_size
        chunks = [infos[i : i + size] for i in range(0, len(infos), size)]
        if self.on_progress is not None:
            self.on_progress(0, len(infos))
        with gc_relaxed():  # each batch's rows live until its commit: young collections would rescan them
            return await self._run_pipeline(chunks, len(infos))

    async def _run_pipeline(self, chunks: list[list[SignatureInfo]], total: int) -> int:
        """Apply `chunks` of signatures in order; returns how many transactions were new.

        A pipeline: batch n + 1 is fetched (the RPC node answers on its own core) while the loop applies n. On
        PostgreSQL n is written by a process of its own (`ghostpay.indexer.writer`, off this process's GIL) while
        the loop goes on with n + 1; on SQLite the loop writes n itself (see `__init__`). Writes stay in order,
        one at a time, each with its cursor; n + 1 takes the rows n touched from n itself (they may not be
        committed yet)."""
        applied = done = 0
        writer = self._writer() if chunks else None
        pending = asyncio.ensure_future(self._fetch(chunks[0])) if chunks else None
        writing: asyncio.Future[BatchStats] | None = None
        previous: Batch | None = None
        try:
            for index in range(len(chunks)):
                assert pending is not None
                transactions, decoded = await pending
                pending = asyncio.ensure_future(self._fetch(chunks[index + 1])) if index + 1 < len(chunks) else None
                await asyncio.sleep(0)  # the fetch sends its requests before this batch takes the loop
                batch = await self._prepare(transactions, decoded, previous)
                if writing is not None:
                    applied += (await writing).transactions
                writing, previous = asyncio.ensure_future(self._write(batch, writer)), batch
                if not self._threaded:  # written on the loop: done
                    applied += (await writing).transactions
                    writing = None
                done += len(transactions)
                if self.on_progress is not None:
                    self.on_progress(done, total)
                log.debug(
                    "back-fill: applied %d transactions (%d events) up to slot %d",
                    batch.stats.transactions,
                    batch.stats.events,
                    transactions[-1].slot,
                )
                if self.stopping.is_set():
                    break
            if writing is not None:  # the last batch, committed before the writer process ends
                applied += (await writing).transactions
        except BaseException:
            if writing is not None and not writing.done():  # the batch in flight commits (or fails) first
                await asyncio.wait({writing})
            if writing is not None and not writing.cancelled():
                writing.exception()  # retrieved: the first error is the one raised
            raise
        finally:
            if pending is not None:
                pending.cancel()
            if writer is not None:
                writer.close()
        log.info("back-fill: %d transactions applied", applied)
        return applied

    def _writer(self) -> WriterProcess | None:
        """A writer process for a back-fill into PostgreSQL (None: SQLite, written on the loop)."""
        if not self._threaded:
            return None
        return WriterProcess(self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))

    # trust ----------------------------------------------------------------------------------------------

    async def refresh_trust(self, force: bool = False) -> None:
        """Recompute the trust score (`ghostpay.indexer.trust`) if events arrived since the last time and
        `trust_interval` has passed (or `force`: after a back-fill)."""
        due = time.monotonic() - self._trust_at >= self.config.trust_interval
        if not self._trust_stale or not (force or due):
            return
        from ghostpay.indexer import trust

        missing = await self._on_write_thread(trust.undecided_mints, self.engine, self.config.token_labels)
        for mint in missing:
            if mint not in self._decimals:
                with contextlib.suppress(Exception):  # not a mint: it weighs as a stablecoin would
                    self._decimals[mint] = int((await self.rpc.call("getTokenSupply", mint))["value"]["decimals"])
        await self._on_write_thread(trust.recompute, self.engine, self.config.token_labels, self._decimals)
        self._trust_stale, self._trust_at = False, time.monotonic()

    # live ---------------------------------------------------------------------------------------------

    async def _follow(self) -> None:
        """One websocket session: subscribe, back-fill, then apply notifications until it drops."""
        queue: asyncio.Queue[ChainTransaction | BaseException] = asyncio.Queue()
        async with LogStream(self.config.ws_url, self.config.program_id, self.config.commitment) as stream:

            async def read() -> None:
                try:
                    async for tx in stream:
                        queue.put_nowait(tx)
                except BaseException as exc:  # noqa: BLE001 - the drop itself is the message
                    queue.put_nowait(exc)

            reader = asyncio.create_task(read())
            try:
                await self.backfill()
                await self.refresh_trust(force=True)
                self.live.set()
                while not self.stopping.is_set():
                    first = await self._next(queue)
                    if first is None:
                        return
                    if first is IDLE:
                        await self._note_seen_slot(queue)
                        await self.refresh_trust()
                        continue
                    items = [first]
                    while not queue.empty():  # everything already queued goes in one commit
                        items.append(queue.get_nowait())
                    transactions = [i for i in items if isinstance(i, ChainTransaction)]
                    if transactions:
                        await self.apply(transactions)
                        await self.refresh_trust()  # at most once per trust_interval on a busy chain
                    dropped = next((i for i in items if isinstance(i, BaseException)), None)
                    if dropped is not None:
                        raise ConnectionError(str(dropped)) from dropped
            finally:
                self.live.clear()
                reader.cancel()

    async def _next(
        self, queue: asyncio.Queue[ChainTransaction | BaseException]
    ) -> ChainTransaction | BaseException | _Idle | None:
        """The next queued item; IDLE after `seen_interval` seconds without one; None once stopping."""
        get = asyncio.ensure_future(queue.get())
        stop = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait(
            {get, stop}, timeout=self.config.seen_interval, return_when=asyncio.FIRST_COMPLETED
        )
        stop.cancel()
        if get in done:
            return get.result()
        get.cancel()
        return IDLE if not done else None

    async def _note_seen_slot(self, queue: asyncio.Queue[ChainTransaction | BaseException]) -> None:
        """Nothing arrived for a while: everything up to the chain's current slot is applied (unless a
        notification came in meanwhile, then the next round notes it)."""
        slot = await self.rpc.slot()
        if queue.empty():
            await self._on_write_thread(note_seen_slot, self.engine, slot)

    async def check_chain(self) -> None:
        """Refuse a database built from another chain (`ChainMismatch`); once per run."""
        if not self.chain_checked:
            check_chain(self.engine, await self.rpc.genesis_hash(), self.config.http_url)
            self.chain_checked = True

    async def run(self, once: bool = False) -> Totals:
        """Back-fill (and exit if `once`), else follow the chain until `stop()`; reconnects with backoff.
        Holds the database's writer lock throughout (`IndexerBusy` if another indexer has it)."""
        delay = self.config.reconnect_delay
        lock = WriterLock(self.engine)
        try:
            lock.acquire()
            if once:  # errors end the run: a one-shot back-fill reports them rather than retrying
                await self.check_chain()
                await self.backfill()
                await self.refresh_trust(force=True)
                return self.totals
            while not self.stopping.is_set():
                try:
                    await self.check_chain()
                    await self._follow()
                except (asyncio.CancelledError, GuardError):
                    raise
                except Exception as exc:  # noqa: BLE001 - network drops, node errors: back off, then back-fill the gap
                    self.totals.reconnects += 1
                    log.warning(
                        "connection to %s lost (%s: %s); retrying in %.2fs",
                        self.config.http_url,
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), delay)
                    delay = min(delay * 2, self.config.max_reconnect_delay)
                else:
                    delay = self.config.reconnect_delay
            return self.totals
        finally:
            lock.release()
            await self.rpc.close()
            if self._write_thread is not None:
                self._write_thread.shutdown()
                self._write_thread = None

    def stop(self) -> None:
        """Finish the batch in hand, commit it with the cursor, and return from `run`."""
        self.stopping.set()


async def serve(config: IndexerConfig, once: bool = False, on_progress: ProgressHook | None = None) -> Totals:
    """Run an indexer with SIGTERM and SIGINT wired to a graceful stop."""
    indexer = Indexer(config, on_progress=on_progress)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, indexer.stop)
    try:
        totals = await indexer.run(once=once)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    s = totals.stats
    log.info(
        "stopped: %d transactions, %d events applied; %d duplicates, %d failed, %d event lines skipped",
        s.transactions,
        s.events,
        s.duplicates,
        s.failed,
        s.skipped.total,
    )
    return totals
