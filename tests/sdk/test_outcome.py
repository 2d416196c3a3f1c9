"""Money paths never lose their outcome: faults injected after `sendTransaction` by a proxy in front of
the localnet (dropped connection, HTTP 500, a reply slower than the client's timeout, a request that
never reached the node), then an outage. The SDK recovers the outcome from the signature's status, or
raises `OutcomeUnknown` with what a safe retry needs; a retry never pays twice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from solders.signature import Signature

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.exceptions import AlreadyProcessed, OutcomeUnknown
from tests.fault_proxy import FaultProxy
from tests.sdk.conftest import PRICE, cheat, fund, mint_to

TIMEOUTS = {"timeout": 1.0, "confirm_timeout": 2.5}


def status(net, signature: Signature) -> object:
    return net.rpc("getSignatureStatuses", [str(signature)])["result"]["value"][0]


async def seller_and_agent(net, usdc, agent_id: str):
    seller = GhostPayClient(net.http_url, fund(net))
    async with seller:
        registered = await seller.register_agent(
            agent_id, agent_id, x402=X402Settings({usdc: PRICE}, "https://x.example")
        )
    return seller.wallet, registered.address


@pytest.mark.parametrize("fault", ["drop", "500", "delay", "drop-before"])
async def test_a_fault_after_the_send_is_recovered_from_the_signature(net, usdc, fault) -> None:
    payee, agent = await seller_and_agent(net, usdc, f"recover-{fault}")
    buyer = fund(net)
    mint_to(net, buyer.pubkey(), usdc, 1_000_000)
    sent: list[Signature] = []
    with FaultProxy(net.http_url) as proxy:
        async with GhostPayClient(proxy.url, buyer, on_send=lambda sig, _, __: sent.append(sig), **TIMEOUTS) as gp:
            proxy.arm(fault, outage=0.5, delay=2.0)
            paid = await gp.pay_agent(agent)
            assert proxy.faults_fired == 1 and paid.signature == sent[-1]
            assert (await gp.get_receipt(agent, paid.reference)).signature == paid.signature
            assert await gp.get_token_balance(payee, usdc) == PRICE  # paid exactly once
            assert await gp.get_token_balance(buyer.pubkey(), usdc) == Decimal(1) - PRICE


@pytest.mark.parametrize("fault,landed", [("drop", True), ("500", True), ("drop-before", False)])
async def test_outcome_unknown_carries_what_a_safe_retry_needs(net, usdc, fault, landed) -> None:
    """Whether or not the payment landed, `resume_payment` finishes it without paying twice: the landed one is
    found by its signature, the one that never left is sent again as the same signed bytes (landing once)."""
    payee, agent = await seller_and_agent(net, usdc, f"unknown-{fault}")
    buyer = fund(net)
    mint_to(net, buyer.pubkey(), usdc, 1_000_000)
    with FaultProxy(net.http_url) as proxy:
        async with GhostPayClient(proxy.url, buyer, **TIMEOUTS) as gp:
            proxy.arm(fault, outage=60)
            with pytest.raises(OutcomeUnknown) as unknown:
                await gp.pay_agent(agent)
    exc = unknown.value
    assert isinstance(exc.signature, Signature) and len(exc.reference) == 32 and exc.transaction
    assert exc.last_valid_block_height > net.rpc("getBlockHeight")["result"] - 200
    assert str(exc.signature) in str(exc)
    assert (status(net, exc.signature) is not None) is landed
    async with GhostPayClient(net.http_url, buyer) as gp:  # the RPC answers again: finish the same payment
        resumed = await gp.resume_payment(exc)
        assert resumed is not None and resumed.signature == exc.signature and resumed.reference == exc.reference
        assert await gp.resume_payment(exc) == resumed  # asked again: the same answer, nothing more paid
        assert await gp.get_token_balance(payee, usdc) == PRICE


async def test_a_payment_whose_blockhash_expired_unsent_resumes_as_none_and_pays_once_after(net, usdc) -> None:
    """A signed payment that never reached the node, its blockhash expired: `resume_payment` answers None
    (it never can land), and paying again with its reference pays exactly once."""
    payee, agent = await seller_and_agent(net, usdc, "expired")
    buyer = fund(net)
    mint_to(net, buyer.pubkey(), usdc, 1_000_000)
    async with GhostPayClient(net.http_url, buyer) as gp:
        prepared = await gp.prepare_payment(agent, buyer.pubkey())
        prepared.transaction.partial_sign([buyer], prepared.transaction.message.recent_blockhash)
        slot = cheat(net, "getSlot")
        cheat(net, "surfnet_timeTravel", {"absoluteSlot": slot + 200})  # its blockhash expires unsent
        unknown = OutcomeUnknown(
            "never sent",
            prepared.transaction.signatures[0],
            prepared.reference,
            prepared.last_valid_block_height,
            bytes(prepared.transaction),
        )
        assert await gp.resume_payment(unknown) is None
        assert await gp.get_token_balance(payee, usdc) == 0
        again = await gp.pay_agent(agent, reference=unknown.reference)
        assert again.reference == unknown.reference and await gp.get_token_balance(payee, usdc) == PRICE


async def test_escrow_create_survives_a_500_after_the_send(net, usdc) -> None:
    _, agent = await seller_and_agent(net, usdc, "escrow-500")
    client, arbiter = fund(net), fund(net)
    mint_to(net, client.pubkey(), usdc, 5_000_000)
    with FaultProxy(net.http_url) as proxy:
        async with GhostPayClient(proxy.url, client, **TIMEOUTS) as gp:
            proxy.arm("500", outage=0.5)
            order = await gp.create_work_order(
                agent, Decimal("2"), deadline=timedelta(days=1), arbiter=arbiter.pubkey(), title="Job"
            )
            assert proxy.faults_fired == 1 and proxy.sent >= 1
            assert (await gp.get_work_order(order.address)).amount == Decimal("2")
            assert await gp.get_token_balance(client.pubkey(), usdc) == Decimal("3")


async def test_resending_a_landed_transaction_is_not_an_error_and_a_refused_one_is(net) -> None:
    from solders.message import Message
    from solders.system_program import TransferParams, transfer
    from solders.transaction import Transaction

    from ghostpay.exceptions import TransactionError

    payer = fund(net)
    async with GhostPayClient(net.http_url, payer) as gp:
        blockhash, last_valid = await gp.latest_blockhash()
        move = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=fund(net).pubkey(), lamports=1_000))
        tx = Transaction([payer], Message.new_with_blockhash([move], payer.pubkey(), blockhash), blockhash)
        await gp.send_transaction(tx, last_valid)
        await gp._resend(bytes(tx))  # "already processed": it landed, the status says so
        with pytest.raises(AlreadyProcessed) as twice:  # sent again as a new transaction: a typed error
            await gp.send_transaction(tx, last_valid)
        assert twice.value.signature == tx.signatures[0] and isinstance(twice.value, TransactionError)
        too_much = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=payer.pubkey(), lamports=10**15))
        refused = Transaction([payer], Message.new_with_blockhash([too_much], payer.pubkey(), blockhash), blockhash)
        with pytest.raises(TransactionError):  # refused in preflight: it never landed
            await gp._resend(bytes(refused))
        assert status(net, refused.signatures[0]) is None
