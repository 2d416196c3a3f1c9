"""Reading the indexer's database for `agent search` and `agent payment-history` (a SQLite index with plain
sqlite3, `ghostpay.indexer.sqlite_read`, so the command does not import SQLAlchemy; PostgreSQL through
`ghostpay.indexer.queries`), and handing the global options to `ghost indexer` (its --url, --db and --json
follow -u, --db and --output)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ghostpay.cli.context import CliError, State

DB_PAGE = 1000  # the largest page the queries return


def db_url(db: str) -> str:
    """A database URL from `--db`: a URL as is, a plain path as `sqlite:///<absolute path>`."""
    if "://" in db:
        return db
    return f"sqlite:///{os.path.abspath(os.path.expanduser(db))}"


def index_db_url(st: State) -> str:
    """`--db` as a URL, else the default index `ghost indexer run` writes (indexer.db in the data folder)."""
    if st.settings.db:
        return db_url(st.settings.db)
    from ghostpay.paths import data_dir

    data_dir().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir() / 'indexer.db'}"


def open_index(st: State, *, read_only: bool = False) -> Any:
    """An engine on the index (schema migrated), or a one-line CliError (see `open_database`)."""
    return open_database(index_db_url(st), read_only=read_only)


def indexer_defaults(st: State) -> dict[str, Any]:
    """`ctx.default_map` entries so `ghost -u URL --db DB --output json indexer status` works as expected."""
    common: dict[str, Any] = {"url": st.settings.url}
    if st.settings.db:
        common["db"] = db_url(st.settings.db)
    json_mode = {"json_output": True} if st.json else {}
    return {
        "indexer": {
            "run": dict(common),
            "status": {**common, **json_mode},
            "verify": {**common, **json_mode},
            "serve": {**common, **json_mode},
            "trust": {**common, **json_mode},
        }
    }


@dataclass
class IndexedAgent:
    """An indexed agent with the attributes of `ghostpay.client.AgentInfo` that the CLI renders."""

    address: str
    owner: str
    agent_id: str
    name: str
    agent_type: int
    description: str
    metadata_uri: str
    is_active: bool
    x402_enabled: bool
    prices_atomic: dict[str, int]  # accepted mint -> atomic units per call, the default mint first
    payment_address: str
    endpoint: str
    reputation_score: int
    total_calls: int
    last_payment_at: int
    created_at: int
    updated_at: int
    registration: int
    capabilities: list[str] = field(default_factory=list)
    earnings: list[IndexedEarnings] = field(default_factory=list)
    evidence: Any = None  # ghostpay.indexer.evidence.Evidence (None: an index without the payment graph)

    @property
    def accepted_tokens(self) -> list[str]:
        return list(self.prices_atomic)


@dataclass(frozen=True)
class IndexedEarnings:
    """What an indexed agent earned in one mint this registration (the attributes of `TokenEarnings` the CLI
    renders)."""

    mint: str
    x402_payments_atomic: int
    escrow_earnings_atomic: int


@dataclass(frozen=True)
class IndexedMint:
    address: str
    decimals: int


def open_database(db: str, *, read_only: bool = False) -> Any:
    """An engine on the index at `db` (a path or URL), migrated; for `read_only` commands a SQLite file
    that does not exist is an error (not a new empty index), and so is a file that is no database."""
    from sqlalchemy.exc import SQLAlchemyError

    from ghostpay.indexer.models import connect

    url = db_url(db)
    if read_only and url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path not in ("", ":memory:") and not os.path.exists(path):
            raise CliError(
                f"no indexer database at {path}; build one with 'ghost indexer run --db {path}', or check --db"
            )
    try:
        return connect(url)
    except (SQLAlchemyError, RuntimeError, ModuleNotFoundError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CliError(f"cannot open the indexer database {url}: {detail}; check --db") from None


def _session(st: State) -> Iterator[Any]:
    from sqlmodel import Session

    assert st.settings.db is not None
    with Session(open_index(st, read_only=True)) as session:
        yield session


@contextmanager
def _sqlite_index(st: State, path: str) -> Iterator[Any]:
    from ghostpay.indexer.sqlite_read import IndexUnavailable, open_readonly

    if not os.path.exists(path):  # a read never creates an empty index
        raise CliError(f"no indexer database at {path}; build one with 'ghost indexer run --db {path}', or check --db")
    try:
        with open_readonly(path) as index:
            yield index
    except IndexUnavailable as exc:
        raise CliError(f"cannot open the indexer database {db_url(st.settings.db or '')}: {exc}; check --db") from None


def _indexed_agent(
    a: Any,
    capabilities: list[str],
    prices: dict[str, int],
    earnings: dict[str, tuple[int, int]],
    evidence: Any = None,
) -> IndexedAgent:
    return IndexedAgent(
        a.address,
        a.owner,
        a.agent_id,
        a.name,
        a.agent_type,
        a.description,
        a.metadata_uri,
        a.is_active,
        a.x402_enabled,
        prices,
        a.payment_address or a.owner,
        a.endpoint,
        a.reputation_score,
        a.x402_total_calls,
        a.last_payment_at,
        a.created_at,
        a.updated_at,
        a.registration,
        capabilities,
        [IndexedEarnings(mint, *amounts) for mint, amounts in earnings.items()],
        evidence,
    )


def _search(st: State, **filters: Any) -> tuple[list[IndexedAgent], int, bool]:
    """One page of agents, how many match (counted up to `paging.TOTAL_CAP`) and whether there are more than
    that: plain sqlite3 for a SQLite index (no SQLAlchemy import), else `queries`."""
    from ghostpay.indexer.paging import QueryError
    from ghostpay.indexer.sqlite_read import sqlite_path

    path = sqlite_path(db_url(st.settings.db or ""))
    try:
        if path is not None:
            from ghostpay.indexer import sqlite_read

            with _sqlite_index(st, path) as index:
                page = sqlite_read.search_agents(index, **filters)
            agents = [_indexed_agent(a, a.capabilities, a.prices, a.earnings, a.evidence) for a in page.items]
            return agents, page.total, page.total_capped
        from ghostpay.indexer import evidence as ev, queries

        for session in _session(st):
            run = session_run(session)
            trusted = ev.trusted_mints(run)
            found = queries.search_agents(session, trusted=list(trusted), **filters)
            proofs = ev.evidence(run, [a.address for a in found.items], trusted)
            return (
                [
                    _indexed_agent(
                        a,
                        queries.agent_capabilities(session, a.address),
                        queries.agent_prices(session, a.address),
                        queries.agent_earnings(session, a.address),
                        proofs[a.address],
                    )
                    for a in found.items
                ],
                found.total,
                found.total_capped,
            )
    except QueryError as exc:
        raise CliError(str(exc), 2) from None
    return [], 0, False


def session_run(session: Any) -> Any:
    """`ghostpay.indexer.evidence`'s executor on a SQLAlchemy session."""
    from sqlalchemy import text

    return lambda sql, params: [tuple(r) for r in session.connection().execute(text(sql), params)]


def agent_evidence(st: State, address: str) -> Any:
    """The evidence of one agent in the index given by --db (None if the index has no payment graph yet)."""
    from ghostpay.indexer import evidence as ev
    from ghostpay.indexer.sqlite_read import has_evidence, readonly_run, sqlite_path

    path = sqlite_path(db_url(st.settings.db or ""))
    if path is not None:
        with _sqlite_index(st, path) as index:
            if not has_evidence(index):
                return None
            run = readonly_run(index)
            return ev.evidence(run, [address], ev.trusted_mints(run))[address]
    for session in _session(st):
        run = session_run(session)
        return ev.evidence(run, [address], ev.trusted_mints(run))[address]
    return None


def _is_indexed_agent(st: State, address: str) -> bool:
    from ghostpay.indexer.sqlite_read import sqlite_path

    path = sqlite_path(db_url(st.settings.db or ""))
    if path is not None:
        with _sqlite_index(st, path) as index:
            return index.execute("SELECT 1 FROM agents WHERE address = ?", (address,)).fetchone() is not None
    from ghostpay.indexer.models import Agent

    for session in _session(st):
        return session.get(Agent, address) is not None
    return False


def _payments(st: State, address: str, sort_by: str, limit: int, reference: str | None) -> list[Any]:
    from ghostpay.indexer.queries import PaymentSort
    from ghostpay.indexer.sqlite_read import sqlite_path

    sort: PaymentSort = "amount" if sort_by == "amount" else "date"  # --sort-by is checked: one of the two

    path = sqlite_path(db_url(st.settings.db or ""))
    if path is not None:
        from ghostpay.indexer import sqlite_read

        with _sqlite_index(st, path) as index:
            return sqlite_read.payment_history(
                index,
                address,
                sort=sort,
                limit=limit,
                reference=reference,
            ).items
    from ghostpay.indexer import queries

    for session in _session(st):
        return queries.payment_history(
            session,
            address,
            sort=sort,
            limit=limit,
            reference=reference,
        ).items
    return []


class Decimals:
    """Mint decimals from the RPC (getTokenSupply), cached; None when the RPC cannot say.

    Over `State.jsonrpc` (urllib) rather than httpx: importing httpx is ≈ 50 ms of an indexed search's 300 ms."""

    def __init__(self, st: State) -> None:
        self.st = st
        self.cache: dict[str, IndexedMint | None] = {}

    def prefetch(self, mints: list[str]) -> None:
        """Read the decimals of the mints not known yet in one JSON-RPC batch: a page of agents accepting ten
        mints is one round trip to the RPC, not ten. A mint the batch does not answer is asked alone later."""
        missing = [mint for mint in dict.fromkeys(mints) if mint not in self.cache]
        if len(missing) < 2:
            return
        try:
            answers = self.st.jsonrpc_batch([("getTokenSupply", [mint]) for mint in missing])
        except CliError:
            return
        for mint, answer in zip(missing, answers, strict=True):
            with suppress(KeyError, TypeError, ValueError):
                self.cache[mint] = IndexedMint(mint, int(answer["value"]["decimals"]))

    def __call__(self, mint: str | None) -> IndexedMint | None:
        if mint is None:
            return None
        if mint not in self.cache:
            try:
                self.cache[mint] = IndexedMint(mint, int(self.st.jsonrpc("getTokenSupply", mint)["value"]["decimals"]))
            except (CliError, KeyError, TypeError, ValueError):
                self.cache[mint] = None
        return self.cache[mint]


def search_indexed(
    st: State,
    mint: Any,
    ceiling: Decimal | None,
    floor: int | None,
    order: str | None,
    capability: str | None,
    x402_enabled: bool | None,
    include_inactive: bool,
    limit: int,
    min_payers: int | None = None,
    min_volume: dict[str, int] | None = None,
    decimals: Decimals | None = None,
) -> tuple[list[tuple[IndexedAgent, dict[str, Any]]], int, bool]:
    """Agents from the database, with the same filters as the chain search and the evidence's (`min_payers`
    distinct payers in trusted mints, `min_volume` mint -> atomic units); returns them, the total and whether
    it is capped (more than `paging.TOTAL_CAP` match).
    A price ceiling is in whole units of `mint` (the caller requires one)."""
    decimals = decimals or Decimals(st)
    token = str(mint) if mint is not None else None
    max_atomic = None
    if ceiling is not None and token is not None:
        found = decimals(token)
        if found is None:
            raise CliError(f"cannot read the decimals of {token} from {st.rpc_url}; --max-price needs them")
        max_atomic = int(ceiling.scaleb(found.decimals))  # prices are whole atomic units: floor is exact
    exact = order in (None, "reputation", "price", "trust")
    agents, total, capped = _search(
        st,
        x402_enabled=x402_enabled,
        capability=capability,
        token=token,
        max_price=max_atomic,
        min_reputation=floor,
        active=None if include_inactive else True,
        min_payers=min_payers,
        min_volume=min_volume,
        sort=order if order in ("price", "trust") else "score",
        limit=min(limit, DB_PAGE) if exact else DB_PAGE,
    )
    decimals.prefetch([m for a in agents for m in a.prices_atomic])
    out = [(a, {m: decimals(m) for m in a.prices_atomic}) for a in agents]
    if order in ("newest", "oldest", "calls", "name"):
        keys = {
            "newest": (lambda a: a.created_at, True),
            "oldest": (lambda a: a.created_at, False),
            "calls": (lambda a: a.total_calls, True),
            "name": (lambda a: a.name.casefold(), False),
        }
        key, descending = keys[order]
        out.sort(key=lambda pair: key(pair[0]), reverse=descending)
    return out[:limit], total, capped


def payment_history_indexed(
    st: State, address: str, limit: int, sort_by: str, reference: str | None = None
) -> list[dict[str, Any]]:
    """The agent's indexed payments (those of `reference` only, if given) as the CLI prints them."""
    from ghostpay.cli.output import mint_symbol, whole

    decimals = Decimals(st)
    if not _is_indexed_agent(st, address):  # not an agent: an error, not "0 payments"
        raise CliError(
            f"{address} is not an agent in the index {st.settings.db}; check the address (or run the indexer)"
        )
    rows = []
    for p in _payments(st, address, sort_by, min(limit, DB_PAGE), reference):
        mint = decimals(p.mint)
        rows.append(
            {
                "signature": p.signature,
                "slot": p.slot,
                "payer": p.payer,
                "rent_payer": p.rent_payer,
                "mint": p.mint,
                "token_symbol": mint_symbol(st, p.mint) if mint else "atomic units",
                "amount": format(whole(p.amount, mint.decimals), "f") if mint else str(p.amount),
                "amount_atomic": p.amount,
                "reference": p.reference,
                "timestamp": p.timestamp,
                "outcome": p.outcome,
                "rating": p.rating,
                "response_time_ms": p.response_time_ms,
            }
        )
    return rows
