"""A PostgreSQL back-fill's writes in a process of their own.

A back-fill fetches and applies the next batches while one is written: in one process, the write, mostly
waiting on the server (a COPY or a statement's round trip at a time), had to take the GIL back after every wait
from the busy loop and apply thread, and was the pipeline's slowest stage. Here a forked
process holds its own connection and executes each batch's `Plan` (steps of plain values, made by
`Batch.plan`) in one database transaction, the cursor with it, and answers once it has committed: the
batches commit one at a time, in order, as before. Nothing else changes: the same statements, the same rows,
one transaction per batch. The writer dies with the indexer (a batch it had not committed rolls back); the
indexer's signals are not its own: a SIGTERM or Ctrl-C stops the indexer, which finishes its batch and then
closes the pipe, and the writer exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psycopg

FORK = multiprocessing.get_context("fork")  # the parent's modules loaded already: no start-up imports
JOIN_SECONDS = 10.0
PR_SET_PDEATHSIG = 1  # prctl(2)


COPY, EXECUTE = "copy", "execute"


@dataclass
class Plan:
    """One database transaction's steps, in order: (COPY, "COPY … FROM STDIN", rows) or (EXECUTE, SQL, parameter
    rows for `executemany`), all plain values."""

    steps: list[tuple[str, str, list[Any]]] = field(default_factory=list)


class WriteFailed(RuntimeError):
    """The writer process rolled a batch back (its error and traceback in the message), or is gone."""


def execute(connection: psycopg.Connection[Any], plan: Plan) -> None:
    """Run `plan` in `connection`'s transaction (not committed)."""
    with connection.cursor() as cursor:
        for kind, sql, rows in plan.steps:
            if kind == COPY:
                with cursor.copy(sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(sql, rows)


def _die_with_the_indexer() -> None:
    """SIGKILL this process when the indexer dies (Linux): it holds copies of the indexer's sockets, the writer
    lock's connection among them, which must close with the indexer. A batch being written rolls back."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl(
            PR_SET_PDEATHSIG, signal.SIGKILL
        )


def _serve(conninfo: str, requests: Connection, parent_end: Connection, indexer: int) -> None:
    """The writer process: each plan received is executed and committed, then answered (None, or the error)."""
    _die_with_the_indexer()
    if os.getppid() != indexer:  # it died before the line above
        return
    parent_end.close()  # so the indexer's exit closes the pipe
    signal.set_wakeup_fd(-1)  # the indexer's event loop's, inherited
    for stop in (signal.SIGINT, signal.SIGTERM):  # sent to the indexer's whole group: the indexer stops, not this
        signal.signal(stop, signal.SIG_IGN)
    with psycopg.connect(conninfo) as connection:
        while True:
            try:
                plan = requests.recv()
            except EOFError:  # the indexer is gone: anything uncommitted rolls back with the connection
                return
            try:
                execute(connection, plan)
                connection.commit()
            except Exception:  # noqa: BLE001 - handed to the indexer, which raises it
                connection.rollback()
                requests.send(traceback.format_exc())
            else:
                requests.send(None)


class WriterProcess:
    """`write(plan)` executes and commits a plan in the writer process; `close()` ends it."""

    def __init__(self, conninfo: str) -> None:
        self._pipe, child_end = FORK.Pipe()
        self.process = FORK.Process(target=_serve, args=(conninfo, child_end, self._pipe, os.getpid()), daemon=True)
        self.process.start()
        child_end.close()

    def write(self, plan: Plan) -> None:
        """Committed when this returns. `WriteFailed`: the plan was rolled back (its error), or the writer is gone
        (it may have committed: the cursor in the database says)."""
        try:
            self._pipe.send(plan)
            error = self._pipe.recv()
        except (EOFError, OSError) as exc:
            raise WriteFailed(f"the writer process (pid {self.process.pid}) is gone: {exc}") from exc
        if error is not None:
            raise WriteFailed(error)

    def close(self) -> None:
        self._pipe.close()
        self.process.join(JOIN_SECONDS)
        if self.process.is_alive():  # stuck on the server: its transaction is not committed
            self.process.kill()
            self.process.join()
