"""Finding accounts on chain: `getProgramAccounts` with `memcmp` filters on an account's
fixed-size head, then exact filtering and sorting of the decoded accounts.

Decoding is two-step and struct-based (ghostpay.borsh_layout, layouts compiled from the IDL):
the fixed head of every account is unpacked with one `struct` call and checked against the
query; only the accounts that pass are decoded in full.

The offsets come from the IDL (`head_offsets`), as the C header's do. The Agent head (README,
"The Agent account") allows memcmp on the owner (8), x402_enabled (40) and is_active (41);
ranges (a token's price, reputation), capabilities and accepted tokens are checked exactly after
decoding. The WorkOrder head allows memcmp on client, agent, provider_owner, arbiter, mint
and status.

    >>> f = AgentQuery(x402_enabled=True, token=Pubkey.default(), max_price=50_000)
    >>> [(m.offset, m.bytes) for m in f.memcmp_filters()[1:3]], f.memcmp_filters()[3]
    ([(40, '2'), (41, '2')], 2808)
    >>> HEAD["WorkOrder"]["mint"], HEAD["WorkOrder"]["status"]
    (136, 320)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import based58
from solana.rpc.types import MemcmpOpts
from solders.pubkey import Pubkey

from ghostpay import artifacts
from ghostpay.accounts import Agent, WorkOrder
from ghostpay.borsh_layout import DISCRIMINATOR_LEN, DecodeError, decode_account, head_layout
from ghostpay.exceptions import InvalidArgument
from ghostpay.gc_tuning import gc_paused

MAX_FILTERS = 4  # getProgramAccounts refuses more


def head_offsets(account: str) -> dict[str, int]:
    """Offsets of an account's fields up to its first variable-size one, from the IDL.

    >>> head_offsets("Agent")["is_active"]
    41
    """
    return dict(head_layout(account).offsets)


HEAD = {name: head_offsets(name) for name in ("Agent", "WorkOrder")}
AGENT_SPACE = artifacts.idl_constant("AGENT_SPACE")
OWNER_OFFSET = HEAD["Agent"]["owner"]
X402_ENABLED_OFFSET = HEAD["Agent"]["x402_enabled"]
IS_ACTIVE_OFFSET = HEAD["Agent"]["is_active"]
WORK_ORDER_STATUSES: tuple[str, ...] = tuple(
    v["name"] for t in artifacts.idl_dict()["types"] if t["name"] == "WorkOrderStatus" for v in t["type"]["variants"]
)
"""Status names in variant order (the byte stored at HEAD["WorkOrder"]["status"])."""

SortKey = Literal["reputation", "price", "newest", "oldest", "calls", "name"]


def price_in(agent: Agent, mint: Pubkey | None) -> int | None:
    """The agent's price in `mint` (atomic units), its first token's when `mint` is None; None if not accepted."""
    for token in agent.x402_accepted_tokens:
        if mint is None or token.mint == mint:
            return token.price
    return None


SORTS: dict[str, tuple[Callable[[Agent], int | str], bool]] = {
    "reputation": (lambda a: a.reputation_score, True),
    "price": (lambda a: price_in(a, None) or 0, False),
    "newest": (lambda a: a.created_at, True),
    "oldest": (lambda a: a.created_at, False),
    "calls": (lambda a: a.x402_total_calls, True),
    "name": (lambda a: a.name.casefold(), False),
}


def _b58(data: bytes) -> str:
    return based58.b58encode(data).decode()


@dataclass(frozen=True)
class AgentQuery:
    """What to look for. `max_price` is the price in `token`, in its atomic units here (the client converts
    decimals); each accepted mint has its own price, so it needs a token.

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
        if self.max_price is not None and self.token is None:
            raise InvalidArgument("max_price needs a token: each accepted mint has its own price")

    def memcmp_filters(self) -> list[int | MemcmpOpts]:
        """The server-side filters: the discriminator, whatever the fixed head allows, and the data size,
        at most `MAX_FILTERS` (Solana's RPC limit); the exact check after covers anything dropped."""
        filters: list[int | MemcmpOpts] = [MemcmpOpts(0, _b58(Agent.discriminator))]
        if self.owner is not None:
            filters.append(MemcmpOpts(OWNER_OFFSET, str(self.owner)))
        # Price and token filters only make sense for agents that take x402 payments.
        x402 = (
            True
            if (self.token is not None or self.max_price is not None) and self.x402_enabled is None
            else self.x402_enabled
        )
        if x402 is not None:
            filters.append(MemcmpOpts(X402_ENABLED_OFFSET, _b58(bytes([x402]))))
        if self.active is not None:
            filters.append(MemcmpOpts(IS_ACTIVE_OFFSET, _b58(bytes([self.active]))))
        filters.append(AGENT_SPACE)
        return filters[:MAX_FILTERS]

    def matches_head(self, head: dict[str, Any]) -> bool:
        """The checks the fixed head answers (`head_layout("Agent").unpack`: pubkeys as bytes)."""
        if self.owner is not None and head["owner"] != bytes(self.owner):
            return False
        wants_x402 = (
            self.x402_enabled
            if self.x402_enabled is not None
            else (True if self.token is not None or self.max_price is not None else None)
        )
        if wants_x402 is not None and head["x402_enabled"] != wants_x402:
            return False
        if self.active is not None and head["is_active"] != self.active:
            return False
        return self.min_reputation is None or head["reputation_score"] >= self.min_reputation

    def matches(self, agent: Agent) -> bool:
        """The exact check of every filter (including those memcmp already applied)."""
        if self.owner is not None and agent.owner != self.owner:
            return False
        wants_x402 = (
            self.x402_enabled
            if self.x402_enabled is not None
            else (True if self.token is not None or self.max_price is not None else None)
        )
        if wants_x402 is not None and agent.x402_enabled != wants_x402:
            return False
        if self.active is not None and agent.is_active != self.active:
            return False
        if self.capability is not None and self.capability.casefold() not in (c.casefold() for c in agent.capabilities):
            return False
        if self.token is not None:
            price = price_in(agent, self.token)
            if price is None or (self.max_price is not None and price > self.max_price):
                return False
        return self.min_reputation is None or agent.reputation_score >= self.min_reputation

    def apply(self, agents: Iterable[tuple[Pubkey, Agent]]) -> list[tuple[Pubkey, Agent]]:
        """Exact filter, sort (ties by address, so results are stable) and limit."""
        kept = sorted((pair for pair in agents if self.matches(pair[1])), key=lambda p: bytes(p[0]))
        if self.sort == "price" and self.token is not None:
            token = self.token
            kept.sort(key=lambda p: price_in(p[1], token) or 0)
        elif self.sort is not None:
            key, descending = SORTS[self.sort]
            kept.sort(key=lambda p: key(p[1]), reverse=descending)
        return kept[: self.limit] if self.limit is not None else kept


def decode_agents(raw: Sequence[tuple[Pubkey, bytes]], query: AgentQuery | None = None) -> list[tuple[Pubkey, Agent]]:
    """Decode the accounts that are Agents and whose head passes `query` (all Agents without one)."""
    head = head_layout("Agent")
    out = []
    with gc_paused():
        for address, data in raw:
            if data[:DISCRIMINATOR_LEN] != Agent.discriminator or len(data) < head.size:
                continue
            if query is not None and not query.matches_head(head.unpack(data)):
                continue
            try:
                out.append((address, decode_account("Agent", data)))
            except DecodeError:  # a corrupt account is not an agent
                continue
    return out


@dataclass(frozen=True)
class WorkOrderQuery:
    """Work orders by any of their parties, mint and status (a WorkOrderStatus name).

    >>> q = WorkOrderQuery(status="Submitted")
    >>> [(m.offset, m.bytes) for m in q.memcmp_filters()[1:]]
    [(320, '3')]
    """

    client: Pubkey | None = None
    agent: Pubkey | None = None
    provider_owner: Pubkey | None = None
    arbiter: Pubkey | None = None
    mint: Pubkey | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in WORK_ORDER_STATUSES:
            raise InvalidArgument(f"status must be one of {', '.join(WORK_ORDER_STATUSES)}, not {self.status!r}")

    def _wanted(self) -> list[tuple[int, bytes]]:
        head = HEAD["WorkOrder"]
        keys = [
            (head[name], bytes(key))
            for name, key in (
                ("client", self.client),
                ("agent", self.agent),
                ("provider_owner", self.provider_owner),
                ("arbiter", self.arbiter),
                ("mint", self.mint),
            )
            if key is not None
        ]
        if self.status is not None:
            keys.append((head["status"], bytes([WORK_ORDER_STATUSES.index(self.status)])))
        return keys

    def memcmp_filters(self) -> list[int | MemcmpOpts]:
        """The discriminator and as many of the wanted fields as the RPC limit allows; `matches` checks all."""
        filters: list[int | MemcmpOpts] = [MemcmpOpts(0, _b58(WorkOrder.discriminator))]
        filters += [MemcmpOpts(offset, _b58(value)) for offset, value in self._wanted()]
        return filters[:MAX_FILTERS]

    def matches(self, data: bytes) -> bool:
        """The exact check of every wanted field on the raw account."""
        return data[:DISCRIMINATOR_LEN] == WorkOrder.discriminator and all(
            data[offset : offset + len(value)] == value for offset, value in self._wanted()
        )
