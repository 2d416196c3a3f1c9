"""Spending guards: limits a buyer cannot overspend, even with many calls at once or many processes.

    guards = SpendingGuards(per_call=Decimal("0.05"), daily=Decimal("5"),
                            mint_limits={"USDC": Limits(total=Decimal("100"))},
                            blocked_sellers={"Bad1…"}, calls_per_minute=30,
                            confirm_above=Decimal("1"), confirm=ask_the_user)

Amounts are whole tokens of the mint being paid; `per_call`, `hourly`, `daily` and `total` apply to
every mint on its own, `mint_limits` overrides them for one mint. Mints are addresses or token labels
(`ghostpay.token_labels`): a client resolves the labels on its own cluster before its first payment, so
"USDC" guards the USDC of the cluster paid on, and a label that cluster does not have refuses every
payment (`UnknownTokenLabel`) rather than guard nothing. A payment passes, in order: the
allowed mints, the allowed and blocked sellers (its payTo wallet or its agent), the per-call
maximum, the confirm callback above `confirm_above`, then — atomically, in the spend ledger — the
calls-per-minute rate and the hour / day / total budgets. A refusal raises a `SpendingRefused`
subclass before anything is signed.

The ledger is SQLite in the data folder (`ghost path`), or PostgreSQL (`postgresql://…`, shared by every
host naming it: `ghostpay.spend_store`). A payment is *reserved* in the same write transaction (holding the
wallet's lock) that checks the budgets, so 50 concurrent calls against a budget for 10 reserve exactly 10,
in one process or several. A reservation becomes *sent* just
before the signed payment leaves the process, and *settled* when the seller's answer carries the
settlement; it is *released* (no longer counted) only when the payment provably moved nothing: it
failed before it was sent, or (`pay_agent`, which sends itself) its transaction failed.
A sent payment whose outcome is unknown keeps counting: the guards never assume money came back.
A reservation never marked sent (the process died before sending) stops counting after
`RESERVATION_TTL` seconds. One sent with a proof (the wallet's signature in the transaction and its
blockhash) and left past that TTL by a dead process is reconciled by the next payment of the wallet: settled
if the chain has it, released once its blockhash expired without it landing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from ghostpay.exceptions import (
    BudgetExceeded,
    MintNotAllowed,
    PaymentDeclined,
    PriceAboveMaximum,
    RateLimited,
    SellerNotAllowed,
)
from ghostpay.spend_store import Session, open_store
from ghostpay.token_labels import ClusterLabels, is_address
from ghostpay.tokens import from_atomic, to_atomic

RESERVATION_TTL = 300.0  # seconds before a reservation never settled or released is reconciled
RECONCILE_INTERVAL = 10.0  # seconds between a GuardedWallet's looks for reservations left by dead processes
WINDOWS = {"hour": 3600.0, "day": 86400.0, "total": None}
BUDGET_NAMES = {"hour": "hourly", "day": "daily", "total": "total"}
COUNTED = ("reserved", "sent", "settled")
GUARD_TOKEN = "the spending guards' token"  # what names a label in UnknownTokenLabel raised by `resolved`

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Limits for one mint, in whole tokens of it (None: no limit)."""

    per_call: Decimal | None = None
    hourly: Decimal | None = None
    daily: Decimal | None = None
    total: Decimal | None = None

    def over(self, other: Limits) -> Limits:
        """These limits, each unset one taken from `other`."""
        return Limits(
            *(
                mine if mine is not None else theirs
                for mine, theirs in zip(
                    (self.per_call, self.hourly, self.daily, self.total),
                    (other.per_call, other.hourly, other.daily, other.total),
                    strict=True,
                )
            )
        )

    def budget(self, window: str) -> Decimal | None:
        return {"hour": self.hourly, "day": self.daily, "total": self.total}[window]


@dataclass(frozen=True)
class Spend:
    """One payment the guards look at: who pays whom, how much of which mint, for what."""

    wallet: str
    mint: str
    decimals: int
    amount_atomic: int
    seller: str  # the wallet paid (payTo)
    agent: str | None = None  # the seller's GhostPay agent, when known
    url: str | None = None
    label: str | None = None  # the mint's token label on the cluster paid on, for messages

    @property
    def amount(self) -> Decimal:
        return from_atomic(self.amount_atomic, self.decimals)

    @property
    def unit(self) -> str:
        """What amounts are counted in, for messages: the mint's label, else the mint."""
        return self.label or f"(mint {self.mint})"

    @property
    def priced(self) -> str:
        """The amount for messages: `0.01 USDC` when the mint has a label, else the bare amount."""
        return f"{self.amount} {self.label}" if self.label else str(self.amount)


ConfirmCallback = Callable[[Spend], bool | Awaitable[bool]]


@dataclass(frozen=True)
class SpendingGuards:
    """What a wallet may spend. Default: nothing limited (the ledger still records every payment)."""

    per_call: Decimal | None = None
    hourly: Decimal | None = None
    daily: Decimal | None = None
    total: Decimal | None = None
    mint_limits: Mapping[str, Limits] = field(default_factory=dict)
    allowed_mints: Collection[str] | None = None
    allowed_sellers: Collection[str] | None = None
    blocked_sellers: Collection[str] = frozenset()
    calls_per_minute: int | None = None
    confirm_above: Decimal | None = None
    confirm: ConfirmCallback | None = None

    def named_tokens(self) -> set[str]:
        """The token labels (not addresses) among the keys of `mint_limits` and `allowed_mints`."""
        return {key for key in [*self.mint_limits, *(self.allowed_mints or ())] if not is_address(key)}

    def resolved(self, labels: ClusterLabels) -> SpendingGuards:
        """These guards with every token label replaced by the mint it names on `labels`' cluster
        (`UnknownTokenLabel` for a label that cluster does not have)."""
        if not self.named_tokens():
            return self

        def mint(key: str) -> str:
            return labels.mint(key, GUARD_TOKEN)

        limits: dict[str, Limits] = {}
        for key, lim in self.mint_limits.items():
            address = mint(key)
            limits[address] = lim.over(limits[address]) if address in limits else lim
        allowed = None if self.allowed_mints is None else frozenset(mint(key) for key in self.allowed_mints)
        return replace(self, mint_limits=limits, allowed_mints=allowed)

    def limits(self, mint: str) -> Limits:
        """The limits that apply to `mint`."""
        default = Limits(self.per_call, self.hourly, self.daily, self.total)
        return self.mint_limits.get(mint, Limits()).over(default)

    def with_max_price(self, max_price: Decimal | None) -> SpendingGuards:
        """These guards with the per-call maximum lowered to `max_price` (e.g. `--max-price`)."""
        if max_price is None or (self.per_call is not None and self.per_call <= max_price):
            return self
        limits = {
            mint: replace(lim, per_call=min(lim.per_call, max_price) if lim.per_call is not None else None)
            for mint, lim in self.mint_limits.items()
        }
        return replace(self, per_call=max_price, mint_limits=limits)

    def check(self, spend: Spend) -> None:
        """The checks that need no ledger: mints, sellers, per-call maximum."""
        if self.allowed_mints is not None and spend.mint not in self.allowed_mints:
            named = f"{spend.label} ({spend.mint})" if spend.label else f"mint {spend.mint}"
            raise MintNotAllowed(f"{named} is not among the allowed mints; nothing was paid")
        parties = {spend.seller} | ({spend.agent} if spend.agent else set())
        blocked = parties & set(self.blocked_sellers)
        if blocked:
            raise SellerNotAllowed(f"seller {sorted(blocked)[0]} is blocked; nothing was paid")
        if self.allowed_sellers is not None and not parties & set(self.allowed_sellers):
            raise SellerNotAllowed(f"seller {spend.seller} is not among the allowed sellers; nothing was paid")
        per_call = self.limits(spend.mint).per_call
        if per_call is not None and spend.amount_atomic > to_atomic(per_call, spend.decimals):
            raise PriceAboveMaximum(
                f"the price {spend.amount} is over the per-call maximum {per_call} {spend.unit}; nothing was paid",
                mint=spend.mint,
                maximum=per_call,
                amount=spend.amount,
            )

    async def confirmed(self, spend: Spend) -> None:
        """Ask the confirm callback when the amount is over `confirm_above`; PaymentDeclined on no."""
        if self.confirm_above is None or spend.amount <= self.confirm_above:
            return
        if self.confirm is None:
            raise PaymentDeclined(
                f"{spend.priced} is over the confirmation threshold {self.confirm_above} "
                "and nothing can confirm it; nothing was paid"
            )
        answer = self.confirm(spend)
        if inspect.isawaitable(answer):
            answer = await answer
        if not answer:
            raise PaymentDeclined(f"payment of {spend.priced} to {spend.seller} declined; nothing was paid")


@dataclass(frozen=True)
class Usage:
    """What a wallet spent of one mint (atomic units) in the last hour, day and ever; calls in the last minute."""

    mint: str
    decimals: int
    hour: int
    day: int
    total: int
    calls_last_minute: int

    def spent(self, window: str) -> int:
        return {"hour": self.hour, "day": self.day, "total": self.total}[window]


@dataclass(frozen=True)
class SentProof:
    """What finds a sent payment on chain without its transaction id (a facilitator's fee-payer signature comes
    first, and the buyer never learns it when it dies): the wallet's own signature in the transaction, and the
    blockhash after whose expiry it can no longer land."""

    wallet_signature: str
    blockhash: str


@dataclass(frozen=True)
class SentSpend:
    """A sent payment whose outcome the ledger does not know (its process died before settling it)."""

    id: int
    wallet: str
    proof: SentProof
    sent_at: float


# What a sent payment became on chain: ("settled" | "released", its transaction id or None), or None while it
# may still land.
Outcome = tuple[str, str | None] | None
PaymentLookup = Callable[[SentSpend], Awaitable[Outcome]]


class SpendLedger:
    """The spend ledger, on a SQLite file (default: the data folder's) or a PostgreSQL database
    (`postgresql://…`): every process (and host) naming the same one shares the budgets. `location` None:
    `$GHOST_X402_LEDGER`, else the data folder's file. `reservation_ttl`: seconds after which a reservation
    never settled or released is reconciled (`GuardedWallet.reconcile`)."""

    def __init__(self, location: Path | str | None = None, reservation_ttl: float = RESERVATION_TTL) -> None:
        self.store = open_store(location)
        self.location = self.store.location
        self.reservation_ttl = reservation_ttl

    def _live(self, now: float) -> str:
        # a reservation never sent stops counting after the TTL
        return f"state IN {COUNTED!r} AND NOT (state = 'reserved' AND created_at < {now - self.reservation_ttl!r})"

    def _usage(self, db: Session, wallet: str, mint: str, decimals: int, now: float) -> Usage:
        spent = self._spent(db, wallet, mint, now, tuple(WINDOWS))
        return Usage(mint, decimals, spent["hour"], spent["day"], spent["total"], self._calls(db, wallet, now))

    def _spent(self, db: Session, wallet: str, mint: str, now: float, windows: tuple[str, ...]) -> dict[str, int]:
        """What counts of the wallet's spending of `mint` in each of `windows`, in one query that reads only the
        rows of the widest (the wallet's rows since then, by the (wallet, created_at) index; every one for
        "total")."""
        if not windows:
            return {}
        spans = [WINDOWS[window] for window in windows]
        sums = ", ".join(
            "COALESCE(SUM(amount), 0)" if span is None else "COALESCE(SUM(CASE WHEN created_at > ? THEN amount END), 0)"
            for span in spans
        )
        params: list[Any] = [now - span for span in spans if span is not None]
        oldest = None if None in spans else max(s for s in spans if s is not None)
        sql = f"SELECT {sums} FROM spends WHERE wallet = ? AND mint = ? AND {self._live(now)}"
        params += [wallet, mint]
        if oldest is not None:
            sql += " AND created_at > ?"
            params.append(now - oldest)
        [row] = db.rows(sql, params)
        return {window: int(value) for window, value in zip(windows, row, strict=True)}

    def _calls(self, db: Session, wallet: str, now: float) -> int:
        return int(
            db.rows(
                f"SELECT COUNT(*) FROM spends WHERE wallet = ? AND created_at > ? AND {self._live(now)}",
                (wallet, now - 60),
            )[0][0]
        )

    def calls_last_minute(self, wallet: str) -> int:
        """Payments of the wallet in the last minute, every mint."""
        with self.store.session() as db:
            return self._calls(db, wallet, time.time())

    def usage(self, wallet: str, mint: str, decimals: int, now: float | None = None) -> Usage:
        with self.store.session() as db:
            return self._usage(db, wallet, mint, decimals, time.time() if now is None else now)

    def mints(self, wallet: str) -> list[tuple[str, int]]:
        """The (mint, decimals) the wallet ever paid with, first used first."""
        with self.store.session() as db:
            rows = db.rows(
                "SELECT mint, MAX(decimals) FROM spends WHERE wallet = ? GROUP BY mint ORDER BY MIN(id)", (wallet,)
            )
            return [(m, int(d)) for m, d in rows]

    def reserve(self, guards: SpendingGuards, spend: Spend, now: float | None = None) -> int:
        """Check the rate and budgets and record the reservation in one write transaction holding the wallet's
        lock (every process, every host of the ledger): check-then-insert is atomic. Its id."""
        now = time.time() if now is None else now
        limits = guards.limits(spend.mint)
        budgeted = tuple(window for window in WINDOWS if limits.budget(window) is not None)
        with self.store.session(lock_wallet=spend.wallet) as db:  # durable: committed to disk before it returns
            spent = self._spent(db, spend.wallet, spend.mint, now, budgeted)
            calls = None if guards.calls_per_minute is None else self._calls(db, spend.wallet, now)
            self._check(guards, spend, spent, calls)
            [(reservation,)] = db.rows(
                "INSERT INTO spends (wallet, mint, decimals, amount, seller, agent, url, state, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'reserved', ?, ?) RETURNING id",
                (
                    spend.wallet,
                    spend.mint,
                    spend.decimals,
                    spend.amount_atomic,
                    spend.seller,
                    spend.agent,
                    spend.url,
                    now,
                    now,
                ),
            )
            return int(reservation)

    @staticmethod
    def _check(guards: SpendingGuards, spend: Spend, spent: Mapping[str, int], calls: int | None) -> None:
        """Refuse `spend` over the rate (`calls` in the last minute) or a budget (`spent`: per window with one)."""
        if guards.calls_per_minute is not None and calls is not None and calls >= guards.calls_per_minute:
            raise RateLimited(
                f"{calls} paid calls in the last minute, the limit is {guards.calls_per_minute}; nothing was paid"
            )
        limits = guards.limits(spend.mint)
        for window, so_far in spent.items():
            budget = limits.budget(window)
            assert budget is not None  # only the windows with a budget are summed
            limit = to_atomic(budget, spend.decimals)
            if so_far + spend.amount_atomic > limit:
                left = from_atomic(max(limit - so_far, 0), spend.decimals)
                raise BudgetExceeded(
                    f"paying {spend.amount} would exceed the {BUDGET_NAMES[window]} "
                    f"budget of {budget} {spend.unit}: {left} left; nothing was paid",
                    mint=spend.mint,
                    window=window,
                    limit=budget,
                    spent=from_atomic(so_far, spend.decimals),
                    amount=spend.amount,
                )

    def _set(self, reservation: int, state: str, signature: str | None = None, only_from: str | None = None) -> None:
        # Not durable (no fsync): no state set here counts more than the one it replaces, so a power cut that
        # undoes it can only leave a payment counting (reserved, sent) until it is reconciled, never uncount one.
        with self.store.session(durable=False) as db:
            db.run(
                "UPDATE spends SET state = ?, signature = COALESCE(?, signature), updated_at = ? WHERE id = ?"
                + ("" if only_from is None else " AND state = ?"),
                (state, signature, time.time(), reservation) + (() if only_from is None else (only_from,)),
            )

    def mark_sent(self, reservation: int, proof: SentProof | None = None) -> None:
        """The signed payment is about to leave the process: it counts from now on, whatever happens. `proof`
        lets a later process find it on chain if this one dies before settling it. Durable before it returns:
        a reservation left `reserved` stops counting after the TTL."""
        with self.store.session() as db:
            db.run(
                "UPDATE spends SET state = 'sent', proof = ?, blockhash = ?, updated_at = ? WHERE id = ?",
                (
                    proof.wallet_signature if proof else None,
                    proof.blockhash if proof else None,
                    time.time(),
                    reservation,
                ),
            )

    def mark_settled(self, reservation: int, signature: str | None) -> None:
        self._set(reservation, "settled", signature)

    def release(self, reservation: int) -> None:
        """The payment provably moved nothing (it failed before it was sent, or its transaction failed):
        it no longer counts."""
        self._set(reservation, "released")

    def expire(self, wallet: str, now: float | None = None) -> list[SentSpend]:
        """The wallet's reservations left past the TTL (their process died): those never sent are marked
        `expired` (nothing left the process); those sent with a proof are returned, to be looked up on chain
        and `resolve`d. A sent one without a proof keeps counting: the guards never assume money came back."""
        now = time.time() if now is None else now
        stale = now - self.reservation_ttl
        with self.store.session(durable=False) as db:  # undone by a power cut: expired again at the next look
            db.run(
                "UPDATE spends SET state = 'expired', updated_at = ? WHERE wallet = ? AND state = 'reserved' "
                "AND created_at < ?",
                (now, wallet, stale),
            )
            rows = db.rows(
                "SELECT id, proof, blockhash, updated_at FROM spends WHERE wallet = ? AND state = 'sent' "
                "AND updated_at < ? AND proof IS NOT NULL ORDER BY id",
                (wallet, stale),
            )
        return [SentSpend(int(i), wallet, SentProof(p, b), float(at)) for i, p, b, at in rows]

    def resolve(self, reservation: int, outcome: str, signature: str | None) -> None:
        """A sent payment's outcome found on chain: `settled` (it landed) or `released` (it never can)."""
        self._set(reservation, outcome, signature, only_from="sent")

    def settled_urls(self, wallet: str, since: float) -> list[str]:
        """The URLs of the wallet's payments settled since `since` (unix time)."""
        with self.store.session() as db:
            rows = db.rows(
                "SELECT DISTINCT url FROM spends WHERE wallet = ? AND state = 'settled' AND updated_at > ? "
                "AND url IS NOT NULL",
                (wallet, since),
            )
            return [row[0] for row in rows]

    def entries(self, wallet: str, limit: int = 20) -> list[dict[str, Any]]:
        """The wallet's latest ledger rows, newest first."""
        with self.store.session() as db:
            return [
                {**row, "amount": int(row["amount"])}
                for row in db.dicts("SELECT * FROM spends WHERE wallet = ? ORDER BY id DESC LIMIT ?", (wallet, limit))
            ]

    def counts(self, wallet: str) -> dict[str, int]:
        """How many of the wallet's rows are in each state."""
        with self.store.session() as db:
            return {
                state: int(n)
                for state, n in db.rows("SELECT state, COUNT(*) FROM spends WHERE wallet = ? GROUP BY state", (wallet,))
            }


class Reservation:
    """One payment reserved in the ledger; the buyer marks it sent, settled or released."""

    def __init__(self, ledger: SpendLedger, reservation_id: int, spend: Spend) -> None:
        self.ledger, self.id, self.spend = ledger, reservation_id, spend

    async def sent(self, proof: SentProof | None = None) -> None:
        """Mark it sent; `proof` (`sent_proof(transaction, wallet)`) lets a later process find it on chain
        if this one dies before settling it."""
        await asyncio.to_thread(self.ledger.mark_sent, self.id, proof)

    async def settled(self, signature: str | None) -> None:
        await asyncio.to_thread(self.ledger.mark_settled, self.id, signature)

    async def release(self) -> None:
        await asyncio.to_thread(self.ledger.release, self.id)


class GuardedWallet:
    """A wallet's guards with its ledger: `await authorize(spend)` passes every check or raises.

    `guards` are the guards in force: those given, with their token labels resolved once `on_cluster` is
    called (a `GhostPayClient` does it before its first payment, and gives `lookup`, which finds on chain what
    became of payments a dead process left sent). `ledger`: a SpendLedger, a SQLite file or a
    `postgresql://…` URL (default: `$GHOST_X402_LEDGER`, else the data folder's file)."""

    def __init__(self, guards: SpendingGuards | None = None, ledger: SpendLedger | Path | str | None = None) -> None:
        self.configured = guards or SpendingGuards()
        self.guards = self.configured
        self.labels: ClusterLabels | None = None
        self.ledger = ledger if isinstance(ledger, SpendLedger) else SpendLedger(ledger)
        self.lookup: PaymentLookup | None = None
        self._reconciled: dict[str, float] = {}  # wallet -> when its stale reservations were last looked at

    def on_cluster(self, labels: ClusterLabels, lookup: PaymentLookup | None = None) -> None:
        """Pay on `labels`' cluster: resolve the guards' token labels there (`UnknownTokenLabel` for one it
        does not have) and name mints by their labels in refusals. `lookup`: what became of a sent payment."""
        if self.labels is None or self.labels.genesis_hash != labels.genesis_hash:
            self.guards = self.configured.resolved(labels)
        self.labels = labels
        self.lookup = lookup or self.lookup

    async def reconcile(self, wallet: str) -> list[tuple[int, str]]:
        """Reconcile the wallet's reservations left past the ledger's TTL by a process that died: never sent →
        expired; sent → settled if its payment landed, released if it failed or its blockhash expired without
        it landing (still counted while it may land, or when nothing can look it up). The (id, outcome) of
        the sent ones resolved."""
        self._reconciled[wallet] = time.time()
        stale = await asyncio.to_thread(self.ledger.expire, wallet)
        resolved: list[tuple[int, str]] = []
        lookup = self.lookup
        if lookup is None:  # nothing can look them up: they keep counting
            return resolved
        for sent in stale:
            try:
                outcome = await lookup(sent)
            except Exception as exc:  # noqa: BLE001 - the RPC failed: it keeps counting, looked up next time
                log.warning("looking up sent payment %s failed: %s", sent.proof.wallet_signature, exc)
                continue
            if outcome is not None:
                await asyncio.to_thread(self.ledger.resolve, sent.id, *outcome)
                resolved.append((sent.id, outcome[0]))
        return resolved

    async def authorize(self, spend: Spend, max_price: Decimal | None = None) -> Reservation:
        """Every guard, in order; the reservation to mark sent/settled, or release if the payment fails
        before it is sent. `max_price` lowers the per-call maximum for this payment."""
        if self.labels is not None and spend.label is None:
            spend = replace(spend, label=self.labels.label(spend.mint))
        guards = self.guards.with_max_price(max_price)
        guards.check(spend)
        await guards.confirmed(spend)
        if time.time() - self._reconciled.get(spend.wallet, 0.0) >= RECONCILE_INTERVAL:
            await self.reconcile(spend.wallet)
        reservation_id = await asyncio.to_thread(self.ledger.reserve, guards, spend)
        return Reservation(self.ledger, reservation_id, spend)


def sent_proof(transaction: Any, wallet: Any) -> SentProof | None:
    """The SentProof of a signed transaction (a solders Transaction, its bytes or base64): `wallet`'s signature
    in it and its blockhash; None when `wallet` has not signed it."""
    from base64 import b64decode

    from solders.pubkey import Pubkey
    from solders.transaction import VersionedTransaction

    if isinstance(transaction, str):
        transaction = b64decode(transaction)
    if isinstance(transaction, bytes):
        transaction = VersionedTransaction.from_bytes(transaction)  # legacy or v0
    message = transaction.message
    signers = list(message.account_keys[: message.header.num_required_signatures])
    key = Pubkey.from_string(str(wallet))
    if key not in signers:
        return None
    return SentProof(str(transaction.signatures[signers.index(key)]), str(message.recent_blockhash))


@dataclass(frozen=True)
class WindowSpending:
    """One budget window of one mint, in whole tokens: spent, the budget (None: none) and what is left."""

    spent: Decimal
    budget: Decimal | None
    remaining: Decimal | None


@dataclass(frozen=True)
class MintSpending:
    """What a wallet spent of one mint and what its guards leave, per window (hour, day, total)."""

    mint: str
    decimals: int
    per_call: Decimal | None
    windows: dict[str, WindowSpending]


def spending_report(guarded: GuardedWallet, wallet: str) -> list[MintSpending]:
    """Per mint the wallet ever paid with (first used first): spent, budget and remaining per window."""
    report = []
    for mint, decimals in guarded.ledger.mints(wallet):
        usage = guarded.ledger.usage(wallet, mint, decimals)
        limits = guarded.guards.limits(mint)
        windows = {}
        for window in WINDOWS:
            budget = limits.budget(window)
            spent = from_atomic(usage.spent(window), decimals)
            windows[window] = WindowSpending(spent, budget, None if budget is None else max(budget - spent, Decimal(0)))
        report.append(MintSpending(mint, decimals, limits.per_call, windows))
    return report


def has_budget(guards: SpendingGuards) -> bool:
    """Whether every payment meets a budget: a default hourly, daily or total one, or allowed mints that
    each have one."""
    if any(b is not None for b in (guards.hourly, guards.daily, guards.total)):
        return True
    return guards.allowed_mints is not None and all(
        any(b is not None for b in (guards.limits(m).hourly, guards.limits(m).daily, guards.limits(m).total))
        for m in guards.allowed_mints
    )
