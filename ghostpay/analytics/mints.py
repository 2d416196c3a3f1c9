"""Mint decimals for showing indexed amounts (atomic units) as exact whole-token decimal strings.

The index stores atomic units only; a mint's decimals are read once from the RPC (`getTokenSupply`)
and cached for the life of the process (they never change).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal

import httpx


class MintDecimals:
    """Each mint's decimals from the RPC, cached; None when no RPC is configured or it cannot say."""

    def __init__(self, rpc_url: str | None, timeout: float = 5.0, retry_after: float = 30.0) -> None:
        self.rpc_url = rpc_url
        self.timeout = timeout
        self.retry_after = retry_after  # a failed look-up is not retried sooner (a down RPC must not slow every page)
        self.cache: dict[str, int] = {}
        self.failed_at: dict[str, float] = {}
        self.rpc_errors = 0  # failed look-ups, for /metrics

    async def get(self, mints: Iterable[str]) -> dict[str, int | None]:
        wanted = sorted(set(mints))
        now = time.monotonic()
        missing = [
            m
            for m in wanted
            if m not in self.cache and now - self.failed_at.get(m, -self.retry_after) >= self.retry_after
        ]
        if missing and self.rpc_url:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                for mint in missing:
                    await self._fetch(http, mint)
        return {m: self.cache.get(m) for m in wanted}

    async def _fetch(self, http: httpx.AsyncClient, mint: str) -> None:
        assert self.rpc_url is not None
        try:
            answer = (
                await http.post(
                    self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getTokenSupply", "params": [mint]}
                )
            ).json()
            self.cache[mint] = int(answer["result"]["value"]["decimals"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):  # not a mint, or the node is down
            self.rpc_errors += 1
            self.failed_at[mint] = time.monotonic()


def whole_tokens(atomic: int, decimals: int | None) -> str | None:
    """`atomic` units as an exact decimal string of whole tokens (None when the decimals are unknown)."""
    if decimals is None:
        return None
    return format(Decimal(atomic).scaleb(-decimals), "f")


def to_atomic_units(amount: Decimal, decimals: int) -> int:
    """Whole tokens to atomic units, rounded down (a price ceiling: nothing above it may pass)."""
    return int(amount.scaleb(decimals))
