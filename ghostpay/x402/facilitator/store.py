"""The facilitator's settled-payment log (SQLite, or PostgreSQL shared by replicas): replay protection and crash
recovery that survive restarts.

The official scheme remembers a transaction's message hash for 120 s in memory only. A payment
header replayed after a restart would then be "settled" again: Solana drops the duplicate
transaction, the confirmation finds the first one, and the seller serves a second call for one
payment. Here every settle first claims the message hash in a table; a claim that exists refuses.

A claim carries the fee payer's signature of the transaction (known once the facilitator has signed,
before the send), so whatever moment a crash comes at, the row says which transaction to look for on
chain. A row's status:

- `pending`: claimed, maybe sent; its outcome is looked up by signature (`settle`);
- `landed`: succeeded on chain, no success answer known delivered: after a crash, the next settle of
  the same payment answers success with its signature (so the seller can serve);
- `settled`: succeeded, and the success answer was delivered: a replay is a duplicate;
- `failed`: landed and failed on chain (its `error`): the buyer's tokens did not move.

A pending transaction whose blockhash expired without landing never will: its row is released
(deleted) and the buyer may pay again.

A row's `holder` is the database session (`Database.session`) working on it: the settle that claimed it until
it returns, a settle answering its success until that answer is delivered. Facilitator replicas on one
PostgreSQL leave a held row alone while its holder runs, and take it over (`take`) once the holder is gone: a
SIGKILLed replica's session ends with it, so another replica (or the restarted one) finishes its payments.

    >>> log = SettledLog(":memory:")
    >>> log.claim("h1", payer="P", network="solana:x", signature="S", blockhash="B")
    True
    >>> log.claim("h1", payer="P", network="solana:x", signature="S", blockhash="B")
    False
    >>> log.mark_landed("h1"); log.mark_settled("S"); log.get("h1").status
    'settled'
    >>> log.claim("h2", payer="P", network="solana:x", signature="T", blockhash="B")
    True
    >>> log.release("h2"); log.get("h2") is None
    True
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ghostpay.x402.facilitator.database import SQLITE, Database, DatabaseError

PENDING, LANDED, SETTLED, FAILED = "pending", "landed", "settled", "failed"
# 1 (no user_version): a `pending` flag and a signature written after the send; 2: no holder
SCHEMA_VERSION = 3

CREATE_SETTLED = """
CREATE TABLE IF NOT EXISTS settled (
    message_hash TEXT PRIMARY KEY,
    payer        TEXT NOT NULL,
    network      TEXT NOT NULL,
    signature    TEXT,              -- the fee payer's, stored before the send (NULL only in rows from schema 1)
    blockhash    TEXT,              -- the transaction's: once it expired, a signature not landed never will
    status       TEXT NOT NULL,     -- pending | landed | settled | failed
    error        TEXT,              -- the on-chain error of a failed transaction
    claimed_at   DOUBLE PRECISION NOT NULL,
    settled_at   DOUBLE PRECISION,
    holder       TEXT               -- the database session working on it (NULL: nobody)
)"""
SCHEMA = (
    CREATE_SETTLED,
    "CREATE INDEX IF NOT EXISTS settled_signature ON settled (signature)",
    "CREATE INDEX IF NOT EXISTS settled_pending ON settled (claimed_at) WHERE status = 'pending'",
    # Outcomes older than the log's retention are pruned (the log stays flat under any load); what /health
    # counts of them lives on in one row.
    "CREATE TABLE IF NOT EXISTS log_totals (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS settled_done ON settled (settled_at) WHERE status IN ('settled', 'failed')",
)
# Replicas (PostgreSQL): the buyer accounts a settle spends from, held from its simulation to its outcome, so two
# payments of one buyer reaching two replicas are simulated and sent one after the other, as within one process.
SPEND_LOCKS = (
    """CREATE TABLE IF NOT EXISTS spend_locks (
    account  TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    taken_at DOUBLE PRECISION NOT NULL
)""",
)
# Schema 1's rows: sent and confirmed -> settled; sent, unconfirmed -> pending; no signature (a crash
# between the claim and the send's answer) -> pending, its signature found again when the payment is retried.
MIGRATE_FROM_1 = """
INSERT INTO settled (message_hash, payer, network, signature, status, claimed_at, settled_at)
SELECT message_hash, payer, network, signature,
       CASE WHEN signature IS NOT NULL AND pending = 0 THEN 'settled' ELSE 'pending' END, claimed_at, settled_at
FROM settled_v1
"""
COLUMNS = "message_hash, payer, network, signature, blockhash, status, error, claimed_at, settled_at, holder"
PRUNED_SETTLED = "pruned_settled"
PRUNE_WAIT_SECONDS = 0.05  # a prune waits this long for the write lock, then leaves it for the next round
SPEND_LOCK_POLL_SECONDS = 0.005  # between two tries for accounts another replica's settle holds
SPEND_LOCK_WAIT_SECONDS = 120.0  # a settle holds its buyer's accounts at most its confirmation's timeout


@dataclass(frozen=True)
class SettledPayment:
    message_hash: str
    payer: str
    network: str
    signature: str | None
    blockhash: str | None
    status: str
    error: str | None
    claimed_at: float
    settled_at: float | None
    holder: str | None = None


class SettledLog:
    """Claims and records settled payments by message hash; safe to share between threads, and (on
    PostgreSQL) between facilitator processes on any host."""

    def __init__(self, target: str | Path) -> None:
        self._db = Database(target)
        if self._db.dialect == SQLITE:
            self._migrate_sqlite()
        else:
            self._db.schema(SCHEMA + SPEND_LOCKS)

    def _migrate_sqlite(self) -> None:
        """Create the table, or bring an older one to this schema in one transaction (a crash leaves either)."""
        db = self._db
        with db.transaction():  # one process migrates; the others then see this version
            version = db.rows("PRAGMA user_version")[0][0]
            if version < SCHEMA_VERSION:
                columns = db.columns("settled")
                if "pending" in columns:  # schema 1
                    db.run("ALTER TABLE settled RENAME TO settled_v1")
                    self._create()
                    db.run(MIGRATE_FROM_1)
                    db.run("DROP TABLE settled_v1")
                elif columns and "holder" not in columns:  # schema 2
                    db.run("ALTER TABLE settled ADD COLUMN holder TEXT")
                self._create()
                db.run(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _create(self) -> None:
        for statement in SCHEMA:
            self._db.run(statement)

    @property
    def session(self) -> str:
        """Who this log's claims name as their holder."""
        return self._db.session()

    def claim(self, message_hash: str, *, payer: str, network: str, signature: str, blockhash: str) -> bool:
        """Take the message hash for this settle, pending and held by this session, with the transaction's
        signature (before it is sent); False if any settle (past or running, here or in a replica) has it."""
        return (
            self._db.run(
                "INSERT INTO settled (message_hash, payer, network, signature, blockhash, status, claimed_at, holder) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_hash) DO NOTHING",
                (message_hash, payer, network, signature, blockhash, PENDING, time.time(), self.session),
            )
            == 1
        )

    def free(self, row: SettledPayment) -> bool:
        """Whether nobody works on the row: no holder, or one whose session ended (this one's never has)."""
        return row.holder is None or (row.holder != self.session and not self._db.alive(row.holder))

    def take(self, row: SettledPayment) -> bool:
        """Hold a free row (a pending one to resend, a landed one to answer) as it was read; False when it is
        not free, or another session took it first."""
        return self.free(row) and (
            self._db.run(
                "UPDATE settled SET holder = ? WHERE message_hash = ? AND status = ? AND COALESCE(holder, '') = ?",
                (self.session, row.message_hash, row.status, row.holder or ""),
            )
            == 1
        )

    def let_go(self, message_hash: str, statuses: tuple[str, ...] = (PENDING,)) -> None:
        """This session no longer works on the row, if it has one of `statuses`: any settle may look it up (a
        landed row stays held, by default, until its success answer is delivered or lost)."""
        marks = ", ".join("?" for _ in statuses)
        self._db.run(
            f"UPDATE settled SET holder = NULL WHERE message_hash = ? AND holder = ? AND status IN ({marks})",
            (message_hash, self.session, *statuses),
        )

    def let_go_signature(self, signature: str) -> None:
        """The success answer naming this landed transaction was lost: a retry anywhere answers it again."""
        self._db.run("UPDATE settled SET holder = NULL WHERE signature = ? AND holder = ?", (signature, self.session))

    @contextmanager
    def spending(self, accounts: Sequence[str]) -> Iterator[None]:
        """Hold the buyer accounts a settle spends from against the other replicas' settles (PostgreSQL; SQLite is
        one host's, where the process's own locks serialize them). All or none is taken at once, so two settles
        wanting overlapping accounts never deadlock; a dead replica's are taken back from it."""
        if self._db.dialect == SQLITE or not accounts:
            yield
            return
        wanted = sorted(set(accounts))
        deadline = time.monotonic() + SPEND_LOCK_WAIT_SECONDS
        while not self._take_accounts(wanted):
            if time.monotonic() > deadline:
                raise DatabaseError(f"the accounts {', '.join(wanted)} stayed held by another settle")
            time.sleep(SPEND_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            marks = ", ".join("?" for _ in wanted)
            self._db.run(f"DELETE FROM spend_locks WHERE holder = ? AND account IN ({marks})", (self.session, *wanted))

    def _take_accounts(self, accounts: list[str]) -> bool:
        now = time.time()
        with self._db.transaction():
            rows = ", ".join("(?, ?, ?)" for _ in accounts)
            taken = self._db.run(
                f"INSERT INTO spend_locks (account, holder, taken_at) VALUES {rows} ON CONFLICT (account) DO NOTHING",
                tuple(value for account in accounts for value in (account, self.session, now)),
            )
            if taken == len(accounts):
                return True
            marks = ", ".join("?" for _ in accounts)
            held = self._db.rows(
                f"SELECT account, holder FROM spend_locks WHERE account IN ({marks}) AND holder <> ?",
                (*accounts, self.session),
            )
            self._db.run(
                f"DELETE FROM spend_locks WHERE holder = ? AND account IN ({marks})", (self.session, *accounts)
            )
        for account, holder in held:  # a replica that died holding them: its session ended, its holds go
            if not self._db.alive(holder):
                self._db.run("DELETE FROM spend_locks WHERE account = ? AND holder = ?", (account, holder))
        return False

    def add_signature(self, message_hash: str, signature: str, blockhash: str) -> None:
        """A schema 1 row without a signature: the retried payment's signature, found again by signing it."""
        self._db.run(
            "UPDATE settled SET signature = ?, blockhash = ? WHERE message_hash = ? AND signature IS NULL",
            (signature, blockhash, message_hash),
        )

    def mark_landed(self, message_hash: str) -> None:
        """Succeeded on chain; until its success answer is delivered, a crash leaves it owed."""
        self._db.run(
            "UPDATE settled SET status = ?, settled_at = ? WHERE message_hash = ? AND status = ?",
            (LANDED, time.time(), message_hash, PENDING),
        )

    def mark_settled(self, signature: str) -> None:
        """The success answer naming this landed transaction was delivered: a replay is a duplicate now."""
        self._db.run(
            "UPDATE settled SET status = ?, holder = NULL WHERE signature = ? AND status = ?",
            (SETTLED, signature, LANDED),
        )

    def mark_failed(self, message_hash: str, error: str) -> None:
        """Landed and failed on chain: nothing moved but the fee."""
        self._db.run(
            "UPDATE settled SET status = ?, error = ?, settled_at = ?, holder = NULL "
            "WHERE message_hash = ? AND status = ?",
            (FAILED, error, time.time(), message_hash, PENDING),
        )

    def release(self, message_hash: str) -> None:
        """Nothing was sent, or its blockhash expired without it landing: the same payment may be settled later."""
        self._db.run("DELETE FROM settled WHERE message_hash = ? AND status = ?", (message_hash, PENDING))

    def get(self, message_hash: str) -> SettledPayment | None:
        rows = self._db.rows(f"SELECT {COLUMNS} FROM settled WHERE message_hash = ?", (message_hash,))
        return SettledPayment(*rows[0]) if rows else None

    def pending(self) -> list[SettledPayment]:
        """The pending rows that name their transaction and that nobody works on (schema 1's rows without a
        signature wait for a retry; a replica's own settles under way, or a live replica's, are theirs)."""
        rows = self._db.rows(
            f"SELECT {COLUMNS} FROM settled WHERE status = ? AND signature IS NOT NULL ORDER BY claimed_at", (PENDING,)
        )
        return [row for row in (SettledPayment(*r) for r in rows) if self.free(row)]

    def count(self) -> int:
        """Payments settled on chain (answered or not yet), pruned ones included."""
        live = self._db.rows("SELECT COUNT(*) FROM settled WHERE status IN (?, ?)", (SETTLED, LANDED))[0][0]
        pruned = self._db.rows("SELECT value FROM log_totals WHERE name = ?", (PRUNED_SETTLED,))
        return int(live) + (int(pruned[0][0]) if pruned else 0)

    def prune(self, before: float) -> int:
        """Forget the answered outcomes (settled, failed) decided before `before` (unix time); returns how many.
        Safe once their blockhashes have expired: a replay of a forgotten payment can no longer land, its
        simulation fails before any send. Pending and landed-but-unanswered rows always stay. It does not
        wait: while another process holds the write lock, this round is skipped (0), and settles never queue
        behind it for long."""
        if self._db.target == ":memory:":
            return 0
        try:
            with self._db.transaction(PRUNED_SETTLED, wait=PRUNE_WAIT_SECONDS):
                settled = self._db.rows(
                    "SELECT COUNT(*) FROM settled WHERE status = ? AND settled_at < ?", (SETTLED, before)
                )[0][0]
                gone = self._db.run(
                    "DELETE FROM settled WHERE status IN (?, ?) AND settled_at < ?", (SETTLED, FAILED, before)
                )
                if settled:
                    self._db.run(
                        "INSERT INTO log_totals (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                        "SET value = log_totals.value + excluded.value",
                        (PRUNED_SETTLED, settled),
                    )
        except DatabaseError:  # busy: the next round prunes
            return 0
        return gone

    def close(self) -> None:
        self._db.close()
