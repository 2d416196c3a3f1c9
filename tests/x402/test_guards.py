"""Spending guards and the spend ledger on their own: every refusal typed, budgets atomic across
threads and processes, reservations released or kept as the guards promise."""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from ghostpay.exceptions import (
    BudgetExceeded,
    GhostPayError,
    MintNotAllowed,
    PaymentDeclined,
    PriceAboveMaximum,
    RateLimited,
    SellerNotAllowed,
    SpendingRefused,
)
from ghostpay.spending import (
    RESERVATION_TTL,
    GuardedWallet,
    Limits,
    Outcome,
    SentProof,
    SentSpend,
    Spend,
    SpendingGuards,
    SpendLedger,
    sent_proof,
    spending_report,
)

USDC, BONK = "Usdc1111111111111111111111111111111111111111", "Bonk1111111111111111111111111111111111111111"


def spend(
    amount: int = 10_000, mint: str = USDC, seller: str = "Seller1", agent: str | None = None, decimals: int = 6
) -> Spend:
    return Spend("Wallet1", mint, decimals, amount, seller, agent, "http://shop/paid")


def test_refusals_are_typed_spending_refused() -> None:
    for klass in (BudgetExceeded, PriceAboveMaximum, SellerNotAllowed, MintNotAllowed, RateLimited, PaymentDeclined):
        assert issubclass(klass, SpendingRefused) and issubclass(klass, GhostPayError)


def test_static_checks_mints_sellers_per_call() -> None:
    guards = SpendingGuards(
        per_call=Decimal("0.05"),
        allowed_mints={USDC},
        blocked_sellers={"Bad"},
        mint_limits={BONK: Limits(per_call=Decimal("1000"))},
    )
    guards.check(spend(50_000))
    with pytest.raises(PriceAboveMaximum, match="0.050001 is over the per-call maximum 0.05"):
        guards.check(spend(50_001))
    with pytest.raises(MintNotAllowed, match=BONK):
        guards.check(spend(mint=BONK))
    with pytest.raises(SellerNotAllowed, match="Bad is blocked"):
        guards.check(spend(seller="Bad"))
    with pytest.raises(SellerNotAllowed, match="Bad is blocked"):  # its agent blocked: the seller is too
        guards.check(spend(seller="Fine", agent="Bad"))
    allowed = SpendingGuards(allowed_sellers={"AgentA"})
    allowed.check(spend(seller="PayToOfA", agent="AgentA"))  # allowed by agent
    with pytest.raises(SellerNotAllowed, match="not among the allowed sellers"):
        allowed.check(spend(seller="Other"))
    # per-mint limits override the defaults, in that mint's decimals
    assert guards.limits(BONK).per_call == Decimal("1000") and guards.limits(USDC).per_call == Decimal("0.05")
    SpendingGuards(mint_limits={BONK: Limits(per_call=Decimal("1000"))}).check(spend(10**5 * 1000, BONK, decimals=5))


def test_max_price_only_lowers() -> None:
    guards = SpendingGuards(per_call=Decimal("0.05"), mint_limits={BONK: Limits(per_call=Decimal("2"))})
    assert guards.with_max_price(Decimal("0.1")).per_call == Decimal("0.05")
    lowered = guards.with_max_price(Decimal("0.01"))
    assert lowered.per_call == Decimal("0.01") and lowered.limits(BONK).per_call == Decimal("0.01")


async def test_confirm_callback_above_threshold(tmp_path: Path) -> None:
    asked: list[Decimal] = []

    async def no(s: Spend) -> bool:
        asked.append(s.amount)
        return False

    wallet = GuardedWallet(SpendingGuards(confirm_above=Decimal("0.5"), confirm=no), tmp_path / "l.sqlite3")
    await wallet.authorize(spend(500_000))  # at the threshold: not asked
    with pytest.raises(PaymentDeclined, match="declined"):
        await wallet.authorize(spend(500_001))
    assert asked == [Decimal("0.500001")]
    yes = GuardedWallet(SpendingGuards(confirm_above=Decimal("0.5"), confirm=lambda s: True), wallet.ledger)
    await yes.authorize(spend(900_000))
    nobody = GuardedWallet(SpendingGuards(confirm_above=Decimal("0.5")), wallet.ledger)
    with pytest.raises(PaymentDeclined, match="nothing can confirm it"):
        await nobody.authorize(spend(900_000))
    assert [r["amount"] for r in wallet.ledger.entries("Wallet1")] == [900_000, 500_000]  # refusals left no row


def paid(ledger: SpendLedger, guards: SpendingGuards, what: Spend, now: float) -> int:
    reservation = ledger.reserve(guards, what, now)
    ledger.mark_sent(reservation)
    return reservation


def test_budgets_per_window_and_per_mint(tmp_path: Path) -> None:
    ledger = SpendLedger(tmp_path / "l.sqlite3")
    guards = SpendingGuards(hourly=Decimal("0.03"), daily=Decimal("0.05"), total=Decimal("0.06"))
    now = 1_000_000.0
    for _ in range(3):
        paid(ledger, guards, spend(), now)
    with pytest.raises(BudgetExceeded, match="hourly budget of 0.03 .*: 0.000000 left") as refused:
        ledger.reserve(guards, spend(), now)
    assert (refused.value.window, refused.value.spent, refused.value.amount) == (
        "hour",
        Decimal("0.03"),
        Decimal("0.01"),
    )
    paid(ledger, guards, spend(mint=BONK), now)  # other mints have budgets of their own
    paid(ledger, guards, spend(20_000), now + 3601)  # an hour later the hourly window rolled
    with pytest.raises(BudgetExceeded, match="daily budget of 0.05"):
        ledger.reserve(guards, spend(), now + 3602)
    paid(ledger, guards, spend(), now + 86_401)  # a day later: 0.06 total
    with pytest.raises(BudgetExceeded, match="total budget"):
        ledger.reserve(guards, spend(1), now + 86_402)
    usage = ledger.usage("Wallet1", USDC, 6, now + 86_402)
    assert (usage.hour, usage.day, usage.total) == (10_000, 30_000, 60_000)


def test_release_and_stale_reservations(tmp_path: Path) -> None:
    ledger = SpendLedger(tmp_path / "l.sqlite3")
    guards = SpendingGuards(total=Decimal("0.01"))
    first = ledger.reserve(guards, spend(), 1000.0)
    with pytest.raises(BudgetExceeded):
        ledger.reserve(guards, spend(), 1001.0)
    ledger.release(first)  # failed before it was sent: no longer counts
    sent = ledger.reserve(guards, spend(), 1002.0)
    ledger.mark_sent(sent)
    with pytest.raises(BudgetExceeded):  # sent, outcome unknown: counts, even much later
        ledger.reserve(guards, spend(), 1002.0 + RESERVATION_TTL * 10)
    other = SpendLedger(tmp_path / "m.sqlite3")
    other.reserve(guards, spend(), 1000.0)  # reserved, then the process died before sending
    other.reserve(guards, spend(), 1000.0 + RESERVATION_TTL + 1)


def test_rate_limit_counts_calls_of_the_last_minute(tmp_path: Path) -> None:
    ledger = SpendLedger(tmp_path / "l.sqlite3")
    guards = SpendingGuards(calls_per_minute=2)
    ledger.reserve(guards, spend(), 100.0)
    ledger.reserve(guards, spend(mint=BONK), 110.0)  # every mint counts
    with pytest.raises(RateLimited, match="2 paid calls in the last minute"):
        ledger.reserve(guards, spend(), 150.0)
    ledger.reserve(guards, spend(), 161.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ledger of each store: a SQLite file, a database on the suite's PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "l.sqlite3")
    return str(request.getfixturevalue("postgres").create_database())


def test_fifty_threads_against_a_budget_for_ten(ledger_location: str) -> None:
    ledger = SpendLedger(ledger_location)
    guards = SpendingGuards(daily=Decimal("0.1"))

    def attempt(_: int) -> bool:
        try:
            ledger.reserve(guards, spend())
            return True
        except BudgetExceeded:
            return False

    with ThreadPoolExecutor(50) as pool:
        assert sum(pool.map(attempt, range(50))) == 10
    assert ledger.usage("Wallet1", USDC, 6).day == 100_000


def _reserve_many(path: str, count: int, results: multiprocessing.Queue[int]) -> None:
    ledger = SpendLedger(path)
    guards = SpendingGuards(total=Decimal("0.1"))
    won = 0
    for _ in range(count):
        try:
            ledger.reserve(guards, spend())
            won += 1
        except BudgetExceeded:
            pass
    results.put(won)


def test_processes_share_the_budget(ledger_location: str) -> None:
    path = ledger_location
    SpendLedger(path)
    results: multiprocessing.Queue[int] = multiprocessing.get_context("spawn").Queue()
    workers = [
        multiprocessing.get_context("spawn").Process(target=_reserve_many, args=(path, 15, results)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert sum(results.get(timeout=5) for _ in workers) == 10
    # a restart (a new ledger object on the same file) sees it all
    with pytest.raises(BudgetExceeded, match="0.000000 left"):
        SpendLedger(path).reserve(SpendingGuards(total=Decimal("0.1")), spend())


async def test_guarded_wallet_runs_checks_in_order(tmp_path: Path) -> None:
    calls: list[str] = []
    wallet = GuardedWallet(
        SpendingGuards(
            per_call=Decimal("0.02"),
            daily=Decimal("0.02"),
            confirm_above=Decimal(0),
            confirm=lambda s: calls.append("confirm") or True,
        ),
        tmp_path / "l.sqlite3",
    )
    with pytest.raises(PriceAboveMaximum):  # refused before the user is asked
        await wallet.authorize(spend(30_000))
    assert calls == []
    await wallet.authorize(spend(20_000))
    with pytest.raises(BudgetExceeded):
        await wallet.authorize(spend(1))
    assert calls == ["confirm", "confirm"]
    with pytest.raises(PriceAboveMaximum, match="maximum 0.005"):
        await wallet.authorize(spend(10_000), max_price=Decimal("0.005"))
    await asyncio.sleep(0)


def test_a_budget_lowered_below_the_spent_leaves_a_decimal_zero(tmp_path: Path) -> None:
    """Spent 0.05 under a 1 USDC daily budget, then the budget lowered to 0.01: nothing is left, as a Decimal
    (the JSON's exact string and the text table's amount; an int 0 there broke `ghost x402 spending`)."""
    ledger = SpendLedger(tmp_path / "l.sqlite3")
    ledger.reserve(SpendingGuards(daily=Decimal("1")), spend(50_000))
    report = spending_report(GuardedWallet(SpendingGuards(daily=Decimal("0.01")), ledger), "Wallet1")
    day = report[0].windows["day"]
    assert (day.spent, day.budget, day.remaining) == (Decimal("0.05"), Decimal("0.01"), Decimal(0))
    assert isinstance(day.remaining, Decimal)


def test_reservations_left_by_a_dead_process_are_reconciled(ledger_location: str) -> None:
    ledger = SpendLedger(ledger_location, reservation_ttl=60)
    guards = SpendingGuards(total=Decimal("0.04"))
    never_sent, with_proof, without_proof, settled = (ledger.reserve(guards, spend(), 1000.0) for _ in range(4))
    ledger.mark_sent(with_proof, SentProof("WalletSignature", "Blockhash"))
    ledger.mark_sent(without_proof)
    ledger.mark_settled(settled, "Tx")
    assert ledger.expire("Wallet1", 1059.0) == []  # not stale yet
    [stale] = ledger.expire("Wallet1", time.time() + 61)
    assert (stale.id, stale.proof) == (with_proof, SentProof("WalletSignature", "Blockhash"))
    ledger.resolve(with_proof, "released", None)  # its blockhash expired without it landing
    ledger.resolve(settled, "released", None)  # only a sent one is resolved
    states = {row["id"]: row["state"] for row in ledger.entries("Wallet1")}
    assert states == {never_sent: "expired", with_proof: "released", without_proof: "sent", settled: "settled"}
    # 0.02 counted (the one without a proof keeps counting): two more fit, a third does not
    ledger.reserve(guards, spend())
    ledger.reserve(guards, spend())
    with pytest.raises(BudgetExceeded, match="0.000000 left"):
        ledger.reserve(guards, spend())


async def test_guarded_wallet_reconciles_by_its_lookup(ledger_location: str) -> None:
    outcomes = {"landed": ("settled", "Tx1"), "lost": ("released", None), "pending": None}
    guarded = GuardedWallet(SpendingGuards(total=Decimal("0.03")), SpendLedger(ledger_location, reservation_ttl=0.1))
    for signature in outcomes:
        reservation = await guarded.authorize(spend())
        await reservation.sent(SentProof(signature, "Blockhash"))
    await asyncio.sleep(0.2)  # past the TTL: the process that sent them is taken for dead

    async def lookup(sent: SentSpend) -> Outcome:
        return outcomes[sent.proof.wallet_signature]

    with pytest.raises(BudgetExceeded):  # no lookup (no client bound): all three keep counting
        await guarded.authorize(spend())
    guarded.lookup = lookup
    assert [outcome for _, outcome in await guarded.reconcile("Wallet1")] == ["settled", "released"]
    await (await guarded.authorize(spend())).sent()  # the lost one's amount is back, once
    with pytest.raises(BudgetExceeded):
        await guarded.authorize(spend())
    assert guarded.ledger.counts("Wallet1") == {"settled": 1, "released": 1, "sent": 2}


def test_an_older_sqlite_ledger_gains_the_proof_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TABLE spends (id INTEGER PRIMARY KEY AUTOINCREMENT, wallet TEXT NOT NULL, mint TEXT NOT NULL, "
            "decimals INTEGER NOT NULL, amount INTEGER NOT NULL, seller TEXT NOT NULL, agent TEXT, url TEXT, "
            "state TEXT NOT NULL, signature TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO spends (wallet, mint, decimals, amount, seller, state, created_at, updated_at) "
            "VALUES ('Wallet1', ?, 6, 10000, 'Seller1', 'settled', 1.0, 1.0)",
            (USDC,),
        )
    ledger = SpendLedger(path)
    with pytest.raises(BudgetExceeded):
        ledger.reserve(SpendingGuards(total=Decimal("0.01")), spend())
    second = ledger.reserve(SpendingGuards(total=Decimal("0.02")), spend())
    ledger.mark_sent(second, SentProof("WalletSignature", "Blockhash"))
    assert [row["proof"] for row in ledger.entries("Wallet1")] == ["WalletSignature", None]


def test_sent_proof_is_the_wallets_signature_in_a_partially_signed_transaction() -> None:
    wallet, fee_payer, blockhash = Keypair(), Keypair(), Hash.new_unique()
    message = Message.new_with_blockhash(
        [transfer(TransferParams(from_pubkey=wallet.pubkey(), to_pubkey=fee_payer.pubkey(), lamports=1))],
        fee_payer.pubkey(),
        blockhash,
    )
    tx = Transaction.new_unsigned(message)
    tx.partial_sign([wallet], blockhash)  # the fee payer (a facilitator) signs later: the id is not known
    proof = SentProof(str(tx.signatures[1]), str(blockhash))
    assert sent_proof(tx, wallet.pubkey()) == proof
    assert sent_proof(base64.b64encode(bytes(tx)).decode(), str(wallet.pubkey())) == proof
    assert sent_proof(tx, Keypair().pubkey()) is None


def test_a_process_keeps_one_sqlite_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    connect = sqlite3.connect

    def counted(*args: object, **kwargs: object) -> sqlite3.Connection:
        opened.append(args[0])
        return connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", counted)
    ledger = SpendLedger(tmp_path / "l.sqlite3")
    guards = SpendingGuards(hourly=Decimal("1"), daily=Decimal("1"), total=Decimal("1"), calls_per_minute=100)
    for _ in range(5):
        reservation = ledger.reserve(guards, spend())
        ledger.mark_sent(reservation, SentProof("sig", "hash"))
        ledger.mark_settled(reservation, "tx")
    ledger.release(ledger.reserve(guards, spend()))
    ledger.expire("Wallet1")
    assert ledger.usage("Wallet1", USDC, 6).total == 50_000
    assert opened == [tmp_path / "l.sqlite3"]  # opened once, for the schema, then reused by every operation


def _durability_of_writes(ledger: SpendLedger) -> list[tuple[str, str]]:
    """(synchronous level in force, the write) for each write the ledger committed, from the connection's trace."""
    statements: list[str] = []
    ledger.store._connection().set_trace_callback(statements.append)  # type: ignore[attr-defined]
    guards = SpendingGuards(daily=Decimal("1"))
    reservation = ledger.reserve(guards, spend())
    ledger.mark_sent(reservation, SentProof("sig", "hash"))
    ledger.mark_settled(reservation, "tx")
    ledger.release(ledger.reserve(guards, spend()))
    level, writes = "FULL", []  # the default the store starts from
    for sql in statements:
        if sql.startswith("PRAGMA synchronous="):
            level = sql.split("=", 1)[1]
        elif sql == "COMMIT" or sql.startswith("UPDATE"):
            state = "reserve" if sql == "COMMIT" else sql.split("state = ", 1)[1].split(",", 1)[0].strip("'")
            writes.append((level, state))
    return writes


def test_reservations_and_sent_marks_are_fsynced_settles_and_releases_not(tmp_path: Path) -> None:
    """A power cut may undo only writes whose loss keeps a payment counting: the reservation (before signing) and
    the sent mark (before the payment leaves) commit with synchronous=FULL; a settle or release without the fsync
    (lost, the payment stays reserved or sent: counted until reconciled)."""
    assert _durability_of_writes(SpendLedger(tmp_path / "l.sqlite3")) == [
        ("FULL", "reserve"),
        ("FULL", "sent"),
        ("NORMAL", "settled"),
        ("FULL", "reserve"),
        ("NORMAL", "released"),
    ]


def test_a_reservation_reads_only_the_rows_of_its_budgeted_windows(tmp_path: Path) -> None:
    """With no total budget, a reservation's sums read the wallet's rows of its widest window by the
    (wallet, created_at) index, not the wallet's whole history; what is older does not count."""
    ledger = SpendLedger(tmp_path / "l.sqlite3")
    now = 10_000_000.0
    for day in range(30):  # a month of history, then a day of budget left
        ledger.mark_settled(ledger.reserve(SpendingGuards(), spend(), now - 86_400 * (day + 1) - 1), "tx")
    queries: list[str] = []
    db = ledger.store._connection()  # type: ignore[attr-defined]
    db.set_trace_callback(queries.append)
    guards = SpendingGuards(hourly=Decimal("0.01"), daily=Decimal("0.02"))
    ledger.mark_settled(ledger.reserve(guards, spend(), now), "tx")
    ledger.mark_settled(ledger.reserve(guards, spend(), now + 3601), "tx")
    with pytest.raises(BudgetExceeded, match="daily budget of 0.02 .*: 0.000000 left"):
        ledger.reserve(guards, spend(), now + 7202)  # the hour rolled, the day did not
    db.set_trace_callback(None)
    [sums, *_] = [q for q in queries if q.startswith("SELECT") and "SUM" in q]
    plan = " ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + sums))
    assert "USING INDEX spends_wallet_time (wallet=? AND created_at>?)" in plan, plan
    assert "SCAN" not in plan, plan


def _reserve_on_inherited(ledger: SpendLedger, results: multiprocessing.Queue[int]) -> None:
    results.put(ledger.reserve(SpendingGuards(total=Decimal("0.02")), spend()))


def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    """SQLite forbids using a connection across fork: a child given its parent's ledger opens its own, and the
    budget stays shared."""
    ledger = SpendLedger(tmp_path / "l.sqlite3")
    ledger.reserve(SpendingGuards(total=Decimal("0.02")), spend())
    results: multiprocessing.Queue[int] = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_reserve_on_inherited, args=(ledger, results))
    child.start()
    child.join(60)
    assert (child.exitcode, results.get(timeout=5)) == (0, 2)
    with pytest.raises(BudgetExceeded, match="total budget of 0.02 .*: 0.000000 left"):
        ledger.reserve(SpendingGuards(total=Decimal("0.02")), spend())
