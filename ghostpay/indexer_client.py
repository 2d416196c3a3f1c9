"""The SDK's side of the indexer API: agent addresses matching a search, from `GET /api/agents`, and the
payments of a reference, from `GET /api/agents/{agent}/payments?reference=`.

The index answers the search; the caller then reads those accounts from the chain, so what it
returns is current even when the index lags. `IndexerUnavailable` tells it to search the chain.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from ghostpay.exceptions import GhostPayError

PAGE = 100  # the API's largest page
API_SORTS = ("reputation", "price", "newest", "calls")


class IndexerUnavailable(GhostPayError):
    """The indexer API could not answer (down, an error status, or a search it does not support)."""


async def search_addresses(
    indexer_url: str,
    *,
    x402_enabled: bool | None,
    capability: str | None,
    token: str | None,
    max_price: Decimal | None,
    min_reputation: int | None,
    sort: str | None,
    limit: int | None,
    timeout: float = 5.0,
    api_token: str | None = None,
) -> list[str]:
    """Addresses of active agents matching the filters, in the API's order, following cursors up to `limit`;
    `api_token`: the bearer token of an API started with `--token-file`."""
    if sort is not None and sort not in API_SORTS:
        raise IndexerUnavailable(f"the indexer API does not sort by {sort}")
    params: dict[str, Any] = {
        k: v
        for k, v in {
            "x402_enabled": None if x402_enabled is None else str(x402_enabled).lower(),
            "capability": capability,
            "token": token,
            "max_price": None if max_price is None else format(max_price, "f"),
            "min_reputation": min_reputation,
            "sort": sort,
        }.items()
        if v is not None
    }
    addresses: list[str] = []
    base = indexer_url.rstrip("/")
    try:
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        async with httpx.AsyncClient(timeout=timeout, headers=headers) as http:
            cursor = None
            while limit is None or len(addresses) < limit:
                page_size = PAGE if limit is None else min(PAGE, limit - len(addresses))
                answer = await http.get(
                    f"{base}/api/agents",
                    params={**params, "limit": page_size, **({"cursor": cursor} if cursor else {})},
                )
                if answer.status_code != 200:
                    raise IndexerUnavailable(
                        f"{base}/api/agents answered HTTP {answer.status_code}: {answer.text[:200]}"
                    )
                page = answer.json()
                addresses += [item["address"] for item in page["items"]]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise IndexerUnavailable(f"{base}: {type(exc).__name__}: {exc}") from exc
    return addresses


async def agents_evidence(
    indexer_url: str, agents: list[str], timeout: float = 5.0, api_token: str | None = None
) -> dict[str, dict[str, Any]]:
    """Each indexed agent's `evidence` (paid calls, payers and volume in trusted mints, the trust score; its `text`
    reads "412 paid calls from 97 payers, 41.20 USDC, 30 days") from `GET /api/agents/{agent}`; agents the index
    does not have are left out."""
    base = indexer_url.rstrip("/")
    found: dict[str, dict[str, Any]] = {}
    try:
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        async with httpx.AsyncClient(timeout=timeout, headers=headers) as http:
            for agent in agents:
                answer = await http.get(f"{base}/api/agents/{agent}")
                if answer.status_code == 404:
                    continue
                if answer.status_code != 200:
                    raise IndexerUnavailable(f"{base}/api/agents/{agent} answered HTTP {answer.status_code}")
                found[agent] = answer.json()["evidence"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise IndexerUnavailable(f"{base}: {type(exc).__name__}: {exc}") from exc
    return found


async def payments_by_reference(
    indexer_url: str, agent: str, reference: str, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """The indexed payments to `agent` with `reference` (64 hex digits), oldest first (a reference is not unique
    on chain: each payment with it is its own row), from `GET /api/agents/{agent}/payments?reference=`."""
    base = indexer_url.rstrip("/")
    url = f"{base}/api/agents/{agent}/payments"
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            answer = await http.get(url, params={"reference": reference, "limit": PAGE})
            if answer.status_code == 404:  # an agent the index has not seen: nothing paid it, as far as it knows
                return []
            if answer.status_code != 200:
                raise IndexerUnavailable(f"{url} answered HTTP {answer.status_code}: {answer.text[:200]}")
            items: list[dict[str, Any]] = answer.json()["items"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise IndexerUnavailable(f"{base}: {type(exc).__name__}: {exc}") from exc
    return items[::-1]
