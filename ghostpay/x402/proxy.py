"""A paywall in front of any HTTP service: an x402 reverse proxy priced from an agent's account.

Requests to a priced route reach the upstream only once the facilitator verified their payment
(`X402Paywall` in front of `UpstreamApp`); other routes pass through free. Bodies stream both ways,
headers pass (hop-by-hop ones excepted; the payment headers stay with the proxy), the upstream's
status is kept, and the upstream learns who paid from `X-GhostPay-*` headers (a call served on a session:
`X-GhostPay-Amount: 0` and `X-GhostPay-Session`, the settlement that opened it). An upstream answer
of 400 or more is not charged; an unreachable upstream answers 502 and is not charged either, nor is a
client that disconnected before the upstream answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from starlette.types import Message, Receive, Scope, Send
from yarl import URL

from ghostpay.x402.agent_registration import RegistrationRoute
from ghostpay.x402.seller import PaidCall, SellerSettings, X402Paywall, _json

HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"host",
}
PAYMENT_HEADERS = {b"payment-signature", b"x-payment", b"sign-in-with-x"}
# The proxy's server writes its own Date and Server on every answer (402s included): the upstream's would be
# the second of each.
SERVER_HEADERS = {b"date", b"server"}
# Idle connections to the upstream are dropped before common servers drop theirs (uvicorn: 5 s): a request
# sent on a connection the upstream is closing would fail, and a streamed body cannot be sent again.
UPSTREAM_KEEPALIVE_SECONDS = 2.0


@dataclass(frozen=True)
class ProxySettings:
    upstream: str  # e.g. http://127.0.0.1:9000
    seller: SellerSettings
    timeout_seconds: float = 60.0


def paid_headers(call: PaidCall | None) -> list[tuple[bytes, bytes]]:
    """What the upstream may want to know about the payment behind a request."""
    if call is None:
        return []
    return [
        (b"x-ghostpay-payer", str(call.payer).encode()),
        (b"x-ghostpay-amount", str(call.amount).encode()),
        (b"x-ghostpay-mint", str(call.mint).encode()),
        (b"x-ghostpay-verified", b"true" if call.verified_on_chain else b"false"),
    ] + ([(b"x-ghostpay-session", call.session.encode())] if call.session else [])


class UpstreamApp:
    """ASGI app forwarding every request to `upstream`, streaming both bodies.

    It forwards with aiohttp (a paid call's third request after verify and settle: aiohttp spends about
    a tenth of httpx's CPU on one), with no cookie jar (one buyer's cookies never reach another's
    request) and no headers of its own (the upstream sees what the client sent; bodies pass as sent,
    compressed or not)."""

    def __init__(self, upstream: str, timeout: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=timeout)
        self.session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        """One session in the server's event loop, made at the first request."""
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=UPSTREAM_KEEPALIVE_SECONDS),
                timeout=self.timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
            )
        return self.session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        raw = [
            (k, v)
            for k, v in scope["headers"]
            if k not in HOP_BY_HOP and k not in PAYMENT_HEADERS and not k.startswith(b"x-ghostpay-")
        ] + paid_headers(scope.get("state", {}).get("x402"))
        headers = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
        has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
        query = scope.get("query_string", b"")
        url = (
            self.upstream
            + scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?")[0]
            + (f"?{query.decode('latin-1')}" if query else "")
        )
        try:
            response = await self._session().request(
                scope["method"],
                URL(url, encoded=True),
                headers=headers,
                data=body() if has_body else None,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            await _json(send, 502, {"error": "upstream_unavailable", "message": f"{self.upstream}: {exc!r}"[:300]})
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (k.lower(), v)
                        for k, v in response.raw_headers
                        if k.lower() not in HOP_BY_HOP and k.lower() not in SERVER_HEADERS
                    ],
                }
            )
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            response.release()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_proxy_app(settings: ProxySettings) -> RegistrationRoute:
    """The proxy: the paywall of `settings.seller` in front of the upstream, and the agent's ERC-8004
    registration file at /.well-known/agent-registration.json (never priced, never forwarded)."""
    paywall = X402Paywall(UpstreamApp(settings.upstream, settings.timeout_seconds), settings=settings.seller)
    return RegistrationRoute(paywall, paywall.seller)
