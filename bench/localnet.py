"""The localnet's speed: start-up, send-and-confirm throughput, getProgramAccounts latency.

    python -m bench.localnet            # print the table, write bench/results/localnet.json
    LOCALNET_BENCH_SEND_ONLY=1 LOCALNET_BENCH_IN_FLIGHT=1 python -m bench.localnet   # send and confirm only

- start-up: `python -m ghostpay.localnet` on a fresh ledger until `getHealth` answers ok (median of 3, each
  followed by a start on the grown ledger below);
- send and confirm over HTTP, as a client sees it: with 1, 4 and 16 in flight (one keep-alive connection each),
  every distinct system transfer is signed, sent (`sendTransaction`, preflight on) and asked for with
  `getSignatureStatuses` until confirmed, its `err` checked, before it counts. The ceiling is the same work
  in-process (sign, `send_transaction`, result checked) on LiteSVM as the localnet builds it
  (`ghostpay.localnet.chain.runtime()`: same features, signatures verified), timed after each level in every
  round, so both share the machine's moment. A lean HTTP client measures the server, not an HTTP library
  (bench/sdk.py has solana-py's and the SDK's figures);
- getProgramAccounts over 10,000 Agent accounts (`AGENT_SPACE` bytes each, loaded with `surfnet_setAccount`):
  all of them, with a `dataSlice` of the fixed head, and one owner's 100 with a `memcmp` + `dataSize`
  filter, with and without `dataSlice` (median of 5; goal ≤ 100 ms filtered);
- agent search from the chain in-process (`GhostPayClient.search_agents`: getProgramAccounts with
  memcmp, struct-decoded heads, matches decoded in full) over the same 10,000 agents (goal ≤ 700 ms);
- memory as the ledger grows: the localnet's RSS after GROWTH / 10 and GROWTH transfers (each sent and
  confirmed; the clock moved on SLOTS_PER_BATCH slots per BATCH of them, ~250 transactions a slot-second
  so that the run stands for a longer life), then its start-up time and RSS on that ledger and its size on
  disk (goal: flat, within ±10 %). LOCALNET_BENCH_GROWTH sets GROWTH (default 100,000; the issue's second
  point: 1,000,000). Up to HTTP_GROWTH_MAX the transfers go over HTTP to the running localnet; past it (a
  million over HTTP would take ~10 minutes more) they are appended in a child process by the localnet's own
  chain and ledger writer (bench/localnet_growth.py: the same execution, checks and ledger rows, without the
  HTTP framing), and the two RSS figures are that process's; the start-up and restart figures are the
  localnet's on the ledger it wrote.

Each level's ratio to the in-process rate is printed with its goal (≥ 0.3).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvloop
from rich.console import Console
from rich.table import Table
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata

from bench.localnet_growth import BATCH, IN_FLIGHT, PAYERS, SLOTS_PER_BATCH, signed_transfer, transfers
from bench.report import report, size
from ghostpay.borsh_layout import head_layout
from ghostpay.client import GhostPayClient
from ghostpay.discovery import AGENT_SPACE
from ghostpay.localnet.chain import runtime
from ghostpay.localnet.process import LocalnetProcess
from ghostpay.program_id import PROGRAM_ID

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
# transactions in flight, one connection each; LOCALNET_BENCH_IN_FLIGHT=1 (comma-separated) measures fewer levels
CONCURRENCY = tuple(int(level) for level in os.environ.get("LOCALNET_BENCH_IN_FLIGHT", "1,4,16").split(","))
# LOCALNET_BENCH_SEND_ONLY=1: only send and confirm over HTTP and its ceiling (no growth, getProgramAccounts or
# search), written to bench/results/localnet_send.json: a before/after comparison in minutes
SEND_ONLY = os.environ.get("LOCALNET_BENCH_SEND_ONLY") == "1"
ROUNDS = size(3, 1)  # each level, then the ceiling, once per round
PER_ROUND = size(800, 8)  # transfers per level and round
POLL_SECONDS = 0.005  # between getSignatureStatuses of a transaction not yet confirmed
AGENTS = size(10_000, 200)
AGENT_OWNERS = 100
AGENT_DISCRIMINATOR = hashlib.sha256(b"account:Agent").digest()[:8]
RATIO_GOAL = 0.3
GROWTH = int(os.environ.get("LOCALNET_BENCH_GROWTH", size(100_000, 64)))
STARTS = 3  # start-ups on a fresh ledger and on the grown one, interleaved
HTTP_GROWTH_MAX = size(100_000, 100)  # past it the ledger grows in-process (bench/localnet_growth.py)
FLAT_GOAL = 0.10  # memory and start-up within ±10 % as the ledger grows
FILTERED_GOAL_MS = 100
CHAIN_SEARCH_GOAL_MS = 700


@dataclass
class Row:
    metric: str
    value: float
    unit: str


def start_localnet(ledger: Path) -> LocalnetProcess:
    """A quiet localnet on free ports with its own data folder; `.startup_seconds` is the time to healthy."""
    return LocalnetProcess(ledger, "--quiet", home=ledger.parent / "home").start()


class TransferSigner:
    """Distinct system transfers signed one at a time, as a client makes them (amounts differ, so signatures do)."""

    def __init__(self, payers: list[Keypair]) -> None:
        self.payers, self.receiver, self.made = payers, Pubkey.new_unique(), 0

    def sign(self, blockhash: Hash) -> Transaction:
        self.made += 1
        return signed_transfer(self.payers[self.made % len(self.payers)], self.receiver, 1000 + self.made, blockhash)


class RawHttp:
    """A lean keep-alive HTTP/1.1 JSON-RPC client, so the benchmark measures the server, not httpx."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> RawHttp:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def call(self, method: str, *params: object) -> Any:  # the JSON result
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        self.writer.write(
            b"POST / HTTP/1.1\r\nHost: localnet\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")  # the whole head at once, not a read per header line
        length = CONTENT_LENGTH.search(head)
        response = json.loads(await self.reader.readexactly(int(length[1]) if length else 0))
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response["result"]

    def close(self) -> None:
        self.writer.close()


Call = Callable[..., Awaitable[Any]]  # (method, *params) -> the JSON-RPC result


async def send_and_confirm(encoded: list[str], send: list[Call], confirm: Call) -> None:
    """Send `encoded` through the `send` callables (one per connection), then see all of them landed (the ledger's
    growth: its transaction count is checked at the end, not each status)."""
    queue = list(reversed(encoded))
    signatures: list[str] = []

    async def sender(call: Call) -> None:
        while queue:
            signatures.append(await call("sendTransaction", queue.pop(), {"encoding": "base64"}))

    await asyncio.gather(*(sender(call) for call in send))
    pending = signatures
    while pending:
        statuses: list[object] = []
        for i in range(0, len(pending), 256):
            statuses += (await confirm("getSignatureStatuses", pending[i : i + 256]))["value"]
        pending = [sig for sig, status in zip(pending, statuses, strict=True) if status is None]


async def confirmed_send(call: Call, tx: Transaction) -> None:
    """What a client does per transaction: send it, ask for its status until it is confirmed, fail on its error."""
    signature = await call("sendTransaction", base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"})
    while (status := (await call("getSignatureStatuses", [signature]))["value"][0]) is None or status[
        "confirmationStatus"
    ] not in ("confirmed", "finalized"):
        await asyncio.sleep(POLL_SECONDS)
    if status["err"] is not None:
        raise RuntimeError(f"{signature} failed: {status['err']}")


async def http_seconds(connections: list[RawHttp], signer: TransferSigner, count: int) -> float:
    """Seconds for `count` transfers, each signed, sent and confirmed, one in flight per connection."""
    blockhash = Hash.from_string((await connections[0].call("getLatestBlockhash"))["value"]["blockhash"])
    left = count

    async def client(connection: RawHttp) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await confirmed_send(connection.call, signer.sign(blockhash))

    started = time.perf_counter()
    await asyncio.gather(*(client(connection) for connection in connections))
    return time.perf_counter() - started


def in_process_seconds(svm: LiteSVM, signer: TransferSigner, count: int) -> tuple[float, float]:
    """Seconds to sign `count` transfers, and to execute them in-process, each result checked."""
    blockhash = svm.latest_blockhash()
    started = time.perf_counter()
    signed = [signer.sign(blockhash) for _ in range(count)]
    executing = time.perf_counter()
    for tx in signed:
        result = svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            raise RuntimeError(f"in-process transfer failed: {result.err()}")
    return executing - started, time.perf_counter() - executing


@dataclass
class Throughput:
    http: dict[int, float]  # transfers/s sent and confirmed over HTTP, by transactions in flight
    in_process: float  # transfers/s signed and executed in-process (the ceiling)
    executed: float  # transfers/s executed in-process, signed beforehand (LiteSVM alone)


async def throughput(url: str, payers: list[Keypair]) -> Throughput:
    """Transfers per second over HTTP at each CONCURRENCY level, and in-process (the ceiling), interleaved: each
    round runs every level, each followed by as many transfers in-process."""
    svm = runtime()
    for payer in payers:
        svm.airdrop(payer.pubkey(), 1000 * 10**9)
    connections = [await RawHttp.open(url) for _ in range(max(CONCURRENCY))]
    for payer in payers:
        await connections[0].call("requestAirdrop", str(payer.pubkey()), 1000 * 10**9)
    http_signer, local_signer = TransferSigner(payers), TransferSigner(payers)
    http = dict.fromkeys(CONCURRENCY, 0.0)
    signing = executing = 0.0
    for _ in range(ROUNDS):
        for level in CONCURRENCY:
            http[level] += await http_seconds(connections[:level], http_signer, PER_ROUND)
            sign, execute = in_process_seconds(svm, local_signer, PER_ROUND)
            signing, executing = signing + sign, executing + execute
    for connection in connections:
        connection.close()
    done = ROUNDS * PER_ROUND
    local = done * len(CONCURRENCY)
    return Throughput(
        {level: done / seconds for level, seconds in http.items()}, local / (signing + executing), local / executing
    )


def rss_mib(pid: int) -> float:
    """The resident set of process `pid` (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def grow_ledger(url: str, payers: list[Keypair], count: int, first: int) -> None:
    """`count` more transfers, each sent and confirmed, in batches of BATCH, the clock moved SLOTS_PER_BATCH
    slots on after each (a new blockhash for the next)."""
    connections = [await RawHttp.open(url) for _ in range(IN_FLIGHT)]
    call = connections[0].call
    for start in range(first, first + count, BATCH):
        blockhash = Hash.from_string((await call("getLatestBlockhash"))["value"]["blockhash"])
        batch = transfers(payers, blockhash, min(BATCH, first + count - start), start)
        encoded = [base64.b64encode(bytes(tx)).decode() for tx in batch]
        await send_and_confirm(encoded, [c.call for c in connections], call)
        await call("surfnet_timeTravel", {"absoluteSlot": await call("getSlot") + SLOTS_PER_BATCH})
    for connection in connections:
        connection.close()


def grow_over_http(ledger: Path, tenth: int) -> tuple[float, float]:
    """GROWTH transfers sent and confirmed over HTTP to a localnet on `ledger`: its RSS after `tenth`, and after all."""
    payers = [Keypair() for _ in range(PAYERS)]
    net = start_localnet(ledger)
    assert net.proc is not None
    try:
        for payer in payers:
            net.rpc("surfnet_setAccount", str(payer.pubkey()), {"lamports": 1000 * 10**9})
        asyncio.run(grow_ledger(net.http_url, payers, tenth, 0))
        early = rss_mib(net.proc.pid)
        asyncio.run(grow_ledger(net.http_url, payers, GROWTH - tenth, tenth))
        late = rss_mib(net.proc.pid)
        assert net.rpc("getTransactionCount")["result"] == GROWTH
    finally:
        net.stop(signal.SIGTERM)
    return early, late


def grow_in_process(ledger: Path, tenth: int) -> tuple[float, float]:
    """GROWTH transfers appended to `ledger` by the localnet's chain and ledger writer in a child process
    (bench/localnet_growth.py): its RSS after `tenth`, and after all."""
    env = dict(os.environ, GHOSTPAY_HOME=str(ledger.parent / "home"))
    command = [sys.executable, "-m", "bench.localnet_growth", str(ledger), str(GROWTH), str(tenth)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    reports = [json.loads(line) for line in out.splitlines()]
    assert [r["transactions"] for r in reports] == [tenth, GROWTH], reports
    return reports[0]["rss_mib"], reports[1]["rss_mib"]


def folder_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 2**20


def ledger_growth(folder: Path, console: Console) -> dict[str, Any]:
    """RSS after GROWTH / 10 and GROWTH transfers, the ledger's size, then start-up seconds on that ledger and on
    fresh ones, interleaved (STARTS of each), and the RSS after the last start on it."""
    tenth = max(GROWTH // 10, 1)
    ledger = folder / "growth"
    early, late = (grow_over_http if GROWTH <= HTTP_GROWTH_MAX else grow_in_process)(ledger, tenth)
    console.log(f"RSS after {tenth:,} transactions: {early:.1f} MiB, after {GROWTH:,}: {late:.1f} MiB")
    fresh, grown = [], []
    restarted = 0.0
    for attempt in range(STARTS):
        net = start_localnet(folder / f"fresh{attempt}")
        fresh.append(net.startup_seconds)
        net.stop(signal.SIGTERM)
        net = start_localnet(ledger)
        assert net.proc is not None
        grown.append(net.startup_seconds)
        restarted = rss_mib(net.proc.pid)
        net.stop(signal.SIGTERM)
    console.log(f"start-up to healthy, fresh: {fresh}, on {GROWTH:,} transactions: {grown}")
    return {
        "early": early,
        "late": late,
        "fresh": fresh,
        "startup": statistics.median(grown),
        "restarted": restarted,
        "ledger_mib": folder_mib(ledger),
    }


def agent_bytes(owner: Pubkey, index: int) -> bytes:
    """An Agent account as the program lays it out (fixed fields first, at HEAD["Agent"]'s offsets; x402 off,
    token list empty, agent_id and name set, the other strings empty; `index` as its registration number)."""
    head = AGENT_DISCRIMINATOR + bytes(owner) + bytes([0, 1, 1, 255]) + (5000).to_bytes(4, "little")
    body = head + index.to_bytes(8, "little") + bytes(head_layout("Agent").size - len(head) - 8)
    strings = b"".join(len(s).to_bytes(4, "little") + s for s in (f"agent-{index}".encode(), f"Agent {index}".encode()))
    body += bytes(4) + strings + bytes(4 * 4)
    return body + bytes(AGENT_SPACE - len(body))


def load_agents(url: str) -> list[Pubkey]:
    """AGENTS agent accounts, AGENTS / AGENT_OWNERS per owner; returns the owners."""
    owners = [Pubkey.new_unique() for _ in range(AGENT_OWNERS)]
    with httpx.Client(base_url=url, timeout=60) as client:
        for start in range(0, AGENTS, 1000):
            end = min(start + 1000, AGENTS)
            batch = [
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "surfnet_setAccount",
                    "params": [
                        str(Pubkey.new_unique()),
                        {
                            "data": [base64.b64encode(agent_bytes(owners[i % AGENT_OWNERS], i)).decode(), "base64"],
                            "owner": str(PROGRAM_ID),
                        },
                    ],
                }
                for i in range(start, end)
            ]
            replies = client.post("", json=batch).json()
            assert all("result" in r for r in replies), replies[0]
    return owners


def program_accounts_latency(url: str, owner: Pubkey) -> dict[str, tuple[float, int]]:
    """Median ms and count returned, per query shape."""
    head = {"offset": 0, "length": head_layout("Agent").size}
    by_owner = [{"dataSize": AGENT_SPACE}, {"memcmp": {"offset": 8, "bytes": str(owner)}}]
    shapes = {
        "all": {"encoding": "base64"},
        "all_head": {"encoding": "base64", "dataSlice": head},
        "owner": {"encoding": "base64", "filters": by_owner},
        "owner_head": {"encoding": "base64", "filters": by_owner, "dataSlice": head},
    }
    timings: dict[str, list[float]] = {name: [] for name in shapes}
    counts = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(5):
            for name, options in shapes.items():
                body = {"jsonrpc": "2.0", "id": 1, "method": "getProgramAccounts", "params": [str(PROGRAM_ID), options]}
                started = time.perf_counter()
                result = client.post("", json=body).json()["result"]
                timings[name].append((time.perf_counter() - started) * 1000)
                counts[name] = len(result)
    return {name: (statistics.median(timings[name]), counts[name]) for name in shapes}


async def chain_search_ms(url: str) -> tuple[float, int]:
    """Median ms of `search_agents()` (every active agent) over the chain, in-process; and the matches."""
    times, found = [], 0
    async with GhostPayClient(url) as client:
        for _ in range(3):
            started = time.perf_counter()
            found = len(await client.search_agents())
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), found


def throughput_rows(rates: Throughput) -> list[Row]:
    """The ceiling's rows, then each level's rate and its ratio to the ceiling."""
    return [
        Row(
            f"in-process LiteSVM, the localnet's runtime: sign + send_transaction, result checked "
            f"({ROUNDS * PER_ROUND * len(CONCURRENCY):,} transfers; the ceiling)",
            round(rates.in_process),
            "tx/s",
        ),
        Row("  of which send_transaction alone (signed beforehand)", round(rates.executed), "tx/s"),
        *(
            row
            for level, rate in rates.http.items()
            for row in (
                Row(
                    f"send and confirm over HTTP, {level} in flight: sign, sendTransaction, getSignatureStatuses "
                    f"until confirmed, err checked ({ROUNDS * PER_ROUND:,} transfers)",
                    round(rate),
                    "tx/s",
                ),
                Row(f"  ÷ in-process, sign + send (goal ≥ {RATIO_GOAL})", round(rate / rates.in_process, 2), "ratio"),
            )
        ),
    ]


def measure_send(console: Console) -> list[Row]:
    """Only send and confirm over HTTP, with its ceiling (LOCALNET_BENCH_SEND_ONLY=1)."""
    with tempfile.TemporaryDirectory() as tmp:
        net = start_localnet(Path(tmp) / "ledger")
        try:
            rates = uvloop.run(throughput(net.http_url, [Keypair() for _ in range(PAYERS)]))
        finally:
            net.stop(signal.SIGTERM)
    console.log(f"transfers/s: {rates}")
    return throughput_rows(rates)


def measure(console: Console) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        growth = ledger_growth(Path(tmp), console)
        startups = growth["fresh"]
        payers = [Keypair() for _ in range(PAYERS)]
        net = start_localnet(Path(tmp) / "ledger")
        url = net.http_url
        try:
            rates = uvloop.run(throughput(url, payers))  # the client's loop as lean as the server's
            console.log(f"transfers/s: {rates}")
            owners = load_agents(url)
            gpa = program_accounts_latency(url, owners[0])
            search_ms, search_found = asyncio.run(chain_search_ms(url))
        finally:
            net.stop(signal.SIGTERM)
    assert (gpa["all"][1], gpa["owner"][1], search_found) == (AGENTS, AGENTS // AGENT_OWNERS, AGENTS), gpa
    head = head_layout("Agent").size
    return [
        Row(f"start-up to healthy (median of {STARTS})", round(statistics.median(startups) * 1000), "ms"),
        *throughput_rows(rates),
        Row(f"getProgramAccounts, all {AGENTS:,} agents (base64)", round(gpa["all"][0], 1), "ms"),
        Row(f"  the same with dataSlice (the {head}-byte head)", round(gpa["all_head"][0], 1), "ms"),
        Row(
            f"getProgramAccounts, memcmp owner + dataSize ({gpa['owner'][1]} of {AGENTS:,}; goal ≤ "
            f"{FILTERED_GOAL_MS} ms)",
            round(gpa["owner"][0], 1),
            "ms",
        ),
        Row("  the same with dataSlice (the head)", round(gpa["owner_head"][0], 1), "ms"),
        Row(
            f"localnet RSS after {max(GROWTH // 10, 1):,} transactions"
            + ("" if GROWTH <= HTTP_GROWTH_MAX else " (appended in-process by its chain and ledger writer)"),
            round(growth["early"], 1),
            "MiB",
        ),
        Row(
            f"  after {GROWTH:,} (goal: within ±{FLAT_GOAL:.0%} of the above)",
            round(growth["late"], 1),
            "MiB",
        ),
        Row(f"  after a restart on that ledger of {GROWTH:,}", round(growth["restarted"], 1), "MiB"),
        Row(f"  the ledger on disk after {GROWTH:,}", round(growth["ledger_mib"]), "MiB"),
        Row(
            f"start-up to healthy on a ledger of {GROWTH:,} transactions, median of {STARTS} interleaved with the "
            f"fresh ones (goal: ±{FLAT_GOAL:.0%} of a fresh one)",
            round(growth["startup"] * 1000),
            "ms",
        ),
        Row(
            f"agent search from the chain, in-process ({AGENTS:,} agents decoded; goal ≤ {CHAIN_SEARCH_GOAL_MS} ms)",
            round(search_ms),
            "ms",
        ),
    ]


def main() -> int:
    console = Console(stderr=True)
    rows = measure_send(console) if SEND_ONLY else measure(console)
    table = Table(title="GhostPay localnet (LiteSVM behind JSON-RPC)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for row in rows:
        table.add_row(row.metric, f"{row.value:,}", row.unit)
    report(table, rows, "localnet_send" if SEND_ONLY else "localnet", console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
