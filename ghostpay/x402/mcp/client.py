"""Call paid MCP tools of another server from a GhostPay wallet, through its spending guards.

    async with GhostPayClient("localnet", keypair) as gp, Client(server_url) as session:
        tools = X402McpClient(gp, session, guards=SpendingGuards(daily=Decimal("1")))
        called = await tools.call_tool("forecast", {"city": "Lisbon"})
        called.content, called.payment      # the tool's answer; what was paid (a PaymentRecord) or None

Built on the official package's paying MCP client (`x402.mcp.x402MCPClient`: the probe call, the payment in
`_meta["x402/payment"]`, the settlement read from `_meta["x402/payment-response"]`), with GhostPay's buyer as its
payment client: the requirement is chosen and reserved under the guards (the same budgets and spend ledger as
`x402_http`), the package's exact SVM client signs it, GhostPay's record is added when the seller offers it, and
the reservation is settled with the transaction or released when nothing was paid. A payment the guards refuse
raises (`SpendingRefused`) before anything is signed. `session` is an mcp 2.x `Client` or `ClientSession`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from solders.pubkey import Pubkey
from x402.mcp.client_async import x402MCPClient
from x402.mcp.utils import create_tool_resource_url
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequiredV1, SettleResponse

from ghostpay.exceptions import PaymentRequirementsInvalid
from ghostpay.spending import GuardedWallet, Reservation, SpendingGuards
from ghostpay.x402.buyer import PaymentRecord, Quote, X402Buyer
from ghostpay.x402.buyer.models import ms, settled_record
from ghostpay.x402.record.types import RecordedPayment

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient

PAID_STATUS, FAILED_STATUS = 200, 402  # a PaymentRecord's status: the tool answered, or refused the payment

__all__ = ["PaidToolResult", "X402McpClient"]


@dataclass
class PaidToolResult:
    """A tool call's answer (the mcp SDK's content and structured content, its error flag) and what was paid for
    it (None: the tool was free, or nothing was sent)."""

    content: list[Any]
    structured_content: Any
    is_error: bool
    payment: PaymentRecord | None


class _Session:
    """An mcp 2.x session as the package's client calls it: `call_tool({"name", "arguments", "_meta"})`, answering
    under the wire names its `convert_mcp_result` reads (`isError`, `_meta`, `structuredContent`; mcp 2.x names
    them `is_error`, `meta`, `structured_content`). The last answer is kept as the SDK gave it."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.last: Any = None

    async def call_tool(self, params: dict[str, Any], read_timeout_seconds: timedelta | None = None) -> Any:
        timeout = read_timeout_seconds.total_seconds() if read_timeout_seconds is not None else None
        self.last = result = await self.session.call_tool(
            params["name"], params.get("arguments"), read_timeout_seconds=timeout, meta=params.get("_meta")
        )
        return SimpleNamespace(
            content=[c.model_dump(by_alias=True, exclude_none=True) for c in result.content],
            isError=result.is_error,
            _meta=dict(result.meta or {}),
            structuredContent=result.structured_content,
        )


class _GuardedPayer:
    """The package client's payment client for one call: GhostPay's buyer choosing, reserving and signing."""

    def __init__(self, buyer: X402Buyer, url: str) -> None:
        self.buyer, self.url = buyer, url
        self.quote: Quote | None = None
        self.reservation: Reservation | None = None
        self.recorded: RecordedPayment | None = None
        self.sent_at = 0.0

    async def create_payment_payload(self, required: PaymentRequired | PaymentRequiredV1) -> PaymentPayload:
        if not isinstance(required, PaymentRequired):
            raise PaymentRequirementsInvalid("the tool asks for an x402 v1 payment; paid MCP tools are x402 v2")
        if required.resource is not None:
            self.url = required.resource.url
        index, quote = await self.buyer.policy.choose(required, self.url, {})
        self.reservation = await self.buyer.policy.authorize(await self.buyer.policy.spend(quote, self.url))
        try:
            payload, self.recorded = await self.buyer.sign(required, index, quote)
        except BaseException:
            if self.reservation is not None:
                await self.reservation.release()
            raise
        assert isinstance(payload, PaymentPayload)  # a v2 402 is paid with a v2 payload
        if self.reservation is not None:
            await self.reservation.sent(self.buyer.proof(payload))
        self.quote, self.sent_at = quote, time.perf_counter()
        return payload

    async def finish(self, settle: SettleResponse | None, is_error: bool) -> PaymentRecord:
        """The payment as the seller's settlement says it went: its reservation settled, or released when no
        transaction was sent; the record verified on chain when the transaction carries it."""
        quote = self.quote
        assert quote is not None
        status = FAILED_STATUS if is_error and not (settle and settle.success) else PAID_STATUS
        wallet = str(self.buyer.wallet)
        latency_ms = ms(time.perf_counter() - self.sent_at)
        record = settled_record(quote, self.url, settle, wallet, status, latency_ms, unanswered="not settled")
        if self.reservation is not None and record.settled:
            await self.reservation.settled(record.signature)
        elif self.reservation is not None and (settle is None or not settle.transaction):
            # not verified, the tool failed, or the settle failed naming no transaction: nothing was sent (one that
            # names a transaction may still land: the payment stays counted)
            await self.reservation.release()
        if self.recorded is not None:
            record.reference, record.payer_stats = self.recorded.reference.hex(), str(self.recorded.payer_stats)
            record.verified = record.settled and await self.buyer._recorded(quote, self.recorded, record.signature)
        return record


class X402McpClient:
    """Paid tool calls over one MCP session, paid from `gp`'s wallet under `guards` (default: the client's)."""

    def __init__(
        self,
        gp: GhostPayClient,
        session: Any,
        *,
        guards: SpendingGuards | GuardedWallet | None = None,
        max_price: Decimal | str | int | None = None,
        tokens: Sequence[Pubkey | str] = (),
    ) -> None:
        self.session = session
        self.buyer = X402Buyer(
            gp,
            guards=guards if guards is not None else gp.guards,
            max_price=None if max_price is None else Decimal(str(max_price)),
            tokens=tokens,
        )

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> PaidToolResult:
        """Call tool `name`; when it answers the package's payment-required result, pay it once within the
        guards and call it again with the payment (the package's `x402MCPClient` drives both calls)."""
        session = _Session(self.session)
        payer = _GuardedPayer(self.buyer, create_tool_resource_url(name))
        called = await x402MCPClient(session, payer, auto_payment=True).call_tool(name, arguments or {})
        payment = await payer.finish(called.payment_response, called.is_error) if called.payment_made else None
        last = session.last
        return PaidToolResult(list(last.content), last.structured_content, last.is_error, payment)
