"""The API's analytics: x402 metrics, the volume series, the index's status, Prometheus `/metrics` and the
live event feed (server-sent events)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy import func
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from ghostpay.analytics import prometheus
from ghostpay.analytics.context import ApiContext, ApiError, api_context, check_address
from ghostpay.analytics.metrics import volume_series, window_for, x402_metrics
from ghostpay.analytics.mints import whole_tokens
from ghostpay.indexer.models import RawEvent
from ghostpay.indexer.queries import event_feed, index_status

router = APIRouter()
MAX_PERIOD = 366 * 86_400
FEED_PAGE = 500  # events per read of the live feed
KEEP_ALIVE_SECONDS = 15.0  # an idle stream gets a comment this often


def newest_event_id(session: Session) -> int:
    return session.exec(select(func.max(RawEvent.id))).one() or 0


@router.get("/api/metrics/x402", tags=["analytics"], summary="X402TransactionMetrics over the last `period` seconds")
async def metrics_x402(
    ctx: ApiContext = Depends(api_context),
    period: int = Query(3600, ge=60, le=MAX_PERIOD, description="Seconds, 60 to 366 days."),
    agent: str | None = Query(None),
    top: int = Query(10, ge=1, le=100),
) -> dict[str, Any]:
    if agent is not None:
        await ctx.agent(agent)
    found = await ctx.db(lambda s: x402_metrics(s, window_for(s, period), agent, top))
    return found.to_json(await ctx.decimals.get(found.mints), await ctx.label_map())


@router.get("/api/metrics/volume", tags=["analytics"], summary="Payments and volume per time bucket")
async def metrics_volume(
    ctx: ApiContext = Depends(api_context),
    period: int = Query(86_400, ge=60, le=MAX_PERIOD),
    buckets: int = Query(24, ge=1, le=500),
    agent: str | None = Query(None),
) -> dict[str, Any]:
    if agent is not None:
        check_address(agent, "agent")
    window, series = await ctx.db(lambda s: (w := window_for(s, period), volume_series(s, w, buckets, agent)))
    known = await ctx.decimals.get(m for b in series for m in b["volume_atomic"])
    for bucket in series:
        bucket["volume"] = {m: whole_tokens(int(v), known.get(m)) for m, v in bucket["volume_atomic"].items()}
    labels = await ctx.label_map()
    return {
        "period": {"seconds": window.seconds, "start": window.start, "end": window.end},
        "bucket_seconds": series[1]["start"] - series[0]["start"] if len(series) > 1 else window.seconds,
        "decimals": known,
        "labels": {m: labels[m] for m in known if m in labels},
        "buckets": series,
    }


@router.get("/api/status", tags=["indexer"], summary="The index's cursor and lag behind the chain")
async def status(ctx: ApiContext = Depends(api_context)) -> dict[str, Any]:
    state, newest = await ctx.db(lambda s: (index_status(s), newest_event_id(s)))
    slot = await ctx.chain_slot()
    return {
        "cursor_slot": state.cursor_slot,
        "chain_slot": slot,
        "newest_event_id": newest,
        "seen_slot": state.seen_slot,
        "lag_slots": state.lag(slot),
        "schema_version": state.schema_version,
        "rows": state.rows,
        "skipped": state.skipped,
    }


@router.get("/metrics", tags=["indexer"], summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(ctx: ApiContext = Depends(api_context)) -> PlainTextResponse:
    slot = await ctx.chain_slot()
    extra = dict(ctx.on_metrics()) if ctx.on_metrics is not None else {}
    extra["rpc_errors"] = extra.get("rpc_errors", 0) + ctx.rpc_errors
    feed = asdict(ctx.feed.counters)
    body = await run_in_threadpool(prometheus.render, ctx.engine, slot, extra, ctx.webhooks, feed)
    return PlainTextResponse(body, media_type=prometheus.CONTENT_TYPE)


@router.get(
    "/api/events",
    tags=["events"],
    summary="Server-sent events: every indexed event, live",
    response_class=StreamingResponse,
)
async def events(
    request: Request,
    ctx: ApiContext = Depends(api_context),
    names: str | None = Query(None, description="Comma-separated names."),
    agent: str | None = Query(None),
    after: int | None = Query(None, ge=0),
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
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
        start = await ctx.db(newest_event_id)

    async def stream() -> AsyncIterator[str]:
        position, quiet_since = start, time.monotonic()
        yield "retry: 1000\n\n"
        while not await request.is_disconnected():
            seen = ctx.feed.generation  # taken before the read: a wake-up during it is not missed
            ctx.feed.counters.reads += 1
            batch = await ctx.db(partial(event_feed, after=position, names=wanted, agent=agent, limit=FEED_PAGE))
            for e in batch:
                position = e.id
                yield (
                    f"id: {e.id}\nevent: {e.name}\ndata: "
                    + json.dumps(
                        {
                            "id": e.id,
                            "name": e.name,
                            "agent": e.agent,
                            "signature": e.signature,
                            "slot": e.slot,
                            "timestamp": e.timestamp,
                            "data": e.data,
                        }
                    )
                    + "\n\n"
                )
            if batch:
                quiet_since = time.monotonic()
                if len(batch) == FEED_PAGE:
                    continue  # more are there: read on without waiting
            # wait for the indexer's next commit (NOTIFY) or the next poll; read again only when woken
            while not await ctx.feed.wait(seen, KEEP_ALIVE_SECONDS - (time.monotonic() - quiet_since)):
                if await request.is_disconnected():
                    return
                if time.monotonic() - quiet_since >= KEEP_ALIVE_SECONDS:
                    yield ": keep-alive\n\n"  # keeps proxies from closing an idle stream
                    quiet_since = time.monotonic()

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
