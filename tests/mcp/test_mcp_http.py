"""The MCP server over Streamable HTTP (`ghost mcp -t http`), driven by the `mcp` SDK's client: a direct
payment and finding it by its reference, the wallet's balance, hiring through escrow within the budget (a milestone
released, a dispute opened) and an escrow over the budget refused with nothing locked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from ghostpay.localnet.process import free_port_pair
from tests.mcp.conftest import error_text, ok
from tests.sdk.conftest import fund
from tests.x402.conftest import Agent, Process, token_balance


@pytest.fixture
def server(net: Any, wallet: Any, home: Path) -> Iterator[Process]:
    _, key = wallet
    proc = Process(
        "-u",
        net.http_url,
        "-k",
        str(key),
        "mcp",
        "--transport",
        "http",
        "--port",
        str(free_port_pair()[0]),
        "--budget-daily",
        "0.5",
        "--max-per-call",
        "0.3",
        home=home,
    ).start()
    yield proc
    proc.stop()


async def test_pay_hire_and_budget_over_http(net: Any, agent: Agent, wallet: Any, server: Process) -> None:
    keypair, _ = wallet
    address = str(agent.address)
    assert server.url.endswith("/mcp") and server.announce["limits"]["daily_budget"] == "0.5"
    async with Client(server.url) as client:
        paid = ok(await client.call_tool("pay_agent", {"agent": address}))
        assert paid["amount"] == "0.010000" and paid["mint"] == str(agent.mint)
        receipt = ok(await client.call_tool("get_receipt", {"agent": address, "reference": paid["reference"]}))
        assert receipt["found"] and receipt["payer"] == str(keypair.pubkey())
        assert (receipt["signature"], receipt["source"]) == (paid["signature"], "chain")
        assert not ok(await client.call_tool("get_receipt", {"agent": address, "reference": "ab" * 32}))["found"]
        balance = ok(await client.call_tool("get_balance", {}))
        assert balance["wallet"] == str(keypair.pubkey()) and float(balance["sol"]) > 0
        assert balance["tokens"] == [{"mint": str(agent.mint), "label": None, "amount": "0.990000", "decimals": 6}]

        arbiter = str(fund(net, sol=1).pubkey())
        order = ok(
            await client.call_tool(
                "create_work_order",
                {
                    "agent": address,
                    "amount": "0.2",
                    "title": "Translate the manual",
                    "arbiter": arbiter,
                    "deadline_hours": 48,
                },
            )
        )
        created = ok(await client.call_tool("get_work_order", {"order": order["address"]}))
        assert created["status"] == "Created" and created["amount"] == "0.200000" and created["arbiter"] == arbiter
        async with agent.client() as provider:
            await provider.accept_work_order(order["address"])
        ok(await client.call_tool("release_payment", {"order": order["address"], "amount": "0.05"}))
        assert token_balance(net, agent.owner.pubkey(), agent.mint) >= 50_000
        ok(await client.call_tool("open_dispute", {"order": order["address"], "reason": "half of it is missing"}))
        disputed = ok(await client.call_tool("get_work_order", {"order": order["address"]}))
        assert disputed["status"] == "Disputed" and disputed["remaining"] == "0.150000"
        [listed] = (await client.read_resource("ghostpay://wallet/work-orders")).contents
        assert order["address"] in listed.text  # type: ignore[union-attr]

        # 0.01 + 0.2 spent today: escrowing 0.3 more would pass the day's 0.5
        before = token_balance(net, keypair.pubkey(), agent.mint)
        refused = error_text(
            await client.call_tool(
                "create_work_order", {"agent": address, "amount": "0.3", "title": "More", "arbiter": arbiter}
            )
        )
        assert refused.startswith("paying 0.300000 would exceed the daily budget of 0.5")
        assert token_balance(net, keypair.pubkey(), agent.mint) == before  # nothing locked
        [listed] = (await client.read_resource("ghostpay://wallet/work-orders")).contents
        assert [o["title"] for o in json.loads(listed.text)["work_orders"]] == ["Translate the manual"]  # type: ignore
        [spent] = ok(await client.call_tool("get_spending", {}))["mints"]
        assert spent["day"] == {"spent": "0.210000", "budget": "0.5", "remaining": "0.290000"}
        assert spent["per_call"] == "0.3"


async def test_bearer_token(net: Any, wallet: Any, home: Path) -> None:
    _, key = wallet
    token_file = home.parent / "mcp-token"
    token_file.write_text("s3cret\n")
    proc = Process(
        "-u",
        net.http_url,
        "-k",
        str(key),
        "mcp",
        "-t",
        "http",
        "--port",
        str(free_port_pair()[0]),
        "--budget-daily",
        "1",
        "--token-file",
        str(token_file),
        home=home,
    ).start()
    try:
        assert proc.announce["token"] is True
        assert "s3cret" not in Path(f"/proc/{proc.proc.pid}/cmdline").read_text()  # what `ps` shows
        request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = httpx.post(proc.url, json=request, headers=headers, timeout=10)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        authorized = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"})
        async with Client(streamable_http_client(proc.url, http_client=authorized)) as client:
            assert "get_spending" in {t.name for t in (await client.list_tools()).tools}
    finally:
        proc.stop()
