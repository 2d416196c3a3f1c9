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

The ledger is SQLite in the data folder (`ghost path`). A payment is *reserved* in the same
write transaction (`BEGIN IMMEDIATE`) that checks the budgets, so 50 concurrent calls against a
budget for 10 reserve exactly 10, in one process or several. A reservation becomes *sent* just
before the signed payment leaves the process, and *settled* when the seller's answer carries the
settlement; it is *released* (no longer counted) only when the payment provably moved nothing: it
failed before it was sent, or (`pay_agent`, which sends itself) its transaction failed.
A sent payment whose outcome is unknown keeps counting: the guards never assume money came back.
A reservation never marked sent (the process died before sending) stops counting after
`RESERVATION_TTL` seconds.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from ghostpay.exceptions import (
    BudgetExceeded,
    MintNotAllowed,
    PaymentDeclined,
    PriceAboveMaximum,
    RateLimited,
    SellerNotAllowed,
)
from ghostpay.paths import data_dir, private_file
from ghostpay.token_labels import ClusterLabels, is_address
from ghostpay.tokens import from_atomic, to_atomic

LEDGER_FILE = "x402-spending.sqlite3"
RESERVATION_TTL = 300.0  # seconds a reservation counts without being sent
WINDOWS = {"hour": 3600.0, "day": 86400.0, "total": None}
BUDGET_NAMES = {"hour": "hourly", "day": "daily", "total": "total"}
COUNTED = ("reserved", "sent", "settled")
GUARD_TOKEN = "the spending guards' token"  # what names a label in UnknownTokenLabel raised by `resolved`


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


class SpendLedger:
    """The spend ledger: one SQLite file shared by every process of the user (WAL, immediate writes)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else data_dir() / LEDGER_FILE
        private_file(self.path)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript("""
                CREATE TABLE IF NOT EXISTS spends (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    wallet TEXT NOT NULL, mint TEXT NOT NULL, decimals INTEGER NOT NULL,
                    amount INTEGER NOT NULL, seller TEXT NOT NULL, agent TEXT, url TEXT,
                    state TEXT NOT NULL, signature TEXT,
                    created_at REAL NOT NULL, updated_at REAL NOT NULL);
                CREATE INDEX IF NOT EXISTS spends_wallet_time ON spends (wallet, created_at);
            """)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    @staticmethod
    def _live(now: float) -> str:
        # a reservation never sent stops counting after RESERVATION_TTL
        return f"state IN {COUNTED!r} AND NOT (state = 'reserved' AND created_at < {now - RESERVATION_TTL!r})"

    def _usage(self, db: sqlite3.Connection, wallet: str, mint: str, decimals: int, now: float) -> Usage:
        live = self._live(now)
        hour, day, total = (
            db.execute(
                f"SELECT COALESCE(SUM(amount), 0) FROM spends WHERE wallet = ? AND mint = ? AND {live}"
                + ("" if span is None else " AND created_at > ?"),
                (wallet, mint) + (() if span is None else (now - span,)),
            ).fetchone()[0]
            for span in WINDOWS.values()
        )
        return Usage(mint, decimals, hour, day, total, self._calls(db, wallet, now))

    def _calls(self, db: sqlite3.Connection, wallet: str, now: float) -> int:
        calls: int = db.execute(
            f"SELECT COUNT(*) FROM spends WHERE wallet = ? AND created_at > ? AND {self._live(now)}", (wallet, now - 60)
        ).fetchone()[0]
        return calls

    def calls_last_minute(self, wallet: str) -> int:
        """Payments of the wallet in the last minute, every mint."""
        with closing(self._connect()) as db:
            return self._calls(db, wallet, time.time())

    def usage(self, wallet: str, mint: str, decimals: int, now: float | None = None) -> Usage:
        with closing(self._connect()) as db:
            return self._usage(db, wallet, mint, decimals, time.time() if now is None else now)

    def mints(self, wallet: str) -> list[tuple[str, int]]:
        """The (mint, decimals) the wallet ever paid with, first used first."""
        with closing(self._connect()) as db:
            return [
                (m, d)
                for m, d in db.execute(
                    "SELECT mint, MAX(decimals) FROM spends WHERE wallet = ? GROUP BY mint ORDER BY MIN(id)", (wallet,)
                )
            ]

    def reserve(self, guards: SpendingGuards, spend: Spend, now: float | None = None) -> int:
        """Check the rate and budgets and record the reservation in one write transaction; its id."""
        now = time.time() if now is None else now
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes: check-then-insert is atomic
            try:
                usage = self._usage(db, spend.wallet, spend.mint, spend.decimals, now)
                self._check(guards, spend, usage)
                cursor = db.execute(
                    "INSERT INTO spends (wallet, mint, decimals, amount, seller, agent, url, state, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'reserved', ?, ?)",
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
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return int(cursor.lastrowid or 0)

    @staticmethod
    def _check(guards: SpendingGuards, spend: Spend, usage: Usage) -> None:
        if guards.calls_per_minute is not None and usage.calls_last_minute >= guards.calls_per_minute:
            raise RateLimited(
                f"{usage.calls_last_minute} paid calls in the last minute, the limit is "
                f"{guards.calls_per_minute}; nothing was paid"
            )
        limits = guards.limits(spend.mint)
        for window in WINDOWS:
            budget = limits.budget(window)
            if budget is None:
                continue
            limit = to_atomic(budget, spend.decimals)
            spent = usage.spent(window)
            if spent + spend.amount_atomic > limit:
                left = from_atomic(max(limit - spent, 0), spend.decimals)
                raise BudgetExceeded(
                    f"paying {spend.amount} would exceed the {BUDGET_NAMES[window]} "
                    f"budget of {budget} {spend.unit}: {left} left; nothing was paid",
                    mint=spend.mint,
                    window=window,
                    limit=budget,
                    spent=from_atomic(spent, spend.decimals),
                    amount=spend.amount,
                )

    def _set(self, reservation: int, state: str, signature: str | None = None) -> None:
        with closing(self._connect()) as db:
            db.execute(
                "UPDATE spends SET state = ?, signature = COALESCE(?, signature), updated_at = ? WHERE id = ?",
                (state, signature, time.time(), reservation),
            )

    def mark_sent(self, reservation: int) -> None:
        """The signed payment is about to leave the process: it counts from now on, whatever happens."""
        self._set(reservation, "sent")

    def mark_settled(self, reservation: int, signature: str | None) -> None:
        self._set(reservation, "settled", signature)

    def release(self, reservation: int) -> None:
        """The payment provably moved nothing (it failed before it was sent, or its transaction failed):
        it no longer counts."""
        self._set(reservation, "released")

    def settled_urls(self, wallet: str, since: float) -> list[str]:
        """The URLs of the wallet's payments settled since `since` (unix time)."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT DISTINCT url FROM spends WHERE wallet = ? AND state = 'settled' AND updated_at > ? "
                "AND url IS NOT NULL",
                (wallet, since),
            )
            return [row[0] for row in rows]

    def entries(self, wallet: str, limit: int = 20) -> Iterator[sqlite3.Row]:
        """The wallet's latest ledger rows, newest first."""
        with closing(self._connect()) as db:
            db.row_factory = sqlite3.Row
            yield from db.execute("SELECT * FROM spends WHERE wallet = ? ORDER BY id DESC LIMIT ?", (wallet, limit))


class Reservation:
    """One payment reserved in the ledger; the buyer marks it sent, settled or released."""

    def __init__(self, ledger: SpendLedger, reservation_id: int, spend: Spend) -> None:
        self.ledger, self.id, self.spend = ledger, reservation_id, spend

    async def sent(self) -> None:
        await asyncio.to_thread(self.ledger.mark_sent, self.id)

    async def settled(self, signature: str | None) -> None:
        await asyncio.to_thread(self.ledger.mark_settled, self.id, signature)

    async def release(self) -> None:
        await asyncio.to_thread(self.ledger.release, self.id)


class GuardedWallet:
    """A wallet's guards with its ledger: `await authorize(spend)` passes every check or raises.

    `guards` are the guards in force: those given, with their token labels resolved once `on_cluster` is
    called (a `GhostPayClient` does it before its first payment)."""

    def __init__(self, guards: SpendingGuards | None = None, ledger: SpendLedger | Path | str | None = None) -> None:
        self.configured = guards or SpendingGuards()
        self.guards = self.configured
        self.labels: ClusterLabels | None = None
        self.ledger = ledger if isinstance(ledger, SpendLedger) else SpendLedger(ledger)

    def on_cluster(self, labels: ClusterLabels) -> None:
        """Pay on `labels`' cluster: resolve the guards' token labels there (`UnknownTokenLabel` for one it
        does not have) and name mints by their labels in refusals."""
        if self.labels is None or self.labels.genesis_hash != labels.genesis_hash:
            self.guards = self.configured.resolved(labels)
        self.labels = labels

    async def authorize(self, spend: Spend, max_price: Decimal | None = None) -> Reservation:
        """Every guard, in order; the reservation to mark sent/settled, or release if the payment fails
        before it is sent. `max_price` lowers the per-call maximum for this payment."""
        if self.labels is not None and spend.label is None:
            spend = replace(spend, label=self.labels.label(spend.mint))
        guards = self.guards.with_max_price(max_price)
        guards.check(spend)
        await guards.confirmed(spend)
        reservation_id = await asyncio.to_thread(self.ledger.reserve, guards, spend)
        return Reservation(self.ledger, reservation_id, spend)


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
