"""`GhostPayClient.search_agents(indexer_url=…)`: the index finds, the chain confirms; when the API is
down the chain is searched and the answer is the same."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest

from ghostpay.analytics.api import ApiSettings
from ghostpay.client import GhostPayClient, X402Settings
from tests.analytics.conftest import ServedApi
from tests.analytics.world import World, funded

DEAD_API = "http://127.0.0.1:9"  # the discard port: nothing listens


def search(world: World, **filters: Any) -> list[str]:
    async def run() -> list[str]:
        async with GhostPayClient(world.net.http_url) as gp:
            return [str(a.address) for a in await gp.search_agents(**filters)]
    return asyncio.run(run())


@pytest.mark.parametrize("filters", [
    {}, {"capability": "translate"}, {"sort": "price"}, {"sort": "reputation", "limit": 2},
    {"x402_enabled": True, "sort": "calls"}, {"min_reputation": 1}, {"sort": "newest", "limit": 1},
])
def test_indexed_search_equals_the_chain(world: World, api: ServedApi, filters: dict[str, Any]) -> None:
    assert search(world, indexer_url=api.url, **filters) == search(world, **filters)


def test_indexed_search_with_token_and_price(world: World, api: ServedApi) -> None:
    got = search(world, indexer_url=api.url, token=world.usdc, max_price=Decimal("0.02"), sort="price")
    assert got == [str(world.agents["translator"]), str(world.agents["summarizer"])]
    assert got == search(world, token=world.usdc, max_price=Decimal("0.02"), sort="price")


def test_the_index_answers_and_the_api_down_falls_back(fresh_world: World, caplog: pytest.LogCaptureFixture) -> None:
    async def register_unindexed() -> str:
        async with GhostPayClient(fresh_world.net.http_url, funded(fresh_world.net.http_url)) as gp:
            reg = await gp.register_agent("newcomer", "Newcomer", capabilities=["translate"],
                                          x402=X402Settings({fresh_world.usdc: Decimal("0.01")}, "https://n.example"))
            return str(reg.address)

    newcomer = asyncio.run(register_unindexed())  # on chain, not yet in the index
    with ServedApi(ApiSettings(fresh_world.db_url, rpc_url=fresh_world.net.http_url, webhooks=False)) as api:
        indexed = search(fresh_world, indexer_url=api.url, capability="translate")
    chain = search(fresh_world, capability="translate")
    assert newcomer in chain and newcomer not in indexed  # the index answered
    assert set(indexed) == set(chain) - {newcomer}
    with caplog.at_level(logging.WARNING, logger="ghostpay.client"):
        fallback = search(fresh_world, indexer_url=DEAD_API, capability="translate")
    assert fallback == chain
    assert "indexer API unavailable, searching the chain" in caplog.text
