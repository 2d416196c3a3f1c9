"""The `ghost` CLI's wall times, as a user sees them (the installed script in a subprocess).

    python -m bench.cli        # print the table, write bench/results/cli.json   (make bench-cli)

- `ghost --help` and `ghost agent search --help` (the Solana stack is not imported for help);
- `ghost agent search` over 10,000 agents in an indexer database (SQLite; rows written with the
  indexer's own models, one 6-decimal mint on a throwaway localnet for the decimals), with filters and
  the default page of 50, in text and JSON; the JSON search once more through SQLAlchemy (a
  `sqlite+pysqlite:///` URL reads the same file through `ghostpay.indexer.queries`, not `sqlite_read`);
- the same search from the chain: 10,000 Agent accounts loaded with `surfnet_setAccount`, read with
  getProgramAccounts and decoded.

Each is the median of several runs after one warm-up.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.localnet import AGENTS, load_agents
from bench.report import report, size
from ghostpay.localnet.process import LocalnetProcess

GHOST = str(Path(sys.executable).with_name("ghost"))
RUNS = size(5, 1)
CAPABILITIES = ("translate", "summarize", "ocr", "vision", "code", "search", "chat", "audio")


@dataclass
class Row:
    command: str
    median_ms: float
    results: int | None = None


def wall_ms(argv: list[str], env: dict[str, str], runs: int = RUNS) -> tuple[float, str]:
    """Median wall time of `ghost argv` over `runs` runs after one warm-up; and the last stdout."""
    times = []
    out = ""
    for attempt in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run([GHOST, *argv], capture_output=True, text=True, env=env, timeout=120)
        elapsed = (time.perf_counter() - started) * 1000
        if done.returncode != 0:
            raise RuntimeError(f"ghost {' '.join(argv)}: {done.stderr.strip()}")
        out = done.stdout
        if attempt:
            times.append(elapsed)
    return statistics.median(times), out


def seed_index(db: Path, mint: str, progress: Progress) -> None:
    """AGENTS indexed agents: x402 on for 3 in 4, prices 0.001-0.999 of `mint`, two capabilities each."""
    from solders.pubkey import Pubkey
    from sqlmodel import Session

    from ghostpay.indexer.models import Agent, AgentCapability, AgentToken, connect

    engine = connect(f"sqlite:///{db}")
    task = progress.add_task("indexing 10,000 agents", total=AGENTS)
    now = int(time.time())
    with Session(engine) as session:
        for start in range(0, AGENTS, 1000):
            end = min(start + 1000, AGENTS)
            agents: list[dict[str, Any]] = []
            tokens: list[dict[str, Any]] = []
            caps: list[dict[str, Any]] = []
            for i in range(start, end):
                address, owner = str(Pubkey.new_unique()), str(Pubkey.new_unique())
                agents.append(
                    {
                        "address": address,
                        "owner": owner,
                        "agent_id": f"agent-{i}",
                        "name": f"Agent {i}",
                        "x402_enabled": i % 4 != 0,
                        "registration": 1,
                        "payment_address": owner,
                        "endpoint": f"https://a{i}.example/api",
                        "reputation_score": (i * 37) % 10_001,
                        "x402_total_calls": i % 100,
                        "created_at": now - i,
                        "updated_at": now - i,
                    }
                )
                tokens.append({"agent": address, "mint": mint, "position": 0, "price": 1_000 * (1 + i % 999)})
                caps += [
                    {"agent": address, "capability": CAPABILITIES[i % 8]},
                    {"agent": address, "capability": CAPABILITIES[(i + 3) % 8]},
                ]
            session.add_all(
                [Agent(**a) for a in agents] + [AgentToken(**t) for t in tokens] + [AgentCapability(**c) for c in caps]
            )
            session.commit()
            progress.advance(task, end - start)


def measure(console: Console) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        net = LocalnetProcess(Path(tmp) / "ledger", "--quiet", home=home).start()
        env = {**os.environ, "GHOSTPAY_HOME": str(home), "GHOST_URL": net.http_url, "HOME": tmp}
        env.pop("GHOST_DB", None)
        try:
            for argv in (["--help"], ["agent", "search", "--help"]):
                ms, _ = wall_ms(argv, env, runs=size(7, 1))
                rows.append(Row(f"ghost {' '.join(argv)}", round(ms, 1)))
                console.log(f"{rows[-1].command}: {ms:.0f} ms")
            mint = net.rpc("surfnet_createMint", {"decimals": 6})["result"]["value"]
            db = Path(tmp) / "index.db"
            with Progress(console=console, transient=True) as progress:
                seed_index(db, mint, progress)
            searches = [
                ["agent", "search", "--x402-enabled"],
                [
                    "agent",
                    "search",
                    "--x402-enabled",
                    "--capability",
                    "ocr",
                    "--token",
                    mint,
                    "--max-price",
                    "0.05",
                    "--min-reputation",
                    "50%",
                    "--sort",
                    "price",
                ],
                ["--output", "json", "agent", "search", "--x402-enabled", "--sort", "reputation", "--limit", "100"],
            ]
            for argv in searches:
                ms, out = wall_ms(["--db", str(db), *argv], env)
                total = json.loads(out)["total"] if "--output" in argv else None
                label = " ".join(a if a != mint else "MINT" for a in argv)
                rows.append(Row(f"ghost --db index.db {label}  (10,000 indexed agents)", round(ms, 1), total))
                console.log(f"{rows[-1].command}: {ms:.0f} ms")
            # the last search again through SQLAlchemy (`queries`): what ghostpay.indexer.sqlite_read saves
            ms, out = wall_ms(["--db", f"sqlite+pysqlite:///{db}", *searches[-1]], env)
            rows.append(
                Row(
                    f"ghost --db sqlite+pysqlite:///index.db {' '.join(searches[-1])}  (the same through SQLAlchemy)",
                    round(ms, 1),
                    json.loads(out)["total"],
                )
            )
            console.log(f"{rows[-1].command}: {ms:.0f} ms")
            load_agents(net.http_url)
            ms, out = wall_ms(["--output", "json", "agent", "search"], env, runs=size(3, 1))
            rows.append(
                Row(
                    "ghost --output json agent search  (chain: getProgramAccounts, 10,000 agents)",
                    round(ms, 1),
                    json.loads(out)["total"],
                )
            )
            console.log(f"{rows[-1].command}: {ms:.0f} ms")
        finally:
            net.stop(signal.SIGTERM)
    return rows


def main() -> int:
    console = Console(stderr=True)
    rows = measure(console)
    table = Table(title=f"ghost CLI wall time (median, {os.cpu_count()} cores)")
    table.add_column("command")
    table.add_column("ms", justify="right")
    table.add_column("matches", justify="right")
    for row in rows:
        table.add_row(row.command, f"{row.median_ms:,.0f}", "" if row.results is None else f"{row.results:,}")
    report(table, rows, "cli", console, width=160)
    return 0


if __name__ == "__main__":
    sys.exit(main())
