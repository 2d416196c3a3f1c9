"""The blocking face of the buyer's httpx client, for the sync `GhostPay` facade."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from ghostpay.x402.buyer.models import PaymentRecord, Quote
from ghostpay.x402.buyer.transport import X402HttpClient


class X402HttpSync:
    """The blocking face of an X402HttpClient (from `x402_http(GhostPay(...))`): its coroutines run on the
    facade's event loop through `run`."""

    def __init__(self, client: X402HttpClient, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self.client = client
        self._run = run

    @property
    def payments(self) -> list[PaymentRecord]:
        return self.client.payments

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._run(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def quote(self, url: str, method: str = "GET", **kwargs: Any) -> list[Quote]:
        return self._run(self.client.quote(url, method, **kwargs))

    def close(self) -> None:
        self._run(self.client.aclose())

    def __enter__(self) -> X402HttpSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
