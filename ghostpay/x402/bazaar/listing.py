"""One x402 agent as a Bazaar item: the package's `DiscoveryResource` with GhostPay's evidence, built the same
way whether the agent was read from its account (the facilitator's `ChainCatalogue`) or from the index
(`ghost indexer serve`), and what the filters and search of `ghostpay.x402.bazaar.query` read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from x402.extensions.bazaar import DiscoveryResource
from x402.schemas import PaymentRequirements

EVIDENCE_KEY = "ghostpay"  # the item's `extensions` key holding GhostPay's evidence
RESOURCE_TYPE = "http"
SCHEME = "exact"
MAX_TIMEOUT_SECONDS = 60  # what the seller middleware and `ghost x402 proxy` ask by default
# The Bazaar spec's service metadata: a name and tags are printable ASCII, at most 32 characters, 5 tags.
MAX_SERVICE_NAME_CHARS = 32
MAX_TAG_CHARS = 32
MAX_TAGS = 5


@dataclass(frozen=True)
class Listing:
    """One agent in the catalogue: its resource as served, and what the filters read."""

    agent: str
    resource: DiscoveryResource
    pay_to: str
    prices: dict[str, int]  # mint -> price of a call in its atomic units
    reputation: int
    capabilities: frozenset[str]  # casefolded
    text: str  # casefolded name, agent_id, description, endpoint and capabilities: what free text matches

    def document(self) -> dict[str, Any]:
        return self.resource.to_dict()


def iso(unix_seconds: int) -> str | None:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if unix_seconds > 0 else None


def _printable(text: str, limit: int) -> bool:
    return 0 < len(text) <= limit and text.isascii() and text.isprintable()


def _tags(capabilities: list[str]) -> list[str] | None:
    """The capabilities the spec lets through as tags (the full list is in the evidence)."""
    tags = [c for c in capabilities if _printable(c, MAX_TAG_CHARS)][:MAX_TAGS]
    return tags or None


def _is_endpoint(url: str) -> bool:
    return url.startswith(("https://", "http://"))


@dataclass(frozen=True)
class AgentEntry:
    """What a listing says of one x402 agent, wherever it was read: its account (the facilitator) or the
    index (`ghost indexer serve`)."""

    address: str
    agent_id: str
    name: str
    description: str
    owner: str
    endpoint: str
    pay_to: str
    prices: dict[str, int]  # mint -> price of a call in its atomic units, the default mint first
    capabilities: tuple[str, ...]
    reputation: int  # basis points
    tier: str
    paid_calls: int  # verified: payments recorded on chain by `record_x402_payment`
    payers: int  # distinct
    last_paid_at: int  # unix seconds, 0: never
    updated_at: int

    def listable(self) -> bool:
        """Whether a buyer could call it: an http(s) endpoint, a payment address and an accepted mint."""
        return _is_endpoint(self.endpoint) and bool(self.pay_to) and bool(self.prices)


def listing(
    entry: AgentEntry, program_id: str, network: str, extra: dict[str, Any], more: dict[str, Any] | None = None
) -> Listing:
    """The agent as the package's `DiscoveryResource`: one `accepts` entry per mint at its price (with `extra`),
    GhostPay's evidence in `extensions.ghostpay` (with `more`: what only the index knows, its trust score and
    evidence in trusted mints)."""
    accepts = [
        PaymentRequirements(
            scheme=SCHEME,
            network=network,
            asset=mint,
            amount=str(price),
            pay_to=entry.pay_to,
            max_timeout_seconds=MAX_TIMEOUT_SECONDS,
            extra=extra,
        ).model_dump(by_alias=True, exclude_none=True)
        for mint, price in entry.prices.items()
    ]
    evidence = {
        "agent": entry.address,
        "agentId": entry.agent_id,
        "owner": entry.owner,
        "programId": program_id,
        "reputation": {"score": entry.reputation, "tier": entry.tier},
        "verifiedPaidCalls": entry.paid_calls,
        "payers": entry.payers,
        "lastPaidAt": iso(entry.last_paid_at),
        "capabilities": list(entry.capabilities),
        **(more or {}),
    }
    resource = DiscoveryResource(
        resource=entry.endpoint,
        type=RESOURCE_TYPE,
        x402_version=2,
        accepts=accepts,
        last_updated=iso(entry.updated_at) or "",
        description=entry.description or entry.name,
        service_name=entry.name if _printable(entry.name, MAX_SERVICE_NAME_CHARS) else None,
        tags=_tags(list(entry.capabilities)),
        extensions={EVIDENCE_KEY: evidence},
    )
    words = [entry.name, entry.agent_id, entry.description, entry.endpoint, *entry.capabilities]
    return Listing(
        entry.address,
        resource,
        entry.pay_to,
        dict(entry.prices),
        entry.reputation,
        frozenset(c.casefold() for c in entry.capabilities),
        "\n".join(words).casefold(),
    )
