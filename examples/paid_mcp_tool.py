"""An MCP server with one paid tool: `forecast` costs an agent's on-chain price per call, paid over x402 (the
payment rides in the call's `_meta`), settled by a facilitator and recorded on chain for the agent's reputation.

    python examples/paid_mcp_tool.py AGENT [--owner KEYPAIR] [--url RPC_URL] [--facilitator URL] [--port PORT]

AGENT is the agent's address, or its agent_id with its owner's keypair (--owner); its payment address needs a
token account for each mint it accepts (with --owner, the owner creates a missing one). Over stdio (an MCP client
starts it); with --port, Streamable HTTP at http://127.0.0.1:PORT/mcp. A client without a payment gets the x402
payment-required tool error.
"""

import argparse

from mcp.server.mcpserver import MCPServer

from ghostpay.x402.mcp import PaidTools, paid_tool_call
from ghostpay.x402.seller import SellerSettings

parser = argparse.ArgumentParser(description="An MCP server with one paid tool.")
parser.add_argument("agent", help="the agent whose on-chain price a call costs: its address, or its agent_id")
parser.add_argument("--owner", help="the agent's owner's keypair file (with an agent_id)")
parser.add_argument("--url", default="localnet", help="the Solana RPC URL or moniker (default: localnet)")
parser.add_argument("--facilitator", default="http://127.0.0.1:8403", help="the facilitator's URL")
parser.add_argument("--port", type=int, help="serve Streamable HTTP on this port (default: stdio)")
args = parser.parse_args()

payee_accounts = "create" if args.owner else "check"
paid = PaidTools(
    SellerSettings(args.agent, args.url, args.facilitator, keypair=args.owner, payee_accounts=payee_accounts)
)
server = MCPServer("forecasts", lifespan=paid.lifespan, log_level="WARNING")


@paid.tool(server)
def forecast(city: str) -> dict[str, object]:
    """Tomorrow's weather in a city (paid: the agent's price per call)."""
    call = paid_tool_call()  # who paid, how much, and whether the payment is recorded on chain
    return {"city": city, "sky": "clear", "high_c": 21, "paid_by": str(call.payer), "recorded": call.verified_on_chain}


if args.port is None:
    server.run("stdio")
else:
    server.run("streamable-http", host="127.0.0.1", port=args.port)
