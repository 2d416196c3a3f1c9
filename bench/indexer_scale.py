"""Indexer at scale (a benchmark, not a test): a history of ≥ 100,000 events back-filled into SQLite,
the indexer's memory along the way, and `ghost agent search` over the resulting database.

    python -m bench.indexer_scale [--payments 32000]   → bench/results/indexer_scale.json

- back-fill: events/s, and the indexer's RSS after each quarter of the commits and at its peak
  (a forked process, so the figures are the indexer's own): flat means the last quarter is
  not above the first by more than the batch in hand;
- search: `ghost --db index.db agent search …` as a user runs it (the installed script in a
  subprocess, median of 5 after a warm-up), goal ≤ 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.indexer import in_child
from bench.report import report, size
from ghostpay.indexer.service import Indexer, IndexerConfig
from ghostpay.localnet.process import LocalnetProcess
from tests.indexer.history import HistorySpec, generate

GHOST = str(Path(sys.executable).with_name("ghost"))
MIN_EVENTS = size(100_000, 1)
SEARCH_GOAL_MS = 300
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Row:
    metric: str
    value: float
    unit: str


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE / 2**20


async def backfill(net: LocalnetProcess, db_url: str) -> dict[str, Any]:
    """A `--once` back-fill that samples its RSS after every commit."""
    samples: list[float] = []
    indexer = Indexer(
        IndexerConfig(net.http_url, net.ws_url, db_url), on_commit=lambda _signatures, _at: samples.append(rss_mib())
    )
    started = time.perf_counter()
    await indexer.run(once=True)
    seconds = time.perf_counter() - started
    stats = indexer.totals.stats
    quarters = [round(samples[min(len(samples) - 1, len(samples) * q // 4)], 1) for q in (1, 2, 3, 4)]
    return {
        "events": stats.events,
        "transactions": stats.transactions,
        "seconds": round(seconds, 2),
        "events_per_second": round(stats.events / seconds),
        "rss_quarters_mib": quarters,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def wall_ms(argv: list[str], env: dict[str, str], runs: int = size(5, 1)) -> float:
    times = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run([GHOST, *argv], capture_output=True, text=True, env=env, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"ghost {' '.join(argv)}: {done.stderr.strip()}")
        if attempt:
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(console: Console, payments: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        net = LocalnetProcess(Path(folder) / "ledger", "--quiet", home=home).start()
        try:
            with console.status(f"generating a history of {payments:,} payments"):
                started = time.perf_counter()
                history = asyncio.run(
                    generate(net.http_url, HistorySpec(agents=20, payers=16, payments=payments, days=4))
                )
                console.log(f"history: {history.transactions:,} transactions in {time.perf_counter() - started:.0f} s")
            db = Path(folder) / "index.db"
            with console.status("back-fill into SQLite"):
                result = in_child(backfill, net, f"sqlite:///{db}")
            console.log(f"back-fill: {result}")
            if result["events"] < MIN_EVENTS:
                raise SystemExit(f"only {result['events']:,} events: raise --payments")
            env = {**os.environ, "GHOSTPAY_HOME": str(home), "GHOST_URL": net.http_url, "HOME": folder}
            with console.status("ghost agent search over the index"):
                search = wall_ms(["--db", str(db), "agent", "search", "--x402-enabled"], env)
                search_json = wall_ms(
                    ["--db", str(db), "--output", "json", "agent", "search", "--sort", "price", "--limit", "20"], env
                )
                help_ms = wall_ms(["--help"], env)
        finally:
            net.stop()
    q = result["rss_quarters_mib"]
    return [
        Row(
            f"back-fill into SQLite ({result['events']:,} events, {result['transactions']:,} transactions)",
            result["events_per_second"],
            "events/s",
        ),
        Row("  indexer RSS after each quarter of the commits", q[0], f"MiB (then {q[1]}, {q[2]}, {q[3]})"),
        Row("  indexer peak RSS", result["peak_rss_mib"], "MiB"),
        Row(f"ghost --db index.db agent search --x402-enabled (goal ≤ {SEARCH_GOAL_MS} ms)", round(search), "ms"),
        Row("ghost --db index.db --output json agent search --sort price --limit 20", round(search_json), "ms"),
        Row("ghost --help (process start and CLI imports, for scale)", round(help_ms), "ms"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--payments", type=int, default=size(32_000, 20), help="payments in the history (~3.2 events each)"
    )
    args = parser.parse_args()
    console = Console(stderr=True)
    rows = measure(console, args.payments)
    table = Table(title="GhostPay indexer at scale (SQLite)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for row in rows:
        table.add_row(row.metric, f"{row.value:,}", row.unit)
    report(table, rows, "indexer_scale", console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
