"""SSE delivery delay with 3 API replicas on one PostgreSQL: the live feed pushed by the writer's NOTIFY, beside
the old way (every stream polling every 0.5 s, `ghost indexer serve --poll-feed`).

    python -m bench.scale_out_api     # this section alone, no results file (bench.scale_out runs every section)

Three `ghost indexer serve` processes over one database, SUBSCRIBERS streams of `/api/events` on each. A writer
commits EVENTS events one per transaction, 0 to 0.5 s apart at random, each with the NOTIFY the indexer sends in
its commit (`notify_new_events`). The delay is commit → the event's line read by a subscriber, over every
subscriber; the reads are the replicas' `ghostpay_live_feed_reads_total`, per event and per second while idle.
"""

from __future__ import annotations

import json
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from bench.report import size
from ghostpay.indexer.models import RawEvent, connect, notify_new_events, table_of
from tests.indexer.postgres import PostgresCluster, postgres_binaries

REPLICAS = 3
SUBSCRIBERS = 10  # per replica
EVENTS = 50
IDLE_SECONDS = 5.0
POLL_SECONDS = 0.5  # the API's default poll interval
MODES = {"NOTIFY (one LISTEN per replica)": [], "polling every 0.5 s (--poll-feed)": ["--poll-feed"]}


class Replica:
    """`ghost indexer serve` in a process of its own, on a free port."""

    def __init__(self, db_url: str, *options: str) -> None:
        ghost = str(Path(sys.executable).with_name("ghost"))
        argv = [ghost, "--db", db_url, "indexer", "serve", "--port", "0", "--no-webhooks", "--json", *options]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        self.url = json.loads(self.process.stdout.readline())["url"]

    def reads(self) -> float:
        text = httpx.get(self.url + "metrics", timeout=30).text
        found = re.search(r"^ghostpay_live_feed_reads_total (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)


class Subscriber:
    """A stream of `/api/events` in a thread: when each event's line arrived (time.perf_counter)."""

    def __init__(self, url: str) -> None:
        self.arrived: dict[str, float] = {}
        self.open = threading.Event()
        self.client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self.thread = threading.Thread(target=self._read, args=(url + "api/events",), daemon=True)
        self.thread.start()

    def _read(self, url: str) -> None:
        try:
            with self.client.stream("GET", url) as stream:
                for line in stream.iter_lines():
                    self.open.set()
                    if line.startswith("data: "):
                        self.arrived[json.loads(line[6:])["signature"]] = time.perf_counter()
        except httpx.HTTPError:
            pass  # closed when done

    def close(self) -> None:
        self.client.close()


def commit_event(engine: Engine, n: int) -> float:
    """One event in its own transaction with the indexer's NOTIFY; the moment it committed."""
    with engine.begin() as connection:
        connection.execute(
            table_of(RawEvent).insert(),
            {
                "signature": f"bench{n}",
                "slot": n,
                "instruction_index": 0,
                "event_index": 0,
                "name": "BenchEvent",
                "timestamp": 0,
                "data": "{}",
            },
        )
        notify_new_events(connection)
    return time.perf_counter()


def measure(db_url: str, options: list[str], events: int, subscribers: int, idle: float, first: int) -> dict[str, Any]:
    """One mode's row: `events` events (numbered from `first`) to `subscribers` streams on each replica."""
    engine = connect(db_url)
    replicas = [Replica(db_url, *options) for _ in range(REPLICAS)]
    streams = [Subscriber(r.url) for r in replicas for _ in range(subscribers)]
    try:
        for s in streams:
            assert s.open.wait(60), "a stream did not open"
        started = time.monotonic()
        before = sum(r.reads() for r in replicas)
        time.sleep(idle)
        idle_reads = sum(r.reads() for r in replicas) - before
        idle_seconds = time.monotonic() - started  # the /metrics reads included: a bound, not the sleep
        before = sum(r.reads() for r in replicas)
        committed = {}
        for n in range(first, first + events):
            time.sleep(random.random() * POLL_SECONDS)
            committed[f"bench{n}"] = commit_event(engine, n)
        deadline = time.monotonic() + 60
        while any(len(s.arrived) < events for s in streams) and time.monotonic() < deadline:
            time.sleep(0.05)
        event_reads = sum(r.reads() for r in replicas) - before
    finally:
        for s in streams:
            s.close()
        for r in replicas:
            r.stop()
        engine.dispose()
    delays = sorted((s.arrived[sig] - at) * 1000 for s in streams for sig, at in committed.items() if sig in s.arrived)
    return {
        "subscribers": len(streams),
        "events": events,
        "received": f"{len(delays)} of {events * len(streams)}",
        "p50_ms": round(statistics.median(delays), 1),
        "p95_ms": round(delays[max(0, int(len(delays) * 0.95) - 1)], 1),
        "max_ms": round(delays[-1], 1),
        "reads_per_event": round(event_reads / events, 1),
        "idle_reads_per_s": round(idle_reads / idle_seconds, 1),
    }


def run(smoke: bool) -> dict[str, Any]:
    title = f"Live feed (SSE) delivery delay, {REPLICAS} API replicas on one PostgreSQL"
    missing = postgres_binaries()
    if missing:
        return {"title": title, "rows": [], "notes": f"not measured: PostgreSQL is not installed ({missing})"}
    events, subscribers, idle = size(EVENTS, 3), size(SUBSCRIBERS, 1), size(int(IDLE_SECONDS), 1)
    cluster = PostgresCluster().start()
    rows = []
    try:
        for n, (mode, options) in enumerate(MODES.items()):
            found = measure(cluster.create_database(), options, events, subscribers, idle, n * events)
            rows.append({"live feed": mode, "replicas": REPLICAS, **found})
    finally:
        cluster.stop()
    return {
        "title": title,
        "rows": rows,
        "notes": f"events committed 0-{POLL_SECONDS} s apart at random, one per transaction; delay = commit → the "
        "line read by each subscriber (all processes on this machine); reads: the replicas' live-feed reads of "
        "the database. NOTIFY reads once per open stream per commit and never while idle; polling reads once per "
        f"stream every {POLL_SECONDS} s, events or not.",
    }


if __name__ == "__main__":
    from bench.report import SMOKE
    from bench.scale_out import show

    show(run(SMOKE))
