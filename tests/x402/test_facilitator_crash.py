"""What a crash, a lost answer or a failed transaction leaves behind in the facilitator, and what a retry of
the same payment then answers; and the SOL floor under concurrent settles.

The SIGKILL test's size: GHOSTPAY_FACILITATOR_CALLS (default 40 payments) and GHOSTPAY_FACILITATOR_KILLS
(default 4 kills)."""

from __future__ import annotations

import base64
import doctest
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from spl.token.instructions import get_associated_token_address
from x402.mechanisms.svm.utils import transaction_message_hash
from x402.schemas import PaymentPayload, PaymentRequirements

from ghostpay.payments import build_record_x402_payment
from ghostpay.x402.facilitator import (
    PAYER_STATS_SPACE,
    FacilitatorSettings,
    GhostPayFacilitator,
    guards as facilitator_guards,
    store as facilitator_store,
)
from ghostpay.x402.facilitator.policy import ANY_ASSET, AssetRule
from ghostpay.x402.facilitator.store import FAILED, LANDED, PENDING, SETTLED, SettledLog
from ghostpay.x402.networks import DEVNET
from tests.fault_proxy import FaultProxy
from tests.sdk.conftest import cheat, create_mint, fund, mint_to
from tests.x402.conftest import (
    PRICE_ATOMIC,
    Agent,
    buyer,
    facilitator_process,
    register_agent,
    sol_balance,
    token_balance,
)
from tests.x402.craft import latest_blockhash, memo, payment

CALLS = int(os.environ.get("GHOSTPAY_FACILITATOR_CALLS", "40"))
KILLS = int(os.environ.get("GHOSTPAY_FACILITATOR_KILLS", "4"))
FEE = 2 * 5_000  # a payment's two signatures (fee payer, buyer); its compute-unit price is 0: no priority fee
TOKENS = 1_000_000  # each buyer's tokens at the start
BLOCKHASH_LIFETIME_SLOTS = 150


@pytest.fixture(scope="module")
def mint(net: Any) -> Pubkey:
    return create_mint(net)


@pytest.fixture(scope="module")
def payee(net: Any, mint: Pubkey) -> Pubkey:
    wallet = fund(net)
    mint_to(net, wallet.pubkey(), mint, 0)
    return wallet.pubkey()


def requirements_for(fee_payer: Pubkey, mint: Pubkey, pay_to: Pubkey) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=DEVNET.caip2,
        asset=str(mint),
        amount=str(PRICE_ATOMIC),
        pay_to=str(pay_to),
        max_timeout_seconds=60,
        extra={"feePayer": str(fee_payer)},
    )


def in_process(net: Any, keypair: Keypair, db: Path, rpc_url: str | None = None) -> GhostPayFacilitator:
    """The facilitator in this process; it settles any mint (the tests make theirs with the cheat code)."""
    return GhostPayFacilitator(
        FacilitatorSettings(
            keypair,
            rpc_url or net.http_url,
            net.ws_url,
            db_path=db,
            confirm_timeout_seconds=5,
            sweep_interval_seconds=0,
            assets=(AssetRule(ANY_ASSET),),
        )
    )


def transaction(paid: PaymentPayload) -> VersionedTransaction:
    return VersionedTransaction.from_bytes(base64.b64decode(paid.payload["transaction"]))


def key_of(paid: PaymentPayload) -> str:
    return transaction_message_hash(transaction(paid))


def signed_by(fee_payer: Keypair, paid: PaymentPayload) -> VersionedTransaction:
    """The payment with the fee payer's signature: what the facilitator sends (ed25519 signs deterministically)."""
    tx = transaction(paid)
    return VersionedTransaction.populate(
        tx.message, [fee_payer.sign_message(to_bytes_versioned(tx.message)), *tx.signatures[1:]]
    )


def send_raw(net: Any, tx: VersionedTransaction) -> str:
    """Send as a facilitator does (no preflight): a failing transaction lands, and its fee is paid."""
    return net.rpc(
        "sendTransaction", base64.b64encode(bytes(tx)).decode(), {"encoding": "base64", "skipPreflight": True}
    )["result"]


def status(net: Any, signature: str) -> dict[str, Any] | None:
    return net.rpc("getSignatureStatuses", [signature], {"searchTransactionHistory": True})["result"]["value"][0]


def expire_blockhashes(net: Any) -> None:
    """Move the chain past the lifetime of every blockhash handed out so far."""
    slot = net.rpc("getSlot")["result"]
    cheat(net, "surfnet_timeTravel", {"absoluteSlot": slot + BLOCKHASH_LIFETIME_SLOTS + 2})


def claim(db: Path, paid: PaymentPayload, fee_payer: Keypair) -> str:
    """The row a settle writes before its send, as a crash right after it leaves it; the signature."""
    tx = signed_by(fee_payer, paid)
    log = SettledLog(db)
    try:
        assert log.claim(
            transaction_message_hash(tx),
            payer=str(tx.message.account_keys[1]),
            network=DEVNET.caip2,
            signature=str(tx.signatures[0]),
            blockhash=str(tx.message.recent_blockhash),
        )
    finally:
        log.close()
    return str(tx.signatures[0])


@contextmanager
def behind_a_fault_proxy(net: Any, db: Path) -> Iterator[tuple[FaultProxy, GhostPayFacilitator, Keypair]]:
    """A facilitator in this process, its RPC through a FaultProxy (its websocket straight to the node)."""
    fee_payer = fund(net, sol=10)
    with FaultProxy(net.http_url) as proxy:
        facilitator = in_process(net, fee_payer, db, proxy.url)
        try:
            yield proxy, facilitator, fee_payer
        finally:
            facilitator.close()


def a_payment(
    net: Any, fee_payer: Keypair, mint: Pubkey, payee: Pubkey
) -> tuple[PaymentRequirements, Keypair, PaymentPayload]:
    """Requirements, a buyer holding TOKENS, and its payment of the price (no priority fee)."""
    requirements = requirements_for(fee_payer.pubkey(), mint, payee)
    payer = buyer(net, mint)
    return requirements, payer, payment(requirements, payer, latest_blockhash(net), compute_unit_price=0)


def test_doctests() -> None:
    assert doctest.testmod(facilitator_store).failed == 0
    assert doctest.testmod(facilitator_guards).failed == 0


def test_a_transaction_that_lands_and_fails_is_answered_failed_not_pending(
    net: Any, tmp_path: Path, mint: Pubkey, payee: Pubkey
) -> None:
    """The buyer's tokens leave after the settle's simulation passed (another transaction lands between the
    RPC node's preflight and the leader's execution): the payment's transaction lands and fails. The settle
    answers `transaction_failed` with the on-chain error, the log says failed (not pending), and a retry gets
    the same answer."""
    with behind_a_fault_proxy(net, tmp_path / "f.db") as (proxy, facilitator, fee_payer):
        requirements, payer, paid = a_payment(net, fee_payer, mint, payee)
        sol_before, buyer_sol, payee_before = (
            sol_balance(net, fee_payer.pubkey()),
            sol_balance(net, payer.pubkey()),
            token_balance(net, payee, mint),
        )
        assert facilitator.verify(paid, requirements).is_valid
        proxy.before_send(lambda: mint_to(net, payer.pubkey(), mint, 0))
        settled = facilitator.settle(paid, requirements)
        assert (settled.success, settled.error_reason) == (False, "transaction_failed")
        assert (
            settled.error_message == "the transaction landed and failed on chain: "
            '{"InstructionError": [2, {"Custom": 1}]}'
        )  # the token program's InsufficientFunds
        assert settled.transaction == str(signed_by(fee_payer, paid).signatures[0])
        assert status(net, settled.transaction)["err"] == {"InstructionError": [2, {"Custom": 1}]}
        row = facilitator.log.get(key_of(paid))
        assert row is not None and (row.status, row.signature) == (FAILED, settled.transaction)
        again = facilitator.settle(paid, requirements)
        assert (again.error_reason, again.error_message, again.transaction) == (
            settled.error_reason,
            settled.error_message,
            settled.transaction,
        )
        verified = facilitator.verify(paid, requirements)
        assert (verified.is_valid, verified.invalid_reason) == (False, "transaction_failed")
        assert facilitator.health()["pendingSettles"] == 0 and facilitator.log.count() == 0
        # The fee of the one transaction that failed (nothing stops another transaction landing first):
        assert sol_balance(net, fee_payer.pubkey()) == sol_before - FEE
        assert token_balance(net, payee, mint) == payee_before
        assert (token_balance(net, payer.pubkey(), mint), sol_balance(net, payer.pubkey())) == (0, buyer_sol)


@pytest.mark.parametrize("fault", ["drop", "drop-before"])
def test_a_send_without_an_answer_is_pending_and_a_retry_answers_the_landed_signature(
    net: Any, tmp_path: Path, mint: Pubkey, payee: Pubkey, fault: str
) -> None:
    """The RPC node takes the transaction and the answer is lost (`drop`), or the transaction never
    reaches it (`drop-before`): the settle answers `settlement_pending` with the signature it logged
    before the send. The retry answers success with that signature: the landed one, or the same
    transaction sent again after a new simulation. One fee, one payment."""
    with behind_a_fault_proxy(net, tmp_path / "f.db") as (proxy, facilitator, fee_payer):
        requirements, payer, paid = a_payment(net, fee_payer, mint, payee)
        signature = str(signed_by(fee_payer, paid).signatures[0])
        sol_before, payee_before = sol_balance(net, fee_payer.pubkey()), token_balance(net, payee, mint)
        proxy.arm(fault, outage=30)  # the node stays unreachable: the resend on a new connection fails too
        settled = facilitator.settle(paid, requirements)
        assert (settled.success, settled.error_reason, settled.transaction) == (False, "settlement_pending", signature)
        row = facilitator.log.get(key_of(paid))
        assert row is not None and (row.status, row.signature) == (PENDING, signature)
        assert (status(net, signature) is not None) == (fault == "drop")
        proxy.heal()
        retried = facilitator.settle(paid, requirements)
        assert (retried.success, retried.transaction) == (True, signature)
        assert status(net, signature)["err"] is None
        assert facilitator.settle(paid, requirements).error_reason == "duplicate_settlement"
        assert facilitator.log.get(key_of(paid)).status == SETTLED  # type: ignore[union-attr]
        assert sol_balance(net, fee_payer.pubkey()) == sol_before - FEE
        assert token_balance(net, payee, mint) == payee_before + PRICE_ATOMIC
        assert token_balance(net, payer.pubkey(), mint) == TOKENS - PRICE_ATOMIC


def test_rows_a_crash_left_pending_are_reconciled_at_start_and_by_a_retry(
    net: Any, tmp_path: Path, mint: Pubkey, payee: Pubkey
) -> None:
    """Four settles a crash left pending, each with its signature: landed and succeeded, landed and failed,
    never sent (blockhash valid), never sent (blockhash expired). Starting the facilitator marks them
    landed, failed, (still) pending and released; retrying each payment then answers success with the
    landed signature (to its own seller only), the on-chain error, success after sending it again, and
    (released) a refusal before any send, after which the buyer pays again."""
    fee_payer, db = fund(net, sol=10), tmp_path / "f.db"
    requirements = requirements_for(fee_payer.pubkey(), mint, payee)
    buyers = {name: buyer(net, mint) for name in ("landed", "failed", "unsent", "expired")}
    mint_to(net, buyers["failed"].pubkey(), mint, PRICE_ATOMIC - 1)  # its transfer fails on chain
    expired = payment(requirements, buyers["expired"], latest_blockhash(net), compute_unit_price=0)
    expire_blockhashes(net)
    blockhash = latest_blockhash(net)
    paid = {
        name: payment(requirements, buyers[name], blockhash, compute_unit_price=0)
        for name in ("landed", "failed", "unsent")
    } | {"expired": expired}
    sol_before, payee_before = sol_balance(net, fee_payer.pubkey()), token_balance(net, payee, mint)
    signatures = {name: claim(db, paid[name], fee_payer) for name in paid}
    for name in ("landed", "failed"):  # sent before the crash
        send_raw(net, signed_by(fee_payer, paid[name]))

    facilitator = in_process(net, fee_payer, db)
    try:
        rows = {name: facilitator.log.get(key_of(paid[name])) for name in paid}
        assert {name: row.status if row else None for name, row in rows.items()} == {
            "landed": LANDED,
            "failed": FAILED,
            "unsent": PENDING,
            "expired": None,
        }
        assert rows["failed"].error == '{"InstructionError": [2, {"Custom": 1}]}'  # type: ignore[union-attr]
        assert facilitator.health()["pendingSettles"] == 1

        # Landed for this seller, not for another (its checks run, without a simulation):
        elsewhere = requirements.model_copy(update={"pay_to": str(fund(net).pubkey())})
        for answer in (
            facilitator.verify(paid["landed"], elsewhere).invalid_reason,
            facilitator.settle(paid["landed"], elsewhere).error_reason,
        ):
            assert answer == "invalid_exact_svm_payload_recipient_mismatch"
        assert facilitator.verify(paid["landed"], requirements).is_valid  # paid on chain: the seller may serve
        answers = {name: facilitator.settle(paid[name], requirements) for name in paid}
        assert (answers["landed"].success, answers["landed"].transaction) == (True, signatures["landed"])
        assert (answers["failed"].success, answers["failed"].error_reason, answers["failed"].transaction) == (
            False,
            "transaction_failed",
            signatures["failed"],
        )
        assert (answers["unsent"].success, answers["unsent"].transaction) == (True, signatures["unsent"])
        assert (answers["expired"].success, answers["expired"].error_reason, answers["expired"].transaction) == (
            False,
            "transaction_simulation_failed",
            "",
        )
        assert status(net, signatures["expired"]) is None
        assert facilitator.settle(paid["landed"], requirements).error_reason == "duplicate_settlement"

        again = facilitator.settle(
            payment(requirements, buyers["expired"], latest_blockhash(net), compute_unit_price=0), requirements
        )
        assert again.success
        assert facilitator.health()["pendingSettles"] == 0 and facilitator.log.count() == 3
        # Fees: the three that landed and succeeded, and the one that failed (sent before the crash).
        assert sol_balance(net, fee_payer.pubkey()) == sol_before - 4 * FEE
        assert token_balance(net, payee, mint) == payee_before + 3 * PRICE_ATOMIC
        assert {name: token_balance(net, b.pubkey(), mint) for name, b in buyers.items()} == {
            "landed": TOKENS - PRICE_ATOMIC,
            "failed": PRICE_ATOMIC - 1,
            "unsent": TOKENS - PRICE_ATOMIC,
            "expired": TOKENS - PRICE_ATOMIC,
        }
    finally:
        facilitator.close()


SCHEMA_1 = """CREATE TABLE settled (message_hash TEXT PRIMARY KEY, payer TEXT NOT NULL, network TEXT NOT NULL,
    signature TEXT, pending INTEGER NOT NULL DEFAULT 0, claimed_at REAL NOT NULL, settled_at REAL)"""


def test_a_schema_1_log_is_migrated_and_its_rows_without_signature_no_longer_block(
    net: Any, tmp_path: Path, mint: Pubkey, payee: Pubkey
) -> None:
    """The previous facilitator claimed a row without a signature and wrote the signature after the send:
    a crash in between left rows that answered `duplicate_settlement` to every retry, the buyer charged
    without service. Migrated, such a row finds its signature again when the payment is retried (the fee
    payer signs deterministically): landed → success with that signature; never sent → sent now."""
    fee_payer, db = fund(net, sol=10), tmp_path / "f.db"
    requirements = requirements_for(fee_payer.pubkey(), mint, payee)
    blockhash = latest_blockhash(net)
    payers = {name: buyer(net, mint) for name in ("settled", "charged", "unsent")}
    paid = {name: payment(requirements, payers[name], blockhash, compute_unit_price=0) for name in payers}
    signatures = {name: str(signed_by(fee_payer, p).signatures[0]) for name, p in paid.items()}
    for name in ("settled", "charged"):
        send_raw(net, signed_by(fee_payer, paid[name]))
    with sqlite3.connect(db) as old:
        old.execute(SCHEMA_1)
        old.execute(
            "INSERT INTO settled VALUES (?, ?, ?, ?, 0, ?, ?)",
            (key_of(paid["settled"]), "P", DEVNET.caip2, signatures["settled"], time.time(), time.time()),
        )
        for name in ("charged", "unsent"):
            old.execute(
                "INSERT INTO settled VALUES (?, ?, ?, NULL, 0, ?, NULL)",
                (key_of(paid[name]), "P", DEVNET.caip2, time.time()),
            )
    payee_before = token_balance(net, payee, mint)

    facilitator = in_process(net, fee_payer, db)
    try:
        assert [facilitator.log.get(key_of(paid[name])).status for name in payers] == [SETTLED, PENDING, PENDING]  # type: ignore[union-attr]
        answers = {name: facilitator.settle(paid[name], requirements) for name in payers}
        assert answers["settled"].error_reason == "duplicate_settlement"
        assert (answers["charged"].success, answers["charged"].transaction) == (True, signatures["charged"])
        assert (answers["unsent"].success, answers["unsent"].transaction) == (True, signatures["unsent"])
        assert facilitator.log.count() == 3
        assert token_balance(net, payee, mint) == payee_before + PRICE_ATOMIC  # the unsent one, sent now
    finally:
        facilitator.close()
    with sqlite3.connect(db) as migrated:
        assert migrated.execute("PRAGMA user_version").fetchone()[0] == facilitator_store.SCHEMA_VERSION
        assert migrated.execute("SELECT COUNT(*) FROM settled WHERE signature IS NULL").fetchone()[0] == 0


RECORD_CU = 28_000  # what GhostPay's buyer asks for a recorded payment (the facilitator's default cap)


def recorded(net: Any, agent: Agent, payer: Keypair, fee_payer: Pubkey) -> PaymentPayload:
    """A GhostPay buyer's payment whose receipt rent the fee payer fronts."""
    requirements = requirements_for(fee_payer, agent.mint, agent.owner.pubkey())
    record = build_record_x402_payment(
        agent.address,
        payer.pubkey(),
        PRICE_ATOMIC,
        os.urandom(32),
        get_associated_token_address(payer.pubkey(), agent.mint),
        agent.mint,
        get_associated_token_address(agent.owner.pubkey(), agent.mint),
        rent_payer=fee_payer,
    )
    return payment(
        requirements,
        payer,
        latest_blockhash(net),
        after=[memo(), record],
        compute_unit_limit=RECORD_CU,
        compute_unit_price=0,
    )


def post(url: str, method: str, paid: PaymentPayload, requirements: PaymentRequirements) -> dict[str, Any] | None:
    """POST /verify or /settle; None when no answer came (the facilitator was killed)."""
    try:
        answer = httpx.post(
            f"{url}/{method}",
            json={
                "x402Version": 2,
                "paymentPayload": paid.model_dump(by_alias=True, exclude_none=True),
                "paymentRequirements": requirements.model_dump(by_alias=True, exclude_none=True),
            },
            timeout=60,
        )
    except httpx.HTTPError:
        return None
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_floor_holds_under_concurrent_settles(net: Any, tmp_path: Path) -> None:
    """A fee payer holding its floor plus what three recorded payments cost (fees and each buyer's fronted
    PayerStats rent: ten buyers, so each payment opens its pair's account),
    and ten of them settled at once: three land, seven are refused before any send, and the balance ends
    above the floor (the balance read is 2 s old at most; each spend is counted as it is committed)."""
    agent = register_agent(net, "floored")
    floor = 1_000_000_000
    rent = int(net.rpc("getMinimumBalanceForRentExemption", PAYER_STATS_SPACE)["result"])  # a buyer's PayerStats
    cost = FEE + rent
    fee_payer = Keypair()
    cheat(net, "surfnet_setAccount", str(fee_payer.pubkey()), {"lamports": floor + 3 * cost + FEE})
    proc = facilitator_process(net, tmp_path, fee_payer, "--min-balance", "1", "--sweep-interval", "0").start()
    try:
        requirements = requirements_for(fee_payer.pubkey(), agent.mint, agent.owner.pubkey())
        payers = [buyer(net, agent.mint) for _ in range(10)]
        paid = [recorded(net, agent, p, fee_payer.pubkey()) for p in payers]
        payee_before = token_balance(net, agent.owner.pubkey(), agent.mint)
        assert all(post(proc.url, "verify", p, requirements)["isValid"] for p in paid)  # type: ignore[index]
        with ThreadPoolExecutor(len(paid)) as pool:
            answers = list(pool.map(lambda p: post(proc.url, "settle", p, requirements), paid))
        landed = [a for a in answers if a and a["success"]]
        refused = [a for a in answers if a and not a["success"]]
        assert len(landed) == 3 and len(refused) == 7
        assert {(a["errorReason"], a["transaction"]) for a in refused} == {("ghostpay_facilitator_balance_low", "")}
        assert sol_balance(net, fee_payer.pubkey()) == floor + FEE >= floor
        assert token_balance(net, agent.owner.pubkey(), agent.mint) == payee_before + 3 * PRICE_ATOMIC
        assert (
            sorted(token_balance(net, p.pubkey(), agent.mint) for p in payers)
            == [TOKENS - PRICE_ATOMIC] * 3 + [TOKENS] * 7
        )
        health = httpx.get(f"{proc.url}/health").json()
        assert (health["settled"], health["pendingSettles"], health["status"]) == (3, 0, "ok")
    finally:
        proc.stop()


@dataclass
class Paid:
    """One payment of the SIGKILL test: its buyer, payload, the fee payer's signature, the answer before the kill."""

    payer: Keypair
    payload: PaymentPayload
    signature: str
    answer: dict[str, Any] | None = None


class Seller:
    """Pays a batch of payments as sellers do (verify, then settle), counting the settles answered."""

    def __init__(self, url: str, requirements: PaymentRequirements) -> None:
        self.url, self.requirements = url, requirements
        self.answered = 0
        self._lock = threading.Lock()

    def pay(self, paid: Paid) -> None:
        verified = post(self.url, "verify", paid.payload, self.requirements)
        if verified is not None and verified["isValid"]:
            paid.answer = post(self.url, "settle", paid.payload, self.requirements)
        with self._lock:
            self.answered += paid.answer is not None

    def wait_for(self, answers: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.answered < answers and time.monotonic() < deadline:
            time.sleep(0.001)


def rows_without_signature(db: Path) -> int:
    with sqlite3.connect(db) as log:
        return log.execute("SELECT COUNT(*) FROM settled WHERE signature IS NULL").fetchone()[0]


def test_sigkill_at_random_points_then_every_retry_is_answered_right(
    net: Any, tmp_path: Path, mint: Pubkey, payee: Pubkey
) -> None:
    """`ghost facilitator start` SIGKILLed while it settles batches of payments, restarted each time; then
    every blockhash expires and every payment is retried as a seller would (verify, then settle). No row
    is ever without a signature; each payment whose tokens moved was answered success with its landed
    signature (before the kill, or on the retry: never `duplicate_settlement` unless success was answered
    before); each whose tokens did not move is refused before any send and its buyer pays again; balances
    are what the successful settles account for, and the fee payer paid no fee for a failed transaction."""
    fee_payer = fund(net, sol=100)
    db = tmp_path / "facilitator.db"
    requirements = requirements_for(fee_payer.pubkey(), mint, payee)
    rng = random.Random(24)
    sol_before, payee_before = sol_balance(net, fee_payer.pubkey()), token_balance(net, payee, mint)
    batch = max(CALLS // KILLS, 1)
    payments: list[Paid] = []
    for _ in range(KILLS):
        proc = facilitator_process(net, tmp_path, fee_payer, "--sweep-interval", "0").start()
        blockhash = latest_blockhash(net)
        round_ = []
        for _ in range(batch):
            payer = buyer(net, mint, TOKENS)
            payload = payment(requirements, payer, blockhash, compute_unit_price=0)
            round_.append(Paid(payer, payload, str(signed_by(fee_payer, payload).signatures[0])))
        seller = Seller(proc.url, requirements)
        with ThreadPoolExecutor(batch) as pool:
            running = [pool.submit(seller.pay, p) for p in round_]
            seller.wait_for(rng.randrange(batch))  # a random point among the settles under way
            time.sleep(rng.uniform(0.0, 0.005))
            assert proc.proc is not None
            proc.proc.kill()
            proc.proc.wait()
            for future in running:
                future.result()
        proc.stop()
        payments += round_
        assert rows_without_signature(db) == 0

    with sqlite3.connect(db) as log:  # what the kills left: rows whose transaction may or may not have landed
        left_pending = {row[0] for row in log.execute("SELECT signature FROM settled WHERE status = 'pending'")}
    expire_blockhashes(net)
    proc = facilitator_process(net, tmp_path, fee_payer, "--sweep-interval", "0").start()
    try:
        landed = {p.signature for p in payments if status(net, p.signature) is not None}
        assert all(status(net, s)["err"] is None for s in landed)  # no fee paid for a failed transaction
        retries: dict[str, dict[str, Any]] = {}
        repaid = answered_twice = 0
        for p in payments:
            verified = post(proc.url, "verify", p.payload, requirements)
            assert verified is not None
            retries[p.signature] = (
                post(proc.url, "settle", p.payload, requirements)
                if verified["isValid"]
                else {"success": False, "errorReason": verified["invalidReason"], "transaction": ""}
            )
            retry = retries[p.signature]
            answered_before = p.answer is not None and p.answer["success"]
            if answered_before:
                assert p.signature in landed and p.answer["transaction"] == p.signature  # type: ignore[index]
                # A duplicate; or, killed between handing the answer over and recording that, the same success
                # again (the facilitator errs towards the buyer: the seller may serve twice, nobody pays twice).
                assert retry.get("errorReason") == "duplicate_settlement" or (
                    retry["success"],
                    retry["transaction"],
                ) == (True, p.signature)
                answered_twice += retry["success"]
            elif p.signature in landed:  # tokens moved, never answered: the retry answers the landed signature
                assert (retry["success"], retry["transaction"]) == (True, p.signature)
            else:  # tokens did not move: refused before any send (its blockhash expired); it pays again
                assert (retry["success"], retry["errorReason"]) == (False, "transaction_simulation_failed")
                assert status(net, p.signature) is None
                fresh = payment(requirements, p.payer, latest_blockhash(net), compute_unit_price=0)
                again = post(proc.url, "settle", fresh, requirements)
                assert again is not None and again["success"], again
                repaid += 1
        moved = len(landed) + repaid
        answered = sum(1 for p in payments if p.answer and p.answer["success"])
        print(
            f"{len(payments)} payments, {KILLS} kills: {answered} answered success before a kill, "
            f"{len(landed) - answered} landed unanswered, {repaid} never landed (paid again); rows left pending: "
            f"{len(left_pending & landed)} landed, {len(left_pending - landed)} not sent; "
            f"{answered_twice} answered success twice"
        )
        assert sol_balance(net, fee_payer.pubkey()) == sol_before - moved * FEE
        assert token_balance(net, payee, mint) == payee_before + moved * PRICE_ATOMIC
        assert all(token_balance(net, p.payer.pubkey(), mint) == TOKENS - PRICE_ATOMIC for p in payments)
        health = httpx.get(f"{proc.url}/health").json()
        assert (health["settled"], health["pendingSettles"]) == (moved, 0)
    finally:
        proc.stop()
    assert rows_without_signature(db) == 0
    with sqlite3.connect(db) as log:
        assert log.execute("SELECT status, COUNT(*) FROM settled GROUP BY status").fetchall() == [("settled", moved)]


def test_the_log_forgets_answered_outcomes_and_keeps_what_a_retry_needs(tmp_path: Path) -> None:
    """Pruning (every reconcile round, outcomes older than LOG_RETENTION_SECONDS): settled and failed rows go,
    what /health counts stays; pending and landed-but-unanswered rows stay, whatever their age."""
    log = SettledLog(tmp_path / "log.db")
    for name in ("settled", "failed", "landed", "pending", "fresh"):
        assert log.claim(name, payer="P", network=DEVNET.caip2, signature=f"sig-{name}", blockhash="B")
    for name in ("settled", "landed", "fresh"):
        log.mark_landed(name)
    log.mark_settled("sig-settled")
    log.mark_settled("sig-fresh")
    log.mark_failed("failed", "InsufficientFunds")
    assert log.count() == 3
    cutoff = time.time() + 1  # everything decided so far is "old"
    fresh_later = log.claim("later", payer="P", network=DEVNET.caip2, signature="sig-later", blockhash="B")
    assert fresh_later and log.prune(cutoff) == 3  # settled, fresh (settled) and failed
    assert log.count() == 3  # landed (live) + the two settled ones pruned
    assert {row for row in ("settled", "failed", "fresh") if log.get(row) is not None} == set()
    assert log.get("landed").status == LANDED and log.get("pending").status == PENDING  # type: ignore[union-attr]
    assert log.prune(cutoff) == 0
    log.close()


def test_a_prune_gives_way_to_another_writer(tmp_path: Path) -> None:
    """Another process holds the write lock: the prune skips its round at once instead of holding the log
    (every settle and /health) while it waits."""
    log = SettledLog(tmp_path / "log.db")
    assert log.claim("old", payer="P", network=DEVNET.caip2, signature="sig-old", blockhash="B")
    log.mark_landed("old")
    log.mark_settled("sig-old")
    locker = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        assert log.prune(time.time() + 1) == 0 and log.count() == 1  # skipped; reads go on
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert log.prune(time.time() + 1) == 1 and log.count() == 1
    log.close()
