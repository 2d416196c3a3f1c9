"""Fleet budgets: the spend ledger on the suite's PostgreSQL, shared by buyer processes that pay for real
(localnet, official seller and facilitator over HTTP); and a buyer killed between reserve and settle, its
reservation reconciled from the chain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ghostpay.client import GhostPayClient
from ghostpay.exceptions import BudgetExceeded
from ghostpay.spending import RESERVATION_TTL, GuardedWallet, SpendingGuards, SpendLedger
from ghostpay.x402 import x402_http
from tests.x402.conftest import PRICE_ATOMIC, ServerThread, buyer, keypair_file, token_balance
from tests.x402.official_stack import official_seller_app
from tests.x402.test_buyer_interop import Tap

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = int(os.environ.get("GHOSTPAY_FLEET_PROCESSES", "4"))
CALLS = int(os.environ.get("GHOSTPAY_FLEET_CALLS", "25"))  # concurrent calls per process
BUDGET_CALLS = 10
HELD = 1_000_000  # atomic units each buyer holds: 100 calls, never what stops a payment
TTL = 1.0  # seconds before the killed buyer's reservation is reconciled
DEADLINE = 150.0  # a bound for a hung test (a blockhash lives 150 slots, 60 s), not a timing claim
PAYMENT_HEADERS = (b"payment-signature", b"x-payment")


def fleet_buyer(
    rpc: str, keypair: Path, ledger: str, url: str, calls: int, daily: Decimal, ttl: float = TTL
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.x402.fleet_buyer", rpc, str(keypair), ledger, url, str(calls), str(daily)]
        + [str(ttl)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_four_processes_share_a_daily_budget_of_ten_calls(net, official_facilitator, seller, mint, postgres, tmp_path):
    ledger = postgres.create_database()
    keypair = buyer(net, mint, HELD)
    wallet = keypair.pubkey()
    tap = Tap(official_seller_app(official_facilitator.url, str(seller.wallet), str(mint), PRICE_ATOMIC))
    daily = Decimal(BUDGET_CALLS * PRICE_ATOMIC) / 10**6
    with ServerThread(tap) as shop:
        fleet = [
            # the product's TTL: with 1 s, a reservation still waiting for a thread to sign it on a loaded machine
            # stops counting before it is marked sent, and the fleet pays more than the budget
            fleet_buyer(
                net.http_url,
                keypair_file(tmp_path, keypair),
                ledger,
                shop.url + "/paid",
                CALLS,
                daily,
                RESERVATION_TTL,
            )
            for _ in range(PROCESSES)
        ]
        outputs = [process.communicate(timeout=DEADLINE) for process in fleet]
    results = [json.loads(out) for out, _ in outputs]
    assert all(r["errors"] == [] for r in results), outputs
    assert sum(r["paid"] for r in results) == BUDGET_CALLS
    assert sum(r["refused"] for r in results) == PROCESSES * CALLS - BUDGET_CALLS  # refused before signing
    assert len(tap.payments) == BUDGET_CALLS
    assert token_balance(net, seller.wallet, mint) == BUDGET_CALLS * PRICE_ATOMIC
    assert token_balance(net, wallet, mint) == HELD - BUDGET_CALLS * PRICE_ATOMIC
    assert SpendLedger(ledger).counts(str(wallet)) == {"settled": BUDGET_CALLS}


class Hold:
    """An ASGI wrapper holding paid requests until `released`: with `settle`, the seller (and its facilitator)
    settle the payment and its answer is withheld; without, the payment is never passed on (never sent)."""

    def __init__(self, app: Any, *, settle: bool) -> None:
        self.app, self.settle = app, settle
        self.held, self.released = threading.Event(), threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        paid = scope["type"] == "http" and any(name in PAYMENT_HEADERS for name, _ in scope["headers"])
        if not paid:
            await self.app(scope, receive, send)
        elif self.settle:
            await self.app(scope, receive, self.withhold)
        else:
            await self.withhold({})

    async def withhold(self, message: Any) -> None:
        self.held.set()
        while not self.released.is_set():
            await asyncio.sleep(0.05)


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


async def test_buyers_killed_between_reserve_and_settle_are_reconciled(
    net, official_facilitator, seller, mint, postgres, tmp_path
):
    ledger = postgres.create_database()
    keypair = buyer(net, mint, HELD)
    wallet = str(keypair.pubkey())
    daily = Decimal(3 * PRICE_ATOMIC) / 10**6  # a budget of three calls

    def app() -> Any:  # one per server: the middleware's state belongs to one event loop
        return official_seller_app(official_facilitator.url, str(seller.wallet), str(mint), PRICE_ATOMIC)

    landed, lost = Hold(app(), settle=True), Hold(app(), settle=False)
    path = keypair_file(tmp_path, keypair)
    with ServerThread(landed) as landed_shop, ServerThread(lost) as lost_shop, ServerThread(app()) as shop:
        killed = [
            fleet_buyer(net.http_url, path, ledger, held.url + "/paid", 1, daily) for held in (landed_shop, lost_shop)
        ]
        wait_for(lambda: landed.held.is_set() and lost.held.is_set(), "both payments held")
        wait_for(lambda: token_balance(net, seller.wallet, mint) == PRICE_ATOMIC, "the held payment to land")
        for process in killed:
            process.send_signal(signal.SIGKILL)
            process.wait()
        landed.released.set()
        lost.released.set()
        rows = SpendLedger(ledger).entries(wallet)
        assert [r["state"] for r in rows] == ["sent", "sent"] and all(r["proof"] for r in rows)
        settled, released = (
            next(r["id"] for r in rows if r["url"].startswith(s.url)) for s in (landed_shop, lost_shop)
        )

        guarded = GuardedWallet(SpendingGuards(daily=daily), SpendLedger(ledger, reservation_ttl=TTL))
        async with GhostPayClient(net.http_url, keypair) as gp, x402_http(gp, guards=guarded) as http:
            await gp.bind_guards(guarded)
            await asyncio.sleep(TTL)
            # the landed one is found on chain by the wallet's signature; the lost one may still land: counted
            assert await guarded.reconcile(wallet) == [(settled, "settled")]
            assert (await http.get(shop.url + "/paid")).status_code == 200  # 3 calls: 1 landed, 1 unknown, this
            with pytest.raises(BudgetExceeded):
                await http.get(shop.url + "/paid")
            deadline = time.monotonic() + DEADLINE
            while await guarded.reconcile(wallet) != [(released, "released")]:  # its blockhash expired without it
                assert time.monotonic() < deadline, "the lost payment was never released"
                await asyncio.sleep(2)
            assert (await http.get(shop.url + "/paid")).status_code == 200  # its budget given back, exactly
            with pytest.raises(BudgetExceeded):
                await http.get(shop.url + "/paid")
    assert token_balance(net, seller.wallet, mint) == 3 * PRICE_ATOMIC
    assert token_balance(net, keypair.pubkey(), mint) == HELD - 3 * PRICE_ATOMIC
    assert SpendLedger(ledger).counts(wallet) == {"settled": 3, "released": 1}
    [row] = [r for r in SpendLedger(ledger).entries(wallet) if r["id"] == settled]
    assert row["signature"] is not None  # the transaction the facilitator sent, learnt from the chain
