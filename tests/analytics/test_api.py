"""`ghost indexer serve`'s JSON API over a known history, through uvicorn on a real port: what it lists
equals what was sent on chain, pages do not overlap, bad input gets the named status and one line."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter, defaultdict
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import InternalError, OperationalError

from ghostpay.analytics.api import ApiSettings, read_only_engine
from ghostpay.client import GhostPayClient
from ghostpay.indexer.service import Indexer, IndexerConfig
from ghostpay.token_labels import LABELS_FILE
from tests.analytics.conftest import ServedApi
from tests.analytics.world import World
from tests.indexer.postgres import PostgresCluster

WEEK = 7 * 86_400


def expected_metrics(world: World) -> dict[str, object]:
    """The X402TransactionMetrics figures computed from what the test sent, not from the index."""
    outcomes = Counter(p.outcome for p in world.payments)
    volume: dict[str, int] = defaultdict(int)
    for p in world.payments:
        volume[str(p.mint)] += p.atomic
    decimals = {str(world.usdc): 6, str(world.bonk): 9}
    timed = [p.response_time_ms for p in world.payments if p.response_time_ms]
    rated = outcomes["success"] + outcomes["failed"]
    return {
        "payments": {
            "total": len(world.payments),
            "successful": outcomes["success"],
            "failed": outcomes["failed"],
            "pending": outcomes["recorded"],
        },
        "volume_total": {m: format(Decimal(v).scaleb(-decimals[m]), "f") for m, v in volume.items()},
        "active": len({p.agent for p in world.payments}),
        "success_rate": f"{outcomes['success'] * 10_000 // rated / 100:.2f}",
        "average_response_ms": round(sum(timed) / len(timed)),
    }


def test_x402_metrics_equal_what_was_paid(world: World, api: ServedApi) -> None:
    got = api.get(f"/api/metrics/x402?period={WEEK}").json()
    want = expected_metrics(world)
    assert got["payments"] == want["payments"]
    assert got["volume"]["total"] == want["volume_total"]
    assert got["volume"]["total"][str(world.bonk)] == "0.120000000"  # nine places: the mint's decimals
    assert got["agents"]["active"] == want["active"]
    assert got["performance"]["success_rate"] == want["success_rate"]
    assert got["performance"]["average_response_ms"] == want["average_response_ms"]
    assert "average_confirmation_ms" not in got["performance"]  # not on chain: not shown, not invented
    coder = [e for e in got["agents"]["top_earners"] if e["agent"] == str(world.agents["coder"])]
    assert {(e["mint"], e["calls"]) for e in coder} == {(str(world.usdc), 1), (str(world.bonk), 2)}
    assert next(e for e in coder if e["mint"] == str(world.bonk))["earnings"] == "0.120000000"
    assert {e["name"] for e in got["agents"]["top_earners"]} == {"Translator", "Summarizer", "Coder"}
    by_agent = api.get(f"/api/metrics/x402?period={WEEK}&agent={world.agents['translator']}").json()
    assert by_agent["payments"]["total"] == sum(p.agent == world.agents["translator"] for p in world.payments)


def test_volume_series_adds_up_to_the_totals(world: World, api: ServedApi) -> None:
    series = api.get(f"/api/metrics/volume?period={WEEK}&buckets=12").json()
    assert len(series["buckets"]) == 12
    assert sum(b["payments"] for b in series["buckets"]) == len(world.payments)
    usdc = sum(int(b["volume_atomic"].get(str(world.usdc), 0)) for b in series["buckets"])
    assert usdc == sum(p.atomic for p in world.payments if p.mint == world.usdc)


def test_agent_search_filters_and_prices_per_token(world: World, api: ServedApi) -> None:
    translate = api.get("/api/agents?capability=TRANSLATE&sort=price").json()
    assert [a["agent_id"] for a in translate["items"]] == ["translator", "summarizer"]
    coder = api.get(f"/api/agents/{world.agents['coder']}").json()
    assert coder["prices"] == {str(world.usdc): "0.050000", str(world.bonk): "0.050000000"}  # each in its mint
    assert coder["capabilities"] == ["code"] and coder["x402_enabled"] is True
    paid = {
        m: sum(p.atomic for p in world.payments if p.agent == world.agents["coder"] and p.mint == m)
        for m in (world.usdc, world.bonk)
    }
    assert {e["mint"]: (e["x402_payments_atomic"], e["escrow_earnings_atomic"]) for e in coder["earnings"]} == {
        str(m): (str(atomic), "0") for m, atomic in paid.items()
    }  # per mint: never a sum of atomic units
    assert next(e for e in coder["earnings"] if e["mint"] == str(world.bonk))["x402_payments"] == "0.120000000"
    cheap = api.get(f"/api/agents?token={world.usdc}&max_price=0.015").json()
    assert [a["agent_id"] for a in cheap["items"]] == ["translator"]
    assert api.get(f"/api/agents?token={world.usdc}&max_price=0.02").json()["total"] == 2
    assert api.get(f"/api/agents?token={world.bonk}").json()["total"] == 1
    assert [a["agent_id"] for a in api.get(f"/api/agents?token={world.bonk}&max_price=0.05").json()["items"]] == [
        "coder"
    ]
    assert api.get(f"/api/agents?token={world.bonk}&max_price=0.049999999").json()["items"] == []
    calls = api.get("/api/agents?sort=calls").json()["items"]
    assert [a["x402_total_calls"] for a in calls] == sorted((a["x402_total_calls"] for a in calls), reverse=True)


def test_cursor_pages_cover_everything_once(world: World, api: ServedApi) -> None:
    for sort in ("reputation", "price", f"price&token={world.bonk}", "newest", "calls", "trust"):
        seen, cursor = [], None
        while True:
            page = api.get(f"/api/agents?sort={sort}&limit=1" + (f"&cursor={cursor}" if cursor else "")).json()
            assert page["total_capped"] is False and page["total"] == (1 if "token" in sort else 3), sort
            assert all(a["evidence"]["text"] for a in page["items"]), sort  # each row keeps its evidence
            seen += [a["address"] for a in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        whole = [a["address"] for a in api.get(f"/api/agents?sort={sort}&limit=100").json()["items"]]
        assert seen == whole and len(set(seen)) == len(seen), sort
        assert set(seen) == (
            {str(world.agents["coder"])} if "token" in sort else {str(a) for a in world.agents.values()}
        ), sort
    by_price = [a["agent_id"] for a in api.get("/api/agents?sort=price").json()["items"]]
    assert by_price == ["translator", "summarizer", "coder"]  # each in its default mint
    translator = world.agents["translator"]
    first = api.get(f"/api/agents/{translator}/payments?limit=2").json()
    second = api.get(f"/api/agents/{translator}/payments?limit=2&cursor={first['next_cursor']}").json()
    signatures = [p["signature"] for p in first["items"] + second["items"]]
    mine = [p for p in world.payments if p.agent == translator]
    assert sorted(signatures) == sorted(p.signature for p in mine) and len(set(signatures)) == len(mine)
    assert second["next_cursor"] is None
    assert {p["amount"] for p in first["items"] + second["items"]} == {"0.010000", "0.012000"}


def test_reputation_equals_the_chain(world: World, api: ServedApi) -> None:
    async def chain() -> object:
        async with GhostPayClient(world.net.http_url) as gp:
            return await gp.get_reputation(world.agents["summarizer"])

    on_chain = asyncio.run(chain())
    got = api.get(f"/api/reputation/{world.agents['summarizer']}").json()
    assert got["score"] == on_chain.score and got["tier"] == on_chain.tier.value  # type: ignore[attr-defined]
    c = on_chain.components  # type: ignore[attr-defined]
    assert {k: v["score"] for k, v in got["components"].items()} == {
        "payment_success": c.payment_success,
        "service_quality": c.service_quality,
        "response_time": c.response_time,
        "volume_consistency": c.volume_consistency,
    }
    assert got["metrics"]["failed_payments"] == 1


def test_work_orders_by_party_and_status(world: World, api: ServedApi) -> None:
    assert world.client is not None
    mine = api.get(f"/api/work-orders?party={world.client.pubkey()}").json()["items"]
    assert [(w["address"], w["status"], w["amount"]) for w in mine] == [(str(world.work_order), "Accepted", "5.000000")]
    provider = world.owners["translator"].pubkey()
    assert len(api.get(f"/api/work-orders?party={provider}&status=accepted").json()["items"]) == 1
    assert api.get(f"/api/work-orders?party={provider}&status=Completed").json()["items"] == []


@pytest.mark.parametrize(
    "path, status, message",
    [
        ("/api/agents/not-base58!", 400, "agent is not a base58 public key"),
        ("/api/agents/11111111111111111111111111111111", 404, "no indexed agent"),
        ("/api/agents/11111111111111111111111111111111/payments", 404, "no indexed agent"),
        ("/api/reputation/xyz", 400, "not a base58 public key"),
        ("/api/agents?limit=0", 422, "limit: Input should be greater than or equal to 1"),
        ("/api/agents?limit=101", 422, "limit: Input should be less than or equal to 100"),
        ("/api/agents?min_reputation=10001", 422, "min_reputation"),
        ("/api/agents?sort=cheapest", 422, "sort: Input should be"),
        ("/api/agents?max_price=1", 422, "max_price needs token"),
        ("/api/agents?token=So11111111111111111111111111111111111111112&max_price=abc", 422, "not a decimal"),
        ("/api/agents?token=not%20a%20mint!", 400, "token 'not a mint!' is neither a mint address"),
        ("/api/agents?token=USDT", 422, "token USDT names a mint on mainnet-beta (Es9v…wNYB), not on the cluster at"),
        ("/api/agents?token=EURC", 422, "token EURC is not a token label on the cluster at"),
        ("/api/agents?cursor=Zm9v", 400, "cursor is not one this API returned"),
        ("/api/agents?x402_enabled=maybe", 422, "x402_enabled"),
        ("/api/metrics/x402?period=10", 422, "period: Input should be greater than or equal to 60"),
        ("/api/work-orders?status=Lost", 422, "status must be one of"),
        ("/api/work-orders?party=0OIl", 400, "party is not a base58 public key"),
    ],
)
def test_bad_input_gets_one_clear_message(api: ServedApi, path: str, status: int, message: str) -> None:
    response = api.get(path)
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["error"] and message in body["error"] and "\n" not in body["error"]


def test_a_payments_cursor_is_not_an_agents_cursor(world: World, api: ServedApi) -> None:
    first = api.get(f"/api/agents/{world.agents['translator']}/payments?limit=1").json()
    response = api.get(f"/api/agents?cursor={first['next_cursor']}")
    assert response.status_code == 400 and "for this listing and sort" in response.json()["error"]
    by_price = api.get("/api/agents?sort=price&limit=1").json()["next_cursor"]
    assert api.get(f"/api/agents?sort=reputation&cursor={by_price}").status_code == 400
    assert api.get(f"/api/agents?sort=price&token={world.usdc}&cursor={by_price}").status_code == 400


def test_the_api_cannot_write(world: World) -> None:
    engine = read_only_engine(world.db_url)
    with engine.connect() as connection, pytest.raises(OperationalError, match="readonly|read-only|query_only"):
        connection.execute(text("DELETE FROM agents"))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM agents")).scalar_one() == 3


def test_prometheus_metrics(world: World, api: ServedApi) -> None:
    response = api.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    payments = {
        (s.labels["agent"], s.labels["mint"]): s.value
        for s in families["ghostpay_x402_payments"].samples
        if s.name.endswith("_total")
    }
    want = Counter((str(p.agent), str(p.mint)) for p in world.payments)
    assert payments == {k: float(v) for k, v in want.items()}
    volume = {
        (s.labels["agent"], s.labels["mint"]): s.value
        for s in families["ghostpay_x402_volume_atomic"].samples
        if s.name.endswith("_total")
    }
    assert volume[(str(world.agents["coder"]), str(world.bonk))] == 120_000_000
    events = {
        s.labels["event"]: s.value for s in families["ghostpay_indexer_events"].samples if s.name.endswith("_total")
    }
    assert events["X402PaymentRecorded"] == len(world.payments) and events["WorkOrderCreated"] == 1
    lag = families["ghostpay_indexer_lag_slots"].samples[0].value
    assert lag >= 0
    assert "ghostpay_rpc_errors" in families


def test_openapi_docs(api: ServedApi) -> None:
    assert "swagger" in api.get("/docs").text.lower()
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/api/agents",
        "/api/agents/{address}",
        "/api/agents/{address}/payments",
        "/api/work-orders",
        "/api/reputation/{address}",
        "/api/metrics/x402",
        "/api/events",
    } <= set(paths)


def test_dashboard_files_are_served_from_the_package(api: ServedApi) -> None:
    page = api.get("/")
    assert page.status_code == 200 and "/static/dashboard.js" in page.text and "http" not in page.text
    script = api.get("/static/dashboard.js").text
    assert "EventSource" in script
    assert set(re.findall(r"https?://[^\"'`\s]+", script)) == {"http://www.w3.org/2000/svg"}  # no CDN: offline


def test_event_stream_resumes_after_last_event_id(world: World, api: ServedApi) -> None:
    status = api.get("/api/status").json()
    newest = status["newest_event_id"]
    with httpx.stream("GET", api.url + "/api/events", headers={"Last-Event-ID": str(newest - 3)}, timeout=10) as stream:
        ids = []
        for line in stream.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line[4:]))
            if len(ids) == 3:
                break
    assert ids == [newest - 2, newest - 1, newest]
    with httpx.stream("GET", api.url + "/api/events?after=0&names=WorkOrderCreated", timeout=10) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
                break
    assert data["name"] == "WorkOrderCreated" and data["data"]["work_order"] == str(world.work_order)
    assert api.get("/api/events", headers={"Last-Event-ID": "x"}).status_code == 400


def test_postgresql_serves_the_same(world: World, api: ServedApi, postgres: PostgresCluster) -> None:
    url = postgres.create_database()
    labels = str(world.home / LABELS_FILE)
    asyncio.run(Indexer(IndexerConfig(world.net.http_url, world.net.ws_url, url, token_labels=labels)).run(once=True))
    paths = [
        "/api/agents?sort=price",
        "/api/agents?sort=trust&min_payers=1",
        f"/api/agents/{world.agents['coder']}/payments",
        f"/api/reputation/{world.agents['translator']}",
        f"/api/work-orders?party={world.client.pubkey()}",
        f"/api/agents?token={world.usdc}&max_price=0.02&capability=translate",
    ]  # type: ignore[union-attr]
    with ServedApi(
        ApiSettings(url, rpc_url=world.net.http_url, webhooks=True, token_labels=str(world.home / LABELS_FILE))
    ) as pg:
        for path in paths:
            assert pg.get(path).json() == api.get(path).json(), path
        metrics = [s.get(f"/api/metrics/x402?period={WEEK}").json() for s in (pg, api)]
        assert [{k: v for k, v in m.items() if k != "period"} for m in metrics] == [
            {k: v for k, v in metrics[1].items() if k != "period"}
        ] * 2
        assert "ghostpay_webhook_deliveries" in pg.get("/metrics").text
    engine = read_only_engine(url)
    with engine.connect() as connection, pytest.raises(InternalError, match="read-only transaction"):
        connection.execute(text("DELETE FROM agents"))


def test_without_an_rpc_amounts_are_atomic_and_pages_stay_fast(world: World) -> None:
    """The node is down: amounts come as atomic units (decimals null), and a failed look-up is not retried on
    every request."""
    from ghostpay.analytics.mints import MintDecimals

    with ServedApi(ApiSettings(world.db_url, rpc_url="http://127.0.0.1:9", webhooks=False)) as down:
        coder = down.get(f"/api/agents/{world.agents['coder']}").json()
        assert coder["prices"] == {str(world.usdc): None, str(world.bonk): None}
        assert coder["prices_atomic"] == {str(world.usdc): "50000", str(world.bonk): "50000000"}
        metrics = down.get(f"/api/metrics/x402?period={WEEK}").json()
        assert {t["decimals"] for t in metrics["volume"]["by_token"]} == {None}
        assert "ghostpay_rpc_errors_total" in down.get("/metrics").text

    decimals = MintDecimals("http://127.0.0.1:9")
    assert asyncio.run(decimals.get([str(world.usdc)])) == {str(world.usdc): None}
    assert asyncio.run(decimals.get([str(world.usdc)])) == {str(world.usdc): None}
    assert decimals.rpc_errors == 1  # the second call did not ask again


def test_evidence_and_trust_beside_the_score(world: World, api: ServedApi) -> None:
    """Each agent carries its evidence: paid calls, payers and volume per mint, and over the trusted mints (the
    localnet's test USDC, not the unlabelled 9-decimal mint); the trust score is there, 100.00 for the most
    trusted agent; `min_payers` counts distinct payers in trusted mints, `min_volume` is per token in whole
    tokens, and `sort=trust` orders by the trust score."""
    usdc, bonk = str(world.usdc), str(world.bonk)
    coder = api.get(f"/api/agents/{world.agents['coder']}").json()["evidence"]
    assert [(m["mint"], m["calls"], m["payers"], m["volume"]) for m in coder["x402"]["by_mint"]] == [
        (bonk, 2, 1, "0.120000000"),
        (usdc, 1, 1, "0.050000"),
    ]
    usdc_volume = {"mint": usdc, "label": "USDC", "volume": "0.050000", "volume_atomic": "50000"}
    assert coder["x402"]["trusted"] == {"calls": 1, "payers": 1, "volume": [usdc_volume]}
    translator = api.get(f"/api/agents/{world.agents['translator']}").json()["evidence"]
    assert translator["x402"]["trusted"]["calls"] == 3 and translator["x402"]["trusted"]["payers"] == 2
    assert [v["volume"] for v in translator["x402"]["trusted"]["volume"]] == ["0.032000"]
    assert translator["escrow"]["by_mint"] == [] and translator["trusted_payers"] == 2  # accepted, not released
    assert translator["days"] >= 1 and translator["first_at"] <= translator["last_at"]
    items = api.get("/api/agents?sort=trust").json()["items"]
    scores = [i["evidence"]["trust"]["score"] for i in items]
    assert scores == sorted(scores, reverse=True) and scores[0] == 10_000 and all(s > 0 for s in scores)
    by_payers = {i["agent_id"] for i in api.get("/api/agents?min_payers=2").json()["items"]}
    assert by_payers == {"translator", "summarizer"}
    by_volume = {i["agent_id"] for i in api.get("/api/agents?min_volume=USDC=0.035").json()["items"]}
    assert by_volume == {"summarizer", "coder"}
    both = api.get("/api/agents", params={"min_volume": ["USDC=0.035", f"{bonk}=0.1"]}).json()["items"]
    assert [i["agent_id"] for i in both] == ["coder"]
    assert api.get("/api/agents?min_volume=USDC").status_code == 422


def test_the_mcp_tools_relay_the_evidence(world: World, api: ServedApi, tmp_path) -> None:
    """`ghost mcp --indexer-url`: search_agents and get_agent carry each agent's evidence line and trust score as
    the API gives them; with the indexer down, the chain's figures alone."""
    from ghostpay.mcp.service import GhostPayTools, McpSettings
    from ghostpay.spending import SpendingGuards

    async def look(indexer_url: str) -> tuple[object, object]:
        settings = McpSettings(
            SpendingGuards(daily=Decimal("1")),
            world.net.http_url,
            world.payers[0],
            ws_url=world.net.ws_url,
            ledger=tmp_path / "ledger.db",
            indexer_url=indexer_url,
        )
        async with GhostPayTools(settings).open() as tools:
            return await tools.search_agents("translate", None, None, None, None, 10), await tools.get_agent(
                str(world.agents["coder"])
            )

    found, coder = asyncio.run(look(api.url))
    expected = {a: api.get(f"/api/agents/{a}").json()["evidence"] for a in map(str, world.agents.values())}
    assert {a.agent_id for a in found.agents} == {"translator", "summarizer"}  # type: ignore[attr-defined]
    for agent in [*found.agents, coder]:  # type: ignore[attr-defined]
        assert agent.evidence == expected[agent.address]["text"] and "paid call" in agent.evidence
        assert agent.trust_score == expected[agent.address]["trust"]["score"] > 0
    found, coder = asyncio.run(look("http://127.0.0.1:9"))
    assert [(a.evidence, a.trust_score) for a in [*found.agents, coder]] == [(None, None)] * 3  # type: ignore[attr-defined]


def test_tokens_by_label(world: World, api: ServedApi) -> None:
    """The token filter takes the indexed chain's labels (USDC, any case) as well as addresses, and every
    document names labelled mints (the index's genesis hash says whose labels they are)."""
    usdc, bonk = str(world.usdc), str(world.bonk)
    by_address = api.get(f"/api/agents?token={usdc}&max_price=0.02&sort=price").json()
    assert by_address["items"] and api.get("/api/agents?token=usdc&max_price=0.02&sort=price").json() == by_address
    coder = api.get(f"/api/agents/{world.agents['coder']}").json()
    assert coder["labels"] == {usdc: "USDC"}
    assert {e["mint"]: e["label"] for e in coder["earnings"]} == {usdc: "USDC", bonk: None}
    paid = api.get(f"/api/agents/{world.agents['coder']}/payments").json()["items"]
    assert {(p["mint"], p["label"]) for p in paid} == {(usdc, "USDC"), (bonk, None)}
    [order] = api.get(f"/api/work-orders?party={world.client.pubkey()}").json()["items"]  # type: ignore[union-attr]
    assert (order["mint"], order["label"]) == (usdc, "USDC")
    metrics = api.get(f"/api/metrics/x402?period={WEEK}").json()
    assert {t["mint"]: t["label"] for t in metrics["volume"]["by_token"]} == {usdc: "USDC", bonk: None}
    assert {(e["mint"], e["label"]) for e in metrics["agents"]["top_earners"]} >= {(usdc, "USDC"), (bonk, None)}
    assert api.get(f"/api/metrics/volume?period={WEEK}").json()["labels"] == {usdc: "USDC"}


def test_a_page_of_agents_costs_the_same_statements_whatever_its_size(world: World, api: ServedApi) -> None:
    """Capabilities, prices, earnings and evidence are read for the whole page at once, not once per agent."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    def statements_of(limit: int) -> tuple[int, int]:
        statements.clear()
        page = api.get(f"/api/agents?limit={limit}").json()["items"]
        return len(page), len(statements)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        statements_of(1)  # warm: the decimals and labels caches
        one, few = statements_of(1), statements_of(len(world.agents))
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert one[0] == 1 and few[0] > 2
    assert few[1] == one[1]
