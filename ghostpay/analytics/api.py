"""The indexer's HTTP API and dashboard (`ghost indexer serve`): one FastAPI app per `ApiSettings`.

Read-only on the index: requests go through an engine whose connections refuse writes (SQLite
`query_only`, PostgreSQL `default_transaction_read_only`). Only the webhook dispatcher, when enabled,
writes, and only its own tables. Amounts are atomic units in the index; the API shows them as exact
decimal strings of whole tokens, with each mint's decimals read once from the RPC.

    app = create_app(ApiSettings("sqlite:///index.db", rpc_url="http://127.0.0.1:8899"))
    uvicorn.run(app, port=8080)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib.resources import files
from typing import Any, AsyncIterator, Callable, Literal, Optional, TypeVar

import httpx
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import event, func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, create_engine, select
from starlette.concurrency import run_in_threadpool

from ghostpay.analytics import pagination, prometheus
from ghostpay.analytics.metrics import volume_series, window_for, x402_metrics
from ghostpay.analytics.mints import MintDecimals, to_atomic_units, whole_tokens
from ghostpay.analytics.webhooks import DeliverySettings, WebhookDispatcher
from ghostpay.indexer.models import Agent, Payment, RawEvent, Reputation, WorkOrder, connect, database_url
from ghostpay.indexer.queries import (QueryError, agent_capabilities, agent_filter, agent_tokens, event_feed,
                                      index_status)
from ghostpay.reputation import (WEIGHT_PAYMENT_SUCCESS, WEIGHT_RESPONSE_TIME, WEIGHT_SERVICE_QUALITY,
                                 WEIGHT_VOLUME_CONSISTENCY)

T = TypeVar("T")
STATIC = files("ghostpay.analytics") / "static"
MAX_PERIOD = 366 * 86_400
WORK_ORDER_STATUSES = ("Created", "Accepted", "Submitted", "Completed", "Disputed", "Resolved", "Cancelled",
                       "Refunded")


@dataclass(frozen=True)
class ApiSettings:
    db_url: str
    rpc_url: Optional[str] = None  # for mint decimals and the chain's slot (lag); None: atomic units only
    poll_interval: float = 0.5  # seconds between looks for new events (the live feed)
    webhooks: bool = True  # run the webhook dispatcher in this process
    delivery: DeliverySettings = field(default_factory=DeliverySettings)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_only_engine(url: str) -> Engine:
    """An engine whose connections cannot write (the API never does)."""
    sa_url = database_url(url)
    if sa_url.startswith("postgresql"):
        return create_engine(sa_url, connect_args={"options": "-c default_transaction_read_only=on"})
    engine = create_engine(sa_url)

    @event.listens_for(engine, "connect")
    def _query_only(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only = ON")

    return engine


def check_address(value: str, what: str = "address") -> str:
    """A base58 public key, or ApiError 400."""
    from solders.pubkey import Pubkey

    try:
        Pubkey.from_string(value)
    except ValueError:
        raise ApiError(400, f"{what} is not a base58 public key: {value!r}") from None
    return value


def cursor_values(kind: str, cursor: Optional[str], arity: int) -> Optional[list[Any]]:
    """The sort key values a `next_cursor` names, or ApiError 400."""
    if cursor is None:
        return None
    try:
        return pagination.decode(kind, cursor, arity)
    except pagination.CursorError as exc:
        raise ApiError(400, str(exc)) from None


# JSON shapes ----------------------------------------------------------------------------------------

def token_prices(agent: Agent, tokens: list[str]) -> dict[str, int]:
    """Each accepted mint's price per call in that mint's atomic units (today one price for all of them)."""
    return {mint: agent.price_per_call for mint in tokens}


def agent_json(agent: Agent, capabilities: list[str], tokens: list[str], decimals: dict[str, Optional[int]]
               ) -> dict[str, Any]:
    prices = token_prices(agent, tokens)
    return {
        "address": agent.address, "owner": agent.owner, "agent_id": agent.agent_id, "name": agent.name,
        "agent_type": agent.agent_type, "description": agent.description, "metadata_uri": agent.metadata_uri,
        "active": agent.is_active, "closed": agent.closed, "capabilities": capabilities,
        "x402_enabled": agent.x402_enabled, "accepted_tokens": tokens,
        "prices": {m: whole_tokens(p, decimals.get(m)) for m, p in prices.items()},
        "prices_atomic": {m: str(p) for m, p in prices.items()},
        "payment_address": agent.payment_address, "endpoint": agent.endpoint,
        "reputation": {"score": agent.reputation_score, "tier": agent.tier,
                       "percent": f"{agent.reputation_score // 100}.{agent.reputation_score % 100:02d}"},
        "x402_total_payments": agent.x402_total_payments, "x402_total_calls": agent.x402_total_calls,
        "total_jobs_completed": agent.total_jobs_completed, "total_earnings_atomic": str(agent.total_earnings),
        "open_work_orders": agent.open_work_orders, "last_payment_at": agent.last_payment_at,
        "created_at": agent.created_at, "updated_at": agent.updated_at,
    }


def payment_json(p: Payment, decimals: dict[str, Optional[int]]) -> dict[str, Any]:
    return {"signature": p.signature, "slot": p.slot, "timestamp": p.timestamp, "agent": p.agent, "payer": p.payer,
            "mint": p.mint, "amount": whole_tokens(p.amount, decimals.get(p.mint)), "amount_atomic": str(p.amount),
            "reference": p.reference, "outcome": p.outcome, "rating": p.rating,
            "response_time_ms": p.response_time_ms}


def work_order_json(w: WorkOrder, decimals: dict[str, Optional[int]]) -> dict[str, Any]:
    d = decimals.get(w.mint)
    return {"address": w.address, "order_id": str(w.order_id), "agent": w.agent, "client": w.client,
            "provider": w.provider, "arbiter": w.arbiter, "mint": w.mint, "status": w.status,
            "amount": whole_tokens(w.amount, d), "released": whole_tokens(w.released, d),
            "refunded": whole_tokens(w.refunded, d), "amount_atomic": str(w.amount),
            "released_atomic": str(w.released), "refunded_atomic": str(w.refunded), "deadline": w.deadline,
            "review_period_seconds": w.review_period_seconds, "deliverable_uri": w.deliverable_uri,
            "created_at": w.created_at, "updated_at": w.updated_at, "signature": w.signature}


# the app --------------------------------------------------------------------------------------------

AGENT_SORTS: dict[str, Callable[[], pagination.SortKey]] = {
    "reputation": lambda: pagination.SortKey([col(Agent.reputation_score), col(Agent.address)], [True, False]),
    "price": lambda: pagination.SortKey([col(Agent.price_per_call), col(Agent.address)], [False, False]),
    "newest": lambda: pagination.SortKey([col(Agent.created_at), col(Agent.address)], [True, False]),
    "calls": lambda: pagination.SortKey([col(Agent.x402_total_calls), col(Agent.address)], [True, False]),
}
AGENT_SORT_VALUES: dict[str, Callable[[Agent], list[Any]]] = {
    "reputation": lambda a: [a.reputation_score, a.address], "price": lambda a: [a.price_per_call, a.address],
    "newest": lambda a: [a.created_at, a.address], "calls": lambda a: [a.x402_total_calls, a.address]}


def create_app(settings: ApiSettings, on_metrics: Optional[Callable[[], dict[str, float]]] = None) -> FastAPI:
    """The API, /docs, /metrics, the live feed and the dashboard over `settings.db_url`.

    `on_metrics` adds counters of an indexer running in the same process (`ghost indexer run --serve`)."""
    connect(settings.db_url).dispose()  # create or migrate the schema once, so an empty index serves too
    engine = read_only_engine(settings.db_url)
    writer = connect(settings.db_url) if settings.webhooks else None
    decimals = MintDecimals(settings.rpc_url)
    dispatcher = WebhookDispatcher(writer, settings.delivery) if writer is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(dispatcher.run()) if dispatcher is not None else None
        try:
            yield
        finally:
            if dispatcher is not None and task is not None:
                dispatcher.stop()
                await task

    app = FastAPI(title="GhostPay indexer API", version="1", lifespan=lifespan,
                  description="Agents, x402 payments, work orders, reputation and analytics from the GhostPay "
                              "indexer. Amounts are exact decimal strings of whole tokens (`*_atomic`: atomic "
                              "units); lists page with `cursor` = the previous page's `next_cursor`.")
    app.state.settings, app.state.engine, app.state.decimals = settings, engine, decimals

    async def db(work: Callable[[Session], T]) -> T:
        def run() -> T:
            with Session(engine) as session:
                return work(session)
        return await run_in_threadpool(run)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    # agents -----------------------------------------------------------------------------------------

    @app.get("/api/agents", tags=["agents"], summary="Search agents")
    async def list_agents(
        capability: Optional[str] = Query(None, max_length=32, description="A capability, case-insensitive."),
        x402_enabled: Optional[bool] = Query(None),
        token: Optional[str] = Query(None, description="An accepted mint (base58)."),
        max_price: Optional[str] = Query(None, description="Highest price per call in whole `token` units; "
                                                           "needs `token` (prices are per token)."),
        min_reputation: Optional[int] = Query(None, ge=0, le=10_000, description="Basis points, 0 to 10,000."),
        tier: Optional[str] = Query(None),
        sort: Literal["reputation", "price", "newest", "calls"] = Query("reputation"),
        limit: int = Query(20, ge=1, le=100),
        cursor: Optional[str] = Query(None, description="`next_cursor` of the previous page."),
    ) -> dict[str, Any]:
        if token is not None:
            check_address(token, "token")
        ceiling = None
        if max_price is not None:
            if token is None:
                raise ApiError(422, "max_price needs token: each accepted token has its own price")
            try:
                price = Decimal(max_price)
            except InvalidOperation:
                raise ApiError(422, f"max_price is not a decimal number: {max_price!r}") from None
            if not price.is_finite() or price < 0:
                raise ApiError(422, "max_price must be a non-negative decimal number")
            places = (await decimals.get([token]))[token]
            if places is None:
                raise ApiError(422, f"cannot read the decimals of {token} (not a mint, or no RPC configured)")
            ceiling = to_atomic_units(price, places)
        key = AGENT_SORTS[sort]()
        after = cursor_values("agents:" + sort, cursor, 2)

        def query(session: Session) -> tuple[list[tuple[Agent, list[str], list[str]]], bool, int]:
            try:
                statement = agent_filter(x402_enabled=x402_enabled, capability=capability, token=token,
                                         max_price=ceiling, min_reputation=min_reputation, tier=tier)
            except QueryError as exc:
                raise ApiError(422, str(exc)) from None
            total = session.exec(select(func.count()).select_from(statement.subquery())).one()
            rows, more = pagination.fetch_page(session, statement, key, after, limit)
            return ([(a, agent_capabilities(session, a.address), agent_tokens(session, a.address)) for a in rows],
                    more, int(total))

        rows, more, total = await db(query)
        known = await decimals.get(m for _, _, tokens in rows for m in tokens)
        return {"items": [agent_json(a, c, t, known) for a, c, t in rows], "total": total,
                "next_cursor": pagination.encode("agents:" + sort, AGENT_SORT_VALUES[sort](rows[-1][0]))
                if more else None}

    async def one_agent(address: str) -> tuple[Agent, list[str], list[str]]:
        check_address(address, "agent")

        def query(session: Session) -> Optional[tuple[Agent, list[str], list[str]]]:
            agent = session.get(Agent, address)
            if agent is None:
                return None
            return agent, agent_capabilities(session, address), agent_tokens(session, address)

        found = await db(query)
        if found is None:
            raise ApiError(404, f"no indexed agent {address}")
        return found

    @app.get("/api/agents/{address}", tags=["agents"], summary="One agent")
    async def get_agent(address: str) -> dict[str, Any]:
        agent, capabilities, tokens = await one_agent(address)
        return agent_json(agent, capabilities, tokens, await decimals.get(tokens))

    @app.get("/api/agents/{address}/payments", tags=["payments"], summary="An agent's x402 payments, newest first")
    async def agent_payments(address: str, limit: int = Query(50, ge=1, le=500),
                             cursor: Optional[str] = Query(None)) -> dict[str, Any]:
        await one_agent(address)
        key = pagination.SortKey([col(Payment.slot), col(Payment.signature), col(Payment.instruction_index)],
                                 [True, True, True])
        after = cursor_values("payments", cursor, 3)
        rows, more = await db(lambda s: pagination.fetch_page(s, select(Payment).where(Payment.agent == address),
                                                              key, after, limit))
        known = await decimals.get(p.mint for p in rows)
        last = rows[-1] if rows else None
        return {"items": [payment_json(p, known) for p in rows],
                "next_cursor": pagination.encode("payments", [last.slot, last.signature, last.instruction_index])
                if more and last else None}

    @app.get("/api/reputation/{address}", tags=["agents"], summary="Score, tier and the four weighted components")
    async def reputation(address: str) -> dict[str, Any]:
        agent, _, _ = await one_agent(address)
        rep = await db(lambda s: s.get(Reputation, address))
        if rep is None:
            raise ApiError(404, f"no reputation indexed for {address}")
        components = {"payment_success": (rep.payment_success, WEIGHT_PAYMENT_SUCCESS),
                      "service_quality": (rep.service_quality, WEIGHT_SERVICE_QUALITY),
                      "response_time": (rep.response_time, WEIGHT_RESPONSE_TIME),
                      "volume_consistency": (rep.volume_consistency, WEIGHT_VOLUME_CONSISTENCY)}
        return {"agent": address, "score": rep.score, "tier": agent.tier,
                "percent": f"{rep.score // 100}.{rep.score % 100:02d}",
                "components": {n: {"score": v, "weight_percent": w} for n, (v, w) in components.items()},
                "payments": rep.successful_payments + rep.failed_payments,
                "metrics": {"successful_payments": rep.successful_payments, "failed_payments": rep.failed_payments,
                            "total_response_time_ms": rep.total_response_time_ms,
                            "response_time_count": rep.response_time_count, "total_rating": rep.total_rating,
                            "rating_count": rep.rating_count, "total_disputes": rep.total_disputes,
                            "disputes_resolved": rep.disputes_resolved,
                            "payment_history_7d": json.loads(rep.history)}}

    # work orders ------------------------------------------------------------------------------------

    @app.get("/api/work-orders", tags=["work orders"], summary="Work orders, newest first")
    async def list_work_orders(
        party: Optional[str] = Query(None, description="A wallet: client, provider (agent owner) or arbiter."),
        agent: Optional[str] = Query(None),
        status: Optional[str] = Query(None, description=", ".join(WORK_ORDER_STATUSES)),
        limit: int = Query(50, ge=1, le=500), cursor: Optional[str] = Query(None),
    ) -> dict[str, Any]:
        if party is not None:
            check_address(party, "party")
        if agent is not None:
            check_address(agent, "agent")
        if status is not None and status.capitalize() not in WORK_ORDER_STATUSES:
            raise ApiError(422, f"status must be one of {', '.join(WORK_ORDER_STATUSES)}")
        key = pagination.SortKey([col(WorkOrder.created_at), col(WorkOrder.address)], [True, False])
        after = cursor_values("work-orders", cursor, 2)

        def query(session: Session) -> tuple[list[WorkOrder], bool]:
            statement = select(WorkOrder)
            if party is not None:
                statement = statement.where(or_(WorkOrder.client == party, WorkOrder.provider == party,
                                                WorkOrder.arbiter == party))
            if agent is not None:
                statement = statement.where(WorkOrder.agent == agent)
            if status is not None:
                statement = statement.where(WorkOrder.status == status.capitalize())
            return pagination.fetch_page(session, statement, key, after, limit)

        rows, more = await db(query)
        known = await decimals.get(w.mint for w in rows)
        return {"items": [work_order_json(w, known) for w in rows],
                "next_cursor": pagination.encode("work-orders", [rows[-1].created_at, rows[-1].address])
                if more else None}

    # metrics ----------------------------------------------------------------------------------------

    @app.get("/api/metrics/x402", tags=["analytics"], summary="X402TransactionMetrics over the last `period` seconds")
    async def metrics_x402(period: int = Query(3600, ge=60, le=MAX_PERIOD, description="Seconds, 60 to 366 days."),
                           agent: Optional[str] = Query(None), top: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
        if agent is not None:
            await one_agent(agent)
        found = await db(lambda s: x402_metrics(s, window_for(s, period), agent, top))
        return found.to_json(await decimals.get(found.mints))

    @app.get("/api/metrics/volume", tags=["analytics"], summary="Payments and volume per time bucket")
    async def metrics_volume(period: int = Query(86_400, ge=60, le=MAX_PERIOD),
                             buckets: int = Query(24, ge=1, le=500),
                             agent: Optional[str] = Query(None)) -> dict[str, Any]:
        if agent is not None:
            check_address(agent, "agent")
        window, series = await db(lambda s: (w := window_for(s, period), volume_series(s, w, buckets, agent)))
        known = await decimals.get(m for b in series for m in b["volume_atomic"])
        for bucket in series:
            bucket["volume"] = {m: whole_tokens(int(v), known.get(m)) for m, v in bucket["volume_atomic"].items()}
        return {"period": {"seconds": window.seconds, "start": window.start, "end": window.end},
                "bucket_seconds": series[1]["start"] - series[0]["start"] if len(series) > 1 else window.seconds,
                "decimals": known, "buckets": series}

    async def chain_slot() -> Optional[int]:
        if not settings.rpc_url:
            return None
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                answer = (await http.post(settings.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getSlot",
                                                                  "params": [{"commitment": "confirmed"}]})).json()
            return int(answer["result"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            decimals.rpc_errors += 1
            return None

    @app.get("/api/status", tags=["indexer"], summary="The index's cursor and lag behind the chain")
    async def status() -> dict[str, Any]:
        state, newest = await db(lambda s: (index_status(s), newest_event_id(s)))
        slot = await chain_slot()
        return {"cursor_slot": state.cursor_slot, "chain_slot": slot, "newest_event_id": newest,
                "lag_slots": slot - state.cursor_slot if slot is not None and state.cursor_slot is not None else None,
                "schema_version": state.schema_version, "rows": state.rows, "skipped": state.skipped}

    @app.get("/metrics", tags=["indexer"], summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        slot = await chain_slot()
        extra = dict(on_metrics()) if on_metrics is not None else {}
        extra["rpc_errors"] = extra.get("rpc_errors", 0) + decimals.rpc_errors
        body = await run_in_threadpool(prometheus.render, engine, slot, extra, writer is not None)
        return PlainTextResponse(body, media_type=prometheus.CONTENT_TYPE)

    # live feed --------------------------------------------------------------------------------------

    @app.get("/api/events", tags=["events"], summary="Server-sent events: every indexed event, live",
             response_class=StreamingResponse)
    async def events(request: Request, names: Optional[str] = Query(None, description="Comma-separated names."),
                     agent: Optional[str] = Query(None), after: Optional[int] = Query(None, ge=0),
                     last_event_id: Optional[str] = Header(None)) -> StreamingResponse:
        """`id:` is the event's feed position: a reconnecting EventSource sends it back as `Last-Event-ID`
        and the stream resumes after it. Without either, the stream starts at the newest event."""
        if agent is not None:
            check_address(agent, "agent")
        wanted = [n.strip() for n in names.split(",")] if names else None
        if last_event_id is not None:
            try:
                start = int(last_event_id)
            except ValueError:
                raise ApiError(400, f"Last-Event-ID is not an event id: {last_event_id!r}") from None
        elif after is not None:
            start = after
        else:
            start = await db(newest_event_id)

        async def stream() -> AsyncIterator[str]:
            position, idle = start, 0
            yield "retry: 1000\n\n"
            while not await request.is_disconnected():
                batch = await db(lambda s: event_feed(s, position, names=wanted, agent=agent, limit=500))
                for e in batch:
                    position = e.id
                    yield (f"id: {e.id}\nevent: {e.name}\ndata: " + json.dumps(
                        {"id": e.id, "name": e.name, "agent": e.agent, "signature": e.signature, "slot": e.slot,
                         "timestamp": e.timestamp, "data": e.data}) + "\n\n")
                if not batch:
                    idle += 1
                    if idle % 30 == 0:  # a comment now and then keeps proxies from closing an idle stream
                        yield ": keep-alive\n\n"
                    await asyncio.sleep(settings.poll_interval)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # dashboard --------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def newest_event_id(session: Session) -> int:
    return int(session.exec(select(func.coalesce(func.max(RawEvent.id), 0))).one())
