"""The GhostPay MCP server: find, pay, rate and hire agents from an LLM agent, within a budget.

    server = create_mcp_server(McpSettings(SpendingGuards(daily=Decimal("5"), per_call=Decimal("0.1")),
                                           cluster="localnet", keypair="~/.config/solana/id.json"))
    server.run("stdio")            # or serve server.streamable_http_app() over HTTP

Built on the official `mcp` SDK's MCPServer. Tools take typed arguments (their JSON schema is what
the client sees; a bad argument is a tool error naming the field) and return structured results.
A failure is a tool error (`isError`) whose text is the one-line message the CLI would print.
Every payment (`call_paid_api`, `pay_agent`, `create_work_order`) passes the spending guards.
"""

# no `from __future__ import annotations`: the SDK reads the tools' annotations to build their schemas
import functools
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from starlette.types import ASGIApp, Receive, Scope, Send

from ghostpay import __version__
from ghostpay.exceptions import GhostPayError
from ghostpay.mcp import results as r
from ghostpay.mcp.service import GhostPayTools, McpSettings

P = ParamSpec("P")
R = TypeVar("R")

AMOUNT = r"^\s*[0-9]+(\.[0-9]+)?\s*$"
Agent = Annotated[
    str,
    Field(
        description="The agent's address (base58), or the agent_id of one of this wallet's agents.",
        min_length=1,
        max_length=64,
    ),
]
Mint = Annotated[
    str | None,
    Field(
        description='A token: its label on this cluster (e.g. "USDC", as results show it) or its mint address (base58).'
    ),
]
Amount = Annotated[str, Field(description='Whole tokens, as a decimal string, e.g. "0.05".', pattern=AMOUNT)]
OptionalAmount = Annotated[str | None, Field(description="Whole tokens, as a decimal string.", pattern=AMOUNT)]
Reference = Annotated[
    str,
    Field(
        description="The payment's reference: 64 hex digits (from the payment's result).", pattern=r"^[0-9a-fA-F]{64}$"
    ),
]
WorkOrder = Annotated[str, Field(description="The work order's address (base58).", min_length=32, max_length=44)]
Url = Annotated[str, Field(description="An http(s) URL.", pattern=r"^https?://")]
Method = Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE"], Field(description="The HTTP method.")]
Headers = Annotated[dict[str, str] | None, Field(description="Request headers.")]
Body = Annotated[str | None, Field(description="A raw request body.")]
JsonBody = Annotated[Any, Field(description="A JSON request body (sets Content-Type: application/json).")]

READ = ToolAnnotations(read_only_hint=True, open_world_hint=True)
SPENDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)

INSTRUCTIONS = """GhostPay pays AI agents on Solana from one wallet, within the spending limits its human set.
Find agents with search_agents, check them with get_reputation, see what a URL costs with quote_url, pay
for a call with call_paid_api (x402), for a tool of another MCP server with call_paid_tool, rate a verified
call with submit_feedback. Larger jobs: create_work_order (tokens locked in escrow), release_payment once
delivered, open_dispute if not. get_spending shows what is left of the budget; a payment over a limit is
refused and nothing is paid. Amounts are decimal strings.
A token is named by its label on this cluster ("USDC", as results show it) or by its mint address."""


def tool_error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def create_mcp_server(settings: McpSettings) -> MCPServer:
    """The MCP server of one wallet: its tools, resources (the wallet's agents, its open work orders)
    and prompts. The GhostPay client opens with the server's lifespan."""
    tools = GhostPayTools(settings)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[dict[str, Any]]:
        async with tools.open():
            yield {}

    # WARNING: the SDK configures the root logger, and at INFO every RPC request would be logged on stderr
    server = MCPServer(
        "ghostpay",
        title="GhostPay",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
    )

    def tool(annotations: ToolAnnotations) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Register the decorated coroutine as a tool, as `MCPServer.tool()` does, typed like it (the function
        is returned as it is). The SDK reads the name, docstring and signature (the JSON schemas) of the
        function; what it calls turns a GhostPayError into a tool error with the CLI's one-line message."""

        def register(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
            @functools.wraps(fn)
            async def answer(*args: P.args, **kwargs: P.kwargs) -> R | CallToolResult:
                try:
                    return await fn(*args, **kwargs)
                except GhostPayError as exc:
                    described = settings.error_text(exc) if settings.error_text else None
                    return tool_error(described or str(exc))

            server.add_tool(answer, annotations=annotations, structured_output=True)
            return fn

        return register

    # agents -------------------------------------------------------------------------------------------

    @tool(READ)
    async def search_agents(
        capability: Annotated[str | None, Field(description='A capability the agent lists, e.g. "translate".')] = None,
        x402_enabled: Annotated[bool | None, Field(description="Only agents that take x402 payments.")] = None,
        token: Mint = None,
        max_price: Annotated[
            str | None,
            Field(description="The most one call may cost, whole tokens of `token` (needs token).", pattern=AMOUNT),
        ] = None,
        min_reputation: Annotated[
            int | None, Field(ge=0, le=10_000, description="The least score, basis points.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many, best reputation first.")] = 20,
    ) -> r.AgentList:
        """Find active agents on chain by capability, payment token, price and reputation, best first."""
        return await tools.search_agents(capability, x402_enabled, token, max_price, min_reputation, limit)

    @tool(READ)
    async def get_agent(agent: Agent) -> r.AgentDetail:
        """One agent: owner, endpoint, prices per accepted token, counters."""
        return await tools.get_agent(agent)

    @tool(READ)
    async def get_reputation(agent: Agent) -> r.ReputationResult:
        """An agent's reputation: the score, its tier and its four components (payment success, service
        quality, response time, volume consistency), all from verified payments only."""
        return await tools.get_reputation(agent)

    # x402 -----------------------------------------------------------------------------------------------

    @tool(READ)
    async def quote_url(
        url: Url, method: Method = "GET", headers: Headers = None, body: Body = None, json_body: JsonBody = None
    ) -> r.QuoteResult:
        """What an x402 URL asks to be paid (its 402 answer, decoded), without paying."""
        return await tools.quote_url(url, method, headers, body, json_body)

    @tool(SPENDS)
    async def call_paid_api(
        url: Url,
        method: Method = "GET",
        headers: Headers = None,
        body: Body = None,
        json_body: JsonBody = None,
        max_price: Annotated[
            str | None, Field(pattern=AMOUNT, description="Pay at most this for this call (whole tokens).")
        ] = None,
        token: Annotated[
            str | None,
            Field(
                description='Pay with this token, a label ("USDC") or a mint '
                "address (default: the first the seller accepts "
                "that the wallet holds)."
            ),
        ] = None,
        feedback: Annotated[
            Literal["off", "auto"], Field(description="auto: rate a verified call on chain from its status and speed.")
        ] = "off",
    ) -> r.CallResult:
        """Call an HTTP API, paying its x402 price (HTTP 402) from the wallet through the spending guards.
        Returns the answer and what was paid; a verified payment's reference rates it with submit_feedback."""
        return await tools.call_paid_api(url, method, headers, body, json_body, max_price, token, feedback)

    @tool(SPENDS)
    async def call_paid_tool(
        server: Annotated[
            str,
            Field(
                min_length=1,
                description="The MCP server: its Streamable HTTP URL (http(s)://.../mcp), or the name of a stdio "
                "server this server was started with.",
            ),
        ],
        tool: Annotated[str, Field(min_length=1, description="The tool to call.")],
        arguments: Annotated[dict[str, Any] | None, Field(description="The tool's arguments.")] = None,
        max_price: Annotated[
            str | None, Field(pattern=AMOUNT, description="Pay at most this for this call (whole tokens).")
        ] = None,
        token: Mint = None,
    ) -> r.ToolCallResult:
        """Call a tool of another MCP server, paying its x402 price (carried in the call's _meta) from the wallet
        through the spending guards. Returns the tool's answer and what was paid."""
        return await tools.call_paid_tool(server, tool, arguments, max_price, token)

    # payments and reputation --------------------------------------------------------------------------------

    @tool(SPENDS)
    async def pay_agent(agent: Agent, token: Mint = None) -> r.DirectPayment:
        """Pay an agent its price for one call directly on chain (a verified payment, recorded in the same
        transaction), through the spending guards."""
        return await tools.pay_agent(agent, token)

    @tool(READ)
    async def get_receipt(agent: Agent, reference: Reference) -> r.ReceiptResult:
        """A recorded payment to an agent, by its reference: its transaction (found in the index, or among the
        agent's newest transactions), or a legacy receipt account."""
        return await tools.get_receipt(agent, reference)

    @tool(WRITES)
    async def submit_feedback(
        agent: Agent,
        reference: Reference,
        rating: Annotated[int, Field(ge=1, le=5, description="1 (bad) to 5 (excellent).")],
        success: Annotated[bool, Field(description="Whether the service did what was paid for.")] = True,
        response_time_ms: Annotated[int, Field(ge=0, le=3_600_000, description="How long the call took.")] = 0,
    ) -> r.FeedbackResult:
        """Rate a paid call (once per payment, by its payer); the agent's on-chain score is recomputed."""
        return await tools.submit_feedback(agent, reference, rating, success, response_time_ms)

    # work orders ---------------------------------------------------------------------------------------------

    @tool(SPENDS)
    async def create_work_order(
        agent: Agent,
        amount: Amount,
        title: Annotated[str, Field(min_length=1, max_length=64, description="What the job is.")],
        arbiter: Annotated[
            str, Field(description="Who settles a dispute (a base58 wallet, not the agent's owner nor this wallet).")
        ],
        deadline_hours: Annotated[float, Field(gt=0, le=24 * 365, description="Hours to deliver.")] = 168,
        description: Annotated[str, Field(max_length=256)] = "",
        requirements: Annotated[tuple[str, ...], Field(max_length=8)] = (),
        token: Mint = None,
        review_period_hours: Annotated[float, Field(gt=0, le=24 * 30, description="Hours to review a delivery.")] = 72,
    ) -> r.NewWorkOrderResult:
        """Hire an agent through escrow: `amount` (whole tokens, default the agent's first token) is locked
        until released. It counts against the spending budget."""
        return await tools.create_work_order(
            agent, amount, title, arbiter, deadline_hours, description, requirements, token, review_period_hours
        )

    @tool(READ)
    async def get_work_order(order: WorkOrder) -> r.WorkOrderResult:
        """One live work order: status, amounts locked and released, deadline, delivery."""
        return await tools.get_work_order(order)

    @tool(WRITES)
    async def release_payment(order: WorkOrder, amount: OptionalAmount = None) -> r.SentTransaction:
        """Release escrowed tokens to the provider (as the client): `amount` for a milestone, else all."""
        return await tools.release_payment(order, amount)

    @tool(WRITES)
    async def open_dispute(
        order: WorkOrder, reason: Annotated[str, Field(min_length=1, max_length=256)]
    ) -> r.SentTransaction:
        """Open a dispute on a work order; its arbiter settles it."""
        return await tools.open_dispute(order, reason)

    # the wallet -----------------------------------------------------------------------------------------------

    @tool(READ)
    async def get_balance() -> r.BalanceResult:
        """The wallet's SOL and token balances."""
        return await tools.get_balance()

    @tool(READ)
    async def get_spending() -> r.SpendingResult:
        """The spending limits, and per token what was spent in the last hour, day and ever, and what is left."""
        return await tools.get_spending()

    # resources and prompts ----------------------------------------------------------------------------------

    @server.resource(
        "ghostpay://wallet/agents",
        name="my-agents",
        mime_type="application/json",
        description="The agents this wallet owns.",
    )
    async def my_agents() -> str:
        return (await tools.my_agents()).model_dump_json()

    @server.resource(
        "ghostpay://wallet/work-orders",
        name="open-work-orders",
        mime_type="application/json",
        description="The live work orders this wallet is the client or the provider of.",
    )
    async def open_work_orders() -> str:
        return (await tools.open_work_orders()).model_dump_json()

    @server.prompt(name="hire_agent", description="Find and hire an agent for a task, within a budget.")
    def hire_agent(task: str, capability: str, budget: str) -> str:
        return (
            f"Find an agent for this task and get it done, spending at most {budget} tokens.\nTask: {task}\n"
            f"1. search_agents with capability={json.dumps(capability)} and x402_enabled=true; prefer a high "
            "reputation (get_reputation shows why) and a price within the budget.\n"
            "2. get_spending: make sure the budget left covers it.\n"
            "3. For a single call: quote_url on its endpoint, then call_paid_api with max_price; rate the "
            "result with submit_feedback (the payment's agent and reference).\n"
            "4. For a larger job: create_work_order with a title, the amount and an arbiter; check it with "
            "get_work_order and release_payment once the delivery is right, or open_dispute.\n"
            "Report what you paid, to whom, and the transaction signatures."
        )

    @server.prompt(name="pay_for_api", description="Call a paid (x402) API once, checking its price first.")
    def pay_for_api(url: str, max_price: str) -> str:
        return (
            f"Call {url}, paying at most {max_price} tokens.\n"
            "1. quote_url to see its price, token and seller; stop if it is over the limit.\n"
            f"2. call_paid_api with max_price={json.dumps(max_price)}.\n"
            "3. If the payment is verified, rate the call with submit_feedback (1-5) from how it went.\n"
            "4. get_spending to report what is left of the budget."
        )

    return server


def http_app(server: MCPServer, host: str = "127.0.0.1", token: str | None = None) -> ASGIApp:
    """The server's Streamable HTTP app (at /mcp); with `token`, every request must carry
    `Authorization: Bearer <token>` (401 otherwise): whoever reaches the port can spend the budget."""
    app = server.streamable_http_app(host=host)
    if token is None:
        return app
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not hmac.compare_digest(
            dict(scope["headers"]).get(b"authorization", b""), expected
        ):
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": b"a bearer token is required\n"})
            return
        await app(scope, receive, send)

    return guarded
