"""`ghost mcp` on a real localnet, driven by the `mcp` SDK's own client: a GhostPay seller (the x402
tests' Shop behind `ghost facilitator`) to pay, a buyer wallet with tokens for the server to pay from."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import StdioServerParameters
from mcp_types import CallToolResult
from solders.keypair import Keypair

from tests.x402.conftest import GHOST, Agent, Shop, buyer, facilitator, fee_payer, keypair_file, net, register_agent  # noqa: F401 - the x402 tests' localnet and facilitator


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:  # noqa: F811
    return register_agent(net, "mcp-seller")


@pytest.fixture(scope="module")
def shop(agent: Agent, facilitator: Any) -> Iterator[Shop]:  # noqa: F811
    with Shop(agent, facilitator.url) as running:
        yield running


@pytest.fixture
def wallet(net: Any, agent: Agent, tmp_path: Path) -> tuple[Keypair, Path]:  # noqa: F811
    """The wallet the MCP server pays from: 1 token of the agent's mint, and its keypair file."""
    keypair = buyer(net, agent.mint)
    return keypair, keypair_file(tmp_path, keypair)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data folder of its own: an empty spend ledger and no config file."""
    return tmp_path / "home"


def stdio_server(rpc_url: str, key: Path, home: Path, *guards: str) -> StdioServerParameters:
    """`ghost -u RPC_URL -k KEY mcp GUARDS…` for the SDK's client to start, with a data folder of its own."""
    return StdioServerParameters(
        command=GHOST,
        args=["-u", rpc_url, "-k", str(key), "mcp", *guards],
        env={**os.environ, "GHOSTPAY_HOME": str(home), "GHOST_CONFIG": ""},
    )


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful tool call."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error and result.structured_content is None
    [content] = result.content
    return content.text  # type: ignore[union-attr]
