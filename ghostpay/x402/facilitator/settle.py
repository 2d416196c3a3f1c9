"""The facilitator's settle path: nothing sent that was not simulated on the current state, nothing sent
that the log does not name, and every spend of the fee payer counted as it is committed.

A settle, holding the locks of the buyer's token account and authority (so two payments of one buyer
are simulated and sent one after the other, each against the state the other left):

1. the official verify: every check (the simulation against the current state is the send's preflight,
   atomic with it; a resend is simulated first, as it may have landed meanwhile);
2. the fee payer signs; what the transaction can cost it (fee + fronted receipt rent) is reserved
   under the balance floor;
3. the log claims the message hash with the signature, `pending`, before the send;
4. send, confirm by subscription: `landed` (success; `settled` once that answer was delivered),
   `failed` (landed, failed on chain: the error is answered), or left `pending` (no confirmation
   seen: its signature answers a retry).

A success counts as answered once the answer was handed over (`acknowledge`): until then a concurrent
retry of the payment is a duplicate, and after a crash (the answer lost with the process) a retry is
answered success with the landed signature.

Replicas on one PostgreSQL: the log's row is held (`SettledLog.take`) by the settle working on it; a retry
reaching another replica while its holder runs is answered `settlement_pending` (retry later), and once the
holder's process died, the row is taken over and finished here.

A row left pending (a crash, a lost confirmation) is looked up by signature when the facilitator starts,
every `RECONCILE_INTERVAL_SECONDS`, and when the same payment comes again: landed and succeeded →
`landed` (the next settle of the payment answers success with that signature, so the seller serves);
landed and failed → `failed`; blockhash expired and never landed → released, the buyer may pay again;
still possible (not landed, blockhash valid: maybe it was never sent) → a retry simulates it again
and sends the same signed transaction (a second send of one signature cannot land twice).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from solders.message import Message, MessageV0
from solders.transaction import VersionedTransaction
from x402.mechanisms.svm.constants import (
    COMPUTE_BUDGET_PROGRAM_ADDRESS,
    ERR_DUPLICATE_SETTLEMENT,
    ERR_SETTLEMENT_PENDING,
    ERR_SIMULATION_FAILED,
    ERR_TRANSACTION_FAILED,
)
from x402.schemas import SettleResponse

from ghostpay.x402.facilitator.confirm import EXPIRED, FAILED_ON_CHAIN, SUCCEEDED, FailedOnChain, chain_status
from ghostpay.x402.facilitator.guards import ERR_BALANCE_LOW
from ghostpay.x402.facilitator.rpc import RpcError
from ghostpay.x402.facilitator.store import FAILED, LANDED, PENDING, SettledLog, SettledPayment
from ghostpay.x402.record.types import TRANSFER_INDEX

if TYPE_CHECKING:
    from ghostpay.x402.facilitator.guards import BalanceFloor
    from ghostpay.x402.facilitator.signer import SubscribingSigner

logger = logging.getLogger(__name__)

RECONCILE_INTERVAL_SECONDS = 10.0  # how often rows left pending are looked up on chain
# How long an answered outcome stays in the log: three times a blockhash's life (about 60 s), after which
# a replayed payment cannot land and is refused by its simulation without the log's help.
LOG_RETENTION_SECONDS = 180.0
LAMPORTS_PER_SIGNATURE = 5_000
DEFAULT_UNITS_PER_INSTRUCTION = 200_000  # the runtime's compute budget without SetComputeUnitLimit...
MAX_COMPUTE_UNITS = 1_400_000  # ...capped at the transaction's maximum
MICRO_LAMPORTS_PER_LAMPORT = 1_000_000
SET_COMPUTE_UNIT_LIMIT, SET_COMPUTE_UNIT_PRICE = 2, 3


def fee_lamports(message: Message | MessageV0) -> int:
    """The most the transaction's fee can be: 5,000 lamports a signature plus its priority fee (its
    compute-unit limit times its price)."""
    keys = message.account_keys
    limit, price, others = None, 0, 0
    for instruction in message.instructions:
        data = bytes(instruction.data)
        if str(keys[instruction.program_id_index]) != COMPUTE_BUDGET_PROGRAM_ADDRESS:
            others += 1
        elif data[:1] == bytes([SET_COMPUTE_UNIT_LIMIT]) and len(data) >= 5:
            limit = int.from_bytes(data[1:5], "little")
        elif data[:1] == bytes([SET_COMPUTE_UNIT_PRICE]) and len(data) >= 9:
            price = int.from_bytes(data[1:9], "little")
    units = min(limit if limit is not None else DEFAULT_UNITS_PER_INSTRUCTION * others, MAX_COMPUTE_UNITS)
    priority = -(-price * units // MICRO_LAMPORTS_PER_LAMPORT)  # rounded up, as the runtime does
    return LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures + priority


def spent_accounts(tx: VersionedTransaction) -> list[str]:
    """The token account the payment's transfer debits and its authority: what another payment of the
    same buyer would spend too."""
    keys, instructions = tx.message.account_keys, tx.message.instructions
    if len(instructions) <= TRANSFER_INDEX:
        return []
    accounts = bytes(instructions[TRANSFER_INDEX].accounts)
    source, authority = 0, 3  # TransferChecked: source, mint, destination, authority
    return [str(keys[accounts[i]]) for i in (source, authority) if i < len(accounts) and accounts[i] < len(keys)]


class KeyedLocks:
    """A lock per name, made when first wanted and dropped when nobody holds or waits for it. `holding`
    takes several in one global order, so two holders of overlapping sets cannot deadlock."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()

    @contextmanager
    def holding(self, names: Iterable[str]) -> Iterator[None]:
        ordered = sorted(set(names))
        with self._guard:
            locks = []
            for name in ordered:
                lock, users = self._locks.get(name, (threading.Lock(), 0))
                self._locks[name] = (lock, users + 1)
                locks.append(lock)
        held: list[threading.Lock] = []
        try:
            for lock in locks:
                lock.acquire()
                held.append(lock)
            yield
        finally:
            for lock in reversed(held):
                lock.release()
            with self._guard:
                for name in ordered:
                    lock, users = self._locks[name]
                    if users == 1:
                        del self._locks[name]
                    else:
                        self._locks[name] = (lock, users - 1)


def answer(
    success: bool,
    payer: str,
    network: str,
    transaction: str = "",
    reason: str | None = None,
    message: str | None = None,
) -> SettleResponse:
    return SettleResponse(
        success=success,
        error_reason=reason,
        error_message=message,
        payer=payer,
        transaction=transaction,
        network=network,
    )


def failed_on_chain(signature: str, error: str | None, payer: str, network: str) -> SettleResponse:
    return answer(
        False, payer, network, signature, ERR_TRANSACTION_FAILED, f"the transaction landed and failed on chain: {error}"
    )


class Settler:
    """Sends verified payments and reconciles what a crash or a lost confirmation left pending; shared by
    the v2 and v1 schemes. `cost(tx)` is what a transaction can take from the fee payer."""

    def __init__(
        self,
        signer: SubscribingSigner,
        settled: SettledLog,
        floor: BalanceFloor,
        cost: Callable[[VersionedTransaction], int],
    ) -> None:
        self._signer = signer
        self._log = settled
        self._floor = floor
        self._cost = cost
        self._locks = KeyedLocks()

    @contextmanager
    def holding(self, key: str, tx: VersionedTransaction) -> Iterator[None]:
        """The locks a settle of `tx` holds from its simulation to its outcome: its own, and its buyer's (against
        this process's settles, then against the other replicas')."""
        accounts = spent_accounts(tx)
        with self._locks.holding([key, *accounts]), self._log.spending(accounts):
            yield

    def reconcile(self, row: SettledPayment) -> None:
        """Look the pending row's transaction up on chain and record what became of it."""
        assert row.signature is not None
        status = chain_status(self._signer.rpc, row.signature, row.blockhash)
        if status.state == SUCCEEDED:
            self._log.mark_landed(row.message_hash)
        elif status.state == FAILED_ON_CHAIN:
            self._log.mark_failed(row.message_hash, json.dumps(status.error))
        elif status.state == EXPIRED:
            self._log.release(row.message_hash)

    def prune(self) -> int:
        """Forget outcomes answered more than LOG_RETENTION_SECONDS ago (the log stays flat under load)."""
        return self._log.prune(time.time() - LOG_RETENTION_SECONDS)

    def reconcile_pending(self) -> None:
        """Reconcile every pending row (at start-up, then now and then)."""
        for row in self._log.pending():
            self.reconcile(row)

    def looked_up(self, key: str, tx: VersionedTransaction) -> SettledPayment | None:
        """The log's row for this payment, a pending one reconciled first; None if there is none (or it was
        just released)."""
        row = self._log.get(key)
        if row is None or row.status != PENDING:
            return row
        if row.signature is None:  # a schema 1 row: signing the message again gives the signature it had
            self._log.add_signature(key, self._signer.signature_of(tx), str(tx.message.recent_blockhash))
            row = self._log.get(key)
            assert row is not None
        self.reconcile(row)
        return self._log.get(key)

    def answer_known(self, row: SettledPayment, payer: str, network: str) -> SettleResponse:
        """The answer for a payment the log holds with a known outcome: a landed one answers success with
        its signature (its service is still owed) unless that answer is on its way already, a failed one
        its on-chain error, a settled one is a duplicate. The success is answered by whoever takes the row."""
        if row.status == FAILED:
            return failed_on_chain(row.signature or "", row.error, payer, network)
        if row.status == LANDED and row.signature is not None and self._log.take(row):
            self._took(row)
            return answer(True, payer, network, row.signature)
        return answer(
            False, payer, network, reason=ERR_DUPLICATE_SETTLEMENT, message="this payment was already settled"
        )

    def take(self, row: SettledPayment, payer: str, network: str) -> SettleResponse | None:
        """Hold a pending row to send it again; the answer when a live settle (here or in a replica) has it."""
        if self._log.take(row):
            self._took(row)
            return None
        return answer(
            False,
            payer,
            network,
            row.signature or "",
            ERR_SETTLEMENT_PENDING,
            "another settle of this payment is under way (perhaps in another facilitator replica); retry shortly",
        )

    @staticmethod
    def _took(row: SettledPayment) -> None:
        if row.holder is not None:  # for the operator: a replica died (or restarted) mid-settle
            logger.info(
                "took over the %s settle of %s from %s, whose session ended", row.status, row.signature, row.holder
            )

    def let_go(self, key: str) -> None:
        """The resend of a held pending row is over: left pending, any settle may look it up again."""
        self._log.let_go(key)

    def acknowledge(self, signature: str) -> None:
        """The success answer naming `signature` was handed over: a retry of the payment is a duplicate now."""
        self._log.mark_settled(signature)

    def unanswered(self, signature: str) -> None:
        """The success answer naming `signature` was lost: a retry of the payment is answered success again."""
        self._log.let_go_signature(signature)

    def send(
        self,
        key: str,
        tx: VersionedTransaction,
        tx_base64: str,
        fee_payer: str,
        payer: str,
        network: str,
        resend: bool = False,
    ) -> SettleResponse:
        """Sign, reserve, claim (pending, with the signature) and send a payment just simulated, then
        confirm it. `resend`: the log already has it pending (never seen landed, blockhash still valid)."""
        signed = self._signer.sign_transaction(tx_base64, fee_payer, network)
        signature = str(VersionedTransaction.from_bytes(base64.b64decode(signed)).signatures[0])
        cost = self._cost(tx)
        if not self._floor.reserve(cost):
            return answer(
                False,
                payer,
                network,
                reason=ERR_BALANCE_LOW,
                message="the facilitator's SOL balance would go under its floor; it pays no fees now",
            )
        spent = 0
        try:
            if not resend and not self._log.claim(
                key, payer=payer, network=network, signature=signature, blockhash=str(tx.message.recent_blockhash)
            ):
                return answer(
                    False, payer, network, reason=ERR_DUPLICATE_SETTLEMENT, message="this payment was already settled"
                )
            spent = cost  # from here on it may be spent; an unknown outcome counts until the next balance read
            try:
                try:
                    self._signer.send_transaction(signed, network, preflight=not resend)
                except RpcError as refused:
                    if not refused.preflight_failed:
                        raise
                    spent = 0  # the node simulated it on the current state and sent nothing
                    self._log.release(key)
                    return answer(
                        False,
                        payer,
                        network,
                        reason=ERR_SIMULATION_FAILED,
                        message=f"Simulation failed: {refused.simulation_error or refused}",
                    )
                self._signer.confirm_transaction(signature, network, look_up=resend)
            except FailedOnChain as failed:
                spent = fee_lamports(tx.message)
                self._log.mark_failed(key, json.dumps(failed.err))
                return failed_on_chain(signature, json.dumps(failed.err), payer, network)
            except Exception as exc:  # noqa: BLE001 - not seen confirmed: pending, reconciled by signature later
                self._log.let_go(key, (PENDING, LANDED))  # no success answered here (a reconcile may have seen it)
                return answer(False, payer, network, signature, ERR_SETTLEMENT_PENDING, str(exc))
            self._log.mark_landed(key)  # still held: this settle answers its success
            return answer(True, payer, network, signature)
        finally:
            self._floor.account(cost, spent)


class Reconciling:
    """`settler.reconcile_pending()` every `interval` seconds in a daemon thread, until `stop()`."""

    def __init__(self, settler: Settler, interval: float = RECONCILE_INTERVAL_SECONDS) -> None:
        self._settler = settler
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ghostpay-reconcile", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._settler.reconcile_pending()
                self._settler.prune()
            except Exception as exc:  # noqa: BLE001 - an RPC hiccup: the next round retries
                logger.warning("reconciling pending settles failed: %s", exc)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)
