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

import binascii
import heapq
import json
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

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


class AgentListing(NamedTuple):
    """What a search filters and sorts on, read from an Agent account without decoding the rest (the
    earnings table, description, URIs): `read_listing` builds one in a few µs and a few hundred bytes,
    where the full decode of every agent made a chain search over 30k agents peak at 517 MiB.
    Pubkeys are kept as their 32 bytes (no Pubkey object per agent and token)."""

    owner: bytes
    x402_enabled: bool
    is_active: bool
    reputation_score: int
    x402_total_calls: int
    created_at: int
    tokens: tuple[tuple[bytes, int], ...]  # (mint, price in its atomic units), in the account's order
    name: str
    capabilities: tuple[str, ...]

    @classmethod
    def of(cls, agent: Agent) -> AgentListing:
        """The listing of a fully decoded agent (what `read_listing` reads from its bytes)."""
        return cls(
            bytes(agent.owner),
            agent.x402_enabled,
            agent.is_active,
            agent.reputation_score,
            agent.x402_total_calls,
            agent.created_at,
            tuple((bytes(t.mint), t.price) for t in agent.x402_accepted_tokens),
            agent.name,
            tuple(agent.capabilities),
        )


_AGENT_HEAD = head_layout("Agent")
_LISTED_HEAD = ("owner", "x402_enabled", "is_active", "reputation_score", "x402_total_calls", "created_at")
_HEAD_CODES = {"owner": ("32s", 32), "x402_enabled": ("?", 1), "is_active": ("?", 1), "reputation_score": ("I", 4)}
_HEAD_CODES |= {"x402_total_calls": ("Q", 8), "created_at": ("q", 8)}


def _listed_head() -> struct.Struct:
    """One struct for the head fields a listing needs, each at its IDL offset, the others padding."""
    codes, at = ["<"], DISCRIMINATOR_LEN
    for name in _LISTED_HEAD:
        code, size = _HEAD_CODES[name]
        codes.append(f"{_AGENT_HEAD.offsets[name] - at}x{code}")
        at = _AGENT_HEAD.offsets[name] + size
    return struct.Struct("".join(codes))


_HEAD = _listed_head()  # unpack_from(data, DISCRIMINATOR_LEN)
_TAIL = _AGENT_HEAD.size  # x402_accepted_tokens: the first variable-size field
_U32 = struct.Struct("<I")
_TOKEN = struct.Struct("<32sQ")  # TokenPrice: mint, price
STRINGS_BEFORE_NAME = 1  # agent_id
STRINGS_BEFORE_CAPABILITIES = 3  # description, metadata_uri, x402_service_endpoint


def read_head(data: bytes) -> AgentListing:
    """An Agent account's listing with only its fixed head read (tokens, name and capabilities empty): all a
    query that `reads_head_only` looks at. DecodeError if the bytes are no Agent head; the rest is not checked.

    >>> read_head(bytes(DISCRIMINATOR_LEN) + bytes(2800))
    Traceback (most recent call last):
    ghostpay.borsh_layout.DecodeError: not an Agent account
    """
    if data[:DISCRIMINATOR_LEN] != Agent.discriminator:
        raise DecodeError("not an Agent account")
    if len(data) < _TAIL:
        raise DecodeError("Agent: the fixed head runs past the end")
    owner, x402_enabled, is_active, reputation_score, x402_total_calls, created_at = _HEAD.unpack_from(
        data, DISCRIMINATOR_LEN
    )
    return AgentListing(owner, x402_enabled, is_active, reputation_score, x402_total_calls, created_at, (), "", ())


def read_tokens(data: bytes) -> tuple[tuple[bytes, int], ...]:
    """An Agent account's accepted tokens (mint, price), which follow its fixed head; DecodeError where
    `read_listing` refuses them. (A search with a token filter reads them first: most agents fail it before
    their strings are read.)"""
    try:
        (count,) = _U32.unpack_from(data, _TAIL)
    except struct.error as exc:
        raise DecodeError(f"Agent: {exc}") from None
    end = _TAIL + 4 + count * _TOKEN.size
    if end > len(data):
        raise DecodeError("accepted tokens run past the end")
    return tuple(_TOKEN.iter_unpack(data[_TAIL + 4 : end]))


def read_listing(data: bytes) -> AgentListing:
    """An Agent account's listing fields (`AgentListing`), bounds-checked; DecodeError if the bytes are no
    Agent. The strings a listing does not show are skipped over, not decoded. (Inlined: it runs once per
    agent of a chain search, 100k times.)"""
    if data[:DISCRIMINATOR_LEN] != Agent.discriminator:
        raise DecodeError("not an Agent account")
    size, u32 = len(data), _U32.unpack_from
    try:
        owner, x402_enabled, is_active, reputation_score, x402_total_calls, created_at = _HEAD.unpack_from(
            data, DISCRIMINATOR_LEN
        )
        (count,) = u32(data, _TAIL)
        offset = _TAIL + 4
        end = offset + count * _TOKEN.size
        if end > size:
            raise DecodeError("accepted tokens run past the end")
        tokens = tuple(_TOKEN.iter_unpack(data[offset:end]))
        offset = end
        for _ in range(STRINGS_BEFORE_NAME):
            offset += 4 + u32(data, offset)[0]
        end = offset + 4 + u32(data, offset)[0]
        if end > size:
            raise DecodeError("name runs past the end")
        name = data[offset + 4 : end].decode("utf-8")
        offset = end
        for _ in range(STRINGS_BEFORE_CAPABILITIES):
            offset += 4 + u32(data, offset)[0]  # past the end: the next read raises struct.error
        (count,) = u32(data, offset)
        offset += 4
        capabilities = []
        for _ in range(count):
            end = offset + 4 + u32(data, offset)[0]
            if end > size:
                raise DecodeError("capability runs past the end")
            capabilities.append(data[offset + 4 : end].decode("utf-8"))
            offset = end
    except (struct.error, UnicodeDecodeError) as exc:
        raise DecodeError(f"Agent: {exc}") from None
    return AgentListing(
        owner,
        x402_enabled,
        is_active,
        reputation_score,
        x402_total_calls,
        created_at,
        tokens,
        name,
        tuple(capabilities),
    )


def listed_price(listing: AgentListing, mint: bytes | None) -> int | None:
    """The price in `mint` (its bytes; None: the first token's), None if not accepted."""
    for token_mint, price in listing.tokens:
        if mint is None or token_mint == mint:
            return price
    return None


# Each sort as (key of a listing, descending); ties go by address bytes, ascending, whatever the direction.
SORTS: dict[str, tuple[Callable[[AgentListing], int | str], bool]] = {
    "reputation": (lambda a: a.reputation_score, True),
    "price": (lambda a: listed_price(a, None) or 0, False),
    "newest": (lambda a: a.created_at, True),
    "oldest": (lambda a: a.created_at, False),
    "calls": (lambda a: a.x402_total_calls, True),
    "name": (lambda a: a.name.casefold(), False),
}


def _b58(data: bytes) -> str:
    return based58.b58encode(data).decode()


ACCOUNTS_ENCODING = "base64+zstd"
"""How a search asks getProgramAccounts for the Agent accounts: an account is mostly zero padding (its
AGENT_SPACE is sized for the longest strings), which zstd removes before base64 inflates it by a third."""


def filters_json(filters: Sequence[int | MemcmpOpts]) -> list[dict[str, Any]]:
    """`memcmp_filters()` as getProgramAccounts' JSON `filters`."""
    return [
        {"dataSize": f} if isinstance(f, int) else {"memcmp": {"offset": f.offset, "bytes": f.bytes}} for f in filters
    ]


class JsonArrayStream:
    """The items of the array at `"<key>":[` in a JSON answer that arrives in text chunks, each item parsed
    as soon as it is complete: a getProgramAccounts answer is never held whole (at 100k agents it is ~90 MB of
    text, and several times that as Python objects). `text` keeps an answer without the array (an error)."""

    def __init__(self, key: str) -> None:
        self._start = re.compile(rf'"{re.escape(key)}"\s*:\s*\[')
        self._decoder = json.JSONDecoder()
        self._buffer = ""
        self._in_array = False
        self.done = False
        self.text = ""

    def feed(self, chunk: str) -> list[Any]:
        buffer = self._buffer + chunk
        items: list[Any] = []
        position = 0
        if not self._in_array:
            found = self._start.search(buffer)
            if found is None:
                self._buffer = buffer
                return items
            self._in_array, position = True, found.end()
        while not self.done:
            while position < len(buffer) and buffer[position] in ", \t\r\n":
                position += 1
            if position == len(buffer):
                break
            if buffer[position] == "]":
                self.done = True
                break
            try:
                item, position = self._decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:  # the item is not complete yet
                break
            items.append(item)
        self._buffer = buffer[position:]
        return items

    def close(self) -> None:
        """At the end of the answer: keep its text if no array was found (an error to read)."""
        if not self._in_array:
            self.text = self._buffer


def encoded_accounts(value: Iterable[dict[str, Any]]) -> Iterator[tuple[bytes, bytes]]:
    """(address, data) bytes of getProgramAccounts' JSON items in `ACCOUNTS_ENCODING`, one at a time (an
    account's data exists only while the caller looks at it)."""
    import zstandard  # only a chain search needs it

    decompressor = zstandard.ZstdDecompressor()  # one for every account
    decompress, content_size = decompressor.decompress, zstandard.frame_content_size
    for keyed in value:
        text, encoding = keyed["account"]["data"]
        data = binascii.a2b_base64(text)
        if encoding == ACCOUNTS_ENCODING:  # a frame may leave its size out (a streaming encoder's does)
            data = decompress(data) if content_size(data) >= 0 else decompressor.decompressobj().decompress(data)
        yield based58.b58decode(keyed["pubkey"].encode()), data


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

    def matches(self, agent: Agent | AgentListing) -> bool:
        """The exact check of every filter (including those memcmp already applied)."""
        listing = agent if isinstance(agent, AgentListing) else AgentListing.of(agent)
        if self.owner is not None and listing.owner != bytes(self.owner):
            return False
        wants_x402 = (
            self.x402_enabled
            if self.x402_enabled is not None
            else (True if self.token is not None or self.max_price is not None else None)
        )
        if wants_x402 is not None and listing.x402_enabled != wants_x402:
            return False
        if self.active is not None and listing.is_active != self.active:
            return False
        if self.capability is not None:
            wanted = self.capability.casefold()
            if all(c.casefold() != wanted for c in listing.capabilities):
                return False
        if not self.accepts(listing.tokens):
            return False
        return self.min_reputation is None or listing.reputation_score >= self.min_reputation

    def accepts(self, tokens: tuple[tuple[bytes, int], ...]) -> bool:
        """The token and price filters on an agent's accepted tokens (mint bytes, price)."""
        if self.token is None:
            return True
        mint = bytes(self.token)
        for token_mint, price in tokens:
            if token_mint == mint:
                return self.max_price is None or price <= self.max_price
        return False

    def reads_head_only(self) -> bool:
        """Whether every filter and the sort read only the fixed head (`read_head`): no capability, token,
        price or name."""
        return self.capability is None and self.token is None and self.sort not in ("price", "name")

    def sort_key(self) -> Callable[[AgentListing, bytes], tuple[Any, ...]]:
        """The order of results as one ascending key of (listing, address bytes): the sort, then the address."""
        if self.sort is None:
            return lambda _, address: (address,)
        if self.sort == "price" and self.token is not None:
            mint = bytes(self.token)
            return lambda listing, address: (listed_price(listing, mint) or 0, address)
        key, descending = SORTS[self.sort]
        if descending:  # every descending key is an int
            return lambda listing, address: (-key(listing), address)  # type: ignore[operator]
        return lambda listing, address: (key(listing), address)

    def top(self, accounts: Iterable[tuple[bytes, bytes]]) -> tuple[list[tuple[bytes, bytes]], int]:
        """The first `limit` (all without one) matching accounts in the query's order, and how many matched;
        `accounts` are (address, data) as bytes (see `Ranking`)."""
        ranking = Ranking(self)
        for address, data in accounts:
            ranking.offer(address, data)
        return ranking.kept(), ranking.matched

    def apply(self, agents: Iterable[tuple[Pubkey, Agent]]) -> list[tuple[Pubkey, Agent]]:
        """Exact filter, sort (ties by address, so results are stable) and limit."""
        key = self.sort_key()
        listed = ((AgentListing.of(agent), address, agent) for address, agent in agents)
        kept = sorted(
            (
                (key(listing, bytes(address)), address, agent)
                for listing, address, agent in listed
                if self.matches(listing)
            ),
            key=lambda k: k[0],
        )
        return [(address, agent) for _, address, agent in kept[: self.limit]]


class Ranking:
    """The accounts a query keeps, offered one at a time: each is read as a lean `AgentListing` (its head only
    when that is all the query reads) and only the best `limit` stay in memory (pruned in batches, with
    `SPARES` more), whatever the number of agents.

    Read by its head, an account's tail is checked only if it is among the best, when `kept` reads it in full
    (`read_listing`): one that does not decode is not listed, and a spare takes its place; `matched` counts it
    (knowing would cost reading every account in full, for accounts the program never writes)."""

    PRUNE_SLACK = 1024  # candidates held beyond `limit` before pruning back to it
    SPARES = 16  # candidates kept past `limit` at a prune, for those `kept` finds corrupt

    def __init__(self, query: AgentQuery) -> None:
        self.query = query
        self.key = query.sort_key()
        self.matched = 0
        self._read = read_head if query.reads_head_only() else read_listing
        self._held: list[tuple[tuple[Any, ...], bytes, bytes]] = []

    def offer(self, address: bytes, data: bytes) -> None:
        try:
            if self.query.token is not None and not self.query.accepts(read_tokens(data)):
                return
            listing = self._read(data)
        except DecodeError:  # a corrupt account is not an agent
            return
        if not self.query.matches(listing):
            return
        self.matched += 1
        self._held.append((self.key(listing, address), address, data))
        limit = self.query.limit
        if limit is not None and len(self._held) > limit + self.SPARES + self.PRUNE_SLACK:
            self._held = heapq.nsmallest(limit + self.SPARES, self._held, key=lambda c: c[0])

    def kept(self) -> list[tuple[bytes, bytes]]:
        best: list[tuple[bytes, bytes]] = []
        for _, address, data in sorted(self._held, key=lambda c: c[0]):
            if self.query.limit is not None and len(best) == self.query.limit:
                break
            if self._read is read_head:
                try:
                    read_listing(data)
                except DecodeError:
                    continue
            best.append((address, data))
        return best


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
