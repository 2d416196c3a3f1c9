"""`GhostPayClient.search_agents(indexer_url=…)`: the index finds, the chain confirms; when the API is
down the chain is searched and the answer is the same. `get_receipt(indexer_url=…)`: the index answers by
reference, as the chain's search does."""

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


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"capability": "translate"},
        {"sort": "price"},
        {"sort": "reputation", "limit": 2},
        {"x402_enabled": True, "sort": "calls"},
        {"min_reputation": 1},
        {"sort": "newest", "limit": 1},
    ],
)
def test_indexed_search_equals_the_chain(world: World, api: ServedApi, filters: dict[str, Any]) -> None:
    assert search(world, indexer_url=api.url, **filters) == search(world, **filters)


def test_indexed_search_with_token_and_price(world: World, api: ServedApi) -> None:
    got = search(world, indexer_url=api.url, token=world.usdc, max_price=Decimal("0.02"), sort="price")
    assert got == [str(world.agents["translator"]), str(world.agents["summarizer"])]
    assert got == search(world, token=world.usdc, max_price=Decimal("0.02"), sort="price")


def test_the_index_answers_and_the_api_down_falls_back(fresh_world: World, caplog: pytest.LogCaptureFixture) -> None:
    async def register_unindexed() -> str:
        async with GhostPayClient(fresh_world.net.http_url, funded(fresh_world.net.http_url)) as gp:
            reg = await gp.register_agent(
                "newcomer",
                "Newcomer",
                capabilities=["translate"],
                x402=X402Settings({fresh_world.usdc: Decimal("0.01")}, "https://n.example"),
            )
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


def receipt(world: World, agent: Any, reference: bytes, indexer_url: str | None) -> Any:
    async def run() -> Any:
        async with GhostPayClient(world.net.http_url, indexer_url=indexer_url) as gp:
            return await gp.get_receipt(agent, reference)

    return asyncio.run(run())


@pytest.mark.parametrize("outcome", ["recorded", "success", "failed"])
def test_a_payment_is_found_by_its_reference_in_the_index_as_on_the_chain(
    world: World, api: ServedApi, outcome: str
) -> None:
    paid = next(p for p in world.payments if p.outcome == outcome)
    indexed, searched = (receipt(world, paid.agent, paid.reference, url) for url in (api.url, None))
    assert (indexed.source, searched.source) == ("index", "chain")
    assert str(indexed.signature) == str(searched.signature) == paid.signature
    assert (indexed.payer, indexed.mint, indexed.amount_atomic, indexed.paid_at) == (
        searched.payer,
        searched.mint,
        searched.amount_atomic,
        searched.paid_at,
    )
    assert indexed.rated is (outcome != "recorded") and searched.rated is None  # the chain's search cannot tell
    assert receipt(world, paid.agent, bytes(32), api.url) is None
    rows = api.get(f"/api/agents/{paid.agent}/payments", params={"reference": paid.reference.hex()}).json()["items"]
    assert [r["signature"] for r in rows] == [paid.signature]
