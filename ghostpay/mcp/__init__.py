"""GhostPay as an MCP server (`ghost mcp`): tools for LLM agents to find, pay, rate and hire agents
within a spending budget. See `ghostpay.mcp.server`."""
