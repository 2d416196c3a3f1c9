"""Pages of query results and query errors, shared by `queries` (sqlmodel) and `sqlite_read` (sqlite3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_PAGE = 1000


class QueryError(ValueError):
    """A query argument out of range (one line, for the user)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int  # rows matching, over all pages
    offset: int
    limit: int
