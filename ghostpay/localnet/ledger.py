"""The localnet's ledger: one SQLite database (WAL mode) in the ledger directory.

It holds every account the chain has touched, every processed transaction with
its slot, block time, raw bytes and status meta, an address -> signature index
for `getSignaturesForAddress`, the slots produced and the chain state (slot,
recent blockhashes, genesis hash, clock offset).

Writes are queued in order and run at the next read or commit (`flush`), so the
server can answer a `sendTransaction` ("processed") before it pays for the
inserts and the commit, and do both while the client reads that answer. Every
other answer and every notification leaves only after the commit (the server's
`GroupCommit`): a transaction that any answer reports confirmed, or whose
effects any answer shows, is on disk even if the process is killed next; one
whose send was answered but not yet committed may be lost, as a validator may
drop a processed transaction.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from ghostpay.localnet.jsonwire import compact
from ghostpay.paths import private_dir, private_file

# A transaction costs as few page writes as it can: accounts are keyed by pubkey without a rowid,
# a transaction's seq is its rowid (never deleted, so max + 1 orders them and max is their count,
# without AUTOINCREMENT's extra table), and signatures are indexed by their first 8 bytes only (a
# quarter of the full signature's index: more of it stays cached; the full signature is compared on
# the row). Nothing per transaction is held in memory: the chain keeps the recent statuses.
SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    pubkey BLOB PRIMARY KEY, lamports INTEGER NOT NULL, owner BLOB NOT NULL,
    executable INTEGER NOT NULL, rent_epoch INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transactions (
    seq INTEGER PRIMARY KEY, signature BLOB NOT NULL, slot INTEGER NOT NULL,
    block_time INTEGER NOT NULL, raw BLOB NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS address_signatures (
    address BLOB NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (address, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    slot INTEGER PRIMARY KEY, blockhash TEXT NOT NULL, block_time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transactions_signature ON transactions (substr(signature, 1, 8));
"""
BY_SIGNATURE = "substr(t.signature, 1, 8) = substr(?1, 1, 8) AND t.signature = ?1"

# A stored transaction's error as JSON text (NULL on success), read without decoding the whole meta.
ERR_COLUMN = (
    "CASE json_type(t.meta, '$.err') WHEN 'null' THEN NULL WHEN 'text' THEN json_quote(json_extract("
    "t.meta, '$.err')) ELSE json_extract(t.meta, '$.err') END"
)

LEDGER_FILE = "ledger.sqlite3"
LOCK_FILE = "ledger.lock"


class LedgerBusy(Exception):
    """Another localnet has this ledger open."""


class StoredAccount(NamedTuple):
    """An account row: the fields of `solders.account.Account`, in raw bytes, in the table's column order (a tuple:
    written as it is, without a copy per account)."""

    pubkey: bytes
    lamports: int
    owner: bytes
    executable: bool
    rent_epoch: int
    data: bytes


@dataclass(frozen=True)
class StoredTransaction:
    """A processed transaction as stored: `meta` is the RPC-shaped status meta."""

    seq: int
    signature: bytes
    slot: int
    block_time: int
    raw: bytes
    meta: dict[str, Any]


@dataclass(frozen=True)
class SignatureRow:
    """What getSignaturesForAddress answers about one transaction."""

    signature: bytes
    slot: int
    block_time: int
    err: Any  # the RPC's JSON of the error, None on success
    raw: bytes  # the transaction, for its memo


class Ledger:
    """The SQLite ledger of one localnet. Not thread-safe: use it from the server's loop."""

    def __init__(self, directory: Path) -> None:
        private_dir(directory)
        self.lock = open(directory / LOCK_FILE, "w")  # noqa: SIM115 - held for the ledger's lifetime
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.lock.close()
            raise LedgerBusy(f"the ledger {directory} is in use by another localnet") from None
        self.path = private_file(directory / LEDGER_FILE)
        self.db = sqlite3.connect(self.path, isolation_level="DEFERRED", check_same_thread=False)
        # Only this process opens the ledger (the flock above): with the file locks held for the connection's
        # life and the WAL index in its heap (no -shm), a commit makes no lock or shared-memory system calls.
        # Set before WAL mode, as SQLite requires for the heap index.
        self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable across a process kill; WAL fsyncs at checkpoints
        # Checkpoint every ~40 MB of WAL rather than 4 MB: fewer fsyncs, and a page changed by many
        # transactions is copied into the database once.
        self.db.execute("PRAGMA wal_autocheckpoint=10000")
        self.db.executescript(SCHEMA)
        self.db.commit()
        self._queued: deque[Callable[[], object]] = deque()  # writes not yet run, in order

    def _write(self, run: Callable[..., object], *args: Any) -> None:
        """Queue `run(*args)`: a statement of `self.db`, or `_insert_transaction`."""
        self._queued.append(partial(run, *args))

    def flush(self) -> None:
        """Run the queued writes (into the open SQLite transaction); every read does first. One that fails is
        dropped with its error; the later ones stay queued."""
        queued = self._queued
        while queued:
            queued.popleft()()

    # -- state -------------------------------------------------------------------------------

    def get_state(self, key: str) -> Any:
        self.flush()
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_state(self, key: str, value: Any) -> None:
        self._write(
            self.db.execute, "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    # -- accounts ----------------------------------------------------------------------------

    def put_accounts(self, accounts: list[StoredAccount]) -> None:
        if accounts:
            self._write(self.db.executemany, "INSERT OR REPLACE INTO accounts VALUES (?, ?, ?, ?, ?, ?)", accounts)

    def delete_accounts(self, pubkeys: list[bytes]) -> None:
        if pubkeys:
            self._write(self.db.executemany, "DELETE FROM accounts WHERE pubkey = ?", [(pubkey,) for pubkey in pubkeys])

    def accounts(self) -> Iterator[StoredAccount]:
        self.flush()
        for row in self.db.execute("SELECT pubkey, lamports, owner, executable, rent_epoch, data FROM accounts"):
            yield StoredAccount(row[0], row[1], row[2], bool(row[3]), row[4], row[5])

    # -- transactions ------------------------------------------------------------------------

    def put_transaction(
        self, signature: bytes, slot: int, block_time: int, raw: bytes, meta: dict[str, Any], addresses: list[bytes]
    ) -> None:
        """Queue the transaction's rows: `meta` is written as JSON when they run (nothing changes it meanwhile)."""
        self._write(self._insert_transaction, signature, slot, block_time, raw, meta, addresses)

    def _insert_transaction(
        self, signature: bytes, slot: int, block_time: int, raw: bytes, meta: dict[str, Any], addresses: list[bytes]
    ) -> None:
        cursor = self.db.execute(
            "INSERT INTO transactions (signature, slot, block_time, raw, meta) VALUES (?, ?, ?, ?, ?)",
            (signature, slot, block_time, raw, compact(meta).decode()),
        )
        seq = cursor.lastrowid
        assert seq is not None
        self.db.executemany(
            "INSERT OR IGNORE INTO address_signatures VALUES (?, ?)", [(address, seq) for address in addresses]
        )

    def transaction(self, signature: bytes) -> StoredTransaction | None:
        self.flush()
        row = self.db.execute(
            f"SELECT seq, signature, slot, block_time, raw, meta FROM transactions t WHERE {BY_SIGNATURE}",
            (signature,),
        ).fetchone()
        return StoredTransaction(row[0], row[1], row[2], row[3], row[4], json.loads(row[5])) if row else None

    def status(self, signature: bytes) -> tuple[int, Any] | None:
        """(slot, err) of a stored transaction, from two columns: the error cut out of the meta by SQLite."""
        self.flush()
        row = self.db.execute(
            f"SELECT slot, {ERR_COLUMN} FROM transactions t WHERE {BY_SIGNATURE}", (signature,)
        ).fetchone()
        return (row[0], None if row[1] is None else json.loads(row[1])) if row else None

    def transaction_count(self) -> int:
        self.flush()
        return int(self.db.execute("SELECT coalesce(max(seq), 0) FROM transactions").fetchone()[0])

    def seq(self, signature: bytes) -> int | None:
        """The ledger order of a stored transaction."""
        self.flush()
        row = self.db.execute(f"SELECT seq FROM transactions t WHERE {BY_SIGNATURE}", (signature,)).fetchone()
        return int(row[0]) if row else None

    def signatures_for_address(
        self, address: bytes, limit: int, before_seq: int | None, until_seq: int | None
    ) -> list[SignatureRow]:
        """Newest first: the transactions that mention `address`, strictly between `until` and `before`.
        Only the columns the answer needs: the error is cut out of the stored meta by SQLite."""
        self.flush()
        rows = self.db.execute(
            f"SELECT t.signature, t.slot, t.block_time, {ERR_COLUMN}, t.raw "
            "FROM address_signatures a JOIN transactions t ON t.seq = a.seq "
            "WHERE a.address = ? AND a.seq < ? AND a.seq > ? ORDER BY a.seq DESC LIMIT ?",
            (
                address,
                before_seq if before_seq is not None else 2**62,
                until_seq if until_seq is not None else -1,
                limit,
            ),
        )
        return [SignatureRow(r[0], r[1], r[2], None if r[3] is None else json.loads(r[3]), r[4]) for r in rows]

    # -- blocks ------------------------------------------------------------------------------

    def put_block(self, slot: int, blockhash: str, block_time: int) -> None:
        self._write(self.db.execute, "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?)", (slot, blockhash, block_time))

    def block_time(self, slot: int) -> int | None:
        self.flush()
        row = self.db.execute("SELECT block_time FROM blocks WHERE slot = ?", (slot,)).fetchone()
        return int(row[0]) if row else None

    @property
    def dirty(self) -> bool:
        """Written to since the last commit."""
        return bool(self._queued) or self.db.in_transaction

    def commit(self) -> None:
        self.flush()
        self.db.commit()

    def close(self) -> None:
        self.commit()
        self.db.close()
        self.lock.close()
