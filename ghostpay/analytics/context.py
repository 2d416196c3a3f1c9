"""What every API route uses: the settings, the read-only engine, mint decimals, errors and argument checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from fastapi import Request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine
from starlette.concurrency import run_in_threadpool

from ghostpay.analytics import pagination
from ghostpay.analytics.feed import LiveFeed
from ghostpay.analytics.mints import MintDecimals
from ghostpay.analytics.webhooks import DeliverySettings
from ghostpay.exceptions import InvalidArgument, UnknownTokenLabel
from ghostpay.indexer.guard import indexed_chain
from ghostpay.indexer.models import Agent, database_url
from ghostpay.indexer.queries import agent_capabilities, agent_prices
from ghostpay.program_id import PROGRAM_ID
from ghostpay.token_labels import ClusterLabels, TokenLabels, is_address

T = TypeVar("T")
RPC_TIMEOUT_SECONDS = 5
# no answer, or one without a result of the expected kind
RPC_FAILURES = (httpx.HTTPError, ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class ApiSettings:
    db_url: str
    rpc_url: str | None = None  # for mint decimals and the chain's slot (lag); None: atomic units only
    poll_interval: float = 0.5  # seconds between looks for new events (the live feed on SQLite, or with `poll_feed`)
    poll_feed: bool = False  # poll on PostgreSQL too, rather than LISTEN (a transaction-mode pooler drops LISTEN)
    webhooks: bool = True  # run the webhook dispatcher in this process
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    token: str | None = None  # when set, every request but the dashboard's page needs it as a bearer token
    token_labels: str | None = None  # the label store (`ghostpay.token_labels`); None: the data folder's
    program_id: str = str(PROGRAM_ID)  # the indexed program: the ERC-8004 registry its agents are in


class ApiError(Exception):
    """Answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_only_engine(url: str) -> Engine:
    """An engine whose connections cannot write (the API never does)."""
    sa_url = database_url(url)
    if sa_url.startswith("postgresql"):
        return create_engine(sa_url, connect_args={"options": "-c default_transaction_read_only=on"})
    engine = create_engine(sa_url)

    @event.listens_for(engine, "connect")
    def _query_only(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only = ON")

    return engine


def check_address(value: str, what: str = "address") -> str:
    """A base58 public key, or ApiError 400."""
    from solders.pubkey import Pubkey

    try:
        Pubkey.from_string(value)
    except ValueError:
        raise ApiError(400, f"{what} is not a base58 public key: {value!r}") from None
    return value


def cursor_values(kind: str, cursor: str | None, arity: int) -> list[Any] | None:
    """The sort key values a `next_cursor` names, or ApiError 400."""
    if cursor is None:
        return None
    try:
        return pagination.decode(kind, cursor, arity)
    except pagination.CursorError as exc:
        raise ApiError(400, str(exc)) from None


async def rpc_result(rpc_url: str, method: str, params: list[Any]) -> Any:
    """The `result` of one JSON-RPC call (an RPC_FAILURES exception when there is none)."""
    async with httpx.AsyncClient(timeout=RPC_TIMEOUT_SECONDS) as http:
        answer = (await http.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})).json()
    return answer["result"]


@dataclass
class ApiContext:
    settings: ApiSettings
    engine: Engine
    decimals: MintDecimals
    webhooks: bool
    feed: LiveFeed
    on_metrics: Callable[[], dict[str, float]] | None = None  # counters of an indexer in this process
    slot_errors: int = 0
    rpc_genesis: str | None = None  # the RPC's, asked once: used only while the index has recorded none

    async def labels(self) -> ClusterLabels | None:
        """The token labels of the indexed chain (named by the genesis hash the index recorded, else the RPC's);
        None while neither can say."""
        genesis = await self.genesis_hash()
        if genesis is None:
            return None
        return TokenLabels(self.settings.token_labels).cluster(genesis, self.settings.rpc_url)

    async def genesis_hash(self) -> str | None:
        """The indexed chain's genesis hash (the one the index recorded, else the RPC's); None while neither can say."""
        # The index's is read every time (not kept): replicas started before and after a `--reset` onto
        # another chain must not answer for two chains.
        indexed = await run_in_threadpool(indexed_chain, self.engine)
        if indexed is not None:
            return indexed
        if self.rpc_genesis is None:
            self.rpc_genesis = await self._rpc_genesis()
        return self.rpc_genesis

    async def label_map(self) -> dict[str, str]:
        """mint -> token label, for showing mints by name."""
        found = await self.labels()
        return found.by_mint if found is not None else {}

    async def token(self, value: str | None, what: str = "token") -> str | None:
        """A `token` filter as a mint address: an address as is, a label of the indexed chain resolved;
        ApiError 400 for text that is neither, 422 for a label the chain does not have."""
        if value is None or is_address(value):
            return value
        labels = await self.labels()
        if labels is None:
            raise ApiError(
                422,
                f"{what} {value!r} is a token label, and the index does not know its chain yet: "
                "give the mint's address",
            )
        try:
            return labels.mint(value, what)
        except UnknownTokenLabel as exc:
            raise ApiError(422, str(exc)) from None
        except InvalidArgument as exc:  # neither an address nor a label
            raise ApiError(400, str(exc)) from None

    async def _rpc_genesis(self) -> str | None:
        if not self.settings.rpc_url:
            return None
        try:
            return str(await rpc_result(self.settings.rpc_url, "getGenesisHash", []))
        except RPC_FAILURES:
            return None

    @property
    def rpc_errors(self) -> int:
        return self.slot_errors + self.decimals.rpc_errors

    async def db(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in a worker thread (the database driver blocks)."""

        def run() -> T:
            with Session(self.engine) as session:
                return work(session)

        return await run_in_threadpool(run)

    async def agent(self, address: str) -> tuple[Agent, list[str], dict[str, int]]:
        """An indexed agent with its capabilities and prices (mint -> atomic units); ApiError 400 / 404."""
        check_address(address, "agent")

        def query(session: Session) -> tuple[Agent, list[str], dict[str, int]] | None:
            agent = session.get(Agent, address)
            if agent is None:
                return None
            return agent, agent_capabilities(session, address), agent_prices(session, address)

        found = await self.db(query)
        if found is None:
            raise ApiError(404, f"no indexed agent {address}")
        return found

    async def chain_slot(self) -> int | None:
        """The chain's confirmed slot, or None (no RPC configured, or it did not answer)."""
        if not self.settings.rpc_url:
            return None
        try:
            return int(await rpc_result(self.settings.rpc_url, "getSlot", [{"commitment": "confirmed"}]))
        except RPC_FAILURES:
            self.slot_errors += 1
            return None


def api_context(request: Request) -> ApiContext:
    """The FastAPI dependency every route takes."""
    context: ApiContext = request.app.state.context
    return context
