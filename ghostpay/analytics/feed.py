"""When the live feed (`/api/events`) looks for new events.

On PostgreSQL one LISTEN connection per API process hears the indexer's NOTIFY (sent in the commit of every
batch that added events, `ghostpay.indexer.models.EVENTS_CHANNEL`) and wakes every open stream, which reads
on from its own position: nothing is read while nothing is indexed, however many replicas and subscribers.
A LISTEN connection that drops (server restart, `pg_terminate_backend`, a silent network) is opened again
and every stream is woken once it listens, so what was committed meanwhile is read from each stream's
position: nothing is lost, only late. On SQLite (no NOTIFY) each stream looks every `poll_interval`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from ghostpay.indexer.models import EVENTS_CHANNEL, database_url

log = logging.getLogger(__name__)

RECONNECT_DELAY = 1.0  # seconds between attempts to open a dropped LISTEN connection
LIVENESS_INTERVAL = 15.0  # seconds without a notification after which the LISTEN connection is pinged
LISTEN_APPLICATION = "ghostpay-live-feed"  # the LISTEN connection's application_name (pg_stat_activity)


@dataclass
class FeedCounters:
    """This process's live feed, for /metrics."""

    reads: int = 0  # database reads made by the streams
    wakeups: int = 0  # notifications heard (PostgreSQL)
    reconnects: int = 0  # LISTEN connections opened again after a drop


class LiveFeed:
    """Wakes the streams: `generation` moves on every wake-up; `wait(seen)` returns once it moved past
    `seen`, or after `timeout`. Polling (SQLite): every wait is `poll_interval` long."""

    notify = False

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self.generation = 0
        self.counters = FeedCounters()
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self.generation += 1
        self._woken.set()
        self._woken = asyncio.Event()

    async def wait(self, seen: int, timeout: float) -> bool:
        """True when woken (or it is time to poll), False when `timeout` passed first."""
        if not self.notify:
            await asyncio.sleep(min(self.poll_interval, timeout))
            return self.poll_interval <= timeout
        if self.generation != seen:
            return True
        try:
            await asyncio.wait_for(self._woken.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Listen until cancelled (nothing to do when polling)."""


class NotifyFeed(LiveFeed):
    """The PostgreSQL feed: `run()` keeps one LISTEN connection open and wakes the streams on each NOTIFY."""

    notify = True

    def __init__(self, db_url: str, poll_interval: float) -> None:
        super().__init__(poll_interval)
        self.conninfo = make_url(database_url(db_url)).set(drivername="postgresql").render_as_string(False)
        self.listening = False

    async def run(self) -> None:
        import psycopg

        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                log.warning("live feed: LISTEN connection lost (%s: %s); opening it again", type(exc).__name__, exc)
            if self.listening:
                self.listening = False
                self.counters.reconnects += 1
            await asyncio.sleep(RECONNECT_DELAY)

    async def _listen(self) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, application_name=LISTEN_APPLICATION
        ) as connection:
            await connection.execute(f"LISTEN {EVENTS_CHANNEL}")
            self.listening = True
            self.wake()  # what was committed while no one listened is read now, from each stream's position
            while True:
                async for _ in connection.notifies(timeout=LIVENESS_INTERVAL):
                    self.counters.wakeups += 1
                    self.wake()
                await connection.execute("SELECT 1")  # a dead connection says so only when used


def live_feed(db_url: str, poll_interval: float, poll: bool = False) -> LiveFeed:
    """The feed for `db_url`: NOTIFY-driven on PostgreSQL (unless `poll`), polling on SQLite."""
    if database_url(db_url).startswith("postgresql") and not poll:
        return NotifyFeed(db_url, poll_interval)
    return LiveFeed(poll_interval)
