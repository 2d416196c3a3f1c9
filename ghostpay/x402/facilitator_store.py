"""The facilitator's settled-payment log in SQLite: replay protection that survives restarts.

The official scheme remembers a transaction's message hash for 120 s in memory only. A payment
header replayed after a restart would then be "settled" again: Solana drops the duplicate
transaction, the confirmation finds the first one, and the seller serves a second call for one
payment. Here every settle first claims the message hash in a table; a claim that exists refuses.

    >>> log = SettledLog(":memory:")
    >>> log.claim("h1", payer="P", network="solana:x")
    True
    >>> log.claim("h1", payer="P", network="solana:x")
    False
    >>> log.release("h1"); log.claim("h1", payer="P", network="solana:x")
    True
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS settled (
    message_hash TEXT PRIMARY KEY,
    payer        TEXT NOT NULL,
    network      TEXT NOT NULL,
    signature    TEXT,             -- NULL while the settle is in flight
    pending      INTEGER NOT NULL DEFAULT 0,  -- sent, not yet seen confirmed: a retry may reconcile it
    claimed_at   REAL NOT NULL,
    settled_at   REAL
)
"""


@dataclass(frozen=True)
class SettledPayment:
    message_hash: str
    payer: str
    network: str
    signature: str | None
    pending: bool
    claimed_at: float
    settled_at: float | None


class SettledLog:
    """Claims and records settled payments by message hash; safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed claim survives a process crash
        self._db.execute(SCHEMA)
        self._lock = threading.Lock()

    def claim(self, message_hash: str, *, payer: str, network: str) -> bool:
        """Take the message hash for this settle; False if any settle (past or running) has it."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO settled (message_hash, payer, network, claimed_at) VALUES (?, ?, ?, ?)",
                (message_hash, payer, network, time.time()))
            return cursor.rowcount == 1

    def complete(self, message_hash: str, signature: str, *, pending: bool = False) -> None:
        """The transaction was sent (confirmed, or `pending` confirmation): the claim stays for good."""
        with self._lock:
            self._db.execute("UPDATE settled SET signature = ?, pending = ?, settled_at = ? WHERE message_hash = ?",
                             (signature, int(pending), time.time(), message_hash))

    def release(self, message_hash: str) -> None:
        """Nothing was sent (refused before broadcast): the same payment may be settled later."""
        with self._lock:
            self._db.execute("DELETE FROM settled WHERE message_hash = ? AND signature IS NULL", (message_hash,))

    def get(self, message_hash: str) -> SettledPayment | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM settled WHERE message_hash = ?", (message_hash,)).fetchone()
        return None if row is None else SettledPayment(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM settled WHERE signature IS NOT NULL").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
