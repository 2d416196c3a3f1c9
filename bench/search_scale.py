"""Search at scale: `ghost agent search` over 1k, 10k and 100k realistic agents, from the chain and from the index.

    python -m bench.search_scale [--sizes 1000,10000,100000] [--index-only]   → bench/results/search_scale.json

Its own benchmark rather than a row of `bench.indexer_scale`: that one measures a back-fill of an event history
(20 agents, 100k events); this one measures the agent count a search walks. The agents are realistic: x402 on
(a tenth off, a twentieth inactive), 1-10 accepted tokens with prices, names, 1-8 capabilities, descriptions,
endpoints, spread reputations and call counts. They are built fast, not by transactions:

- on the chain: the Agent accounts written straight into the localnet's LiteSVM with its cheat code
  (`surfnet_setAccount`, batched JSON-RPC), the mints with `surfnet_createMint`;
- in the index (SQLite): the same accounts through the indexer's own write path (`process.Batch`, its
  upserts and token/capability lists, as `fill_agents` copies an account).

Each search runs as a user runs it: the installed `ghost` script in a fresh process (start and imports
included), median wall time of 3 after a warm-up, and the child's peak RSS (`wait4`); the first chain search's
warm-up is a row of its own (the localnet encodes each account the first time it answers it, then keeps the
encoding until the account is written). Goals at 100k: chain ≤ 3 s and ≤ 300 MiB, indexed ≤ 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from bench.report import report, size
from ghostpay import artifacts
from ghostpay.accounts import Agent
from ghostpay.indexer import models
from ghostpay.indexer.process import Batch
from ghostpay.localnet.process import LocalnetProcess
from ghostpay.program_id import PROGRAM_ID
from ghostpay.types.token_price import TokenPrice

GHOST = str(Path(sys.executable).with_name("ghost"))
TIME = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"  # GNU time: the peak RSS of its child
SIZES = (1_000, 10_000, 100_000)
SMOKE_SIZES = (40,)
MINTS = 10
SET_BATCH = 500  # cheat codes per JSON-RPC batch
INDEX_BATCH = 5_000  # agents per indexer transaction
GOALS = {"chain_ms": 3000, "chain_mib": 300, "indexed_ms": 300}
AGENT_SPACE = artifacts.idl_constant("AGENT_SPACE")
CAPABILITIES = ("translate", "summarize", "search", "code", "vision", "speech", "math", "legal", "medical", "finance")
WORDS = ("fast", "neural", "quantum", "ghost", "atlas", "nova", "echo", "delta", "orbit", "pixel", "sage", "vector")


@dataclass
class Row:
    agents: int
    search: str
    source: str
    wall_ms: float
    peak_rss_mib: float
    goal: str


def realistic_agent(rng: random.Random, index: int, mints: list[Pubkey]) -> Agent:
    """One agent as a marketplace holds them: most on x402 with several tokens, text fields filled."""
    name = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {index}"
    tokens = [TokenPrice(mint, rng.randint(1_000, 2_000_000)) for mint in rng.sample(mints, rng.randint(1, len(mints)))]
    owner = Pubkey(rng.randbytes(32))
    return Agent(
        owner=owner,
        x402_enabled=rng.random() >= 0.1,
        is_active=rng.random() >= 0.05,
        agent_type=rng.randint(0, 3),
        bump=255,
        reputation_score=rng.randint(0, 10_000),
        registration=1,
        x402_payment_address=owner,
        total_jobs_completed=rng.randint(0, 500),
        x402_total_calls=rng.randint(0, 100_000),
        last_payment_at=1_760_000_000 + rng.randint(0, 10**6),
        created_at=1_750_000_000 + index,
        updated_at=1_750_000_000 + index,
        earnings=[],  # filled with empty slots by `account_data`
        open_work_orders=0,
        x402_accepted_tokens=tokens,
        agent_id=f"agent-{index}",
        name=name,
        description=" ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 60)))[:512],
        metadata_uri=f"https://agents.example/{index}/metadata.json",
        x402_service_endpoint=f"https://agents.example/{index}/x402",
        capabilities=rng.sample(CAPABILITIES, rng.randint(1, 8)),
    )


def account_data(agent: Agent) -> bytes:
    """The Agent account's bytes as the program writes them: discriminator, borsh, zero padding to AGENT_SPACE."""
    from ghostpay.types.mint_earnings import MintEarnings

    slots = [MintEarnings(Pubkey.default(), 0, 0, 0)] * 16
    fields = {**agent.__dict__, "earnings": [s.to_encodable() for s in slots]}
    fields["x402_accepted_tokens"] = [t.to_encodable() for t in agent.x402_accepted_tokens]
    body = Agent.layout.build(fields)
    return (Agent.discriminator + body).ljust(AGENT_SPACE, b"\0")


def rpc_batch(url: str, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)])
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        answers = json.loads(response.read())
    errors = [a["error"] for a in answers if "error" in a]
    if errors:
        raise RuntimeError(f"cheat code refused: {errors[0]}")
    return [a["result"] for a in sorted(answers, key=lambda a: a["id"])]


def build_chain(url: str, agents: list[tuple[Pubkey, bytes]]) -> None:
    import base64

    program = str(PROGRAM_ID)
    for start in range(0, len(agents), SET_BATCH):
        rpc_batch(
            url,
            [
                (
                    "surfnet_setAccount",
                    [
                        str(a),
                        {"lamports": 30_000_000, "data": [base64.b64encode(d).decode(), "base64"], "owner": program},
                    ],
                )
                for a, d in agents[start : start + SET_BATCH]
            ],
        )


def build_index(url: str, agents: list[tuple[Pubkey, Agent]]) -> None:
    """The agents into the index at `url` through the indexer's write path (`Batch`: upserts, token and
    capability lists)."""
    engine = models.connect(url)
    for start in range(0, len(agents), INDEX_BATCH):
        chunk = agents[start : start + INDEX_BATCH]
        batch = Batch(engine)
        for address, agent in chunk:
            row = batch._agent(str(address))  # a stub the account fills, as for an agent whose registration we missed
            row.x402_enabled, row.is_active, row.agent_type = agent.x402_enabled, agent.is_active, agent.agent_type
            row.reputation_score, row.x402_total_calls = agent.reputation_score, agent.x402_total_calls
            row.registration, row.created_at, row.updated_at = 1, agent.created_at, agent.updated_at
        batch.prepare({str(address): agent for address, agent in chunk})
        batch.write()
    engine.dispose()


def run_ghost(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """Median wall ms of `ghost argv` (after a warm-up), the largest peak RSS (MiB) of its runs, as GNU time
    reports it (a child this process spawned itself would count this process's pages in its ru_maxrss), and
    the warm-up's wall ms."""
    times, peaks = [], []
    for attempt in range(runs + 1):
        with tempfile.NamedTemporaryFile("r") as rss:
            started = time.perf_counter()
            done = subprocess.run([TIME, "-f", "%M", "-o", rss.name, GHOST, *argv], env=env, capture_output=True)
            elapsed = (time.perf_counter() - started) * 1000
            if done.returncode != 0:
                raise RuntimeError(f"ghost {' '.join(argv)}: {done.stderr.decode().strip()}")
            peaks.append(int(rss.read().split()[-1]) / 1024)
        if attempt:
            times.append(elapsed)
        else:
            first = elapsed
    return statistics.median(times), max(peaks), first


SEARCHES = {
    "x402 agents by reputation, top 20": ["agent", "search", "--x402-enabled", "--sort", "reputation", "--limit", "20"],
    "capability + token ≤ price, by price, top 20": [
        "agent",
        "search",
        "-c",
        "translate",
        "--token",
        "{mint}",
        "--max-price",
        "1",
        "--sort",
        "price",
        "--limit",
        "20",
    ],
}
INDEXED_SORT = {"reputation": "score"}


def measure_size(console: Console, count: int, runs: int, chain: bool = True) -> list[Row]:
    rng = random.Random(count)
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        net = LocalnetProcess(Path(folder) / "ledger", "--quiet", home=home).start()
        try:
            mints = [
                Pubkey.from_string(m["value"])
                for m in rpc_batch(net.http_url, [("surfnet_createMint", [{"decimals": 6}])] * MINTS)
            ]
            started = time.perf_counter()
            agents = [(Keypair().pubkey(), realistic_agent(rng, i, mints)) for i in range(count)]
            if chain:
                build_chain(net.http_url, [(a, account_data(agent)) for a, agent in agents])
                console.log(f"{count:,} agents on the chain in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            db = str(Path(folder) / "index.db")
            build_index(f"sqlite:///{db}", agents)
            console.log(f"{count:,} agents in the index in {time.perf_counter() - started:.1f} s")
            del agents
            env = {**os.environ, "GHOSTPAY_HOME": str(home), "GHOST_URL": net.http_url, "HOME": folder}
            start_ms, start_mib, _ = run_ghost(["--help"], env, runs)
            rows = [
                Row(count, "ghost --help (process start and imports, for scale)", "-", round(start_ms), start_mib, "")
            ]
            for label, template in SEARCHES.items():
                argv = [a.replace("{mint}", str(mints[0])) for a in template]
                if chain:
                    chain_ms, chain_mib, first_ms = run_ghost(["--output", "json", *argv], env, runs)
                    if not rows[1:]:  # the localnet encodes each account the first time it answers it (then keeps it)
                        rows.append(
                            Row(
                                count,
                                f"{label}: the first since the localnet started (every account encoded)",
                                "chain",
                                round(first_ms),
                                round(chain_mib, 1),
                                "",
                            )
                        )
                    rows.append(
                        Row(count, label, "chain", round(chain_ms), round(chain_mib, 1), "≤ 3,000 ms, ≤ 300 MiB")
                    )
                indexed_ms, indexed_mib, _ = run_ghost(["--db", db, "--output", "json", *argv], env, runs)
                rows.append(Row(count, label, "index", round(indexed_ms), round(indexed_mib, 1), "≤ 300 ms"))
                console.log(rows[-2], rows[-1])
        finally:
            net.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="agent counts, comma-separated")
    parser.add_argument("--runs", type=int, default=size(3, 1), help="timed runs per search (after a warm-up)")
    parser.add_argument("--note", default="", help="said in the table's title (e.g. 'under load')")
    parser.add_argument("--index-only", action="store_true", help="the indexed search only: no chain to build")
    args = parser.parse_args()
    sizes = SMOKE_SIZES if os.environ.get("GHOSTPAY_BENCH_SMOKE") == "1" else [int(s) for s in args.sizes.split(",")]
    console = Console(stderr=True)
    rows = [row for count in sizes for row in measure_size(console, count, args.runs, not args.index_only)]
    title = "ghost agent search at scale (wall ms and peak RSS of the process, start included)"
    table = Table(title=f"{title}{f' — {args.note}' if args.note else ''}")
    for column in ("agents", "search", "source", "wall ms", "peak RSS MiB", "goal at 100k"):
        table.add_column(column, justify="right" if column[0].islower() and "ms" in column else "left")
    for row in rows:
        table.add_row(f"{row.agents:,}", row.search, row.source, f"{row.wall_ms:,}", f"{row.peak_rss_mib}", row.goal)
    report(table, rows, "search_scale", console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
