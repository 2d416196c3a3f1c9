"""The Bazaar catalogue read from the chain: every x402-enabled, active GhostPay agent as a discovered resource.

`ChainCatalogue.refresh` reads the registry with two `getProgramAccounts` calls: the Agent accounts (memcmp on
the x402_enabled and is_active bytes of their fixed head, `ghostpay.discovery.AgentQuery`) and the PayerStats
accounts, sliced to the 32 bytes naming their agent (one per payer and agent: the agent's distinct payers). It
swaps in the new snapshot whole, so a request reads one consistent catalogue without any RPC call of its own.

The facilitator calls `follow` every `discovery_refresh_seconds` (a newly registered agent appears, a
deactivated one disappears, within that time). Only the program changes its accounts, so a look at its
newest transaction (`getSignaturesForAddress` with limit 1: one signature, cheap for any RPC) says whether
anything the catalogue shows may have changed: the two heavy reads run only when it did, or when the last
one is `FULL_READ_SECONDS` old (a confirmed slot rolled back), or when the RPC cannot say (it keeps no
history: every look reads, as before). On a quiet registry that is one small call per interval.

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
from typing import Any

import based58
from solana.rpc.api import Client
from solana.rpc.commitment import Confirmed
from solana.rpc.types import DataSliceOpts, MemcmpOpts
from solders.pubkey import Pubkey

from ghostpay.accounts import Agent, PayerStats
from ghostpay.discovery import AgentQuery, decode_agents, head_offsets
from ghostpay.reputation import tier
from ghostpay.x402.bazaar.listing import AgentEntry, Listing, listing
from ghostpay.x402.facilitator.service import PAYER_STATS_SPACE
from ghostpay.x402.record.server import declare_record_extension
from ghostpay.x402.record.types import HINT_KEY

log = logging.getLogger(__name__)

PAYER_STATS_AGENT = DataSliceOpts(head_offsets("PayerStats")["agent"], 32)
FULL_READ_SECONDS = 300.0  # the registry is read whole at least this often, even with no program transaction seen
LISTED = AgentQuery(x402_enabled=True, active=True)


def _entry(address: Pubkey, agent: Agent, payers: int) -> AgentEntry:
    return AgentEntry(
        address=str(address),
        agent_id=agent.agent_id,
        name=agent.name,
        description=agent.description,
        owner=str(agent.owner),
        endpoint=agent.x402_service_endpoint,
        pay_to=str(agent.x402_payment_address),
        prices={str(t.mint): t.price for t in agent.x402_accepted_tokens},
        capabilities=tuple(agent.capabilities),
        reputation=agent.reputation_score,
        tier=tier(agent.reputation_score, agent.x402_total_calls > 0).value,
        paid_calls=agent.x402_total_calls,
        payers=payers,
        last_paid_at=agent.last_payment_at,
        updated_at=agent.updated_at,
    )


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
        self.looks = 0  # `follow` calls that asked the chain, reads or not
        self.seen: str | None = None  # the program's newest transaction when the registry was last read
        self._refreshing = threading.Lock()

    def follow(self) -> bool:
        """Read the registry again if the program ran a transaction since the last read (or that read is
        `FULL_READ_SECONDS` old, or the RPC cannot say); whether it read. RPC errors of the read propagate."""
        newest = self._newest_transaction()
        self.looks += 1
        fresh = self.refreshed_at is not None and time.time() - self.refreshed_at < FULL_READ_SECONDS
        if newest is not None and newest == self.seen and fresh:
            return False
        self.refresh()
        self.seen = newest  # taken before the read: a transaction landing during it makes the next look read again
        return True

    def _newest_transaction(self) -> str | None:
        """The signature of the program's newest confirmed transaction ("": none yet; None: the RPC cannot say)."""
        try:
            resp = self.rpc.get_signatures_for_address(self.program_id, limit=1, commitment=Confirmed)
        except Exception as exc:  # noqa: BLE001 - an RPC without transaction history: read every time instead
            log.debug("no newest transaction of %s: %s", self.program_id, exc)
            return None
        return str(resp.value[0].signature) if resp.value else ""

    def refresh(self) -> None:
        """Read the registry and swap in the new catalogue (RPC errors propagate; the old one stays)."""
        with self._refreshing:
            resp = self.rpc.get_program_accounts(self.program_id, Confirmed, "base64", filters=LISTED.memcmp_filters())
            agents = LISTED.apply(decode_agents([(k.pubkey, bytes(k.account.data)) for k in resp.value], LISTED))
            payers = self._payer_counts()
            entries = [_entry(address, agent, payers[str(address)]) for address, agent in agents]
            self.listings = tuple(
                listing(e, str(self.program_id), self.network, self._extra(Pubkey.from_string(e.address)))
                for e in entries
                if e.listable()
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

    def _extra(self, address: Pubkey) -> dict[str, Any]:
        """The requirement's `extra` a GhostPay seller answers, paid through this facilitator."""
        return {
            "feePayer": self.fee_payer,
            HINT_KEY: declare_record_extension(address, self.program_id, self.fee_payer, self.facilitator_extensions),
        }

    def status(self) -> dict[str, Any]:
        """For /health: how many resources, when the registry was last read, reads and looks at the chain."""
        return {
            "resources": len(self.listings),
            "refreshedAt": self.refreshed_at,
            "refreshes": self.refreshes,
            "looks": self.looks,
        }
