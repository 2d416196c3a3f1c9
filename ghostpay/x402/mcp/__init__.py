"""Paid MCP tools over x402, on the official package's `x402.mcp` and the `mcp` SDK 2.x.

The seller's side (`server`): `PaidTools` sells tools of an `MCPServer` per call at an agent's on-chain price,
settled through a facilitator, with GhostPay's record when it takes it. The buyer's side (`client`):
`X402McpClient` calls paid tools of another MCP server from a GhostPay wallet, through its spending guards.
"""

from ghostpay.x402.mcp.client import PaidToolResult, X402McpClient
from ghostpay.x402.mcp.server import PaidTools, paid_tool_call

__all__ = ["PaidToolResult", "PaidTools", "X402McpClient", "paid_tool_call"]
