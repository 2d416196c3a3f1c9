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
import hmac
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ghostpay.analytics import routes_agents, routes_bazaar, routes_erc8004, routes_metrics
from ghostpay.analytics.context import ApiContext, ApiError, ApiSettings, read_only_engine
from ghostpay.analytics.feed import live_feed
from ghostpay.analytics.mints import MintDecimals
from ghostpay.analytics.webhooks import WebhookDispatcher
from ghostpay.indexer.models import connect

__all__ = ["ApiSettings", "create_app", "read_only_engine"]

STATIC = files("ghostpay.analytics") / "static"


class BearerToken:
    """Every request needs `Authorization: Bearer TOKEN`, or `?token=TOKEN` where a header cannot be set (the
    browser's EventSource, the dashboard's first load); the dashboard's page and static files are open, they
    hold no data. ASGI middleware: it also guards the live feed's stream."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _allowed(self, scope: Any) -> bool:
        path = scope.get("path", "")
        if path == "/" or path.startswith("/static/"):
            return True
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").removeprefix(b"Bearer ").strip()
        if not given:
            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0].encode()
        return bool(given) and hmac.compare_digest(given, self.token)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"error": "this API needs its token: send 'Authorization: Bearer TOKEN' (or ?token=TOKEN)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


def create_app(settings: ApiSettings, on_metrics: Callable[[], dict[str, float]] | None = None) -> FastAPI:
    """The API, /docs, /metrics, the live feed and the dashboard over `settings.db_url`.

    `on_metrics` adds counters of an indexer running in the same process (`ghost indexer run --serve`)."""
    connect(settings.db_url).dispose()  # create or migrate the schema once, so an empty index serves too
    engine = read_only_engine(settings.db_url)
    writer = connect(settings.db_url) if settings.webhooks else None
    decimals = MintDecimals(settings.rpc_url)
    dispatcher = WebhookDispatcher(writer, settings.delivery) if writer is not None else None

    feed = live_feed(settings.db_url, settings.poll_interval, settings.poll_feed)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(dispatcher.run()) if dispatcher is not None else None
        listener = asyncio.create_task(feed.run())
        try:
            yield
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            if dispatcher is not None and task is not None:
                dispatcher.stop()
                await task

    app = FastAPI(
        title="GhostPay indexer API",
        version="1",
        lifespan=lifespan,
        description="Agents, x402 payments, work orders, reputation and analytics from the GhostPay "
        "indexer. Amounts are exact decimal strings of whole tokens (`*_atomic`: atomic "
        "units); lists page with `cursor` = the previous page's `next_cursor`.",
    )
    app.state.context = ApiContext(settings, engine, decimals, writer is not None, feed, on_metrics)
    if settings.token is not None:
        app.add_middleware(BearerToken, token=settings.token)

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

    app.include_router(routes_agents.router)
    app.include_router(routes_metrics.router)
    app.include_router(routes_erc8004.router)
    app.include_router(routes_bazaar.router)

    # dashboard --------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
