"""Indexer benchmark: back-fill throughput over a generated history of at least 10,000
transactions (SQLite, and PostgreSQL when its binaries are installed), beside the raw floor of
the same run, and the live lag from confirmation to row on a localnet.

    python -m bench.indexer [--payments 6500] [--rounds 9] [--live 300]   → bench/results/indexer.json

The raw floor is what any indexer must do, done with the best primitives: fetch the same
transactions with the same RPC source, the next batch fetched while this one is decoded and
written, and write only the transactions and raw events into the same schema straight through the
driver (COPY on PostgreSQL, one executemany per table on SQLite), one database transaction per batch
of DEFAULT_BATCH, as the indexer commits; no state kept. Each database is written the faster way
measured here: PostgreSQL on a database thread (12,200 against 11,400 events/s on the loop, 8
alternated pairs), SQLite on the loop (11,100 against 10,500 on a thread, 10 pairs: under one GIL
the thread only contends with the loop). The indexer's ratio
to it shows how much its own bookkeeping costs (goal ≥ 0.6). Each back-fill runs in a forked
process so its peak RSS and CPU time are its own (its CPU time includes the PostgreSQL back-fill's writer
process). Every module either needs is imported by this process before it forks them, so neither times an
import: the trust score's (numpy, ~0.15 CPU s), which the indexer imports only when it first recomputes the score
after its back-fill, included. Back-fill and floor alternate for `--rounds` pairs and the
pair of the median ratio is reported, with every pair's ratio: one pair's wall-time ratio moved by ±15 % from
run to run on the 2-core machine. The CPU ratio (floor's CPU seconds ÷ back-fill's) is the steadier figure:
both are bound by their process's CPU under one GIL.

The history is tests/indexer/history.py's script (registrations, payments with feedback, owner
updates, work orders, days passing). Lag: each payment is sent, then its status asked for once;
the localnet answers a status only once the transaction is committed (its sendTransaction answer,
"processed", may come before), so "confirmed" is the moment that status arrives; "row" is the moment
the indexer's commit holding the transaction returns. A transaction's notification can beat
its HTTP answer, so lags can be negative; submit-to-row is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import multiprocessing
import resource
import statistics
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from bench.report import RESULTS_DIR, size
from ghostpay.accounts import Agent
from ghostpay.events import decode_logs
from ghostpay.indexer.models import IndexedTransaction, RawEvent, connect, table_of
from ghostpay.indexer.service import DEFAULT_BATCH, Indexer, IndexerConfig
from ghostpay.indexer.source import ChainTransaction, RpcSource
from ghostpay.indexer.trust import recompute as _trust_recompute  # noqa: F401 - imported here: see the docstring
from ghostpay.localnet.process import LocalnetProcess
from ghostpay.payments import build_x402_payment
from tests.indexer.history import Chain, HistorySpec, generate
from tests.indexer.postgres import PostgresCluster, postgres_binaries

RESULTS = RESULTS_DIR / "indexer.json"
MIN_TRANSACTIONS = size(10_000, 1)
GOALS = {"sqlite": 5_000, "postgresql": 3_000}  # events/s
RATIO_GOAL = 0.6
FLOOR_WRITES = {
    "backfill_sqlite": "pipelined fetch + decode + executemany on the loop, a transaction per batch",
    "backfill_postgresql": "pipelined fetch + decode + COPY, a transaction per batch",
}
FORK = multiprocessing.get_context("fork")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def backfill(net: LocalnetProcess, db_url: str) -> dict[str, Any]:
    indexer = Indexer(IndexerConfig(net.http_url, net.ws_url, db_url))
    started = time.perf_counter()
    await indexer.run(once=True)
    seconds = time.perf_counter() - started
    with Session(indexer.engine) as session:
        events = int(session.exec(select(func.count()).select_from(RawEvent)).one())
    stats = indexer.totals.stats
    return {
        "transactions": stats.transactions,
        "failed_skipped": stats.failed,
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_second": round(events / seconds),
        "transactions_per_second": round(stats.transactions / seconds),
    }


def floor_rows(fetched: list[ChainTransaction]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The `transactions` and `raw_events` rows of fetched transactions, their logs decoded."""
    transactions, events = [], []
    for tx in fetched:
        decoded = decode_logs(tx.logs, signature=tx.signature, slot=tx.slot)
        transactions.append((tx.signature, tx.slot, len(decoded.events), decoded.skipped.total))
        events += [
            (
                tx.signature,
                tx.slot,
                e.instruction_index,
                e.event_index,
                e.name,
                str(e.data.agent),
                e.data.timestamp,
                e.to_json(),
            )
            for e in decoded.events
        ]
    return transactions, events


class FloorWriter:
    """Rows straight to the driver, one database transaction per batch (as durable as the indexer's): COPY on
    PostgreSQL, executemany on SQLite. Used from one thread, where it opens its connection."""

    TABLES = (
        (table_of(IndexedTransaction).name, ("signature", "slot", "events", "skipped")),
        (
            table_of(RawEvent).name,
            ("signature", "slot", "instruction_index", "event_index", "name", "agent", "timestamp", "data"),
        ),
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Any = None

    def write(self, *rows_per_table: list[tuple[Any, ...]]) -> None:
        if self.connection is None:
            self.connection = self.engine.raw_connection().driver_connection
        cursor = self.connection.cursor()
        for (table, columns), rows in zip(self.TABLES, rows_per_table, strict=True):
            if not rows:
                continue
            if self.engine.dialect.name == "postgresql":
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns))
                cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        cursor.close()
        self.connection.commit()


async def raw_floor(net: LocalnetProcess, db_url: str) -> dict[str, Any]:
    """The fastest plain back-fill: the same RPC source fetching batch n + 1 (concurrent getTransaction batches)
    while batch n is decoded and then written by `FloorWriter` (on a database thread for PostgreSQL, on the loop
    for SQLite: see the module's docstring); nothing else kept."""
    writer = FloorWriter(connect(db_url))
    rpc = RpcSource(net.http_url)
    thread = ThreadPoolExecutor(1, thread_name_prefix="floor-write")
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    events = 0
    try:
        infos = await rpc.signatures_after(None)
        signatures = [i.signature for i in infos if not i.failed]
        chunks = [signatures[i : i + DEFAULT_BATCH] for i in range(0, len(signatures), DEFAULT_BATCH)]
        fetching = [asyncio.ensure_future(rpc.transactions(chunks[0]))] if chunks else []
        writing: asyncio.Future[None] | None = None
        for index in range(len(chunks)):
            fetched = await fetching.pop()
            if index + 1 < len(chunks):
                fetching.append(asyncio.ensure_future(rpc.transactions(chunks[index + 1])))
                await asyncio.sleep(0)  # its requests leave before this batch takes the loop
            transactions, event_rows = floor_rows(fetched)
            if writing is not None:
                await writing
            if writer.engine.dialect.name == "sqlite":  # on the loop, as the indexer does: see the docstring
                writer.write(transactions, event_rows)
            else:
                writing = loop.run_in_executor(thread, writer.write, transactions, event_rows)
            events += len(event_rows)
        if writing is not None:
            await writing
    finally:
        await rpc.close()
        thread.shutdown()
    seconds = time.perf_counter() - started
    return {"events": events, "seconds": round(seconds, 2), "events_per_second": round(events / seconds)}


def in_child(work: Any, *args: Any) -> dict[str, Any]:
    """`asyncio.run(work(*args))` in a forked process; its result plus the child's peak RSS in MiB and its CPU
    seconds, those of the processes it started and waited for (a writer process) included."""
    receiver, sender = FORK.Pipe(duplex=False)

    def child() -> None:
        try:
            result = asyncio.run(work(*args))
        except BaseException:  # handed to the parent, which raises it: a silent child would hang it
            sender.send(traceback.format_exc())
            raise
        usage = resource.getrusage(resource.RUSAGE_SELF)
        helpers = resource.getrusage(resource.RUSAGE_CHILDREN)  # the PostgreSQL back-fill's writer process
        result["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)
        cpu = usage.ru_utime + usage.ru_stime + helpers.ru_utime + helpers.ru_stime
        result["cpu_seconds"] = round(cpu, 2)
        sender.send(result)

    process = FORK.Process(target=child)
    process.start()
    result = receiver.recv()
    process.join()
    if isinstance(result, str):
        raise RuntimeError(f"{work.__name__} failed in its process:\n{result}")
    return result


def compare(net: LocalnetProcess, kind: str, make_url: Any, rounds: int) -> dict[str, Any]:
    """The indexer's back-fill and the raw floor into fresh databases of one kind, in turn for `rounds` pairs:
    the pair of the median ratio, with every pair's ratios and the median CPU ratio."""
    pairs = []
    for round_ in range(rounds):
        indexed = in_child(backfill, net, make_url(f"indexer{round_}"))
        floor = in_child(raw_floor, net, make_url(f"floor{round_}"))
        indexed["raw_floor"] = floor
        indexed["ratio_to_floor"] = round(indexed["events_per_second"] / floor["events_per_second"], 2)
        indexed["cpu_ratio_to_floor"] = round(floor["cpu_seconds"] / indexed["cpu_seconds"], 2)
        pairs.append(indexed)
    median = sorted(pairs, key=lambda pair: pair["ratio_to_floor"])[len(pairs) // 2]
    median["ratios_to_floor"] = [pair["ratio_to_floor"] for pair in pairs]
    median["cpu_ratios_to_floor"] = [pair["cpu_ratio_to_floor"] for pair in pairs]
    median["cpu_ratio_to_floor"] = statistics.median(median["cpu_ratios_to_floor"])  # of its own pairs
    median["goal_events_per_second"] = GOALS[kind]
    return median


def live_lag(net: LocalnetProcess, db_url: str, count: int) -> dict[str, Any]:
    """Pays `count` calls one after another while an indexer follows in its own thread."""
    committed: dict[str, float] = {}
    indexer: Indexer | None = None
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def follow() -> None:
        nonlocal indexer
        asyncio.set_event_loop(loop)
        indexer = Indexer(
            IndexerConfig(net.http_url, net.ws_url, db_url),
            on_commit=lambda sigs, at: committed.update((s, at) for s in sigs),
        )

        async def main() -> None:
            assert indexer is not None
            task = asyncio.create_task(indexer.run())
            await indexer.live.wait()
            ready.set()
            await task

        loop.run_until_complete(main())

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    ready.wait(120)

    async def pay() -> tuple[dict[str, float], dict[str, float]]:
        chain = Chain(net.http_url, 1)
        history = await generate(
            net.http_url, HistorySpec(agents=2, payers=1, payments=0, days=1, work_orders=False, seed=99)
        )
        submitted: dict[str, float] = {}
        confirmed: dict[str, float] = {}
        payer = await _funded_payer(chain, history.mint)
        agent = history.agents[0]
        account = (await chain.rpc("getAccountInfo", str(agent), {"encoding": "base64"}))["value"]
        decoded = Agent.decode(base64.b64decode(account["data"][0]))  # its price moved during the script
        price = next(t.price for t in decoded.x402_accepted_tokens if t.mint == history.mint)
        for i in range(count):
            ixs = build_x402_payment(
                payer.pubkey(),
                agent,
                decoded.x402_payment_address,
                history.mint,
                6,
                price,
                i.to_bytes(32, "little"),
                compute_unit_limit=60_000,
            )
            start = time.perf_counter()
            signature = await chain.send(ixs, [payer])
            status = (await chain.rpc("getSignatureStatuses", [signature]))["value"][0]
            if status is None or status["err"] is not None:
                raise RuntimeError(f"payment {signature} not confirmed: {status}")
            confirmed[signature] = time.perf_counter()
            submitted[signature] = start
            await asyncio.sleep(0.01)  # a steady flow, not a burst
        await chain.close()
        return submitted, confirmed

    submitted, confirmed = asyncio.run(pay())
    deadline = time.monotonic() + 60
    while not all(s in committed for s in confirmed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert indexer is not None
    loop.call_soon_threadsafe(indexer.stop)
    thread.join(30)
    lags = [(committed[s] - confirmed[s]) * 1000 for s in confirmed if s in committed]
    from_submit = [(committed[s] - submitted[s]) * 1000 for s in confirmed if s in committed]
    return {
        "payments": count,
        "indexed": len(lags),
        "confirmed_to_row_ms": {"p50": round(percentile(lags, 50), 2), "p99": round(percentile(lags, 99), 2)},
        "submitted_to_row_ms": {
            "p50": round(percentile(from_submit, 50), 2),
            "p99": round(percentile(from_submit, 99), 2),
        },
    }


async def _funded_payer(chain: Chain, mint: Pubkey) -> Keypair:
    payer = Keypair()
    await chain.fund(payer)
    await chain.mint_to(payer.pubkey(), mint, 10**15)
    return payer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=size(6_500, 20), help="payments in the history (~1.6 tx each)")
    parser.add_argument(
        "--rounds", type=int, default=size(9, 1), help="back-fill and floor pairs per database (the median reported)"
    )
    parser.add_argument("--live", type=int, default=size(300, 3), help="payments sent one by one for the lag")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        net = LocalnetProcess(Path(folder) / "ledger", home=Path(folder) / "home").start()
        try:
            with console.status("generating the history"):
                started = time.perf_counter()
                history = asyncio.run(
                    generate(net.http_url, HistorySpec(agents=20, payers=16, payments=args.payments, days=4))
                )
                results["history"] = {
                    "transactions": history.transactions,
                    "failed": history.failed,
                    "seconds": round(time.perf_counter() - started, 2),
                }
            if history.transactions < MIN_TRANSACTIONS:
                raise SystemExit(f"only {history.transactions} transactions: raise --payments")
            with console.status("back-fill into SQLite (indexer, then raw floor)"):
                results["backfill_sqlite"] = compare(
                    net, "sqlite", lambda name: f"sqlite:///{folder}/{name}.db", args.rounds
                )
            if postgres_binaries() is None:
                cluster = PostgresCluster().start()
                try:
                    with console.status("back-fill into PostgreSQL (indexer, then raw floor)"):
                        results["backfill_postgresql"] = compare(
                            net, "postgresql", lambda _: cluster.create_database(), args.rounds
                        )
                finally:
                    cluster.stop()
            with console.status("live lag"):
                results["live_sqlite"] = live_lag(net, f"sqlite:///{folder}/live.db", args.live)
        finally:
            net.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title="GhostPay indexer")
    table.add_column("metric")
    table.add_column("value", justify="right")
    h = results["history"]
    table.add_row("history", f"{h['transactions']:,} transactions (+{h['failed']} failed)")
    for key, label in (("backfill_sqlite", "SQLite"), ("backfill_postgresql", "PostgreSQL")):
        if key in results:
            b = results[key]
            table.add_row(
                f"back-fill into {label} (goal ≥ {b['goal_events_per_second']:,} events/s)",
                f"{b['events_per_second']:,} events/s ({b['events']:,} events, "
                f"{b['transactions_per_second']:,} tx/s, {b['seconds']} s, peak RSS {b['peak_rss_mib']} MiB)",
            )
            table.add_row(
                f"  raw floor into {label}: {FLOOR_WRITES[key]}",
                f"{b['raw_floor']['events_per_second']:,} events/s",
            )
            table.add_row(
                f"  ratio to the floor (goal ≥ {RATIO_GOAL}), median of {len(b['ratios_to_floor'])} pairs",
                f"{b['ratio_to_floor']} (each pair: {', '.join(map(str, b['ratios_to_floor']))})",
            )
            table.add_row(
                "  CPU ratio (floor's CPU s ÷ back-fill's), median of the pairs",
                f"{b['cpu_ratio_to_floor']} (each pair: {', '.join(map(str, b['cpu_ratios_to_floor']))})",
            )
    live = results["live_sqlite"]
    table.add_row(
        "live lag, confirmation → row (SQLite; goal p99 ≤ 250 ms)",
        f"p50 {live['confirmed_to_row_ms']['p50']} ms, p99 {live['confirmed_to_row_ms']['p99']} ms",
    )
    table.add_row(
        "live lag, submit → row (SQLite)",
        f"p50 {live['submitted_to_row_ms']['p50']} ms, p99 {live['submitted_to_row_ms']['p99']} ms",
    )
    console.print(table)
    console.print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
