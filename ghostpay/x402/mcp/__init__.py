"""Paid MCP tools over x402, on the official package's `x402.mcp` and the `mcp` SDK 2.x.

The seller's side (`server`): `PaidTools` sells tools of an `MCPServer` per call at an agent's on-chain price,
settled through a facilitator, with GhostPay's record when it takes it. The buyer's side (`client`):
`X402McpClient` calls paid tools of another MCP server from a GhostPay wallet, through its spending guards.

Each side is imported when first named: a buyer (`ghost mcp`) does not load the seller's stack (the x402
seller, A2A's server), a second of a stdio server's start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ghostpay.x402.mcp.client import PaidToolResult, X402McpClient
    from ghostpay.x402.mcp.server import PaidTools, paid_tool_call

__all__ = ["PaidToolResult", "PaidTools", "X402McpClient", "paid_tool_call"]

_SIDE = {"PaidToolResult": "client", "X402McpClient": "client", "PaidTools": "server", "paid_tool_call": "server"}


def __getattr__(name: str) -> Any:
    if name not in _SIDE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SIDE[name]}"), name)
