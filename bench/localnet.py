"""The localnet's speed: start-up, send-and-confirm throughput, getProgramAccounts latency.

    python -m bench.localnet            # print the table, write bench/results/localnet.json

- start-up: `python -m ghostpay.localnet` on a fresh ledger until `getHealth` answers ok (median of 3);
- throughput: system transfers sent over HTTP (`sendTransaction`, 16 keep-alive connections) and
  confirmed with `getSignatureStatuses`, beside the same transfers sent in-process to LiteSVM (the
  ceiling). A lean HTTP client measures the server; httpx, on the same two cores, mostly measures itself;
- getProgramAccounts over 10,000 Agent accounts (`AGENT_SPACE` bytes each, loaded with `surfnet_setAccount`):
  all of them, with a `dataSlice` of the fixed head, and one owner's 100 with a `memcmp` + `dataSize`
  filter, with and without `dataSlice` (median of 5; goal ≤ 100 ms filtered);
- agent search from the chain in-process (`GhostPayClient.search_agents`: getProgramAccounts with
  memcmp, struct-decoded heads, matches decoded in full) over the same 10,000 agents (goal ≤ 700 ms);
- memory as the ledger grows: the localnet's RSS after GROWTH / 10 and GROWTH transfers (each sent and
  confirmed; the clock moved on SLOTS_PER_BATCH slots per BATCH of them, ~250 transactions a slot-second
  so that the run stands for a longer life), then its start-up time and RSS on that ledger (goal: flat,
  within ±10 %). LOCALNET_BENCH_GROWTH sets GROWTH (default 100,000; the issue's second point: 1,000,000).

The HTTP rate's ratio to the in-process rate is printed with its goal (≥ 0.3).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from bench.report import report, size
from ghostpay.borsh_layout import head_layout
from ghostpay.client import GhostPayClient
from ghostpay.discovery import AGENT_SPACE
from ghostpay.localnet.process import LocalnetProcess
from ghostpay.program_id import PROGRAM_ID

TRANSFERS = size(2000, 32)
PAYERS = 20
IN_FLIGHT = 16
AGENTS = size(10_000, 200)
AGENT_OWNERS = 100
AGENT_DISCRIMINATOR = hashlib.sha256(b"account:Agent").digest()[:8]
RATIO_GOAL = 0.3
GROWTH = int(os.environ.get("LOCALNET_BENCH_GROWTH", size(100_000, 64)))
BATCH = 1000
SLOTS_PER_BATCH = 10
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


def transfers(payers: list[Keypair], blockhash: Hash, count: int = TRANSFERS, first: int = 0) -> list[Transaction]:
    """`count` distinct system transfers (amounts from 1000 + `first` lamports), round-robin over `payers`."""
    receiver = Pubkey.new_unique()
    txs = []
    for i in range(first, first + count):
        payer = payers[i % len(payers)]
        message = Message.new_with_blockhash(
            [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=receiver, lamports=1000 + i))],
            payer.pubkey(),
            blockhash,
        )
        txs.append(Transaction([payer], message, blockhash))
    return txs


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
        length = 0
        while (line := await self.reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        response = json.loads(await self.reader.readexactly(length))
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response["result"]

    def close(self) -> None:
        self.writer.close()


Call = Callable[..., Awaitable[Any]]  # (method, *params) -> the JSON-RPC result


async def send_and_confirm(encoded: list[str], send: list[Call], confirm: Call) -> float:
    """Seconds to send `encoded` through the `send` callables (one per connection) and see all confirmed."""
    queue = list(reversed(encoded))
    signatures: list[str] = []

    async def sender(call: Call) -> None:
        while queue:
            signatures.append(await call("sendTransaction", queue.pop(), {"encoding": "base64"}))

    started = time.perf_counter()
    await asyncio.gather(*(sender(call) for call in send))
    pending = signatures
    while pending:
        statuses: list[object] = []
        for i in range(0, len(pending), 256):
            statuses += (await confirm("getSignatureStatuses", pending[i : i + 256]))["value"]
        pending = [sig for sig, status in zip(pending, statuses, strict=True) if status is None]
    return time.perf_counter() - started


async def http_throughput(url: str, payers: list[Keypair]) -> tuple[float, float]:
    """Transfers per second over HTTP: with a lean client, and with httpx (client-bound on 2 cores)."""
    connections = [await RawHttp.open(url) for _ in range(IN_FLIGHT)]
    call = connections[0].call
    for payer in payers:
        await call("requestAirdrop", str(payer.pubkey()), 1000 * 10**9)
    rates = []
    for lean in (True, False):
        blockhash = Hash.from_string((await call("getLatestBlockhash"))["value"]["blockhash"])
        encoded = [base64.b64encode(bytes(tx)).decode() for tx in transfers(payers, blockhash)]
        if lean:
            seconds = await send_and_confirm(encoded, [c.call for c in connections], call)
        else:
            async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=IN_FLIGHT)) as client:

                async def httpx_call(method: str, *params: object) -> object:
                    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
                    return (await client.post("", json=body)).json()["result"]

                seconds = await send_and_confirm(encoded, [httpx_call] * IN_FLIGHT, httpx_call)
        rates.append(TRANSFERS / seconds)
    for connection in connections:
        connection.close()
    return rates[0], rates[1]


def in_process_throughput(payers: list[Keypair]) -> float:
    """The same transfers sent straight to LiteSVM."""
    svm = LiteSVM()
    for payer in payers:
        svm.airdrop(payer.pubkey(), 100 * 10**9)
    txs = transfers(payers, svm.latest_blockhash())
    started = time.perf_counter()
    for tx in txs:
        svm.send_transaction(tx)
    return TRANSFERS / (time.perf_counter() - started)


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


def ledger_growth(folder: Path, console: Console) -> dict[str, float]:
    """RSS after GROWTH / 10 and GROWTH transfers, then start-up seconds and RSS on that ledger."""
    payers = [Keypair() for _ in range(PAYERS)]
    net = start_localnet(folder / "growth")
    assert net.proc is not None
    for payer in payers:
        net.rpc("surfnet_setAccount", str(payer.pubkey()), {"lamports": 1000 * 10**9})
    tenth = max(GROWTH // 10, 1)
    try:
        asyncio.run(grow_ledger(net.http_url, payers, tenth, 0))
        early = rss_mib(net.proc.pid)
        asyncio.run(grow_ledger(net.http_url, payers, GROWTH - tenth, tenth))
        late = rss_mib(net.proc.pid)
        assert net.rpc("getTransactionCount")["result"] == GROWTH
    finally:
        net.stop(signal.SIGTERM)
    console.log(f"RSS after {tenth:,} transactions: {early:.1f} MiB, after {GROWTH:,}: {late:.1f} MiB")
    net = start_localnet(folder / "growth")
    assert net.proc is not None
    try:
        restarted = rss_mib(net.proc.pid)
    finally:
        net.stop(signal.SIGTERM)
    return {"early": early, "late": late, "startup": net.startup_seconds, "restarted": restarted}


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


def measure(console: Console) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        startups = []
        for attempt in range(3):
            net = start_localnet(Path(tmp) / f"startup{attempt}")
            startups.append(net.startup_seconds)
            net.stop(signal.SIGTERM)
        console.log(f"start-up to healthy: {startups}")
        growth = ledger_growth(Path(tmp), console)
        payers = [Keypair() for _ in range(PAYERS)]
        net = start_localnet(Path(tmp) / "ledger")
        url = net.http_url
        try:
            http_tps, httpx_tps = asyncio.run(http_throughput(url, payers))
            console.log(f"HTTP send-and-confirm: {http_tps:.0f} tx/s (httpx client: {httpx_tps:.0f} tx/s)")
            ceiling = in_process_throughput(payers)
            console.log(f"in-process LiteSVM: {ceiling:.0f} tx/s")
            owners = load_agents(url)
            gpa = program_accounts_latency(url, owners[0])
            search_ms, search_found = asyncio.run(chain_search_ms(url))
        finally:
            net.stop(signal.SIGTERM)
    assert (gpa["all"][1], gpa["owner"][1], search_found) == (AGENTS, AGENTS // AGENT_OWNERS, AGENTS), gpa
    head = head_layout("Agent").size
    return [
        Row("start-up to healthy (median of 3)", round(statistics.median(startups) * 1000), "ms"),
        Row(f"send-and-confirm over HTTP ({TRANSFERS} transfers, {IN_FLIGHT} in flight)", round(http_tps), "tx/s"),
        Row("  the same through httpx.AsyncClient (client-bound)", round(httpx_tps), "tx/s"),
        Row("same transfers in-process to LiteSVM (ceiling)", round(ceiling), "tx/s"),
        Row(f"  HTTP / in-process (goal ≥ {RATIO_GOAL})", round(http_tps / ceiling, 2), "ratio"),
        Row(f"getProgramAccounts, all {AGENTS:,} agents (base64)", round(gpa["all"][0], 1), "ms"),
        Row(f"  the same with dataSlice (the {head}-byte head)", round(gpa["all_head"][0], 1), "ms"),
        Row(
            f"getProgramAccounts, memcmp owner + dataSize ({gpa['owner'][1]} of {AGENTS:,}; goal ≤ "
            f"{FILTERED_GOAL_MS} ms)",
            round(gpa["owner"][0], 1),
            "ms",
        ),
        Row("  the same with dataSlice (the head)", round(gpa["owner_head"][0], 1), "ms"),
        Row(f"localnet RSS after {max(GROWTH // 10, 1):,} transactions", round(growth["early"], 1), "MiB"),
        Row(
            f"  after {GROWTH:,} (goal: within ±{FLAT_GOAL:.0%} of the above)",
            round(growth["late"], 1),
            "MiB",
        ),
        Row(f"  after a restart on that ledger of {GROWTH:,}", round(growth["restarted"], 1), "MiB"),
        Row(
            f"start-up to healthy on a ledger of {GROWTH:,} transactions (goal: ±{FLAT_GOAL:.0%} of a fresh one)",
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
    rows = measure(console)
    table = Table(title="GhostPay localnet (LiteSVM behind JSON-RPC)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for row in rows:
        table.add_row(row.metric, f"{row.value:,}", row.unit)
    report(table, rows, "localnet", console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
