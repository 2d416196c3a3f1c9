"""Paid x402 calls/s with 1, 2 and 3 `ghost facilitator start --db postgresql://…` replicas on one PostgreSQL,
behind 2 `ghost x402 proxy` processes that spread their calls over the replicas, on one machine.

Each row runs the same load (CALLS paid calls from BUYERS buyers, CONCURRENCY at a time, the official x402
client) against a fresh database, and reads the CPU seconds each kind of process spent over it (facilitators,
proxies, PostgreSQL, the localnet, this process: the buyers and the upstream), so the row says what saturates:
on a machine of `cores` cores, a kind whose CPU seconds approach `cores × wall` bounds the rate. A section of
`bench/scale_out.py` (`run(smoke)`); on its own: `python -m bench.scale_out_facilitators` (GHOSTPAY_BENCH_SMOKE=1:
a few calls, the figures meaning nothing).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.report import RESULTS_DIR, SMOKE
from bench.x402 import cpu_seconds
from tests.indexer.postgres import PostgresCluster, postgres_binaries
from tests.localnet.conftest import LocalnetProcess
from tests.sdk.conftest import fund
from tests.x402.conftest import PRICE_ATOMIC, ServerThread, Upstream, buyer, register_agent
from tests.x402.replicas import Fleet, pay_all

REPLICAS = (1, 2, 3)
PROXIES = 2
CONCURRENCY = 32
BUYERS = 16
ATTEMPTS = 20


def _postgres_pids(cluster: PostgresCluster) -> list[int]:
    """The cluster's server processes: its postmaster and the backends it forked (other clusters on the machine,
    such as other test runs', are not counted)."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == postmaster:
                pids.append(int(entry.name))
    return pids


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid in pids)


def _measure(net: LocalnetProcess, cluster: PostgresCluster, folder: Path, replicas: int, calls: int) -> dict[str, Any]:
    fee_payer = fund(net, sol=100)
    agent = register_agent(net, f"scaled-{replicas}")
    warm_up = min(calls, CONCURRENCY)
    per_buyer = -(-warm_up // BUYERS) - (-calls // BUYERS)  # pay_all deals the calls out to the buyers in turn
    buyers = [buyer(net, agent.mint, per_buyer * PRICE_ATOMIC) for _ in range(BUYERS)]
    service = Upstream()
    with (
        ServerThread(service.app) as upstream,
        Fleet(
            net,
            folder / f"r{replicas}",
            cluster.create_database(),
            fee_payer,
            agent,
            upstream.url,
            facilitators=replicas,
            proxies=PROXIES,
        ) as fleet,
    ):
        proxies = [p.url for p in fleet.proxies]
        asyncio.run(pay_all(net, proxies, fee_payer, buyers, warm_up, CONCURRENCY, ATTEMPTS))
        kinds = {
            "facilitators": [p.proc.pid for p in fleet.facilitators if p.proc is not None],
            "proxies": [p.proc.pid for p in fleet.proxies if p.proc is not None],
            "postgres": _postgres_pids(cluster),
            "localnet": [net.proc.pid] if net.proc is not None else [],
        }
        before = {kind: _cpu(pids) for kind, pids in kinds.items()}
        own_before, started = time.process_time(), time.monotonic()
        paid = asyncio.run(pay_all(net, proxies, fee_payer, buyers, calls, CONCURRENCY, ATTEMPTS))
        wall = time.monotonic() - started
        cpu = {kind: round(_cpu(pids) - before[kind], 2) for kind, pids in kinds.items()}
        cpu["buyers+upstream"] = round(time.process_time() - own_before, 2)
    served = [p for p in paid if p.served]
    latencies = sorted(p.latency * 1000 for p in served)
    return {
        "facilitators": replicas,
        "proxies": PROXIES,
        "calls": calls,
        "served": len(served),
        "callsPerSecond": round(len(served) / wall, 1),
        "p50Ms": round(statistics.median(latencies), 1) if latencies else None,
        "wallSeconds": round(wall, 2),
        "cpuSeconds": cpu,
        "busiest": max(cpu, key=lambda kind: cpu[kind]),
    }


def run(smoke: bool) -> dict[str, Any]:
    """The section: one row per replica count."""
    missing = postgres_binaries()
    if missing:
        raise RuntimeError(f"PostgreSQL is not installed ({missing}); scripts/setup.sh installs it")
    calls = 24 if smoke else 1000
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="ghostpay-scale-fac-") as tmp:
        folder = Path(tmp)
        cluster = PostgresCluster().start()
        net = LocalnetProcess(folder / "ledger")
        net.start()
        try:
            for replicas in REPLICAS if not smoke else (1, 2):
                rows.append(_measure(net, cluster, folder, replicas, calls))
        finally:
            net.stop()
            cluster.stop()
    return {
        "title": f"x402 paid calls/s with N facilitator replicas on one PostgreSQL ({cores} cores, {PROXIES} proxies)",
        "rows": rows,
        "notes": (
            f"{calls} paid calls per row, concurrency {CONCURRENCY}, {BUYERS} buyers (official x402 client), all "
            f"processes on one {cores}-core machine (localnet, PostgreSQL, proxies, facilitators, buyers) "
            "share the cores, so a replica added here takes CPU from the others; cpuSeconds says which kind "
            "spent the most (busiest). Replicas scale a facilitator out across hosts; on one host they buy "
            "failover, not throughput, once the cores are busy."
        ),
    }


def main() -> None:
    section = run(SMOKE)
    table = Table(title=section["title"])
    for column in (
        "facilitators",
        "calls/s",
        "p50 ms",
        "served",
        "busiest",
        "CPU s (fac / proxy / pg / chain / buyers)",
    ):
        table.add_column(column)
    for row in section["rows"]:
        cpu = row["cpuSeconds"]
        table.add_row(
            str(row["facilitators"]),
            str(row["callsPerSecond"]),
            str(row["p50Ms"]),
            f"{row['served']}/{row['calls']}",
            row["busiest"],
            " / ".join(str(cpu[k]) for k in ("facilitators", "proxies", "postgres", "localnet", "buyers+upstream")),
        )
    console = Console()
    console.print(table)
    console.print(section["notes"])
    path = RESULTS_DIR / "scale_out_facilitators.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(section, indent=2) + "\n")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
