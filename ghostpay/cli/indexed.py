"""Reading the indexer's database (ghostpay.indexer) for `agent search` and `agent payment-history`."""

from __future__ import annotations

from typing import Any

from ghostpay.cli.context import CliError, State


def _queries(st: State) -> Any:
    try:
        from ghostpay.indexer import queries  # type: ignore[attr-defined]
    except ImportError:
        raise CliError(f"--db {st.settings.db}: this ghostpay has no indexer yet; drop --db (or GHOST_DB) "
                       "to read from the chain") from None
    return queries


def search_indexed(st: State, filters: dict[str, Any]) -> list[Any]:
    raise CliError(f"--db: indexer search is not wired yet ({_queries(st).__name__})")


def payment_history_indexed(st: State, agent: Any, limit: int) -> list[dict[str, Any]]:
    raise CliError(f"--db: indexer payment history is not wired yet ({_queries(st).__name__})")
