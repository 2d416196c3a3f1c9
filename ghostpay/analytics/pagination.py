"""Keyset (cursor) pagination: a page ends with an opaque cursor naming its last row's sort key, and the
next page starts strictly after it, so rows inserted meanwhile neither repeat nor shift a page."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_


class CursorError(ValueError):
    """A cursor this API did not hand out (or one for another sort order)."""


@dataclass(frozen=True)
class SortKey:
    """Columns in order, each ascending or descending; the last one must be unique (the tiebreak)."""

    columns: Sequence[Any]
    descending: Sequence[bool]

    def order_by(self) -> list[Any]:
        return [c.desc() if d else c.asc() for c, d in zip(self.columns, self.descending, strict=True)]

    def after(self, values: Sequence[Any]) -> Any:
        """WHERE clause: rows that come after a row with these key values."""
        clauses = []
        for i, (column, desc) in enumerate(zip(self.columns, self.descending, strict=True)):
            equal = [c == v for c, v in zip(self.columns[:i], values[:i], strict=True)]
            clauses.append(and_(*equal, column < values[i] if desc else column > values[i]))
        return or_(*clauses)


def encode(kind: str, values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps([kind, *values]).encode()).decode().rstrip("=")


def decode(kind: str, cursor: str, arity: int) -> list[Any]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise CursorError("cursor is not one this API returned (pass next_cursor unchanged)") from None
    if not isinstance(raw, list) or len(raw) != arity + 1 or raw[0] != kind:
        raise CursorError("cursor is not one this API returned for this listing and sort")
    return raw[1:]


def fetch_page(
    session: Any, statement: Any, key: SortKey, after: Sequence[Any] | None, limit: int
) -> tuple[list[Any], bool]:
    """Up to `limit` rows of `statement` after the cursor's row, and whether more follow."""
    if after is not None:
        statement = statement.where(key.after(after))
    rows = list(session.exec(statement.order_by(*key.order_by()).limit(limit + 1)).all())
    return rows[:limit], len(rows) > limit
