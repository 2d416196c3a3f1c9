"""The Bazaar queries from strangers: `GET /discovery/resources` and `GET /discovery/search` parameters, checked,
applied to a catalogue, and answered in the package's response shapes.

Every parameter the package's `with_bazaar` client sends is read (`type`, `payTo`, `scheme`, `network`,
`extensions`, `limit`, `offset`; search: `query`, `cursor`); unknown ones are ignored. A value that cannot
mean anything is a `MalformedInput` with a named reason (the facilitator answers 400
`{"error", "reason"}`): a `limit` or `offset` that is not a non-negative integer (`-1`, `1e3`), a `limit` of 0
(`invalid_limit`), an unknown `network` (`invalid_network`), a `payTo` that is not a key (`invalid_address`),
an over-long or empty `query` (`invalid_query`). A `limit` over `MAX_LIMIT` is clamped to it (the answer's
`pagination.limit` says so); an `offset` past the end answers an empty page.

Search adds GhostPay's terms, written in the query text itself so the package's client (whose search
parameters are fixed) can send them, or as query parameters of the same name:

    translate capability:translate max_price:<MINT>=50000 min_reputation:8000 sort:price

`capability:` an exact capability (case-insensitive); `max_price:MINT=AMOUNT` accepts MINT at no more
than AMOUNT atomic units (repeatable: any of them); `asset:MINT` accepts MINT; `min_reputation:` a score in
basis points (0-10,000); `sort:reputation` (highest first, the default) or `sort:price` (cheapest first,
in the one mint `asset:` or `max_price:` names). Every other word must appear in the agent's name,
agent_id, description, endpoint or capabilities.

    >>> q = search_query({"query": "fast translate capability:translate min_reputation:8000 sort:reputation"})
    >>> q.words, q.capability, q.min_reputation, q.sort
    (('fast', 'translate'), 'translate', 8000, 'reputation')
    >>> try:
    ...     list_query({"limit": "-1"})
    ... except MalformedInput as exc:
    ...     print(exc.reason)
    invalid_limit
    >>> list_query({"limit": "1000000"}).limit
    100
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from x402.extensions.bazaar import Pagination, SearchPagination

from ghostpay.exceptions import InvalidArgument
from ghostpay.x402.bazaar.listing import Listing
from ghostpay.x402.networks import network_by_id
from ghostpay.x402.wire import MalformedInput, check_address, check_amount

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_QUERY_CHARS = 256
MAX_VALUE_CHARS = 128  # type, scheme, extensions, cursor, each term's value
MAX_PRICE_TERMS = 8
MAX_REPUTATION = 10_000
SORTS = ("reputation", "price")

REASON_INVALID_LIMIT = "invalid_limit"
REASON_INVALID_OFFSET = "invalid_offset"
REASON_INVALID_CURSOR = "invalid_cursor"
REASON_INVALID_NETWORK = "invalid_network"
REASON_INVALID_QUERY = "invalid_query"
REASON_INVALID_PARAMETER = "invalid_parameter"
REASON_INVALID_REPUTATION = "invalid_min_reputation"
REASON_INVALID_SORT = "invalid_sort"

QUERY_REFUSALS = {
    REASON_INVALID_LIMIT: f"limit is not an integer from 1 (over {MAX_LIMIT} is clamped to {MAX_LIMIT})",
    REASON_INVALID_OFFSET: "offset is not a non-negative integer",
    REASON_INVALID_CURSOR: "cursor is not one this facilitator gave",
    REASON_INVALID_NETWORK: "network is not a known x402 network id",
    REASON_INVALID_QUERY: f"the search query is empty or over {MAX_QUERY_CHARS} characters",
    REASON_INVALID_PARAMETER: f"a filter value is over {MAX_VALUE_CHARS} characters",
    REASON_INVALID_REPUTATION: f"min_reputation is not an integer from 0 to {MAX_REPUTATION}",
    REASON_INVALID_SORT: "sort is not reputation or price, or price has no single mint to compare in",
}
_COUNT = re.compile(r"[0-9]{1,30}")  # ASCII digits only (int() also takes "+1", " 1", "1_0"); longer is nonsense
TERMS = ("capability", "max_price", "asset", "min_reputation", "sort")
_TERM = re.compile(rf"({'|'.join(TERMS)}):(\S*)")
_PARAM_TERMS = {
    "capability": "capability",
    "maxPrice": "max_price",
    "asset": "asset",
    "minReputation": "min_reputation",
}


def _count(params: Mapping[str, str], name: str, reason: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not _COUNT.fullmatch(raw):
        raise MalformedInput(reason, f"{name} must be a non-negative integer, not {raw[:40]!r}")
    return int(raw)


def _limit(params: Mapping[str, str]) -> int:
    limit = _count(params, "limit", REASON_INVALID_LIMIT, DEFAULT_LIMIT)
    if limit < 1:
        raise MalformedInput(REASON_INVALID_LIMIT, "limit must be at least 1")
    return min(limit, MAX_LIMIT)


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and len(value) > MAX_VALUE_CHARS:
        raise MalformedInput(REASON_INVALID_PARAMETER, f"{name} is over {MAX_VALUE_CHARS} characters")
    return value


@dataclass(frozen=True)
class Filters:
    """The filters both routes share (the package's list and search parameters)."""

    type: str | None = None
    pay_to: str | None = None
    scheme: str | None = None
    networks: tuple[str, ...] | None = None  # both spellings (CAIP-2, v1) of the wanted network
    extension: str | None = None

    def matches(self, listing: Listing) -> bool:
        resource = listing.resource
        accepts = resource.accepts or []
        return (
            (self.type is None or resource.type == self.type)
            and (self.pay_to is None or listing.pay_to == self.pay_to)
            and (self.scheme is None or any(a["scheme"] == self.scheme for a in accepts))
            and (self.networks is None or any(a["network"] in self.networks for a in accepts))
            and (self.extension is None or self.extension in (resource.extensions or {}))
        )


def filters(params: Mapping[str, str]) -> Filters:
    pay_to = params.get("payTo")
    if pay_to is not None:
        check_address("payTo", pay_to)
    network = _text(params, "network")
    networks = None
    if network is not None:
        try:
            networks = network_by_id(network).ids
        except InvalidArgument as exc:
            raise MalformedInput(REASON_INVALID_NETWORK, str(exc)) from None
    return Filters(_text(params, "type"), pay_to, _text(params, "scheme"), networks, _text(params, "extensions"))


@dataclass(frozen=True)
class ListQuery:
    filters: Filters
    limit: int
    offset: int


def list_query(params: Mapping[str, str]) -> ListQuery:
    return ListQuery(filters(params), _limit(params), _count(params, "offset", REASON_INVALID_OFFSET, 0))


def _by_reputation(listings: Sequence[Listing]) -> list[Listing]:
    """Highest reputation first; ties by agent address, so pages are stable."""
    return sorted(listings, key=lambda x: (-x.reputation, x.agent))


def list_resources(listings: Sequence[Listing], query: ListQuery) -> dict[str, Any]:
    """`GET /discovery/resources`: the package's `DiscoveryResourcesResponse`, in its wire form."""
    kept = _by_reputation([x for x in listings if query.filters.matches(x)])
    page = kept[query.offset : query.offset + query.limit]
    return {
        "x402Version": 2,
        "items": [x.document() for x in page],
        "pagination": asdict(Pagination(limit=query.limit, offset=query.offset, total=len(kept))),
    }


@dataclass(frozen=True)
class SearchQuery:
    filters: Filters = field(default_factory=Filters)
    words: tuple[str, ...] = ()
    capability: str | None = None
    max_prices: tuple[tuple[str, int], ...] = ()  # (mint, atomic amount): any of them
    asset: str | None = None
    min_reputation: int | None = None
    sort: str = "reputation"
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def price_mint(self) -> str | None:
        """The mint prices compare in: `asset`, else the one `max_price` mint."""
        mints = {mint for mint, _ in self.max_prices}
        return self.asset or (mints.pop() if len(mints) == 1 else None)

    def matches(self, listing: Listing) -> bool:
        if not self.filters.matches(listing) or not all(word in listing.text for word in self.words):
            return False
        if self.capability is not None and self.capability.casefold() not in listing.capabilities:
            return False
        if self.asset is not None and self.asset not in listing.prices:
            return False
        if self.max_prices and not any(listing.prices.get(m, cap + 1) <= cap for m, cap in self.max_prices):
            return False
        return self.min_reputation is None or listing.reputation >= self.min_reputation


def _terms(params: Mapping[str, str]) -> tuple[list[str], dict[str, list[str]]]:
    """The query's free words and its terms (from the text, then from parameters of the same name)."""
    text = params.get("query", "").strip()
    if not text or len(text) > MAX_QUERY_CHARS:
        raise MalformedInput(REASON_INVALID_QUERY, f"query must be 1 to {MAX_QUERY_CHARS} characters")
    terms: dict[str, list[str]] = {}
    words = []
    for word in text.split():
        term = _TERM.fullmatch(word)
        if term is None:
            words.append(word.casefold())
        else:
            terms.setdefault(term.group(1), []).append(term.group(2))
    for param, term_name in _PARAM_TERMS.items():
        if param in params:
            terms.setdefault(term_name, []).append(params[param])
    if "sort" in params:
        terms.setdefault("sort", []).append(params["sort"])
    for values in terms.values():
        for value in values:
            if len(value) > MAX_VALUE_CHARS:
                raise MalformedInput(REASON_INVALID_PARAMETER, f"a term's value is over {MAX_VALUE_CHARS} characters")
    return words, terms


def _max_prices(values: list[str]) -> tuple[tuple[str, int], ...]:
    if len(values) > MAX_PRICE_TERMS:
        raise MalformedInput(REASON_INVALID_PARAMETER, f"at most {MAX_PRICE_TERMS} max_price terms")
    prices = []
    for value in values:
        mint, _, amount = value.partition("=")
        check_address("max_price's mint", mint)
        prices.append((mint, check_amount("max_price's amount (atomic units)", amount)))
    return tuple(prices)


def search_query(params: Mapping[str, str]) -> SearchQuery:
    words, terms = _terms(params)
    last = {name: values[-1] for name, values in terms.items()}
    asset = last.get("asset")
    if asset is not None:
        check_address("asset", asset)
    reputation = last.get("min_reputation")
    if reputation is not None and (not _COUNT.fullmatch(reputation) or int(reputation) > MAX_REPUTATION):
        raise MalformedInput(REASON_INVALID_REPUTATION, f"min_reputation must be 0 to {MAX_REPUTATION} (basis points)")
    cursor = _text(params, "cursor")
    if cursor is not None and not _COUNT.fullmatch(cursor):
        raise MalformedInput(REASON_INVALID_CURSOR, f"cursor {cursor[:40]!r} is not one this facilitator gave")
    query = SearchQuery(
        filters(params),
        tuple(words),
        last.get("capability"),
        _max_prices(terms.get("max_price", [])),
        asset,
        None if reputation is None else int(reputation),
        last.get("sort", "reputation"),
        _limit(params),
        0 if cursor is None else int(cursor),
    )
    if query.sort not in SORTS:
        raise MalformedInput(REASON_INVALID_SORT, f"sort is one of {', '.join(SORTS)}, not {query.sort[:40]!r}")
    if query.sort == "price" and query.price_mint() is None:
        raise MalformedInput(
            REASON_INVALID_SORT, "sort:price needs one mint (asset:MINT or max_price:MINT=AMOUNT): each has its price"
        )
    return query


def search_resources(listings: Sequence[Listing], query: SearchQuery) -> dict[str, Any]:
    """`GET /discovery/search`: the package's `SearchDiscoveryResourcesResponse`, in its wire form; `cursor` is
    where the next page starts (None on the last page), `partialResults` whether there is one."""
    kept = _by_reputation([x for x in listings if query.matches(x)])
    mint = query.price_mint()
    if query.sort == "price" and mint is not None:
        kept.sort(key=lambda x: x.prices[mint])  # `asset` or `max_price` kept only listings taking it
    end = query.offset + query.limit
    more = end < len(kept)
    return {
        "x402Version": 2,
        "resources": [x.document() for x in kept[query.offset : end]],
        "partialResults": more,
        "pagination": asdict(SearchPagination(limit=query.limit, cursor=str(end) if more else None)),
    }
