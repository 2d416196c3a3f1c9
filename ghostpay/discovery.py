"""Finding accounts on chain: `getProgramAccounts` with `memcmp` filters on an account's
fixed-size head, then exact filtering and sorting of the decoded accounts.

The offsets come from the IDL (`head_offsets`), as the C header's do. The Agent head (README,
"The Agent account") allows memcmp on the owner (8), x402_enabled (40) and is_active (41);
ranges (a token's price, reputation), capabilities and accepted tokens are checked exactly after
decoding. The WorkOrder head allows memcmp on client, agent, provider_owner, arbiter, mint
and status.

    >>> f = AgentQuery(x402_enabled=True, token=Pubkey.default(), max_price=50_000)
    >>> [(m.offset, m.bytes) for m in f.memcmp_filters()[1:3]], f.memcmp_filters()[3]
    ([(40, '2'), (41, '2')], 1928)
    >>> HEAD["WorkOrder"]["mint"], HEAD["WorkOrder"]["status"]
    (136, 312)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Sequence, Union

import based58
from solana.rpc.types import MemcmpOpts
from solders.pubkey import Pubkey

from ghostpay import artifacts
from ghostpay.accounts import Agent, WorkOrder
from ghostpay.exceptions import InvalidArgument

DISCRIMINATOR_LEN = 8
MAX_FILTERS = 4  # getProgramAccounts refuses more
_PRIMITIVE_SIZES = {"bool": 1, "u8": 1, "i8": 1, "u16": 2, "i16": 2, "u32": 4, "i32": 4, "u64": 8, "i64": 8,
                    "u128": 16, "i128": 16, "pubkey": 32}


def _fixed_size(idl_type: object, types: dict[str, dict]) -> int | None:
    """The borsh size of an IDL type, or None when it varies (strings, vecs, options)."""
    if isinstance(idl_type, str):
        return _PRIMITIVE_SIZES.get(idl_type)
    if isinstance(idl_type, dict) and "array" in idl_type:
        inner, count = idl_type["array"]
        size = _fixed_size(inner, types)
        return None if size is None else size * count
    if isinstance(idl_type, dict) and "defined" in idl_type:
        defined = types[idl_type["defined"]["name"]]["type"]
        if defined["kind"] == "enum" and not any(v.get("fields") for v in defined["variants"]):
            return 1  # a borsh enum of unit variants is its variant index
    return None


def head_offsets(account: str) -> dict[str, int]:
    """Offsets of an account's fields up to its first variable-size one, from the IDL.

    >>> head_offsets("Agent")["is_active"]
    41
    """
    types = {t["name"]: t for t in artifacts.idl_dict()["types"]}
    offsets, offset = {}, DISCRIMINATOR_LEN
    for f in types[account]["type"]["fields"]:
        offsets[f["name"]] = offset
        size = _fixed_size(f["type"], types)
        if size is None:
            break
        offset += size
    return offsets


def _constant(name: str) -> int:
    return int(next(c["value"] for c in artifacts.idl_dict()["constants"] if c["name"] == name))


HEAD = {name: head_offsets(name) for name in ("Agent", "WorkOrder")}
AGENT_SPACE = _constant("AGENT_SPACE")
OWNER_OFFSET = HEAD["Agent"]["owner"]
X402_ENABLED_OFFSET = HEAD["Agent"]["x402_enabled"]
IS_ACTIVE_OFFSET = HEAD["Agent"]["is_active"]
WORK_ORDER_STATUSES: tuple[str, ...] = tuple(
    v["name"] for t in artifacts.idl_dict()["types"] if t["name"] == "WorkOrderStatus" for v in t["type"]["variants"])
"""Status names in variant order (the byte stored at HEAD["WorkOrder"]["status"])."""

SortKey = Literal["reputation", "price", "newest", "oldest", "calls", "name"]
def price_in(agent: Agent, mint: Pubkey | None) -> int | None:
    """The agent's price in `mint` (atomic units), its first token's when `mint` is None; None if not accepted."""
    for token in agent.x402_accepted_tokens:
        if mint is None or token.mint == mint:
            return token.price
    return None


SORTS: dict[str, tuple[Callable[[Agent], object], bool]] = {
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
        if self.token is not None:
            price = price_in(agent, self.token)
            if price is None or (self.max_price is not None and price > self.max_price):
                return False
        if self.min_reputation is not None and agent.reputation_score < self.min_reputation:
            return False
        return True

    def apply(self, agents: Iterable[tuple[Pubkey, Agent]]) -> list[tuple[Pubkey, Agent]]:
        """Exact filter, sort (ties by address, so results are stable) and limit."""
        kept = sorted((pair for pair in agents if self.matches(pair[1])), key=lambda p: bytes(p[0]))
        if self.sort == "price" and self.token is not None:
            token = self.token
            kept.sort(key=lambda p: price_in(p[1], token) or 0)
        elif self.sort is not None:
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


@dataclass(frozen=True)
class WorkOrderQuery:
    """Work orders by any of their parties, mint and status (a WorkOrderStatus name).

    >>> q = WorkOrderQuery(status="Submitted")
    >>> [(m.offset, m.bytes) for m in q.memcmp_filters()[1:]]
    [(312, '3')]
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
        keys = [(head[name], bytes(key)) for name, key in (("client", self.client), ("agent", self.agent),
                                                            ("provider_owner", self.provider_owner),
                                                            ("arbiter", self.arbiter), ("mint", self.mint))
                if key is not None]
        if self.status is not None:
            keys.append((head["status"], bytes([WORK_ORDER_STATUSES.index(self.status)])))
        return keys

    def memcmp_filters(self) -> list[Union[int, MemcmpOpts]]:
        """The discriminator and as many of the wanted fields as the RPC limit allows; `matches` checks all."""
        filters: list[Union[int, MemcmpOpts]] = [MemcmpOpts(0, _b58(WorkOrder.discriminator))]
        filters += [MemcmpOpts(offset, _b58(value)) for offset, value in self._wanted()]
        return filters[:MAX_FILTERS]

    def matches(self, data: bytes) -> bool:
        """The exact check of every wanted field on the raw account."""
        return data[:DISCRIMINATOR_LEN] == WorkOrder.discriminator and \
            all(data[offset:offset + len(value)] == value for offset, value in self._wanted())
