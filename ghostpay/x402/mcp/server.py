"""Sell MCP tools per call at an agent's on-chain price, on the official package's `x402.mcp` payment wrapper.

    from mcp.server.mcpserver import MCPServer
    from ghostpay.x402.mcp import PaidTools, paid_tool_call
    from ghostpay.x402.seller import SellerSettings

    server = MCPServer("weather")
    paid = PaidTools(SellerSettings(agent=AGENT, rpc_url="localnet", facilitator="http://127.0.0.1:8403"))

    @paid.tool(server)
    async def forecast(city: str) -> dict:
        return {"city": city, "sky": "clear", "payer": str(paid_tool_call().payer)}

Each call of a paid tool goes through the package's `create_payment_wrapper` (`x402.mcp.server_async`): without
`_meta["x402/payment"]` it answers the package's payment-required tool error (`structuredContent` = the v2
PaymentRequired), with one it has the facilitator verify it, runs the tool, settles, and answers the result
with the settlement in `_meta["x402/payment-response"]`. A tool that raises or answers an error is not charged.
The requirements are the HTTP seller's (`X402Seller`): one per mint the agent accepts at its on-chain price,
followed live, with `extra.ghostpay` so a GhostPay buyer adds the program's record when the facilitator takes it
(the payment then counts for the agent's reputation). The package's own decorator (`x402.mcp.create_payment_wrapper`)
is written for mcp 1.x's FastMCP; this is the bridge to mcp 2.x's `MCPServer`.
"""

# no `from __future__ import annotations`: MCPServer reads the wrapper's annotations (Context, CallToolResult)
import asyncio
import functools
import inspect
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic_core import to_jsonable_python
from solders.pubkey import Pubkey
from x402.mcp.server_async import PaymentWrapperConfig, create_payment_wrapper
from x402.mcp.types import MCPToolContext, MCPToolResult
from x402.mcp.utils import create_tool_resource_url, extract_payment_from_meta
from x402.schemas import ResourceInfo

from ghostpay.x402.seller import PaidCall, PaywallError, SellerSettings, X402Seller, _payment_facts

CONTEXT_KWARG = "x402_mcp_context"  # the parameter MCPServer fills with the request's Context
_PAID_CALL: ContextVar[PaidCall | None] = ContextVar("ghostpay_x402_mcp_paid_call", default=None)

__all__ = ["PaidTools", "paid_tool_call"]


def paid_tool_call() -> PaidCall:
    """The payment behind the paid tool call being served (who paid, how much, whether it is recorded on
    chain); LookupError outside one."""
    call = _PAID_CALL.get()
    if call is None:
        raise LookupError("not inside a paid tool call")
    return call


class PaidTools:
    """The paid tools of one agent: `tool(server)` registers a function as a tool of an `MCPServer` that costs the
    agent's price per call. The seller starts at the first call (or with `lifespan`, MCPServer's lifespan)."""

    def __init__(self, settings: SellerSettings | None = None, *, seller: X402Seller | None = None) -> None:
        if (settings is None) == (seller is None):
            raise PaywallError("pass settings= or seller=")
        self.seller = seller if seller is not None else X402Seller(settings)  # type: ignore[arg-type]
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._start_lock:
            await self.seller.start()

    async def stop(self) -> None:
        await self.seller.stop()

    @asynccontextmanager
    async def lifespan(self, _: MCPServer) -> AsyncIterator[dict[str, Any]]:
        """MCPServer(lifespan=paid.lifespan): the seller starts with the server (a missing agent or payee account
        stops it) and stops with it."""
        await self.start()
        try:
            yield {}
        finally:
            await self.stop()

    def tool(
        self,
        server: MCPServer,
        *,
        name: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register the decorated function (sync or async) as a paid tool of `server`: its name, docstring and
        parameters make the tool as `server.tool()` would; it returns text, anything JSON-able (a dict becomes the
        structured content) or a `CallToolResult`. A call that raises or answers an error is not settled. The
        function is returned as it is."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            tool_name = name or fn.__name__
            server.add_tool(self._paid(fn, tool_name), name=tool_name, description=description, annotations=annotations)
            return fn

        return register

    def _paid(self, fn: Callable[..., Any], tool_name: str) -> Callable[..., Any]:
        async def handler(args: dict[str, Any], context: MCPToolContext) -> MCPToolResult:
            token = _PAID_CALL.set(self._paid_call(context.meta))
            try:  # a blocking function runs in a thread (it sees the paid call too: the context is copied)
                value = await fn(**args) if inspect.iscoroutinefunction(fn) else await asyncio.to_thread(fn, **args)
            finally:
                _PAID_CALL.reset(token)
            return tool_result(value)

        async def call(**kwargs: Any) -> CallToolResult:
            ctx: Context = kwargs.pop(CONTEXT_KWARG)
            try:
                await self.start()
            except PaywallError as exc:
                return error_result(f"paywall unavailable: {exc}")
            offer = self.seller.watch.offer
            if offer is None or offer.unavailable:
                reason = offer.unavailable if offer else "the agent is not loaded"
                return error_result(f"agent {self.seller.settings.agent} takes no payments now: {reason}")
            resource = ResourceInfo(
                url=create_tool_resource_url(tool_name),
                description=self.seller.description,
                mime_type=self.seller.settings.mime_type or "application/json",
            )
            # rebuilt per call: the requirements follow the agent's on-chain price
            wrapper = create_payment_wrapper(
                self.seller.server, PaymentWrapperConfig(accepts=self.seller.requirements(), resource=resource)
            )
            meta = dict(ctx.request_context.meta or {})
            paid_handler: Any = wrapper(handler)  # the package types it as the handler it wraps; it takes `extra`
            return call_tool_result(await paid_handler(kwargs, {"_meta": meta, "toolName": tool_name}))

        # MCPServer builds the tool's input schema from this signature and injects the Context by its annotation
        signature = inspect.signature(fn)
        context = inspect.Parameter(CONTEXT_KWARG, inspect.Parameter.KEYWORD_ONLY, annotation=Context)
        functools.update_wrapper(call, fn)
        call.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*signature.parameters.values(), context], return_annotation=CallToolResult
        )
        call.__annotations__ = {**fn.__annotations__, CONTEXT_KWARG: Context, "return": CallToolResult}
        return call

    def _paid_call(self, meta: dict[str, Any]) -> PaidCall | None:
        payload = extract_payment_from_meta({"_meta": meta})
        if payload is None:
            return None
        settings = self.seller.settings
        payer, recorded = _payment_facts(payload, settings.program_id, settings.agent_pubkey)
        accepted = payload.accepted
        return PaidCall(
            Pubkey.from_string(payer),
            int(accepted.amount),
            Pubkey.from_string(accepted.asset),
            str(accepted.network),
            payload.x402_version,
            recorded,
        )


def tool_result(value: Any) -> MCPToolResult:
    """A tool function's return as the package's result: the package's or the mcp SDK's result as it is, text as it
    is, anything else as JSON (an object is also the structured content)."""
    if isinstance(value, MCPToolResult):
        return value
    if isinstance(value, CallToolResult):  # the mcp SDK's own result (an error one is not charged)
        return MCPToolResult(
            content=[c.model_dump(by_alias=True, exclude_none=True) for c in value.content],
            is_error=value.is_error,
            meta=dict(value.meta or {}),
            structured_content=value.structured_content,
        )
    if isinstance(value, str):
        return MCPToolResult(content=[{"type": "text", "text": value}])
    data = to_jsonable_python(value)
    return MCPToolResult(
        content=[{"type": "text", "text": json.dumps(data)}],
        structured_content=data if isinstance(data, dict) else None,
    )


def call_tool_result(result: MCPToolResult) -> CallToolResult:
    """The package's result as the mcp SDK's: content, structured content, error flag and `_meta`."""
    return CallToolResult.model_validate(
        {
            "content": result.content,
            "structuredContent": result.structured_content,
            "isError": result.is_error,
            "_meta": result.meta or None,
        }
    )


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
