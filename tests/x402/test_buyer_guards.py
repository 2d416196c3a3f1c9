"""Spending guards on the paying paths, over real HTTP and on the localnet: what a refusal leaves
(nothing signed, nothing moved) and what a race leaves (exactly the budget paid)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.exceptions import BudgetExceeded, PaymentBelowPrice, PaymentRequirementsInvalid, SellerNotAllowed
from ghostpay.spending import GuardedWallet, SpendingGuards, SpendLedger
from ghostpay.tokens import Atomic
from ghostpay.x402 import x402_http
from ghostpay.x402.buyer import payment_record
from tests.sdk.conftest import fund, mint_to
from tests.x402.conftest import PRICE_ATOMIC, ServerThread, guarded
from tests.x402.official_stack import official_seller_app
from tests.x402.test_buyer_interop import Tap


async def test_fifty_concurrent_calls_against_a_budget_for_ten(
    net, official_facilitator, seller, gp_buyer, mint, ledger_path
) -> None:
    tap = Tap(official_seller_app(official_facilitator.url, str(seller.wallet), str(mint), PRICE_ATOMIC))
    with ServerThread(tap) as shop:
        async with x402_http(gp_buyer, guards=guarded(ledger_path, daily=Decimal("0.1"))) as http:
            results = await asyncio.gather(*(http.get(shop.url + "/paid") for _ in range(50)), return_exceptions=True)
    paid = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(paid) == 10 and all(r.status_code == 200 and payment_record(r).settled for r in paid)
    assert len(refused) == 40 and all(isinstance(r, BudgetExceeded) for r in refused)
    assert len(tap.payments) == 10  # the 40 refused never signed anything
    assert await gp_buyer.get_token_balance(seller.wallet, mint) == Decimal("0.1")
    assert await gp_buyer.get_token_balance(gp_buyer.wallet, mint) == Decimal("0.9")


async def test_budget_runs_out_mid_run_and_survives_a_restart(
    net, official_facilitator, seller, gp_buyer, mint, ledger_path
) -> None:
    tap = Tap(official_seller_app(official_facilitator.url, str(seller.wallet), str(mint), PRICE_ATOMIC))
    with ServerThread(tap) as shop:
        async with x402_http(gp_buyer, guards=guarded(ledger_path, total=Decimal("0.03"))) as http:
            for _ in range(3):
                assert (await http.get(shop.url + "/paid")).status_code == 200
            with pytest.raises(BudgetExceeded, match="total budget of 0.03 .*0.000000 left"):
                await http.get(shop.url + "/paid")
        # a new client on the same ledger (a restart, another process) has nothing left either
        async with (
            GhostPayClient(net.http_url, gp_buyer.keypair, guards=guarded(ledger_path, total=Decimal("0.03"))) as again,
            x402_http(again) as http,
        ):
            with pytest.raises(BudgetExceeded):
                await http.get(shop.url + "/paid")
    assert len(tap.payments) == 3 and await gp_buyer.get_token_balance(seller.wallet, mint) == Decimal("0.03")


async def test_reservation_released_when_the_payment_cannot_be_built(
    net, official_facilitator, seller, gp_buyer, mint, ledger_path
) -> None:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from x402.http.utils import encode_payment_required_header  # type: ignore[attr-defined]
    from x402.schemas import PaymentRequired, PaymentRequirements

    broken = PaymentRequirements(
        scheme="exact",
        network="solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        asset=str(mint),
        amount=str(PRICE_ATOMIC),
        pay_to=str(seller.wallet),
        max_timeout_seconds=60,
        extra={"feePayer": "not-a-key"},
    )
    app = FastAPI()

    @app.get("/paid")
    async def paid() -> JSONResponse:
        header = encode_payment_required_header(PaymentRequired(accepts=[broken]))
        return JSONResponse({}, status_code=402, headers={"PAYMENT-REQUIRED": header})

    wallet = guarded(ledger_path, total=Decimal("0.01"))
    with ServerThread(app) as shop:
        async with x402_http(gp_buyer, guards=wallet) as http:
            with pytest.raises(PaymentRequirementsInvalid, match="cannot be built"):
                await http.get(shop.url + "/paid")
    [row] = list(wallet.ledger.entries(str(gp_buyer.wallet)))
    assert row["state"] == "released" and wallet.ledger.usage(str(gp_buyer.wallet), str(mint), 6).total == 0


async def test_blocked_seller_nothing_signed(net, official_facilitator, seller, gp_buyer, mint, ledger_path) -> None:
    tap = Tap(official_seller_app(official_facilitator.url, str(seller.wallet), str(mint), PRICE_ATOMIC))
    with ServerThread(tap) as shop:
        async with x402_http(gp_buyer, guards=guarded(ledger_path, blocked_sellers={str(seller.wallet)})) as http:
            with pytest.raises(SellerNotAllowed):
                await http.get(shop.url + "/paid")
    assert tap.payments == [] and list(SpendLedger(ledger_path).entries(str(gp_buyer.wallet))) == []


async def test_pay_agent_passes_the_guards(net, mint, ledger_path) -> None:
    owner = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url)
    wallet = GuardedWallet(SpendingGuards(daily=Decimal("0.02"), per_call=Decimal("0.05")), ledger_path)
    payer = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url, guards=wallet)
    async with owner, payer:
        agent = (
            await owner.register_agent(
                "guarded", "Guarded", x402=X402Settings({mint: Decimal("0.01")}, "https://g.example")
            )
        ).address
        mint_to(net, payer.wallet, mint, 1_000_000)
        with pytest.raises(PaymentBelowPrice):  # failed on chain: its reservation is released
            await payer.pay_agent(agent, amount=Atomic(1))
        first = await payer.pay_agent(agent)
        await payer.pay_agent(agent)
        with pytest.raises(BudgetExceeded, match="daily budget of 0.02"):
            await payer.pay_agent(agent)
        with pytest.raises(BudgetExceeded):  # prepare_payment pays too
            await payer.prepare_payment(agent, owner.wallet)
        blocked = GhostPayClient(
            net.http_url, payer.keypair, guards=GuardedWallet(SpendingGuards(blocked_sellers={str(agent)}), ledger_path)
        )
        async with blocked:
            with pytest.raises(SellerNotAllowed):
                await blocked.pay_agent(agent)
        assert await payer.get_token_balance(owner.wallet, mint) == Decimal("0.02")
        states = [(r["state"], r["signature"]) for r in wallet.ledger.entries(str(payer.wallet))]
        assert states[-1] == ("released", None) and states[-2] == ("settled", str(first.signature))
        assert len(states) == 3
