"""Payments, finding them by reference, PayerStats, feedback and reputation, errors, events and the sync facade
through the SDK."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from solders.keypair import Keypair

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.events import decode_events
from ghostpay.exceptions import (
    GhostPayError,
    NameInvalid,
    NothingToRate,
    PaymentBelowPrice,
    PaymentMintNotAccepted,
    ProgramError,
    RatingOutOfRange,
    ReceiptStillOpen,
    TransportError,
)
from ghostpay.reputation import ReputationInputs, reputation_score, tier
from ghostpay.sync_client import GhostPay
from ghostpay.tokens import Atomic
from tests.sdk.conftest import PRICE, create_mint, fund, mint_to


async def seller_and_buyer(net, usdc, agent_id: str) -> tuple[GhostPayClient, GhostPayClient]:
    seller = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url)
    buyer = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url)
    await seller.register_agent(
        agent_id, agent_id.title(), capabilities=["pay"], x402=X402Settings({usdc: PRICE}, "https://pay.example")
    )
    mint_to(net, buyer.wallet, usdc, 1_000_000)
    return seller, buyer


async def test_pay_find_by_reference_feedback_and_reputation(net, usdc) -> None:
    seller, buyer = await seller_and_buyer(net, usdc, "payee")
    async with seller, buyer:
        agent = seller.agent_address("payee")
        reference = bytes(range(32))
        assert await buyer.get_receipt(agent, reference) is None
        assert await buyer.get_payer_stats(agent) is None
        paid = await buyer.pay_agent(agent, reference=reference)  # creates the payee's token account
        assert paid.amount == PRICE and paid.amount_atomic == 10_000 and paid.compute_units > 0
        assert [e.name for e in paid.events] == ["PayerStatsOpened", "X402PaymentRecorded", "ReputationUpdated"]
        assert paid.events[1].amount == 10_000
        assert await buyer.get_token_balance(seller.wallet, usdc) == PRICE
        assert await buyer.get_token_balance(buyer.wallet, usdc) == Decimal("0.99")

        # no account per payment: the seller finds it among the agent's transactions, by its reference
        receipt = await seller.get_receipt(agent, reference.hex())
        assert receipt is not None and receipt.signature == paid.signature and receipt.source == "chain"
        assert (receipt.payer, receipt.amount, receipt.reference, receipt.mint) == (
            buyer.wallet,
            PRICE,
            reference,
            usdc,
        )
        stats = await buyer.get_payer_stats(agent)
        assert stats is not None and stats.address == paid.payer_stats
        assert (stats.paid_calls, stats.rated_calls, stats.open_calls(stats.last_paid_at)) == (1, 0, 1)

        with pytest.raises(PaymentBelowPrice):
            await buyer.pay_agent(agent, amount=Atomic(9_999))
        second = await buyer.pay_agent(agent, amount=Decimal("0.02"))
        assert [e.name for e in second.events] == ["X402PaymentRecorded", "ReputationUpdated"]  # nothing created
        assert (await buyer.get_receipt(agent, second.reference)).signature == second.signature

        await buyer.submit_feedback(agent, reference, success=True, response_time_ms=800, rating=5)
        await buyer.submit_feedback(agent, second.reference, success=False, response_time_ms=4_000, rating=2)
        with pytest.raises(NothingToRate) as beyond:  # two calls paid, two rated
            await buyer.submit_feedback(agent, reference, rating=1)
        assert (beyond.value.name, beyond.value.code) == ("NothingToRate", 6080) and beyond.value.logs
        third = await buyer.pay_agent(agent)
        with pytest.raises(RatingOutOfRange) as bad:
            await buyer.submit_feedback(agent, third.reference, rating=6)
        assert bad.value.code == 6031 and bad.value.message == "Rating must be 0 (none) or 1 to 5"
        rep = await seller.get_reputation(agent)
        expected = reputation_score(ReputationInputs.from_account(rep.metrics))
        assert rep.components == expected == GhostPayClient.recompute_reputation(rep.metrics)
        assert rep.score == expected.score > 0 and rep.tier == tier(expected.score, True)
        assert rep.metrics.successful_payments == 2 and rep.metrics.failed_payments == 1
        info = await seller.get_agent(agent)
        assert info.reputation_score == rep.score
        assert [(e.mint, e.x402_payments, e.escrow_earnings) for e in info.earnings] == [
            (usdc, 2 * PRICE + Decimal("0.02"), Decimal(0))
        ]  # whole tokens of the mint they were paid in


async def test_partially_signed_payment_completed_by_a_facilitator(net, usdc) -> None:
    seller, buyer = await seller_and_buyer(net, usdc, "facilitated")
    facilitator, other = fund(net), fund(net)
    mint_to(net, other.pubkey(), usdc, 1_000_000)
    async with (
        seller,
        buyer,
        GhostPayClient(net.http_url, facilitator) as fac,
        GhostPayClient(net.http_url, other) as fronted_buyer,
    ):
        agent = seller.agent_address("facilitated")
        lamports_before = (await buyer.rpc.get_balance(buyer.wallet)).value
        prepared = await buyer.prepare_payment(agent, facilitator.pubkey())
        tx = prepared.transaction
        assert tx.message.account_keys[0] == facilitator.pubkey() and not tx.is_signed()
        tx.partial_sign([facilitator], tx.message.recent_blockhash)
        result = await fac.send_transaction(tx, prepared.last_valid_block_height)
        assert result.event("X402PaymentRecorded").payer == buyer.wallet
        receipt = await fac.get_receipt(agent, prepared.reference)
        assert receipt is not None and receipt.payer == buyer.wallet and receipt.amount == PRICE
        stats = await buyer.get_payer_stats(agent)
        assert stats.address == prepared.payer_stats and stats.rent_payer == buyer.wallet
        # no fees for the buyer, only its PayerStats' rent, once
        assert (await buyer.rpc.get_balance(buyer.wallet)).value == lamports_before - stats.rent_lamports

        # a facilitator fronting that rent: a buyer holding only tokens spends no SOL at all, ever
        sol_before, fee_payer_before = (
            (await buyer.rpc.get_balance(other.pubkey())).value,
            (await fac.rpc.get_balance(facilitator.pubkey())).value,
        )
        references = []
        for _ in range(3):
            fronted = await fronted_buyer.prepare_payment(agent, facilitator.pubkey(), rent_payer=facilitator.pubkey())
            fronted.transaction.partial_sign([facilitator], fronted.transaction.message.recent_blockhash)
            event = (await fac.send_transaction(fronted.transaction, fronted.last_valid_block_height)).event(
                "X402PaymentRecorded"
            )
            assert (event.payer, event.rent_payer) == (other.pubkey(), facilitator.pubkey())
            references.append(fronted.reference)
        stats = await fronted_buyer.get_payer_stats(agent)
        assert (stats.rent_payer, stats.paid_calls) == (facilitator.pubkey(), 3)
        assert (await buyer.rpc.get_balance(other.pubkey())).value == sol_before
        assert (
            await fac.rpc.get_balance(facilitator.pubkey())
        ).value == fee_payer_before - 3 * 2 * 5_000 - stats.rent_lamports  # three fees, one rent
        await fronted_buyer.submit_feedback(agent, references[0], rating=4)
        with pytest.raises(ReceiptStillOpen):  # not the facilitator's to close while its payer may still rate
            await fac.close_payer_stats(agent, other.pubkey())
        before = (await fac.rpc.get_balance(facilitator.pubkey())).value
        closed = await fronted_buyer.close_payer_stats(agent)  # the payer may: the rent goes back to the facilitator
        assert closed.event("PayerStatsClosed").forfeited_calls == 2
        assert (await fac.rpc.get_balance(facilitator.pubkey())).value == before + stats.rent_lamports
        assert await fronted_buyer.get_payer_stats(agent) is None


async def test_each_mint_is_paid_its_own_price(net, usdc) -> None:
    """A call priced 0.02 in USDC and 0.02 in a 2-decimal token pays 0.02 of the 2-decimal token: never the
    USDC price's 20,000 atomic units (200.00 of it), the bug of one atomic price for every mint."""
    cents = create_mint(net, 2)
    seller = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url)
    buyer = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url)
    async with seller, buyer:
        await seller.register_agent(
            "two-mints",
            "Two mints",
            x402=X402Settings({usdc: Decimal("0.02"), cents: Decimal("0.02")}, "https://two.example"),
        )
        agent = seller.agent_address("two-mints")
        mint_to(net, buyer.wallet, cents, 100_000)  # 1,000.00
        mint_to(net, buyer.wallet, usdc, 1_000_000)
        paid = await buyer.pay_agent(agent, mint=cents)
        assert (paid.mint, paid.amount, paid.amount_atomic) == (cents, Decimal("0.02"), 2)
        assert await buyer.get_token_balance(buyer.wallet, cents) == Decimal("999.98")
        assert await buyer.get_token_balance(seller.wallet, cents) == Decimal("0.02")
        usdc_paid = await buyer.pay_agent(agent)  # the default: the first mint, at its own price
        assert (usdc_paid.mint, usdc_paid.amount) == (usdc, Decimal("0.02"))
        with pytest.raises(PaymentBelowPrice):  # 0.01 of the 2-decimal token is below its price
            await buyer.pay_agent(agent, mint=cents, amount=Decimal("0.01"))
        stranger = create_mint(net, 6)
        with pytest.raises(PaymentMintNotAccepted):
            await buyer.pay_agent(agent, mint=stranger)
        assert await buyer.get_token_balance(buyer.wallet, cents) == Decimal("999.98")  # nothing more moved
        # earnings per mint, in whole tokens of each: 2 + 20,000 atomic units would be no amount at all
        info = await buyer.get_agent(agent)
        assert [(e.mint, e.decimals, e.x402_payments, e.x402_payments_atomic) for e in info.earnings] == [
            (cents, 2, Decimal("0.02"), 2),
            (usdc, 6, Decimal("0.02"), 20_000),
        ]


async def test_program_errors_transport_errors_and_simulation(net, client: GhostPayClient) -> None:
    with pytest.raises(NameInvalid) as err:
        await client.register_agent("nameless", "")
    assert isinstance(err.value, ProgramError) and err.value.code == 6001
    assert err.value.name == "NameInvalid" and err.value.message == "Name must be 1 to 64 bytes"

    from ghostpay.agent_instructions import AgentProfile, build_register_agent

    sim = await client.simulate([build_register_agent(client.wallet, AgentProfile("sim", "Sim"))])
    assert sim.error is None and sim.compute_units and sim.compute_units > 1_000
    bad = await client.simulate([build_register_agent(client.wallet, AgentProfile("sim", ""))])
    assert isinstance(bad.error, NameInvalid)

    async with GhostPayClient("http://127.0.0.1:9", Keypair(), timeout=2) as dead:
        with pytest.raises(TransportError):
            await dead.get_agent(Keypair().pubkey())
        with pytest.raises(GhostPayError):
            await dead.register_agent("x", "X")


async def test_events_decoded_and_live(net, client: GhostPayClient) -> None:
    ready = asyncio.Event()
    stream = client.events({"AgentRegistered", "AgentStatusChanged"}, ready=ready)
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.wait_for(ready.wait(), 5)
    result = await client.register_agent("live", "Live")
    event = await asyncio.wait_for(first, 5)
    assert event.name == "AgentRegistered" and event.agent == result.address and event.signature == result.signature
    await client.deactivate("live")
    changed = await asyncio.wait_for(stream.__anext__(), 5)
    assert changed.name == "AgentStatusChanged" and changed.is_active is False
    await stream.aclose()

    decoded = await client.get_transaction_events(result.signature)
    assert [e.name for e in decoded] == ["AgentRegistered"] and decoded[0].name == result.events[0].name
    assert decode_events(result.logs)[0].data.agent_id == "live"


def test_sync_facade(net, usdc) -> None:
    with GhostPay(net.http_url, fund(net), ws_url=net.ws_url) as gp:
        reg = gp.register_agent("sync", "Sync", x402=X402Settings({usdc: Decimal("1.5")}, "https://s.example"))
        assert gp.get_agent("sync").address == reg.address
        assert gp.get_agent_pricing(reg.address).price_in(usdc).price == Decimal("1.5")
        with pytest.raises(ProgramError) as err:  # the same typed exceptions as the async client
            gp.set_price("sync", {usdc: Decimal("1000000.000001")})  # above the 10^12 atomic units maximum
        assert err.value.name == "PriceOutOfRange"
        assert [e.name for e in gp.get_transaction_events(reg.signature)] == ["AgentRegistered"]


async def test_expired_blockhash_is_retried_with_a_fresh_one(client: GhostPayClient) -> None:
    from unittest import mock

    from ghostpay.exceptions import BlockhashExpired

    real = client.send_transaction
    blockhashes = []

    async def flaky(tx, last_valid=None, **kw):
        blockhashes.append(tx.message.recent_blockhash)
        if len(blockhashes) == 1:
            raise BlockhashExpired("expired")
        return await real(tx, last_valid, **kw)

    with mock.patch.object(client, "send_transaction", side_effect=flaky):
        result = await client.register_agent("retried", "Retried")
    assert len(blockhashes) == 2 and result.event("AgentRegistered").agent_id == "retried"
    with (
        mock.patch.object(client, "send_transaction", side_effect=BlockhashExpired("always")),
        pytest.raises(BlockhashExpired),
    ):
        await client.register_agent("never", "Never")
