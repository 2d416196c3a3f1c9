"""A scripted history on a localnet, indexed into SQLite and into PostgreSQL: every event is
seen, `verify` finds no difference with the chain, replays change nothing, and the queries
answer from the tables."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from ghostpay.cli.indexed import session_run
from ghostpay.events import decode_logs
from ghostpay.indexer import evidence, process, queries, sqlite_read
from ghostpay.indexer.models import (
    Agent,
    DailyVolume,
    Feedback,
    IndexedTransaction,
    Payment,
    RawEvent,
    Reputation,
    SkipCounter,
    WorkOrder,
    WorkOrderTransition,
)
from ghostpay.indexer.process import Batch
from ghostpay.indexer.source import ChainTransaction, RpcSource
from ghostpay.indexer.sqlite_read import IndexUnavailable, open_readonly, sqlite_path
from tests.indexer.conftest import PostgresCluster, backfill, dump_tables, make_history, open_db, run_verify
from tests.indexer.history import History, HistorySpec
from tests.localnet.conftest import LocalnetProcess


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalnetProcess, History]]:
    """One localnet with the scripted history, shared by the tests of this module (read-only)."""
    net = LocalnetProcess(tmp_path_factory.mktemp("ingest") / "ledger").start()
    try:  # a history that fails to build must not leave the localnet running
        yield net, make_history(net, HistorySpec(payments=120))
    finally:
        net.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def indexed(
    request: pytest.FixtureRequest, scripted: tuple[LocalnetProcess, History], tmp_path_factory: pytest.TempPathFactory
) -> tuple[LocalnetProcess, History, str]:
    net, history = scripted
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'index.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        url = cluster.create_database()
    backfill(net, url)
    return net, history, url


def test_every_event_of_the_history_is_indexed(indexed: tuple[LocalnetProcess, History, str]) -> None:
    net, history, url = indexed
    engine = backfill(net, url).engine  # a second run finds nothing new
    with Session(engine) as session:
        by_name = dict(session.exec(select(RawEvent.name, func.count()).group_by(RawEvent.name)).all())
        assert by_name == history.event_counts
        assert session.exec(select(func.count()).select_from(IndexedTransaction)).one() == history.transactions
        assert session.get(SkipCounter, "failed_transactions").count == history.failed  # type: ignore[union-attr]
        assert (
            session.exec(select(func.count()).select_from(Payment)).one() == history.event_counts["X402PaymentRecorded"]
        )
        assert (
            session.exec(select(func.count()).select_from(Feedback)).one() == history.event_counts["FeedbackSubmitted"]
        )
        statuses = dict(session.exec(select(WorkOrder.status, func.count()).group_by(WorkOrder.status)).all())
        assert statuses == {"Completed": 4, "Resolved": 3, "Cancelled": 1, "Refunded": 3, "Declined": 1}
        rejected = session.exec(
            select(WorkOrderTransition).where(WorkOrderTransition.event == "DeliveryRejected")
        ).all()
        assert {(r.from_status, r.to_status) for r in rejected} == {("Submitted", "Rejected")} and len(rejected) == 2
        declined = session.exec(select(WorkOrder).where(WorkOrder.status == "Declined")).one()
        assert declined.refunded == declined.amount and declined.released == 0
        volumes = session.exec(select(func.sum(DailyVolume.payments))).one()
        assert volumes == history.event_counts["X402PaymentRecorded"]
        assert len(session.exec(select(DailyVolume.day).distinct()).all()) >= 3  # the clock moved days


def test_verify_finds_no_difference_with_the_chain(indexed: tuple[LocalnetProcess, History, str]) -> None:
    net, history, url = indexed
    report = run_verify(net, url)
    assert report.differences == []
    assert report.agents == len(history.agents) - 1  # the last one was closed


def test_reregistration_continues_the_reputation(indexed: tuple[LocalnetProcess, History, str]) -> None:
    """close_agent keeps the ReputationMetrics: the new account's counters restart, its reputation does not."""
    _, history, url = indexed
    address = str(history.reregistered)
    with Session(open_db(url)) as s:
        agent = s.get(Agent, address)
        rep = s.get(Reputation, address)
        assert agent is not None and rep is not None and not agent.closed and agent.registration == 2
        events = queries.event_feed(s, agent=address, limit=1000)
        registered = [i for i, e in enumerate(events) if e.name == "AgentRegistered"]
        assert len(registered) == 2 and events[registered[1] + 1].name == "ReputationUpdated"
        paid_before = sum(e.name == "X402PaymentRecorded" for e in events[: registered[1]])
        assert paid_before > 0
        # every payment of either registration is in the metrics; the account counts only the new ones
        assert rep.successful_payments + rep.failed_payments == paid_before + agent.x402_total_calls
        assert agent.reputation_score == rep.score == rep.chain_score > 0


def test_payments_record_their_rent_payer_and_mint_prices(indexed: tuple[LocalnetProcess, History, str]) -> None:
    _, history, url = indexed
    facilitator, cents = str(history.facilitator), str(history.cents_mint)
    with Session(open_db(url)) as s:
        payments = s.exec(select(Payment)).all()
        fronted = [p for p in payments if p.rent_payer == facilitator]
        assert len(fronted) == history.fronted_rent > 0
        assert all(p.rent_payer == p.payer for p in payments if p.rent_payer != facilitator)
        in_cents = [p for p in payments if p.mint == cents]
        assert len(in_cents) == history.cents_payments > 0
        assert all(2 <= p.amount <= 4 for p in in_cents)  # 0.02 to 0.04 of a 2-decimal token, never 200.00
        prices = queries.agent_prices(s, str(history.agents[2]))
        assert list(prices) == [str(history.mint), cents] and prices[cents] == 2 and prices[str(history.mint)] > 2


def test_replaying_every_transaction_changes_nothing(indexed: tuple[LocalnetProcess, History, str]) -> None:
    net, _, url = indexed
    engine = open_db(url)
    before = dump_tables(engine)

    async def everything() -> list[ChainTransaction]:
        rpc = RpcSource(net.http_url)
        try:
            infos = await rpc.signatures_after(None)
            return await rpc.transactions([i.signature for i in infos if not i.failed])
        finally:
            await rpc.close()

    transactions = asyncio.run(everything())
    batch = Batch(engine)
    assert not any(batch.apply(tx) for tx in transactions)  # at-least-once delivery ...
    batch.commit()
    assert batch.stats.duplicates == len(transactions)
    assert dump_tables(engine) == before  # ... exactly-once effect


def test_batches_written_after_the_next_one_is_applied_equal_a_sequential_run(
    request: pytest.FixtureRequest,
    indexed: tuple[LocalnetProcess, History, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The pipelined back-fill's order: batch n + 1 is applied in memory (its rows loaded) after batch
    n - 1 is written but before batch n is, taking n's rows from n. The same tables as the sequential
    run, and `verify` finds nothing."""
    net, _, clean = indexed
    if clean.startswith("sqlite"):
        url = f"sqlite:///{tmp_path_factory.mktemp('pipelined') / 'index.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    engine = open_db(url)

    async def everything() -> list[ChainTransaction]:
        rpc = RpcSource(net.http_url)
        try:
            infos = await rpc.signatures_after(None)
            fetched = iter(await rpc.transactions([i.signature for i in infos if not i.failed]))
            return [ChainTransaction(i.signature, i.slot, (), True) if i.failed else next(fetched) for i in infos]
        finally:
            await rpc.close()

    transactions = asyncio.run(everything())
    unwritten: Batch | None = None
    for i in range(0, len(transactions), 7):  # small batches: consecutive ones share agents and reputations
        batch = Batch(engine, after=unwritten)
        batch.apply_all(transactions[i : i + 7])
        batch.prepare(asyncio.run(_agent_accounts(net, batch)))
        if unwritten is not None:
            unwritten.write()
        unwritten = batch
    assert unwritten is not None
    unwritten.write()
    assert dump_tables(engine) == dump_tables(open_db(clean))
    assert run_verify(net, url).differences == []


@pytest.fixture(scope="module")
def one_at_a_time(
    scripted: tuple[LocalnetProcess, History], tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[ChainTransaction], dict[str, Any], dict[str, list[tuple[Any, ...]]]]:
    """The history's transactions, its agents' accounts, and the tables of applying one transaction per batch,
    each read from and committed to the database before the next (no batching, nothing carried)."""
    net, _ = scripted
    transactions, accounts = asyncio.run(_transactions_and_accounts(net))
    engine = open_db(f"sqlite:///{tmp_path_factory.mktemp('one-at-a-time') / 'index.db'}")
    for tx in transactions:
        batch = Batch(engine)
        batch.apply_all([tx])
        batch.prepare({a: accounts[a] for a in batch.needs_account})
        batch.write()
    return transactions, accounts, dump_tables(engine)


@pytest.mark.parametrize("seed", range(4))
def test_batches_of_any_size_carrying_rows_equal_one_transaction_at_a_time(
    seed: int,
    one_at_a_time: tuple[list[ChainTransaction], dict[str, Any], dict[str, list[tuple[Any, ...]]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The back-fill's batching, at random: batches of 1 to 80 transactions, each applied before the one
    before it is written (taking the state rows the back-fill holds, not the database's, as `Indexer` does),
    the carried rows bounded at random (so some batches drop them and read the database again). Whatever the
    cuts, the tables equal applying one transaction at a time; with the bound above the history's state rows,
    each state row is read from the database at most once (none twice: the rows carried, not re-read)."""
    transactions, accounts, expected = one_at_a_time
    caplog.set_level(logging.WARNING, "ghostpay.indexer.process")
    rng = random.Random(seed)
    unbounded = process.CARRIED_ROWS  # far above this history's state rows
    carried = rng.choice([3, 40, 400, unbounded])
    monkeypatch.setattr(process, "CARRIED_ROWS", carried)
    reads: Counter[tuple[str, Any]] = Counter()
    load = process.loaded_row

    def counted(model: Any, values: Any) -> process.Row:
        if not isinstance(values, dict):  # a row read from the database (new rows come as dicts)
            reads[model.__name__, tuple(values[k] for k in process.PRIMARY_KEYS[model])] += 1
        return load(model, values)

    monkeypatch.setattr(process, "loaded_row", counted)
    engine = open_db(f"sqlite:///{tmp_path / 'index.db'}")
    unwritten: Batch | None = None
    start = 0
    while start < len(transactions):
        size = rng.randint(1, 80)
        batch = Batch(engine, after=unwritten)
        batch.apply_all(transactions[start : start + size])
        batch.prepare({a: accounts[a] for a in batch.needs_account})
        if unwritten is not None:
            unwritten.write()
        unwritten, start = batch, start + size
    assert unwritten is not None
    unwritten.write()
    assert dump_tables(engine) == expected
    if carried == unbounded:
        assert max(reads.values(), default=0) <= 1, reads.most_common(3)
    assert "differs from the program's" not in caplog.text  # wherever a batch ends, the scores agree


def test_a_score_the_program_disagrees_with_is_logged_once_per_batch_with_its_transaction(
    one_at_a_time: tuple[list[ChainTransaction], dict[str, Any], dict[str, list[tuple[Any, ...]]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Our score is compared with the program's once per batch and agent, after the last transaction of the batch
    whose ReputationUpdated set it: with a scoring that is one point off, each batch warns once for every agent
    it rescored, naming that transaction."""
    transactions, accounts, _ = one_at_a_time
    score = process.reputation_score
    monkeypatch.setattr(process, "reputation_score", lambda m: dataclasses.replace(score(m), score=score(m).score + 1))
    engine = open_db(f"sqlite:///{tmp_path / 'index.db'}")
    expected: list[tuple[str, str]] = []
    size = 25
    with caplog.at_level(logging.WARNING, "ghostpay.indexer.process"):
        for start in range(0, len(transactions), size):
            last: dict[str, str] = {}  # agent → the batch's last transaction with its ReputationUpdated
            for tx in transactions[start : start + size]:
                for event in [] if tx.failed else decode_logs(tx.logs).events:
                    if event.name == "ReputationUpdated":
                        last[str(event.data.agent)] = tx.signature
            expected += sorted(last.items())
            batch = Batch(engine)
            batch.apply_all(transactions[start : start + size])
            batch.prepare({a: accounts[a] for a in batch.needs_account})
            batch.write()
    warned = [r.args for r in caplog.records if "differs from the program's" in r.getMessage()]
    assert len(expected) > len(transactions) // size  # several agents a batch
    assert sorted((agent, signature) for agent, _, _, signature in warned) == sorted(expected)
    assert all(ours == theirs + 1 for _, ours, theirs, _ in warned)


async def _transactions_and_accounts(net: LocalnetProcess) -> tuple[list[ChainTransaction], dict[str, Any]]:
    """Every transaction of the program (failed ones as the service lists them) and every agent's account."""
    rpc = RpcSource(net.http_url)
    try:
        infos = await rpc.signatures_after(None)
        fetched = iter(await rpc.transactions([i.signature for i in infos if not i.failed]))
        transactions = [ChainTransaction(i.signature, i.slot, (), True) if i.failed else next(fetched) for i in infos]
        agents = sorted({str(e.data.agent) for tx in transactions for e in decode_logs(tx.logs).events})
        return transactions, await rpc.agent_accounts(agents)
    finally:
        await rpc.close()


async def _agent_accounts(net: LocalnetProcess, batch: Batch) -> dict[str, Any]:
    rpc = RpcSource(net.http_url)
    try:
        return await rpc.agent_accounts(sorted(batch.needs_account)) if batch.needs_account else {}
    finally:
        await rpc.close()


def test_queries(indexed: tuple[LocalnetProcess, History, str]) -> None:
    _, history, url = indexed
    engine = open_db(url)
    mint = str(history.mint)
    with Session(engine) as s:
        everyone = queries.search_agents(s, limit=100)
        assert everyone.total == len(history.agents) - 1
        scores = [a.reputation_score for a in everyone.items]
        assert scores == sorted(scores, reverse=True)
        translators = queries.search_agents(s, capability="TRANSLATE", token=mint, max_price=10**9, sort="price")
        assert translators.items and all(
            "translate" in queries.agent_capabilities(s, a.address) for a in translators.items
        )
        prices = [queries.agent_prices(s, a.address)[mint] for a in translators.items]
        assert prices == sorted(prices)
        cheapest = min(queries.agent_prices(s, a.address)[mint] for a in everyone.items if a.x402_enabled)
        under = queries.search_agents(s, token=mint, max_price=cheapest).items
        assert under and {queries.agent_prices(s, a.address)[mint] for a in under} == {cheapest}
        cents = str(history.cents_mint)  # agent-2 asks 0.02 (2 atomic units) of it, 30,000+ of the 6-decimal mint
        assert [a.address for a in queries.search_agents(s, token=cents, max_price=2).items] == [str(history.agents[2])]
        assert queries.search_agents(s, token=cents, max_price=1).items == []
        with pytest.raises(queries.QueryError, match="needs a token"):
            queries.search_agents(s, max_price=cheapest)
        top = everyone.items[0]
        assert queries.search_agents(s, min_reputation=top.reputation_score).items[0].address == top.address
        assert all(a.tier == top.tier for a in queries.search_agents(s, tier=top.tier.lower()).items)
        first = queries.search_agents(s, limit=2)
        second = queries.search_agents(s, limit=2, after=first.next_after)
        assert [a.address for a in first.items + second.items] == [a.address for a in everyone.items[:4]]
        with pytest.raises(queries.QueryError):
            queries.search_agents(s, tier="BRONZE")

        busiest = max(everyone.items, key=lambda a: a.x402_total_calls)
        by_date = queries.payment_history(s, busiest.address, limit=500)
        assert by_date.total == busiest.x402_total_calls == len(by_date.items)
        assert [p.slot for p in by_date.items] == sorted((p.slot for p in by_date.items), reverse=True)
        by_amount = queries.payment_history(s, busiest.address, sort="amount", descending=False, limit=3, offset=1)
        amounts = sorted(p.amount for p in by_date.items)
        assert [p.amount for p in by_amount.items] == amounts[1:4]

        stats = queries.payment_analytics(s)
        assert stats.payments == history.event_counts["X402PaymentRecorded"]
        assert stats.by_outcome["success"] + stats.by_outcome["failed"] == history.event_counts["FeedbackSubmitted"]
        assert {t.mint for t in stats.by_token} == {mint, cents}
        assert [t.average_per_call >= 10_000 for t in stats.by_token] == [True, False]  # by volume: the 6-decimal first
        assert stats.top_earners[0].volume == max(e.volume for e in stats.top_earners)
        assert stats.active_agents == len(history.agents) and 0 < stats.success_rate_bps <= 10_000  # type: ignore[operator]
        assert queries.payment_analytics(s, since=2**40).payments == 0

        orders = queries.work_orders(s, limit=100)
        assert orders.total == 12
        client = orders.items[0].client
        assert queries.work_orders(s, client=client).total == 12
        assert queries.work_orders(s, provider=orders.items[0].provider, status="resolved").total == 3

        feed = queries.event_feed(s, names=["X402PaymentRecorded"], limit=10)
        newer = queries.event_feed(s, after=feed[-1].id, names=["X402PaymentRecorded"], limit=1000)
        assert len(feed) + len(newer) == stats.payments and feed[0].data["amount"] >= 2
        assert all(e.agent == busiest.address for e in queries.event_feed(s, agent=busiest.address))


def test_a_backfill_interrupted_mid_batch_resumes_without_gaps_or_duplicates(
    request: pytest.FixtureRequest,
    indexed: tuple[LocalnetProcess, History, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """An error half-way through the second batch (its rows read, part of its transactions applied in
    memory) rolls that batch back; the next run resumes from the first batch's cursor and ends with
    exactly the tables of the uninterrupted run."""
    net, _, clean = indexed
    if clean.startswith("sqlite"):
        url = f"sqlite:///{tmp_path_factory.mktemp('interrupted') / 'index.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    batch_size = 40
    apply = Batch._apply
    seen = 0

    def interrupting(self: Batch, tx: ChainTransaction, decoded: object) -> int:
        nonlocal seen
        seen += 1
        if seen == batch_size + batch_size // 2:  # the middle of the second batch
            raise RuntimeError("interrupted")
        return apply(self, tx, decoded)  # type: ignore[arg-type]

    monkeypatch.setattr(Batch, "_apply", interrupting)
    with pytest.raises(RuntimeError, match="interrupted"):
        backfill(net, url, batch_size=batch_size)
    with Session(open_db(url)) as session:  # the first batch is in, nothing of the second
        assert 0 < session.exec(select(func.count()).select_from(IndexedTransaction)).one() <= batch_size
    monkeypatch.setattr(Batch, "_apply", apply)
    backfill(net, url, batch_size=batch_size)
    assert dump_tables(open_db(url)) == dump_tables(open_db(clean))
    assert run_verify(net, url).differences == []


def test_the_cli_read_path_answers_as_the_queries_do(indexed: tuple[LocalnetProcess, History, str]) -> None:
    """`sqlite_read` (plain sqlite3, the CLI's path) and `queries` (sqlmodel) give the same pages."""
    _, history, url = indexed
    path = sqlite_path(url)
    if path is None:
        pytest.skip("the plain-sqlite3 read path is for SQLite indexes")
    mint = str(history.mint)
    searches: list[dict[str, Any]] = [
        {},
        {"sort": "price"},
        {"capability": "TRANSLATE", "token": mint, "max_price": 10**9, "sort": "price"},
        {"x402_enabled": True},
        {"active": None, "min_reputation": 1},
        {"token": mint},
        {"limit": 2},
        {"limit": 2, "sort": "price"},
        {"token": mint, "sort": "price"},
    ]
    with Session(open_db(url)) as session, open_readonly(path) as index:
        for filters in searches:
            expected = queries.search_agents(session, **filters)
            got = sqlite_read.search_agents(index, **filters)
            assert got.total == expected.total > 0, filters
            assert got.next_after == expected.next_after, filters
            if got.next_after is not None:  # the next keyset page too
                after = {**filters, "after": got.next_after}
                assert [a.address for a in sqlite_read.search_agents(index, **after).items] == [
                    a.address for a in queries.search_agents(session, **after).items
                ], filters
            listed = ("capabilities", "prices", "earnings", "evidence")
            assert [{k: v for k, v in vars(a).items() if k not in listed} for a in got.items] == [
                a.model_dump() for a in expected.items
            ]
            run = session_run(session)
            proofs = evidence.evidence(run, [a.address for a in got.items], evidence.trusted_mints(run))
            for a in got.items:
                assert a.capabilities == queries.agent_capabilities(session, a.address)
                assert a.prices == queries.agent_prices(session, a.address)
                assert a.earnings == queries.agent_earnings(session, a.address)
                paid = queries.payment_history(session, a.address, limit=1).total  # every registration's
                assert a.evidence == proofs[a.address] and a.evidence.x402.calls == paid
        trusted = list(evidence.trusted_mints(session_run(session)))
        for filters in (
            {"sort": "trust"},
            {"sort": "trust", "limit": 2},
            {"sort": "trust", "limit": 1, "min_payers": 1},
            {"min_volume": {mint: 1}},
            {"min_payers": 1},
            {"min_payers": 0, "limit": 2},
        ):
            expected = queries.search_agents(session, trusted=trusted, **filters)
            got = sqlite_read.search_agents(index, **filters)
            assert (got.total, got.next_after, [a.address for a in got.items]) == (
                expected.total,
                expected.next_after,
                [a.address for a in expected.items],
            ), filters
            if got.next_after is not None:  # the next keyset page too
                after = {**filters, "after": got.next_after}
                assert [a.address for a in sqlite_read.search_agents(index, **after).items] == [
                    a.address for a in queries.search_agents(session, trusted=trusted, **after).items
                ], filters
        assert queries.search_agents(session, min_volume={mint: 1}).total > 0
        busiest = max(queries.search_agents(session, limit=100).items, key=lambda a: a.x402_total_calls)
        for sort, descending in (("date", True), ("amount", False)):
            expected_payments = queries.payment_history(
                session, busiest.address, sort=sort, descending=descending, limit=30, offset=2
            )
            got_payments = sqlite_read.payment_history(
                index, busiest.address, sort=sort, descending=descending, limit=30, offset=2
            )
            assert got_payments.total == expected_payments.total > 0
            assert [vars(p) for p in got_payments.items] == [p.model_dump() for p in expected_payments.items]
        for bad in ({"limit": 0}, {"max_price": 1}):  # a price without its token is refused by both
            with pytest.raises(queries.QueryError):
                sqlite_read.search_agents(index, **bad)
            with pytest.raises(queries.QueryError):
                queries.search_agents(session, **bad)
    with pytest.raises(IndexUnavailable), open_readonly(path + ".missing"):
        pass
