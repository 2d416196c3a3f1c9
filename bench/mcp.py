"""What the MCP layer costs an agent per tool call, over stdio and Streamable HTTP, on a localnet.

    python -m bench.mcp          # print the table, write bench/results/mcp.json

`ghost mcp` runs as the agent's client would run it (a subprocess: stdio, or `-t http`), driven by the
`mcp` SDK's own `Client`. Per transport: connecting (for stdio, starting `ghost` and the handshake),
`get_spending` (no chain: the spend ledger), `get_agent` (two RPC reads) and `call_paid_api` (a verified
x402 payment to a GhostPay seller through `ghost`'s facilitator logic). Beside them, the same reads and
paid call made with the SDK in-process: the difference is the protocol and the process boundary.
MCP_BENCH_CALLS sets the calls per operation (default 20).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from rich.console import Console
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from bench.report import latency_table, report, size
from bench.x402_buyer import Served, percentile, sale_parties, seller_app
from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.localnet.process import LocalnetProcess, free_port_pair
from ghostpay.spending import GuardedWallet, SpendingGuards
from ghostpay.x402 import x402_http
from ghostpay.x402.buyer import payment_record
from ghostpay.x402.facilitator import FacilitatorSettings
from ghostpay.x402.facilitator.app import create_facilitator_app
from ghostpay.x402.facilitator.policy import AssetRule

STDIO_STARTS = size(5, 1)  # each connect over stdio starts `ghost mcp`
CALLS = int(os.environ.get("MCP_BENCH_CALLS", size(20, 2)))
PRICE = Decimal("0.001")
GHOST = str(Path(sys.executable).with_name("ghost"))


@dataclass
class Row:
    path: str
    operation: str
    p50_ms: float
    p90_ms: float
    calls: int


async def timed(times: list[float], work: Callable[[], Awaitable[Any]]) -> Any:
    started = time.perf_counter()
    result = await work()
    times.append((time.perf_counter() - started) * 1000)
    return result


def rows(path: str, measured: dict[str, list[float]]) -> list[Row]:
    return [Row(path, op, percentile(v, 0.5), percentile(v, 0.9), len(v)) for op, v in measured.items()]


async def through_mcp(client_for: Callable[[], Client], agent: str, url: str, connects: int) -> dict[str, list[float]]:
    measured: dict[str, list[float]] = {"connect": [], "get_spending": [], "get_agent": [], "call_paid_api": []}
    for _ in range(connects):
        client = client_for()
        await timed(measured["connect"], client.__aenter__)
        await client.__aexit__(None, None, None)
    async with client_for() as client:
        await client.call_tool("call_paid_api", {"url": url})  # warm: connections, mint cache
        for _ in range(CALLS):
            await timed(measured["get_spending"], lambda: client.call_tool("get_spending", {}))
            await timed(measured["get_agent"], lambda: client.call_tool("get_agent", {"agent": agent}))
            paid = await timed(measured["call_paid_api"], lambda: client.call_tool("call_paid_api", {"url": url}))
            assert not paid.is_error and paid.structured_content["payment"]["verified"], paid
    return measured


async def in_process(
    buyer: Keypair, net: LocalnetProcess, agent: str, url: str, ledger: Path
) -> dict[str, list[float]]:
    measured: dict[str, list[float]] = {"get_agent": [], "paid call": []}
    guards = GuardedWallet(SpendingGuards(daily=Decimal(1000)), ledger)
    async with GhostPayClient(net.http_url, buyer, ws_url=net.ws_url, guards=guards) as gp, x402_http(gp) as http:
        await http.get(url)
        for _ in range(CALLS):
            await timed(measured["get_agent"], lambda: gp.get_agent(Pubkey.from_string(agent)))
            response = await timed(measured["paid call"], lambda: http.get(url))
            record = payment_record(response)
            assert record is not None and record.verified
    return measured


def start_http(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [GHOST, "--output", "json", *args, "--transport", "http", "--port", str(free_port_pair()[0])],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        raise RuntimeError("ghost mcp -t http did not start")
    return proc, json.loads(line)["url"]


def main() -> None:
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        net = LocalnetProcess(folder / "ledger", "--quiet", home=folder / "home").start()
        try:
            fee_payer, owner, buyer, mint = sale_parties(net)

            async def register() -> Pubkey:
                async with GhostPayClient(net.http_url, owner, ws_url=net.ws_url) as gp:
                    registered = await gp.register_agent(
                        "benchmcp",
                        "Bench",
                        x402=X402Settings({Pubkey.from_string(mint): PRICE}, "http://127.0.0.1/paid"),
                    )
                    assert registered.address is not None  # the agent it created
                    return registered.address

            agent = str(asyncio.run(register()))
            key = folder / "buyer.json"
            key.write_text(json.dumps(list(bytes(buyer))))
            env = {**os.environ, "GHOSTPAY_HOME": str(folder / "mcp-home"), "GHOST_CONFIG": ""}
            args = ["-u", net.http_url, "-k", str(key), "mcp", "--budget-daily", "1000"]
            settings = FacilitatorSettings(
                fee_payer,
                net.http_url,
                net.ws_url,
                db_path=folder / "facilitator.db",
                rate_limit=10**6,
                sweep_interval_seconds=0,
                assets=(AssetRule(mint),),
            )
            with (
                Served(create_facilitator_app(settings)) as facilitator,
                Served(seller_app(Pubkey.from_string(agent), net, facilitator.url, owner)) as shop,
            ):
                url = shop.url + "/paid"
                console.print(f"{CALLS} calls per operation…")
                params = StdioServerParameters(command=GHOST, args=args, env=env)
                results = rows(
                    "MCP over stdio", asyncio.run(through_mcp(lambda: Client(params), agent, url, STDIO_STARTS))
                )
                proc, mcp_url = start_http(args, env)
                try:
                    results += rows(
                        "MCP over HTTP", asyncio.run(through_mcp(lambda: Client(mcp_url), agent, url, CALLS))
                    )
                finally:
                    proc.terminate()
                    proc.wait(timeout=15)
                results += rows(
                    "SDK in-process", asyncio.run(in_process(buyer, net, agent, url, folder / "sdk-ledger.sqlite3"))
                )
        finally:
            net.stop()
    table = latency_table(
        f"MCP tool calls, {CALLS} each (localnet; stdio connect: {STDIO_STARTS} server starts)",
        results,
        ("path", "operation"),
    )
    report(table, results, "mcp", console)


if __name__ == "__main__":
    main()
