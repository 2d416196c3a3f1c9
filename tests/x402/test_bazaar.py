"""The Bazaar served by `ghost facilitator start` from the chain, queried with the official package's client
unchanged (`with_bazaar(HTTPFacilitatorClientSync)`): GhostPay's x402 agents with their on-chain prices and
evidence, the filters and search terms, the catalogue following the chain without a restart, and hostile
query parameters refused with a named reason (or clamped)."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from solana.exceptions import SolanaRpcException
from solana.rpc.api import Client
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from starlette.testclient import TestClient
from x402.extensions.bazaar import (
    BazaarExtendedClient,
    DiscoveryResource,
    ListDiscoveryResourcesParams,
    OutputConfig,
    SearchDiscoveryResourcesParams,
    declare_discovery_extension,
)
from x402.http.utils import decode_payment_required_header

from ghostpay.client import GhostPayClient
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402 import x402_http
from ghostpay.x402.bazaar.catalogue import FULL_READ_SECONDS, ChainCatalogue
from ghostpay.x402.buyer.models import payment_record
from ghostpay.x402.facilitator import FacilitatorSettings
from ghostpay.x402.facilitator.app import create_facilitator_app
from ghostpay.x402.facilitator.keys import KeyStore
from ghostpay.x402.networks import DEVNET_CAIP2, MAINNET_CAIP2
from tests.localnet.conftest import LocalnetProcess
from tests.sdk.conftest import create_mint, fund
from tests.x402.conftest import (
    GHOST,
    PRICE_ATOMIC,
    Process,
    ServerThread,
    Shop,
    Upstream,
    buyer,
    by_agent,
    eventually,
    facilitator_process,
    keypair_file,
    official_http,
    pay,
    proxy_process,
    register,
    register_agent,
    sdk,
)


def paid_calls(bazaar: BazaarExtendedClient, agent: Pubkey) -> int | None:
    """The agent's verified paid calls as the Bazaar lists them (None: not listed)."""
    items = by_agent(bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(limit=100)).items)
    listed = items.get(str(agent))
    return None if listed is None else (listed.extensions or {})["ghostpay"]["verifiedPaidCalls"]


def test_the_package_client_lists_ghostpay_agents_with_prices_and_evidence(
    net: LocalnetProcess, bazaar: BazaarExtendedClient, bazaar_facilitator: Process, market: dict[str, Any]
) -> None:
    translator, usdc, eurc = market["translator"], market["usdc"], market["eurc"]
    eventually(lambda: paid_calls(bazaar, translator) == 2, "the translator's two payments in the catalogue")
    info = sdk(net, Keypair(), "get_agent", translator)
    listed = bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(pay_to=str(info.payment_address)))
    assert listed.x402_version == 2 and listed.pagination.total == 1
    item = listed.items[0]
    assert (item.resource, item.type, item.x402_version) == (f"https://{info.agent_id}.example/api", "http", 2)
    assert item.description == "Fast Spanish" and item.service_name == info.name
    assert item.tags == [market["tag"], "translate"]
    fee_payer = bazaar_facilitator.announce["feePayer"]
    assert {(a["asset"], a["amount"]) for a in item.accepts or []} == {(str(usdc), "50000"), (str(eurc), "4")}
    for accept in item.accepts or []:
        assert (accept["scheme"], accept["network"], accept["payTo"]) == (
            "exact",
            DEVNET_CAIP2,
            str(info.payment_address),
        )
        assert accept["extra"]["feePayer"] == fee_payer
        assert accept["extra"]["ghostpay"]["agent"] == str(translator)
    reputation = sdk(net, Keypair(), "get_reputation", translator)
    evidence = (item.extensions or {})["ghostpay"]
    assert evidence["agent"] == str(translator) and evidence["agentId"] == info.agent_id
    assert evidence["reputation"] == {"score": reputation.score, "tier": reputation.tier.value}
    assert reputation.score > 0 and reputation.tier.value != "UNRATED"
    assert (evidence["verifiedPaidCalls"], evidence["payers"]) == (2, 2)
    last_paid = datetime.strptime(evidence["lastPaidAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(last_paid.timestamp()) == info.account.last_payment_at
    summarizer = by_agent(bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(limit=100)).items)[
        str(market["summarizer"])
    ]
    unpaid = (summarizer.extensions or {})["ghostpay"]
    assert (unpaid["verifiedPaidCalls"], unpaid["payers"], unpaid["lastPaidAt"]) == (0, 0, None)
    assert unpaid["reputation"] == {"score": 0, "tier": "UNRATED"}
    assert "bazaar" in httpx.get(f"{bazaar_facilitator.url}/supported").json()["extensions"]


def test_list_filters_and_paging(bazaar: BazaarExtendedClient, market: dict[str, Any]) -> None:
    def listed(**params: Any) -> list[DiscoveryResource]:
        return bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(limit=100, **params)).items

    eventually(lambda: str(market["summarizer"]) in by_agent(listed()), "the summarizer listed")
    everyone = by_agent(listed())
    assert {str(market["translator"]), str(market["summarizer"])} <= set(everyone)
    assert by_agent(listed(network="solana-devnet")).keys() == everyone.keys()  # v1 spelling of the same network
    assert by_agent(listed(network=DEVNET_CAIP2, scheme="exact", type="http", extensions="ghostpay")).keys() == (
        everyone.keys()
    )
    assert listed(network=MAINNET_CAIP2) == [] and listed(scheme="upto") == [] and listed(type="mcp") == []
    assert listed(extensions="bazaar") == []
    total = len(everyone)
    pages = [bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(limit=1, offset=i)) for i in (0, 1)]
    assert [p.pagination.total for p in pages] == [total, total] and [len(p.items) for p in pages] == [1, 1]
    assert pages[0].items[0].resource != pages[1].items[0].resource
    scores = [(r.extensions or {})["ghostpay"]["reputation"]["score"] for r in listed()]
    assert scores == sorted(scores, reverse=True)  # highest reputation first
    beyond = bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(offset=10**6))
    assert beyond.items == [] and beyond.pagination.total == total


def test_search_by_capability_text_price_and_reputation(bazaar: BazaarExtendedClient, market: dict[str, Any]) -> None:
    tag, usdc, eurc = market["tag"], market["usdc"], market["eurc"]
    translator, summarizer = str(market["translator"]), str(market["summarizer"])

    def search(query: str, **params: Any) -> list[str]:
        answer = bazaar.extensions.bazaar.search(SearchDiscoveryResourcesParams(query=query, **params))
        return [r.extensions["ghostpay"]["agent"] for r in answer.resources if r.extensions]

    eventually(lambda: len(search(f"capability:{tag}")) == 2, "both agents searchable")
    assert search(f"capability:{tag}")[0] == translator  # sorted by reputation: the paid one first
    assert search(f"capability:{tag} sort:price max_price:{usdc}=50000") == [summarizer, translator]
    assert search(f"capability:{tag} max_price:{usdc}=10000") == [summarizer]
    assert search(f"capability:{tag} max_price:{eurc}=4") == [translator]  # the summarizer does not take EURC
    assert search(f"capability:{tag} asset:{eurc}") == [translator]
    assert search(f"capability:{tag} min_reputation:1") == [translator]
    assert search(f"{tag} spanish") == [translator]  # free words: name, description, capabilities...
    assert search(f"{tag} capability:SUMMARIZE") == [summarizer]
    assert search(f"{tag} german") == []
    page = bazaar.extensions.bazaar.search(SearchDiscoveryResourcesParams(query=f"capability:{tag}", limit=1))
    assert page.partial_results is True and page.pagination is not None and page.pagination.cursor == "1"
    rest = bazaar.extensions.bazaar.search(
        SearchDiscoveryResourcesParams(query=f"capability:{tag}", limit=1, cursor=page.pagination.cursor)
    )
    assert [r.extensions["ghostpay"]["agent"] for r in rest.resources if r.extensions] == [summarizer]
    assert rest.partial_results is False and rest.pagination is not None and rest.pagination.cursor is None


def test_the_catalogue_follows_the_chain_without_a_restart(
    net: LocalnetProcess, bazaar: BazaarExtendedClient, bazaar_facilitator: Process
) -> None:
    mint = create_mint(net, 6)
    tag = f"bz{secrets.token_hex(4)}"

    def found() -> list[str]:
        answer = bazaar.extensions.bazaar.search(SearchDiscoveryResourcesParams(query=f"capability:{tag}"))
        return [r.extensions["ghostpay"]["agent"] for r in answer.resources if r.extensions]

    assert found() == []
    pid = bazaar_facilitator.proc.pid  # type: ignore[union-attr]
    address, owner = register(net, f"{tag}-late", {mint: Decimal("0.02")}, [tag])
    eventually(lambda: found() == [str(address)], "the newly registered agent listed")
    sdk(net, owner, "deactivate", address)
    eventually(lambda: found() == [], "the deactivated agent gone")
    assert bazaar_facilitator.proc is not None and bazaar_facilitator.proc.pid == pid
    assert bazaar_facilitator.proc.poll() is None  # the same process all along
    refreshed = httpx.get(f"{bazaar_facilitator.url}/health").json()["discovery"]
    assert refreshed["refreshes"] > 1 and refreshed["resources"] >= 0


@pytest.mark.parametrize(
    ("route", "params", "reason"),
    [
        ("resources", {"limit": "-1"}, "invalid_limit"),
        ("resources", {"limit": "0"}, "invalid_limit"),
        ("resources", {"limit": "1e3"}, "invalid_limit"),
        ("resources", {"limit": "9" * 31}, "invalid_limit"),
        ("resources", {"offset": "-5"}, "invalid_offset"),
        ("resources", {"network": "solana:bogus"}, "invalid_network"),
        ("resources", {"network": "x" * 1000}, "invalid_parameter"),
        ("resources", {"payTo": "not-a-key"}, "invalid_address"),
        ("search", {}, "invalid_query"),
        ("search", {"query": "x" * 257}, "invalid_query"),
        ("search", {"query": "a", "cursor": "-1"}, "invalid_cursor"),
        ("search", {"query": "sort:price"}, "invalid_sort"),
        ("search", {"query": "sort:newest"}, "invalid_sort"),
        ("search", {"query": "min_reputation:10001"}, "invalid_min_reputation"),
        ("search", {"query": "max_price:nope=1"}, "invalid_address"),
        ("search", {"query": f"max_price:{Pubkey.default()}=-1"}, "invalid_amount"),
    ],
)
def test_hostile_query_parameters_are_refused_by_name(
    bazaar_facilitator: Process, route: str, params: dict[str, str], reason: str
) -> None:
    answer = httpx.get(f"{bazaar_facilitator.url}/discovery/{route}", params=params)
    assert answer.status_code == 400
    assert answer.json()["reason"] == reason


def test_a_huge_limit_is_clamped_and_the_package_client_sees_refusals(
    bazaar: BazaarExtendedClient, bazaar_facilitator: Process
) -> None:
    clamped = bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(limit=10**9))
    assert clamped.pagination.limit == 100
    with pytest.raises(ValueError, match=r"\(400\).*invalid_limit"):
        bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(limit=-1))
    with pytest.raises(ValueError, match=r"\(400\).*invalid_network"):
        bazaar.extensions.bazaar.search(SearchDiscoveryResourcesParams(query="x", network="eip155:8453"))
    assert httpx.get(f"{bazaar_facilitator.url}/health").status_code == 200  # still serving


def test_without_discovery_the_routes_are_absent(net: LocalnetProcess, tmp_path: Path) -> None:
    proc = facilitator_process(net, tmp_path, fund(net, sol=1), "--discovery-refresh", "0").start()
    try:
        assert httpx.get(f"{proc.url}/discovery/resources").status_code == 404
        assert "bazaar" not in httpx.get(f"{proc.url}/supported").json()["extensions"]
    finally:
        proc.stop()


def test_a_seller_declares_discovery_info_and_the_facilitator_catalogues_it_when_paid(
    net: LocalnetProcess, bazaar: BazaarExtendedClient, bazaar_facilitator: Process
) -> None:
    agent = register_agent(net, f"bz{secrets.token_hex(4)}-declared")
    declared = declare_discovery_extension(
        input={"text": "hola"},
        input_schema={"properties": {"text": {"type": "string"}}, "required": ["text"]},
        output=OutputConfig(example={"translation": "hello"}),
    )

    def catalogued(url: str) -> DiscoveryResource | None:
        listed = bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(extensions="bazaar", limit=100))
        return next((r for r in listed.items if r.resource == url), None)

    with Shop(agent, bazaar_facilitator.url, discovery=declared) as shop:
        url = f"{shop.url}/paid"
        unpaid = httpx.get(url)
        assert unpaid.status_code == 402
        assert catalogued(url) is None  # declared in the 402, catalogued only once a payment settles
        assert pay(net, buyer(net, agent.mint), url).status_code == 200  # the official client
        eventually(lambda: catalogued(url) is not None, "the declared route catalogued")

        async def ghostpay_buyer() -> None:  # GhostPay's buyer copies the declaration too, and records the payment
            async with (
                GhostPayClient(net.http_url, buyer(net, agent.mint), ws_url=net.ws_url) as gp,
                x402_http(gp) as http,
            ):
                assert payment_record(await http.get(url)).settled

        asyncio.run(ghostpay_buyer())
        eventually(
            lambda: (
                ((catalogued(url) or DiscoveryResource("", "")).extensions or {})["ghostpay"]["verifiedPaidCalls"] == 1
            ),
            "the recorded payment in the declared route's evidence",
        )
    item = catalogued(url)
    assert item is not None and item.type == "http" and item.x402_version == 2
    info = (item.extensions or {})["bazaar"]["info"]
    assert info["input"]["method"] == "GET" and info["input"]["queryParams"] == {"text": "hola"}
    assert info["output"]["example"] == {"translation": "hello"}
    [accepted] = item.accepts or []
    assert (accepted["amount"], accepted["asset"]) == (str(PRICE_ATOMIC), str(agent.mint))
    evidence = (item.extensions or {})["ghostpay"]  # the agent it paid is on chain: its evidence rides along
    assert evidence["agent"] == str(agent.address)


def test_the_proxy_declares_its_routes_from_json_schema_files(
    net: LocalnetProcess, bazaar: BazaarExtendedClient, bazaar_facilitator: Process, tmp_path: Path
) -> None:
    agent = register_agent(net, f"bz{secrets.token_hex(4)}-proxied")
    files = {
        "input-schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "input-example": {"text": "hola"},
        "output-schema": {"type": "object", "properties": {"echo": {"type": "string"}}},
        "output-example": {"echo": "hola"},
    }
    options = []
    for name, content in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
        options += [f"--{name}", str(tmp_path / f"{name}.json")]
    upstream = Upstream()
    with ServerThread(upstream.app) as served:
        proc = proxy_process(
            net, agent, served.url, bazaar_facilitator.url, tmp_path, "--route", "POST /translate", *options
        ).start()
        try:
            url = f"{proc.url}/translate"
            required = decode_payment_required_header(httpx.post(url, json={}).headers["payment-required"])
            declared = (required.extensions or {})["bazaar"]
            assert declared["info"]["input"] == {
                "type": "http",
                "method": "POST",
                "bodyType": "json",
                "body": files["input-example"],
            }
            assert declared["schema"]["properties"]["input"]["properties"]["body"] == files["input-schema"]

            async def paid_post() -> int:
                async with official_http(net, buyer(net, agent.mint)) as client:
                    return (await client.post(url, json={"text": "hola"})).status_code

            assert asyncio.run(paid_post()) == 200
        finally:
            proc.stop()
    listed = bazaar.extensions.bazaar.list_resources(ListDiscoveryResourcesParams(extensions="bazaar", limit=100))
    [item] = [r for r in listed.items if r.resource == url]
    assert (item.extensions or {})["bazaar"]["info"]["output"]["example"] == files["output-example"]
    assert (item.extensions or {})["ghostpay"]["agent"] == str(agent.address)


@pytest.mark.parametrize(
    ("routes", "files", "message"),
    [
        (["POST /a"], {"input-example": "not json"}, "is not JSON"),
        (["POST /a", "GET /b"], {"input-example": "{}"}, "one kind of input"),
        (["GET /a"], {"output-schema": "{}"}, "output example"),
        (["GET /a"], {"input-example": "[1]"}, "JSON object of query parameters"),
    ],
)
def test_the_proxy_refuses_a_declaration_that_cannot_work(
    tmp_path: Path, routes: list[str], files: dict[str, str], message: str
) -> None:
    options = [arg for r in routes for arg in ("--route", r)]
    for name, content in files.items():
        (tmp_path / name).write_text(content)
        options += [f"--{name}", str(tmp_path / name)]
    keypair = keypair_file(tmp_path, Keypair())
    done = subprocess.run(
        [
            GHOST,
            "-k",
            str(keypair),
            "x402",
            "proxy",
            "--agent",
            str(Pubkey.default()),
            "--upstream",
            "http://127.0.0.1:9",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_the_bazaar_follows_the_facilitators_access_policy(net: LocalnetProcess, tmp_path: Path) -> None:
    settings = FacilitatorSettings(
        Keypair(), net.http_url, net.ws_url, db_path=tmp_path / "f.db", sweep_interval_seconds=0
    )
    paths = ("/discovery/resources", "/discovery/search?query=translate")
    with TestClient(create_facilitator_app(settings), client=("203.0.113.7", 40000)) as remote:
        for path in paths:  # no seller key: loopback clients only, as for every route
            answer = remote.get(path)
            assert answer.status_code == 403 and answer.json()["error"] == "ghostpay_loopback_only"
    KeyStore(settings.db_path).add("alice")
    with TestClient(create_facilitator_app(settings), client=("203.0.113.7", 40000)) as remote:
        for path in paths:  # with keys: public, as /supported is
            assert remote.get(path).status_code == 200


def test_ghost_x402_discover_prints_prices_and_evidence(
    net: LocalnetProcess, bazaar: BazaarExtendedClient, bazaar_facilitator: Process, market: dict[str, Any]
) -> None:
    """`ghost x402 discover` asks the Bazaar with the package's client: each agent, its price in whole tokens and
    its evidence; `--output json` gives the package's items as they came."""
    translator = str(market["translator"])
    eventually(lambda: paid_calls(bazaar, market["translator"]) == 2, "the translator's payments in the catalogue")
    args = [
        GHOST,
        "-u",
        net.http_url,
        "x402",
        "discover",
        f"capability:{market['tag']} asset:{market['usdc']} sort:price",
    ]
    shown = subprocess.run([*args, "--facilitator", bazaar_facilitator.url], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert f"{market['tag']}-translator" in text and f"{market['tag']}-summarizer" in text
    assert "0.05" in text and "0.01" in text and "50000" not in text  # whole tokens, not atomic units
    done = subprocess.run(
        [GHOST, "--output", "json", *args[1:], "--facilitator", bazaar_facilitator.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    items = json.loads(done.stdout)["items"]
    assert [i["extensions"]["ghostpay"]["agent"] for i in items] == [str(market["summarizer"]), translator]
    assert items[1]["extensions"]["ghostpay"]["verifiedPaidCalls"] == 2


def test_ghost_x402_discover_without_a_bazaar_is_one_clean_error(net: LocalnetProcess) -> None:
    done = subprocess.run(
        [GHOST, "-u", net.http_url, "x402", "discover", "--facilitator", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: the Bazaar of http://127.0.0.1:9 did not answer")
    assert len(done.stderr.strip().splitlines()) == 1


class CountingClient(Client):
    """The RPC client the facilitator uses, counting the catalogue's heavy reads (`getProgramAccounts`);
    `history=False`: a node without transaction history (`getSignaturesForAddress` fails)."""

    def __init__(self, url: str, history: bool = True) -> None:
        super().__init__(url)
        self.reads = 0
        self.history = history

    def get_program_accounts(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return super().get_program_accounts(*args, **kwargs)

    def get_signatures_for_address(self, *args: Any, **kwargs: Any) -> Any:
        if not self.history:
            raise SolanaRpcException("transaction history is not available from this node")
        return super().get_signatures_for_address(*args, **kwargs)


def test_a_quiet_registry_is_not_read_again(tmp_path: Path) -> None:
    """On a localnet of its own: the catalogue's look finds the program's newest transaction unchanged and
    reads nothing more; a registration, then a deactivation, are read at the next look; a read older than
    FULL_READ_SECONDS is done again; a node without history is read at every look, as before."""
    chain = LocalnetProcess(tmp_path / "ledger").start()
    try:
        rpc = CountingClient(chain.http_url)
        catalogue = ChainCatalogue(rpc, PROGRAM_ID, DEVNET_CAIP2, str(Keypair().pubkey()), ())
        assert catalogue.follow() and rpc.reads == 2  # the agents, the PayerStats' agents
        mint = create_mint(chain, 6)  # a transaction, not the program's
        assert [catalogue.follow() for _ in range(3)] == [False, False, False] and rpc.reads == 2
        address, owner = register(chain, "quiet-newcomer", {mint: Decimal("0.02")}, ["quiet"])
        assert catalogue.follow() and rpc.reads == 4
        assert [x.agent for x in catalogue.listings] == [str(address)]
        assert not catalogue.follow() and rpc.reads == 4
        sdk(chain, owner, "deactivate", address)
        assert catalogue.follow() and catalogue.listings == () and rpc.reads == 6
        assert catalogue.refreshed_at is not None
        catalogue.refreshed_at -= FULL_READ_SECONDS
        assert catalogue.follow() and rpc.reads == 8
        assert catalogue.status() | {"refreshedAt": None} == {
            "resources": 0,
            "refreshedAt": None,
            "refreshes": 4,
            "looks": 8,
        }

        blind = CountingClient(chain.http_url, history=False)
        without_history = ChainCatalogue(blind, PROGRAM_ID, DEVNET_CAIP2, str(Keypair().pubkey()), ())
        assert [without_history.follow() for _ in range(2)] == [True, True] and blind.reads == 4
    finally:
        chain.stop()
