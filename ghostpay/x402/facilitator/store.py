"""The facilitator's settled-payment log in SQLite: replay protection and crash recovery that survive restarts.

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

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ghostpay.paths import private_file

PENDING, LANDED, SETTLED, FAILED = "pending", "landed", "settled", "failed"
SCHEMA_VERSION = 2  # 1 (no user_version): a `pending` flag and a signature written after the send

SCHEMA = """
CREATE TABLE IF NOT EXISTS settled (
    message_hash TEXT PRIMARY KEY,
    payer        TEXT NOT NULL,
    network      TEXT NOT NULL,
    signature    TEXT,           -- the fee payer's, stored before the send (NULL only in rows from schema 1)
    blockhash    TEXT,           -- the transaction's: once it expired, a signature not landed never will
    status       TEXT NOT NULL,  -- pending | landed | settled | failed
    error        TEXT,           -- the on-chain error of a failed transaction
    claimed_at   REAL NOT NULL,
    settled_at   REAL
);
CREATE INDEX IF NOT EXISTS settled_signature ON settled (signature);
CREATE INDEX IF NOT EXISTS settled_pending ON settled (claimed_at) WHERE status = 'pending';
"""
# Schema 1's rows: sent and confirmed -> settled; sent, unconfirmed -> pending; no signature (a crash
# between the claim and the send's answer) -> pending, its signature found again when the payment is retried.
MIGRATE_FROM_1 = """
INSERT INTO settled (message_hash, payer, network, signature, status, claimed_at, settled_at)
SELECT message_hash, payer, network, signature,
       CASE WHEN signature IS NOT NULL AND pending = 0 THEN 'settled' ELSE 'pending' END, claimed_at, settled_at
FROM settled_v1
"""


# Outcomes older than the log's retention are pruned (the log stays flat under any load); what /health counts
# of them lives on in one row.
TOTALS_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_totals (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS settled_done ON settled (settled_at) WHERE status IN ('settled', 'failed');
"""
PRUNED_SETTLED = "pruned_settled"
PRUNE_WAIT_SECONDS = 0.05  # a prune waits this long for the write lock, then leaves it for the next round


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


class SettledLog:
    """Claims and records settled payments by message hash; safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            private_file(path)  # the log says who paid whom: 0600 in a 0700 folder
        self._path = str(path)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed claim survives a process crash
        self._migrate()
        self._db.executescript(TOTALS_SCHEMA)
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        """Create the table, or bring a schema 1 table to schema 2 in one transaction (a crash leaves either)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # one process migrates; the others then see version 2
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                columns = {row[1] for row in db.execute("PRAGMA table_info(settled)")}
                if columns:  # schema 1
                    db.execute("ALTER TABLE settled RENAME TO settled_v1")
                    self._create()
                    db.execute(MIGRATE_FROM_1)
                    db.execute("DROP TABLE settled_v1")
                else:
                    self._create()
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _create(self) -> None:
        for statement in SCHEMA.split(";"):
            self._db.execute(statement)

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        with self._lock:
            return self._db.execute(sql, params).rowcount

    def claim(self, message_hash: str, *, payer: str, network: str, signature: str, blockhash: str) -> bool:
        """Take the message hash for this settle, pending, with the transaction's signature (before it is
        sent); False if any settle (past or running) has it."""
        return (
            self._write(
                "INSERT OR IGNORE INTO settled "
                "(message_hash, payer, network, signature, blockhash, status, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_hash, payer, network, signature, blockhash, PENDING, time.time()),
            )
            == 1
        )

    def add_signature(self, message_hash: str, signature: str, blockhash: str) -> None:
        """A schema 1 row without a signature: the retried payment's signature, found again by signing it."""
        self._write(
            "UPDATE settled SET signature = ?, blockhash = ? WHERE message_hash = ? AND signature IS NULL",
            (signature, blockhash, message_hash),
        )

    def mark_landed(self, message_hash: str) -> None:
        """Succeeded on chain; until its success answer is delivered, a crash leaves it owed."""
        self._write(
            "UPDATE settled SET status = ?, settled_at = ? WHERE message_hash = ? AND status = ?",
            (LANDED, time.time(), message_hash, PENDING),
        )

    def mark_settled(self, signature: str) -> None:
        """The success answer naming this landed transaction was delivered: a replay is a duplicate now."""
        self._write("UPDATE settled SET status = ? WHERE signature = ? AND status = ?", (SETTLED, signature, LANDED))

    def mark_failed(self, message_hash: str, error: str) -> None:
        """Landed and failed on chain: nothing moved but the fee."""
        self._write(
            "UPDATE settled SET status = ?, error = ?, settled_at = ? WHERE message_hash = ? AND status = ?",
            (FAILED, error, time.time(), message_hash, PENDING),
        )

    def release(self, message_hash: str) -> None:
        """Nothing was sent, or its blockhash expired without it landing: the same payment may be settled later."""
        self._write("DELETE FROM settled WHERE message_hash = ? AND status = ?", (message_hash, PENDING))

    def get(self, message_hash: str) -> SettledPayment | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM settled WHERE message_hash = ?", (message_hash,)).fetchone()
        return None if row is None else SettledPayment(*row)

    def pending(self) -> list[SettledPayment]:
        """The pending rows that name their transaction (schema 1's rows without one wait for a retry)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM settled WHERE status = ? AND signature IS NOT NULL ORDER BY claimed_at", (PENDING,)
            ).fetchall()
        return [SettledPayment(*row) for row in rows]

    def count(self) -> int:
        """Payments settled on chain (answered or not yet), pruned ones included."""
        with self._lock:
            live = self._db.execute(
                "SELECT COUNT(*) FROM settled WHERE status IN (?, ?)", (SETTLED, LANDED)
            ).fetchone()[0]
            pruned = self._db.execute("SELECT value FROM log_totals WHERE name = ?", (PRUNED_SETTLED,)).fetchone()
        return live + (pruned[0] if pruned else 0)

    def prune(self, before: float) -> int:
        """Forget the answered outcomes (settled, failed) decided before `before` (unix time); returns how many.
        Safe once their blockhashes have expired: a replay of a forgotten payment can no longer land, its
        simulation fails before any send. Pending and landed-but-unanswered rows always stay. On a connection
        of its own that does not wait: while another process writes, this round is skipped (0), and settles
        never queue behind it."""
        if self._path == ":memory:":
            return 0
        db = sqlite3.connect(self._path, isolation_level=None, timeout=PRUNE_WAIT_SECONDS)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                settled = db.execute(
                    "SELECT COUNT(*) FROM settled WHERE status = ? AND settled_at < ?", (SETTLED, before)
                ).fetchone()[0]
                gone = db.execute(
                    "DELETE FROM settled WHERE status IN (?, ?) AND settled_at < ?", (SETTLED, FAILED, before)
                ).rowcount
                if settled:
                    db.execute(
                        "INSERT INTO log_totals (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                        "SET value = value + excluded.value",
                        (PRUNED_SETTLED, settled),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError:  # busy: the next round prunes
            return 0
        finally:
            db.close()
        return gone

    def close(self) -> None:
        with self._lock:
            self._db.close()
