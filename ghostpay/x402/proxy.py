"""A paywall in front of any HTTP service: an x402 reverse proxy priced from an agent's account.

Requests to a priced route reach the upstream only once the facilitator verified their payment
(`X402Paywall` in front of `UpstreamApp`); other routes pass through free. Bodies stream both ways,
headers pass (hop-by-hop ones excepted; the payment headers stay with the proxy), the upstream's
status is kept, and the upstream learns who paid from `X-GhostPay-*` headers. An upstream answer
of 400 or more is not charged; an unreachable upstream answers 502 and is not charged either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

import httpx
from starlette.types import Message, Receive, Scope, Send

from ghostpay.x402.seller import PaidCall, SellerSettings, X402Paywall, _json

HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
              b"transfer-encoding", b"upgrade", b"host"}
PAYMENT_HEADERS = {b"payment-signature", b"x-payment"}
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
    return [(b"x-ghostpay-payer", str(call.payer).encode()), (b"x-ghostpay-amount", str(call.amount).encode()),
            (b"x-ghostpay-mint", str(call.mint).encode()),
            (b"x-ghostpay-verified", b"true" if call.verified_on_chain else b"false")]


class UpstreamApp:
    """ASGI app forwarding every request to `upstream`, streaming both bodies."""

    def __init__(self, upstream: str, timeout: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0),
                                        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64,
                                                            keepalive_expiry=UPSTREAM_KEEPALIVE_SECONDS))

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

        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP and k not in PAYMENT_HEADERS
                   and not k.startswith(b"x-ghostpay-")]
        headers += paid_headers(scope.get("state", {}).get("x402"))
        query = scope.get("query_string", b"")
        url = self.upstream + scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?")[0] + \
            (f"?{query.decode('latin-1')}" if query else "")
        request = self.client.build_request(scope["method"], url, headers=headers, content=body())
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await _json(send, 502, {"error": "upstream_unavailable", "message": f"{self.upstream}: {exc!r}"[:300]})
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_proxy_app(settings: ProxySettings) -> X402Paywall:
    """The proxy: the paywall of `settings.seller` in front of the upstream."""
    return X402Paywall(UpstreamApp(settings.upstream, settings.timeout_seconds), settings=settings.seller)
