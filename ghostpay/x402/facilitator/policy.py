"""What the facilitator's fee payer agrees to pay for, and for whom: its operator's policy.

Every check refuses by default and by name, before the official scheme sees the payment:

- the fee, as a validator charges it (5,000 lamports a signature, precompile signatures included,
  plus CU limit × CU price / 10^6 rounded up), at most `max_fee_lamports` (ghostpay_fee_too_high);
  the CU limit at most `max_compute_units`, what the payment layout needs
  (ghostpay_compute_units_too_high); and where the asset's value is known (the network's USD
  stablecoins) the fee, SOL valued at `sol_usd`, at most `max_fee_share` of the payment's value
  (ghostpay_fee_share_too_high);
- the asset on the allow-list (ghostpay_asset_not_allowed), the amount at least its minimum
  (ghostpay_amount_below_minimum);
- per seller key: receipt rent fronted only when the key allows it, up to its cap of rent not yet
  swept back (ghostpay_rent_outstanding_cap), settles per minute (ghostpay_settle_quota_exceeded) and
  fee lamports in any 24 hours (ghostpay_fee_quota_exceeded), refused when that store cannot be read
  or written (ghostpay_quota_store_unavailable).

The fee payer's whole outflow for a payment is its fee plus the rent it fronts: the fee-payer guard
lets its key appear in no other instruction. Quotas count a settle when it is admitted (before the
send) and give it back only when nothing was sent; fronted rent is given back when the sweep closes
the receipt, or when the settle failed.

    >>> FeeEstimate(signatures=2, compute_unit_limit=1_400_000, compute_unit_price=5_000_000).lamports
    7010000
    >>> FeeEstimate(signatures=2, compute_unit_limit=20_000, compute_unit_price=1).lamports
    10001
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from x402.mechanisms.svm.constants import (
    COMPUTE_BUDGET_PROGRAM_ADDRESS,
    ERR_SETTLEMENT_PENDING,
    TOKEN_2022_PROGRAM_ADDRESS,
    TOKEN_PROGRAM_ADDRESS,
)
from x402.schemas import SettleResponse

from ghostpay.exceptions import GhostPayError, InvalidArgument
from ghostpay.token_labels import test_mints
from ghostpay.x402.facilitator.database import Database, DatabaseError
from ghostpay.x402.facilitator.defaults import (
    DEFAULT_MAX_COMPUTE_UNITS,
    DEFAULT_MAX_FEE_LAMPORTS,
    DEFAULT_MAX_FEE_SHARE,
    DEFAULT_SOL_USD,
)
from ghostpay.x402.facilitator.keys import Caller, SellerKey
from ghostpay.x402.networks import STABLECOINS

log = logging.getLogger(__name__)

ERR_FEE_TOO_HIGH = "ghostpay_fee_too_high"
ERR_COMPUTE_UNITS_TOO_HIGH = "ghostpay_compute_units_too_high"
ERR_FEE_SHARE_TOO_HIGH = "ghostpay_fee_share_too_high"
ERR_ASSET_NOT_ALLOWED = "ghostpay_asset_not_allowed"
ERR_AMOUNT_BELOW_MINIMUM = "ghostpay_amount_below_minimum"
ERR_RENT_CAP = "ghostpay_rent_outstanding_cap"
ERR_SETTLE_QUOTA = "ghostpay_settle_quota_exceeded"
ERR_FEE_QUOTA = "ghostpay_fee_quota_exceeded"
ERR_QUOTA_STORE_UNAVAILABLE = "ghostpay_quota_store_unavailable"

# What a validator charges (solana-fee): per signature, and priority = ceil(limit × price / 10^6).
LAMPORTS_PER_SIGNATURE = 5_000
MICRO_LAMPORTS_PER_LAMPORT = 1_000_000
MAX_COMPUTE_UNIT_LIMIT = 1_400_000
DEFAULT_INSTRUCTION_COMPUTE_UNITS = 200_000  # per instruction when no SetComputeUnitLimit says otherwise
SET_COMPUTE_UNIT_LIMIT, SET_COMPUTE_UNIT_PRICE = 2, 3  # ComputeBudget instruction tags
PRECOMPILES = {
    Pubkey.from_string(a)
    for a in (
        "Ed25519SigVerify111111111111111111111111111",
        "KeccakSecp256k11111111111111111111111111111",
        "Secp256r1SigVerify1111111111111111111111111",
    )
}
COMPUTE_BUDGET = Pubkey.from_string(COMPUTE_BUDGET_PROGRAM_ADDRESS)
TOKEN_PROGRAMS = {Pubkey.from_string(TOKEN_PROGRAM_ADDRESS), Pubkey.from_string(TOKEN_2022_PROGRAM_ADDRESS)}
TRANSFER_CHECKED = 12
TRANSFER_INDEX = 2  # the official layout: [limit, price, TransferChecked, Memo, ...]
TRANSFER_MINT, TRANSFER_DATA_LEN = 1, 10  # accounts [source, mint, destination, authority]; tag, u64, u8 decimals
LAMPORTS_PER_SOL = 1_000_000_000

ANY_ASSET = "any"
DEFAULT_MIN_AMOUNT = 1  # a payment of 0 is never settled by default
RATE_WINDOW_SECONDS, QUOTA_DAY_SECONDS = 60.0, 86_400.0
PRUNE_INTERVAL_SECONDS = 60.0
STALE_RESERVATION_SECONDS = 600.0  # a fronted account not on chain this long after its settle never will be


class QuotaStoreUnavailable(GhostPayError):
    """The quota store could not be read or written: the facilitator refuses (fails closed)."""


@dataclass(frozen=True)
class FeeEstimate:
    """A transaction's fee as a validator charges it."""

    signatures: int  # the transaction's and its precompiles'
    compute_unit_limit: int
    compute_unit_price: int  # µlamports per CU

    @property
    def lamports(self) -> int:
        priority = -(-self.compute_unit_limit * self.compute_unit_price // MICRO_LAMPORTS_PER_LAMPORT)
        return self.signatures * LAMPORTS_PER_SIGNATURE + priority


def fee_of(tx: VersionedTransaction) -> FeeEstimate:
    """The fee `tx` costs its fee payer. A compute-budget instruction that cannot be read counts as the
    worst it could be (the limit at its maximum, the price at u64's): it is refused, never underpriced."""
    message = tx.message
    keys = message.account_keys
    signatures, limit, price, others = message.header.num_required_signatures, None, 0, 0
    for ix in message.instructions:
        program, data = keys[ix.program_id_index], bytes(ix.data)
        if program == COMPUTE_BUDGET and data[:1] == bytes([SET_COMPUTE_UNIT_LIMIT]):
            limit = int.from_bytes(data[1:5], "little") if len(data) == 5 else MAX_COMPUTE_UNIT_LIMIT
        elif program == COMPUTE_BUDGET and data[:1] == bytes([SET_COMPUTE_UNIT_PRICE]):
            price = int.from_bytes(data[1:9], "little") if len(data) == 9 else 2**64 - 1
        elif program != COMPUTE_BUDGET:
            others += 1
            if program in PRECOMPILES:
                signatures += data[0] if data else 0
    if limit is None:
        limit = DEFAULT_INSTRUCTION_COMPUTE_UNITS * others
    return FeeEstimate(signatures, min(limit, MAX_COMPUTE_UNIT_LIMIT), price)


@dataclass(frozen=True)
class Transfer:
    """The payment's TransferChecked: what moves, in which mint (the token program checks the decimals)."""

    mint: str
    amount: int
    decimals: int


def transfer_of(tx: VersionedTransaction) -> Transfer | None:
    """The TransferChecked where the exact layout has it, or None."""
    message = tx.message
    if len(message.instructions) <= TRANSFER_INDEX:
        return None
    ix = message.instructions[TRANSFER_INDEX]
    data, accounts = bytes(ix.data), bytes(ix.accounts)
    if (
        message.account_keys[ix.program_id_index] not in TOKEN_PROGRAMS
        or len(data) != TRANSFER_DATA_LEN
        or data[0] != TRANSFER_CHECKED
        or len(accounts) <= TRANSFER_MINT
    ):
        return None
    return Transfer(str(message.account_keys[accounts[TRANSFER_MINT]]), int.from_bytes(data[1:9], "little"), data[9])


# assets ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetRule:
    """A mint the facilitator settles (or ANY_ASSET), the least amount it settles of it (atomic units),
    and where the rule comes from (--asset, a stablecoin default, a test mint)."""

    mint: str
    min_amount: int = DEFAULT_MIN_AMOUNT
    source: str = "--asset"


def parse_asset(text: str) -> AssetRule:
    """`MINT[=MIN_AMOUNT]` (atomic units) or `any[=MIN_AMOUNT]`.

    >>> parse_asset("4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU=10000").min_amount
    10000
    >>> parse_asset("any").mint
    'any'
    """
    mint, sep, minimum = text.strip().partition("=")
    if mint != ANY_ASSET:
        try:
            Pubkey.from_string(mint)
        except ValueError:
            raise InvalidArgument(f"not a mint address (or 'any'): {mint!r}") from None
    if not sep:
        return AssetRule(mint)
    if not minimum.isdigit():
        raise InvalidArgument(f"the minimum amount of {mint} is a whole number of atomic units, not {minimum!r}")
    return AssetRule(mint, int(minimum))


class LabelledMints:
    """The test mints labelled on this cluster (`ghost test-mint --symbol`, in the token label store at
    `path`, for the cluster of `genesis_hash`), read again whenever the file changes, so a mint made after
    the facilitator started is settled too."""

    def __init__(self, path: Path, genesis_hash: str) -> None:
        self.path = path
        self.genesis_hash = genesis_hash
        self._stamp: tuple[int, int] | None = None
        self._mints: dict[str, str] = {}
        self._lock = threading.Lock()

    def mints(self) -> dict[str, str]:
        """mint address -> label."""
        try:
            stat = self.path.stat()
        except OSError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    labelled = test_mints(self.genesis_hash, self.path)
                except (OSError, ValueError) as exc:
                    log.warning("cannot read the test mints in %s: %s", self.path, exc)
                    labelled = {}
                self._mints = {mint: label for label, mint in labelled.items()}
                self._stamp = stamp
            return self._mints


class AssetAllowList:
    """The mints the facilitator settles, each with its minimum amount; the USD stablecoins' value is known."""

    def __init__(
        self, rules: Sequence[AssetRule], stablecoins: Iterable[str] = (), test_mints: LabelledMints | None = None
    ) -> None:
        self.rules = {r.mint: r for r in rules}
        self.stablecoins = frozenset(stablecoins)
        self.test_mints = test_mints

    @classmethod
    def for_network(
        cls, network: str, rules: Sequence[AssetRule] = (), test_mints: LabelledMints | None = None
    ) -> AssetAllowList:
        """`rules` when given; else the network's stablecoins and, on a localnet, `test_mints`."""
        stablecoins = STABLECOINS.get(network, {})
        if rules:
            return cls(rules, stablecoins)
        return cls(
            [AssetRule(m, source=f"stablecoin {label}") for m, label in stablecoins.items()], stablecoins, test_mints
        )

    def rule(self, mint: str) -> AssetRule | None:
        found = self.rules.get(mint) or self.rules.get(ANY_ASSET)
        if found is None and self.test_mints is not None and mint in self.test_mints.mints():
            found = AssetRule(mint, source="test mint")
        return found

    def describe(self) -> list[dict[str, Any]]:
        rules = list(self.rules.values())
        if self.test_mints is not None:
            rules += [
                AssetRule(m, source=f"test mint {label}")
                for m, label in self.test_mints.mints().items()
                if m not in self.rules
            ]
        return [
            {"mint": r.mint, "minAmount": r.min_amount, "source": r.source, "usdStablecoin": r.mint in self.stablecoins}
            for r in rules
        ]


# fees --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeeLimits:
    """What one payment's fee may cost the fee payer."""

    max_fee_lamports: int = DEFAULT_MAX_FEE_LAMPORTS
    max_compute_units: int = DEFAULT_MAX_COMPUTE_UNITS
    max_fee_share: Decimal = DEFAULT_MAX_FEE_SHARE  # of a known-value payment's value
    sol_usd: Decimal = DEFAULT_SOL_USD

    def refusal(self, fee: FeeEstimate, transfer: Transfer, usd_valued: bool) -> tuple[str, str] | None:
        if fee.compute_unit_limit > self.max_compute_units:
            return (
                ERR_COMPUTE_UNITS_TOO_HIGH,
                f"a compute-unit limit of {fee.compute_unit_limit:,} is over the "
                f"{self.max_compute_units:,} a payment needs here",
            )
        if fee.lamports > self.max_fee_lamports:
            return (
                ERR_FEE_TOO_HIGH,
                f"the transaction's fee, {fee.lamports:,} lamports, is over this "
                f"facilitator's {self.max_fee_lamports:,}",
            )
        if usd_valued:
            fee_usd = Decimal(fee.lamports) / LAMPORTS_PER_SOL * self.sol_usd
            value_usd = Decimal(transfer.amount).scaleb(-transfer.decimals)
            if fee_usd > self.max_fee_share * value_usd:
                return (
                    ERR_FEE_SHARE_TOO_HIGH,
                    f"the fee (${fee_usd:.6f} at ${self.sol_usd}/SOL) is over "
                    f"{self.max_fee_share} × the payment's ${value_usd}",
                )
        return None


# per-seller quotas and rent ----------------------------------------------------------------------------

QUOTA_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS seller_spend (
    id            {AUTO_ID},
    key_id        TEXT NOT NULL,
    at            DOUBLE PRECISION NOT NULL,
    fee_lamports  BIGINT NOT NULL,
    rent_lamports BIGINT NOT NULL,   -- rent fronted and not yet back (0 once swept, closed or never paid)
    receipt       TEXT,              -- the account fronted: a pair's PayerStats (a legacy receipt before)
    confirmed     INTEGER NOT NULL DEFAULT 0  -- its settle succeeded: the account exists, no need to look
)""",
    "CREATE INDEX IF NOT EXISTS seller_spend_by_key ON seller_spend (key_id, at)",
    "CREATE INDEX IF NOT EXISTS seller_spend_by_receipt ON seller_spend (receipt)",
    "CREATE INDEX IF NOT EXISTS seller_spend_rent ON seller_spend (key_id) WHERE rent_lamports > 0",
)


@dataclass(frozen=True)
class Usage:
    settles_last_minute: int
    fee_lamports_last_day: int
    rent_outstanding: int

    def document(self) -> dict[str, int]:
        return {
            "settlesLastMinute": self.settles_last_minute,
            "feeLamportsLast24h": self.fee_lamports_last_day,
            "rentOutstandingLamports": self.rent_outstanding,
        }


class QuotaStore:
    """Each seller's admitted settles (fee, fronted rent, receipt) in the facilitator's database (the key store's
    connection): a seller's quota holds across the replicas sharing a PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.schema(QUOTA_SCHEMA)
        if "confirmed" not in db.columns(
            "seller_spend"
        ):  # a store made before: its reservations are looked up once more
            db.run("ALTER TABLE seller_spend ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 0")
        self._pruned_at = 0.0

    def usage(self, key_id: str, now: float | None = None) -> Usage:
        return self._usage(key_id, time.time() if now is None else now)

    def _usage(self, key_id: str, now: float) -> Usage:
        # Three index range reads (each touches only the rows it counts), not a scan of the seller's history:
        # this runs on every verify and settle of a keyed seller. One statement: one round trip.
        minute, day, rent = self._read(
            "SELECT (SELECT COUNT(*) FROM seller_spend WHERE key_id = ? AND at > ?), "
            "(SELECT COALESCE(SUM(fee_lamports), 0) FROM seller_spend WHERE key_id = ? AND at > ?), "
            "(SELECT COALESCE(SUM(rent_lamports), 0) FROM seller_spend WHERE key_id = ? AND rent_lamports > 0)",
            (key_id, now - RATE_WINDOW_SECONDS, key_id, now - QUOTA_DAY_SECONDS, key_id),
        )[0]
        return Usage(int(minute), int(day), int(rent))

    def admit(
        self, seller: SellerKey, fee: int, rent: int, receipt: str | None, *, reserve: bool
    ) -> tuple[str, str] | int | None:
        """A refusal (reason, message) when this settle would exceed the seller's terms; else, with
        `reserve`, the id of the spend now counted (None without). QuotaStoreUnavailable when the store fails."""
        now = time.time()
        if not reserve:
            return _over_terms(seller, self._usage(seller.key_id, now), fee, rent)
        try:
            # The check and the insert as one, across processes too (a lock per seller on PostgreSQL).
            with self._db.transaction(f"seller_spend:{seller.key_id}"):
                refused = _over_terms(seller, self._usage(seller.key_id, now), fee, rent)
                if refused is not None:
                    return refused
                spend = self._db.rows(
                    "INSERT INTO seller_spend (key_id, at, fee_lamports, rent_lamports, receipt) "
                    "VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (seller.key_id, now, fee, rent, receipt),
                )[0][0]
                if now - self._pruned_at > PRUNE_INTERVAL_SECONDS:  # rows no quota or cap reads any more
                    self._db.run(
                        "DELETE FROM seller_spend WHERE at < ? AND rent_lamports = 0", (now - QUOTA_DAY_SECONDS,)
                    )
                    self._pruned_at = now
                return int(spend)
        except DatabaseError as exc:
            raise QuotaStoreUnavailable(str(exc)) from None

    def release(self, spend: int) -> None:
        """Nothing was sent: neither the fee nor the rent was spent."""
        self._db.run("DELETE FROM seller_spend WHERE id = ?", (spend,))

    def confirm(self, spend: int) -> None:
        """The settle succeeded: the fronted account was made (or already existed); no need to look it up."""
        self._db.run("UPDATE seller_spend SET confirmed = 1 WHERE id = ?", (spend,))

    def release_rent(self, spend: int) -> None:
        """The transaction failed or never landed: no receipt, no rent paid."""
        self._db.run("UPDATE seller_spend SET rent_lamports = 0 WHERE id = ?", (spend,))

    def reclaimed(self, receipts: Sequence[str]) -> None:
        """The sweep closed these receipts: their rent is back with the fee payer."""
        for receipt in receipts:
            self._db.run("UPDATE seller_spend SET rent_lamports = 0 WHERE receipt = ?", (receipt,))

    def outstanding(self, key_id: str) -> list[tuple[int, str]]:
        """(spend, account) of every account whose rent is outstanding for this seller."""
        return [
            (int(spend), account)
            for spend, account in self._read(
                "SELECT id, receipt FROM seller_spend WHERE key_id = ? AND rent_lamports > 0 AND receipt IS NOT NULL",
                (key_id,),
            )
        ]

    def stale(self, now: float | None = None) -> list[tuple[int, str]]:
        """(spend, receipt) of rent still outstanding STALE_RESERVATION_SECONDS after the settle."""
        cutoff = (time.time() if now is None else now) - STALE_RESERVATION_SECONDS
        return [
            (int(spend), receipt)
            for spend, receipt in self._db.rows(
                "SELECT id, receipt FROM seller_spend WHERE rent_lamports > 0 AND confirmed = 0 AND at < ?", (cutoff,)
            )
        ]

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._db.rows(sql, args)
        except DatabaseError as exc:
            raise QuotaStoreUnavailable(str(exc)) from None


def _over_terms(seller: SellerKey, usage: Usage, fee: int, rent: int) -> tuple[str, str] | None:
    if usage.settles_last_minute >= seller.settles_per_minute:
        return (
            ERR_SETTLE_QUOTA,
            f"seller {seller.name!r} settled {usage.settles_last_minute} payments in the last minute, its quota",
        )
    if usage.fee_lamports_last_day + fee > seller.fee_lamports_per_day:
        return (
            ERR_FEE_QUOTA,
            f"seller {seller.name!r}'s fees in the last 24 h ({usage.fee_lamports_last_day:,} "
            f"lamports) and this one's ({fee:,}) exceed its quota of {seller.fee_lamports_per_day:,}",
        )
    if rent and usage.rent_outstanding + rent > seller.max_rent_outstanding:
        return (
            ERR_RENT_CAP,
            f"seller {seller.name!r} has {usage.rent_outstanding:,} lamports of fronted rent "
            f"outstanding; this PayerStats' {rent:,} would pass its cap of "
            f"{seller.max_rent_outstanding:,}",
        )
    return None


# who is asking, for the guards deep inside the official scheme -----------------------------------------


@dataclass
class Ticket:
    """One verify or settle: who asked, and the spend its settle reserved."""

    caller: Caller
    spend: int | None = None
    rent: int = 0  # lamports of rent the reserved spend fronts


_ticket: ContextVar[Ticket | None] = ContextVar("ghostpay_facilitator_ticket", default=None)


@contextmanager
def serving(caller: Caller) -> Iterator[Ticket]:
    """Runs a verify or settle on behalf of `caller` (in this thread): the guards read it with `current()`."""
    ticket = Ticket(caller)
    token = _ticket.set(ticket)
    try:
        yield ticket
    finally:
        _ticket.reset(token)


def current(default: Caller) -> Ticket:
    """The ticket of the verify or settle running here (an in-process call has none: `default` asks)."""
    return _ticket.get() or Ticket(default)


class RefusalCounter:
    """How many verifies, settles and requests were refused, by reason (for /health)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))


@dataclass
class PaymentPolicy:
    """The fee limits, the asset allow-list and the sellers' quotas, applied to one payment at a time."""

    limits: FeeLimits
    assets: AssetAllowList
    quotas: QuotaStore
    receipt_rent: Callable[[], int]  # lamports the fee payer fronts for one account (a pair's PayerStats)
    exists: Callable[[list[str]], list[bool]] | None = None  # which fronted accounts are still open on chain
    refusals: RefusalCounter = field(default_factory=RefusalCounter)

    def payment_refusal(self, tx: VersionedTransaction) -> tuple[str, str] | None:
        """Fee, compute units, asset, minimum amount, fee share: whoever asks."""
        transfer = transfer_of(tx)
        if transfer is None:
            return ERR_ASSET_NOT_ALLOWED, "no TransferChecked where an exact payment has it: nothing to settle"
        rule = self.assets.rule(transfer.mint)
        if rule is None:
            return (
                ERR_ASSET_NOT_ALLOWED,
                f"this facilitator does not settle payments in {transfer.mint} (GET /policy lists the assets it does)",
            )
        if transfer.amount < rule.min_amount:
            return (
                ERR_AMOUNT_BELOW_MINIMUM,
                f"{transfer.amount} atomic units of {transfer.mint} is under its minimum of {rule.min_amount}",
            )
        return self.limits.refusal(fee_of(tx), transfer, transfer.mint in self.assets.stablecoins)

    def seller_refusal(
        self, tx: VersionedTransaction, receipt: str | None, ticket: Ticket, *, settle: bool
    ) -> tuple[str, str] | None:
        """The seller's quotas and rent cap; a settle admitted reserves its spend on `ticket`."""
        seller = ticket.caller.seller
        if seller is None:  # the operator: loopback without keys, or in-process
            return None
        rent = self.receipt_rent() if receipt is not None else 0
        try:
            admitted = self.quotas.admit(seller, fee_of(tx).lamports, rent, receipt, reserve=settle)
            if isinstance(admitted, tuple) and admitted[0] == ERR_RENT_CAP and self._closed_since(seller):
                admitted = self.quotas.admit(seller, fee_of(tx).lamports, rent, receipt, reserve=settle)
        except QuotaStoreUnavailable as exc:
            return ERR_QUOTA_STORE_UNAVAILABLE, f"the quota store is unavailable ({exc}); refusing until it is back"
        if isinstance(admitted, tuple):
            return admitted
        ticket.spend, ticket.rent = admitted, rent
        return None

    def _closed_since(self, seller: SellerKey) -> bool:
        """At the seller's rent cap: whether some account it had fronted was closed meanwhile (its payer got
        the rent back to the fee payer), its rent no longer outstanding. Looked up only here, so the cost is
        bounded by the cap, not by the number of buyers ever served."""
        if self.exists is None:
            return False
        rows = self.quotas.outstanding(seller.key_id)
        closed = [
            spend
            for (spend, _), alive in zip(rows, self.exists([account for _, account in rows]), strict=True)
            if not alive
        ]
        for spend in closed:
            self.quotas.release_rent(spend)
        return bool(closed)

    def settled(self, ticket: Ticket, result: SettleResponse) -> None:
        """Give back what a settle reserved and did not spend: everything when nothing was sent, the
        rent when the transaction failed (no receipt was made). A spend without rent has nothing to confirm
        or give back once sent (one write fewer on a settle's path)."""
        if ticket.spend is None:
            return
        try:
            if not result.transaction:
                self.quotas.release(ticket.spend)
            elif not ticket.rent:
                return
            elif result.success:
                self.quotas.confirm(ticket.spend)
            elif result.error_reason != ERR_SETTLEMENT_PENDING:
                self.quotas.release_rent(ticket.spend)
        except DatabaseError as exc:  # counted as spent: the quota errs on refusing
            log.warning("could not give back seller %s's unspent quota: %s", ticket.caller.name, exc)

    def reconcile_rent(self, swept: Sequence[str], exists: Callable[[list[str]], list[bool]]) -> None:
        """After a sweep: rent of the swept receipts is back; a fronted receipt that never landed owes none."""
        self.quotas.reclaimed(swept)
        stale = self.quotas.stale()
        if stale:
            for (spend, _), landed in zip(stale, exists([receipt for _, receipt in stale]), strict=True):
                if not landed:
                    self.quotas.release_rent(spend)

    def document(self, caller: Caller) -> dict[str, Any]:
        """GET /policy: what this facilitator refuses, and the caller's own terms and usage."""
        limits = self.limits
        document: dict[str, Any] = {
            "fees": {
                "lamportsPerSignature": LAMPORTS_PER_SIGNATURE,
                "maxFeeLamports": limits.max_fee_lamports,
                "maxComputeUnits": limits.max_compute_units,
                "maxFeeShare": str(limits.max_fee_share),
                "solUsd": str(limits.sol_usd),
                "feeShareApplies": "USD stablecoins (value = amount / 10^decimals)",
            },
            "assets": self.assets.describe(),
        }
        if caller.seller is not None:
            usage: dict[str, Any]
            try:
                usage = self.quotas.usage(caller.seller.key_id).document()
            except QuotaStoreUnavailable as exc:
                usage = {"error": f"{ERR_QUOTA_STORE_UNAVAILABLE}: {exc}"}
            document["seller"] = {**caller.seller.terms(), **usage}
        return document

    def summary(self) -> list[str]:
        """The policy in /supported's extensions (the whole of it: GET /policy)."""
        return [
            "ghostpay-policy",
            f"ghostpay-max-fee-lamports:{self.limits.max_fee_lamports}",
            f"ghostpay-max-compute-units:{self.limits.max_compute_units}",
        ]


POLICY_REFUSALS = {
    ERR_FEE_TOO_HIGH: "the fee (5,000 lamports a signature + CU limit × CU price / 10^6) is over maxFeeLamports",
    ERR_COMPUTE_UNITS_TOO_HIGH: "the compute-unit limit is over maxComputeUnits",
    ERR_FEE_SHARE_TOO_HIGH: "for a USD stablecoin, the fee's value is over maxFeeShare × the payment's",
    ERR_ASSET_NOT_ALLOWED: "the payment's mint is not in assets",
    ERR_AMOUNT_BELOW_MINIMUM: "the amount is under the asset's minAmount",
    ERR_RENT_CAP: "the rent the fee payer fronted for the seller's buyers (their PayerStats, once per pair) "
    "would pass the seller's cap",
    ERR_SETTLE_QUOTA: "the seller's settles in the last minute reached its quota",
    ERR_FEE_QUOTA: "the seller's fees in the last 24 hours would pass its quota",
    ERR_QUOTA_STORE_UNAVAILABLE: "the quota store cannot be read or written (fails closed)",
}
