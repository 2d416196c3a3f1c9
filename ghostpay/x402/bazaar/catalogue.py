"""The Bazaar catalogue read from the chain: every x402-enabled, active GhostPay agent as a discovered resource.

`ChainCatalogue.refresh` reads the registry with two `getProgramAccounts` calls: the Agent accounts (memcmp on
the x402_enabled and is_active bytes of their fixed head, `ghostpay.discovery.AgentQuery`) and the PayerStats
accounts, sliced to the 32 bytes naming their agent (one per payer and agent: the agent's distinct payers). It
swaps in the new snapshot whole, so a request reads one consistent catalogue without any RPC call of its own;
the facilitator refreshes it every `discovery_refresh_seconds` (a newly registered agent appears, a
deactivated one disappears, within that time).

Each agent becomes the package's `DiscoveryResource` (`x402.extensions.bazaar`): its service endpoint, one
`accepts` entry per accepted mint at its on-chain price (the requirement a GhostPay seller answers, paid
through this facilitator), its description, name and capabilities (as tags), and in `extensions.ghostpay` the
evidence a client can rank by: the agent's address, reputation score and tier, verified paid calls (payments
recorded on chain by `record_x402_payment`), distinct payers and when it was last paid.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import based58
from solana.rpc.api import Client
from solana.rpc.commitment import Confirmed
from solana.rpc.types import DataSliceOpts, MemcmpOpts
from solders.pubkey import Pubkey
from x402.extensions.bazaar import DiscoveryResource
from x402.schemas import PaymentRequirements

from ghostpay.accounts import Agent, PayerStats
from ghostpay.discovery import AgentQuery, decode_agents, head_offsets
from ghostpay.reputation import tier
from ghostpay.x402.facilitator.service import PAYER_STATS_SPACE
from ghostpay.x402.record.server import declare_record_extension
from ghostpay.x402.record.types import HINT_KEY

log = logging.getLogger(__name__)

EVIDENCE_KEY = "ghostpay"  # the item's `extensions` key holding GhostPay's evidence
RESOURCE_TYPE = "http"
SCHEME = "exact"
MAX_TIMEOUT_SECONDS = 60  # what the seller middleware and `ghost x402 proxy` ask by default
PAYER_STATS_AGENT = DataSliceOpts(head_offsets("PayerStats")["agent"], 32)
# The Bazaar spec's service metadata: a name and tags are printable ASCII, at most 32 characters, 5 tags.
MAX_SERVICE_NAME_CHARS = 32
MAX_TAG_CHARS = 32
MAX_TAGS = 5
LISTED = AgentQuery(x402_enabled=True, active=True)


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


class ChainCatalogue:
    """The x402-enabled active agents of `program_id`, as served on `network` through the facilitator whose
    fee payer is `fee_payer` (advertising `facilitator_extensions`)."""

    def __init__(
        self,
        rpc: Client,
        program_id: Pubkey,
        network: str,
        fee_payer: str,
        facilitator_extensions: Collection[str],
    ) -> None:
        self.rpc = rpc
        self.program_id = program_id
        self.network = network
        self.fee_payer = fee_payer
        self.facilitator_extensions = tuple(facilitator_extensions)
        self.listings: tuple[Listing, ...] = ()
        self.refreshed_at: float | None = None  # time.time() of the last successful refresh
        self.refreshes = 0
        self._refreshing = threading.Lock()

    def refresh(self) -> None:
        """Read the registry and swap in the new catalogue (RPC errors propagate; the old one stays)."""
        with self._refreshing:
            resp = self.rpc.get_program_accounts(self.program_id, Confirmed, "base64", filters=LISTED.memcmp_filters())
            agents = LISTED.apply(decode_agents([(k.pubkey, bytes(k.account.data)) for k in resp.value], LISTED))
            payers = self._payer_counts()
            self.listings = tuple(
                self._listing(address, agent, payers[str(address)])
                for address, agent in agents
                if _is_endpoint(agent.x402_service_endpoint) and agent.x402_accepted_tokens
            )
            self.refreshed_at = time.time()
            self.refreshes += 1

    def _payer_counts(self) -> Counter[str]:
        """Distinct payers per agent: one PayerStats per (payer, agent), only its agent field read."""
        discriminator = MemcmpOpts(0, based58.b58encode(PayerStats.discriminator).decode())
        resp = self.rpc.get_program_accounts(
            self.program_id,
            Confirmed,
            "base64",
            data_slice=PAYER_STATS_AGENT,
            filters=[discriminator, PAYER_STATS_SPACE],
        )
        return Counter(str(Pubkey.from_bytes(bytes(k.account.data))) for k in resp.value)

    def _listing(self, address: Pubkey, agent: Agent, payers: int) -> Listing:
        pay_to = str(agent.x402_payment_address)
        extra = {
            "feePayer": self.fee_payer,
            HINT_KEY: declare_record_extension(address, self.program_id, self.fee_payer, self.facilitator_extensions),
        }
        accepts = [
            PaymentRequirements(
                scheme=SCHEME,
                network=self.network,
                asset=str(token.mint),
                amount=str(token.price),
                pay_to=pay_to,
                max_timeout_seconds=MAX_TIMEOUT_SECONDS,
                extra=extra,
            ).model_dump(by_alias=True, exclude_none=True)
            for token in agent.x402_accepted_tokens
        ]
        evidence = {
            "agent": str(address),
            "agentId": agent.agent_id,
            "owner": str(agent.owner),
            "programId": str(self.program_id),
            "reputation": {
                "score": agent.reputation_score,
                "tier": tier(agent.reputation_score, agent.x402_total_calls > 0).value,
            },
            "verifiedPaidCalls": agent.x402_total_calls,
            "payers": payers,
            "lastPaidAt": iso(agent.last_payment_at),
            "capabilities": list(agent.capabilities),
        }
        resource = DiscoveryResource(
            resource=agent.x402_service_endpoint,
            type=RESOURCE_TYPE,
            x402_version=2,
            accepts=accepts,
            last_updated=iso(agent.updated_at) or "",
            description=agent.description or agent.name,
            service_name=agent.name if _printable(agent.name, MAX_SERVICE_NAME_CHARS) else None,
            tags=_tags(agent.capabilities),
            extensions={EVIDENCE_KEY: evidence},
        )
        words = [agent.name, agent.agent_id, agent.description, agent.x402_service_endpoint, *agent.capabilities]
        return Listing(
            str(address),
            resource,
            pay_to,
            {str(t.mint): t.price for t in agent.x402_accepted_tokens},
            agent.reputation_score,
            frozenset(c.casefold() for c in agent.capabilities),
            "\n".join(words).casefold(),
        )

    def status(self) -> dict[str, Any]:
        """For /health: how many resources, and when the chain was last read."""
        return {"resources": len(self.listings), "refreshedAt": self.refreshed_at, "refreshes": self.refreshes}
