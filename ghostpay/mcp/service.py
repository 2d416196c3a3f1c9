"""What the MCP tools do: one wallet's GhostPay client, every payment through its spending guards.

The server (`ghostpay.mcp.server`) only registers these methods as tools; they take plain strings
(what a model sends) and return the pydantic models of `ghostpay.mcp.results`. A token is a mint address or
a token label of the server's cluster ("USDC": a model cannot know mint addresses), and results name mints
by label too.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from solana.rpc.commitment import Commitment
from solders.pubkey import Pubkey

from ghostpay.client import AgentInfo, AgentRef, GhostPayClient
from ghostpay.exceptions import BlockhashExpired, GhostPayError, InvalidArgument, TransactionError
from ghostpay.keypairs import KeypairSource
from ghostpay.mcp import results as r
from ghostpay.spending import GuardedWallet, Spend, SpendingGuards, has_budget, spending_report
from ghostpay.tokens import MintInfo, to_atomic
from ghostpay.x402 import x402_http
from ghostpay.x402.buyer import FeedbackMode, X402HttpClient, fetch_quotes, payment_record
from ghostpay.x402.mcp.client import PaidToolResult, X402McpClient

X402_CLIENTS = 8  # x402 clients kept open at once
ErrorText = Callable[[BaseException], "str | None"]


@dataclass(frozen=True)
class McpSettings:
    """What `create_mcp_server` needs: the wallet, the cluster, and the spending guards (a budget is
    mandatory: a model must not be able to spend without a limit).

    `ledger`: the spend ledger (default: the data folder's, shared with every ghost command);
    `error_text`: turns an exception into the one-line message a tool error shows (the CLI passes its
    own, so the messages match); None for the exception's own text.
    `tool_servers`: MCP servers over stdio that call_paid_tool may start, by name -> command and arguments (a model
    names one; it never gives a command to run).
    """

    guards: SpendingGuards
    cluster: str = "localnet"
    keypair: KeypairSource = None
    commitment: str = "confirmed"
    program_id: str | None = None
    ws_url: str | None = None
    ledger: Path | str | None = None
    error_text: ErrorText | None = None
    tool_servers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    indexer_url: str | None = None  # `ghost indexer serve`: the agents' evidence and trust score, when reachable

    def __post_init__(self) -> None:
        if not has_budget(self.guards):
            raise InvalidArgument(
                "the MCP server needs a spending budget (hourly, daily or total) for every mint "
                "it may pay with; nothing may be spent without one"
            )


def pubkey(value: str, what: str) -> Pubkey:
    try:
        return Pubkey.from_string(value.strip())
    except ValueError:
        raise InvalidArgument(f"{what} {value!r} is not a base58 public key") from None


def agent_ref(value: str) -> AgentRef:
    """An agent's address, or the agent_id of one of the wallet's agents."""
    value = value.strip()
    try:
        return Pubkey.from_string(value)
    except ValueError:
        return value


def parse_amount(value: str, what: str) -> Decimal:
    try:
        parsed = Decimal(value.strip())
    except InvalidOperation:
        raise InvalidArgument(f"{what} must be a decimal number of tokens, like 0.05, not {value!r}") from None
    if not parsed.is_finite() or parsed <= 0:
        raise InvalidArgument(f"{what} must be positive, not {value!r}")
    return parsed


class GhostPayTools:
    """The tools' implementation for one wallet; `open()` holds its client for the server's lifetime."""

    def __init__(self, settings: McpSettings) -> None:
        self.settings = settings
        self.guarded = GuardedWallet(settings.guards, settings.ledger)
        self._gp: GhostPayClient | None = None
        # x402 clients by (max_price, tokens, feedback): a paid call reuses the connections and the official
        # client of the previous one with the same terms (a new one costs ~50 ms a call)
        self._x402: OrderedDict[tuple[Any, ...], X402HttpClient] = OrderedDict()

    @asynccontextmanager
    async def open(self) -> AsyncIterator[GhostPayTools]:
        s = self.settings
        async with GhostPayClient(
            s.cluster,
            s.keypair,
            commitment=Commitment(s.commitment),
            program_id=s.program_id,
            ws_url=s.ws_url,
            guards=self.guarded,
        ) as gp:
            self._gp = gp
            try:
                yield self
            finally:
                while self._x402:
                    await self._x402.popitem()[1].aclose()
                self._gp = None

    @property
    def gp(self) -> GhostPayClient:
        if self._gp is None:
            raise RuntimeError("GhostPayTools used outside open()")
        return self._gp

    async def _labels(self) -> dict[str, str]:
        """mint -> its token label on the server's cluster."""
        return (await self.gp.labels()).by_mint

    async def _token(self, token: str | None) -> Pubkey | None:
        return None if token is None else await self.gp.resolve_mint(token)

    async def _mints(self, agents: list[AgentInfo]) -> dict[str, MintInfo]:
        mints: dict[str, MintInfo] = {}
        for mint in {m for a in agents for m in a.prices}:
            with contextlib.suppress(Exception):  # an agent may list a mint that does not exist: no decimals shown
                mints[str(mint)] = await self.gp.get_mint(mint)
        return mints

    # agents ------------------------------------------------------------------------------------------

    async def search_agents(
        self,
        capability: str | None,
        x402_enabled: bool | None,
        token: str | None,
        max_price: str | None,
        min_reputation: int | None,
        limit: int,
    ) -> r.AgentList:
        found = await self.gp.search_agents(
            capability=capability,
            x402_enabled=x402_enabled,
            token=await self._token(token),
            max_price=parse_amount(max_price, "max_price") if max_price else None,
            min_reputation=min_reputation,
            sort="reputation",
            limit=limit,
        )
        mints, labels = await self._mints(found), await self._labels()
        return r.AgentList(agents=await self._with_evidence([r.agent_summary(a, mints, labels) for a in found]))

    async def get_agent(self, agent: str) -> r.AgentDetail:
        info = await self.gp.get_agent(agent_ref(agent))
        [detail] = await self._with_evidence([r.agent_detail(info, await self._mints([info]), await self._labels())])
        return detail

    async def _with_evidence(self, agents: list[Any]) -> list[Any]:
        """The agents with the indexer's evidence and trust score, when one is configured and answers."""
        if not self.settings.indexer_url or not agents:
            return agents
        from ghostpay.indexer_client import IndexerUnavailable, agents_evidence

        try:
            found = await agents_evidence(self.settings.indexer_url, [a.address for a in agents])
        except IndexerUnavailable:  # the chain's figures stand alone
            return agents
        for agent in agents:
            evidence = found.get(agent.address)
            if evidence is not None:
                agent.evidence = evidence["text"]
                agent.trust_score = (evidence.get("trust") or {}).get("score")
        return agents

    async def my_agents(self) -> r.AgentList:
        mine = await self.gp.list_agents()
        mints, labels = await self._mints(mine), await self._labels()
        return r.AgentList(agents=[r.agent_summary(a, mints, labels) for a in mine])

    async def get_reputation(self, agent: str) -> r.ReputationResult:
        return r.reputation_result(await self.gp.get_reputation(agent_ref(agent)))

    # x402 ----------------------------------------------------------------------------------------------

    @staticmethod
    def _request(headers: dict[str, str] | None, body: str | None, json_body: Any) -> dict[str, Any]:
        if body is not None and json_body is not None:
            raise InvalidArgument("give body or json_body, not both")
        request: dict[str, Any] = {"headers": headers or {}}
        if json_body is not None:
            request["json"] = json_body
        elif body is not None:
            request["content"] = body.encode()
        return request

    async def quote_url(
        self, url: str, method: str, headers: dict[str, str] | None, body: str | None, json_body: Any
    ) -> r.QuoteResult:
        try:
            status, quotes = await fetch_quotes(self.gp, method, url, **self._request(headers, body, json_body))
        except httpx.HTTPError as exc:
            raise InvalidArgument(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
        return r.QuoteResult(url=url, status=status, options=[r.quote_option(q) for q in quotes])

    async def call_paid_api(
        self,
        url: str,
        method: str,
        headers: dict[str, str] | None,
        body: str | None,
        json_body: Any,
        max_price: str | None,
        token: str | None,
        feedback: FeedbackMode,
    ) -> r.CallResult:
        request = self._request(headers, body, json_body)
        cap = parse_amount(max_price, "max_price") if max_price else None
        tokens = [await self.gp.resolve_mint(token)] if token else []
        try:
            response = await (await self._x402_client(cap, tokens, feedback)).request(method, url, **request)
        except httpx.HTTPError as exc:
            raise InvalidArgument(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
        try:
            shown: Any = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            shown = response.text
        record = payment_record(response)
        return r.CallResult(
            status=response.status_code,
            headers=dict(response.headers),
            body=shown,
            payment=r.payment_made(record) if record else None,
        )

    async def _x402_client(self, cap: Decimal | None, tokens: list[Pubkey], feedback: FeedbackMode) -> X402HttpClient:
        key = (cap, tuple(tokens), feedback)
        if key in self._x402:
            self._x402.move_to_end(key)
        else:
            self._x402[key] = x402_http(self.gp, guards=self.guarded, max_price=cap, tokens=tokens, feedback=feedback)
            if len(self._x402) > X402_CLIENTS:
                await self._x402.popitem(last=False)[1].aclose()
        return self._x402[key]

    async def call_paid_tool(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any] | None,
        max_price: str | None,
        token: str | None,
    ) -> r.ToolCallResult:
        target = self._tool_server(server)
        cap = parse_amount(max_price, "max_price") if max_price else None
        tokens = [await self.gp.resolve_mint(token)] if token else []
        called: PaidToolResult | None = None
        refused: GhostPayError | None = None
        try:
            async with Client(target) as session:
                paying = X402McpClient(self.gp, session, guards=self.guarded, max_price=cap, tokens=tokens)
                try:
                    called = await paying.call_tool(tool, arguments)
                except GhostPayError as exc:  # raised here: out of the session's task group it would be wrapped
                    refused = exc
        except (OSError, MCPError, httpx.HTTPError, ExceptionGroup) as exc:
            raise InvalidArgument(f"cannot call tool {tool!r} of MCP server {server}: {_cause(exc)}") from None
        if refused is not None:
            raise refused
        assert called is not None
        return r.ToolCallResult(
            content=[c.model_dump(by_alias=True, exclude_none=True) for c in called.content],
            structured_content=called.structured_content,
            is_error=called.is_error,
            payment=r.payment_made(called.payment) if called.payment else None,
        )

    def _tool_server(self, server: str) -> str | StdioServerParameters:
        """A Streamable HTTP URL as it is; a name: the stdio server it was configured with."""
        if server.startswith(("http://", "https://")):
            return server
        command = self.settings.tool_servers.get(server)
        if not command:
            known = ", ".join(sorted(self.settings.tool_servers)) or "none (ghost mcp --tool-server NAME=COMMAND)"
            raise InvalidArgument(f"MCP server {server!r} is neither an http(s) URL nor a stdio server; known: {known}")
        return StdioServerParameters(command=command[0], args=list(command[1:]))

    # payments and reputation ------------------------------------------------------------------------------

    async def pay_agent(self, agent: str, token: str | None) -> r.DirectPayment:
        ref = agent_ref(agent)
        paid = await self.gp.pay_agent(ref, mint=await self._token(token))
        return r.direct_payment(str(self.gp.agent_address(ref)), paid, await self._labels())

    async def get_receipt(self, agent: str, reference: str) -> r.ReceiptResult:
        return r.receipt_result(await self.gp.get_receipt(agent_ref(agent), reference.strip()), await self._labels())

    async def submit_feedback(
        self, agent: str, reference: str, rating: int, success: bool, response_time_ms: int
    ) -> r.FeedbackResult:
        ref = agent_ref(agent)
        sent = await self.gp.submit_feedback(
            ref, reference.strip(), success=success, rating=rating, response_time_ms=response_time_ms
        )
        score = (await self.gp.get_agent(ref)).reputation_score
        return r.FeedbackResult(signature=str(sent.signature), address=str(sent.address), reputation_score=score)

    # work orders ----------------------------------------------------------------------------------------

    async def create_work_order(
        self,
        agent: str,
        amount: str,
        title: str,
        arbiter: str,
        deadline_hours: float,
        description: str,
        requirements: Sequence[str],
        token: str | None,
        review_period_hours: float,
    ) -> r.NewWorkOrderResult:
        """Escrow spends the wallet's tokens as surely as a payment: it passes the same guards."""
        info = await self.gp.get_agent(agent_ref(agent))
        mint = await self._token(token) if token else (info.accepted_tokens[0] if info.accepted_tokens else None)
        if mint is None:
            raise InvalidArgument(f"agent {info.address} lists no accepted token: pass token")
        mint_info = await self.gp.get_mint(mint)
        value = parse_amount(amount, "amount")
        spend = Spend(
            str(self.gp.wallet),
            str(mint),
            mint_info.decimals,
            to_atomic(value, mint_info.decimals),
            str(info.owner),
            str(info.address),
        )
        reservation = await (await self.gp.bind_guards(self.guarded)).authorize(spend)
        await reservation.sent()
        try:
            order = await self.gp.create_work_order(
                info.address,
                value,
                deadline=timedelta(hours=deadline_hours),
                arbiter=pubkey(arbiter, "arbiter"),
                title=title,
                description=description,
                requirements=requirements,
                mint=mint,
                review_period=timedelta(hours=review_period_hours),
            )
        except (TransactionError, BlockhashExpired, InvalidArgument):  # nothing moved
            await reservation.release()
            raise
        await reservation.settled(str(order.signature))
        return r.NewWorkOrderResult(
            address=str(order.address),
            order_id=order.order_id,
            amount=str(order.amount),
            mint=str(order.mint),
            label=(await self._labels()).get(str(order.mint)),
            signature=str(order.signature),
        )

    async def get_work_order(self, order: str) -> r.WorkOrderResult:
        return r.work_order_result(await self.gp.get_work_order(pubkey(order, "work order")), await self._labels())

    async def open_work_orders(self) -> r.WorkOrderList:
        """The live work orders the wallet is the client of or the provider of."""
        wallet = self.gp.wallet
        orders = {o.address: o for o in await self.gp.list_work_orders(client=wallet)}
        orders.update({o.address: o for o in await self.gp.list_work_orders(provider=wallet)})
        labels = await self._labels()
        return r.WorkOrderList(work_orders=[r.work_order_result(o, labels) for o in orders.values()])

    async def release_payment(self, order: str, amount: str | None) -> r.SentTransaction:
        address = pubkey(order, "work order")
        sent = await self.gp.release_payment(address, parse_amount(amount, "amount") if amount else None)
        return r.SentTransaction(signature=str(sent.signature), address=str(address))

    async def open_dispute(self, order: str, reason: str) -> r.SentTransaction:
        address = pubkey(order, "work order")
        sent = await self.gp.open_dispute(address, reason)
        return r.SentTransaction(signature=str(sent.signature), address=str(address))

    # the wallet ------------------------------------------------------------------------------------------

    async def get_balance(self) -> r.BalanceResult:
        wallet = self.gp.wallet
        sol = await self.gp.get_sol_balance(wallet)
        tokens = await self.gp.get_token_balances(wallet)
        labels = await self._labels()
        return r.BalanceResult(
            wallet=str(wallet),
            sol=str(sol),
            tokens=[
                r.TokenBalance(
                    mint=str(m), label=labels.get(str(m)), amount=str(a), decimals=(await self.gp.get_mint(m)).decimals
                )
                for m, a in tokens.items()
            ],
        )

    async def get_spending(self) -> r.SpendingResult:
        wallet = str(self.gp.wallet)
        await self.gp.bind_guards(self.guarded)  # budgets by label: those of this cluster's mints
        labels = await self._labels()
        return r.SpendingResult(
            wallet=wallet,
            limits=guard_limits(self.settings.guards),
            mints=[r.mint_spending(m, labels) for m in spending_report(self.guarded, wallet)],
            calls_last_minute=self.guarded.ledger.calls_last_minute(wallet),
        )


def _cause(exc: BaseException) -> str:
    """The first error inside an exception group (the mcp SDK's transports raise them), as `Type: message`."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def guard_limits(guards: SpendingGuards) -> dict[str, str]:
    """The guards as name -> value strings (only those set)."""
    limits = {
        "per_call": guards.per_call,
        "hourly_budget": guards.hourly,
        "daily_budget": guards.daily,
        "total_budget": guards.total,
        "calls_per_minute": guards.calls_per_minute,
        "confirm_above": guards.confirm_above,
    }
    shown = {k: str(v) for k, v in limits.items() if v is not None}
    for mint, lim in guards.mint_limits.items():
        shown.update(
            {
                f"{k}.{mint}": str(v)
                for k, v in (
                    ("per_call", lim.per_call),
                    ("hourly_budget", lim.hourly),
                    ("daily_budget", lim.daily),
                    ("total_budget", lim.total),
                )
                if v is not None
            }
        )
    for name in ("allowed_mints", "allowed_sellers"):
        if getattr(guards, name) is not None:
            shown[name] = ",".join(sorted(getattr(guards, name)))
    if guards.blocked_sellers:
        shown["blocked_sellers"] = ",".join(sorted(guards.blocked_sellers))
    return shown
