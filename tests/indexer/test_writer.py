"""A PostgreSQL back-fill writes through a process of its own (`ghostpay.indexer.writer`): the same tables as
writing on the indexer's write thread, one transaction per batch (a failed plan commits nothing), and the
process ends with the indexer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest

from ghostpay.indexer.models import Cursor, IndexedTransaction, table_of
from ghostpay.indexer.service import Indexer
from ghostpay.indexer.writer import COPY, EXECUTE, Plan, WriteFailed, WriterProcess
from tests.indexer.conftest import PostgresCluster, backfill, dump_tables, make_history, open_db, run_verify
from tests.indexer.history import HistorySpec
from tests.localnet.conftest import LocalnetProcess

TRANSACTIONS = table_of(IndexedTransaction).name
BATCH = 16  # small batches: many commits through the writer, consecutive ones sharing rows


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalnetProcess]:
    net = LocalnetProcess(tmp_path_factory.mktemp("writer") / "ledger").start()
    try:
        make_history(net, HistorySpec(payments=80, seed=5))
        yield net
    finally:
        net.stop()


def test_the_writer_process_writes_the_same_tables_as_the_write_thread(
    chain: LocalnetProcess, postgres: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    through_process, on_thread = postgres.create_database(), postgres.create_database()
    writers: list[WriterProcess] = []
    make_writer = Indexer._writer

    def counted(self: Indexer) -> WriterProcess | None:
        writer = make_writer(self)
        if writer is not None:
            writers.append(writer)
        return writer

    monkeypatch.setattr(Indexer, "_writer", counted)
    applied = backfill(chain, through_process, batch_size=BATCH).totals.stats.transactions
    assert len(writers) == 1 and writers[0].process.exitcode == 0  # used, and ended with the back-fill
    monkeypatch.setattr(Indexer, "_writer", lambda self: None)
    backfill(chain, on_thread, batch_size=BATCH)
    assert dump_tables(open_db(through_process)) == dump_tables(open_db(on_thread))
    assert applied > 10 * BATCH
    with open_db(through_process).connect() as connection, open_db(on_thread).connect() as other:
        cursor = table_of(Cursor)
        assert connection.execute(cursor.select()).one().slot == other.execute(cursor.select()).one().slot
    assert run_verify(chain, through_process).differences == []


def test_a_failed_plan_commits_none_of_its_steps(postgres: PostgresCluster) -> None:
    url = postgres.create_database()
    open_db(url)  # the schema
    copy = (COPY, f"COPY {TRANSACTIONS} (signature, slot, events, skipped) FROM STDIN", [["sig-a", 1, 0, 0]])
    duplicate = (EXECUTE, f"INSERT INTO {TRANSACTIONS} (signature, slot, events, skipped) VALUES (%s, 2, 0, 0)")
    writer = WriterProcess(url)
    try:
        with pytest.raises(WriteFailed, match="UniqueViolation"):
            writer.write(Plan([copy, (*duplicate, [("sig-a",)])]))
        writer.write(Plan([(*duplicate, [("sig-b",)])]))  # the process goes on after a failed plan
    finally:
        writer.close()
    with psycopg.connect(url) as connection:
        assert connection.execute(f"SELECT signature FROM {TRANSACTIONS}").fetchall() == [("sig-b",)]


def test_the_writer_process_ends_with_the_indexer(postgres: PostgresCluster) -> None:
    """SIGKILL the process that started a writer: the writer goes too (it holds copies of its sockets)."""
    url = postgres.create_database()
    code = (
        "import sys, time\n"
        "from ghostpay.indexer.writer import WriterProcess\n"
        f"writer = WriterProcess({url!r})\n"
        "print(writer.process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    indexer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert indexer.stdout is not None
    writer_pid = int(indexer.stdout.readline())
    os.kill(indexer.pid, signal.SIGKILL)
    indexer.wait()
    deadline = time.monotonic() + 10
    while _alive(writer_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(writer_pid)


def _alive(pid: int) -> bool:
    """Running (not a zombie: an orphan is reaped by init, a zombie here would be one init has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_writer_process_outlives_the_indexers_stop_signals(postgres: PostgresCluster) -> None:
    """SIGTERM and Ctrl-C reach the indexer's whole process group: the indexer stops after its batch, so the
    writer must not die under that batch; it ends when the indexer closes the pipe."""
    url = postgres.create_database()
    open_db(url)
    insert = f"INSERT INTO {TRANSACTIONS} (signature, slot, events, skipped) VALUES (%s, 1, 0, 0)"
    writer = WriterProcess(url)
    writer.write(Plan([(EXECUTE, insert, [("before",)])]))  # running: its handlers are set
    for stop in (signal.SIGTERM, signal.SIGINT):
        os.kill(writer.process.pid, stop)
    writer.write(Plan([(EXECUTE, insert, [("after",)])]))
    writer.close()
    assert writer.process.exitcode == 0
    with psycopg.connect(url) as connection:
        rows = connection.execute(f"SELECT signature FROM {TRANSACTIONS} ORDER BY signature").fetchall()
    assert rows == [("after",), ("before",)]
