"""`ghost indexer serve` response times over a large index, as an HTTP client sees them.

    python -m bench.api        # print the table, write bench/results/api.json   (make bench-api)

10,000 agents (bench.cli's seeding) and 50,000 x402 payments over 7 days in SQLite, served by the
API's app under uvicorn on a real port (mint decimals from a throwaway localnet). Each endpoint:
median and p95 of 40 requests after a warm-up; and the live feed's delay from a committed event to
its arrival on `/api/events` (the server polls every 0.5 s by default).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.cli import seed_index
from bench.report import report, size
from ghostpay.localnet.process import LocalnetProcess

PAYMENTS = size(50_000, 500)
REQUESTS = size(40, 2)
FEED_EVENTS = size(20, 2)
DAY = 86_400


@dataclass
class Row:
    request: str
    median_ms: float
    p95_ms: float


def seed_payments(db: Path, mint: str, progress: Progress) -> list[str]:
    """PAYMENTS payments to the first 1,000 agents over the last 7 days; returns those agents."""
    from sqlmodel import Session, select

    from ghostpay.indexer.models import Agent, Payment, connect

    engine = connect(f"sqlite:///{db}")
    rng = random.Random(7)
    now = int(time.time())
    task = progress.add_task("indexing 50,000 payments", total=PAYMENTS)
    with Session(engine) as session:
        agents = [a.address for a in session.exec(select(Agent).limit(1000)).all()]
        for start in range(0, PAYMENTS, 5000):
            end = min(start + 5000, PAYMENTS)
            session.add_all(
                [
                    Payment(
                        agent=rng.choice(agents),
                        reference=os.urandom(32).hex(),
                        payer=agents[0],
                        mint=mint,
                        amount=rng.randrange(1_000, 1_000_000),
                        signature=f"sig{i}",
                        instruction_index=2,
                        slot=i,
                        timestamp=now - rng.randrange(7 * DAY),
                        outcome=rng.choice(["recorded", "success", "success", "failed"]),
                        response_time_ms=rng.choice([None, 300, 900]),
                    )
                    for i in range(start, end)
                ]
            )
            session.commit()
            progress.advance(task, end - start)
    return agents


def timed(http: httpx.Client, path: str) -> Row:
    assert http.get(path).status_code == 200, path
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = http.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    times.sort()
    label = re.sub(r"/api/agents/\w+", "/api/agents/AGENT", re.sub(r"(token|cursor)=[^&]+", r"\1=…", path))
    return Row(f"GET {label}", round(statistics.median(times), 1), round(times[int(len(times) * 0.95) - 1], 1))


def feed_delay(base: str, db: Path) -> Row:
    """Milliseconds from committing an event row to reading it from /api/events, FEED_EVENTS times."""
    from sqlmodel import Session

    from ghostpay.indexer.models import RawEvent, connect

    engine = connect(f"sqlite:///{db}")
    delays = []
    with httpx.Client(base_url=base, timeout=30) as http, http.stream("GET", "/api/events?names=BenchEvent") as stream:
        lines = stream.iter_lines()
        for n in range(FEED_EVENTS):
            time.sleep(random.random() * 0.5)
            with Session(engine) as session:
                session.add(
                    RawEvent(
                        signature=f"bench{n}",
                        slot=0,
                        instruction_index=0,
                        event_index=0,
                        name="BenchEvent",
                        timestamp=0,
                        data="{}",
                    )
                )
                session.commit()
                written = time.perf_counter()
            for line in lines:
                if line.startswith("data: ") and json.loads(line[6:])["signature"] == f"bench{n}":
                    delays.append((time.perf_counter() - written) * 1000)
                    break
    delays.sort()
    return Row(
        "live feed: event committed → received on /api/events",
        round(statistics.median(delays), 1),
        round(delays[int(len(delays) * 0.95) - 1], 1),
    )


def measure(console: Console) -> list[Row]:
    from ghostpay.analytics.api import ApiSettings
    from ghostpay.analytics.server import serve
    from ghostpay.sockets import listening_socket

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        net = LocalnetProcess(Path(tmp) / "ledger", "--quiet", home=Path(tmp) / "home").start()
        try:
            mint = net.rpc("surfnet_createMint", {"decimals": 6})["result"]["value"]
            db = Path(tmp) / "index.db"
            with Progress(console=console, transient=True) as progress:
                seed_index(db, mint, progress)
                agents = seed_payments(db, mint, progress)
            sock = listening_socket("127.0.0.1", 0)
            base = f"http://127.0.0.1:{sock.getsockname()[1]}"
            loop, stop, ready = asyncio.new_event_loop(), asyncio.Event(), threading.Event()
            settings = ApiSettings(f"sqlite:///{db}", rpc_url=net.http_url, webhooks=False)
            thread = threading.Thread(
                target=lambda: loop.run_until_complete(
                    serve(settings, sock, on_ready=lambda _: ready.set(), stop_event=stop)
                ),
                daemon=True,
            )
            thread.start()
            ready.wait(60)
            with httpx.Client(base_url=base, timeout=30) as http:
                second = http.get("/api/agents?x402_enabled=true&limit=20").json()["next_cursor"]
                for path in [
                    "/api/agents?x402_enabled=true&limit=20",
                    f"/api/agents?x402_enabled=true&capability=ocr&token={mint}&max_price=0.05"
                    "&min_reputation=5000&sort=price&limit=20",
                    f"/api/agents?x402_enabled=true&limit=20&cursor={second}",
                    f"/api/agents/{agents[0]}",
                    f"/api/agents/{agents[0]}/payments?limit=50",
                    "/api/metrics/x402?period=3600",
                    "/api/metrics/x402?period=604800",
                    "/api/metrics/volume?period=604800&buckets=24",
                    "/metrics",
                ]:
                    rows.append(timed(http, path))
                    console.log(f"{rows[-1].request}: {rows[-1].median_ms} ms")
            rows.append(feed_delay(base, db))
            console.log(f"{rows[-1].request}: {rows[-1].median_ms} ms")
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)
        finally:
            net.stop(signal.SIGTERM)
    return rows


def main() -> int:
    console = Console(stderr=True)
    rows = measure(console)
    table = Table(title=f"indexer API over 10,000 agents and 50,000 payments (SQLite, {os.cpu_count()} cores)")
    table.add_column("request")
    table.add_column("median ms", justify="right")
    table.add_column("p95 ms", justify="right")
    for row in rows:
        table.add_row(row.request, f"{row.median_ms:,.1f}", f"{row.p95_ms:,.1f}")
    report(table, rows, "api", console, width=140)
    return 0


if __name__ == "__main__":
    sys.exit(main())
