"""Fixtures of the indexer tests: a fresh localnet per test (0.3 s), a scripted history on it,
and database URLs for SQLite and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from ghostpay.indexer.models import DATA_TABLES, connect
from ghostpay.indexer.service import Indexer, IndexerConfig
from ghostpay.indexer.source import RpcSource
from ghostpay.indexer.verify import VerifyReport, verify
from tests.indexer.history import History, HistorySpec, generate
from tests.indexer.postgres import PostgresCluster, postgres  # noqa: F401 - the session fixture
from tests.localnet.conftest import LocalnetProcess

# Columns that record when or in which order rows were written, not what the chain says.
VOLATILE_COLUMNS = {"raw_events": {"id"}}


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[LocalnetProcess]:
    net = LocalnetProcess(tmp_path / "ledger").start()
    yield net
    net.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database()


def config(net: LocalnetProcess, db_url: str, ws_url: str | None = None, **options: Any) -> IndexerConfig:
    return IndexerConfig(net.http_url, ws_url or net.ws_url, db_url, **options)


async def backfill_async(net: LocalnetProcess, db_url: str, **options: Any) -> Indexer:
    """One `--once` run, in-process."""
    indexer = Indexer(config(net, db_url, **options))
    await indexer.run(once=True)
    return indexer


def backfill(net: LocalnetProcess, db_url: str, **options: Any) -> Indexer:
    return asyncio.run(backfill_async(net, db_url, **options))


async def verify_async(net: LocalnetProcess, db_url: str) -> VerifyReport:
    rpc = RpcSource(net.http_url)
    try:
        return await verify(open_db(db_url), rpc)
    finally:
        await rpc.close()


def run_verify(net: LocalnetProcess, db_url: str) -> VerifyReport:
    return asyncio.run(verify_async(net, db_url))


DEFAULT_HISTORY = HistorySpec()


def make_history(net: LocalnetProcess, spec: HistorySpec = DEFAULT_HISTORY) -> History:
    return asyncio.run(generate(net.http_url, spec))


def dump_tables(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every data table's rows, sorted, without the columns that depend on write order."""
    out = {}
    with engine.connect() as connection:
        for model in DATA_TABLES:
            table = model.__tablename__  # type: ignore[attr-defined]
            columns = [
                c["name"]
                for c in inspect(connection).get_columns(table)
                if c["name"] not in VOLATILE_COLUMNS.get(table, set())
            ]
            rows = connection.execute(text(f"SELECT {', '.join(columns)} FROM {table}")).all()
            out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out


def open_db(url: str) -> Engine:
    return connect(url)
