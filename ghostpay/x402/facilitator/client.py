"""The seller's link to a facilitator over HTTP: the package's `HTTPFacilitatorClient` on aiohttp.

The package's client builds the verify/settle bodies and parses the answers; it only needs an object
with httpx's async `post(url, headers=, json=)`. `AiohttpPoster` is that object over one aiohttp
session with keep-alive connections: a paid call makes two such requests, and aiohttp spends about a
tenth of httpx's CPU on each (≈ 60 µs against ≈ 500 µs measured here), which is most of what a
paywall's process does per paid call.

With a seller key (`ghost facilitator keys add`), every request is signed with it
(`Authorization: GhostPay-HMAC-SHA256 ...` over the exact body sent: the key never crosses the wire);
`FacilitatorHmacAuth` does the same for an httpx client given to the package's own client.

Several replicas of a facilitator (`ghost facilitator start --db postgresql://…`): `facilitator_client("URL1,URL2")`
sends each call to the next one in turn, and to another when one does not answer (`FailoverFacilitatorClient`).

    facilitator = AiohttpFacilitatorClient("http://127.0.0.1:8403", key=os.environ["GHOSTPAY_FACILITATOR_KEY"])
    await server.verify_payment(payload, requirements)   # x402ResourceServer(facilitator)
    await facilitator.aclose()
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import httpx
from multidict import CIMultiDictProxy
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.facilitator_client_base import DEFAULT_TIMEOUT
from x402.schemas import SettleResponse, SupportedResponse, VerifyResponse

from ghostpay.x402.facilitator.keys import endpoint_of, sign_request


@dataclass(frozen=True)
class PostedResponse:
    """What the package's client reads of an httpx response: status, headers, text and JSON."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class AiohttpPoster:
    """httpx's `AsyncClient.post`, as the package's facilitator client calls it, on an aiohttp session.

    A session belongs to an event loop: it is made at the first request in a loop (a server's)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, key: str | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._key = key
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post(self, url: str, *, headers: dict[str, str] | None = None, json: Any = None) -> PostedResponse:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar())
            self._loop = loop
        body = _dumps(json)
        if self._key is not None:
            headers = {**(headers or {}), **sign_request(self._key, endpoint_of(urlsplit(url).path), body)}
        async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
            return PostedResponse(response.status, response.headers, await response.read())

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class AiohttpFacilitatorClient(HTTPFacilitatorClient):
    """The package's HTTP facilitator client, posting through `AiohttpPoster` (closed by `aclose`); with a
    seller `key`, every request (the package's GET /supported too) is HMAC-signed with it."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, key: str | None = None) -> None:
        self.poster = AiohttpPoster(timeout, key)
        self._key = key
        super().__init__(FacilitatorConfig(url=url.rstrip("/"), timeout=timeout, http_client=self.poster))

    @staticmethod
    def _to_json_safe(obj: Any) -> Any:
        """The package copies each request's payload and requirements through JSON text (`loads(dumps(...))`,
        whose `default` never sees an int); the poster encodes the body once, to the same JSON."""
        return obj

    def _get_supported_headers(self) -> dict[str, str]:
        headers = super()._get_supported_headers()
        return headers if self._key is None else {**headers, **sign_request(self._key, "supported", b"")}

    async def aclose(self) -> None:
        await self.poster.aclose()


class FacilitatorHmacAuth(httpx.Auth):
    """Signs each request of an httpx client with a seller key: pass the client as the package's
    `FacilitatorConfig(http_client=httpx.AsyncClient(auth=FacilitatorHmacAuth(KEY)))`."""

    requires_request_body = True

    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(sign_request(self._key, endpoint_of(request.url.path), request.content))
        yield request


class FailoverFacilitatorClient:
    """Several facilitator replicas (one database, `ghost facilitator start --db postgresql://…`) as one: each
    verify or settle goes to the next replica in turn, and to the one after it when a replica does not answer
    (down, killed mid-request, or an error instead of an answer). A settle sent again to another replica is
    safe: the replicas' shared log settles a payment once, and finishes what a dead replica left pending."""

    def __init__(self, urls: Sequence[str], timeout: float = DEFAULT_TIMEOUT, key: str | None = None) -> None:
        if not urls:
            raise ValueError("no facilitator URL")
        self.replicas = [AiohttpFacilitatorClient(url, timeout, key) for url in urls]
        self._turn = itertools.count()

    def _order(self) -> list[AiohttpFacilitatorClient]:
        start = next(self._turn) % len(self.replicas)
        return self.replicas[start:] + self.replicas[:start]

    async def _first_answer(self, method: str, payload: Any, requirements: Any) -> Any:
        failed: Exception | None = None
        for replica in self._order():
            try:
                return await getattr(replica, method)(payload, requirements)
            except Exception as exc:  # noqa: BLE001 - this replica did not answer: the next one may
                failed = exc
        assert failed is not None
        raise failed

    async def verify(self, payload: Any, requirements: Any) -> VerifyResponse:
        return cast(VerifyResponse, await self._first_answer("verify", payload, requirements))

    async def settle(self, payload: Any, requirements: Any) -> SettleResponse:
        return cast(SettleResponse, await self._first_answer("settle", payload, requirements))

    def get_supported(self) -> SupportedResponse:
        failed: Exception | None = None
        for replica in self._order():
            try:
                return replica.get_supported()
            except Exception as exc:  # noqa: BLE001 - this replica did not answer: the next one may
                failed = exc
        assert failed is not None
        raise failed

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.aclose()


def facilitator_client(urls: str, key: str | None = None) -> AiohttpFacilitatorClient | FailoverFacilitatorClient:
    """A client for `urls`: one facilitator URL, or several comma-separated (replicas, in turn with failover)."""
    listed = [url.strip() for url in urls.split(",") if url.strip()]
    return (
        AiohttpFacilitatorClient(listed[0], key=key) if len(listed) == 1 else FailoverFacilitatorClient(listed, key=key)
    )
