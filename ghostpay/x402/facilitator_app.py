"""The facilitator's HTTP API (Starlette): the x402 facilitator routes the official
`HTTPFacilitatorClient` calls, plus a health route.

    POST /verify     {x402Version, paymentPayload, paymentRequirements} -> {isValid, invalidReason?, payer}
    POST /settle     the same                                           -> {success, errorReason?, transaction, ...}
    GET  /supported  {kinds, extensions, signers}
    GET  /health     fee payer, SOL balance and its floor, networks, payments settled, legacy receipts swept

A malformed request answers 400 with `{"error": <message>, "reason": <name>}` (`ghostpay.x402.wire`
names the reasons; a body over 64 KiB answers 413); a refused payment answers 200 with the refusal in
the body, as the protocol wants. Verify and settle run in worker threads: the
official scheme and its RPC client are synchronous, and a settle waits for confirmation.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from anyio import to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from x402.schemas import SchemeNotFoundError

from ghostpay.x402.facilitator import FacilitatorSettings, GhostPayFacilitator
from ghostpay.x402.wire import REASON_BODY_TOO_LARGE, REASON_UNSUPPORTED, MalformedInput, facilitator_request

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024  # a payment transaction is at most 1,232 bytes; JSON around it is small
WORKER_THREADS = 40  # verifies and settles at once (a settle holds its thread until confirmation)


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True)


def _error(status: int, message: str, reason: str) -> JSONResponse:
    return JSONResponse({"error": message, "reason": reason}, status_code=status)


async def _read_body(request: Request) -> bytes | None:
    """The body, or None once it grows over MAX_BODY_BYTES (the rest is never read into memory)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_request(request: Request) -> tuple[Any, Any] | JSONResponse:
    body = await _read_body(request)
    if body is None:
        return _error(413, f"request body over {MAX_BODY_BYTES} bytes", REASON_BODY_TOO_LARGE)
    try:
        return facilitator_request(body)
    except MalformedInput as exc:
        return _error(400, f"not a verify/settle request: {exc}", exc.reason)


def create_facilitator_app(settings: FacilitatorSettings) -> Starlette:
    """The facilitator app; it owns one `GhostPayFacilitator` (opened at start-up, closed at shutdown)."""
    state: dict[str, GhostPayFacilitator] = {}

    async def sweep_forever(facilitator: GhostPayFacilitator) -> None:
        while not facilitator.sweep.finished:  # the legacy receipts it fronted: none are made any more
            await asyncio.sleep(settings.sweep_interval_seconds)
            try:
                await to_thread.run_sync(facilitator.sweep.run_once)
            except Exception as exc:  # noqa: BLE001 - an RPC hiccup: the next round retries
                log.warning("legacy receipt sweep failed: %s", exc)

    # Verify and settle run here: a plain executor hands a call to a thread for about a quarter of the CPU
    # anyio's to_thread spends (limiter, cancel scopes; ≈ 15 against ≈ 55 µs measured here), twice a paid
    # call. A settle still runs to its end when its request goes away (it is logged either way).
    workers = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="ghostpay-facilitator")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["facilitator"] = GhostPayFacilitator(settings)
        app.state.facilitator = state["facilitator"]
        sweeping = asyncio.create_task(sweep_forever(state["facilitator"])) \
            if settings.front_receipt_rent and settings.sweep_interval_seconds > 0 else None
        try:
            yield
        finally:
            if sweeping is not None:
                sweeping.cancel()
                await asyncio.gather(sweeping, return_exceptions=True)
            workers.shutdown(wait=True)
            state.pop("facilitator").close()

    async def run(request: Request, method: str) -> JSONResponse:
        parsed = await _read_request(request)
        if isinstance(parsed, JSONResponse):
            return parsed
        facilitator = state["facilitator"]
        try:
            result = await asyncio.get_running_loop().run_in_executor(workers, getattr(facilitator, method),
                                                                      *parsed)
        except SchemeNotFoundError as exc:
            return _error(400, f"unsupported scheme or network: {exc}", REASON_UNSUPPORTED)
        return JSONResponse(_dump(result))

    async def verify(request: Request) -> JSONResponse:
        return await run(request, "verify")

    async def settle(request: Request) -> JSONResponse:
        return await run(request, "settle")

    async def supported(request: Request) -> JSONResponse:
        return JSONResponse(_dump(state["facilitator"].supported()))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(await to_thread.run_sync(state["facilitator"].health))

    return Starlette(routes=[
        Route("/verify", verify, methods=["POST"]),
        Route("/settle", settle, methods=["POST"]),
        Route("/supported", supported, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ], lifespan=lifespan)
