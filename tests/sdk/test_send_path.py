"""The SDK's send path costs what it must: one blockhash read serves many transactions (a new one when the node
refuses it as expired, the payment then made once), confirmations come over the client's one websocket (polled
without it), and the transaction is read back only for its details. RPC calls are counted by a proxy."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

import pytest
from solders.keypair import Keypair
from solders.signature import Signature
from solders.system_program import TransferParams, transfer

from ghostpay import transactions
from ghostpay.client import GhostPayClient, X402Settings
from tests.fault_proxy import FaultProxy
from tests.sdk.conftest import PRICE, SOL, cheat, fund, mint_to
from tests.sdk.test_outcome import seller_and_agent, status

PAYMENTS = 3


@pytest.fixture(autouse=True)
def no_status_polls_beside_the_websocket(monkeypatch: pytest.MonkeyPatch) -> None:
    """A watched transaction's status is read only if its notification is this late: none is, on loopback."""
    monkeypatch.setattr(transactions, "WATCH_POLL_SECONDS", 60.0)


async def test_payments_share_one_blockhash_and_are_confirmed_over_one_websocket(net, usdc) -> None:
    payee, agent = await seller_and_agent(net, usdc, "sendpath-ws")
    buyer = fund(net)
    mint_to(net, buyer.pubkey(), usdc, 1_000_000)
    with FaultProxy(net.http_url) as proxy:
        async with GhostPayClient(proxy.url, buyer, ws_url=net.ws_url, details=False) as gp:
            paid = [await gp.pay_agent(agent) for _ in range(PAYMENTS)]
            calls = Counter(proxy.methods)
            assert calls["getLatestBlockhash"] == 1 and calls["sendTransaction"] == PAYMENTS
            assert calls["getSignatureStatuses"] == 0 and calls["getTransaction"] == 0
            assert gp._watcher.connected and gp._watcher.pending == 0  # nothing left subscribed
            assert all(p.compute_units is None and p.events == [] for p in paid)  # not read back
            details = await gp.transaction_details(await gp.landed_transaction([paid[0].signature]) or paid[0])
            assert details.compute_units and details.event("X402PaymentRecorded").amount == 10_000
            assert await gp.get_token_balance(payee, usdc) == PAYMENTS * PRICE
            assert await gp.get_token_balance(buyer.pubkey(), usdc) == Decimal(1) - PAYMENTS * PRICE


async def test_with_details_each_payment_is_read_back_once(net, usdc) -> None:
    _, agent = await seller_and_agent(net, usdc, "sendpath-details")
    buyer = fund(net)
    mint_to(net, buyer.pubkey(), usdc, 1_000_000)
    with FaultProxy(net.http_url) as proxy:
        async with GhostPayClient(proxy.url, buyer, ws_url=net.ws_url) as gp:
            paid = [await gp.pay_agent(agent) for _ in range(PAYMENTS)]
            assert Counter(proxy.methods)["getTransaction"] == PAYMENTS
            assert all(p.compute_units and "X402PaymentRecorded" in [e.name for e in p.events] for p in paid)


async def test_without_a_websocket_the_confirmation_is_polled(net, usdc) -> None:
    payee, agent = await seller_and_agent(net, usdc, "sendpath-poll")
    buyer = fund(net)
    mint_to(net, buyer.pubkey(), usdc, 1_000_000)
    with FaultProxy(net.http_url) as proxy:  # the proxy's port + 1: no websocket there
        async with GhostPayClient(proxy.url, buyer, details=False) as gp:
            await gp.pay_agent(agent)
            await gp.pay_agent(agent)
            assert not gp._watcher.connected and Counter(proxy.methods)["getSignatureStatuses"] >= 2
            assert await gp.get_token_balance(payee, usdc) == 2 * PRICE


async def test_an_expired_cached_blockhash_is_replaced_and_the_payment_made_once(net, usdc) -> None:
    """The cached blockhash expires (the chain moves 200 slots on): the node refuses the next payment in preflight
    (it never landed), the client reads a new blockhash and signs again; the payee is paid once per call."""
    payee, agent = await seller_and_agent(net, usdc, "sendpath-expired")
    buyer = fund(net)
    mint_to(net, buyer.pubkey(), usdc, 1_000_000)
    sent: list[Signature] = []
    with FaultProxy(net.http_url) as proxy:
        async with GhostPayClient(
            proxy.url, buyer, ws_url=net.ws_url, details=False, on_send=lambda sig, _, __: sent.append(sig)
        ) as gp:
            await gp.pay_agent(agent)
            cheat(net, "surfnet_timeTravel", {"absoluteSlot": cheat(net, "getSlot") + 200})
            second = await gp.pay_agent(agent)
            calls = Counter(proxy.methods)
            assert calls["getLatestBlockhash"] == 2 and calls["sendTransaction"] == 3
            assert len(sent) == 3 and second.signature == sent[2]
            assert status(net, sent[1]) is None  # the refused one never landed
            assert await gp.get_token_balance(payee, usdc) == 2 * PRICE
            assert await gp.get_token_balance(buyer.pubkey(), usdc) == Decimal(1) - 2 * PRICE


async def test_the_same_transfer_twice_is_two_transactions_once_the_slot_moves(net) -> None:
    """A cached blockhash would sign an identical call into identical bytes (refused as already processed): the
    client reads the node's latest blockhash for it instead, as it did before it cached one."""
    payer, receiver = fund(net), fund(net, sol=1)
    move = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=receiver.pubkey(), lamports=1_000))
    async with GhostPayClient(net.http_url, payer, ws_url=net.ws_url, details=False) as gp:
        first = await gp.send([move])
        while cheat(net, "getSlot") <= first.slot:  # the next slot: a new blockhash (one every ~400 ms)
            await asyncio.sleep(0.05)
        second = await gp.send([move])
        assert first.signature != second.signature
        assert await gp.get_sol_balance(receiver.pubkey()) == Decimal(SOL + 2_000) / SOL


async def test_a_repeat_payment_reads_the_agent_and_the_payee_account_in_one_call(net, usdc) -> None:
    """The payee's token account of the last payment to an agent is read with the agent (getMultipleAccounts); when
    the agent's payment address changed meanwhile, the new one's account is read, created and paid."""
    seller, buyer, new_payee = fund(net), fund(net), Keypair().pubkey()
    async with GhostPayClient(net.http_url, seller, ws_url=net.ws_url) as owner:
        agent = (
            await owner.register_agent("sendpath-reads", "Reads", x402=X402Settings({usdc: PRICE}, "https://x.example"))
        ).address
    mint_to(net, buyer.pubkey(), usdc, 1_000_000)
    with FaultProxy(net.http_url) as proxy:
        async with GhostPayClient(proxy.url, buyer, ws_url=net.ws_url, details=False) as gp:
            await gp.pay_agent(agent)
            proxy.methods.clear()
            await gp.pay_agent(agent)
            reads = Counter(m for m in proxy.methods if m.startswith("get") and "Account" in m)
            assert reads == Counter({"getMultipleAccounts": 1})
            async with GhostPayClient(net.http_url, seller, ws_url=net.ws_url) as owner:
                await owner.configure_x402(agent, X402Settings({usdc: PRICE}, "https://x.example", new_payee))
            await gp.pay_agent(agent)
            assert await gp.get_token_balance(new_payee, usdc) == PRICE  # its account was created
            assert await gp.get_token_balance(buyer.pubkey(), usdc) == Decimal(1) - 3 * PRICE
