"""Fleet budgets: the spend ledger's reservations/s with 1 and 4 processes, on PostgreSQL and on SQLite.

A section of bench/scale_out.py (`run(smoke)`); on its own: `python -m bench.scale_out_ledger`. Each process
makes `reserve()` calls back to back (a daily budget checked, the reservation inserted, one transaction
holding the wallet's lock) against a fresh ledger, every process started together; the figure is all the
reservations divided by the wall time from the start signal to the last one done. "one wallet": the fleet
shares a wallet, so every reservation queues on its one lock (PostgreSQL: its `spend_wallets` row; SQLite:
the file's write lock). "a wallet each": PostgreSQL reserves for different wallets in parallel, SQLite still
one at a time. PostgreSQL is a throwaway cluster on this machine (fsync off, as the suite's).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.report import RESULTS_DIR, SMOKE
from ghostpay.spending import Spend, SpendingGuards, SpendLedger
from tests.indexer.postgres import PostgresCluster, postgres_binaries

PROCESS_COUNTS = (1, 4)
RESERVATIONS = 400  # per process; the smoke run makes a few
SMOKE_RESERVATIONS = 5
MINT = "Usdc1111111111111111111111111111111111111111"
AMOUNT = 10_000  # 0.01 of a 6-decimals token
GUARDS = SpendingGuards(daily=Decimal(10**9))  # checked every time, never the reason a reservation fails


def _reserve(location: str, wallet: str, count: int, ready: Any, go: Any, done: Any) -> None:
    ledger = SpendLedger(location)
    ledger.reserve(GUARDS, Spend(wallet, MINT, 6, AMOUNT, "Seller1"))  # connected and warm before the start
    ready.put(True)
    go.wait()
    for _ in range(count):
        ledger.reserve(GUARDS, Spend(wallet, MINT, 6, AMOUNT, "Seller1"))
    done.put(time.perf_counter())


def measure(location: str, processes: int, count: int, shared_wallet: bool) -> float:
    """Reservations per second of `processes` processes making `count` each on `location`."""
    context = multiprocessing.get_context("spawn")
    ready, go, done = context.Queue(), context.Event(), context.Queue()
    workers = [
        context.Process(
            target=_reserve, args=(location, "Wallet1" if shared_wallet else f"Wallet{i}", count, ready, go, done)
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:  # every worker imported, connected and waiting: start-up is no reservation's cost
        ready.get(timeout=600)
    started = time.perf_counter()
    go.set()
    finished = max(done.get(timeout=600) for _ in workers)
    for worker in workers:
        worker.join(60)
    return processes * count / (finished - started)


def run(smoke: bool) -> dict[str, Any]:
    count = SMOKE_RESERVATIONS if smoke else RESERVATIONS
    rows: list[dict[str, Any]] = []
    notes = [f"{os.cpu_count()} cores; {count} reservations per process, each one transaction"]
    cluster = PostgresCluster().start() if postgres_binaries() is None else None
    folder = Path(tempfile.mkdtemp(prefix="ghostpay-ledger-bench-"))
    try:
        stores: list[tuple[str, Any]] = [("SQLite", lambda n: str(folder / f"ledger{n}.sqlite3"))]
        if cluster is not None:
            stores.insert(0, ("PostgreSQL", lambda _: cluster.create_database()))
        else:
            notes.append("PostgreSQL not installed: its rows are missing")
        for store, fresh in stores:
            for shared in (True,) if smoke else (True, False):
                for processes in PROCESS_COUNTS:
                    location = fresh(len(rows))
                    per_second = measure(location, processes, count, shared)
                    rows.append(
                        {
                            "store": store,
                            "wallets": "one wallet" if shared else "a wallet each",
                            "processes": processes,
                            "reservations": processes * count,
                            "reservations_per_s": round(per_second, 1),
                        }
                    )
    finally:
        if cluster is not None:
            cluster.stop()
    return {"title": "Fleet budgets: spend ledger reservations/s", "rows": rows, "notes": " ".join(notes)}


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    section = run(SMOKE)
    table = Table(title=section["title"], caption=section["notes"])
    for column in section["rows"][0]:
        table.add_column(column)
    for row in section["rows"]:
        table.add_row(*(str(value) for value in row.values()))
    Console().print(table)
    path = RESULTS_DIR / "scale_out_ledger.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(section, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
