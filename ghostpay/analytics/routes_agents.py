"""The API's listings: agents (search, one, its payments, its reputation) and work orders, paged by cursor."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, or_, text
from sqlmodel import Session, col, select

from ghostpay.analytics import pagination
from ghostpay.analytics.context import ApiContext, ApiError, api_context, check_address, cursor_values
from ghostpay.analytics.mints import to_atomic_units, whole_tokens
from ghostpay.indexer import evidence as ev
from ghostpay.indexer.guard import indexed_chain
from ghostpay.indexer.models import I64_MAX, Agent, AgentToken, AgentTrust, Payment, Reputation, WorkOrder
from ghostpay.indexer.queries import (
    QueryError,
    agent_earnings,
    agent_filter,
    capabilities_of,
    count_capped,
    earnings_of,
    prices_of,
)
from ghostpay.reputation import (
    WEIGHT_PAYMENT_SUCCESS,
    WEIGHT_RESPONSE_TIME,
    WEIGHT_SERVICE_QUALITY,
    WEIGHT_VOLUME_CONSISTENCY,
)
from ghostpay.token_labels import short

router = APIRouter()
WORK_ORDER_STATUSES = (
    "Created",
    "Accepted",
    "Submitted",
    "Rejected",
    "Completed",
    "Disputed",
    "Resolved",
    "Cancelled",
    "Refunded",
    "Declined",
)


def agent_json(
    agent: Agent,
    capabilities: list[str],
    prices: dict[str, int],
    earnings: dict[str, tuple[int, int]],
    decimals: dict[str, int | None],
    labels: dict[str, str],
) -> dict[str, Any]:
    """`prices`: each accepted mint's price per call in its atomic units, the default mint first; `earnings`:
    mint -> (x402 payments, escrow earnings) in its atomic units, this registration (`queries.agent_earnings`);
    `labels`: mint -> token label on the indexed chain (`labels` names the agent's labelled mints)."""
    return {
        "address": agent.address,
        "owner": agent.owner,
        "agent_id": agent.agent_id,
        "name": agent.name,
        "agent_type": agent.agent_type,
        "description": agent.description,
        "metadata_uri": agent.metadata_uri,
        "active": agent.is_active,
        "closed": agent.closed,
        "capabilities": capabilities,
        "x402_enabled": agent.x402_enabled,
        "accepted_tokens": list(prices),
        "labels": {m: labels[m] for m in dict.fromkeys([*prices, *earnings]) if m in labels},
        "prices": {m: whole_tokens(p, decimals.get(m)) for m, p in prices.items()},
        "prices_atomic": {m: str(p) for m, p in prices.items()},
        "payment_address": agent.payment_address,
        "endpoint": agent.endpoint,
        "reputation": {
            "score": agent.reputation_score,
            "tier": agent.tier,
            "percent": f"{agent.reputation_score // 100}.{agent.reputation_score % 100:02d}",
        },
        "x402_total_calls": agent.x402_total_calls,
        "total_jobs_completed": agent.total_jobs_completed,
        "earnings": [
            {
                "mint": m,
                "label": labels.get(m),
                "x402_payments": whole_tokens(x402, decimals.get(m)),
                "escrow_earnings": whole_tokens(escrow, decimals.get(m)),
                "total": whole_tokens(x402 + escrow, decimals.get(m)),
                "x402_payments_atomic": str(x402),
                "escrow_earnings_atomic": str(escrow),
            }
            for m, (x402, escrow) in earnings.items()
        ],
        "open_work_orders": agent.open_work_orders,
        "last_payment_at": agent.last_payment_at,
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
        "registration": agent.registration,
    }


def payment_json(p: Payment, decimals: dict[str, int | None], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "signature": p.signature,
        "slot": p.slot,
        "timestamp": p.timestamp,
        "agent": p.agent,
        "payer": p.payer,
        "rent_payer": p.rent_payer,
        "mint": p.mint,
        "label": labels.get(p.mint),
        "amount": whole_tokens(p.amount, decimals.get(p.mint)),
        "amount_atomic": str(p.amount),
        "reference": p.reference,
        "outcome": p.outcome,
        "rating": p.rating,
        "response_time_ms": p.response_time_ms,
    }


def work_order_json(w: WorkOrder, decimals: dict[str, int | None], labels: dict[str, str]) -> dict[str, Any]:
    d = decimals.get(w.mint)
    return {
        "address": w.address,
        "order_id": str(w.order_id),
        "agent": w.agent,
        "client": w.client,
        "provider": w.provider,
        "arbiter": w.arbiter,
        "mint": w.mint,
        "label": labels.get(w.mint),
        "status": w.status,
        "amount": whole_tokens(w.amount, d),
        "released": whole_tokens(w.released, d),
        "refunded": whole_tokens(w.refunded, d),
        "amount_atomic": str(w.amount),
        "released_atomic": str(w.released),
        "refunded_atomic": str(w.refunded),
        "deadline": w.deadline,
        "review_period_seconds": w.review_period_seconds,
        "deliverable_uri": w.deliverable_uri,
        "created_at": w.created_at,
        "updated_at": w.updated_at,
        "signature": w.signature,
    }


def session_run(session: Session) -> ev.Run:
    """`evidence`'s executor on a session."""
    return lambda sql, params: session.connection().execute(text(sql), params).all()


def trusted_in(session: Session, labels_path: str | None) -> dict[str, Any]:
    """The index's trusted mints (mint -> TrustedMint)."""
    return ev.trusted_mints(session_run(session), labels_path, indexed_chain(session.get_bind()))  # type: ignore[arg-type]


def evidence_json(e: ev.Evidence, decimals: dict[str, int | None], labels: dict[str, str]) -> dict[str, Any]:
    """An agent's evidence: paid calls, volume and distinct payers per mint, x402 and escrow, and over the
    trusted mints; its trust score."""

    def kind(k: ev.KindEvidence) -> dict[str, Any]:
        return {
            "by_mint": [
                {
                    "mint": m.mint,
                    "label": labels.get(m.mint),
                    "calls": m.calls,
                    "payers": m.payers,
                    "volume": whole_tokens(m.volume, decimals.get(m.mint)),
                    "volume_atomic": str(m.volume),
                }
                for m in k.by_mint
            ],
            "trusted": {
                "calls": k.trusted_calls,
                "payers": k.trusted_payers,
                "volume": [
                    {
                        "mint": m,
                        "label": labels.get(m),
                        "volume": whole_tokens(v, decimals.get(m)),
                        "volume_atomic": str(v),
                    }
                    for m, v in k.trusted_volume.items()
                ],
            },
        }

    return {
        "x402": kind(e.x402),
        "escrow": kind(e.escrow),
        **e.span(),
        "trust": {"score": e.trust_score, "share": e.trust} if e.trust_score is not None else None,
        "text": evidence_text(e, decimals, labels),
    }


def evidence_text(e: ev.Evidence, decimals: dict[str, int | None], labels: dict[str, str]) -> str:
    """`412 paid calls from 97 payers, 41.20 USDC, 30 days`, amounts in whole tokens where the decimals are known."""
    return ev.describe(
        e, lambda m, v: f"{whole_tokens(v, decimals.get(m)) or f'{v} atomic units'} {labels.get(m) or short(m)}"
    )


def evidence_mints(found: dict[str, ev.Evidence]) -> set[str]:
    return {m.mint for e in found.values() for k in (e.x402, e.escrow) for m in k.by_mint}


# agents ---------------------------------------------------------------------------------------------

UNPRICED = I64_MAX  # an agent without a price in the mint sorts after every priced one


def price_in(token: str | None) -> Any:
    """Each agent's price per call in `token` (else in its default mint), as a column to sort by."""
    priced = AgentToken.mint == token if token is not None else AgentToken.position == 0
    price = select(AgentToken.price).where(AgentToken.agent == Agent.address, priced).scalar_subquery()
    return func.coalesce(price, UNPRICED)


def trust_of() -> Any:
    """Each agent's trust share (0 without one), as a column to sort by."""
    trust = select(AgentTrust.trust).where(AgentTrust.agent == Agent.address).scalar_subquery()
    return func.coalesce(trust, 0.0)


def agent_sort(sort: str, token: str | None) -> pagination.SortKey:
    first, descending = {
        "reputation": (col(Agent.reputation_score), True),
        "price": (price_in(token), False),
        "newest": (col(Agent.created_at), True),
        "calls": (col(Agent.x402_total_calls), True),
        "trust": (trust_of(), True),
    }[sort]
    return pagination.SortKey([first, col(Agent.address)], [descending, False])


def sort_values(
    sort: str, token: str | None, agent: Agent, prices: dict[str, int], found: ev.Evidence | None = None
) -> list[Any]:
    """The sort key of a row, as `agent_sort` orders it (what the next page's cursor names)."""
    if sort == "trust":
        return [found.trust if found is not None and found.trust is not None else 0.0, agent.address]
    if sort == "price":
        price = prices.get(token, UNPRICED) if token is not None else next(iter(prices.values()), UNPRICED)
        return [price, agent.address]
    return [
        {"reputation": agent.reputation_score, "newest": agent.created_at, "calls": agent.x402_total_calls}[sort],
        agent.address,
    ]


@router.get("/api/agents", tags=["agents"], summary="Search agents")
async def list_agents(
    ctx: ApiContext = Depends(api_context),
    capability: str | None = Query(None, max_length=32, description="A capability, case-insensitive."),
    x402_enabled: bool | None = Query(None),
    token: str | None = Query(
        None, description="An accepted mint (base58), or its token label on the indexed chain (e.g. USDC)."
    ),
    max_price: str | None = Query(
        None, description="Highest price per call in whole `token` units; needs `token` (prices are per token)."
    ),
    min_reputation: int | None = Query(None, ge=0, le=10_000, description="Basis points, 0 to 10,000."),
    tier: str | None = Query(None),
    min_payers: int | None = Query(
        None, ge=0, description="At least this many distinct payers in trusted mints (x402 and escrow)."
    ),
    min_volume: list[str] | None = Query(
        None, description="At least this much paid in a token (x402 and escrow), whole tokens: USDC=10; repeatable."
    ),
    sort: Literal["reputation", "price", "newest", "calls", "trust"] = Query("reputation"),
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
) -> dict[str, Any]:
    token = await ctx.token(token)
    volumes = await min_volumes(ctx, min_volume or [])
    ceiling = None
    if max_price is not None:
        if token is None:
            raise ApiError(422, "max_price needs token: each accepted token has its own price")
        try:
            price = Decimal(max_price)
        except InvalidOperation:
            raise ApiError(422, f"max_price is not a decimal number: {max_price!r}") from None
        if not price.is_finite() or price < 0:
            raise ApiError(422, "max_price must be a non-negative decimal number")
        places = (await ctx.decimals.get([token]))[token]
        if places is None:
            raise ApiError(422, f"cannot read the decimals of {token} (not a mint, or no RPC configured)")
        ceiling = to_atomic_units(price, places)
    key = agent_sort(sort, token)
    kind = f"agents:{sort}:{token}" if sort == "price" else f"agents:{sort}"  # a price cursor is for one token
    after = cursor_values(kind, cursor, 2)

    def query(
        session: Session,
    ) -> tuple[list[tuple[Agent, list[str], dict[str, int], dict[str, tuple[int, int]]]], bool, tuple[int, bool], Any]:
        trusted = trusted_in(session, ctx.settings.token_labels)
        try:
            statement = agent_filter(
                x402_enabled=x402_enabled,
                capability=capability,
                token=token,
                max_price=ceiling,
                min_reputation=min_reputation,
                tier=tier,
                min_payers=min_payers,
                min_volume=volumes,
                trusted=list(trusted),
            )
        except QueryError as exc:
            raise ApiError(422, str(exc)) from None
        total = count_capped(session, statement)  # counted up to TOTAL_CAP: a full count walks every match
        rows, more = pagination.fetch_page(session, statement, key, after, limit)
        addresses = [a.address for a in rows]
        found = ev.evidence(session_run(session), addresses, trusted)
        capabilities, prices, earnings = (
            capabilities_of(session, addresses),
            prices_of(session, addresses),
            earnings_of(session, addresses),
        )
        return (
            [(a, capabilities[a.address], prices[a.address], earnings[a.address]) for a in rows],
            more,
            total,
            found,
        )

    rows, more, total, found = await ctx.db(query)
    known = await ctx.decimals.get(
        [*(m for _, _, prices, earnings in rows for m in [*prices, *earnings]), *evidence_mints(found)]
    )
    labels = await ctx.label_map()
    last = rows[-1][0] if rows else None
    return {
        "items": [
            {**agent_json(a, c, p, e, known, labels), "evidence": evidence_json(found[a.address], known, labels)}
            for a, c, p, e in rows
        ],
        "total": total[0],
        "total_capped": total[1],
        "next_cursor": pagination.encode(kind, sort_values(sort, token, last, rows[-1][2], found.get(last.address)))
        if more and last is not None
        else None,
    }


async def min_volumes(ctx: ApiContext, given: list[str]) -> dict[str, int]:
    """`USDC=10` filters as mint -> atomic units (422 for a malformed one, or a mint whose decimals are unknown)."""
    out = {}
    for item in given:
        token, sep, amount = item.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal("NaN")
        if not sep or not value.is_finite() or value < 0:
            raise ApiError(422, f"min_volume is TOKEN=AMOUNT in whole tokens, like USDC=10, not {item!r}")
        mint = await ctx.token(token.strip(), "min_volume's token")
        assert mint is not None
        places = (await ctx.decimals.get([mint]))[mint]
        if places is None:
            raise ApiError(422, f"cannot read the decimals of {mint} (not a mint, or no RPC configured)")
        out[mint] = to_atomic_units(value, places)
    return out


@router.get("/api/agents/{address}", tags=["agents"], summary="One agent")
async def get_agent(address: str, ctx: ApiContext = Depends(api_context)) -> dict[str, Any]:
    agent, capabilities, prices = await ctx.agent(address)

    def query(session: Session) -> tuple[dict[str, tuple[int, int]], ev.Evidence]:
        trusted = trusted_in(session, ctx.settings.token_labels)
        return agent_earnings(session, address), ev.evidence(session_run(session), [address], trusted)[address]

    earnings, found = await ctx.db(query)
    known = await ctx.decimals.get([*prices, *earnings, *evidence_mints({address: found})])
    labels = await ctx.label_map()
    return {
        **agent_json(agent, capabilities, prices, earnings, known, labels),
        "evidence": evidence_json(found, known, labels),
    }


@router.get("/api/agents/{address}/payments", tags=["payments"], summary="An agent's x402 payments, newest first")
async def agent_payments(
    address: str,
    ctx: ApiContext = Depends(api_context),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None),
    reference: str | None = Query(
        None, pattern="^[0-9a-f]{64}$", description="Only the payments with this reference (64 hex digits)"
    ),
) -> dict[str, Any]:
    await ctx.agent(address)
    key = pagination.SortKey(
        [col(Payment.slot), col(Payment.signature), col(Payment.instruction_index)], [True, True, True]
    )
    after = cursor_values("payments", cursor, 3)
    query = select(Payment).where(Payment.agent == address)
    if reference is not None:
        query = query.where(Payment.reference == reference)
    rows, more = await ctx.db(lambda s: pagination.fetch_page(s, query, key, after, limit))
    known, labels = await ctx.decimals.get(p.mint for p in rows), await ctx.label_map()
    last = rows[-1] if rows else None
    return {
        "items": [payment_json(p, known, labels) for p in rows],
        "next_cursor": pagination.encode("payments", [last.slot, last.signature, last.instruction_index])
        if more and last
        else None,
    }


@router.get("/api/reputation/{address}", tags=["agents"], summary="Score, tier and the four weighted components")
async def reputation(address: str, ctx: ApiContext = Depends(api_context)) -> dict[str, Any]:
    agent, _, _ = await ctx.agent(address)
    rep = await ctx.db(lambda s: s.get(Reputation, address))
    if rep is None:
        raise ApiError(404, f"no reputation indexed for {address}")
    components = {
        "payment_success": (rep.payment_success, WEIGHT_PAYMENT_SUCCESS),
        "service_quality": (rep.service_quality, WEIGHT_SERVICE_QUALITY),
        "response_time": (rep.response_time, WEIGHT_RESPONSE_TIME),
        "volume_consistency": (rep.volume_consistency, WEIGHT_VOLUME_CONSISTENCY),
    }
    return {
        "agent": address,
        "score": rep.score,
        "tier": agent.tier,
        "percent": f"{rep.score // 100}.{rep.score % 100:02d}",
        "components": {n: {"score": v, "weight_percent": w} for n, (v, w) in components.items()},
        "payments": rep.successful_payments + rep.failed_payments,
        "metrics": {
            "successful_payments": rep.successful_payments,
            "failed_payments": rep.failed_payments,
            "total_response_time_ms": rep.total_response_time_ms,
            "response_time_count": rep.response_time_count,
            "total_rating": rep.total_rating,
            "rating_count": rep.rating_count,
            "total_disputes": rep.total_disputes,
            "disputes_resolved": rep.disputes_resolved,
            "payment_history_7d": json.loads(rep.history),
        },
    }


# work orders ------------------------------------------------------------------------------------


@router.get("/api/work-orders", tags=["work orders"], summary="Work orders, newest first")
async def list_work_orders(
    ctx: ApiContext = Depends(api_context),
    party: str | None = Query(None, description="A wallet: client, provider (agent owner) or arbiter."),
    agent: str | None = Query(None),
    status: str | None = Query(None, description=", ".join(WORK_ORDER_STATUSES)),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None),
) -> dict[str, Any]:
    if party is not None:
        check_address(party, "party")
    if agent is not None:
        check_address(agent, "agent")
    if status is not None and status.capitalize() not in WORK_ORDER_STATUSES:
        raise ApiError(422, f"status must be one of {', '.join(WORK_ORDER_STATUSES)}")
    key = pagination.SortKey([col(WorkOrder.created_at), col(WorkOrder.address)], [True, False])
    after = cursor_values("work-orders", cursor, 2)

    def query(session: Session) -> tuple[list[WorkOrder], bool]:
        statement = select(WorkOrder)
        if party is not None:
            statement = statement.where(
                or_(col(WorkOrder.client) == party, col(WorkOrder.provider) == party, col(WorkOrder.arbiter) == party)
            )
        if agent is not None:
            statement = statement.where(WorkOrder.agent == agent)
        if status is not None:
            statement = statement.where(WorkOrder.status == status.capitalize())
        return pagination.fetch_page(session, statement, key, after, limit)

    rows, more = await ctx.db(query)
    known, labels = await ctx.decimals.get(w.mint for w in rows), await ctx.label_map()
    return {
        "items": [work_order_json(w, known, labels) for w in rows],
        "next_cursor": pagination.encode("work-orders", [rows[-1].created_at, rows[-1].address]) if more else None,
    }
