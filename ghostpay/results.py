"""What the client's methods return: transactions, simulations, agents and their prices and earnings,
payments and receipts, reputation, work orders. Amounts are `Decimal` whole tokens of their mint, with
the atomic units beside them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction

from ghostpay.accounts import Agent, ReputationMetrics, WorkOrder, X402Receipt
from ghostpay.artifacts import idl_constant
from ghostpay.earnings import earnings_by_mint
from ghostpay.events import ProgramEvent
from ghostpay.exceptions import GhostPayError, InvalidArgument
from ghostpay.inputs import PubkeyLike, to_pubkey
from ghostpay.reputation import ReputationScore, Tier
from ghostpay.tokens import MintInfo, from_atomic
from ghostpay.types import MintEarnings

DISPUTE_RULING_SECONDS = idl_constant("DISPUTE_RULING_SECONDS")
FEEDBACK_WINDOW_SECONDS = idl_constant("FEEDBACK_WINDOW_SECONDS")


@dataclass(frozen=True)
class TxResult:
    """A confirmed transaction: signature, slot, compute units consumed, logs and decoded events."""

    signature: Signature
    slot: int
    compute_units: int | None
    logs: list[str] = field(default_factory=list)
    events: list[ProgramEvent] = field(default_factory=list)
    address: Pubkey | None = None  # the account the call created or changed, when there is one

    def event(self, name: str) -> ProgramEvent:
        """The first event called `name` (KeyError if none)."""
        for event in self.events:
            if event.name == name:
                return event
        raise KeyError(name)


@dataclass(frozen=True)
class Simulation:
    """A simulated transaction: compute units, logs, and the error it would raise (None if it succeeds)."""

    compute_units: int | None
    logs: list[str]
    error: GhostPayError | None
    fee: int | None = None  # lamports, from getFeeForMessage
    amount: Decimal | None = None  # a simulated payment: what it would pay, in whole tokens of `mint`
    amount_atomic: int | None = None
    mint: Pubkey | None = None


@dataclass(frozen=True)
class TokenEarnings:
    """What an agent earned in one mint during its current registration, in whole tokens of that mint: since
    the mint took its earnings slot (a slot of a mint no longer accepted may be retired by the owner's
    configuration; its final totals are in the MintEarningsRetired event)."""

    mint: Pubkey
    decimals: int
    x402_payments: Decimal  # received through recorded x402 payments
    escrow_earnings: Decimal  # released to it from work-order escrow
    x402_payments_atomic: int
    escrow_earnings_atomic: int

    @property
    def total(self) -> Decimal:
        return self.x402_payments + self.escrow_earnings

    @classmethod
    def from_slot(cls, slot: MintEarnings, mint: MintInfo) -> TokenEarnings:
        return cls(
            slot.mint,
            mint.decimals,
            from_atomic(slot.x402_payments, mint.decimals),
            from_atomic(slot.escrow_earnings, mint.decimals),
            slot.x402_payments,
            slot.escrow_earnings,
        )


@dataclass(frozen=True)
class AgentInfo:
    """An agent account, decoded. Prices and earnings are `Decimal` whole tokens of their mint (the atomic
    units beside them); earnings have one entry per mint the agent was paid in."""

    address: Pubkey
    owner: Pubkey
    agent_id: str
    name: str
    agent_type: int
    description: str
    metadata_uri: str
    capabilities: list[str]
    is_active: bool
    x402_enabled: bool
    prices: dict[Pubkey, Decimal]  # accepted mint -> whole tokens of it per call, in the agent's order
    prices_atomic: dict[Pubkey, int]  # the same in each mint's atomic units
    payment_address: Pubkey
    endpoint: str
    reputation_score: int
    total_calls: int
    last_payment_at: int
    created_at: int
    updated_at: int
    total_jobs_completed: int  # work orders paid out in full
    earnings: list[TokenEarnings]  # per mint, in the order of the agent's earnings slots
    open_work_orders: int
    registration: int  # 1 for a first registration; +1 each time the same agent id is registered again
    account: Agent = field(repr=False)

    @property
    def accepted_tokens(self) -> list[Pubkey]:
        """The accepted mints, the default one first."""
        return list(self.prices)

    def earned_in(self, mint: PubkeyLike) -> TokenEarnings | None:
        """The earnings in `mint`, or None if the agent has no earnings slot for it (never paid in it this
        registration, or its slot was retired)."""
        mint = to_pubkey(mint, "token mint")
        return next((e for e in self.earnings if e.mint == mint), None)

    @classmethod
    def from_account(cls, address: Pubkey, a: Agent, mints: Mapping[Pubkey, MintInfo]) -> AgentInfo:
        """`mints` holds (at least) the agent's accepted mints and those it earned in (`agent_mints`):
        `GhostPayClient.decode_agent` reads them."""
        earnings = [TokenEarnings.from_slot(slot, mints[mint]) for mint, slot in earnings_by_mint(a).items()]
        prices_atomic = {t.mint: t.price for t in a.x402_accepted_tokens}
        prices = {mint: from_atomic(atomic, mints[mint].decimals) for mint, atomic in prices_atomic.items()}
        return cls(
            address,
            a.owner,
            a.agent_id,
            a.name,
            a.agent_type,
            a.description,
            a.metadata_uri,
            list(a.capabilities),
            a.is_active,
            a.x402_enabled,
            prices,
            prices_atomic,
            a.x402_payment_address,
            a.x402_service_endpoint,
            a.reputation_score,
            a.x402_total_calls,
            a.last_payment_at,
            a.created_at,
            a.updated_at,
            a.total_jobs_completed,
            earnings,
            a.open_work_orders,
            a.registration,
            a,
        )


@dataclass(frozen=True)
class TokenPricing:
    """The price of one call in one accepted mint: whole tokens and atomic units, with the mint's decimals."""

    mint: Pubkey
    price: Decimal
    price_atomic: int
    decimals: int
    token_program: Pubkey


@dataclass(frozen=True)
class Pricing:
    """An agent's x402 prices, one per accepted mint (the default one first)."""

    agent: Pubkey
    enabled: bool
    tokens: list[TokenPricing]
    endpoint: str
    payment_address: Pubkey

    def price_in(self, mint: Pubkey) -> TokenPricing:
        """The price in `mint` (InvalidArgument if the agent does not accept it)."""
        for token in self.tokens:
            if token.mint == mint:
                return token
        raise InvalidArgument(f"agent {self.agent} does not accept mint {mint}")


@dataclass(frozen=True)
class Receipt:
    """A recorded x402 payment found by its reference: its transaction and X402PaymentRecorded event are the
    receipt (no account per payment). `source` says where it was found: "index" (the indexer API), "chain"
    (the agent's recent transactions), or "legacy receipt" (an X402Receipt account the program made before
    PayerStats; `address` is that account, `signature` unknown). `rated`: True or False when the source
    knows (the index, a legacy receipt), else None."""

    signature: Signature | None
    agent: Pubkey
    payer: Pubkey
    rent_payer: Pubkey
    mint: Pubkey
    reference: bytes
    amount: Decimal
    amount_atomic: int
    paid_at: int
    source: str
    slot: int | None = None
    address: Pubkey | None = None
    rated: bool | None = None

    @classmethod
    def from_event(cls, event: ProgramEvent, decimals: int) -> Receipt:
        """From an X402PaymentRecorded event found on the chain."""
        return cls(
            event.signature,
            event.agent,
            event.payer,
            event.rent_payer,
            event.mint,
            bytes(event.reference),
            from_atomic(event.amount, decimals),
            event.amount,
            event.timestamp,
            "chain",
            event.slot,
        )

    @classmethod
    def from_index_row(cls, row: Mapping[str, Any], decimals: int) -> Receipt:
        """From a payment of the indexer API (`GET /api/agents/{agent}/payments`)."""
        return cls(
            Signature.from_string(row["signature"]),
            Pubkey.from_string(row["agent"]),
            Pubkey.from_string(row["payer"]),
            Pubkey.from_string(row["rent_payer"] or row["payer"]),
            Pubkey.from_string(row["mint"]),
            bytes.fromhex(row["reference"]),
            from_atomic(int(row["amount_atomic"]), decimals),
            int(row["amount_atomic"]),
            row["timestamp"],
            "index",
            row["slot"],
            rated=row["outcome"] != "recorded",
        )

    @classmethod
    def from_legacy_account(cls, address: Pubkey, r: X402Receipt, decimals: int) -> Receipt:
        """From an X402Receipt account (made by the program before PayerStats)."""
        return cls(
            None,
            r.agent,
            r.payer,
            r.rent_payer,
            r.mint,
            bytes(r.reference),
            from_atomic(r.amount, decimals),
            r.amount,
            r.paid_at,
            "legacy receipt",
            address=address,
            rated=r.feedback_submitted,
        )


@dataclass(frozen=True)
class PayerStatsInfo:
    """One payer's paid calls to one agent (its PayerStats): what it may still rate, and until when."""

    address: Pubkey
    agent: Pubkey
    payer: Pubkey
    rent_payer: Pubkey
    paid_calls: int
    rated_calls: int
    expired_calls: int
    last_paid_at: int
    rent_lamports: int

    @property
    def window_ends_at(self) -> int:
        """Open calls may be rated until then (unix time): the window of the pair's newest payment."""
        return self.last_paid_at + FEEDBACK_WINDOW_SECONDS

    def open_calls(self, now: int) -> int:
        """Calls paid and not rated that may still be rated at `now`."""
        return self.paid_calls - self.rated_calls - self.expired_calls if now < self.window_ends_at else 0


@dataclass(frozen=True)
class PaymentResult:
    """A payment sent and confirmed. `payer_stats` is the payer's PayerStats for the agent (created by the
    pair's first payment; no account is made per payment)."""

    signature: Signature
    reference: bytes
    payer_stats: Pubkey
    amount: Decimal
    amount_atomic: int
    mint: Pubkey
    compute_units: int | None
    slot: int
    events: list[ProgramEvent] = field(default_factory=list)


@dataclass
class PreparedPayment:
    """A payment signed by the payer only, for a facilitator paying the fees: it adds its signature
    (`transaction.partial_sign([facilitator], transaction.message.recent_blockhash)`) and sends it,
    e.g. with `GhostPayClient.send_transaction`."""

    transaction: Transaction
    reference: bytes
    payer_stats: Pubkey
    amount: Decimal
    amount_atomic: int
    mint: Pubkey
    fee_payer: Pubkey
    last_valid_block_height: int


@dataclass(frozen=True)
class Reputation:
    """The on-chain score with its four components recomputed from the raw metrics, and the tier."""

    agent: Pubkey
    score: int
    components: ReputationScore
    tier: Tier
    metrics: ReputationMetrics


@dataclass(frozen=True)
class WorkOrderInfo:
    """A live work order, decoded: `status` is the WorkOrderStatus name, amounts are Decimal in whole
    tokens of `mint` (with `*_atomic` twins). Closed orders (completed, resolved, cancelled, refunded)
    no longer exist on chain; their story is in the events."""

    address: Pubkey
    order_id: int
    status: str
    client: Pubkey
    agent: Pubkey
    provider_owner: Pubkey
    arbiter: Pubkey
    mint: Pubkey
    vault: Pubkey
    amount: Decimal
    released: Decimal
    remaining: Decimal
    amount_atomic: int
    released_atomic: int
    decimals: int
    deadline: int
    review_period_seconds: int
    created_at: int
    accepted_at: int
    delivered_at: int
    disputed_at: int  # 0 unless Disputed
    updated_at: int
    title: str
    description: str
    requirements: list[str]
    deliverable_uri: str
    content_hash: bytes
    token_program: Pubkey = field(repr=False)
    account: WorkOrder = field(repr=False)

    @classmethod
    def from_account(cls, address: Pubkey, o: WorkOrder, mint: MintInfo) -> WorkOrderInfo:
        d = mint.decimals
        return cls(
            address,
            o.order_id,
            type(o.status).__name__,
            o.client,
            o.agent,
            o.provider_owner,
            o.arbiter,
            o.mint,
            o.vault,
            from_atomic(o.amount, d),
            from_atomic(o.released, d),
            from_atomic(o.amount - o.released, d),
            o.amount,
            o.released,
            d,
            o.deadline,
            o.review_period_seconds,
            o.created_at,
            o.accepted_at,
            o.delivered_at,
            o.disputed_at,
            o.updated_at,
            o.title,
            o.description,
            list(o.requirements),
            o.deliverable_uri,
            bytes(o.content_hash),
            mint.token_program,
            o,
        )

    @property
    def ruling_due(self) -> int | None:
        """When a Disputed order's ruling period ends (unix time): from then on either party may settle it by
        default (`settle_by_default`); None if not Disputed."""
        return self.disputed_at + DISPUTE_RULING_SECONDS if self.status == "Disputed" else None


WorkOrderLike = Pubkey | str | WorkOrderInfo
"""A work order's address (Pubkey or base58), or a WorkOrderInfo already read."""


@dataclass(frozen=True)
class NewWorkOrder:
    """A work order just created: its address, order id and vault, and the transaction."""

    address: Pubkey
    order_id: int
    vault: Pubkey
    amount: Decimal
    amount_atomic: int
    mint: Pubkey
    result: TxResult

    @property
    def signature(self) -> Signature:
        return self.result.signature
