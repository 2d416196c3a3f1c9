"""The GhostPay extension: `record_x402_payment` right after the Memo, through `ghost facilitator` (and
refused by the official facilitator logic, which is why the extension exists); the receipt sweep."""

from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address
from x402 import x402FacilitatorSync
from x402.mechanisms.svm.constants import DEFAULT_COMPUTE_UNIT_LIMIT
from x402.mechanisms.svm.exact.register import register_exact_svm_facilitator
from x402.mechanisms.svm.signers import FacilitatorKeypairSigner
from x402.schemas import PaymentRequirements

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.payments import build_record_x402_payment
from ghostpay.x402.buyer import RECORD_COMPUTE_UNITS
from ghostpay.x402.networks import DEVNET
from tests.sdk.conftest import fund
from tests.x402.conftest import (
    PRICE_ATOMIC,
    Agent,
    Process,
    Shop,
    buyer,
    facilitator_process,
    register_agent,
    sol_balance,
    token_balance,
)
from tests.x402.craft import facilitator_call, header, latest_blockhash, memo, payment


# what GhostPay's buyer sets: the official client's 20,000 units cover the transfer, not the receipt's creation too
RECORD_CU = DEFAULT_COMPUTE_UNIT_LIMIT + RECORD_COMPUTE_UNITS


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:
    return register_agent(net, "recorded")


def requirements_for(agent: Agent, fee_payer: str, amount: int = PRICE_ATOMIC) -> PaymentRequirements:
    return PaymentRequirements(scheme="exact", network=DEVNET.caip2, asset=str(agent.mint), amount=str(amount),
                               pay_to=str(agent.owner.pubkey()), max_timeout_seconds=60,
                               extra={"feePayer": fee_payer})


def record_for(agent: Agent, payer: Pubkey, amount: int, reference: bytes, *, signer: Pubkey | None = None,
               recorded_agent: Pubkey | None = None, rent_payer: Pubkey | None = None,
               source: Pubkey | None = None, mint: Pubkey | None = None) -> Instruction:
    """The record of `payer`'s transfer of `amount` from its token account to the agent owner's (signed by
    `signer`, default the payer; naming `recorded_agent`, default the agent; `source` and `mint` default to
    the transfer's)."""
    return build_record_x402_payment(recorded_agent or agent.address, signer or payer, amount, reference,
                                     source or get_associated_token_address(payer, agent.mint), mint or agent.mint,
                                     get_associated_token_address(agent.owner.pubkey(), agent.mint),
                                     rent_payer=rent_payer)


def recorded_payment(net: Any, agent: Agent, payer: Keypair, fee_payer: str, *, rent_payer: Pubkey | None = None,
                     amount: int = PRICE_ATOMIC, claimed: int | None = None, order: str = "memo-record"
                     ) -> tuple[Any, bytes]:
    """[limit, price, TransferChecked, Memo, record_x402_payment] signed by the payer (or another `order`)."""
    reference = os.urandom(32)
    requirements = requirements_for(agent, fee_payer, amount)
    record = record_for(agent, payer.pubkey(), amount if claimed is None else claimed, reference,
                        rent_payer=rent_payer)
    after = [memo(), record] if order == "memo-record" else [record, memo()]
    return payment(requirements, payer, latest_blockhash(net), after=after, compute_unit_limit=RECORD_CU), reference


def receipt(net: Any, agent: Agent, reference: bytes) -> Any:
    async def get() -> Any:
        async with GhostPayClient(net.http_url, Keypair(), ws_url=net.ws_url) as gp:
            return await gp.get_receipt(agent.address, reference), await gp.get_agent(agent.address)

    return asyncio.run(get())


def test_supported_advertises_the_extension(facilitator: Process) -> None:
    supported = httpx.get(f"{facilitator.url}/supported").json()
    assert supported["extensions"][:2] == ["ghostpay-record-x402-payment", "ghostpay-front-receipt-rent"]


def test_record_after_the_memo_settles_and_counts(net: Any, agent: Agent, facilitator: Process,
                                                  fee_payer: Keypair) -> None:
    payer = buyer(net, agent.mint)
    paid, reference = recorded_payment(net, agent, payer, str(fee_payer.pubkey()), rent_payer=fee_payer.pubkey())
    requirements = requirements_for(agent, str(fee_payer.pubkey()))
    before = receipt(net, agent, reference)[1].total_calls
    verified = facilitator_call(facilitator.url, "verify", paid, requirements)
    assert verified["isValid"] is True, verified
    settled = facilitator_call(facilitator.url, "settle", paid, requirements)
    assert settled["success"], settled
    found, info = receipt(net, agent, reference)
    assert found is not None and found.payer == payer.pubkey() and found.amount_atomic == PRICE_ATOMIC
    assert found.rent_payer == fee_payer.pubkey()  # the facilitator fronted the rent
    assert info.total_calls == before + 1 and info.reputation_score > 0  # a verified payment: it counts
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC


def test_the_same_transaction_is_refused_by_the_official_facilitator(net: Any, agent: Agent) -> None:
    official_key = fund(net)
    official = x402FacilitatorSync()
    register_exact_svm_facilitator(official, FacilitatorKeypairSigner(official_key, net.http_url), [DEVNET.caip2])
    payer = buyer(net, agent.mint)
    paid, reference = recorded_payment(net, agent, payer, str(official_key.pubkey()))
    requirements = requirements_for(agent, str(official_key.pubkey()))
    verified = official.verify(paid, requirements)
    assert not verified.is_valid and verified.invalid_reason == "invalid_exact_svm_payload_unknown_fifth_instruction"
    settled = official.settle(paid, requirements)
    assert not settled.success and settled.error_reason == "invalid_exact_svm_payload_unknown_fifth_instruction"
    assert receipt(net, agent, reference)[0] is None
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000


@pytest.mark.parametrize("case, reason", [
    ("record before the memo", "invalid_exact_svm_payload_unknown_fourth_instruction"),
    ("claimed amount differs from the transfer", "ghostpay_record_instruction_invalid"),
    ("fee payer as the record's payer", "ghostpay_record_instruction_invalid"),
    ("record names another source account", "ghostpay_record_instruction_invalid"),
    ("record names another mint", "ghostpay_record_instruction_invalid"),
])
def test_anything_else_extra_stays_refused(net: Any, agent: Agent, facilitator: Process, fee_payer: Keypair,
                                           case: str, reason: str) -> None:
    payer = buyer(net, agent.mint)
    fee = str(fee_payer.pubkey())
    if case == "record before the memo":
        paid, reference = recorded_payment(net, agent, payer, fee, order="record-memo")
    elif case == "claimed amount differs from the transfer":
        paid, reference = recorded_payment(net, agent, payer, fee, claimed=PRICE_ATOMIC + 1)
    else:
        reference = os.urandom(32)
        record = record_for(agent, payer.pubkey(), PRICE_ATOMIC, reference, **{
            "fee payer as the record's payer": {"signer": fee_payer.pubkey()},
            "record names another source account": {"source": Keypair().pubkey()},
            "record names another mint": {"mint": Keypair().pubkey()}}[case])
        paid = payment(requirements_for(agent, fee), payer, latest_blockhash(net), after=[memo(), record],
                       compute_unit_limit=RECORD_CU)
    requirements = requirements_for(agent, fee)
    sol = sol_balance(net, fee_payer.pubkey())
    assert facilitator_call(facilitator.url, "verify", paid, requirements)["invalidReason"] == reason
    assert facilitator_call(facilitator.url, "settle", paid, requirements)["errorReason"] == reason
    assert receipt(net, agent, reference)[0] is None
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
    assert sol_balance(net, fee_payer.pubkey()) == sol


@pytest.fixture(scope="module")
def sweeping(net: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = facilitator_process(net, tmp_path_factory.mktemp("sweeping"), fund(net, sol=100),
                               "--sweep-interval", "0.2").start()
    yield proc
    proc.stop()


def test_without_fronting_the_payer_pays_the_rent(net: Any, agent: Agent, tmp_path: Path) -> None:
    proc = facilitator_process(net, tmp_path, fund(net, sol=100), "--no-front-rent").start()
    try:
        fee = proc.announce["feePayer"]
        extensions = httpx.get(f"{proc.url}/supported").json()["extensions"]
        assert "ghostpay-record-x402-payment" in extensions and "ghostpay-front-receipt-rent" not in extensions
        payer = buyer(net, agent.mint)
        fronted, _ = recorded_payment(net, agent, payer, fee, rent_payer=Pubkey.from_string(fee))
        refused = facilitator_call(proc.url, "verify", fronted, requirements_for(agent, fee))
        assert refused["invalidReason"] == "ghostpay_receipt_rent_not_fronted"
        own_rent, reference = recorded_payment(net, agent, payer, fee)
        assert facilitator_call(proc.url, "settle", own_rent, requirements_for(agent, fee))["success"]
        assert receipt(net, agent, reference)[0].rent_payer == payer.pubkey()
    finally:
        proc.stop()


def test_sweep_closes_fronted_receipts_after_feedback(net: Any, agent: Agent, sweeping: Process) -> None:
    fee = sweeping.announce["feePayer"]
    payer = buyer(net, agent.mint)
    paid, reference = recorded_payment(net, agent, payer, fee, rent_payer=Pubkey.from_string(fee))
    assert facilitator_call(sweeping.url, "settle", paid, requirements_for(agent, fee))["success"]
    address = receipt(net, agent, reference)[0].address
    time.sleep(0.6)
    assert receipt(net, agent, reference)[0] is not None  # no feedback yet, window open: kept

    async def feedback() -> None:
        async with GhostPayClient(net.http_url, payer, ws_url=net.ws_url) as gp:
            await gp.submit_feedback(agent.address, reference, rating=5, response_time_ms=20)

    asyncio.run(feedback())
    deadline = time.monotonic() + 10
    while net.rpc("getAccountInfo", str(address), {"encoding": "base64"})["result"]["value"] is not None:
        assert time.monotonic() < deadline, "the sweep did not close the receipt"
        time.sleep(0.1)
    health = httpx.get(f"{sweeping.url}/health").json()
    assert health["receiptsClosed"] == 1 and health["rentReclaimedLamports"] > 0


def test_seller_tells_the_handler_the_payment_is_recorded(net: Any, agent: Agent, facilitator: Process,
                                                          fee_payer: Keypair) -> None:
    with Shop(agent, facilitator.url) as shop:
        payer = buyer(net, agent.mint)
        accept = shop.seller.requirements()[0]
        reference = os.urandom(32)
        record = record_for(agent, payer.pubkey(), PRICE_ATOMIC, reference,
                            rent_payer=Pubkey.from_string(accept.extra["ghostpay"]["rentPayer"]))
        paid = payment(accept, payer, latest_blockhash(net), after=[memo(), record], compute_unit_limit=RECORD_CU)
        offers, notified = shop.seller.watch.updates, shop.seller.watch.notifications
        answer = httpx.get(f"{shop.url}/paid", headers=header(paid), timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["verified"] is True and shop.handled[-1].verified_on_chain
        assert receipt(net, agent, reference)[0] is not None
        # the record rewrote the agent's counters; the paywall saw the notification and kept its offer
        deadline = time.monotonic() + 5
        while shop.seller.watch.notifications == notified:
            assert time.monotonic() < deadline, "no account notification for the payment"
            time.sleep(0.02)
        assert shop.seller.watch.updates == offers


def test_a_record_for_another_agent_of_the_same_owner_is_refused(net: Any, agent: Agent, facilitator: Process,
                                                                fee_payer: Keypair) -> None:
    """Agents of one owner share the payee account: a payment for this agent's route must not build the
    other's reputation, so a record naming another agent than the requirements' is refused."""
    async def register_sibling() -> Pubkey:
        async with agent.client() as gp:
            return (await gp.register_agent("sibling", "Sibling", capabilities=["test"], x402=X402Settings(
                {agent.mint: Decimal("0.01")}, "http://127.0.0.1/sibling"))).address

    sibling = asyncio.run(register_sibling())
    fee = str(fee_payer.pubkey())
    requirements = requirements_for(agent, fee).model_copy(update={"extra": {
        "feePayer": fee, "ghostpay": {"agent": str(agent.address)}}})
    payer = buyer(net, agent.mint)
    reference = os.urandom(32)
    record = record_for(agent, payer.pubkey(), PRICE_ATOMIC, reference, recorded_agent=sibling)
    paid = payment(requirements, payer, latest_blockhash(net), after=[memo(), record], compute_unit_limit=RECORD_CU)
    verified = facilitator_call(facilitator.url, "verify", paid, requirements)
    assert verified["invalidReason"] == "ghostpay_record_instruction_invalid"
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
    # without the agent in the requirements (an official seller's), the program alone decides: it accepts
    plain = requirements_for(agent, fee)
    assert facilitator_call(facilitator.url, "verify", paid.model_copy(update={"accepted": plain}), plain)["isValid"]
