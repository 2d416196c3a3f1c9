"""Work orders through the SDK on a localnet: milestones to completion, a dispute the arbiter settles,
cancel and refund, listing by party and status, the sync facade."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest

from ghostpay.client import X402Settings
from ghostpay.discovery import HEAD
from ghostpay.exceptions import AccountNotFound, ArbiterNotAgreed, InvalidArgument, NotWorkOrderProvider
from ghostpay.sync_client import GhostPay
from tests.sdk.conftest import PRICE, escrow, fund, mint_to, time_travel

CONTENT = b"the translated manual"


async def test_milestones_to_completion(net, usdc) -> None:
    async with await escrow(net, usdc, "milestones") as e:
        order = await e.client.create_work_order(
            e.agent,
            Decimal("10"),
            deadline=timedelta(hours=1),
            arbiter=e.arbiter.wallet,
            title="Translate the manual",
            requirements=["English to French"],
            review_period=timedelta(minutes=5),
        )
        created = order.result.event("WorkOrderCreated")
        assert (created.work_order, created.amount, created.order_id) == (order.address, 10_000_000, order.order_id)
        assert order.address == e.client.work_order_address(order.order_id)
        assert await e.client.get_token_balance(e.client.wallet, usdc) == Decimal("90")

        info = await e.provider.get_work_order(order.address)
        assert (info.status, info.amount, info.remaining, info.title) == (
            "Created",
            Decimal("10"),
            Decimal("10"),
            "Translate the manual",
        )
        assert (info.client, info.agent, info.provider_owner, info.arbiter) == (
            e.client.wallet,
            e.agent,
            e.provider.wallet,
            e.arbiter.wallet,
        )
        assert (await e.provider.get_agent(e.agent)).open_work_orders == 1

        with pytest.raises(ArbiterNotAgreed):  # the provider agrees to an arbiter; the order names another
            await e.provider.accept_work_order(order.address, arbiter=e.provider.wallet)
        assert (await e.client.get_work_order(order.address)).status == "Created"
        await e.provider.accept_work_order(order.address, arbiter=e.arbiter.wallet)
        await e.provider.submit_delivery(order.address, "https://files.example/v1", hashlib.sha256(b"v1").digest())
        rejected = await e.client.reject_delivery(order.address, "chapter 3 is missing")
        assert rejected.event("DeliveryRejected").reason == "chapter 3 is missing"
        info = await e.client.get_work_order(order.address)
        assert info.status == "Rejected" and info.account.rejected_at > 0
        delivered = await e.provider.submit_delivery(
            str(order.address), "https://files.example/v2", hashlib.sha256(CONTENT).hexdigest()
        )
        assert delivered.event("WorkDelivered").content_hash == list(hashlib.sha256(CONTENT).digest())

        first = await e.client.release_payment(order.address, Decimal("4"))  # creates the provider's token account
        assert (first.event("PaymentReleased").remaining, first.event("PaymentReleased").completed) == (
            6_000_000,
            False,
        )
        info = await e.client.get_work_order(order.address)
        assert (info.released, info.remaining, info.status) == (Decimal("4"), Decimal("6"), "Submitted")
        assert await e.client.get_token_balance(e.provider.wallet, usdc) == Decimal("4")

        last = await e.client.release_payment(info)  # the rest
        assert last.event("PaymentReleased").completed is True
        with pytest.raises(AccountNotFound):  # terminal: the work order and its vault are closed
            await e.client.get_work_order(order.address)
        assert (await e.client.rpc.get_account_info(order.vault)).value is None
        assert await e.client.get_token_balance(e.provider.wallet, usdc) == Decimal("10")
        assert await e.client.get_token_balance(e.client.wallet, usdc) == Decimal("90")

        agent = await e.client.get_agent(e.agent)
        assert (agent.total_jobs_completed, agent.open_work_orders) == (1, 0)
        earned = agent.earned_in(usdc)
        assert (earned.escrow_earnings, earned.x402_payments, earned.total, earned.escrow_earnings_atomic) == (
            Decimal("10"),
            Decimal("0"),
            Decimal("10"),
            10_000_000,
        )
        reputation = await e.client.get_reputation(e.agent)
        assert reputation.metrics.successful_payments == 1 and reputation.score == agent.reputation_score > 0


async def test_dispute_settled_by_the_arbiter(net, usdc) -> None:
    async with await escrow(net, usdc, "disputed") as e:
        order = await e.client.create_work_order(
            e.agent, Decimal("20"), deadline=timedelta(hours=1), arbiter=e.arbiter.wallet, title="Label 1,000 images"
        )
        await e.provider.accept_work_order(order.address)
        await e.provider.submit_delivery(order.address, "https://files.example/labels", bytes(32))
        opened = await e.client.open_dispute(order.address, "half of the labels are wrong")
        assert opened.event("DisputeOpened").opened_by == e.client.wallet
        assert [o.address for o in await e.arbiter.list_work_orders(arbiter=e.arbiter.wallet, status="Disputed")] == [
            order.address
        ]

        settled = await e.arbiter.resolve_dispute(order.address, 3_000)  # 30 % back to the client
        resolved = settled.event("DisputeResolved")
        assert (resolved.client_amount, resolved.provider_amount) == (6_000_000, 14_000_000)
        assert await e.client.get_token_balance(e.client.wallet, usdc) == Decimal("86")
        assert await e.client.get_token_balance(e.provider.wallet, usdc) == Decimal("14")
        metrics = (await e.client.get_reputation(e.agent)).metrics
        assert (metrics.total_disputes, metrics.disputes_resolved, metrics.successful_payments) == (1, 1, 1)
        agent = await e.client.get_agent(e.agent)
        assert (agent.total_jobs_completed, agent.open_work_orders) == (0, 0)  # a settlement is not a completed job

        # a ruling wholly for the provider erases the dispute and counts the job as done
        order = await e.client.create_work_order(
            e.agent, Decimal("5"), deadline=timedelta(hours=1), arbiter=e.arbiter.wallet, title="Vindicated"
        )
        await e.provider.accept_work_order(order.address)
        await e.provider.submit_delivery(order.address, "https://files.example/v", bytes(32))
        await e.client.open_dispute(order.address, "I changed my mind")
        assert (await e.client.get_reputation(e.agent)).metrics.total_disputes == 2
        await e.arbiter.resolve_dispute(order.address, 0)
        metrics = (await e.client.get_reputation(e.agent)).metrics
        assert (metrics.total_disputes, metrics.disputes_resolved, metrics.successful_payments) == (1, 1, 2)
        assert (await e.client.get_agent(e.agent)).total_jobs_completed == 1


async def test_cancel_refund_claim_and_listing(net, usdc) -> None:
    async with await escrow(net, usdc, "lister") as e:
        make = e.client.create_work_order
        cancelled = await make(e.agent, 1, deadline=timedelta(hours=1), arbiter=e.arbiter.wallet, title="cancel")
        late = await make(
            e.agent, 2, deadline=timedelta(seconds=30), arbiter=e.arbiter.wallet, title="late", order_id=7
        )
        claimed = await make(
            e.agent, 3, deadline=timedelta(hours=1), arbiter=e.arbiter.wallet, title="claimed", review_period=60
        )
        assert late.address == e.client.work_order_address(7)

        with mock.patch.object(e.client.rpc, "get_program_accounts", wraps=e.client.rpc.get_program_accounts) as gpa:
            mine = await e.client.list_work_orders(client=e.client.wallet)
        assert {o.title for o in mine} == {"cancel", "late", "claimed"}
        offsets = [f.offset for f in gpa.call_args.kwargs["filters"]]
        assert offsets == [0, HEAD["WorkOrder"]["client"]]  # memcmp on the node
        assert {o.title for o in await e.client.list_work_orders(agent=e.agent)} == {"cancel", "late", "claimed"}
        assert len(await e.client.list_work_orders(provider=e.provider.wallet, status="Created", mint=usdc)) == 3
        assert await e.client.list_work_orders(client=e.provider.wallet) == []
        with pytest.raises(InvalidArgument):
            await e.client.list_work_orders(status="Paid")

        assert (await e.client.cancel_work_order(cancelled.address)).event("WorkOrderCancelled").refunded == 1_000_000
        unwanted = await make(e.agent, 4, deadline=timedelta(hours=1), arbiter=e.arbiter.wallet, title="unwanted")
        with pytest.raises(NotWorkOrderProvider):
            await e.client.decline_work_order(unwanted.address)
        declined = (await e.provider.decline_work_order(unwanted.address)).event("WorkOrderDeclined")
        assert (declined.work_order, declined.refunded) == (unwanted.address, 4_000_000)
        with pytest.raises(AccountNotFound):
            await e.client.get_work_order(unwanted.address)
        await e.provider.accept_work_order(late.address)
        await e.provider.accept_work_order(claimed.address)
        await e.provider.submit_delivery(claimed.address, "https://files.example/c", bytes(32))
        time_travel(net, 90)  # past `late`'s deadline and `claimed`'s review period
        assert (await e.client.claim_refund(late.address)).event("WorkOrderRefunded").refunded == 2_000_000
        assert (await e.provider.claim_payment(claimed.address)).event("PaymentReleased").completed
        assert await e.client.list_work_orders(client=e.client.wallet) == []
        assert await e.client.get_token_balance(e.client.wallet, usdc) == Decimal("97")
        assert (await e.client.get_reputation(e.agent)).metrics.failed_payments == 1  # accepted, never delivered


def test_sync_facade_work_orders(net, usdc) -> None:
    with GhostPay(net.http_url, fund(net)) as provider, GhostPay(net.http_url, fund(net)) as client:
        agent = provider.register_agent("sync-worker", "Sync", x402=X402Settings({usdc: PRICE}, "https://s.example"))
        mint_to(net, client.wallet, usdc, 2_000_000)
        order = client.create_work_order(
            agent.address, Decimal("1.5"), deadline=timedelta(hours=1), arbiter=fund(net).pubkey(), title="sync"
        )
        assert client.get_work_order(order.address).amount == Decimal("1.5")
        assert client.cancel_work_order(order.address).event("WorkOrderCancelled").refunded == 1_500_000
