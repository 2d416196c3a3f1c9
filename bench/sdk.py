"""The SDK's send path as a user meets it, beside a lean solana-py client, in one run on one localnet.

    python -m bench.sdk          # print the table, write bench/results/sdk.json

Each row pays the same agent PAYMENTS times (a recorded x402 payment: TransferChecked + record_x402_payment),
with 1 and with 16 tasks sharing one client, and counts a payment once it is confirmed:
- lean solana-py: `AsyncClient.send_raw_transaction` of a payment signed with a blockhash read once per
  BLOCKHASH_SECONDS, `getSignatureStatuses` until it is confirmed, then `getTransaction` (its error checked):
  the floor of what any client must do to send, confirm and read back a transaction;
- SDK `pay_agent`: `GhostPayClient.pay_agent(agent)` as a user calls it (it also reads the agent and checks
  the payee's token account, two more RPC calls);
- SDK `send`: `GhostPayClient.send` of the same payment instructions (the send path alone).

Throughput is payments per second over the row; latency the p50 and p90 of one payment. The ratio columns
compare each SDK row to the lean client at the same task count (goal: throughput ≥ 0.5, p50 ≤ 1.5×).
SDK_BENCH_PAYMENTS sets the payments per row (default 400).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.types import TxOpts
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from bench.report import report, size
from bench.x402_buyer import percentile, sale_parties
from ghostpay.client import PAYMENT_COMPUTE_UNITS, GhostPayClient, X402Settings
from ghostpay.localnet.process import LocalnetProcess
from ghostpay.payments import build_x402_payment
from ghostpay.pda import new_reference

PAYMENTS = int(os.environ.get("SDK_BENCH_PAYMENTS", size(400, 8)))
TASKS = (1, 16)
PRICE = Decimal("0.001")
DECIMALS = 6
BLOCKHASH_SECONDS = 20.0  # the lean client reads a new blockhash this often
THROUGHPUT_GOAL, LATENCY_GOAL = 0.5, 1.5


@dataclass
class Row:
    client: str
    tasks: int
    payments: int
    per_second: float
    p50_ms: float
    p90_ms: float
    throughput_ratio: float | None  # to the lean client at the same task count
    p50_ratio: float | None


@dataclass
class Sale:
    agent: Pubkey
    payee: Pubkey
    mint: Pubkey
    buyer: Keypair

    def instructions(self) -> list[Instruction]:
        """One payment of PRICE (the payee's token account exists by then), a fresh reference each."""
        return build_x402_payment(
            self.buyer.pubkey(),
            self.agent,
            self.payee,
            self.mint,
            DECIMALS,
            int(PRICE * 10**DECIMALS),
            new_reference(),
            compute_unit_limit=PAYMENT_COMPUTE_UNITS,
        )


Pay = Callable[[], Awaitable[object]]


async def run(pay: Pay, tasks: int) -> tuple[float, list[float]]:
    """(payments per second, each payment's ms) for PAYMENTS payments made by `tasks` tasks."""
    left = PAYMENTS
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            await pay()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return PAYMENTS / (time.perf_counter() - started), latencies


class Lean:
    """The lean solana-py client: send, confirm by polling, read the transaction back."""

    def __init__(self, url: str, sale: Sale) -> None:
        self.rpc = AsyncClient(url, commitment=Confirmed)
        self.sale = sale
        self.blockhash: tuple[Hash, float] | None = None

    async def latest_blockhash(self) -> Hash:
        if self.blockhash is None or time.monotonic() - self.blockhash[1] > BLOCKHASH_SECONDS:
            self.blockhash = ((await self.rpc.get_latest_blockhash()).value.blockhash, time.monotonic())
        return self.blockhash[0]

    async def pay(self) -> None:
        blockhash = await self.latest_blockhash()
        buyer = self.sale.buyer
        message = Message.new_with_blockhash(self.sale.instructions(), buyer.pubkey(), blockhash)
        tx = Transaction([buyer], message, blockhash)
        signature = (await self.rpc.send_raw_transaction(bytes(tx), TxOpts(skip_confirmation=True))).value
        while (await self.rpc.get_signature_statuses([signature])).value[0] is None:
            await asyncio.sleep(0.005)
        found = (await self.rpc.get_transaction(signature, "json", Confirmed, 0)).value
        assert found is not None and found.transaction.meta is not None and found.transaction.meta.err is None


async def measure(net: LocalnetProcess, sale: Sale, console: Console) -> list[Row]:
    lean = Lean(net.http_url, sale)
    rows: list[Row] = []
    async with GhostPayClient(net.http_url, sale.buyer, ws_url=net.ws_url) as gp:

        async def pay_agent() -> None:
            paid = await gp.pay_agent(sale.agent)
            assert paid.amount == PRICE

        async def send() -> None:
            await gp.send(sale.instructions())

        clients: dict[str, Pay] = {"lean solana-py": lean.pay, "SDK pay_agent": pay_agent, "SDK send": send}
        for pay in clients.values():  # warm: connections, the mint cache, the blockhash
            await pay()
        for tasks in TASKS:  # interleaved: each row beside its baseline, at the same moment of the run
            baseline: tuple[float, float] | None = None
            for name, pay in clients.items():
                rate, latencies = await run(pay, tasks)
                p50 = percentile(latencies, 0.5)
                if baseline is None:
                    baseline = (rate, p50)
                    ratios: tuple[float | None, float | None] = (None, None)
                else:
                    ratios = (round(rate / baseline[0], 2), round(p50 / baseline[1], 2))
                rows.append(Row(name, tasks, PAYMENTS, round(rate, 1), p50, percentile(latencies, 0.9), *ratios))
                console.log(f"{name}, {tasks} task(s): {rate:.0f}/s, p50 {p50} ms")
    await lean.rpc.close()
    return rows


def setup(net: LocalnetProcess) -> Sale:
    """A seller's agent taking PRICE per call and a buyer holding the mint; one payment creates the payee's
    token account and the buyer's PayerStats."""
    _, owner, buyer, mint = sale_parties(net)

    async def register() -> Sale:
        async with GhostPayClient(net.http_url, owner, ws_url=net.ws_url) as gp:
            registered = await gp.register_agent(
                "benchsdk", "Bench", x402=X402Settings({Pubkey.from_string(mint): PRICE}, "http://127.0.0.1/paid")
            )
            assert registered.address is not None
        async with GhostPayClient(net.http_url, buyer, ws_url=net.ws_url) as gp:
            await gp.pay_agent(registered.address)
        return Sale(registered.address, owner.pubkey(), Pubkey.from_string(mint), buyer)

    return asyncio.run(register())


def main() -> int:
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        net = LocalnetProcess(Path(tmp) / "ledger", "--quiet", home=Path(tmp) / "home").start()
        try:
            rows = asyncio.run(measure(net, setup(net), console))
        finally:
            net.stop()
    table = Table(
        title=f"SDK send path: {PAYMENTS} confirmed x402 payments per row, one localnet "
        f"(ratios to the lean solana-py client; goal throughput ≥ {THROUGHPUT_GOAL}, p50 ≤ {LATENCY_GOAL}×)"
    )
    for column in ("client", "tasks", "payments/s", "p50 ms", "p90 ms", "throughput / lean", "p50 / lean"):
        table.add_column(column, justify="left" if column == "client" else "right")
    for row in rows:
        table.add_row(
            row.client,
            str(row.tasks),
            f"{row.per_second:,.0f}",
            f"{row.p50_ms:.1f}",
            f"{row.p90_ms:.1f}",
            "" if row.throughput_ratio is None else f"{row.throughput_ratio:.2f}",
            "" if row.p50_ratio is None else f"{row.p50_ratio:.2f}×",
        )
    report(table, rows, "sdk", console, width=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
