"""Signed webhooks: indexed events POSTed to subscribers from a persistent queue, at least once.

`ghost webhooks add` stores an endpoint (URL, secret, event patterns, optional agent). The dispatcher
(run by `ghost indexer serve`) turns every newly indexed event that matches into a delivery row, in
the same database transaction that moves the endpoint's cursor, then POSTs due deliveries. A failed
or timed-out POST is retried with exponential backoff until 24 hours after the event was queued;
the queue lives in the indexer's database, so deliveries survive restarts. A delivery's id is
derived from the endpoint and the event's place on chain (signature, instruction, event index), so
it is the same on every retry and receivers dedupe by it.

Each POST carries `GhostPay-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import delete, func, inspect, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from ghostpay.addresses import private_address_refusal
from ghostpay.artifacts import idl_dict
from ghostpay.exceptions import InvalidArgument
from ghostpay.indexer.models import RawEvent, i64, table_of

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "GhostPay-Signature"
DELIVERY_HEADER = "GhostPay-Delivery"
EVENT_HEADER = "GhostPay-Event"
TEST_EVENT = "WebhookTest"


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"
    id: str = Field(primary_key=True)
    url: str
    secret: str
    events: str  # comma-separated name patterns (fnmatch: WorkOrder*)
    agent: str | None = None
    created_at: float
    after_event_id: int = i64(0)  # raw_events.id of the last event queued for it
    allow_private: bool = False  # the operator let it reach loopback, private and link-local addresses


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    id: str = Field(primary_key=True)  # stable: the same for every retry
    endpoint_id: str = Field(index=True)
    event_id: int = i64()
    event: str
    body: str  # the exact JSON POSTed (signed with a fresh timestamp on each try)
    status: str = Field(default="pending", index=True)  # pending, delivered, failed (gave up)
    attempts: int = 0
    next_attempt_at: float = Field(index=True)
    last_error: str = ""
    created_at: float
    delivered_at: float | None = None


class WebhookTotal(SQLModel, table=True):
    """A count that outlives the deliveries it counts (pruned, or removed with their endpoint)."""

    __tablename__ = "webhook_totals"
    name: str = Field(primary_key=True)
    value: int = i64(0)


TABLES = (WebhookEndpoint, WebhookDelivery, WebhookTotal)
REMOVED_ATTEMPTS = "attempts_of_removed_deliveries"  # keeps ghostpay_webhook_attempts a true counter


def create_tables(engine: Engine) -> None:
    """Create the webhook tables beside the indexer's (they are not part of the index's schema)."""
    SQLModel.metadata.create_all(engine, tables=[table_of(t) for t in TABLES])


def ensure_tables(engine: Engine) -> None:
    """The webhook tables, with the columns newer versions brought to tables an older one made (for whoever
    reads or writes endpoints)."""
    create_tables(engine)
    columns = {c["name"] for c in inspect(engine).get_columns(WebhookEndpoint.__tablename__)}
    if "allow_private" not in columns:  # made before private addresses were refused: keep them working
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "ALTER TABLE webhook_endpoints ADD COLUMN allow_private BOOLEAN NOT NULL DEFAULT TRUE"
            )


def _remove_deliveries(session: Session, condition: Any) -> int:
    """Delete the deliveries matching `condition`, adding their attempts to the kept total; how many went."""
    count, attempts = session.exec(
        select(func.count(), func.coalesce(func.sum(WebhookDelivery.attempts), 0)).where(condition)
    ).one()
    if count:
        total = table_of(WebhookTotal)
        added = session.exec(
            update(total).where(total.c.name == REMOVED_ATTEMPTS).values(value=total.c.value + int(attempts))
        )
        if added.rowcount == 0:  # the first removal ever
            session.add(WebhookTotal(name=REMOVED_ATTEMPTS, value=int(attempts)))
        session.exec(delete(WebhookDelivery).where(condition))
    return int(count)


# signing --------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `GhostPay-Signature` header value of `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None) -> bool:
    """True if `header` signs `body` with `secret` and its timestamp is within `tolerance` seconds."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")


# endpoints ------------------------------------------------------------------------------------------


def parse_patterns(events: str) -> list[str]:
    """Comma-separated event names or patterns, each matching at least one of the program's events."""
    patterns = [p.strip() for p in events.split(",") if p.strip()]
    if not patterns:
        raise InvalidArgument("--events needs at least one event name, e.g. X402PaymentRecorded,WorkOrder*")
    known = sorted(e["name"] for e in idl_dict()["events"])
    for pattern in patterns:
        if not fnmatch.filter(known, pattern):
            raise InvalidArgument(f"no GhostPay event matches {pattern!r}; events: {', '.join(known)}")
    return patterns


def add_endpoint(
    engine: Engine,
    url: str,
    events: str,
    agent: str | None = None,
    from_start: bool = False,
    allow_private: bool = False,
) -> WebhookEndpoint:
    """Subscribe `url`; it gets events indexed from now on (or all of them with `from_start`). A URL reaching
    a loopback, private or link-local address is refused unless `allow_private`."""
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument(f"webhook URL must start with http:// or https://, not {url!r}")
    refusal = None if allow_private else private_address_refusal(url)
    if refusal is not None:
        raise InvalidArgument(f"{refusal}; pass --allow-private to deliver there")
    patterns = parse_patterns(events)
    ensure_tables(engine)
    with Session(engine) as session:
        newest = 0 if from_start else session.exec(select(RawEvent.id).order_by(col(RawEvent.id).desc())).first()
        endpoint = WebhookEndpoint(
            id="wh_" + secrets.token_hex(6),
            url=url,
            secret="whsec_" + secrets.token_hex(24),
            events=",".join(patterns),
            agent=agent,
            created_at=time.time(),
            after_event_id=int(newest or 0),
            allow_private=allow_private,
        )
        session.add(endpoint)
        session.commit()
        session.refresh(endpoint)
        return endpoint


def list_endpoints(engine: Engine) -> list[WebhookEndpoint]:
    ensure_tables(engine)
    with Session(engine) as session:
        return list(session.exec(select(WebhookEndpoint).order_by(col(WebhookEndpoint.created_at))).all())


def get_endpoint(engine: Engine, endpoint_id: str) -> WebhookEndpoint:
    ensure_tables(engine)
    with Session(engine) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise InvalidArgument(f"no webhook {endpoint_id!r}; `ghost webhooks list` shows them")
    return endpoint


def remove_endpoint(engine: Engine, endpoint_id: str) -> None:
    """Unsubscribe, dropping its undelivered deliveries."""
    get_endpoint(engine, endpoint_id)
    with Session(engine) as session:
        _remove_deliveries(session, col(WebhookDelivery.endpoint_id) == endpoint_id)
        session.exec(delete(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id))
        session.commit()


def prune_finished(engine: Engine, keep_seconds: float) -> int:
    """Delete delivered and failed deliveries queued more than `keep_seconds` ago (their attempts stay
    counted); how many went. Pending ones are never pruned."""
    cutoff = time.time() - keep_seconds
    with Session(engine) as session:
        pruned = _remove_deliveries(
            session, (col(WebhookDelivery.status) != "pending") & (col(WebhookDelivery.created_at) < cutoff)
        )
        session.commit()
    return pruned


def delivery_counts(engine: Engine) -> dict[str, int]:
    """Deliveries kept, by status (pending, delivered, failed), and every attempt ever made (those of pruned
    or removed deliveries included), for /metrics and `list`."""
    create_tables(engine)  # deliveries only: no endpoint column to migrate on every scrape
    with Session(engine) as session:
        rows = session.exec(
            select(WebhookDelivery.status, func.count(), func.sum(WebhookDelivery.attempts)).group_by(
                WebhookDelivery.status
            )
        ).all()
        removed = session.get(WebhookTotal, REMOVED_ATTEMPTS)
    counts = {status: int(n) for status, n, _ in rows}
    counts["attempts"] = sum(int(a or 0) for _, _, a in rows) + (removed.value if removed else 0)
    return counts


# delivering -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliverySettings:
    timeout: float = 10.0  # seconds a receiver has to answer 2xx
    first_retry: float = 10.0  # seconds before the first retry; doubled after each failure
    max_retry: float = 3600.0
    give_up_after: float = 86_400.0  # after this long in the queue a delivery is marked failed
    poll_interval: float = 1.0
    batch: int = 100
    keep_finished: float = 7 * 86_400.0  # a delivered or failed delivery is pruned this long after it was queued
    prune_interval: float = 3600.0


# An attempt is over (answered or failed) within this many times the receiver's timeout; a claimed delivery stays
# its dispatcher's that long plus the margin, then another may try it (its dispatcher died mid-attempt).
ATTEMPT_DEADLINE_FACTOR = 2
CLAIM_MARGIN = 30.0


def delivery_id(endpoint_id: str, event: RawEvent) -> str:
    key = f"{endpoint_id}:{event.signature}:{event.instruction_index}:{event.event_index}"
    return "whd_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def event_body(delivery: str, event: RawEvent) -> str:
    return json.dumps(
        {
            "id": delivery,
            "type": event.name,
            "data": {
                "signature": event.signature,
                "slot": event.slot,
                "timestamp": event.timestamp,
                "agent": event.agent,
                "instruction_index": event.instruction_index,
                "event_index": event.event_index,
                "event": json.loads(event.data),
            },
        },
        separators=(",", ":"),
    )


class PrivateAddressRefused(httpx.HTTPError):
    """The endpoint's host resolves to a non-public address now (it may have changed since it was added)."""


async def post_signed(
    http: httpx.AsyncClient, endpoint: WebhookEndpoint, delivery: str, event: str, body: str, timeout: float
) -> httpx.Response:
    """POST one signed event; unless the endpoint allows private addresses, its host is resolved and checked
    first, so a name re-pointed at an internal address after `webhooks add` gets no request."""
    if not endpoint.allow_private:
        refusal = await asyncio.to_thread(private_address_refusal, endpoint.url)
        if refusal is not None:
            raise PrivateAddressRefused(refusal)
    raw = body.encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(endpoint.secret, int(time.time()), raw),
        DELIVERY_HEADER: delivery,
        EVENT_HEADER: event,
    }
    return await http.post(endpoint.url, content=raw, headers=headers, timeout=timeout)


async def send_test(engine: Engine, endpoint_id: str, timeout: float = 10.0) -> httpx.Response:
    """POST a signed `WebhookTest` event now (not queued); raises httpx errors."""
    endpoint = get_endpoint(engine, endpoint_id)
    delivery = "whd_test_" + secrets.token_hex(8)
    body = json.dumps(
        {"id": delivery, "type": TEST_EVENT, "data": {"endpoint": endpoint.id, "sent_at": int(time.time())}}
    )
    async with httpx.AsyncClient() as http:
        return await post_signed(http, endpoint, delivery, TEST_EVENT, body, timeout)


class WebhookDispatcher:
    """Queues matching events and delivers them; `run` until `stop()`. Any number may run on one database (one
    per API replica): each claims the deliveries it sends (`_claim`), so each attempt is made by one of them."""

    def __init__(self, engine: Engine, settings: DeliverySettings = DeliverySettings()) -> None:
        self.engine = engine
        self.settings = settings
        self.stopping = asyncio.Event()
        ensure_tables(engine)

    def enqueue(self) -> int:
        """Queue the events indexed since each endpoint's cursor that it subscribed to; returns how many."""
        queued = 0
        with Session(self.engine) as session:
            # an endpoint another dispatcher is queueing for right now is its (PostgreSQL; SQLite has one writer)
            for endpoint in session.exec(select(WebhookEndpoint).with_for_update(skip_locked=True)).all():
                patterns = endpoint.events.split(",")
                statement = select(RawEvent).where(col(RawEvent.id) > endpoint.after_event_id)
                if endpoint.agent is not None:
                    statement = statement.where(RawEvent.agent == endpoint.agent)
                events = session.exec(statement.order_by(col(RawEvent.id)).limit(1000)).all()
                for event in events:
                    if any(fnmatch.fnmatchcase(event.name, p) for p in patterns):
                        ident = delivery_id(endpoint.id, event)
                        if session.get(WebhookDelivery, ident) is None:
                            now = time.time()
                            session.add(
                                WebhookDelivery(
                                    id=ident,
                                    endpoint_id=endpoint.id,
                                    event_id=event.id or 0,
                                    event=event.name,
                                    body=event_body(ident, event),
                                    next_attempt_at=now,
                                    created_at=now,
                                )
                            )
                            queued += 1
                if events:
                    endpoint.after_event_id = int(events[-1].id or 0)
                    session.add(endpoint)
            session.commit()  # the deliveries and the cursors together: nothing queued twice or lost
        return queued

    def _claim(self) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
        """Take up to `batch` due deliveries: in the claiming transaction each is put off until after this
        attempt's deadline, so no other dispatcher sends it meanwhile. PostgreSQL: `FOR UPDATE SKIP LOCKED`,
        dispatchers claim disjoint rows without waiting on each other; SQLite: one writer at a time, and a row
        claimed by another since it was read no longer matches the conditional update."""
        now = time.time()
        deliveries = table_of(WebhookDelivery)
        due = (deliveries.c.status == "pending") & (deliveries.c.next_attempt_at <= now)
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(WebhookDelivery, WebhookEndpoint)
                .where(WebhookDelivery.endpoint_id == WebhookEndpoint.id, due)
                .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.event_id))
                .limit(self.settings.batch)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            ).all()
            lease = update(deliveries).values(next_attempt_at=now + self.attempt_deadline + CLAIM_MARGIN)
            claimed = [(d, e) for d, e in rows if session.exec(lease.where(deliveries.c.id == d.id, due)).rowcount == 1]
            session.commit()
        return claimed

    @property
    def attempt_deadline(self) -> float:
        """Seconds one attempt may take in all (the address check, connecting, sending, the answer)."""
        return ATTEMPT_DEADLINE_FACTOR * self.settings.timeout

    def _record(self, delivery: WebhookDelivery, error: str | None) -> None:
        with Session(self.engine) as session:
            row = session.get(WebhookDelivery, delivery.id)
            if row is None:  # the endpoint was removed meanwhile
                return
            row.attempts += 1
            now = time.time()
            if error is None:
                row.status, row.delivered_at, row.last_error = "delivered", now, ""
            else:
                row.last_error = error[:500]
                delay = min(self.settings.first_retry * 2 ** (row.attempts - 1), self.settings.max_retry)
                if now + delay - row.created_at > self.settings.give_up_after:
                    row.status = "failed"
                    log.warning(
                        "webhook delivery %s to %s failed for good after %d attempts: %s",
                        row.id,
                        row.endpoint_id,
                        row.attempts,
                        error,
                    )
                else:
                    row.next_attempt_at = now + delay
            session.add(row)
            session.commit()

    async def _deliver(self, http: httpx.AsyncClient, delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> None:
        try:
            response = await asyncio.wait_for(
                post_signed(http, endpoint, delivery.id, delivery.event, delivery.body, self.settings.timeout),
                self.attempt_deadline,
            )
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except TimeoutError:  # a receiver answering byte by byte: each read in time, the whole too late
            error = f"no answer within {self.attempt_deadline:g} s"
        await asyncio.to_thread(self._record, delivery, error)

    async def deliver_due(self, http: httpx.AsyncClient) -> int:
        due = await asyncio.to_thread(self._claim)
        await asyncio.gather(*(self._deliver(http, d, e) for d, e in due))
        return len(due)

    async def run(self) -> None:
        pruned_at = 0.0
        async with httpx.AsyncClient() as http:
            while not self.stopping.is_set():
                try:
                    if time.monotonic() - pruned_at >= self.settings.prune_interval:
                        pruned_at = time.monotonic()
                        await asyncio.to_thread(prune_finished, self.engine, self.settings.keep_finished)
                    await asyncio.to_thread(self.enqueue)
                    if await self.deliver_due(http) == self.settings.batch:
                        continue  # more are due: no pause
                except Exception as exc:  # noqa: BLE001 - a database hiccup must not end deliveries
                    log.warning("webhooks: %s: %s", type(exc).__name__, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.settings.poll_interval)

    def stop(self) -> None:
        self.stopping.set()


def pending_for(engine: Engine, endpoint_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per endpoint: deliveries by status."""

    with Session(engine) as session:
        rows = session.exec(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count())
            .where(col(WebhookDelivery.endpoint_id).in_(list(endpoint_ids)))
            .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.status)
        ).all()
    out: dict[str, dict[str, int]] = {e: {} for e in endpoint_ids}
    for endpoint, status, count in rows:
        out[endpoint][status] = int(count)
    return out
