"""Indexed agent search pages by keyset: pages are stable, nothing repeats or goes missing across pages when
sort keys tie (the score, the price, and the trust score, with and without the evidence filters), a cursor from
an earlier page still works after inserts, totals are counted up to a cap, and the score order walks an index.
Over SQLite (both read paths: `queries` and the CLI's `sqlite_read`) and PostgreSQL; the agents go in through
the indexer's own write path (bench.search_scale.build_index)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import text
from sqlmodel import Session

from bench.search_scale import build_index, realistic_agent
from ghostpay.accounts import Agent
from ghostpay.indexer import paging, queries, sqlite_read
from ghostpay.indexer.paging import Page
from ghostpay.indexer.sqlite_read import open_readonly, sqlite_path
from tests.indexer.conftest import open_db

MINTS = [Keypair().pubkey() for _ in range(3)]
SEARCHES: list[dict[str, Any]] = [
    {"sort": "score"},
    {"sort": "price"},
    {"sort": "price", "token": str(MINTS[0])},
    {"sort": "score", "capability": "translate", "x402_enabled": True},
    {"sort": "trust"},
    {"sort": "trust", "min_payers": 0, "capability": "translate"},  # the evidence filter's clause with the order
]
TRUST_SHARES = (0.0, 0.1, 1 / 3)  # shares as trust.recompute writes them: any float, not only round ones


def tied_trust(url: str) -> None:
    """Three trust shares over the agents, as `trust.recompute` writes them, and every fifth agent without a row
    (indexed since the last computation: it ranks as 0, tied with the zero rows)."""
    rng = random.Random(3)
    with open_db(url).begin() as c:
        agents = [r[0] for r in c.exec_driver_sql("SELECT address FROM agents ORDER BY address")]
        c.exec_driver_sql("DELETE FROM agent_trust")
        rows = []
        for i, agent in enumerate(agents):
            share = rng.choice(TRUST_SHARES)
            if i % 5:
                rows.append({"agent": agent, "trust": share, "score": round(share * 30_000)})
        c.execute(
            text("INSERT INTO agent_trust (agent, trust, score, computed_at) VALUES (:agent, :trust, :score, 0)"), rows
        )


def tied_agents(count: int, seed: int) -> list[tuple[Pubkey, Agent]]:
    """Agents whose scores and prices take three values each: most sort keys tie, the address decides."""
    rng = random.Random(seed)
    agents = []
    for index in range(count):
        agent = realistic_agent(rng, index, MINTS)
        price = rng.choice((1_000, 2_000, 3_000))
        tokens = [replace(t, price=price) for t in agent.x402_accepted_tokens]
        agent = replace(agent, reputation_score=rng.choice((0, 5_000, 10_000)), x402_accepted_tokens=tokens)
        agents.append((Keypair().pubkey(), agent))
    return agents


Search = Callable[..., Page[Any]]


def readers(url: str) -> Iterator[Search]:
    """`queries.search_agents`, and over SQLite the CLI's `sqlite_read.search_agents` too."""
    with Session(open_db(url)) as session:
        yield lambda **filters: queries.search_agents(session, **filters)
    path = sqlite_path(url)
    if path is not None:
        with open_readonly(path) as index:
            yield lambda **filters: sqlite_read.search_agents(index, **filters)


def walk(search: Search, limit: int, after: Any = None, **filters: Any) -> list[str]:
    """Every address, page after page from `after`."""
    addresses: list[str] = []
    while True:
        page = search(limit=limit, after=after, **filters)
        addresses += [a.address for a in page.items]
        if page.next_after is None:
            return addresses
        after = page.next_after


@pytest.fixture
def index(db_url: str) -> str:
    build_index(db_url, tied_agents(90, seed=1))
    tied_trust(db_url)
    return db_url


def test_pages_with_tied_keys_neither_repeat_nor_miss_an_agent(index: str) -> None:
    for search in readers(index):
        for filters in SEARCHES:
            whole = [a.address for a in search(limit=1000, **filters).items]
            assert len(whole) > 20, filters
            for limit in (1, 7, 20):
                assert walk(search, limit, **filters) == whole, (filters, limit)
            cursor = search(limit=7, **filters).next_after
            pages = [search(limit=7, after=cursor, **filters) for _ in range(2)]
            assert [[a.address for a in p.items] for p in pages] == [whole[7:14]] * 2  # a page is stable
            assert pages[0].next_after == pages[1].next_after


def test_the_trust_order_is_the_share_then_the_address(index: str) -> None:
    """Highest trust share first, agents without a trust row as 0, ties by address; on both read paths."""
    with open_db(index).begin() as c:
        shares = dict(c.exec_driver_sql("SELECT agent, trust FROM agent_trust").all())
        agents = [r[0] for r in c.exec_driver_sql("SELECT address FROM agents WHERE is_active AND NOT closed")]
    assert len(set(shares.values())) == len(TRUST_SHARES) and len(agents) > len(shares)  # ties, and missing rows
    expected = sorted(agents, key=lambda a: (-shares.get(a, 0.0), a))
    for search in readers(index):
        assert walk(search, 7, sort="trust") == expected


def test_a_cursor_from_an_earlier_page_still_works_after_inserts(index: str) -> None:
    inserted_before_cursors = 0
    for filters in SEARCHES:
        for search in readers(index):
            first = search(limit=10, **filters)
            before = [a.address for a in search(limit=1000, **filters).items]
            build_index(index, tied_agents(30, seed=hash(str(filters)) & 0xFFFF))  # ties with every key
            break
        for search in readers(index):
            rest = walk(search, 9, first.next_after, **filters)
            now = [a.address for a in search(limit=1000, **filters).items]
            seen = [a.address for a in first.items] + rest
            assert len(seen) == len(set(seen)), filters  # nothing twice
            assert set(before) <= set(seen), filters  # no agent that was there is missed
            cut = now.index(first.items[-1].address)
            assert rest == now[cut + 1 :], filters  # exactly what now sorts after the cursor, new agents included
            inserted_before_cursors += len(set(now[: cut + 1]) - set(before))  # they shift nothing
    assert inserted_before_cursors > 0


def test_the_total_is_counted_up_to_the_cap(index: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (paging, queries, sqlite_read):
        monkeypatch.setattr(module, "TOTAL_CAP", 25)
    for search in readers(index):
        many = search(limit=5)
        assert (many.total, many.total_capped) == (25, True)
        few = search(limit=5, min_reputation=10_000, capability="translate")
        assert 0 < few.total < 25 and not few.total_capped
        assert few.total == len(search(limit=1000, min_reputation=10_000, capability="translate").items)


PLANNED = {  # each sort order, alone and with the capability and token-price filters of a marketplace search
    "score": {"sort": "score", "x402_enabled": True},
    "score, capability, token <= price": {"sort": "score", "capability": "translate", "token": str(MINTS[0])},
    "price": {"sort": "price"},
    "price in a token, capability, <= price": {
        "sort": "price",
        "capability": "translate",
        "token": str(MINTS[0]),
        "max_price": 500_000,
    },
}
ORDER_INDEX = {"score": "ix_agents_score", "price": "ix_agent_tokens_position_price"}


def test_a_page_walks_its_sort_index_and_stops(tmp_path: Any) -> None:
    """The page query `sqlite_read` runs (the CLI's) walks the index of its order and checks each agent's
    capability and token as it goes: no sort of every match (TEMP B-TREE), no list of every agent with the
    capability built before the first row (LIST SUBQUERY), no full SCAN of agents; at 100k agents the capability
    + token <= price search's page went from 130 ms to under 1 ms (docs/performance.md)."""
    path = tmp_path / "index.db"
    build_index(f"sqlite:///{path}", tied_agents(5, seed=2))
    counts = {}
    with open_readonly(str(path)) as index:
        for name, filters in PLANNED.items():
            statements: list[str] = []
            index.set_trace_callback(statements.append)
            sqlite_read.search_agents(index, limit=20, **filters)
            index.set_trace_callback(None)
            page = next(s for s in statements if "ORDER BY" in s and "LIMIT 21" in s)
            plan = " | ".join(row["detail"] for row in index.execute(f"EXPLAIN QUERY PLAN {page}"))
            first = plan.split(" | ")[0]
            index_name = "ix_agent_tokens_mint_price" if "token" in filters and filters["sort"] == "price" else None
            assert (index_name or ORDER_INDEX[filters["sort"]]) in first, (name, plan)
            assert "TEMP B-TREE" not in plan and "LIST SUBQUERY" not in plan, (name, plan)
            assert "SCAN agents" not in plan.replace("SCAN agents USING INDEX ix_agents_score", ""), (name, plan)
            count = next(s for s in statements if "COUNT(*)" in s)
            counts[name] = " | ".join(row["detail"] for row in index.execute(f"EXPLAIN QUERY PLAN {count}"))
    for name in ("score", "price in a token, capability, <= price"):  # the count reads no agent's row (v8)
        assert "agents USING COVERING INDEX ix_agents_filters" in counts[name], (name, counts[name])
