"""Where GhostPay keeps local state (ledgers, databases, keys)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

DATA_DIR_ENV = "GHOSTPAY_HOME"


def data_dir() -> Path:
    """`$GHOSTPAY_HOME`, else `$XDG_DATA_HOME/ghostpay`, else `~/.local/share/ghostpay`."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "ghostpay"


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner can enter (0700), created with its missing parents.

    Local state holds secrets (webhook secrets in the index, API keys, spend records): the folders GhostPay
    creates are 0700 whatever the umask; folders that already exist are left as their owner set them."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode passes through the umask
    return path


def private_file(path: Path | str) -> Path:
    """`path` created empty as 0600 (in a private folder) unless it exists, before a database opens it.

    SQLite gives its -wal and -shm files the database file's permissions, so they stay private too."""
    path = Path(path)
    private_dir(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return path


def private_sqlite(path: Path | str, schema: str) -> sqlite3.Connection:
    """A SQLite database at `path` (`:memory:`: in memory) with `schema` run, in autocommit, shared by the
    process's threads (the caller locks), its file private and in WAL mode."""
    memory = str(path) == ":memory:"
    db = sqlite3.connect(":memory:" if memory else private_file(path), check_same_thread=False, isolation_level=None)
    if not memory:
        db.execute("PRAGMA journal_mode=WAL")
    db.executescript(schema)
    return db
