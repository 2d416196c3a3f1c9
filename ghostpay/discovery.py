"""Finding agents on chain: `getProgramAccounts` with `memcmp` filters on the Agent account's
fixed-size head, then exact filtering and sorting of the decoded accounts.

The head (README, "The Agent account") allows memcmp on the discriminator, the owner (8),
x402_enabled (40) and is_active (41). Ranges (price, reputation), capabilities and accepted
tokens beyond the first are checked exactly after decoding.

    >>> f = AgentQuery(x402_enabled=True, max_price=50_000)
    >>> [(m.offset, m.bytes) for m in f.memcmp_filters()[1:3]], f.memcmp_filters()[3]
    ([(40, '2'), (41, '2')], 1848)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Sequence, Union

import based58
from solana.rpc.types import MemcmpOpts
from solders.pubkey import Pubkey

from ghostpay.accounts import Agent
from ghostpay.exceptions import InvalidArgument

AGENT_SPACE = 1848
MAX_FILTERS = 4  # getProgramAccounts refuses more
OWNER_OFFSET = 8
X402_ENABLED_OFFSET = 40
IS_ACTIVE_OFFSET = 41

SortKey = Literal["reputation", "price", "newest", "oldest", "calls", "name"]
SORTS: dict[str, tuple[Callable[[Agent], object], bool]] = {
    "reputation": (lambda a: a.reputation_score, True),
    "price": (lambda a: a.x402_price_per_call, False),
    "newest": (lambda a: a.created_at, True),
    "oldest": (lambda a: a.created_at, False),
    "calls": (lambda a: a.x402_total_calls, True),
    "name": (lambda a: a.name.casefold(), False),
}


def _b58(data: bytes) -> str:
    return based58.b58encode(data).decode()


@dataclass(frozen=True)
class AgentQuery:
    """What to look for. `max_price` is in atomic units here (the client converts decimals).

    `active` defaults to True (inactive agents are not hireable); None means either.
    """

    owner: Pubkey | None = None
    x402_enabled: bool | None = None
    active: bool | None = True
    capability: str | None = None
    token: Pubkey | None = None
    max_price: int | None = None
    min_reputation: int | None = None
    sort: SortKey | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.sort is not None and self.sort not in SORTS:
            raise InvalidArgument(f"sort must be one of {', '.join(SORTS)}, not {self.sort!r}")
        if self.min_reputation is not None and not 0 <= self.min_reputation <= 10_000:
            raise InvalidArgument("min_reputation is in basis points, 0 to 10,000")
        if self.max_price is not None and self.max_price < 0:
            raise InvalidArgument("max_price must not be negative")

    def memcmp_filters(self) -> list[Union[int, MemcmpOpts]]:
        """The server-side filters: the discriminator, whatever the fixed head allows, and the data size,
        at most `MAX_FILTERS` (Solana's RPC limit); the exact check after covers anything dropped."""
        filters: list[Union[int, MemcmpOpts]] = [MemcmpOpts(0, _b58(Agent.discriminator))]
        if self.owner is not None:
            filters.append(MemcmpOpts(OWNER_OFFSET, str(self.owner)))
        # Price and token filters only make sense for agents that take x402 payments.
        x402 = True if (self.token is not None or self.max_price is not None) and self.x402_enabled is None \
            else self.x402_enabled
        if x402 is not None:
            filters.append(MemcmpOpts(X402_ENABLED_OFFSET, _b58(bytes([x402]))))
        if self.active is not None:
            filters.append(MemcmpOpts(IS_ACTIVE_OFFSET, _b58(bytes([self.active]))))
        filters.append(AGENT_SPACE)
        return filters[:MAX_FILTERS]

    def matches(self, agent: Agent) -> bool:
        """The exact check of every filter (including those memcmp already applied)."""
        if self.owner is not None and agent.owner != self.owner:
            return False
        wants_x402 = self.x402_enabled if self.x402_enabled is not None else \
            (True if self.token is not None or self.max_price is not None else None)
        if wants_x402 is not None and agent.x402_enabled != wants_x402:
            return False
        if self.active is not None and agent.is_active != self.active:
            return False
        if self.capability is not None and \
                self.capability.casefold() not in (c.casefold() for c in agent.capabilities):
            return False
        if self.token is not None and self.token not in agent.x402_accepted_tokens:
            return False
        if self.max_price is not None and agent.x402_price_per_call > self.max_price:
            return False
        if self.min_reputation is not None and agent.reputation_score < self.min_reputation:
            return False
        return True

    def apply(self, agents: Iterable[tuple[Pubkey, Agent]]) -> list[tuple[Pubkey, Agent]]:
        """Exact filter, sort (ties by address, so results are stable) and limit."""
        kept = sorted((pair for pair in agents if self.matches(pair[1])), key=lambda p: bytes(p[0]))
        if self.sort is not None:
            key, descending = SORTS[self.sort]
            kept.sort(key=lambda p: key(p[1]), reverse=descending)  # type: ignore[arg-type,return-value]
        return kept[: self.limit] if self.limit is not None else kept


def decode_agents(raw: Sequence[tuple[Pubkey, bytes]]) -> list[tuple[Pubkey, Agent]]:
    """Decode accounts, skipping any that are not Agents."""
    out = []
    for address, data in raw:
        try:
            out.append((address, Agent.decode(data)))
        except Exception:  # noqa: BLE001 - a foreign or corrupt account is not an agent
            continue
    return out
