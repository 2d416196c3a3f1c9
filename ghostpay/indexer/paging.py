"""Pages of query results and query errors, shared by `queries` (sqlmodel) and `sqlite_read` (sqlite3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
MAX_PAGE = 1000
TOTAL_CAP = 10_000
"""A listing counts its matches up to here (then says "10,000+"): an exact COUNT(*) walks every match on every
page, which at 100k agents cost more than the page itself."""


class QueryError(ValueError):
    """A query argument out of range (one line, for the user)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int  # rows matching, over all pages, at most TOTAL_CAP
    offset: int
    limit: int
    total_capped: bool = False  # more than TOTAL_CAP rows match: `total` is a lower bound
    next_after: tuple[Any, ...] | None = None  # keyset listings: the `after` of the next page, None on the last


def capped_total(count: int) -> tuple[int, bool]:
    """`count` of a `LIMIT TOTAL_CAP + 1` count as (total, capped)."""
    return min(count, TOTAL_CAP), count > TOTAL_CAP


def check_page(limit: int, offset: int = 0, after: Sequence[Any] | None = None, arity: int = 2) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError(f"limit must be 1 to {MAX_PAGE}")
    if offset < 0:
        raise QueryError("offset must not be negative")
    if after is not None and len(after) != arity:
        raise QueryError(f"after is the sort key of the previous page's last row: {arity} values")
