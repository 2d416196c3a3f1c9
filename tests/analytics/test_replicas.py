"""API replicas on one PostgreSQL: one writer (`ghost indexer run`) and three readers (`ghost indexer serve`),
each a real process. They answer the same; the live feed reaches the subscribers of every replica by the
writer's NOTIFY (no reads while nothing is indexed), and through a LISTEN connection killed on the server;
three webhook dispatchers send each delivery once per attempt."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlmodel import Session, select
from starlette.requests import Request
from starlette.responses import Response

from ghostpay.analytics.feed import LISTEN_APPLICATION
from ghostpay.analytics.webhooks import DeliverySettings, WebhookDelivery, add_endpoint
from ghostpay.indexer.models import RawEvent, connect
from ghostpay.indexer.service import Indexer, IndexerConfig
from tests.analytics.conftest import GhostServer, start_localnet, wait_for
from tests.analytics.receiver import Received, Receiver, run_receiver
from tests.analytics.test_webhooks import RunningDispatcher
from tests.analytics.world import World, build_sync
from tests.indexer.postgres import PostgresCluster

REPLICAS = 3
WEEK = 7 * 86_400
# Every request answered from the index alone: the same on every replica at the same cursor.
SAME_PATHS = (
    "/api/agents?sort=price",
    "/api/agents?sort=newest&limit=2",
    f"/api/metrics/volume?period={WEEK}&buckets=7",
    "/discovery/resources",
    "/discovery/search?query=translate",
    "/api/agents?token=USDC&max_price=0.02",
)
# now, the chain's slot at the moment of asking, and the newest slot the writer saw (it notes it as slots pass)
VOLATILE = {"period", "chain_slot", "lag_slots", "seen_slot"}


@dataclass
class Cluster:
    world: World
    writer: subprocess.Popen[bytes]
    replicas: list[GhostServer] = field(default_factory=list)

    def metric(self, replica: GhostServer, name: str) -> float:
        text = httpx.get(replica.url + "metrics", timeout=30).text
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert found, f"{name} not in /metrics"
        return float(found.group(1))


def event_ids(world: World, signature: str) -> list[int]:
    """The feed positions of the transaction's events, as the writer indexed them (none yet: [])."""
    engine = connect(world.db_url)
    try:
        with Session(engine) as session:
            return [
                int(i or 0)
                for i in session.exec(select(RawEvent.id).where(RawEvent.signature == signature).order_by(RawEvent.id))
            ]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresCluster) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("replicas")
    net = start_localnet(folder)
    ghost = str(Path(sys.executable).with_name("ghost"))
    try:
        world = build_sync(net, postgres.create_database(), folder / "home")
        log = (folder / "writer.log").open("wb")
        writer = subprocess.Popen(
            [ghost, "-u", net.http_url, "--db", world.db_url, "indexer", "run"], stdout=log, stderr=log
        )
        running = Cluster(world, writer)
        try:
            for _ in range(REPLICAS):
                running.replicas.append(GhostServer(world, "indexer", "serve").__enter__())
            yield running
        finally:
            for replica in running.replicas:
                replica.__exit__()
            writer.send_signal(signal.SIGTERM)
            writer.wait(30)
            log.close()
    finally:
        net.stop()


def answers(replica: GhostServer) -> dict[str, Any]:
    out = {}
    for path in (*SAME_PATHS, "/api/status", f"/api/metrics/x402?period={WEEK}"):
        answer = httpx.get(replica.url + path.lstrip("/"), timeout=30)
        assert answer.status_code == 200, (path, answer.text)
        out[path] = {k: v for k, v in answer.json().items() if k not in VOLATILE}
    return out


def test_replicas_answer_the_same(cluster: Cluster) -> None:
    first = [answers(r) for r in cluster.replicas]
    assert first[0]["/api/agents?sort=price"]["items"]  # the history is there
    assert first == [first[0]] * REPLICAS
    paid = asyncio.run(
        cluster.world.pay(cluster.world.payers[0], "translator", cluster.world.usdc, Decimal("0.01"), True)
    )
    wait_for(lambda: event_ids(cluster.world, paid.signature), what="the writer to index the payment")
    after = [answers(r) for r in cluster.replicas]
    assert after == [after[0]] * REPLICAS
    assert after[0]["/api/status"]["newest_event_id"] > first[0]["/api/status"]["newest_event_id"]


class Subscriber:
    """An SSE client of one replica in a thread, collecting the events' data."""

    def __init__(self, url: str) -> None:
        self.url = url + "api/events"
        self.events: list[dict[str, Any]] = []
        self.open = threading.Event()
        self.client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.open.wait(30), "the stream did not open"

    def _read(self) -> None:
        try:
            with self.client.stream("GET", self.url) as stream:
                for line in stream.iter_lines():
                    self.open.set()
                    if line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))
        except httpx.HTTPError:
            pass  # closed at the end of the test

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def subscribers(cluster: Cluster) -> Iterator[list[Subscriber]]:
    opened = [Subscriber(r.url) for r in cluster.replicas]
    yield opened
    for s in opened:
        s.close()


def test_an_event_reaches_every_replica_by_notify_without_polling(
    cluster: Cluster, subscribers: list[Subscriber]
) -> None:
    reads = [cluster.metric(r, "ghostpay_live_feed_reads_total") for r in cluster.replicas]
    woken = [cluster.metric(r, "ghostpay_live_feed_wakeups_total") for r in cluster.replicas]
    threading.Event().wait(2.0)  # four of the old 0.5 s polls per stream
    assert [cluster.metric(r, "ghostpay_live_feed_reads_total") for r in cluster.replicas] == reads  # no polling

    world = cluster.world
    paid = asyncio.run(world.pay(world.payers[1], "summarizer", world.usdc, Decimal("0.02")))
    written = wait_for(lambda: event_ids(world, paid.signature), what="the writer to index the payment")
    for s in subscribers:  # the payment and the reputation it moved: one commit, one wake-up, one read
        wait_for(lambda s=s: len(s.events) >= len(written), what=f"the payment on {s.url}")
    assert [[e["id"] for e in s.events] for s in subscribers] == [written] * REPLICAS
    assert all(
        cluster.metric(r, "ghostpay_live_feed_wakeups_total") > w for r, w in zip(cluster.replicas, woken, strict=True)
    )


def listeners(postgres: PostgresCluster, database: str, terminate: bool = False) -> int:
    """How many LISTEN connections of the replicas the server has on `database` (terminated with `terminate`)."""
    what = "pg_terminate_backend(pid)" if terminate else "pid"
    with psycopg.connect(postgres.url(), autocommit=True) as connection:
        return len(
            connection.execute(
                f"SELECT {what} FROM pg_stat_activity WHERE application_name = %s AND datname = %s",
                (LISTEN_APPLICATION, database),
            ).fetchall()
        )


def test_a_killed_listen_connection_loses_nothing(
    cluster: Cluster, subscribers: list[Subscriber], postgres: PostgresCluster
) -> None:
    """Every replica is frozen (SIGSTOP) while its LISTEN connection is terminated on the server and a payment
    is indexed: the NOTIFY reaches no one. Resumed, each opens its LISTEN connection again and its stream
    reads the payment from its position."""
    world = cluster.world
    database = world.db_url.rsplit("/", 1)[1]
    wait_for(lambda: listeners(postgres, database) == REPLICAS, what="every replica to LISTEN")
    reconnects = [cluster.metric(r, "ghostpay_live_feed_reconnects_total") for r in cluster.replicas]
    for replica in cluster.replicas:
        os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        assert listeners(postgres, database, terminate=True) == REPLICAS
        paid = asyncio.run(world.pay(world.payers[0], "coder", world.usdc, Decimal("0.05")))
        written = wait_for(lambda: event_ids(world, paid.signature), what="the writer to index the payment")
    finally:
        for replica in cluster.replicas:
            os.kill(replica.process.pid, signal.SIGCONT)
    for s in subscribers:
        wait_for(lambda s=s: len(s.events) >= len(written), what=f"the payment on {s.url}")
    assert [[e["id"] for e in s.events] for s in subscribers] == [written] * REPLICAS  # all of them, once
    assert [cluster.metric(r, "ghostpay_live_feed_reconnects_total") for r in cluster.replicas] == [
        n + 1 for n in reconnects
    ]


class FirstAttemptFails(Receiver):
    """Answers 500 to the first POST of each delivery, 200 to the ones after."""

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        ident = json.loads(body)["id"]
        answer = "ok" if any(json.loads(r.body)["id"] == ident for r in self.requests) else "fail"
        self.requests.append(Received({k.lower(): v for k, v in request.headers.items()}, body, answer))
        return Response(status_code=200 if answer == "ok" else 500)


WORKERS, ENDPOINTS = 3, 4
QUICK = DeliverySettings(timeout=5, first_retry=0.1, max_retry=0.1, poll_interval=0.02, batch=8)


def test_three_dispatchers_send_each_delivery_once_per_attempt(cluster: Cluster, postgres: PostgresCluster) -> None:
    """Four endpoints subscribed to every event of the history: each delivery fails once, then succeeds. Three
    dispatchers claim from one queue; the receiver sees each delivery exactly twice (one POST per attempt),
    and each row counts two attempts."""
    net = cluster.world.net
    url = postgres.create_database()  # a queue of its own: the replicas run dispatchers on theirs
    asyncio.run(Indexer(IndexerConfig(net.http_url, net.ws_url, url)).run(once=True))
    engine = connect(url)
    with Session(engine) as session:
        events = len(session.exec(select(RawEvent.id)).all())
    receiver = FirstAttemptFails()
    for served in run_receiver(receiver):
        for _ in range(ENDPOINTS):
            add_endpoint(engine, served.url, "*", from_start=True, allow_private=True)

        def delivered() -> list[WebhookDelivery]:
            with Session(engine) as session:
                rows = list(session.exec(select(WebhookDelivery)).all())
            return rows if len(rows) == events * ENDPOINTS and all(d.status == "delivered" for d in rows) else []

        workers = [RunningDispatcher(url, QUICK) for _ in range(WORKERS)]
        for worker in workers:
            worker.__enter__()
        try:
            rows = wait_for(delivered, timeout=120, what="every delivery")
        finally:
            for worker in workers:
                worker.__exit__()
    assert events > 20 and len(rows) == events * ENDPOINTS
    posts = Counter(json.loads(r.body)["id"] for r in receiver.requests)
    assert posts == {d.id: 2 for d in rows}  # one failed attempt and one delivered, never a duplicate
    assert {d.attempts for d in rows} == {2}
    assert Counter(r.answered for r in receiver.requests) == {"fail": len(rows), "ok": len(rows)}
    engine.dispose()


def test_a_replica_follows_the_chain_the_index_records(cluster: Cluster, postgres: PostgresCluster) -> None:
    """The index was started over on another chain while a replica ran: the replica names the new chain's tokens
    (labels are per chain), as a replica started afterwards does, not the chain it saw first."""
    from sqlalchemy import delete, insert

    from ghostpay.analytics.api import ApiSettings
    from ghostpay.indexer.guard import CHAIN
    from ghostpay.token_labels import LABELS_FILE
    from tests.analytics.conftest import ServedApi

    world = cluster.world
    url = postgres.create_database()
    engine = connect(url)
    with engine.begin() as connection:
        CHAIN.create(connection, checkfirst=True)  # schema v6 creates it too
        connection.execute(insert(CHAIN).values(genesis_hash=str(world.net.rpc("getGenesisHash")["result"])))
    settings = ApiSettings(url, webhooks=False, token_labels=str(world.home / LABELS_FILE))
    with ServedApi(settings) as replica:
        assert replica.get("/api/agents?token=USDC").status_code == 200  # the world's chain labels USDC
        with engine.begin() as connection:  # `ghost indexer run --reset` against another chain
            connection.execute(delete(CHAIN))
            connection.execute(insert(CHAIN).values(genesis_hash="11111111111111111111111111111111"))
        answer = replica.get("/api/agents?token=USDC")
        assert answer.status_code == 422 and "USDC" in answer.json()["error"]
    engine.dispose()
