"""The Bazaar served by `ghost indexer serve` from the index (beside `ghost indexer run` following a localnet),
queried with the official package's client unchanged (`with_bazaar(HTTPFacilitatorClientSync)`): the same items
and evidence as the facilitator's Bazaar reads from the chain, the list filters and paging, search, an agent
showing once its registration is indexed and gone once its deactivation is, and meaningless queries refused by
name."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair
from x402.extensions.bazaar import (
    BazaarExtendedClient,
    DiscoveryResource,
    ListDiscoveryResourcesParams,
    SearchDiscoveryResourcesParams,
    with_bazaar,
)
from x402.http import FacilitatorConfig
from x402.http.facilitator_client import HTTPFacilitatorClientSync

from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402.networks import DEVNET_CAIP2, MAINNET_CAIP2
from tests.localnet.conftest import LocalnetProcess
from tests.sdk.conftest import create_mint
from tests.x402.conftest import GHOST, Process, by_agent, eventually, register, sdk


@pytest.fixture(scope="module")
def index_server(net: LocalnetProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """`ghost indexer run` following the localnet into SQLite, and `ghost indexer serve` over that index."""
    folder = tmp_path_factory.mktemp("bazaar-index")
    db = f"sqlite:///{folder / 'index.db'}"
    server = Process("indexer", "serve", "-u", net.http_url, "--db", db, "--port", "0", "--json", home=folder)
    server.start()  # it creates the schema: the indexer starts after it, not racing it
    indexer = subprocess.Popen(
        [GHOST, "indexer", "run", "-u", net.http_url, "--ws-url", net.ws_url, "--db", db, "--log-level", "warning"],
        env={**os.environ, "GHOSTPAY_HOME": str(folder)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield server
    finally:
        indexer.terminate()
        indexer.wait(30)
        server.stop()


@pytest.fixture
def index_bazaar(index_server: Process) -> Iterator[BazaarExtendedClient]:
    config = FacilitatorConfig(url=index_server.url.rstrip("/"))
    client = with_bazaar(HTTPFacilitatorClientSync(config))  # type: ignore[arg-type]
    yield client
    client.close()


def listed(client: BazaarExtendedClient, **params: Any) -> list[DiscoveryResource]:
    return client.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(limit=100, **params)).items


def searched(client: BazaarExtendedClient, query: str, **params: Any) -> list[str]:
    answer = client.extensions.bazaar.search(SearchDiscoveryResourcesParams(query=query, **params))
    return [r.extensions["ghostpay"]["agent"] for r in answer.resources if r.extensions]


def evidence(item: DiscoveryResource) -> dict[str, Any]:
    return dict((item.extensions or {})["ghostpay"])


def test_the_index_lists_what_the_facilitator_reads_from_the_chain(
    net: LocalnetProcess, index_bazaar: BazaarExtendedClient, bazaar: BazaarExtendedClient, market: dict[str, Any]
) -> None:
    translator, summarizer = str(market["translator"]), str(market["summarizer"])

    def paid_twice(client: BazaarExtendedClient) -> bool:
        item = by_agent(listed(client)).get(translator)
        return item is not None and evidence(item)["verifiedPaidCalls"] == 2

    eventually(lambda: paid_twice(index_bazaar), "the translator's two payments indexed")
    eventually(lambda: paid_twice(bazaar), "the translator's two payments in the facilitator's catalogue")
    from_index, from_chain = by_agent(listed(index_bazaar)), by_agent(listed(bazaar))
    for agent in (translator, summarizer):
        indexed, read = from_index[agent].to_dict(), from_chain[agent].to_dict()
        for only_indexed in ("trustedEvidence", "trust"):  # what the index adds (tests/indexer/test_trust.py)
            indexed["extensions"]["ghostpay"].pop(only_indexed, None)
        extras = [accept.pop("extra") for accept in indexed["accepts"]]
        for accept in read["accepts"]:
            del accept["extra"]  # the facilitator's: its fee payer and what it supports
        assert indexed == read
        # the index does not know which facilitator a seller settles through: the agent, no fee payer
        hint = {"agent": agent, "programId": str(PROGRAM_ID), "recordAfterMemo": False}
        assert extras == [{"ghostpay": hint}] * len(extras)
    item = from_index[translator]
    assert {(a["asset"], a["amount"], a["network"]) for a in item.accepts or []} == {
        (str(market["usdc"]), "50000", DEVNET_CAIP2),
        (str(market["eurc"]), "4", DEVNET_CAIP2),
    }
    found = evidence(item)
    assert (found["verifiedPaidCalls"], found["payers"]) == (2, 2) and found["lastPaidAt"] is not None
    reputation = sdk(net, Keypair(), "get_reputation", market["translator"])
    assert found["reputation"] == {"score": reputation.score, "tier": reputation.tier.value} and reputation.score > 0


def test_list_filters_and_paging(index_bazaar: BazaarExtendedClient, market: dict[str, Any]) -> None:
    translator, summarizer = str(market["translator"]), str(market["summarizer"])
    eventually(lambda: summarizer in by_agent(listed(index_bazaar)), "the summarizer indexed")
    everyone = by_agent(listed(index_bazaar))
    assert {translator, summarizer} <= set(everyone)
    pay_to = everyone[translator].accepts[0]["payTo"]  # type: ignore[index]
    assert list(by_agent(listed(index_bazaar, pay_to=pay_to))) == [translator]
    assert by_agent(listed(index_bazaar, network="solana-devnet")).keys() == everyone.keys()
    assert by_agent(listed(index_bazaar, network=DEVNET_CAIP2, type="http", scheme="exact")).keys() == everyone.keys()
    assert listed(index_bazaar, network=MAINNET_CAIP2) == [] and listed(index_bazaar, type="mcp") == []
    total = len(everyone)
    pages = [
        index_bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(limit=1, offset=i)) for i in (0, 1)
    ]
    assert [p.pagination.total for p in pages] == [total, total] and [len(p.items) for p in pages] == [1, 1]
    assert pages[0].items[0].resource != pages[1].items[0].resource
    scores = [evidence(r)["reputation"]["score"] for r in listed(index_bazaar)]
    assert scores == sorted(scores, reverse=True)
    beyond = index_bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(offset=10**6))
    assert beyond.items == [] and beyond.pagination.total == total


def test_search_by_capability_text_price_and_reputation(
    index_bazaar: BazaarExtendedClient, market: dict[str, Any]
) -> None:
    tag, usdc, eurc = market["tag"], market["usdc"], market["eurc"]
    translator, summarizer = str(market["translator"]), str(market["summarizer"])
    eventually(lambda: len(searched(index_bazaar, f"capability:{tag}")) == 2, "both agents indexed")
    assert searched(index_bazaar, f"capability:{tag}") == [translator, summarizer]  # the paid one first
    assert searched(index_bazaar, f"capability:{tag} sort:price max_price:{usdc}=50000") == [summarizer, translator]
    assert searched(index_bazaar, f"capability:{tag} max_price:{usdc}=10000") == [summarizer]
    assert searched(index_bazaar, f"capability:{tag} asset:{eurc}") == [translator]
    assert searched(index_bazaar, f"capability:{tag} min_reputation:1") == [translator]
    assert searched(index_bazaar, f"{tag} spanish") == [translator]
    assert searched(index_bazaar, f"{tag} german") == []
    page = index_bazaar.extensions.bazaar.search(SearchDiscoveryResourcesParams(query=f"capability:{tag}", limit=1))
    assert page.partial_results is True and page.pagination is not None and page.pagination.cursor == "1"
    assert searched(index_bazaar, f"capability:{tag}", limit=1, cursor="1") == [summarizer]


def test_an_agent_shows_once_indexed_and_goes_once_deactivated(
    net: LocalnetProcess, index_bazaar: BazaarExtendedClient, index_server: Process
) -> None:
    tag = f"bz{secrets.token_hex(4)}"
    assert searched(index_bazaar, f"capability:{tag}") == []
    address, owner = register(net, f"{tag}-late", {create_mint(net, 6): Decimal("0.02")}, [tag])
    eventually(lambda: searched(index_bazaar, f"capability:{tag}") == [str(address)], "the new agent listed")
    sdk(net, owner, "deactivate", address)
    eventually(lambda: searched(index_bazaar, f"capability:{tag}") == [], "the deactivated agent gone")
    assert index_server.proc is not None and index_server.proc.poll() is None  # the same server all along


@pytest.mark.parametrize(
    ("route", "params", "reason"),
    [
        ("resources", {"limit": "-1"}, "invalid_limit"),
        ("resources", {"offset": "-5"}, "invalid_offset"),
        ("resources", {"network": "solana:bogus"}, "invalid_network"),
        ("resources", {"payTo": "not-a-key"}, "invalid_address"),
        ("search", {}, "invalid_query"),
        ("search", {"query": "sort:price"}, "invalid_sort"),
        ("search", {"query": "min_reputation:10001"}, "invalid_min_reputation"),
    ],
)
def test_meaningless_queries_are_refused_by_name(
    index_server: Process, route: str, params: dict[str, str], reason: str
) -> None:
    answer = httpx.get(f"{index_server.url}discovery/{route}", params=params)
    assert answer.status_code == 400 and answer.json()["reason"] == reason


def test_the_api_docs_name_the_bazaar_routes(index_server: Process) -> None:
    paths = httpx.get(f"{index_server.url}openapi.json").json()["paths"]
    assert {"/discovery/resources", "/discovery/search"} <= set(paths)


def test_ghost_x402_discover_asks_the_index(
    net: LocalnetProcess, index_bazaar: BazaarExtendedClient, index_server: Process, market: dict[str, Any]
) -> None:
    """`ghost x402 discover --facilitator` pointed at `ghost indexer serve`: the same command, the index's items."""
    tag = market["tag"]
    eventually(lambda: len(searched(index_bazaar, f"capability:{tag}")) == 2, "both agents indexed")
    shown = subprocess.run(
        [GHOST, "-u", net.http_url, "x402", "discover", f"capability:{tag}", "--facilitator", index_server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"{tag}-translator" in shown.stdout and f"{tag}-summarizer" in shown.stdout
    assert "0.05" in shown.stdout and "50000" not in shown.stdout  # whole tokens, not atomic units
