"""The facilitator's HTTP API (Starlette): the x402 facilitator routes the official
`HTTPFacilitatorClient` calls, plus health and policy routes.

    POST /verify     {x402Version, paymentPayload, paymentRequirements} -> {isValid, invalidReason?, payer}
    POST /settle     the same                                           -> {success, errorReason?, transaction, ...}
    GET  /supported  {kinds, extensions, signers}
    GET  /policy     what it refuses and why; with a key, that seller's terms and usage
    GET  /health     fee payer, SOL balance and its floor, auth mode, payments settled and pending, refusals,
                     legacy receipts swept, the discovery catalogue's size and age
    GET  /discovery/resources, /discovery/search   the Bazaar: GhostPay's x402 agents read from the chain
                     (`ghostpay.x402.bazaar`), followed every `discovery_refresh_seconds` (read again when the
                     program ran a transaction)

Who may call (`keys.AccessGate`): with no seller key configured, loopback clients only
(anyone else 403 `ghostpay_loopback_only`); with keys, /verify and /settle need one (401 with a named
reason), the GET routes answer anyone. The gate runs before anything else, so a refused client
costs no RPC call. A malformed request answers 400 with `{"error": <message>, "reason": <name>}`
(`ghostpay.x402.wire` names the reasons; a body over 64 KiB answers 413); a refused payment answers 200
with the refusal in the body, as the protocol wants. Verify and settle run in worker threads: the
official scheme and its RPC client are synchronous, and a settle waits for confirmation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from x402.schemas import SchemeNotFoundError

from ghostpay.x402.bazaar.catalogue import ChainCatalogue
from ghostpay.x402.bazaar.declared import DeclaredResources
from ghostpay.x402.bazaar.listing import Listing
from ghostpay.x402.bazaar.query import list_query, list_resources, search_query, search_resources
from ghostpay.x402.facilitator.keys import AuthRefused, Caller, Credential, endpoint_of
from ghostpay.x402.facilitator.service import GhostPayFacilitator
from ghostpay.x402.facilitator.settings import FacilitatorSettings
from ghostpay.x402.facilitator.settle import Settler
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


def _parse_request(body: bytes) -> tuple[Any, Any] | JSONResponse:
    try:
        return facilitator_request(body)
    except MalformedInput as exc:
        return _error(400, f"not a verify/settle request: {exc}", exc.reason)


class SettledAnswer(JSONResponse):
    """A settle's success: it counts as answered once handed to the connection, so a crash before then
    leaves the payment's retry answered success with the landed signature (not `duplicate_settlement`)."""

    def __init__(self, content: dict[str, Any], settler: Settler, signature: str) -> None:
        super().__init__(content)
        self._settler = settler
        self._signature = signature

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except BaseException:
            self._settler.unanswered(self._signature)
            raise
        self._settler.acknowledge(self._signature)  # one database update: brief enough for the loop


def _refused(exc: AuthRefused) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer, GhostPay-HMAC-SHA256"} if exc.status == 401 else None
    return JSONResponse({"error": exc.reason, "message": exc.message}, status_code=exc.status, headers=headers)


def create_facilitator_app(settings: FacilitatorSettings) -> Starlette:
    """The facilitator app; it owns one `GhostPayFacilitator` (opened at start-up, closed at shutdown)."""
    state: dict[str, GhostPayFacilitator] = {}
    catalogues: list[ChainCatalogue] = []  # one when discovery is on
    declared = DeclaredResources()  # what sellers declared, from the payments settled here

    async def sweep_forever(facilitator: GhostPayFacilitator) -> None:
        """Legacy receipts it fronted are closed until none is left (none are made any more); rent reserved by
        settles whose outcome was not seen is given back once their account is known not to exist."""
        while True:
            await asyncio.sleep(settings.sweep_interval_seconds)
            try:
                await to_thread.run_sync(facilitator.sweep_once)
            except Exception as exc:  # noqa: BLE001 - an RPC hiccup: the next round retries
                log.warning("legacy receipt sweep failed: %s", exc)

    # Verify and settle run here: a plain executor hands a call to a thread for about a quarter of the CPU
    # anyio's to_thread spends (limiter, cancel scopes; ≈ 15 against ≈ 55 µs measured here), twice a paid
    # call. A settle still runs to its end when its request goes away (it is logged either way).
    workers = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="ghostpay-facilitator")

    async def refresh_catalogue(catalogue: ChainCatalogue) -> None:
        try:
            await to_thread.run_sync(catalogue.follow)
        except Exception as exc:  # noqa: BLE001 - the node is away: the catalogue read last stays served
            log.warning("discovery catalogue refresh failed: %s", exc)

    async def follow_chain(catalogue: ChainCatalogue) -> None:
        """The catalogue follows the registry by polling: one look at the program's newest transaction per
        interval, and the registry read again when it changed, whatever the number of requests (they never
        wait for the chain)."""
        while True:
            await asyncio.sleep(settings.discovery_refresh_seconds)
            await refresh_catalogue(catalogue)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        facilitator = state["facilitator"] = GhostPayFacilitator(settings)
        app.state.facilitator = facilitator
        tasks = []
        if settings.front_receipt_rent and settings.sweep_interval_seconds > 0:
            tasks.append(asyncio.create_task(sweep_forever(facilitator)))
        if settings.discovery_refresh_seconds > 0:
            catalogue = ChainCatalogue(
                facilitator.rpc,
                settings.program_id,
                settings.networks[0],
                str(settings.fee_payer),
                facilitator.x402.get_extensions(),
            )
            await refresh_catalogue(catalogue)  # served from the start, not after the first interval
            catalogues.append(catalogue)
            facilitator.on_settled.append(declared.settled)
            tasks.append(asyncio.create_task(follow_chain(catalogue)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            catalogues.clear()
            workers.shutdown(wait=True)
            state.pop("facilitator").close()

    def admit(request: Request, *, public: bool) -> Caller | Credential:
        client = request.client.host if request.client else None
        return state["facilitator"].gate.admit(
            client, endpoint_of(request.scope["path"]), request.headers, public=public
        )

    def caller_of(admitted: Caller | Credential, body: bytes) -> Caller:
        """The caller, once an HMAC's signature matches the body."""
        return admitted.check(body) if isinstance(admitted, Credential) else admitted

    def refuse(request: Request, exc: AuthRefused) -> JSONResponse:
        state["facilitator"].refusals.count(exc.reason)
        log.warning(
            "refused %s %s from %s: %s",
            request.method,
            request.url.path,
            request.client.host if request.client else "?",
            exc,
        )
        return _refused(exc)

    async def run(request: Request, method: str) -> Any:
        try:
            admitted = admit(request, public=False)
            body = await _read_body(request)
            if body is None:
                return _error(413, f"request body over {MAX_BODY_BYTES} bytes", REASON_BODY_TOO_LARGE)
            caller = caller_of(admitted, body)  # a forged or replayed signature is refused before any parsing
        except AuthRefused as exc:
            return refuse(request, exc)
        parsed = _parse_request(body)
        if isinstance(parsed, JSONResponse):
            return parsed
        try:
            return await asyncio.get_running_loop().run_in_executor(
                workers, getattr(state["facilitator"], method), *parsed, caller
            )
        except SchemeNotFoundError as exc:
            return _error(400, f"unsupported scheme or network: {exc}", REASON_UNSUPPORTED)

    async def verify(request: Request) -> JSONResponse:
        result = await run(request, "verify")
        return result if isinstance(result, JSONResponse) else JSONResponse(_dump(result))

    async def settle(request: Request) -> JSONResponse:
        result = await run(request, "settle_unacknowledged")
        if isinstance(result, JSONResponse):
            return result
        if not result.success:
            return JSONResponse(_dump(result))
        return SettledAnswer(_dump(result), state["facilitator"].settler, result.transaction)

    def health(facilitator: GhostPayFacilitator) -> dict[str, Any]:
        return {**facilitator.health(), **({"discovery": catalogues[0].status()} if catalogues else {})}

    def read_only(answer: Callable[[GhostPayFacilitator, Caller], Any]) -> Callable[[Request], Awaitable[JSONResponse]]:
        """A GET route: anyone when keys are configured (tailored to a key when one is given)."""

        async def endpoint(request: Request) -> JSONResponse:
            try:
                caller = caller_of(admit(request, public=True), await request.body())
            except AuthRefused as exc:
                return refuse(request, exc)
            return JSONResponse(await to_thread.run_sync(answer, state["facilitator"], caller))

        return endpoint

    def listings(catalogue: ChainCatalogue) -> list[Listing]:
        """The agents on chain, then the resources sellers declared (with their agent's evidence)."""
        return [*catalogue.listings, *declared.listings(catalogue.listings)]

    def discovery(answer: Callable[[ChainCatalogue, Mapping[str, str]], Any]) -> Callable[[Request], Awaitable[Any]]:
        """A Bazaar route: public as /supported is; a query that means nothing answers 400 with its reason."""

        async def endpoint(request: Request) -> JSONResponse:
            try:
                caller_of(admit(request, public=True), await request.body())
            except AuthRefused as exc:
                return refuse(request, exc)
            try:
                return JSONResponse(await to_thread.run_sync(answer, catalogues[0], request.query_params))
            except MalformedInput as exc:
                return _error(400, str(exc), exc.reason)

        return endpoint

    discovery_routes = (
        [
            Route("/discovery/resources", discovery(lambda c, q: list_resources(listings(c), list_query(q)))),
            Route("/discovery/search", discovery(lambda c, q: search_resources(listings(c), search_query(q)))),
        ]
        if settings.discovery_refresh_seconds > 0
        else []
    )
    return Starlette(
        routes=[
            Route("/verify", verify, methods=["POST"]),
            Route("/settle", settle, methods=["POST"]),
            Route("/supported", read_only(lambda f, caller: _dump(f.supported(caller))), methods=["GET"]),
            Route("/policy", read_only(lambda f, caller: f.policy_document(caller)), methods=["GET"]),
            Route("/health", read_only(lambda f, caller: health(f)), methods=["GET"]),
            *discovery_routes,
        ],
        lifespan=lifespan,
    )
