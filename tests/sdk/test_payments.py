"""Payments, receipts, feedback and reputation, errors, events and the sync facade through the SDK."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from solders.keypair import Keypair

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.exceptions import (GhostPayError, NameInvalid, PaymentAlreadyRecorded, PaymentBelowPrice, ProgramError,
                                 RatingOutOfRange, TransportError)
from ghostpay.events import decode_events
from ghostpay.reputation import ReputationInputs, reputation_score, tier
from ghostpay.sync_client import GhostPay
from ghostpay.tokens import Atomic
from tests.sdk.conftest import PRICE, fund, mint_to


async def seller_and_buyer(net, usdc, agent_id: str) -> tuple[GhostPayClient, GhostPayClient]:
    seller = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url)
    buyer = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url)
    await seller.register_agent(agent_id, agent_id.title(), capabilities=["pay"],
                                x402=X402Settings(PRICE, [usdc], "https://pay.example"))
    mint_to(net, buyer.wallet, usdc, 1_000_000)
    return seller, buyer


async def test_pay_receipt_retry_feedback_and_reputation(net, usdc) -> None:
    seller, buyer = await seller_and_buyer(net, usdc, "payee")
    async with seller, buyer:
        agent = seller.agent_address("payee")
        reference = bytes(range(32))
        assert await buyer.get_receipt(agent, reference) is None
        paid = await buyer.pay_agent(agent, reference=reference)  # creates the payee's token account
        assert paid.amount == PRICE and paid.amount_atomic == 10_000 and paid.compute_units > 0
        assert paid.events[0].name == "X402PaymentRecorded" and paid.events[0].amount == 10_000
        assert await buyer.get_token_balance(seller.wallet, usdc) == PRICE
        assert await buyer.get_token_balance(buyer.wallet, usdc) == Decimal("0.99")

        receipt = await seller.get_receipt(agent, reference.hex())
        assert receipt is not None and receipt.payer == buyer.wallet and receipt.amount == PRICE
        assert receipt.reference == reference and receipt.mint == usdc and not receipt.feedback_submitted

        with pytest.raises(PaymentAlreadyRecorded) as retried:  # a retry is recognised, not paid twice
            await buyer.pay_agent(agent, reference=reference)
        assert (retried.value.name, retried.value.code) == ("PaymentAlreadyRecorded", 6027)
        assert "already recorded" in retried.value.message and retried.value.logs
        assert await buyer.get_token_balance(seller.wallet, usdc) == PRICE

        with pytest.raises(PaymentBelowPrice):
            await buyer.pay_agent(agent, amount=Atomic(9_999))
        second = await buyer.pay_agent(agent, amount=Decimal("0.02"))
        assert await buyer.get_receipt(agent, second.reference) is not None

        await buyer.submit_feedback(agent, reference, success=True, response_time_ms=800, rating=5)
        await buyer.submit_feedback(agent, second.reference, success=False, response_time_ms=4_000, rating=2)
        third = await buyer.pay_agent(agent)
        with pytest.raises(RatingOutOfRange) as bad:
            await buyer.submit_feedback(agent, third.reference, rating=6)
        assert bad.value.code == 6031 and bad.value.message == "Rating must be 0 (none) or 1 to 5"
        rep = await seller.get_reputation(agent)
        expected = reputation_score(ReputationInputs.from_account(rep.metrics))
        assert rep.components == expected == GhostPayClient.recompute_reputation(rep.metrics)
        assert rep.score == expected.score > 0 and rep.tier == tier(expected.score, True)
        assert rep.metrics.successful_payments == 2 and rep.metrics.failed_payments == 1
        assert (await seller.get_agent(agent)).reputation_score == rep.score
