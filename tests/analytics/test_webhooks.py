"""Signed webhooks against a real receiver that fails, times out and recovers: every subscribed event
is delivered, none is lost across a restart of the dispatcher, every POST's signature verifies and a
delivery keeps its id through its retries."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, select

from ghostpay.analytics import webhooks
from ghostpay.analytics.webhooks import DeliverySettings, WebhookDelivery, WebhookDispatcher, verify_signature
from ghostpay.indexer.models import RawEvent, connect
from tests.analytics.conftest import wait_for
from tests.analytics.receiver import Receiver, run_receiver
from tests.analytics.world import World
from tests.cli.conftest import ghost

ROOT = Path(__file__).resolve().parents[2]
FAST = DeliverySettings(timeout=0.3, first_retry=0.05, max_retry=0.2, poll_interval=0.05, batch=4)


class RunningDispatcher:
    """A WebhookDispatcher with its own engine and event loop in a thread: a separate process, in effect."""

    def __init__(self, db_url: str, settings: DeliverySettings) -> None:
        self.engine = connect(db_url)
        self.dispatcher = WebhookDispatcher(self.engine, settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(self.dispatcher.run()), daemon=True)

    def __enter__(self) -> RunningDispatcher:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.dispatcher.stop)
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from run_receiver(Receiver())


def db_path(world: World) -> str:
    return world.db_url.removeprefix("sqlite:///")


def add(world: World, url: str, *options: str) -> dict[str, object]:
    """Subscribe a receiver on loopback (allowed explicitly: private addresses are refused by default)."""
    return ghost(
        "-u", world.net.http_url, "--db", db_path(world), "webhooks", "add", url, "--allow-private", *options
    ).data


def deliveries(world: World, endpoint: str) -> list[WebhookDelivery]:
    with Session(connect(world.db_url)) as session:
        return list(session.exec(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint)).all())


def test_every_event_delivered_through_failures_timeouts_and_a_restart(world: World, receiver: Receiver) -> None:
    receiver.behaviour = lambda n: "fail" if n < 3 else "hang" if n < 5 else "fail" if n == 7 else "ok"
    receiver.hang_seconds = 1.0
    endpoint = add(world, receiver.url, "--events", "X402PaymentRecorded,WorkOrder*", "--from-start")
    secret, ident = str(endpoint["secret"]), str(endpoint["id"])
    assert secret.startswith("whsec_") and endpoint["events"] == ["X402PaymentRecorded", "WorkOrder*"]

    with RunningDispatcher(world.db_url, FAST):  # until the failures and time-outs have happened
        wait_for(lambda: len(receiver.requests) >= 6, what="the failing and hanging attempts")
    stopped_at = len(receiver.requests)
    with RunningDispatcher(world.db_url, FAST):  # a restart: the queue is in the database
        wait_for(lambda: all(d.status == "delivered" for d in deliveries(world, ident)), what="every delivery")

    queued = deliveries(world, ident)
    want = Counter({"X402PaymentRecorded": len(world.payments), "WorkOrderCreated": 1, "WorkOrderAccepted": 1})
    assert Counter(d.event for d in queued) == want
    delivered_ids = [json.loads(r.body)["id"] for r in receiver.delivered()]
    assert set(delivered_ids) == {d.id for d in queued}  # every event, none lost
    for request in receiver.requests:  # failed attempts too: signed, and the id is the delivery's
        assert verify_signature(secret, request.headers["ghostpay-signature"], request.body)
        assert request.headers["ghostpay-delivery"] == json.loads(request.body)["id"]
        assert request.headers["ghostpay-event"] == json.loads(request.body)["type"]
    retried = {json.loads(r.body)["id"] for r in receiver.requests if r.answered != "ok"}
    assert retried and retried <= set(delivered_ids)  # the same id came back after the failure
    assert stopped_at < len(receiver.requests)  # the second dispatcher did deliver
    attempts = {d.id: d.attempts for d in queued}
    assert all(attempts[i] >= 2 for i in retried)
    payments = [
        json.loads(r.body)["data"] for r in receiver.delivered() if json.loads(r.body)["type"] == "X402PaymentRecorded"
    ]
    assert {p["signature"] for p in payments} == {p.signature for p in world.payments}
    assert {p["event"]["amount"] for p in payments} == {p.atomic for p in world.payments}


def test_a_receiver_that_never_recovers_is_given_up_on(world: World, receiver: Receiver) -> None:
    receiver.behaviour = lambda n: "fail"
    endpoint = add(world, receiver.url, "--events", "WorkOrderCreated", "--from-start")
    # give_up_after leaves room for several retries even when a loaded machine delays the first attempt
    settings = DeliverySettings(timeout=0.3, first_retry=0.05, max_retry=0.1, give_up_after=1.5, poll_interval=0.05)
    with RunningDispatcher(world.db_url, settings):
        wait_for(
            lambda: [d.status for d in deliveries(world, str(endpoint["id"]))] == ["failed"],
            what="the delivery to be given up",
        )
    (row,) = deliveries(world, str(endpoint["id"]))
    assert row.attempts >= 2 and row.last_error == "HTTP 500"  # retried, then given up
    listed = {w["id"]: w for w in ghost("--db", db_path(world), "webhooks", "list").data}
    assert listed[endpoint["id"]]["deliveries"] == {"failed": 1}


def test_new_events_only_and_the_agent_filter(fresh_world: World) -> None:
    coder = fresh_world.agents["coder"]
    endpoint = webhooks.add_endpoint(
        connect(fresh_world.db_url),
        "http://127.0.0.1:9/never",
        "X402PaymentRecorded",
        agent=str(coder),
        allow_private=True,
    )
    dispatcher = WebhookDispatcher(connect(fresh_world.db_url), FAST)
    assert dispatcher.enqueue() == 0  # what was indexed before it was added is not sent

    async def pay_two() -> None:
        payer = fresh_world.payers[0]
        await fresh_world.pay(payer, "coder", fresh_world.usdc, Decimal("0.05"))
        await fresh_world.pay(payer, "translator", fresh_world.usdc, Decimal("0.01"))
        await fresh_world.index()

    asyncio.run(pay_two())
    assert dispatcher.enqueue() == 1 and dispatcher.enqueue() == 0  # queued once
    (row,) = deliveries(fresh_world, endpoint.id)
    body = json.loads(row.body)
    assert body["data"]["agent"] == str(coder) and body["data"]["signature"] == fresh_world.payments[-2].signature
    assert row.id == webhooks.delivery_id(endpoint.id, _raw_event(fresh_world, row.event_id))


def _raw_event(world: World, event_id: int) -> RawEvent:
    with Session(connect(world.db_url)) as session:
        event = session.get(RawEvent, event_id)
        assert event is not None
        return event


def test_cli_add_list_test_remove(world: World, receiver: Receiver) -> None:
    endpoint = add(world, receiver.url, "--events", "Dispute*", "--agent", str(world.agents["translator"]))
    listed = ghost("--db", db_path(world), "webhooks", "list").data
    assert {
        "id": endpoint["id"],
        "url": receiver.url,
        "events": ["Dispute*"],
        "agent": str(world.agents["translator"]),
    }.items() <= next(w for w in listed if w["id"] == endpoint["id"]).items()
    sent = ghost("--db", db_path(world), "webhooks", "test", endpoint["id"]).data
    assert sent["status"] == 200
    (request,) = receiver.requests
    assert verify_signature(str(endpoint["secret"]), request.headers["ghostpay-signature"], request.body)
    assert json.loads(request.body)["type"] == "WebhookTest"
    receiver.behaviour = lambda n: "fail"
    failed = ghost("--db", db_path(world), "webhooks", "test", endpoint["id"])
    assert "answered HTTP 500" in failed.one_line_error(1)
    ghost("--db", db_path(world), "webhooks", "remove", endpoint["id"]).data
    assert endpoint["id"] not in {w["id"] for w in ghost("--db", db_path(world), "webhooks", "list").data}
    assert "no webhook" in ghost("--db", db_path(world), "webhooks", "remove", endpoint["id"]).one_line_error(1)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["http://127.0.0.1:9/x", "--allow-private", "--events", "NoSuchEvent"],
            "no GhostPay event matches 'NoSuchEvent'",
        ),
        (["ftp://example.com", "--events", "X402PaymentRecorded"], "must start with http:// or https://"),
        (["http://127.0.0.1:9/x", "--allow-private", "--events", " , "], "--events needs at least one event name"),
        (["http://127.0.0.1:9/x", "--events", "X402*", "--agent", "nope"], "not a valid --agent"),
        (
            ["http://169.254.169.254/latest/meta-data", "--events", "X402*"],
            "reaches 169.254.169.254, a link-local address; pass --allow-private",
        ),
        (["http://10.1.2.3/hooks", "--events", "X402*"], "reaches 10.1.2.3, a private address; pass --allow-private"),
        (["http://[::1]:8080/hooks", "--events", "X402*"], "reaches ::1, a loopback address; pass --allow-private"),
        (["http://localhost:8080/hooks", "--events", "X402*"], "a loopback address; pass --allow-private"),
        (["http://[::ffff:192.168.1.1]/", "--events", "X402*"], "a private address; pass --allow-private"),
    ],
)
def test_cli_refuses_bad_subscriptions(world: World, args: list[str], message: str) -> None:
    assert message in ghost("--db", db_path(world), "webhooks", "add", *args).one_line_error(2)


def test_signature_checks() -> None:
    body, now = b'{"id":"whd_1"}', int(time.time())
    header = webhooks.sign("whsec_a", now, body)
    assert verify_signature("whsec_a", header, body)
    assert not verify_signature("whsec_b", header, body)
    assert not verify_signature("whsec_a", header, body + b" ")
    assert not verify_signature("whsec_a", webhooks.sign("whsec_a", now - 3600, body), body)  # replayed later
    assert not verify_signature("whsec_a", "t=x,v1=00", body)


def test_the_documented_snippet_verifies_a_real_delivery(world: World, receiver: Receiver) -> None:
    """docs/indexer.md's 10-line verification code, run as written against a POST the dispatcher made."""
    snippet = re.search(
        r"<!-- webhook-verify -->\s*```python\n(.*?)```", (ROOT / "docs" / "indexer.md").read_text(), re.S
    )
    assert snippet, "docs/indexer.md lost its webhook verification snippet"
    assert len(snippet.group(1).strip().splitlines()) <= 12
    endpoint = add(world, receiver.url, "--events", "WorkOrderAccepted", "--from-start")
    with RunningDispatcher(world.db_url, FAST):
        wait_for(lambda: receiver.delivered(), what="a delivery")
    request = receiver.delivered()[0]
    namespace: dict[str, object] = {}
    exec(snippet.group(1), namespace)  # the documented code itself
    verify = namespace["verify"]
    assert verify(str(endpoint["secret"]), request.headers["ghostpay-signature"], request.body)  # type: ignore
    assert not verify("whsec_wrong", request.headers["ghostpay-signature"], request.body)  # type: ignore


def test_finished_deliveries_are_pruned_and_their_attempts_still_counted(world: World, receiver: Receiver) -> None:
    receiver.behaviour = lambda n: "ok"
    delivered = str(add(world, receiver.url, "--events", "X402PaymentRecorded", "--from-start")["id"])
    dead = str(add(world, "http://127.0.0.1:9/never", "--events", "X402PaymentRecorded", "--from-start")["id"])
    with RunningDispatcher(world.db_url, FAST):
        wait_for(
            lambda: (
                deliveries(world, delivered)
                and all(d.status == "delivered" for d in deliveries(world, delivered))
                and all(d.attempts >= 1 for d in deliveries(world, dead))
            ),
            what="deliveries and failed attempts",
        )
    engine = connect(world.db_url)
    before = webhooks.delivery_counts(engine)
    still_pending = {d.id for d in deliveries(world, dead)}
    assert webhooks.prune_finished(engine, keep_seconds=3600) == 0  # all queued just now: kept
    assert webhooks.prune_finished(engine, keep_seconds=-60) >= len(world.payments)  # "queued long ago"
    assert deliveries(world, delivered) == []
    assert {d.id for d in deliveries(world, dead)} == still_pending  # pending ones are never pruned
    after = webhooks.delivery_counts(engine)
    assert after["attempts"] == before["attempts"] and after.get("delivered", 0) == 0  # a counter stays one
    ghost("--db", db_path(world), "webhooks", "remove", dead)
    assert webhooks.delivery_counts(engine)["attempts"] == before["attempts"]


def test_a_host_re_pointed_at_a_private_address_gets_no_request(world: World, monkeypatch) -> None:
    """Added while its name resolved to a public address, delivered after it resolves to the metadata
    service's: the dispatcher checks before connecting, records the refusal and retries later."""
    import socket

    engine = connect(world.db_url)
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 80))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: public)
    endpoint = webhooks.add_endpoint(engine, "http://hooks.example/in", "X402PaymentRecorded", from_start=True)
    metadata = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: metadata)
    connects: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: connects.append(address))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: connects.append(address) or 0)
    dispatcher = WebhookDispatcher(engine, FAST)
    assert dispatcher.enqueue() > 0

    async def deliver() -> int:
        import httpx

        async with httpx.AsyncClient() as http:
            return await dispatcher.deliver_due(http)

    tried = asyncio.run(deliver())
    attempted = [r for r in deliveries(world, endpoint.id) if r.attempts]
    assert tried > 0 and len(attempted) == tried
    assert all(r.status == "pending" and r.attempts == 1 for r in attempted)  # to be retried later
    assert all("reaches 169.254.169.254, a link-local address" in r.last_error for r in attempted)
    assert connects == []  # refused before any connection
    webhooks.remove_endpoint(engine, endpoint.id)


def test_endpoints_of_an_older_index_keep_their_private_urls(tmp_path) -> None:
    """An index made before the refusal: its loopback endpoints keep being delivered (allow_private added as
    true for them), new ones are checked."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE webhook_endpoints (id VARCHAR PRIMARY KEY, url VARCHAR NOT NULL, "
            "secret VARCHAR NOT NULL, events VARCHAR NOT NULL, agent VARCHAR, "
            "created_at FLOAT NOT NULL, after_event_id BIGINT NOT NULL)"
        )
        connection.exec_driver_sql(
            "INSERT INTO webhook_endpoints VALUES ('wh_old', 'http://127.0.0.1:9/x', 's', 'X402*', NULL, 0, 0)"
        )
    webhooks.ensure_tables(engine)
    assert webhooks.get_endpoint(engine, "wh_old").allow_private is True
