"""The GhostPay extension: `record_x402_payment` right after the Memo, through `ghost facilitator` (and
refused by the official facilitator logic, which is why the extension exists); the fee payer fronting a
buyer's PayerStats rent once, never per payment; the bounded sweep of legacy fronted receipts."""

from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

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
from ghostpay.pda import payer_stats_address
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402.facilitator import ReceiptSweep
from ghostpay.x402.networks import DEVNET
from ghostpay.x402.record import RECORD_COMPUTE_UNITS
from tests.sdk.conftest import fund, plant_legacy_receipt, time_travel
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

# what GhostPay's buyer sets: the official client's 20,000 units cover the transfer, not a PayerStats' creation too
RECORD_CU = DEFAULT_COMPUTE_UNIT_LIMIT + RECORD_COMPUTE_UNITS
FEE = 5_000  # lamports per signature
PRIORITY_FEE_BOUND = 100  # lamports: the exact client's compute unit price times its limit, rounded up
FEEDBACK_WINDOW = 30 * 86_400


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:
    return register_agent(net, "recorded")


def requirements_for(agent: Agent, fee_payer: str, amount: int = PRICE_ATOMIC) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=DEVNET.caip2,
        asset=str(agent.mint),
        amount=str(amount),
        pay_to=str(agent.owner.pubkey()),
        max_timeout_seconds=60,
        extra={"feePayer": fee_payer},
    )


def record_for(
    agent: Agent,
    payer: Pubkey,
    amount: int,
    reference: bytes,
    *,
    signer: Pubkey | None = None,
    recorded_agent: Pubkey | None = None,
    rent_payer: Pubkey | None = None,
    source: Pubkey | None = None,
    mint: Pubkey | None = None,
) -> Instruction:
    """The record of `payer`'s transfer of `amount` from its token account to the agent owner's (signed by
    `signer`, default the payer; naming `recorded_agent`, default the agent; `source` and `mint` default to
    the transfer's)."""
    return build_record_x402_payment(
        recorded_agent or agent.address,
        signer or payer,
        amount,
        reference,
        source or get_associated_token_address(payer, agent.mint),
        mint or agent.mint,
        get_associated_token_address(agent.owner.pubkey(), agent.mint),
        rent_payer=rent_payer,
    )


def recorded_payment(
    net: Any,
    agent: Agent,
    payer: Keypair,
    fee_payer: str,
    *,
    rent_payer: Pubkey | None = None,
    amount: int = PRICE_ATOMIC,
    claimed: int | None = None,
    order: str = "memo-record",
) -> tuple[Any, bytes]:
    """[limit, price, TransferChecked, Memo, record_x402_payment] signed by the payer (or another `order`)."""
    reference = os.urandom(32)
    requirements = requirements_for(agent, fee_payer, amount)
    record = record_for(agent, payer.pubkey(), amount if claimed is None else claimed, reference, rent_payer=rent_payer)
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


def test_record_after_the_memo_settles_and_counts(
    net: Any, agent: Agent, facilitator: Process, fee_payer: Keypair
) -> None:
    """The facilitator fronts the buyer's PayerStats rent with its first payment, then pays the fee alone:
    no account, no rent, per payment."""
    payer = buyer(net, agent.mint)
    requirements = requirements_for(agent, str(fee_payer.pubkey()))
    stats = payer_stats_address(agent.address, payer.pubkey())[0]
    spent = []  # the fee payer's SOL per call
    for _ in range(3):
        paid, reference = recorded_payment(net, agent, payer, str(fee_payer.pubkey()), rent_payer=fee_payer.pubkey())
        before, sol = receipt(net, agent, reference)[1].total_calls, sol_balance(net, fee_payer.pubkey())
        verified = facilitator_call(facilitator.url, "verify", paid, requirements)
        assert verified["isValid"] is True, verified
        settled = facilitator_call(facilitator.url, "settle", paid, requirements)
        assert settled["success"], settled
        found, info = receipt(net, agent, reference)
        assert found is not None and found.payer == payer.pubkey() and found.amount_atomic == PRICE_ATOMIC
        assert str(found.signature) == settled["transaction"] and found.rent_payer == fee_payer.pubkey()
        assert info.total_calls == before + 1 and info.reputation_score > 0  # a verified payment: it counts
        spent.append(sol - sol_balance(net, fee_payer.pubkey()))
    rent = sol_balance(net, stats)
    assert rent > 0 and spent[0] == spent[1] + rent  # the pair's first payment: its PayerStats, fronted once
    assert spent[1] == spent[2] <= 2 * FEE + PRIORITY_FEE_BOUND  # then the transaction's fee alone
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - 3 * PRICE_ATOMIC


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


@pytest.mark.parametrize(
    "case, reason",
    [
        ("record before the memo", "invalid_exact_svm_payload_unknown_fourth_instruction"),
        ("claimed amount differs from the transfer", "ghostpay_record_instruction_invalid"),
        ("fee payer as the record's payer", "ghostpay_record_instruction_invalid"),
        ("record names another source account", "ghostpay_record_instruction_invalid"),
        ("record names another mint", "ghostpay_record_instruction_invalid"),
    ],
)
def test_anything_else_extra_stays_refused(
    net: Any, agent: Agent, facilitator: Process, fee_payer: Keypair, case: str, reason: str
) -> None:
    payer = buyer(net, agent.mint)
    fee = str(fee_payer.pubkey())
    if case == "record before the memo":
        paid, reference = recorded_payment(net, agent, payer, fee, order="record-memo")
    elif case == "claimed amount differs from the transfer":
        paid, reference = recorded_payment(net, agent, payer, fee, claimed=PRICE_ATOMIC + 1)
    else:
        reference = os.urandom(32)
        record = record_for(
            agent,
            payer.pubkey(),
            PRICE_ATOMIC,
            reference,
            **{
                "fee payer as the record's payer": {"signer": fee_payer.pubkey()},
                "record names another source account": {"source": Keypair().pubkey()},
                "record names another mint": {"mint": Keypair().pubkey()},
            }[case],
        )
        paid = payment(
            requirements_for(agent, fee),
            payer,
            latest_blockhash(net),
            after=[memo(), record],
            compute_unit_limit=RECORD_CU,
        )
    requirements = requirements_for(agent, fee)
    sol = sol_balance(net, fee_payer.pubkey())
    assert facilitator_call(facilitator.url, "verify", paid, requirements)["invalidReason"] == reason
    assert facilitator_call(facilitator.url, "settle", paid, requirements)["errorReason"] == reason
    assert receipt(net, agent, reference)[0] is None
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
    assert sol_balance(net, fee_payer.pubkey()) == sol


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
        assert sol_balance(net, payer_stats_address(agent.address, payer.pubkey())[0]) > 0
    finally:
        proc.stop()


def chain_now(net: Any) -> int:
    return int(net.rpc("getBlockTime", net.rpc("getSlot")["result"])["result"])


def exists(net: Any, address: Pubkey) -> bool:
    return net.rpc("getAccountInfo", str(address), {"encoding": "base64"})["result"]["value"] is not None


class CountingRpc:
    """The sweep's RPC client, counting its calls and the account bytes getProgramAccounts answers."""

    def __init__(self, rpc: Any) -> None:
        self.rpc, self.calls, self.listed_bytes = rpc, 0, []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.rpc, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            answer = method(*args, **kwargs)
            if name == "get_program_accounts":
                self.listed_bytes += [len(bytes(keyed.account.data)) for keyed in answer.value]
            return answer

        return call


def test_the_legacy_sweep_lists_once_closes_what_is_due_and_ends(net: Any, agent: Agent) -> None:
    """Three receipts a fee payer fronted under the earlier program: rated, past its window, still open. The
    sweep lists them once, with 17 bytes of each; closes the two due (the rent back to the fee payer); the
    third once its window passes; then it is finished and a pass makes no RPC call at all."""
    from solana.rpc.api import Client

    fee_payer, payer = fund(net), Keypair()
    now = chain_now(net)
    rated, _ = plant_legacy_receipt(net, agent.address, payer.pubkey(), fee_payer.pubkey(), agent.mint, now, rated=True)
    # a minute past its window: at exactly the edge, the clock a transaction executes with may lag the newest
    # block's time the sweep reads under load
    old, _ = plant_legacy_receipt(
        net, agent.address, payer.pubkey(), fee_payer.pubkey(), agent.mint, now - FEEDBACK_WINDOW - 60
    )
    open_, _ = plant_legacy_receipt(net, agent.address, payer.pubkey(), fee_payer.pubkey(), agent.mint, now)
    counting = CountingRpc(Client(net.http_url))
    sweep = ReceiptSweep(counting, fee_payer, PROGRAM_ID, FEEDBACK_WINDOW)  # type: ignore[arg-type]
    sol = sol_balance(net, fee_payer.pubkey())
    closed = sweep.run_once()
    assert {r.address for r in closed} == {rated, old} and not exists(net, rated) and not exists(net, old)
    assert exists(net, open_) and not sweep.finished and counting.listed_bytes == [17, 17, 17]
    assert sol_balance(net, fee_payer.pubkey()) == sol + sweep.reclaimed_lamports - FEE
    assert sweep.run_once() == [] and len(counting.listed_bytes) == 3  # not listed again
    time_travel(net, FEEDBACK_WINDOW)
    assert [r.address for r in sweep.run_once()] == [open_] and not exists(net, open_)
    assert sweep.finished and (sweep.closed, counting.listed_bytes) == (3, [17, 17, 17])
    calls = counting.calls
    assert sweep.run_once() == [] and counting.calls == calls  # ended: nothing read any more


def test_the_facilitator_sweeps_a_legacy_fronted_receipt(net: Any, agent: Agent, tmp_path: Path) -> None:
    fee_payer = fund(net, sol=100)
    address, _ = plant_legacy_receipt(
        net, agent.address, Keypair().pubkey(), fee_payer.pubkey(), agent.mint, chain_now(net), rated=True
    )
    proc = facilitator_process(net, tmp_path, fee_payer, "--sweep-interval", "0.2").start()
    try:
        deadline = time.monotonic() + 10
        while exists(net, address):
            assert time.monotonic() < deadline, "the sweep did not close the receipt"
            time.sleep(0.1)
        health = httpx.get(f"{proc.url}/health").json()
        assert health["receiptsClosed"] == 1 and health["rentReclaimedLamports"] > 0
    finally:
        proc.stop()


def test_seller_tells_the_handler_the_payment_is_recorded(
    net: Any, agent: Agent, facilitator: Process, fee_payer: Keypair
) -> None:
    with Shop(agent, facilitator.url) as shop:
        payer = buyer(net, agent.mint)
        accept = shop.seller.requirements()[0]
        reference = os.urandom(32)
        record = record_for(
            agent,
            payer.pubkey(),
            PRICE_ATOMIC,
            reference,
            rent_payer=Pubkey.from_string(accept.extra["ghostpay"]["rentPayer"]),
        )
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


def test_a_record_for_another_agent_of_the_same_owner_is_refused(
    net: Any, agent: Agent, facilitator: Process, fee_payer: Keypair
) -> None:
    """Agents of one owner share the payee account: a payment for this agent's route must not build the
    other's reputation, so a record naming another agent than the requirements' is refused."""

    async def register_sibling() -> Pubkey:
        async with agent.client() as gp:
            return (
                await gp.register_agent(
                    "sibling",
                    "Sibling",
                    capabilities=["test"],
                    x402=X402Settings({agent.mint: Decimal("0.01")}, "http://127.0.0.1/sibling"),
                )
            ).address

    sibling = asyncio.run(register_sibling())
    fee = str(fee_payer.pubkey())
    requirements = requirements_for(agent, fee).model_copy(
        update={"extra": {"feePayer": fee, "ghostpay": {"agent": str(agent.address)}}}
    )
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
