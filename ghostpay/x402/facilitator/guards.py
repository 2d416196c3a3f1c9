"""The guards a public fee payer needs in front of the official exact-SVM checks.

- a fee-payer guard: the facilitator's key may appear in no instruction and the message may use no
  address lookup table, so its signature can only ever pay the fee of a verified payment;
- replay protection that survives restarts (`SettledLog`: SQLite, or PostgreSQL shared by replicas);
- a per-payer rate limit (a sliding window);
- a SOL balance floor under which it refuses to pay fees, each spend counted as it is committed;
- the operator's policy (`policy`), and GhostPay's record extension (`ghostpay.x402.record.facilitator`).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Any

from solana.rpc.api import Client
from solana.rpc.commitment import Confirmed
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from x402.mechanisms.svm.constants import ERR_DUPLICATE_SETTLEMENT

from ghostpay.x402.facilitator.keys import OPERATOR
from ghostpay.x402.facilitator.policy import PaymentPolicy, current
from ghostpay.x402.facilitator.store import SETTLED, SettledLog, SettledPayment
from ghostpay.x402.record.facilitator import RECORD_REFUSALS, RecordExtension, fronted_account, without_record

# Refusal reasons of the guards (the official ones keep their names).
ERR_FEE_PAYER_IN_INSTRUCTION = "ghostpay_fee_payer_in_instruction"
ERR_LOOKUP_TABLES = "ghostpay_address_lookup_tables_not_allowed"
ERR_RATE_LIMITED = "ghostpay_rate_limited"
ERR_BALANCE_LOW = "ghostpay_facilitator_balance_low"

GUARD_REFUSALS = {
    ERR_FEE_PAYER_IN_INSTRUCTION: "the fee payer appears in an instruction (it only ever pays the fee)",
    ERR_LOOKUP_TABLES: "the message uses an address lookup table",
    **RECORD_REFUSALS,
    ERR_DUPLICATE_SETTLEMENT: "a payment already settled (the log survives restarts)",
    ERR_RATE_LIMITED: "too many verifies (or settles) from one payer in the rate window",
    ERR_BALANCE_LOW: "the fee payer's SOL is under its floor",
}


class SlidingWindowLimiter:
    """At most `limit` events per key in any `window` seconds.

    >>> limiter = SlidingWindowLimiter(2, 60.0)
    >>> [limiter.allow("payer") for _ in range(3)], limiter.allow("other")
    ([True, True, False], True)
    """

    def __init__(self, limit: int, window: float) -> None:
        self._limit = limit
        self._window = window
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            events = self._events[key]
            while events and events[0] <= now - self._window:
                events.popleft()
            if len(events) >= self._limit:
                return False
            events.append(now)
            return True


class BalanceFloor:
    """The fee payer's SOL against a floor, every spend counted as it is committed.

    A settle reserves what its transaction can cost (fee and any receipt rent it fronts) before the
    send, and accounts for what it did cost once its outcome is known. What may be spent is the balance
    last read from the node (at most every `ttl` seconds), less the spends accounted since and the
    reservations still open: concurrent settles cannot together go under the floor, however old the read.

        >>> class Node:  # a fee payer holding 1,030,000 lamports
        ...     def get_balance(self, key, commitment): return type("R", (), {"value": 1_030_000})()
        >>> floor = BalanceFloor(Node(), Pubkey.default(), 1_000_000)
        >>> [floor.reserve(10_000) for _ in range(4)]
        [True, True, True, False]
        >>> floor.account(10_000, 0); floor.reserve(10_000)  # one was never sent: its reservation returns
        True
    """

    def __init__(self, rpc: Client, fee_payer: Pubkey, floor_lamports: int, ttl: float = 2.0) -> None:
        self._rpc = rpc
        self._fee_payer = fee_payer
        self.floor = floor_lamports
        self._ttl = ttl
        self._read_at: float | None = None
        self._balance = 0  # the last read, less what was accounted as spent since
        self._reserved = 0
        self._spends: list[tuple[int, int]] = []  # (sequence, lamports) accounted since the last read began
        self._sequence = 0
        self._lock = threading.Lock()
        self._reading = threading.Lock()

    def _refresh(self) -> None:
        with self._reading:
            with self._lock:
                if self._read_at is not None and time.monotonic() - self._read_at <= self._ttl:
                    return
                began = self._sequence
            lamports = self._rpc.get_balance(self._fee_payer, Confirmed).value
            with self._lock:  # a spend accounted while the read was under way may be missing from it
                self._spends = [(sequence, spent) for sequence, spent in self._spends if sequence > began]
                self._balance = lamports - sum(spent for _, spent in self._spends)
                self._read_at = time.monotonic()

    def balance(self) -> int:
        """The balance as last read, less the spends accounted since."""
        self._refresh()
        with self._lock:
            return self._balance

    def too_low(self) -> bool:
        """Whether the balance, less the open reservations, is under the floor."""
        if self.floor <= 0:
            return False
        self._refresh()
        with self._lock:
            return self._balance - self._reserved < self.floor

    def reserve(self, lamports: int) -> bool:
        """Reserve `lamports` for a settle about to send; False if that would go under the floor."""
        self._refresh()
        with self._lock:
            if self.floor > 0 and self._balance - self._reserved - lamports < self.floor:
                return False
            self._reserved += lamports
            return True

    def account(self, reserved: int, spent: int) -> None:
        """A reservation ends: `spent` lamports of it left the account (0: it was never sent)."""
        with self._lock:
            self._reserved -= reserved
            self._balance -= spent
            self._sequence += 1
            self._spends.append((self._sequence, spent))


def fee_payer_refusal(tx: VersionedTransaction, fee_payers: set[str]) -> str | None:
    """Why the fee payer must not sign `tx`, or None: its key may not appear in any instruction (as
    program or account: no transfer, close, approve or create can then spend its SOL or tokens), and
    no address lookup table may hide accounts from this check."""
    message = tx.message
    if isinstance(message, MessageV0) and message.address_table_lookups:
        return ERR_LOOKUP_TABLES
    keys = {Pubkey.from_string(f) for f in fee_payers}  # compared as keys: base58 of each account costs more
    ours = {i for i, key in enumerate(message.account_keys) if key in keys}
    for instruction in message.instructions:
        if instruction.program_id_index in ours or ours.intersection(bytes(instruction.accounts)):
            return ERR_FEE_PAYER_IN_INSTRUCTION
    return None


class PairAccounts:
    """Which (payer, agent) PayerStats exist: a pair's first payment opens one (its rent fronted when the fee
    payer is the rent payer), later ones do not. An account seen once stays known (it is closed only by its
    payer, after which the program would open it again: then the rent counts once more, erring on the safe
    side); the set is bounded, the oldest forgotten first."""

    KNOWN = 200_000  # pairs remembered (≈ 100 bytes each)

    def __init__(self, rpc: Client) -> None:
        self._rpc = rpc
        self._known: dict[str, None] = {}
        self._lock = threading.Lock()

    def exists(self, address: str) -> bool:
        with self._lock:
            if address in self._known:
                return True
        found = self._rpc.get_account_info(Pubkey.from_string(address), Confirmed).value is not None
        if found:
            with self._lock:
                self._known[address] = None
                if len(self._known) > self.KNOWN:
                    self._known.pop(next(iter(self._known)))
        return found


class Guards:
    """The checks shared by the v1 and v2 schemes, and the settled-payment log."""

    def __init__(
        self,
        fee_payers: set[str],
        log: SettledLog,
        rate_limit: int,
        rate_window: float,
        floor: BalanceFloor,
        extension: RecordExtension | None,
        policy: PaymentPolicy,
        pairs: PairAccounts,
    ) -> None:
        self.fee_payers = fee_payers
        self.pairs = pairs
        self.log = log
        self.verify_limiter = SlidingWindowLimiter(rate_limit, rate_window)
        self.settle_limiter = SlidingWindowLimiter(rate_limit, rate_window)
        self.floor = floor
        self.extension = extension
        self.policy = policy

    def records(self, tx: VersionedTransaction) -> bool:
        """Whether `tx` ends with the record instruction of the extension (acceptable or not)."""
        return self.extension is not None and self.extension.records(tx)

    def opened_by(self, tx: VersionedTransaction) -> str | None:
        """The PayerStats this (recording) payment makes at the fee payer's expense: the pair's first payment
        with the fee payer as rent payer; None when the payer pays it, or the pair's account exists."""
        fronted = fronted_account(tx, self.fee_payers)
        return fronted if fronted is not None and not self.pairs.exists(fronted) else None

    def refusal(
        self,
        tx: VersionedTransaction,
        payer: str,
        limiter: SlidingWindowLimiter,
        requirements: Any,
        previous: SettledPayment | None,
        *,
        settle: bool = False,
    ) -> tuple[str, str] | None:
        """(reason, message) when a guard refuses the payment, else None; `previous` is the log's row for it,
        as the scheme just read it. A settle's last guard reserves the seller's quota
        (`PaymentPolicy.seller_refusal`)."""
        ticket = current(OPERATOR)
        checked, receipt = tx, None
        if self.records(tx):
            assert self.extension is not None
            refused = self.extension.refusal(tx, self.fee_payers, requirements, ticket.caller.may_front_rent)
            if refused is not None:
                return refused
            checked, receipt = without_record(tx), self.opened_by(tx)
        reason = fee_payer_refusal(checked, self.fee_payers)
        if reason is not None:
            return reason, "the facilitator's key appears in an instruction: it only ever pays the fee"
        refused = self.policy.payment_refusal(tx)
        if refused is not None:
            return refused
        if previous is not None and previous.status == SETTLED:  # others are reconciled by the scheme first
            return ERR_DUPLICATE_SETTLEMENT, "this payment was already settled"
        if not limiter.allow(payer):
            return ERR_RATE_LIMITED, f"too many payments from {payer}; retry later"
        if self.floor.too_low():
            return ERR_BALANCE_LOW, "the facilitator's SOL balance is under its floor; it pays no fees now"
        return self.policy.seller_refusal(tx, receipt, ticket, settle=settle)
