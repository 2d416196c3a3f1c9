"""The x402 Bazaar over the index: `GET /discovery/resources` and `GET /discovery/search`, as the package's
`with_bazaar(HTTPFacilitatorClientSync(...))` client calls them, the same queries and answers as
`ghost facilitator start` serves (`ghostpay.x402.bazaar.query`), with the catalogue read from the index rather
than from `getProgramAccounts`: every open, active x402 agent with an endpoint and an accepted mint, its prices,
reputation, verified paid calls, distinct payers and last payment, and what only the index knows: the agent's
trust score (`trust`, once computed) and its evidence in trusted mints (`trustedEvidence`). Each request reads the
index, so an agent shows (or goes) as soon as the indexer applied its registration (or deactivation).

The index does not know which facilitator a seller settles through: the listed requirements carry no
`extra.feePayer` (a buyer pays what the seller's own 402 asks) and a record hint without facilitator support.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from solders.pubkey import Pubkey
from sqlmodel import Session

from ghostpay.analytics.context import ApiContext, api_context
from ghostpay.analytics.routes_agents import evidence_mints, evidence_text, session_run, trusted_in
from ghostpay.indexer import evidence as ev
from ghostpay.indexer.queries import ListedAgent, x402_agents
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402.bazaar.listing import AgentEntry, Listing, iso, listing
from ghostpay.x402.bazaar.query import list_query, list_resources, search_query, search_resources
from ghostpay.x402.networks import network_for_genesis
from ghostpay.x402.record.server import declare_record_extension
from ghostpay.x402.record.types import HINT_KEY
from ghostpay.x402.wire import MalformedInput

router = APIRouter()
Q = TypeVar("Q")
NO_FACILITATOR_EXTENSIONS: tuple[str, ...] = ()
EVIDENCE_CHUNK = 500  # agents per evidence query


def _entry(row: ListedAgent) -> AgentEntry:
    agent = row.agent
    return AgentEntry(
        address=agent.address,
        agent_id=agent.agent_id,
        name=agent.name,
        description=agent.description,
        owner=agent.owner,
        endpoint=agent.endpoint,
        pay_to=agent.payment_address or "",
        prices=row.prices,
        capabilities=tuple(row.capabilities),
        reputation=agent.reputation_score,
        tier=agent.tier,
        paid_calls=agent.x402_total_calls,
        payers=row.payers,
        last_paid_at=agent.last_payment_at,
        updated_at=agent.updated_at,
    )


def _indexed(e: ev.Evidence | None, decimals: dict[str, int | None], labels: dict[str, str]) -> dict[str, Any]:
    """The item's evidence only the index has: the trust score when computed, the evidence in trusted mints."""
    if e is None:
        return {}
    trusted = {
        "paidCalls": e.x402.trusted_calls,
        "payers": e.trusted_payers,  # distinct, x402 and escrow together
        "volume": {m: str(v) for m, v in e.x402.trusted_volume.items()},  # atomic units
        "escrowReleases": e.escrow.trusted_calls,
        "firstPaidAt": iso(e.first_at),
        "lastPaidAt": iso(e.last_at),
        "days": e.days,
        "text": evidence_text(e, decimals, labels),
    }
    trust = {"score": e.trust_score, "share": e.trust} if e.trust_score is not None else None
    return {"trustedEvidence": trusted, **({"trust": trust} if trust else {})}


def _listing(entry: AgentEntry, network: str, more: dict[str, Any]) -> Listing:
    hint = declare_record_extension(Pubkey.from_string(entry.address), PROGRAM_ID, "", NO_FACILITATOR_EXTENSIONS)
    return listing(entry, str(PROGRAM_ID), network, {HINT_KEY: hint}, more)


async def listings(ctx: ApiContext) -> list[Listing]:
    """The indexed x402 agents as Bazaar items, on the x402 network of the indexed chain."""
    network = network_for_genesis(await ctx.genesis_hash()).caip2

    def read(session: Session) -> tuple[list[AgentEntry], dict[str, ev.Evidence]]:
        entries = [e for e in map(_entry, x402_agents(session)) if e.listable()]
        trusted = trusted_in(session, ctx.settings.token_labels)
        found: dict[str, ev.Evidence] = {}
        for i in range(0, len(entries) if trusted else 0, EVIDENCE_CHUNK):  # bound the query's parameters
            chunk = [e.address for e in entries[i : i + EVIDENCE_CHUNK]]
            found |= ev.evidence(session_run(session), chunk, trusted)
        return entries, found

    entries, found = await ctx.db(read)
    decimals = await ctx.decimals.get(sorted(evidence_mints(found)))
    labels = await ctx.label_map()
    return [_listing(e, network, _indexed(found.get(e.address), decimals, labels)) for e in entries]


async def _answer(
    ctx: ApiContext,
    params: Mapping[str, str],
    parse: Callable[[Mapping[str, str]], Q],
    answer: Callable[[list[Listing], Q], dict[str, Any]],
) -> JSONResponse:
    """The query's answer; one that means nothing answers 400 `{"error", "reason"}` (as the facilitator's)
    before the index is read."""
    try:
        query = parse(params)
    except MalformedInput as exc:
        return JSONResponse({"error": str(exc), "reason": exc.reason}, status_code=400)
    return JSONResponse(answer(await listings(ctx), query))


@router.get(
    "/discovery/resources",
    tags=["bazaar"],
    summary="x402 Bazaar: the indexed x402 agents (type, payTo, scheme, network, extensions, limit, offset)",
)
async def discovery_resources(request: Request, ctx: ApiContext = Depends(api_context)) -> JSONResponse:
    return await _answer(ctx, request.query_params, list_query, list_resources)


@router.get(
    "/discovery/search",
    tags=["bazaar"],
    summary="x402 Bazaar search: query text with capability:, max_price:MINT=AMOUNT, asset:, min_reputation:, sort:",
)
async def discovery_search(request: Request, ctx: ApiContext = Depends(api_context)) -> JSONResponse:
    return await _answer(ctx, request.query_params, search_query, search_resources)
