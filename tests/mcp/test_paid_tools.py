"""Paid MCP tools (`ghostpay.x402.mcp`) on a real localnet and `ghost facilitator`: examples/paid_mcp_tool.py
serves its paid tool over stdio and over Streamable HTTP; the `mcp` SDK's own client calls it unpaid (the
package's payment-required tool error), paid through GhostPay's guards (the answer, the payment settled and
recorded on chain, the budget charged) and over the budget (refused before anything is signed: no balance moves).
`ghost mcp`'s call_paid_tool does the same for an LLM agent, as a tool error over the budget."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent
from x402.mcp.client_async import x402MCPClient
from x402.mcp.utils import convert_mcp_result, extract_payment_required_from_result
from x402.schemas import PaymentRequired

from ghostpay.client import GhostPayClient
from ghostpay.exceptions import SpendingRefused
from ghostpay.localnet.process import free_port_pair
from ghostpay.spending import spending_report
from ghostpay.x402.mcp import PaidTools, X402McpClient
from ghostpay.x402.mcp.client import _Session
from ghostpay.x402.record import RecordClientExtension
from ghostpay.x402.seller import SellerSettings
from tests.localnet.conftest import ROOT
from tests.mcp.conftest import error_text, ok, stdio_server
from tests.x402.conftest import (
    PRICE_ATOMIC,
    Agent,
    buyer,
    guarded,
    keypair_file,
    official_client,
    register_agent,
    token_balance,
)

EXAMPLE = str(ROOT / "examples" / "paid_mcp_tool.py")
BUDGET = "0.015"  # one call at the agent's price (0.01), not two


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:
    return register_agent(net, "mcp-tools")


def example_args(net: Any, agent: Agent, facilitator: Any) -> list[str]:
    return [EXAMPLE, str(agent.address), "--url", net.http_url, "--facilitator", facilitator.url]


@pytest.fixture
def stdio_example(net: Any, agent: Agent, facilitator: Any) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=example_args(net, agent, facilitator), env=dict(os.environ)
    )


@pytest.fixture
def http_example(net: Any, agent: Agent, facilitator: Any) -> Iterator[str]:
    """The example serving Streamable HTTP; its URL once it answers."""
    port = free_port_pair()[0]
    proc = subprocess.Popen(
        [sys.executable, *example_args(net, agent, facilitator), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while True:
        try:
            # ours only if it is still running and knows /mcp: another test's server may have taken the port
            if httpx.get(url, timeout=1).status_code != 404 and proc.poll() is None:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the example did not start: {proc.communicate()[1]}")
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=15)


def balances(net: Any, agent: Agent, payer: Any) -> tuple[int, int]:
    """(the buyer's, the seller's) tokens of the agent's mint."""
    return token_balance(net, payer, agent.mint), token_balance(net, agent.owner.pubkey(), agent.mint)


def assert_payment_required(result: CallToolResult, agent: Agent) -> None:
    """The package's payment-required tool error: the v2 PaymentRequired as structured content, which the
    package's own parser reads; one requirement at the agent's on-chain price, offering GhostPay's record."""
    assert result.is_error
    required = extract_payment_required_from_result(convert_mcp_result(_wire(result)))
    assert isinstance(required, PaymentRequired) and required.resource is not None
    assert required.resource.url == "mcp://tool/forecast" and required.error
    [accept] = required.accepts
    assert (accept.amount, accept.asset, accept.pay_to) == (
        str(PRICE_ATOMIC),
        str(agent.mint),
        str(agent.owner.pubkey()),
    )
    assert accept.extra["ghostpay"]["agent"] == str(agent.address) and accept.extra["ghostpay"]["recordAfterMemo"]


def _wire(result: CallToolResult) -> Any:
    """An mcp 2.x result under the attribute names the package's `convert_mcp_result` reads."""
    return type(
        "Wire", (), {"content": [], "isError": result.is_error, "structuredContent": result.structured_content}
    )()


async def pay_and_refuse(net: Any, agent: Agent, client: Client, tmp_path: Path) -> None:
    keypair = buyer(net, agent.mint)
    payer = keypair.pubkey()
    before = balances(net, agent, payer)
    assert_payment_required(await client.call_tool("forecast", {"city": "Lisbon"}), agent)
    assert balances(net, agent, payer) == before

    wallet = guarded(tmp_path / "spending.sqlite3", daily=Decimal(BUDGET))
    async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
        tools = X402McpClient(gp, client, guards=wallet)
        called = await tools.call_tool("forecast", {"city": "Lisbon"})
        assert not called.is_error and called.structured_content == {
            "city": "Lisbon",
            "sky": "clear",
            "high_c": 21,
            "paid_by": str(payer),
            "recorded": True,
        }
        payment = called.payment
        assert payment is not None and payment.settled and payment.verified and payment.signature
        assert (payment.amount_atomic, payment.mint, payment.agent) == (
            PRICE_ATOMIC,
            str(agent.mint),
            str(agent.address),
        )
        assert payment.url == "mcp://tool/forecast" and payment.reference
        receipt = await gp.get_receipt(agent.address, payment.reference)  # the verified GhostPay receipt
        assert receipt is not None and receipt.payer == payer and str(receipt.signature) == payment.signature
        assert balances(net, agent, payer) == (before[0] - PRICE_ATOMIC, before[1] + PRICE_ATOMIC)
        [spent] = spending_report(wallet, str(payer))
        day = spent.windows["day"]
        assert (spent.mint, day.spent, day.remaining) == (str(agent.mint), Decimal("0.01"), Decimal("0.005"))

        with pytest.raises(SpendingRefused, match="would exceed the daily budget"):
            await tools.call_tool("forecast", {"city": "Porto"})
        assert balances(net, agent, payer) == (before[0] - PRICE_ATOMIC, before[1] + PRICE_ATOMIC)
        assert spending_report(wallet, str(payer))[0].windows["day"].spent == Decimal("0.01")


async def test_paid_tool_over_stdio(net: Any, agent: Agent, stdio_example: Any, tmp_path: Path) -> None:
    async with Client(stdio_example) as client:
        [tool] = (await client.list_tools()).tools
        assert tool.name == "forecast" and tool.input_schema["required"] == ["city"]
        await pay_and_refuse(net, agent, client, tmp_path)


async def test_paid_tool_over_http(net: Any, agent: Agent, http_example: str, tmp_path: Path) -> None:
    async with Client(http_example) as client:
        await pay_and_refuse(net, agent, client, tmp_path)


async def test_ghost_mcp_calls_a_paid_tool(
    net: Any, agent: Agent, facilitator: Any, http_example: str, wallet: Any, home: Path
) -> None:
    """`ghost mcp`'s call_paid_tool: a stdio server named with --tool-server (the example given the agent's id and
    owner), paid within the budget; then the same tool over Streamable HTTP, over the budget: a tool error,
    nothing paid."""
    keypair, key = wallet
    payer = keypair.pubkey()
    # as README shows it: the agent by its agent_id and its owner's keypair
    owner = keypair_file(home.parent, agent.owner)
    by_id = [EXAMPLE, "mcp-tools", "--owner", str(owner), "--url", net.http_url, "--facilitator", facilitator.url]
    command = shlex.join([sys.executable, *by_id])
    before = balances(net, agent, payer)
    ghost_mcp = stdio_server(net.http_url, key, home, "--budget-daily", BUDGET, "--tool-server", f"forecasts={command}")
    async with Client(ghost_mcp) as client:
        called = ok(
            await client.call_tool(
                "call_paid_tool", {"server": "forecasts", "tool": "forecast", "arguments": {"city": "Lisbon"}}
            )
        )
        assert not called["is_error"] and called["structured_content"]["paid_by"] == str(payer)
        payment = called["payment"]
        assert payment["settled"] and payment["verified"] and payment["amount"] == "0.010000"
        assert (payment["agent"], payment["mint"]) == (str(agent.address), str(agent.mint))
        assert balances(net, agent, payer) == (before[0] - PRICE_ATOMIC, before[1] + PRICE_ATOMIC)
        async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
            receipt = await gp.get_receipt(agent.address, payment["reference"])
        assert receipt is not None and str(receipt.signature) == payment["signature"]
        [spent] = ok(await client.call_tool("get_spending", {}))["mints"]
        assert spent["mint"] == str(agent.mint) and spent["day"]["spent"] == "0.010000"

        over = error_text(
            await client.call_tool(
                "call_paid_tool", {"server": http_example, "tool": "forecast", "arguments": {"city": "Porto"}}
            )
        )
        assert "would exceed the daily budget" in over and "nothing was paid" in over
        assert balances(net, agent, payer) == (before[0] - PRICE_ATOMIC, before[1] + PRICE_ATOMIC)
        unknown = error_text(await client.call_tool("call_paid_tool", {"server": "rm -rf /", "tool": "forecast"}))
        assert unknown == "MCP server 'rm -rf /' is neither an http(s) URL nor a stdio server; known: forecasts"


async def test_the_official_client_pays_a_paid_tool(net: Any, agent: Agent, stdio_example: Any) -> None:
    """The package's paying MCP client with the official x402 client (plus GhostPay's record extension, as any
    official client can register it) pays the example's tool: settled, and recorded on chain."""
    keypair = buyer(net, agent.mint)
    official = official_client(net, keypair)
    record = RecordClientExtension(keypair)
    official.register_extension(record)
    before = balances(net, agent, keypair.pubkey())
    async with Client(stdio_example) as client:
        called = await x402MCPClient(_Session(client), official, auto_payment=True).call_tool(
            "forecast", {"city": "Lisbon"}
        )
    settled = called.payment_response
    assert called.payment_made and not called.is_error and settled is not None and settled.success
    assert settled.payer == str(keypair.pubkey()) and record.last is not None
    async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
        receipt = await gp.get_receipt(agent.address, record.last.reference)
    assert receipt is not None and str(receipt.signature) == settled.transaction
    assert balances(net, agent, keypair.pubkey()) == (before[0] - PRICE_ATOMIC, before[1] + PRICE_ATOMIC)


@pytest.fixture
def faulty(net: Any, agent: Agent, facilitator: Any) -> MCPServer:
    """An in-process server with two paid tools that fail: one raises, one answers an error."""
    paid = PaidTools(SellerSettings(agent.address, net.http_url, facilitator.url, ws_url=net.ws_url))
    server = MCPServer("faulty", lifespan=paid.lifespan)

    @paid.tool(server)
    async def broken(city: str) -> str:
        raise RuntimeError("the forecast service is down")

    @paid.tool(server)
    def declines(city: str) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=f"no forecast for {city}")], is_error=True)

    return server


@pytest.mark.parametrize(
    ("tool", "answer"), [("broken", "Error executing tool broken"), ("declines", "no forecast for Lisbon")]
)
async def test_a_failed_tool_is_not_charged(
    net: Any, agent: Agent, faulty: MCPServer, tool: str, answer: str, tmp_path: Path
) -> None:
    """The payment is verified, the tool fails: nothing is settled, the reservation is released, no balance moves."""
    keypair = buyer(net, agent.mint)
    before = balances(net, agent, keypair.pubkey())
    wallet = guarded(tmp_path / "spending.sqlite3", daily=Decimal(BUDGET))
    async with Client(faulty) as client, GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
        called = await X402McpClient(gp, client, guards=wallet).call_tool(tool, {"city": "Lisbon"})
    assert called.is_error and answer in called.content[0].text
    assert called.payment is not None and not called.payment.settled and called.payment.signature is None
    assert not called.payment.verified and called.payment.error == "not settled"
    assert balances(net, agent, keypair.pubkey()) == before
    assert spending_report(wallet, str(keypair.pubkey()))[0].windows["day"].spent == 0


async def eventually(check: Any, what: str) -> Any:
    """Poll `check()` (async) until it answers something true (the seller follows the agent's account)."""
    deadline = time.monotonic() + 10
    while not (answer := await check()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
    return answer


@pytest.fixture
def closing(net: Any) -> Agent:
    return register_agent(net, "mcp-closing")


async def test_the_price_follows_the_chain_and_an_inactive_agent_sells_nothing(
    net: Any, facilitator: Any, closing: Agent, tmp_path: Path
) -> None:
    """A free tool beside the paid one costs nothing; a new on-chain price is the next call's price; a deactivated
    agent's tool answers a tool error and nothing is paid."""
    agent = closing
    paid = PaidTools(SellerSettings(agent.address, net.http_url, facilitator.url, ws_url=net.ws_url))
    server = MCPServer("closing", lifespan=paid.lifespan)

    @paid.tool(server)
    def echo(text: str) -> str:
        return text

    @server.tool()
    def free(text: str) -> str:
        return text

    keypair = buyer(net, agent.mint)
    wallet = guarded(tmp_path / "spending.sqlite3", daily=Decimal("1"))
    async with (
        Client(server) as client,
        GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp,
        agent.client() as owner,
    ):
        tools = X402McpClient(gp, client, guards=wallet)
        gratis = await tools.call_tool("free", {"text": "hi"})
        assert gratis.payment is None and not gratis.is_error and gratis.content[0].text == "hi"
        assert balances(net, agent, keypair.pubkey()) == (1_000_000, 0)

        await owner.set_price(agent.address, {agent.mint: Decimal("0.025")})

        async def priced() -> bool:
            unpaid = await client.call_tool("echo", {"text": "hi"})
            return unpaid.structured_content["accepts"][0]["amount"] == "25000"

        await eventually(priced, "the new price did not reach the tool's payment-required answer")
        called = await tools.call_tool("echo", {"text": "hi"})
        assert called.content[0].text == "hi" and called.payment is not None and called.payment.amount_atomic == 25_000
        assert balances(net, agent, keypair.pubkey()) == (1_000_000 - 25_000, 25_000)

        await owner.deactivate(agent.address)

        async def refused() -> str | None:
            answer = await client.call_tool("echo", {"text": "hi"})
            return answer.content[0].text if answer.is_error and not answer.structured_content else None

        text = await eventually(refused, "the deactivated agent still sells")
        assert text == f"agent {agent.address} takes no payments now: the agent is inactive"
        after = await tools.call_tool("echo", {"text": "hi"})
        assert after.is_error and after.payment is None
        assert balances(net, agent, keypair.pubkey()) == (1_000_000 - 25_000, 25_000)
