"""The buyer as httpx sees it: a transport that pays 402 answers, and the AsyncClient that uses it."""

from __future__ import annotations

import time
from typing import Any

import httpx

from ghostpay.x402.buyer.models import PaymentRecord, Quote, payment_record
from ghostpay.x402.buyer.payer import X402Buyer
from ghostpay.x402.buyer.quotes import fetch_quotes


class X402Transport(httpx.AsyncBaseTransport):
    """An httpx transport that pays 402 answers through an X402Buyer."""

    def __init__(self, buyer: X402Buyer, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.buyer = buyer
        self._inner = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()  # a 402 replays the request: keep its body
        asked_at = time.perf_counter()
        response = await self._inner.handle_async_request(request)
        if response.status_code != 402:
            return response
        return await self.buyer.handle(request, response, self._inner.handle_async_request, asked_at)

    async def aclose(self) -> None:
        await self._inner.aclose()


class X402HttpClient(httpx.AsyncClient):
    """An httpx.AsyncClient that pays x402 answers; `payments` lists what it paid, oldest first."""

    def __init__(self, buyer: X402Buyer, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", 60.0)  # a paid retry waits for the facilitator's settlement
        super().__init__(transport=X402Transport(buyer, kwargs.pop("transport", None)), **kwargs)
        self.buyer = buyer
        self.payments: list[PaymentRecord] = []

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = await super().send(request, **kwargs)
        record = payment_record(response)
        if record is not None:
            self.payments.append(record)
        return response

    async def quote(self, url: str, method: str = "GET", **kwargs: Any) -> list[Quote]:
        """The decoded requirements of `url`'s 402, without paying ([] if it answers anything else)."""
        return (await fetch_quotes(self.buyer.gp, method, url, **kwargs))[1]
