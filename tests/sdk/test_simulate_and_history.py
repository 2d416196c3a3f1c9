"""simulate_payment (compute units, fee, the typed error, nothing spent) and get_payment_events."""

from __future__ import annotations

from decimal import Decimal

from ghostpay.exceptions import PaymentBelowPrice
from ghostpay.tokens import Atomic
from tests.sdk.test_payments import seller_and_buyer


async def test_simulate_payment_spends_nothing_and_names_the_error(net, usdc) -> None:
    seller, buyer = await seller_and_buyer(net, usdc, "simulated")
    async with seller, buyer:
        agent = seller.agent_address("simulated")
        ok = await buyer.simulate_payment(agent)
        assert ok.error is None and ok.compute_units and ok.compute_units > 0 and ok.fee == 5_000
        low = await buyer.simulate_payment(agent, amount=Atomic(9_999))
        assert isinstance(low.error, PaymentBelowPrice) and low.error.code == 6024
        assert await buyer.get_token_balance(buyer.wallet, usdc) == Decimal("1")
        assert (await seller.get_agent(agent)).total_calls == 0


async def test_payment_events_newest_first(net, usdc) -> None:
    seller, buyer = await seller_and_buyer(net, usdc, "history")
    async with seller, buyer:
        agent = seller.agent_address("history")
        first = await buyer.pay_agent(agent)
        second = await buyer.pay_agent(agent, amount=Decimal("0.02"))
        await seller.set_price(agent, {usdc: Decimal("0.03")})  # not a payment: skipped
        events = await seller.get_payment_events(agent)
        assert [bytes(e.reference) for e in events] == [second.reference, first.reference]
        assert [e.amount for e in events] == [20_000, 10_000] and events[0].payer == buyer.wallet
        assert {e.rent_payer for e in events} == {buyer.wallet}
        assert events[0].signature == second.signature
