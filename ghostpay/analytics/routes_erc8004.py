"""ERC-8004 documents of every indexed agent: its registration file, and its payers' feedback in ERC-8004's
feedback shape (one file per signal of a rated paid call, the payment's transaction as `proofOfPayment`;
each payer's cumulative `revenues` per mint)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func
from sqlmodel import Session, col, select

from ghostpay import erc8004
from ghostpay.analytics import pagination
from ghostpay.analytics.context import ApiContext, ApiError, api_context, check_address, cursor_values
from ghostpay.indexer.models import Agent, Payment

router = APIRouter()
UNRATED = "recorded"  # a payment's outcome until its payer rates it
FEEDBACK_CURSOR = "erc8004-feedback"


async def registry_of(ctx: ApiContext) -> tuple[str, str]:
    """(genesis hash, agentRegistry) of the indexed chain and program; 503 while the chain is unknown."""
    genesis = await ctx.genesis_hash()
    if genesis is None:
        raise ApiError(503, "the index does not know its chain yet (no indexer run, no RPC to ask)")
    return genesis, erc8004.agent_registry(genesis, ctx.settings.program_id)


def registration_of(agent: Agent, registry: str) -> erc8004.RegistrationFile:
    return erc8004.registration_file(
        address=agent.address,
        name=agent.name,
        description=agent.description,
        endpoint=agent.endpoint,
        active=agent.is_active and not agent.closed,
        x402_enabled=agent.x402_enabled,
        registry=registry,
    )


@router.get(
    "/api/agents/{address}/registration.json",
    tags=["erc-8004"],
    summary="The agent's ERC-8004 registration file (registration-v1)",
)
async def registration_file(address: str, ctx: ApiContext = Depends(api_context)) -> dict[str, Any]:
    agent, _, _ = await ctx.agent(address)
    _, registry = await registry_of(ctx)
    return registration_of(agent, registry).to_json()


def paid_call(p: Payment, pay_to: str) -> erc8004.PaidCall:
    return erc8004.PaidCall(
        signature=p.signature,
        payer=p.payer,
        pay_to=pay_to,
        timestamp=p.timestamp,
        success=None if p.outcome == UNRATED else p.outcome == "success",
        rating=p.rating or 0,
        response_time_ms=p.response_time_ms or 0,
    )


@router.get(
    "/api/agents/{address}/feedback",
    tags=["erc-8004"],
    summary="Its payers' feedback as ERC-8004 feedback files, newest rated call first",
)
async def feedback(
    address: str,
    ctx: ApiContext = Depends(api_context),
    payer: str | None = Query(None, description="Only this payer's feedback (base58)."),
    limit: int = Query(100, ge=1, le=500, description="At most this many rated calls per page."),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
) -> dict[str, Any]:
    agent, _, _ = await ctx.agent(address)
    if payer is not None:
        check_address(payer, "payer")
    genesis, registry = await registry_of(ctx)
    pay_to = agent.payment_address or ""
    key = pagination.SortKey(
        [col(Payment.slot), col(Payment.signature), col(Payment.instruction_index)], [True, True, True]
    )
    after = cursor_values(FEEDBACK_CURSOR, cursor, 3)
    rated = select(Payment).where(Payment.agent == address, Payment.outcome != UNRATED)
    if payer is not None:
        rated = rated.where(Payment.payer == payer)
    rows, more = await ctx.db(lambda s: pagination.fetch_page(s, rated, key, after, limit))
    revenues = await ctx.db(lambda s: payer_revenues(s, address, payer)) if cursor is None else []
    decimals = await ctx.decimals.get(mint for _, mint, _ in revenues)
    last = rows[-1] if rows else None
    return {
        "agentRegistry": registry,
        "agentId": address,
        "items": [e for p in rows for e in erc8004.feedback_entries(genesis, registry, address, paid_call(p, pay_to))],
        "revenues": [
            erc8004.revenues_entry(genesis, registry, address, paid_call(p, pay_to), total, places, mint)
            for p, mint, total in revenues
            if (places := decimals.get(mint)) is not None
        ],
        "next_cursor": pagination.encode(FEEDBACK_CURSOR, [last.slot, last.signature, last.instruction_index])
        if more and last
        else None,
    }


def payer_revenues(session: Session, agent: str, payer: str | None) -> list[tuple[Payment, str, int]]:
    """(latest payment, mint, total paid) per payer and mint of the agent's payments."""
    totals = select(
        Payment.payer, Payment.mint, func.sum(Payment.amount).label("total"), func.max(Payment.slot).label("slot")
    ).where(Payment.agent == agent)
    if payer is not None:
        totals = totals.where(Payment.payer == payer)
    out = []
    for who, mint, total, slot in session.exec(totals.group_by(Payment.payer, Payment.mint)).all():
        latest = session.exec(
            select(Payment)
            .where(Payment.agent == agent, Payment.payer == who, Payment.mint == mint, Payment.slot == slot)
            .order_by(col(Payment.signature))
        ).first()
        if latest is not None:
            out.append((latest, mint, int(total)))
    return out
