"""The structured results of the MCP tools: pydantic models, so every tool publishes an output schema.

Amounts are decimal strings in whole tokens of their mint (with `*_atomic` integers beside them):
JSON numbers would be floats, and a model reading "0.1" must not pay 0.1000000000000000055.
Keys, signatures and references are base58 / hex strings. Beside each mint, `label` is its token label
on the server's cluster (e.g. "USDC"), which a model can pass back wherever a token is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from ghostpay.client import AgentInfo, PaymentResult, Receipt, Reputation, WorkOrderInfo
from ghostpay.spending import MintSpending
from ghostpay.tokens import MintInfo, from_atomic
from ghostpay.x402.buyer import PaymentRecord, Quote

Labels = Mapping[str, str]  # mint -> its token label on the cluster (ClusterLabels.by_mint)
LABEL = Field(default=None, description="The mint's token label on this cluster (e.g. USDC), when it has one.")


class CallPrice(BaseModel):
    mint: str
    label: str | None = LABEL
    price: str | None = Field(default=None, description="Whole tokens per call (None when the mint cannot be read).")
    price_atomic: int
    decimals: int | None = None


class MintEarned(BaseModel):
    mint: str
    label: str | None = LABEL
    x402_payments: str = Field(description="Whole tokens received through x402 payments this registration.")
    escrow_earnings: str = Field(description="Whole tokens released to the agent from escrow this registration.")
    x402_payments_atomic: int
    escrow_earnings_atomic: int
    decimals: int


class AgentSummary(BaseModel):
    address: str
    agent_id: str
    name: str
    owner: str
    capabilities: list[str]
    is_active: bool
    x402_enabled: bool
    endpoint: str
    prices: list[CallPrice] = Field(description="The price of one call in each accepted mint, default first.")
    reputation_score: int = Field(description="Basis points, 0-10,000.")
    total_calls: int = Field(description="Paid x402 calls recorded on chain.")
    earnings: list[MintEarned] = Field(description="What the agent earned, per mint.")
    evidence: str | None = Field(
        default=None,
        description="With an indexer: paid calls, distinct payers and volume in trusted mints (money that costs to "
        "move), escrow releases and days, e.g. '412 paid calls from 97 payers, 41.20 USDC, 30 days'.",
    )
    trust_score: int | None = Field(
        default=None,
        description="With an indexer: trust over the payment graph (who paid, and who paid them), basis points "
        "of the most trusted agent's; unlike reputation_score, a farm of self-paying wallets cannot cheaply raise it.",
    )


class AgentDetail(AgentSummary):
    description: str
    metadata_uri: str
    payment_address: str
    total_jobs_completed: int
    open_work_orders: int
    created_at: int
    updated_at: int


class AgentList(BaseModel):
    agents: list[AgentSummary]


def call_prices(info: AgentInfo, mints: dict[str, MintInfo], labels: Labels) -> list[CallPrice]:
    prices = []
    for mint, atomic in info.prices_atomic.items():
        known = mints.get(str(mint))
        prices.append(
            CallPrice(
                mint=str(mint),
                label=labels.get(str(mint)),
                price_atomic=atomic,
                price=str(from_atomic(atomic, known.decimals)) if known else None,
                decimals=known.decimals if known else None,
            )
        )
    return prices


def agent_summary(info: AgentInfo, mints: dict[str, MintInfo], labels: Labels) -> AgentSummary:
    return AgentSummary(
        address=str(info.address),
        agent_id=info.agent_id,
        name=info.name,
        owner=str(info.owner),
        capabilities=info.capabilities,
        is_active=info.is_active,
        x402_enabled=info.x402_enabled,
        endpoint=info.endpoint,
        prices=call_prices(info, mints, labels),
        reputation_score=info.reputation_score,
        total_calls=info.total_calls,
        earnings=[
            MintEarned(
                mint=str(e.mint),
                label=labels.get(str(e.mint)),
                x402_payments=str(e.x402_payments),
                escrow_earnings=str(e.escrow_earnings),
                x402_payments_atomic=e.x402_payments_atomic,
                escrow_earnings_atomic=e.escrow_earnings_atomic,
                decimals=e.decimals,
            )
            for e in info.earnings
        ],
    )


def agent_detail(info: AgentInfo, mints: dict[str, MintInfo], labels: Labels) -> AgentDetail:
    return AgentDetail(
        **agent_summary(info, mints, labels).model_dump(),
        description=info.description,
        metadata_uri=info.metadata_uri,
        payment_address=str(info.payment_address),
        total_jobs_completed=info.total_jobs_completed,
        open_work_orders=info.open_work_orders,
        created_at=info.created_at,
        updated_at=info.updated_at,
    )


class ReputationComponents(BaseModel):
    """The four parts of the score, each in basis points (weights 40/30/20/10)."""

    payment_success: int
    service_quality: int
    response_time: int
    volume_consistency: int


class ReputationResult(BaseModel):
    agent: str
    score: int = Field(description="The on-chain score in basis points, 0-10,000.")
    tier: str
    components: ReputationComponents
    successful_payments: int
    failed_payments: int
    rating_count: int
    average_rating: float | None = Field(default=None, description="1-5, over the rated calls.")
    total_disputes: int


def reputation_result(rep: Reputation) -> ReputationResult:
    m, c = rep.metrics, rep.components
    return ReputationResult(
        agent=str(rep.agent),
        score=rep.score,
        tier=rep.tier.value,
        components=ReputationComponents(
            payment_success=c.payment_success,
            service_quality=c.service_quality,
            response_time=c.response_time,
            volume_consistency=c.volume_consistency,
        ),
        successful_payments=m.successful_payments,
        failed_payments=m.failed_payments,
        rating_count=m.rating_count,
        average_rating=round(m.total_rating / m.rating_count, 2) if m.rating_count else None,
        total_disputes=m.total_disputes,
    )


class QuoteOption(BaseModel):
    """One way to pay a URL: a 402 requirement, decoded."""

    mint: str
    label: str | None = LABEL
    amount: str | None = Field(default=None, description="Whole tokens (None when the mint cannot be read).")
    amount_atomic: int
    pay_to: str
    agent: str | None = Field(default=None, description="The seller's GhostPay agent, when it names one.")
    network: str
    scheme: str
    x402_version: int
    fee_payer: str | None
    max_timeout_seconds: int


class QuoteResult(BaseModel):
    url: str
    status: int = Field(description="The HTTP status of the unpaid call: 402 when it asks for a payment.")
    options: list[QuoteOption]


def quote_option(q: Quote) -> QuoteOption:
    return QuoteOption(
        mint=q.mint,
        label=q.label,
        amount=None if q.amount is None else str(q.amount),
        amount_atomic=q.amount_atomic,
        pay_to=q.pay_to,
        agent=q.agent,
        network=q.network,
        scheme=q.scheme,
        x402_version=q.x402_version,
        fee_payer=q.fee_payer,
        max_timeout_seconds=q.max_timeout_seconds,
    )


class PaymentMade(BaseModel):
    """What an x402 call paid."""

    amount: str
    amount_atomic: int
    mint: str
    label: str | None = LABEL
    seller: str
    agent: str | None
    settled: bool
    signature: str | None
    verified: bool = Field(
        description="Its transaction recorded it on chain: the call can be rated with submit_feedback."
    )
    reference: str | None = Field(default=None, description="The payment's reference (hex), for submit_feedback.")
    latency_ms: int
    error: str | None = None
    feedback: str | None = Field(default=None, description="The feedback transaction, when rated automatically.")


def payment_made(record: PaymentRecord) -> PaymentMade:
    return PaymentMade(
        amount=str(record.amount),
        amount_atomic=record.amount_atomic,
        mint=record.mint,
        label=record.label,
        seller=record.seller,
        agent=record.agent,
        settled=record.settled,
        signature=record.signature,
        verified=record.verified,
        reference=record.reference,
        latency_ms=record.latency_ms,
        error=record.error,
        feedback=record.feedback,
    )


class CallResult(BaseModel):
    status: int
    headers: dict[str, str]
    body: Any = Field(description="The answer: parsed JSON when it is JSON, else text.")
    payment: PaymentMade | None = Field(default=None, description="None when the call cost nothing.")


class ToolCallResult(BaseModel):
    content: list[dict[str, Any]] = Field(description="The tool's answer: MCP content blocks.")
    structured_content: Any = Field(default=None, description="The tool's structured answer, when it gives one.")
    is_error: bool = Field(description="The tool answered an error (a refused or failed payment is not charged).")
    payment: PaymentMade | None = Field(default=None, description="None when the call cost nothing.")


class DirectPayment(BaseModel):
    signature: str
    agent: str
    amount: str
    amount_atomic: int
    mint: str
    label: str | None = LABEL
    reference: str = Field(description="Hex; rate the call with submit_feedback(agent, reference).")
    payer_stats: str = Field(description="The payer's PayerStats for this agent: its paid and rated calls.")


def direct_payment(agent: str, paid: PaymentResult, labels: Labels) -> DirectPayment:
    return DirectPayment(
        signature=str(paid.signature),
        agent=agent,
        amount=str(paid.amount),
        amount_atomic=paid.amount_atomic,
        mint=str(paid.mint),
        label=labels.get(str(paid.mint)),
        reference=paid.reference.hex(),
        payer_stats=str(paid.payer_stats),
    )


class ReceiptResult(BaseModel):
    found: bool
    signature: str | None = Field(default=None, description="The payment's transaction (None for a legacy receipt).")
    payer: str | None = None
    mint: str | None = None
    label: str | None = LABEL
    amount: str | None = None
    paid_at: int | None = None
    source: str | None = Field(
        default=None, description="index, chain (the agent's newest transactions) or legacy receipt."
    )
    rated: bool | None = Field(default=None, description="Whether it was rated, when the source knows.")


def receipt_result(receipt: Receipt | None, labels: Labels) -> ReceiptResult:
    if receipt is None:
        return ReceiptResult(found=False)
    return ReceiptResult(
        found=True,
        signature=str(receipt.signature) if receipt.signature else None,
        payer=str(receipt.payer),
        mint=str(receipt.mint),
        label=labels.get(str(receipt.mint)),
        amount=str(receipt.amount),
        paid_at=receipt.paid_at,
        source=receipt.source,
        rated=receipt.rated,
    )


class SentTransaction(BaseModel):
    signature: str
    address: str | None = Field(default=None, description="The account the transaction created or changed.")


class FeedbackResult(SentTransaction):
    reputation_score: int = Field(description="The agent's score after this feedback, basis points.")


class WorkOrderResult(BaseModel):
    address: str
    order_id: int
    status: str
    client: str
    agent: str
    arbiter: str
    mint: str
    label: str | None = LABEL
    amount: str
    released: str
    remaining: str
    deadline: int = Field(description="Unix seconds.")
    review_period_seconds: int
    title: str
    description: str
    requirements: list[str]
    deliverable_uri: str


def work_order_result(o: WorkOrderInfo, labels: Labels) -> WorkOrderResult:
    return WorkOrderResult(
        address=str(o.address),
        order_id=o.order_id,
        status=o.status,
        client=str(o.client),
        agent=str(o.agent),
        arbiter=str(o.arbiter),
        mint=str(o.mint),
        label=labels.get(str(o.mint)),
        amount=str(o.amount),
        released=str(o.released),
        remaining=str(o.remaining),
        deadline=o.deadline,
        review_period_seconds=o.review_period_seconds,
        title=o.title,
        description=o.description,
        requirements=o.requirements,
        deliverable_uri=o.deliverable_uri,
    )


class WorkOrderList(BaseModel):
    work_orders: list[WorkOrderResult]


class NewWorkOrderResult(BaseModel):
    address: str
    order_id: int
    amount: str
    mint: str
    label: str | None = LABEL
    signature: str


class TokenBalance(BaseModel):
    mint: str
    label: str | None = LABEL
    amount: str
    decimals: int


class BalanceResult(BaseModel):
    wallet: str
    sol: str
    tokens: list[TokenBalance]


class WindowSpending(BaseModel):
    spent: str
    budget: str | None = Field(default=None, description="None: no budget for this window.")
    remaining: str | None = None


class MintSpendingResult(BaseModel):
    mint: str
    label: str | None = LABEL
    decimals: int
    per_call: str | None = Field(default=None, description="The most one call may cost.")
    hour: WindowSpending
    day: WindowSpending
    total: WindowSpending


def mint_spending(s: MintSpending, labels: Labels) -> MintSpendingResult:
    def window(name: str) -> WindowSpending:
        w = s.windows[name]
        return WindowSpending(
            spent=str(w.spent),
            budget=None if w.budget is None else str(w.budget),
            remaining=None if w.remaining is None else str(w.remaining),
        )

    return MintSpendingResult(
        mint=s.mint,
        label=labels.get(s.mint),
        decimals=s.decimals,
        per_call=None if s.per_call is None else str(s.per_call),
        hour=window("hour"),
        day=window("day"),
        total=window("total"),
    )


class SpendingResult(BaseModel):
    wallet: str
    limits: dict[str, str] = Field(description="The guards every payment passes (budgets, per-call maximum...).")
    mints: list[MintSpendingResult] = Field(description="What was spent and is left, per mint paid with.")
    calls_last_minute: int
