"""GhostPay's record as an x402 client extension: an unchanged official `x402HttpxClient` that registers
`RecordClientExtension` pays a GhostPay seller, and `ghost facilitator` settles the recorded payment."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.transaction import VersionedTransaction
from x402.http.clients import x402HttpxClient
from x402.http.utils import decode_payment_response_header
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements

from ghostpay.client import GhostPayClient
from ghostpay.pda import payer_stats_address
from ghostpay.x402.networks import DEVNET
from ghostpay.x402.record.client import RecordClientExtension
from tests.x402.conftest import (
    PRICE_ATOMIC,
    Agent,
    Process,
    Shop,
    buyer,
    official_client,
    register_agent,
    sol_balance,
    token_balance,
)

FEE = 5_000  # lamports per signature
PRIORITY_FEE_BOUND = 100  # lamports: the exact client's compute unit price times its raised limit, rounded up
RECORDED_INSTRUCTIONS = 5  # limit, price, TransferChecked, Memo, record_x402_payment


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:
    return register_agent(net, "extension")


def pay_with(net: Any, keypair: Keypair, url: str, extension: RecordClientExtension | None) -> Any:
    client = official_client(net, keypair)
    if extension is not None:
        client.register_extension(extension)

    async def call() -> Any:
        async with x402HttpxClient(client, timeout=30) as http:
            return await http.get(url)

    return asyncio.run(call())


def recorded(net: Any, agent: Agent, reference: bytes) -> Any:
    async def get() -> Any:
        async with GhostPayClient(net.http_url, Keypair(), ws_url=net.ws_url) as gp:
            return await gp.get_receipt(agent.address, reference), await gp.get_agent(agent.address)

    return asyncio.run(get())


def settled_transaction(net: Any, signature: str) -> VersionedTransaction:
    answer = net.rpc(
        "getTransaction",
        signature,
        {"encoding": "base64", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"},
    )
    return VersionedTransaction.from_bytes(base64.b64decode(answer["result"]["transaction"][0]))


def test_an_official_client_with_the_extension_pays_a_recorded_payment(
    net: Any, agent: Agent, facilitator: Process, fee_payer: Keypair
) -> None:
    payer = buyer(net, agent.mint)
    extension = RecordClientExtension(payer)
    stats = payer_stats_address(agent.address, payer.pubkey())[0]
    calls_before = recorded(net, agent, bytes(32))[1].total_calls
    payer_sol, fee_payer_sol = sol_balance(net, payer.pubkey()), sol_balance(net, fee_payer.pubkey())
    payee_tokens = token_balance(net, agent.owner.pubkey(), agent.mint)
    with Shop(agent, facilitator.url) as shop:
        answer = pay_with(net, payer, f"{shop.url}/paid", extension)
    assert answer.status_code == 200, answer.text
    assert answer.json()["verified"] is True and shop.handled[-1].verified_on_chain
    settled = decode_payment_response_header(answer.headers["payment-response"])
    assert settled.success and extension.last is not None and extension.last.payer_stats == stats
    # the settled transaction is the official one with the record after its Memo
    assert len(settled_transaction(net, settled.transaction).message.instructions) == RECORDED_INSTRUCTIONS
    found, info = recorded(net, agent, extension.last.reference)
    assert found is not None and str(found.signature) == settled.transaction and found.payer == payer.pubkey()
    assert found.amount_atomic == PRICE_ATOMIC and info.total_calls == calls_before + 1
    # tokens moved once; the buyer spent no SOL; the fee payer paid the fee and fronted the PayerStats rent
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == payee_tokens + PRICE_ATOMIC
    assert sol_balance(net, payer.pubkey()) == payer_sol
    rent = sol_balance(net, stats)
    assert rent > 0
    assert rent + 2 * FEE <= fee_payer_sol - sol_balance(net, fee_payer.pubkey()) <= rent + 2 * FEE + PRIORITY_FEE_BOUND


def test_without_the_extension_the_same_client_pays_unrecorded(net: Any, agent: Agent, facilitator: Process) -> None:
    payer = buyer(net, agent.mint)
    calls_before = recorded(net, agent, bytes(32))[1].total_calls
    with Shop(agent, facilitator.url) as shop:
        answer = pay_with(net, payer, f"{shop.url}/paid", None)
    assert answer.status_code == 200, answer.text
    assert answer.json()["verified"] is False and not shop.handled[-1].verified_on_chain
    settled = decode_payment_response_header(answer.headers["payment-response"])
    assert len(settled_transaction(net, settled.transaction).message.instructions) == RECORDED_INSTRUCTIONS - 1
    assert recorded(net, agent, bytes(32))[1].total_calls == calls_before
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC
    assert sol_balance(net, payer_stats_address(agent.address, payer.pubkey())[0]) == 0


def test_a_requirement_that_does_not_ask_for_the_record_passes_unchanged() -> None:
    """An official seller's requirement (no `extra.ghostpay`): the extension leaves the payload as it is."""
    requirement = PaymentRequirements(
        scheme="exact",
        network=DEVNET.caip2,
        asset=str(Keypair().pubkey()),
        amount="1",
        pay_to=str(Keypair().pubkey()),
        max_timeout_seconds=60,
        extra={"feePayer": str(Keypair().pubkey())},
    )
    payload = PaymentPayload(x402_version=2, payload={"transaction": "AAAA"}, accepted=requirement)
    extension = RecordClientExtension(Keypair())
    assert extension.enrich_payment_payload(payload, PaymentRequired(x402_version=2, accepts=[requirement])) is payload
    assert extension.last is None
