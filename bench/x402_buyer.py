"""The x402 buyer's overhead per paid call, over real HTTP on a localnet.

    python -m bench.x402_buyer          # print the table, write bench/results/x402_buyer.json

A GhostPay seller (the X402Paywall middleware in front of a one-line handler) sells `GET /paid` at an
agent's on-chain price through GhostPay's facilitator (`create_facilitator_app`), both served by
uvicorn; the buyer is `ghostpay.x402.x402_http` with spending guards (a ledger in a temporary
folder). Each call's PaymentRecord times its phases:

- quote: the first request sent until the requirement is chosen (the 402 round trip and the wallet's
  balance read over RPC; the mint's decimals are read once);
- sign: the guards (the reservation, a SQLite commit that waits for its fsync, with the latest blockhash read
  meanwhile), the transaction built by the official client and signed, and marked sent (a second fsynced
  commit, before it leaves the process);
- verify + settle: the paid retry until its whole answer is read (the seller has the facilitator
  verify, settle and confirm the transaction on the localnet);
- total: what the caller waits for a paid call, beside an unpaid call to a free route of the same app.

Twice: the official exact transaction (a facilitator without the GhostPay extension), and with
`record_x402_payment` after the Memo (the extension on: a verified payment per call, no account per call).
X402_BENCH_CALLS sets the calls per configuration (default 40).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from solders.keypair import Keypair
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bench.report import latency_table, report, size
from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.localnet.process import LocalnetProcess, free_port_pair
from ghostpay.spending import GuardedWallet, SpendingGuards
from ghostpay.x402 import x402_http
from ghostpay.x402.buyer import payment_record
from ghostpay.x402.facilitator import FacilitatorSettings
from ghostpay.x402.facilitator.app import create_facilitator_app
from ghostpay.x402.facilitator.policy import AssetRule
from ghostpay.x402.seller import SellerSettings, X402Paywall, X402Seller

CALLS = int(os.environ.get("X402_BENCH_CALLS", size(40, 2)))
PRICE = Decimal("0.001")


@dataclass
class Row:
    transaction: str
    phase: str
    p50_ms: float
    p90_ms: float
    calls: int


class Served:
    """An ASGI app on a free port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port_pair()[0]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", ws="none", lifespan="on")
        )
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("a benchmark server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def cheat(net: LocalnetProcess, method: str, *params: object) -> Any:
    answer = net.rpc(method, *params)
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def seller_app(agent: Any, net: LocalnetProcess, facilitator_url: str, owner: Keypair) -> Starlette:
    async def paid(request: Request) -> PlainTextResponse:
        return PlainTextResponse("42")

    app = Starlette(routes=[Route("/paid", paid), Route("/free", paid)])
    app.add_middleware(
        X402Paywall,
        seller=X402Seller(
            SellerSettings(
                agent,
                net.http_url,
                facilitator_url,
                routes=("GET /paid",),
                ws_url=net.ws_url,
                payee_accounts="create",
                keypair=owner,
            )
        ),
    )
    return app


def sale_parties(net: LocalnetProcess) -> tuple[Keypair, Keypair, Keypair, str]:
    """A facilitator's fee payer, a seller (the agent's owner) and a buyer with 100 SOL each, and a 6-decimal
    mint the buyer holds 1,000,000 tokens of."""
    fee_payer, owner, buyer = Keypair(), Keypair(), Keypair()
    for key in (fee_payer, owner, buyer):
        cheat(net, "surfnet_setAccount", str(key.pubkey()), {"lamports": 100 * 10**9})
    mint = cheat(net, "surfnet_createMint", {"decimals": 6})["value"]
    cheat(net, "surfnet_setTokenAccount", str(buyer.pubkey()), mint, {"amount": 10**12})
    return fee_payer, owner, buyer, mint


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def run(net: LocalnetProcess, folder: Path, record: bool) -> list[Row]:
    fee_payer, owner, buyer, mint = sale_parties(net)
    async with GhostPayClient(net.http_url, owner, ws_url=net.ws_url) as gp:
        from solders.pubkey import Pubkey

        agent = (
            await gp.register_agent(
                f"bench{int(record)}",
                "Bench",
                x402=X402Settings({Pubkey.from_string(mint): PRICE}, "http://127.0.0.1/paid"),
            )
        ).address
    settings = FacilitatorSettings(
        fee_payer,
        net.http_url,
        net.ws_url,
        db_path=folder / f"facilitator{record}.db",
        rate_limit=10**6,
        record_extension=record,
        sweep_interval_seconds=0,
        assets=(AssetRule(mint),),
    )
    phases: dict[str, list[float]] = {
        "quote": [],
        "sign": [],
        "verify + settle": [],
        "total": [],
        "unpaid call (baseline)": [],
    }
    with (
        Served(create_facilitator_app(settings)) as facilitator,
        Served(seller_app(agent, net, facilitator.url, owner)) as shop,
    ):
        guards = GuardedWallet(SpendingGuards(per_call=Decimal("0.01")), folder / f"ledger{record}.sqlite3")
        async with GhostPayClient(net.http_url, buyer, ws_url=net.ws_url) as gp, x402_http(gp, guards=guards) as http:
            await http.get(shop.url + "/paid")  # warm: connections, mint cache
            for _ in range(CALLS):
                started = time.perf_counter()
                paid = payment_record(await http.get(shop.url + "/paid"))
                phases["total"].append((time.perf_counter() - started) * 1000)
                assert paid is not None and paid.settled and paid.verified == record, paid
                phases["quote"].append(paid.quote_ms)
                phases["sign"].append(paid.sign_ms)
                phases["verify + settle"].append(paid.latency_ms)
                started = time.perf_counter()
                await http.get(shop.url + "/free")
                phases["unpaid call (baseline)"].append((time.perf_counter() - started) * 1000)
    label = "with record_x402_payment" if record else "official exact"
    return [Row(label, phase, percentile(v, 0.5), percentile(v, 0.9), len(v)) for phase, v in phases.items()]


def main() -> None:
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        net = LocalnetProcess(folder / "ledger", "--quiet", home=folder / "home").start()
        try:
            console.print(f"{CALLS} paid calls per configuration…")
            rows = [row for record in (False, True) for row in asyncio.run(run(net, folder, record))]
        finally:
            net.stop()
    table = latency_table(
        f"x402 buyer overhead per paid call, {CALLS} calls each (localnet, real HTTP)", rows, ("transaction", "phase")
    )
    report(table, rows, "x402_buyer", console)


if __name__ == "__main__":
    main()
