"""What keeps an index database honest: it holds one chain, and one indexer writes it.

- The chain's genesis hash is recorded at the first run; a run against another chain is refused
  (`ChainMismatch`, with the `--reset` hint) instead of mixing two histories in one database.
- A writer lock: a file lock beside a SQLite database, a session advisory lock in PostgreSQL (both
  released by the operating system or the server if the process dies), so a second indexer on the
  same database is refused (`IndexerBusy`) rather than racing the first one's cursor.
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Column, MetaData, String, Table, select, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from ghostpay.indexer.models import migrate

CHAIN = Table("indexed_chain", MetaData(), Column("genesis_hash", String, primary_key=True))


class GuardError(RuntimeError):
    """Base of the guard's refusals (one line for the terminal)."""


class ChainMismatch(GuardError):
    """The database was built from another chain."""


class IndexerBusy(GuardError):
    """Another indexer is writing this database."""


def describe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def check_chain(engine: Engine, genesis_hash: str, rpc_url: str) -> None:
    """Record the chain on first use; refuse a database recorded for another chain."""
    with engine.begin() as connection:
        CHAIN.create(connection, checkfirst=True)
        stored = connection.execute(select(CHAIN.c.genesis_hash)).scalar()
        if stored is None:
            connection.execute(CHAIN.insert().values(genesis_hash=genesis_hash))
        elif stored != genesis_hash:
            raise ChainMismatch(
                f"the database {describe(engine)} indexes another chain (genesis {stored}), not the one at "
                f"{rpc_url} (genesis {genesis_hash}); point --db at another database, or start this one over "
                "with 'ghost indexer run --reset'"
            )


def indexed_chain(engine: Engine) -> str | None:
    """The genesis hash of the chain the database indexes, or None before the first run recorded it."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as connection:
            return connection.execute(select(CHAIN.c.genesis_hash)).scalar()
    except SQLAlchemyError:  # no such table yet
        return None


def reset_database(engine: Engine) -> None:
    """Drop every table of the index (and the recorded chain), then create the schema afresh."""
    with engine.begin() as connection:
        CHAIN.drop(connection, checkfirst=True)
        SQLModel.metadata.drop_all(connection)
    migrate(engine)


def _lock_key(engine: Engine) -> int:
    """A stable signed 64-bit advisory-lock key for this database."""
    digest = hashlib.sha256(f"ghostpay-indexer:{engine.url.database}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class WriterLock:
    """Held for an indexer's whole run: `acquire()` raises `IndexerBusy` if another indexer holds it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._file: IO[str] | None = None
        self._connection: Connection | None = None

    def acquire(self) -> WriterLock:
        busy = IndexerBusy(
            f"another indexer is writing {describe(self.engine)}; stop it first, or index into another --db"
        )
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database
            if not database or database == ":memory:":
                return self  # a private in-memory database: nobody else can write it
            self._file = open(Path(database).with_name(Path(database).name + ".lock"), "w")  # noqa: SIM115 - held while the lock is
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._file.close()
                self._file = None
                raise busy from None
        elif self.engine.dialect.name == "postgresql":
            self._connection = self.engine.connect()
            got = self._connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": _lock_key(self.engine)}
            ).scalar()
            self._connection.commit()
            if not got:
                self._connection.close()
                self._connection = None
                raise busy
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None
        if self._connection is not None:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _lock_key(self.engine)})
            self._connection.commit()
            self._connection.close()
            self._connection = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
