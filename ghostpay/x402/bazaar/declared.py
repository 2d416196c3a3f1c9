"""The discovery info sellers declare (the package's `bazaar` extension in their 402), catalogued when a payment
for it settles here, as the package's `extract_discovery_info` extracts it (validated against its own schema,
its route template checked, its service metadata sanitized).

The info rides in the buyer's payment payload, so it is a claim: what the settle proves is that someone paid
`payTo` for that resource. GhostPay's evidence is attached only when `payTo` is the payment address of an agent
in the chain catalogue (named in the requirement's `extra.ghostpay.agent`); the store is bounded, newest
first, in memory (it fills again as payments settle after a restart).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from x402.extensions.bazaar import BAZAAR, DiscoveredResource, DiscoveryResource, extract_discovery_info

from ghostpay.x402.bazaar.listing import EVIDENCE_KEY, RESOURCE_TYPE, Listing, iso
from ghostpay.x402.record.types import HINT_KEY

log = logging.getLogger(__name__)

MAX_DECLARED = 1_000  # resources remembered; the least recently paid is forgotten first
MAX_URL_CHARS = 2_048
MCP_TYPE = "mcp"


@dataclass(frozen=True)
class Declared:
    """A declared resource as last paid: the package's extraction and the requirement that was settled."""

    found: DiscoveredResource
    accepted: dict[str, Any]
    amount: int  # atomic units (v2 `amount`, v1 `maxAmountRequired`)
    paid_at: int


class DeclaredResources:
    """Resources declared by sellers whose payments settled here, keyed by their URL (and tool)."""

    def __init__(self, capacity: int = MAX_DECLARED) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Declared] = OrderedDict()
        self._lock = threading.Lock()

    def settled(self, payload: Any, requirements: Any) -> DiscoveredResource | None:
        """Catalogue what a settled payment's payload declares (nothing when it declares nothing valid)."""
        try:
            found = extract_discovery_info(payload, requirements)
        except Exception as exc:  # noqa: BLE001 - a stranger's declaration must never fail the settle
            log.warning("discovery info of a settled payment not catalogued: %s", exc)
            return None
        if found is None or not found.resource_url or len(found.resource_url) > MAX_URL_CHARS:
            return None
        accepted = requirements.model_dump(by_alias=True, exclude_none=True)
        key = f"{found.resource_url} {found.tool_name or found.method}"
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = Declared(found, accepted, int(requirements.get_amount()), int(time.time()))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return found

    def listings(self, chain: Sequence[Listing]) -> list[Listing]:
        """The declared resources as catalogue listings, with the evidence of the agent they paid, if listed."""
        agents = {x.agent: x for x in chain}
        with self._lock:
            entries = list(reversed(self._entries.values()))
        return [self._listing(entry, agents) for entry in entries]

    @staticmethod
    def _listing(entry: Declared, agents: dict[str, Listing]) -> Listing:
        found, accepted = entry.found, entry.accepted
        hinted = ((accepted.get("extra") or {}).get(HINT_KEY) or {}).get("agent")
        agent = agents.get(hinted) if isinstance(hinted, str) else None
        if agent is not None and agent.pay_to != accepted.get("payTo"):
            agent = None  # the hint names an agent this payment did not pay
        extensions: dict[str, Any] = {BAZAAR.key: (found.extensions or {}).get(BAZAAR.key)}
        if agent is not None:
            extensions[EVIDENCE_KEY] = (agent.resource.extensions or {})[EVIDENCE_KEY]
        resource = DiscoveryResource(
            resource=found.resource_url,
            type=MCP_TYPE if found.tool_name else RESOURCE_TYPE,
            x402_version=found.x402_version,
            accepts=[accepted],
            last_updated=iso(entry.paid_at) or "",
            description=found.description,
            mime_type=found.mime_type,
            service_name=found.service_name,
            tags=found.tags,
            icon_url=found.icon_url,
            extensions=extensions,
        )
        words = [found.resource_url, found.description or "", found.service_name or "", *(found.tags or [])]
        base = agent or Listing("", resource, str(accepted.get("payTo", "")), {}, 0, frozenset(), "")
        return replace(
            base,
            resource=resource,
            pay_to=str(accepted.get("payTo", "")),
            prices={str(accepted.get("asset", "")): entry.amount},
            text="\n".join([*words, base.text]).casefold(),
        )
