"""The MCP server over stdio: the `mcp` SDK's client starts `ghost mcp`, finds the seller by token label,
quotes it, pays it through call_paid_api within the budget, rates it, and is refused over the budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp import Client

import ghostpay
from ghostpay.token_labels import LABELS_FILE, TokenLabels
from tests.mcp.conftest import error_text, ok, stdio_server
from tests.x402.conftest import PRICE_ATOMIC, Agent, Shop, token_balance

TOOLS = {
    "search_agents",
    "get_agent",
    "get_reputation",
    "quote_url",
    "call_paid_api",
    "call_paid_tool",
    "pay_agent",
    "get_receipt",
    "submit_feedback",
    "create_work_order",
    "get_work_order",
    "release_payment",
    "open_dispute",
    "get_balance",
    "get_spending",
}


async def test_find_quote_pay_rate_and_budget(net: Any, agent: Agent, shop: Shop, wallet: Any, home: Path) -> None:
    keypair, key = wallet
    paid_url = shop.url + "/paid"
    guards = ("--budget-daily", "0.02", "--max-per-call", "0.05")
    # the seller's mint is this localnet's USDC (as `ghost test-mint --symbol USDC` labels it)
    TokenLabels(home / LABELS_FILE).add(net.rpc("getGenesisHash")["result"], "USDC", str(agent.mint), test_mint=True)
    async with Client(stdio_server(net.http_url, key, home, *guards)) as client:
        assert (client.server_info.name, client.server_info.version) == ("ghostpay", ghostpay.__version__)
        listed = (await client.list_tools()).tools
        assert {t.name for t in listed} == TOOLS
        assert all(t.output_schema for t in listed)
        feedback_schema = next(t for t in listed if t.name == "submit_feedback").input_schema
        assert feedback_schema["properties"]["rating"]["maximum"] == 5
        assert set(feedback_schema["required"]) == {"agent", "reference", "rating"}

        found = ok(
            await client.call_tool(
                "search_agents", {"capability": "test", "x402_enabled": True, "token": "USDC", "max_price": "0.01"}
            )
        )
        mine = next(a for a in found["agents"] if a["address"] == str(agent.address))
        assert mine["prices"] == [
            {"mint": str(agent.mint), "label": "USDC", "price": "0.010000", "price_atomic": PRICE_ATOMIC, "decimals": 6}
        ]
        cheaper = ok(await client.call_tool("search_agents", {"token": "usdc", "max_price": "0.005"}))
        assert str(agent.address) not in {a["address"] for a in cheaper["agents"]}
        by_address = ok(await client.call_tool("search_agents", {"token": str(agent.mint), "max_price": "0.01"}))
        assert str(agent.address) in {a["address"] for a in by_address["agents"]}
        elsewhere = error_text(await client.call_tool("search_agents", {"token": "USDT"}))
        assert (
            elsewhere.startswith(
                f"token USDT names a mint on mainnet-beta (Es9v…wNYB), not on the cluster at {net.http_url}"
            )
            and "'ghost tokens add USDT MINT'" in elsewhere
        )

        quote = ok(await client.call_tool("quote_url", {"url": paid_url}))
        assert quote["status"] == 402 and [
            (o["amount"], o["agent"], o["mint"], o["label"]) for o in quote["options"]
        ] == [("0.010000", str(agent.address), str(agent.mint), "USDC")]
        assert ok(await client.call_tool("get_spending", {}))["mints"] == []

        called = ok(await client.call_tool("call_paid_api", {"url": paid_url, "token": "USDC"}))
        payment = called["payment"]
        assert payment["label"] == "USDC"
        assert called["status"] == 200 and called["body"]["payer"] == str(keypair.pubkey())
        assert payment["settled"] and payment["verified"] and payment["agent"] == str(agent.address)
        assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC

        before = ok(await client.call_tool("get_reputation", {"agent": str(agent.address)}))
        rated = ok(
            await client.call_tool(
                "submit_feedback",
                {
                    "agent": str(agent.address),
                    "reference": payment["reference"],
                    "rating": 5,
                    "response_time_ms": payment["latency_ms"],
                },
            )
        )
        after = ok(await client.call_tool("get_reputation", {"agent": str(agent.address)}))
        assert after["rating_count"] == before["rating_count"] + 1 and rated["reputation_score"] == after["score"]
        assert set(after["components"]) == {"payment_success", "service_quality", "response_time", "volume_consistency"}
        # a second rating with one call paid: the program's error, in the CLI's words
        again = error_text(
            await client.call_tool(
                "submit_feedback", {"agent": str(agent.address), "reference": payment["reference"], "rating": 1}
            )
        )
        assert again.startswith("the program refused it: NothingToRate")

        [spent] = ok(await client.call_tool("get_spending", {}))["mints"]
        assert (spent["mint"], spent["label"], spent["per_call"]) == (str(agent.mint), "USDC", "0.05")
        assert spent["day"] == {"spent": "0.010000", "budget": "0.02", "remaining": "0.010000"}

        ok(await client.call_tool("call_paid_api", {"url": paid_url}))
        handled = len(shop.handled)
        refused = error_text(await client.call_tool("call_paid_api", {"url": paid_url}))
        assert (
            refused.startswith("paying 0.010000 would exceed the daily budget of 0.02 USDC")
            and "nothing was paid" in refused
        )
        assert len(shop.handled) == handled  # the seller saw no paid call
        assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000 - 2 * PRICE_ATOMIC
        [spent] = ok(await client.call_tool("get_spending", {}))["mints"]
        assert spent["day"]["remaining"] == "0.000000"


async def test_bad_arguments_are_schema_errors(net: Any, agent: Agent, wallet: Any, home: Path) -> None:
    keypair, key = wallet
    async with Client(stdio_server(net.http_url, key, home, "--budget-total", "1")) as client:
        cases = {
            (
                "submit_feedback",
                json.dumps({"agent": str(agent.address), "reference": "00" * 32, "rating": 9}),
            ): "rating",
            (
                "submit_feedback",
                json.dumps({"agent": str(agent.address), "reference": "not hex", "rating": 5}),
            ): "reference",
            ("get_agent", json.dumps({})): "agent",
            ("search_agents", json.dumps({"limit": "many"})): "limit",
            ("call_paid_api", json.dumps({"url": "ftp://example.com"})): "url",
            ("call_paid_api", json.dumps({"url": "http://127.0.0.1:1/", "method": "BREW"})): "method",
            (
                "create_work_order",
                json.dumps(
                    {"agent": str(agent.address), "amount": "-3", "title": "x", "arbiter": str(agent.owner.pubkey())}
                ),
            ): "amount",
        }
        for (tool, arguments), field in cases.items():
            text = error_text(await client.call_tool(tool, json.loads(arguments)))
            assert "validation error" in text and field in text, (tool, text)
        # well-formed but wrong: the SDK's own one-line errors
        missing = error_text(await client.call_tool("get_agent", {"agent": str(keypair.pubkey())}))
        assert (
            missing == f"agent {keypair.pubkey()} not found; check the address, or list agents with "
            "'ghost agent list --owner OWNER'"
        )  # the CLI's own line
        assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000


async def test_resources_and_prompts(net: Any, agent: Agent, home: Path, tmp_path: Path) -> None:
    from tests.x402.conftest import keypair_file

    key = keypair_file(tmp_path, agent.owner)  # the seller's own wallet: it owns the agent
    async with Client(stdio_server(net.http_url, key, home, "--budget-daily", "1")) as client:
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert uris == {"ghostpay://wallet/agents", "ghostpay://wallet/work-orders"}
        [contents] = (await client.read_resource("ghostpay://wallet/agents")).contents
        agents = json.loads(contents.text)["agents"]  # type: ignore[union-attr]
        assert [a["address"] for a in agents] == [str(agent.address)]
        assert {p.name for p in (await client.list_prompts()).prompts} == {"hire_agent", "pay_for_api"}
        prompt = await client.get_prompt(
            "hire_agent", {"task": "translate a page", "capability": "translate", "budget": "0.5"}
        )
        text = prompt.messages[0].content.text  # type: ignore[union-attr]
        assert "search_agents" in text and "0.5" in text and "translate a page" in text


async def test_unreachable_rpc_is_a_tool_error(wallet: Any, home: Path) -> None:
    _, key = wallet
    async with Client(stdio_server("http://127.0.0.1:9", key, home, "--budget-daily", "1")) as client:
        text = error_text(await client.call_tool("get_balance", {}))
        assert text.startswith("cannot reach the Solana RPC at http://127.0.0.1:9") and "-u/--url" in text


async def test_over_confirm_above_is_declined(net: Any, agent: Agent, shop: Shop, wallet: Any, home: Path) -> None:
    """x402.confirm_above of the config file: no one can confirm through MCP, so such a payment is declined."""
    keypair, key = wallet
    home.mkdir(parents=True)
    (home / "config.toml").write_text('[x402]\nconfirm_above = "0.005"\n')
    async with Client(stdio_server(net.http_url, key, home, "--budget-daily", "1")) as client:
        declined = error_text(await client.call_tool("call_paid_api", {"url": shop.url + "/paid"}))
        assert (
            declined == "0.010000 is over the confirmation threshold 0.005 and nothing can confirm it; nothing was paid"
        )
        assert ok(await client.call_tool("get_spending", {}))["limits"]["confirm_above"] == "0.005"
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000
