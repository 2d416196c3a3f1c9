"""Read-side queries over the indexed tables (what `ghost` and applications use).

Every function takes a sqlmodel `Session` and returns rows of `ghostpay.indexer.models` or small
dataclasses; amounts are atomic units, times unix seconds.

    with Session(engine) as session:
        page = search_agents(session, capability="translate", token=usdc, max_price=50_000, sort="price")
        history = payment_history(session, page.items[0].address, sort="amount", limit=20)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, distinct, exists, func, literal_column, or_, text
from sqlmodel import Session, col, select

from ghostpay.indexer import evidence as ev
from ghostpay.indexer.models import (
    DATA_TABLES,
    Agent,
    AgentCapability,
    AgentEarning,
    AgentToken,
    AgentTrust,
    Cursor,
    Payment,
    RawEvent,
    SchemaVersion,
    SeenSlot,
    SkipCounter,
    WorkOrder,
)
from ghostpay.indexer.paging import TOTAL_CAP, Page, QueryError, capped_total, check_page
from ghostpay.reputation import Tier


def count_capped(session: Session, statement: Any) -> tuple[int, bool]:
    """How many rows `statement` (a plain SELECT: no DISTINCT or GROUP BY) selects, counted up to TOTAL_CAP (see
    `paging.TOTAL_CAP`). The rows are counted as `SELECT 1`: no row's columns are read for it (a third of a
    page's time over 10,000 agents)."""
    rows = statement.with_only_columns(literal_column("1"), maintain_column_froms=True).limit(TOTAL_CAP + 1)
    found = session.exec(select(func.count()).select_from(rows.subquery())).one()
    return capped_total(int(found))


def _paged(session: Session, statement: Any, order: Sequence[Any], limit: int, offset: int) -> Page[Any]:
    check_page(limit, offset)
    total, capped = count_capped(session, statement)
    items = list(session.exec(statement.order_by(*order).offset(offset).limit(limit)).all())
    return Page(items, total, offset, limit, capped)


# agents ---------------------------------------------------------------------------------------------

AgentSort = Literal["score", "price", "trust"]


def agent_filter(
    *,
    x402_enabled: bool | None = None,
    capability: str | None = None,
    token: str | None = None,
    max_price: int | None = None,
    min_reputation: int | None = None,
    tier: str | None = None,
    active: bool | None = True,
    min_payers: int | None = None,
    min_volume: dict[str, int] | None = None,
    trusted: Sequence[str] = (),
    correlated: bool = False,
    priced_in_token: bool = False,
) -> Any:
    """The SELECT of open agents matching every filter (unordered); see `search_agents`. `correlated`: the
    capability and token filters as EXISTS, checked per agent (a page walking its sort index), rather than IN
    (a count, which reads each list once); `priced_in_token`: the token filter is left to a join on its price
    (`search_agents`' price order)."""
    statement = select(Agent).where(col(Agent.closed).is_(False))
    if max_price is not None and token is None:
        raise QueryError("max_price needs a token: each accepted mint has its own price")
    if active is not None:
        statement = statement.where(Agent.is_active == active)
    if x402_enabled is None and token is not None:
        x402_enabled = True
    if x402_enabled is not None:
        statement = statement.where(Agent.x402_enabled == x402_enabled)
    members = []  # (table's agent column, conditions) an agent must have a row for
    if capability is not None:
        members.append((col(AgentCapability.agent), [func.lower(AgentCapability.capability) == capability.casefold()]))
    if token is not None and not priced_in_token:
        priced = [col(AgentToken.price) <= max_price] if max_price is not None else []
        members.append((col(AgentToken.agent), [col(AgentToken.mint) == token, *priced]))
    for agent, conditions in members:
        if correlated:
            statement = statement.where(exists().where(agent == col(Agent.address), *conditions))
        else:
            statement = statement.where(col(Agent.address).in_(select(agent).where(*conditions)))
    if min_reputation is not None:
        if not 0 <= min_reputation <= 10_000:
            raise QueryError("min_reputation is in basis points, 0 to 10,000")
        statement = statement.where(Agent.reputation_score >= min_reputation)
    if tier is not None:
        try:
            statement = statement.where(Agent.tier == Tier(tier.upper()).value)
        except ValueError:
            raise QueryError(f"tier must be one of {', '.join(t.value for t in Tier)}") from None
    if min_payers is not None:
        clause, args = ev.min_payers_clause(min_payers, trusted, "agents.address")
        statement = statement.where(text(clause).bindparams(**args))
    if min_volume:
        clause, args = ev.min_volume_clause(min_volume, "agents.address")
        statement = statement.where(text(clause).bindparams(**args))
    return statement


def search_agents(
    session: Session,
    *,
    x402_enabled: bool | None = None,
    capability: str | None = None,
    token: str | None = None,
    max_price: int | None = None,
    min_reputation: int | None = None,
    tier: str | None = None,
    active: bool | None = True,
    min_payers: int | None = None,
    min_volume: dict[str, int] | None = None,
    trusted: Sequence[str] = (),
    sort: AgentSort = "score",
    limit: int = 50,
    after: Sequence[Any] | None = None,
) -> Page[Agent]:
    """Open agents matching every filter. Each accepted mint has its own price, so `max_price` (atomic
    units of `token`) needs `token`; price or token filters imply x402_enabled. `min_payers`: distinct payers in
    the `trusted` mints; `min_volume`: mint -> atomic units paid in it at least (x402 and escrow). `sort`: score
    (highest first), price (lowest first: the price in `token`, else in each agent's first token; agents without
    one are not listed) or trust (the trust score, highest first; 0 without one); ties by address. Keyset pages:
    `after` is the previous page's `next_after`, so rows inserted meanwhile neither repeat nor shift a page."""
    check_page(limit, 0, after)
    priced_in_token = sort == "price" and token is not None  # the join on the token's price filters it already
    filters: dict[str, Any] = {
        "x402_enabled": x402_enabled,
        "capability": capability,
        "token": token,
        "max_price": max_price,
        "min_reputation": min_reputation,
        "tier": tier,
        "active": active,
        "min_payers": min_payers,
        "min_volume": min_volume,
        "trusted": trusted,
        "priced_in_token": priced_in_token,
    }
    counted, statement = (agent_filter(**filters, correlated=correlated) for correlated in (False, True))
    address = col(Agent.address)
    key: Any
    if sort == "score":  # walks ix_agents_score (migration 7) and stops at the page's end
        key, descending = col(Agent.reputation_score), True
    elif sort == "price":  # the price joined from agent_tokens (ix_agent_tokens_mint_price / _position_price)
        priced = [col(AgentToken.mint) == token] if token is not None else [col(AgentToken.position) == 0]
        if priced_in_token and max_price is not None:  # a range of ix_agent_tokens_mint_price, walked in order
            priced.append(col(AgentToken.price) <= max_price)
        counted, statement = (
            s.join(AgentToken, and_(col(AgentToken.agent) == col(Agent.address), *priced)) for s in (counted, statement)
        )
        key, descending = col(AgentToken.price), False
        address = col(AgentToken.agent)  # the agent's address, in the index's own order
    elif sort == "trust":  # agents indexed since the last trust computation have no row yet: 0
        statement = statement.outerjoin(AgentTrust, col(AgentTrust.agent) == col(Agent.address))
        key, descending = func.coalesce(col(AgentTrust.trust), 0.0), True
    else:
        raise QueryError("sort must be score, price or trust")
    total, capped = count_capped(session, counted)
    if after is not None:
        beyond = key < after[0] if descending else key > after[0]
        statement = statement.where(or_(beyond, and_(key == after[0], address > after[1])))
    order = [key.desc() if descending else key.asc(), address]
    rows = list(session.execute(statement.add_columns(key).order_by(*order).limit(limit + 1)).all())
    items = [agent for agent, _ in rows[:limit]]
    next_after = (rows[limit - 1][1], items[-1].address) if len(rows) > limit else None
    return Page(items, total, 0, limit, capped, next_after)


@dataclass(frozen=True)
class ListedAgent:
    """An x402 agent a buyer can find: its row, capabilities, prices (mint -> atomic units, the default mint
    first) and distinct payers of its recorded payments."""

    agent: Agent
    capabilities: list[str]
    prices: dict[str, int]
    payers: int


def x402_agents(session: Session) -> list[ListedAgent]:
    """Every open, active, x402-enabled agent, in four queries whatever their number (the Bazaar's catalogue)."""
    agents = list(session.exec(agent_filter(x402_enabled=True).order_by(Agent.address)).all())
    listed = select(Agent.address).where(col(Agent.closed).is_(False), Agent.is_active, Agent.x402_enabled)
    capabilities: dict[str, list[str]] = {}
    for agent, capability in session.exec(
        select(AgentCapability.agent, AgentCapability.capability)
        .where(col(AgentCapability.agent).in_(listed))
        .order_by(AgentCapability.agent, AgentCapability.capability)
    ).all():
        capabilities.setdefault(agent, []).append(capability)
    prices: dict[str, dict[str, int]] = {}
    for token in session.exec(
        select(AgentToken).where(col(AgentToken.agent).in_(listed)).order_by(AgentToken.agent, col(AgentToken.position))
    ).all():
        prices.setdefault(token.agent, {})[token.mint] = token.price
    payers = dict(
        session.exec(
            select(Payment.agent, func.count(distinct(col(Payment.payer))))
            .where(col(Payment.agent).in_(listed))
            .group_by(Payment.agent)
        ).all()
    )
    return [
        ListedAgent(a, capabilities.get(a.address, []), prices.get(a.address, {}), int(payers.get(a.address, 0)))
        for a in agents
    ]


def prices_of(session: Session, agents: Sequence[str]) -> dict[str, dict[str, int]]:
    """Each agent's accepted mints and the price of a call in each (atomic units), the default mint first; one
    query for all of them (a page of agents is one round trip, not one per agent)."""
    found: dict[str, dict[str, int]] = {a: {} for a in agents}
    rows = session.exec(
        select(AgentToken).where(col(AgentToken.agent).in_(found)).order_by(col(AgentToken.position))
    ).all()
    for r in rows:
        found[r.agent][r.mint] = r.price
    return found


def earnings_of(session: Session, agents: Sequence[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """What each agent earned in each mint in its current registration: mint -> (x402 payments, escrow
    earnings), atomic units, as its account's earnings table holds them; one query for all of them."""
    found: dict[str, dict[str, tuple[int, int]]] = {a: {} for a in agents}
    rows = session.exec(
        select(AgentEarning)
        .join(Agent, col(Agent.address) == AgentEarning.agent)
        .where(col(AgentEarning.agent).in_(found), AgentEarning.registration == Agent.registration)
        .order_by(AgentEarning.mint)
    ).all()
    for r in rows:
        found[r.agent][r.mint] = (r.x402_payments, r.escrow_earnings)
    return found


def capabilities_of(session: Session, agents: Sequence[str]) -> dict[str, list[str]]:
    """Each agent's capabilities, sorted; one query for all of them."""
    found: dict[str, list[str]] = {a: [] for a in agents}
    for r in session.exec(select(AgentCapability).where(col(AgentCapability.agent).in_(found))).all():
        found[r.agent].append(r.capability)
    return {a: sorted(caps) for a, caps in found.items()}  # code-point order on every database


def agent_prices(session: Session, agent: str) -> dict[str, int]:
    """An agent's accepted mints and the price of a call in each (atomic units), the default mint first."""
    return prices_of(session, [agent])[agent]


def agent_earnings(session: Session, agent: str) -> dict[str, tuple[int, int]]:
    """What the agent earned in each mint in its current registration (see `earnings_of`)."""
    return earnings_of(session, [agent])[agent]


def agent_tokens(session: Session, agent: str) -> list[str]:
    """An agent's accepted mints, the default one first."""
    return list(agent_prices(session, agent))


def agent_capabilities(session: Session, agent: str) -> list[str]:
    return capabilities_of(session, [agent])[agent]


# payments -------------------------------------------------------------------------------------------

PaymentSort = Literal["date", "amount"]


def payment_history(
    session: Session,
    agent: str,
    *,
    sort: PaymentSort = "date",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
    reference: str | None = None,
) -> Page[Payment]:
    """An agent's x402 payments (only those of `reference`, 64 hex digits, if given: a reference is not unique
    on chain), newest (or largest) first by default; ties by signature."""
    keys = {"date": [Payment.slot, Payment.timestamp, Payment.instruction_index], "amount": [Payment.amount]}
    if sort not in keys:
        raise QueryError("sort must be date or amount")
    order = [col(k).desc() if descending else col(k).asc() for k in keys[sort]] + [Payment.signature]
    query = select(Payment).where(Payment.agent == agent)
    if reference is not None:
        query = query.where(Payment.reference == reference)
    return _paged(session, query, order, limit, offset)


@dataclass(frozen=True)
class TokenVolume:
    mint: str
    payments: int
    volume: int
    average_per_call: int  # floor of volume / payments


@dataclass(frozen=True)
class Earner:
    agent: str
    mint: str
    payments: int
    volume: int


@dataclass(frozen=True)
class PaymentAnalytics:
    since: int | None
    until: int | None
    payments: int
    by_outcome: dict[str, int]  # recorded (no feedback yet), success, failed
    by_token: list[TokenVolume]
    top_earners: list[Earner]
    success_rate_bps: int | None  # success / (success + failed); None before any feedback
    active_agents: int  # agents paid at least once in the period


def payment_analytics(
    session: Session, since: int | None = None, until: int | None = None, top: int = 10
) -> PaymentAnalytics:
    """x402 payments with `since <= timestamp < until`: counts by outcome, volume and average per call
    by token, the top earners (by volume within each token), success rate and active agents."""
    window: list[ColumnElement[bool]] = []
    if since is not None:
        window.append(col(Payment.timestamp) >= since)
    if until is not None:
        window.append(col(Payment.timestamp) < until)
    where = and_(True, *window)
    by_outcome = {
        o: int(n)
        for o, n in session.exec(select(Payment.outcome, func.count()).where(where).group_by(Payment.outcome)).all()
    }
    by_token = [
        TokenVolume(mint, int(n), int(v), int(v) // int(n))
        for mint, n, v in session.exec(
            select(Payment.mint, func.count(), func.sum(Payment.amount))
            .where(where)
            .group_by(Payment.mint)
            .order_by(func.sum(Payment.amount).desc(), Payment.mint)
        ).all()
    ]
    earners = [
        Earner(agent, mint, int(n), int(v))
        for agent, mint, n, v in session.exec(
            select(Payment.agent, Payment.mint, func.count(), func.sum(Payment.amount))
            .where(where)
            .group_by(Payment.agent, Payment.mint)
            .order_by(func.sum(Payment.amount).desc(), Payment.agent)
            .limit(top)
        ).all()
    ]
    success, failed = by_outcome.get("success", 0), by_outcome.get("failed", 0)
    active = session.exec(select(func.count(distinct(col(Payment.agent)))).where(where)).one()
    return PaymentAnalytics(
        since,
        until,
        sum(by_outcome.values()),
        by_outcome,
        by_token,
        earners,
        success * 10_000 // (success + failed) if success + failed else None,
        int(active),
    )


# work orders ----------------------------------------------------------------------------------------


def work_orders(
    session: Session,
    *,
    client: str | None = None,
    provider: str | None = None,
    agent: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[WorkOrder]:
    """Work orders by client wallet, provider (the agent's owner), agent or status; newest first."""
    statement = select(WorkOrder)
    if client is not None:
        statement = statement.where(WorkOrder.client == client)
    if provider is not None:
        statement = statement.where(WorkOrder.provider == provider)
    if agent is not None:
        statement = statement.where(WorkOrder.agent == agent)
    if status is not None:
        statement = statement.where(func.lower(WorkOrder.status) == status.lower())
    return _paged(session, statement, [col(WorkOrder.created_at).desc(), WorkOrder.address], limit, offset)


# event feed -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedEvent:
    id: int  # pass the last one seen as `after` to poll for newer events
    name: str
    agent: str | None
    signature: str
    slot: int
    instruction_index: int
    event_index: int
    timestamp: int
    data: dict[str, Any]


def event_feed(
    session: Session, after: int = 0, *, names: Sequence[str] | None = None, agent: str | None = None, limit: int = 100
) -> list[FeedEvent]:
    """Events applied after the feed cursor `after`, in the order they were applied."""
    check_page(limit)
    statement = select(RawEvent).where(col(RawEvent.id) > after)
    if names:
        statement = statement.where(col(RawEvent.name).in_(list(names)))
    if agent is not None:
        statement = statement.where(RawEvent.agent == agent)
    rows = session.exec(statement.order_by(col(RawEvent.id)).limit(limit)).all()
    return [
        FeedEvent(
            int(r.id or 0),
            r.name,
            r.agent,
            r.signature,
            r.slot,
            r.instruction_index,
            r.event_index,
            r.timestamp,
            json.loads(r.data),
        )
        for r in rows
    ]


# status ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexStatus:
    cursor_slot: int | None
    cursor_signature: str | None
    seen_slot: int | None  # the newest slot the indexer saw with everything before it applied
    schema_version: int
    rows: dict[str, int]  # per table
    skipped: dict[str, int]  # malformed, unknown, foreign events; failed transactions

    @property
    def complete_through(self) -> int | None:
        """The slot up to which the index is known complete: lag is measured from here."""
        known = [s for s in (self.cursor_slot, self.seen_slot) if s is not None]
        return max(known) if known else None

    def lag(self, chain_slot: int | None) -> int | None:
        """Slots the index is behind `chain_slot` (0 on a quiet chain it follows), None when unknown."""
        through = self.complete_through
        return None if chain_slot is None or through is None else max(chain_slot - through, 0)


def index_status(session: Session) -> IndexStatus:
    """The cursor, the schema version, row counts and skip counters."""
    cursor = session.get(Cursor, 1)
    rows = {
        str(model.__tablename__): int(session.exec(select(func.count()).select_from(model)).one())
        for model in DATA_TABLES
    }
    skipped = {c.name: c.count for c in session.exec(select(SkipCounter)).all()}
    version = session.exec(select(func.max(SchemaVersion.version))).one() or 0
    seen = session.get(SeenSlot, 1)
    return IndexStatus(
        cursor.slot if cursor else None,
        cursor.signature if cursor else None,
        seen.slot if seen else None,
        int(version),
        rows,
        skipped,
    )
