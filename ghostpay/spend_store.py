"""Where the spend ledger (`ghostpay.spending`) keeps its rows: a SQLite file, the default, shared by the
processes of one machine; or a PostgreSQL database (`postgresql://…`), shared by every process on every host
that names it.

Both run the ledger's same SQL (written with `?` placeholders). They differ only in how a reservation's
check-then-insert is made atomic: SQLite takes the file's one write lock (`BEGIN IMMEDIATE`); PostgreSQL locks
the wallet's row of `spend_wallets` (`SELECT … FOR UPDATE`), so the reservations of one wallet queue behind
each other on every host while other wallets reserve in parallel.

Each keeps its connections open between uses (SQLite: one per process, shared by its threads under a lock). A
write is durable when it commits (SQLite `synchronous=FULL`: the WAL is fsynced; PostgreSQL
`synchronous_commit` on) unless its session says `durable=False`: then a power cut may undo it, and only it and
the other non-durable writes committed after the last durable one (SQLite's WAL and PostgreSQL's log lose a
suffix, never a write in the middle). The ledger asks that only of writes whose loss is safe (a payment then
keeps counting until it is reconciled), never of a reservation or of a payment marked sent.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from ghostpay.paths import data_dir, private_file

LEDGER_FILE = "x402-spending.sqlite3"
LEDGER_ENV = "GHOST_X402_LEDGER"  # a SQLite file or postgresql:// URL, when no ledger is given
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
IDLE_CONNECTIONS = 8  # PostgreSQL connections a process keeps open between uses
SCHEMA_LOCK = 0x6768_6F73_7470_6179 & 0x7FFF_FFFF_FFFF_FFFF  # advisory lock: one process creates the tables

# The spends table; {id}, {real} and {amount} are each engine's types for the same columns.
SCHEMA = """
CREATE TABLE IF NOT EXISTS spends (
    id {id},
    wallet TEXT NOT NULL, mint TEXT NOT NULL, decimals INTEGER NOT NULL,
    amount {amount} NOT NULL, seller TEXT NOT NULL, agent TEXT, url TEXT,
    state TEXT NOT NULL, signature TEXT,
    created_at {real} NOT NULL, updated_at {real} NOT NULL,
    proof TEXT, blockhash TEXT);
CREATE INDEX IF NOT EXISTS spends_wallet_time ON spends (wallet, created_at);
CREATE INDEX IF NOT EXISTS spends_open ON spends (wallet, updated_at) WHERE state IN ('reserved', 'sent');
"""
# columns added after the first release: an older SQLite ledger gets them on open
LATER_COLUMNS = {"proof": "TEXT", "blockhash": "TEXT"}


class Session(Protocol):
    """One connection's statements (`?` placeholders), inside a transaction when opened for a write."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> None: ...


class LedgerStore(Protocol):
    location: str  # for messages: the file, or the URL without its password

    def session(self, lock_wallet: str | None = None, durable: bool = True) -> AbstractContextManager[Session]:
        """A Session; with `lock_wallet`, one write transaction holding the wallet's
        reservation lock until it ends (committed, or rolled back on an exception). `durable=False`: its writes
        may be lost to a power cut (with the non-durable ones after them), for the fsync they save."""
        ...


def is_postgres(location: str | Path | None) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def open_store(location: str | Path | None = None) -> LedgerStore:
    """The store at `location` (a file path or postgresql:// URL); None: `$GHOST_X402_LEDGER`, else the data
    folder's SQLite file."""
    chosen = location if location is not None else os.environ.get(LEDGER_ENV) or data_dir() / LEDGER_FILE
    if is_postgres(chosen):
        return PostgresStore(str(chosen))
    return SqliteStore(Path(chosen))


class _SqliteSession:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, tuple(params)).fetchall()

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql, tuple(params))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.db.execute(sql, tuple(params))


class SqliteStore:
    """One SQLite file (WAL) shared by the processes of one machine; writes take the file's lock. A process keeps
    one connection to it, its threads taking turns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = 0  # the process that opened _db: a forked child opens its own (SQLite forbids sharing one)
        self._synchronous = ""
        private_file(path)
        with self._lock:
            db = self._connection()
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA.format(id="INTEGER PRIMARY KEY AUTOINCREMENT", amount="INTEGER", real="REAL"))
            have = {row[1] for row in db.execute("PRAGMA table_info(spends)")}
            for column, kind in LATER_COLUMNS.items():
                if column not in have:
                    db.execute(f"ALTER TABLE spends ADD COLUMN {column} {kind}")

    def _connection(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._pid, self._synchronous = os.getpid(), ""
        return self._db

    def _sync(self, db: sqlite3.Connection, durable: bool) -> None:
        """FULL: a commit returns once the WAL is on disk; NORMAL: at the next FULL commit or checkpoint."""
        level = "FULL" if durable else "NORMAL"
        if level != self._synchronous:
            db.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level

    @contextmanager
    def session(self, lock_wallet: str | None = None, durable: bool = True) -> Iterator[Session]:
        with self._lock:
            db = self._connection()
            self._sync(db, durable)
            if lock_wallet is None:
                yield _SqliteSession(db)
                return
            db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes: check-then-insert is atomic
            try:
                yield _SqliteSession(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


class _PostgresSession:
    def __init__(self, db: Any) -> None:
        self.db = db

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.db.execute(_pg(sql), tuple(params)).fetchall())

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.db.execute(_pg(sql), tuple(params))
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.db.execute(_pg(sql), tuple(params))


def _pg(sql: str) -> str:
    """The ledger's `?` placeholders as psycopg's (the ledger's SQL has no other `?` or `%`)."""
    return sql.replace("?", "%s")


class PostgresStore:
    """A PostgreSQL database shared by every process and host naming it (psycopg 3, the indexer's driver);
    connections are kept open between uses, a few per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0] + "@" if len(netloc) == 2 else ""
        self.location = urlunsplit(parts._replace(netloc=user + netloc[-1]))  # no password in messages
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        tables = SCHEMA.format(id="BIGSERIAL PRIMARY KEY", amount="NUMERIC(20)", real="DOUBLE PRECISION")
        db = self._take()
        try:
            with db.transaction():
                db.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")  # concurrent CREATE IF NOT EXISTS collide
                for statement in [
                    *tables.split(";"),
                    "CREATE TABLE IF NOT EXISTS spend_wallets (wallet TEXT PRIMARY KEY)",
                ]:
                    if statement.strip():
                        db.execute(statement)
        finally:
            self._give_back(db)

    def _take(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            import psycopg

            return psycopg.connect(self.url, autocommit=True)

    def _give_back(self, db: Any) -> None:
        import psycopg

        if db.closed or db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            db.close()
        elif self._idle.qsize() < IDLE_CONNECTIONS:
            self._idle.put(db)
        else:
            db.close()

    @contextmanager
    def session(self, lock_wallet: str | None = None, durable: bool = True) -> Iterator[Session]:
        db = self._take()
        try:
            if lock_wallet is None and durable:
                yield _PostgresSession(db)
                return
            with db.transaction():  # committed at the end, rolled back on an exception
                session = _PostgresSession(db)
                if not durable:
                    session.run("SET LOCAL synchronous_commit TO OFF")
                if lock_wallet is None:
                    yield session
                    return
                session.run("INSERT INTO spend_wallets (wallet) VALUES (?) ON CONFLICT DO NOTHING", (lock_wallet,))
                # held until commit: every reservation of this wallet, on any host, waits here for the one before
                session.run("SELECT wallet FROM spend_wallets WHERE wallet = ? FOR UPDATE", (lock_wallet,))
                yield session
        finally:
            self._give_back(db)
