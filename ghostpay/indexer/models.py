"""The indexer's tables (sqlmodel) and their versioned schema migrations.

Every table is written only by `ghostpay.indexer.process`, inside the database transaction that
also moves the cursor, so the tables always describe exactly the transactions up to the cursor.
Amounts are u64 on chain: PostgreSQL stores them exactly (NUMERIC(20)); SQLite's integers are
signed 64-bit, so values above 2^63 - 1 (only a hostile mint can produce them) are capped there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, Numeric, Table, UniqueConstraint, event, inspect, text
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel, create_engine

from ghostpay.indexer.sqlite_read import sqlite_path
from ghostpay.paths import private_file

I64_MAX = (1 << 63) - 1


class U64(TypeDecorator[int]):
    """An unsigned 64-bit integer: NUMERIC(20) on PostgreSQL, INTEGER (capped at 2^63 - 1) on SQLite."""

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(20, 0, asdecimal=True))
        return dialect.type_descriptor(BigInteger())

    def process_bind_param(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None or dialect.name == "postgresql":
            return value
        return min(int(value), I64_MAX)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


def u64(**kwargs: Any) -> Any:
    """A u64 column (each model needs its own Column object)."""
    return Field(default=0, sa_column=Column(U64(), nullable=False, **kwargs))


def i64(default: int | None = None, nullable: bool = False, **kwargs: Any) -> Any:
    """A signed 64-bit column (timestamps, slots): SQLAlchemy's Integer is 32-bit on PostgreSQL."""
    return Field(default=default, sa_column=Column(BigInteger(), nullable=nullable, **kwargs))


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"
    version: int = Field(primary_key=True)
    description: str
    applied_at: float


class Cursor(SQLModel, table=True):
    """The newest transaction applied (one row, id 1): back-fill resumes after `signature`."""

    __tablename__ = "cursor"
    id: int = Field(default=1, primary_key=True)
    slot: int = i64()
    signature: str
    updated_at: float


class SeenSlot(SQLModel, table=True):
    """The newest chain slot the indexer saw while it had applied everything (one row, id 1): on a quiet
    chain the cursor stays at the last program transaction, and lag is measured from here instead."""

    __tablename__ = "seen_slot"
    id: int = Field(default=1, primary_key=True)
    slot: int = i64()
    seen_at: float


class IndexedTransaction(SQLModel, table=True):
    """A successful transaction already applied: the per-transaction idempotency key."""

    __tablename__ = "transactions"
    signature: str = Field(primary_key=True)
    slot: int = i64(index=True)
    events: int
    skipped: int


class RawEvent(SQLModel, table=True):
    """Every decoded event; `id` orders them as applied and is the event feed's cursor."""

    __tablename__ = "raw_events"
    __table_args__ = (UniqueConstraint("signature", "instruction_index", "event_index", name="uq_raw_event"),)
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    )  # SQLite: rowid
    signature: str
    slot: int = i64(index=True)
    instruction_index: int
    event_index: int
    name: str = Field(index=True)
    agent: str | None = Field(default=None, index=True)
    timestamp: int = i64()
    data: str  # JSON of the event's fields


class SkipCounter(SQLModel, table=True):
    """What was seen and not applied: malformed, unknown, foreign events and failed transactions."""

    __tablename__ = "skip_counters"
    name: str = Field(primary_key=True)
    count: int = i64(0)


class Agent(SQLModel, table=True):
    """An agent's current state, from its events plus the account fields events do not carry."""

    __tablename__ = "agents"
    address: str = Field(primary_key=True)
    owner: str = Field(index=True)
    agent_id: str = ""
    name: str = ""
    agent_type: int = 0
    description: str = ""
    metadata_uri: str = ""
    is_active: bool = True
    closed: bool = False
    x402_enabled: bool = False
    registration: int = u64()  # 1 for a first registration, +1 each time the agent id is registered again
    payment_address: str | None = None
    endpoint: str = ""
    reputation_score: int = Field(default=0, index=True)
    tier: str = Field(default="UNRATED", index=True)
    total_jobs_completed: int = u64()
    x402_total_calls: int = u64()
    last_payment_at: int = i64(0)
    open_work_orders: int = 0
    created_at: int = i64(0)
    updated_at: int = i64(0)
    closed_at: int | None = i64(nullable=True)
    slot: int = i64(0)


class AgentEarning(SQLModel, table=True):
    """What an agent earned in one mint, in its atomic units, during registration `registration`: the rows
    whose registration is the agent's current one are what its account's earnings table holds."""

    __tablename__ = "agent_earnings"
    agent: str = Field(primary_key=True)
    mint: str = Field(primary_key=True)
    registration: int = u64()
    x402_payments: int = u64()
    escrow_earnings: int = u64()


class AgentCapability(SQLModel, table=True):
    __tablename__ = "agent_capabilities"
    agent: str = Field(primary_key=True)
    capability: str = Field(primary_key=True, index=True)


class AgentToken(SQLModel, table=True):
    """An accepted mint and the price of one call in it (atomic units of that mint); position 0 is the
    default a buyer pays in."""

    __tablename__ = "agent_tokens"
    agent: str = Field(primary_key=True)
    mint: str = Field(primary_key=True, index=True)
    position: int
    price: int = u64(index=True)


class Payment(SQLModel, table=True):
    """One recorded x402 payment (its X402PaymentRecorded event), keyed by the instruction that recorded it: a
    reference names a payment but is not unique on chain. `outcome` is recorded, success or failed (after the
    payer's feedback naming its reference)."""

    __tablename__ = "payments"
    signature: str = Field(primary_key=True)
    instruction_index: int = Field(primary_key=True)
    agent: str = Field(index=True)
    reference: str = Field(index=True)  # hex
    payer: str = Field(index=True)
    rent_payer: str = ""  # the record's rent payer (it paid a PayerStats' rent, or nothing); shown, never searched
    mint: str = Field(index=True)
    amount: int = u64(index=True)
    slot: int = i64(index=True)
    timestamp: int = i64(index=True)
    outcome: str = "recorded"  # three values: an index would only cost (see UNREAD_PAYMENT_INDEXES)
    rating: int | None = None
    response_time_ms: int | None = None


class Feedback(SQLModel, table=True):
    """One FeedbackSubmitted event, keyed by the instruction that rated: its payer, the reference it names
    (the payment whose outcome it sets, if that is the payer's and not rated yet), and the rating."""

    __tablename__ = "feedback"
    signature: str = Field(primary_key=True)
    instruction_index: int = Field(primary_key=True)
    agent: str = Field(index=True)
    reference: str = Field(index=True)
    payer: str = Field(index=True)
    success: bool
    rating: int
    response_time_ms: int = i64()
    slot: int = i64()
    timestamp: int = i64()


class Reputation(SQLModel, table=True):
    """The ReputationMetrics counters rebuilt from events, and the score recomputed from them."""

    __tablename__ = "reputation"
    agent: str = Field(primary_key=True)
    successful_payments: int = u64()
    failed_payments: int = u64()
    total_response_time_ms: int = u64()
    response_time_count: int = u64()
    total_rating: int = u64()
    rating_count: int = u64()
    total_disputes: int = 0
    disputes_resolved: int = 0
    history: str = "[0, 0, 0, 0, 0, 0, 0]"  # JSON: payments per day, day d at index d % 7
    history_day: int = i64(0)
    payment_success: int = 0
    service_quality: int = 0
    response_time: int = 0
    volume_consistency: int = 0
    score: int = 0
    chain_score: int | None = None  # new_score of the last ReputationUpdated event
    updated_at: int = i64(0)


class WorkOrder(SQLModel, table=True):
    __tablename__ = "work_orders"
    address: str = Field(primary_key=True)
    agent: str = Field(index=True)
    client: str = Field(index=True)
    provider: str | None = Field(default=None, index=True)  # the agent's owner
    arbiter: str
    mint: str
    order_id: int = u64()
    amount: int = u64()
    released: int = u64()
    refunded: int = u64()
    deadline: int = i64()
    review_period_seconds: int = i64()
    status: str = Field(index=True)
    was_accepted: bool = False
    deliverable_uri: str = ""
    content_hash: str = ""
    created_at: int = i64()
    updated_at: int = i64()
    signature: str  # of the creation


class WorkOrderTransition(SQLModel, table=True):
    """One state change of a work order, keyed by the event that caused it."""

    __tablename__ = "work_order_history"
    signature: str = Field(primary_key=True)
    instruction_index: int = Field(primary_key=True)
    event_index: int = Field(primary_key=True)
    work_order: str = Field(index=True)
    event: str
    from_status: str | None = None
    to_status: str
    amount: int = u64()
    slot: int = i64()
    timestamp: int = i64()


class DailyVolume(SQLModel, table=True):
    """Per UTC day, agent and mint: x402 calls and amount, and escrow released."""

    __tablename__ = "daily_volumes"
    day: int = Field(primary_key=True)  # unix_timestamp // 86400, as the program counts days
    agent: str = Field(primary_key=True)
    mint: str = Field(primary_key=True)
    payments: int = 0
    amount: int = u64()
    escrow_released: int = u64()


class PaymentEdge(SQLModel, table=True):
    """The payment graph: what one payer paid one agent in one mint, by kind (`x402`: recorded payments, the payer
    being the buyer; `escrow`: work-order releases and rulings for the provider, the payer being the order's
    client). The evidence and the trust score are read from here."""

    __tablename__ = "payment_edges"
    payer: str = Field(primary_key=True, index=True)
    agent: str = Field(primary_key=True, index=True)
    mint: str = Field(primary_key=True, index=True)
    kind: str = Field(primary_key=True)
    calls: int = u64()  # payments recorded, or releases
    amount: int = u64()  # atomic units of `mint`
    first_at: int = i64(0)
    last_at: int = i64(0)


class AgentTrust(SQLModel, table=True):
    """The trust score of each agent with a trusted payment (`ghostpay.indexer.trust`): its share of the trust
    flowing over the payment graph, and that share as basis points of the most trusted agent's."""

    __tablename__ = "agent_trust"
    agent: str = Field(primary_key=True)
    trust: float = 0.0
    score: int = Field(default=0, index=True)
    computed_at: float = 0.0


class TrustedMintSetting(SQLModel, table=True):
    """A mint the index's operator added to (`trusted`) or removed from the default trusted mints."""

    __tablename__ = "trusted_mint_settings"
    mint: str = Field(primary_key=True)
    trusted: bool
    label: str | None = None
    decimals: int | None = None


class TrustSeed(SQLModel, table=True):
    """A pre-trusted wallet or agent: the trust score's random jumps land on the seeds (none: on every payer)."""

    __tablename__ = "trust_seeds"
    address: str = Field(primary_key=True)


DATA_TABLES: tuple[type[SQLModel], ...] = (
    Agent,
    AgentEarning,
    AgentCapability,
    AgentToken,
    Payment,
    Feedback,
    Reputation,
    WorkOrder,
    WorkOrderTransition,
    DailyVolume,
    PaymentEdge,
    RawEvent,
    IndexedTransaction,
)
"""The tables that hold indexed data (row counts in `status`; equal after any replay)."""

ALL_TABLES: tuple[type[SQLModel], ...] = DATA_TABLES + (
    Cursor,
    SeenSlot,
    SkipCounter,
    SchemaVersion,
    AgentTrust,
    TrustedMintSetting,
    TrustSeed,
)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def table_of(model: type[SQLModel]) -> Table:
    """A model's table (sqlmodel's type stubs do not declare `__table__`)."""
    return SQLModel.metadata.tables[str(model.__tablename__)]


def _create_v1(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection, tables=[table_of(m) for m in ALL_TABLES])


# v2 columns: (table, column, SQL type and default). v1 creates tables from the current models, so a
# fresh database already has them and v2 adds only what an older one lacks.
_V2_COLUMNS = (
    ("agents", "registration", "BIGINT NOT NULL DEFAULT 0"),
    ("agent_tokens", "price", "BIGINT NOT NULL DEFAULT 0"),
    ("payments", "rent_payer", "VARCHAR NOT NULL DEFAULT ''"),
)


def _per_mint_prices_v2(connection: Connection) -> None:
    """Issue 14's program: a price per accepted mint, the registration number, the receipt's rent payer.
    Rows written from the earlier program keep zeros there (its events carry neither): re-index them."""
    inspector = inspect(connection)
    for table, column, sql_type in _V2_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
    for name, table, column in (
        ("ix_agent_tokens_price", "agent_tokens", "price"),
        ("ix_payments_rent_payer", "payments", "rent_payer"),
    ):
        connection.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})")
    if "price_per_call" in {c["name"] for c in inspector.get_columns("agents")}:
        connection.exec_driver_sql("DROP INDEX IF EXISTS ix_agents_price_per_call")
        connection.exec_driver_sql("ALTER TABLE agents DROP COLUMN price_per_call")


def _earnings_per_mint_v3(connection: Connection) -> None:
    """The program keeps earnings per mint (summing atomic units of different mints meant nothing): the
    agents' two summed columns go, agent_earnings holds them per mint. Rows indexed from the earlier
    program have none: re-index them."""
    SQLModel.metadata.create_all(connection, tables=[table_of(AgentEarning)])
    columns = {c["name"] for c in inspect(connection).get_columns("agents")}
    for column in ("total_earnings", "x402_total_payments"):
        if column in columns:
            connection.exec_driver_sql(f"ALTER TABLE agents DROP COLUMN {column}")


def _seen_slot_v4(connection: Connection) -> None:
    """Lag measured against the newest slot seen while caught up, not the last program transaction's."""
    SQLModel.metadata.create_all(connection, tables=[table_of(SeenSlot)])


MIGRATION_BATCH = 10_000  # rows per insert while rebuilding a table


def _rebuilt(connection: Connection, model: type[SQLModel]) -> str:
    """Recreate `model`'s table from the current model (new keys and indexes), the old one kept aside under
    `<table>_v4` (created without constraints or indexes, so their names stay free); returns that name."""
    table = model.__tablename__
    old = f"{table}_v4"
    connection.exec_driver_sql(f"CREATE TABLE {old} AS SELECT * FROM {table}")
    connection.exec_driver_sql(f"DROP TABLE {table}")
    SQLModel.metadata.create_all(connection, tables=[table_of(model)])
    return old


def _feedback_row(raw: Any) -> dict[str, Any]:
    """A feedback row from a FeedbackSubmitted raw event (its JSON fields: pubkeys base58, bytes as lists)."""
    data = json.loads(raw.data)
    return {
        "signature": raw.signature,
        "instruction_index": raw.instruction_index,
        "agent": data["agent"],
        "reference": bytes(data["reference"]).hex(),
        "payer": data["payer"],
        "success": data["success"],
        "rating": data["rating"],
        "response_time_ms": data["response_time_ms"],
        "slot": raw.slot,
        "timestamp": data["timestamp"],
    }


def _payments_by_instruction_v5(connection: Connection) -> None:
    """Issue 25's program makes no account per payment, so a reference is no longer unique on chain: payments
    and feedback are keyed by the instruction that recorded or rated them. Payments are copied; feedback is
    rebuilt from the raw events (the old rows lack their instruction)."""
    old = _rebuilt(connection, Payment)
    columns = ", ".join(c.name for c in table_of(Payment).columns)
    connection.exec_driver_sql(f"INSERT INTO payments ({columns}) SELECT {columns} FROM {old}")
    connection.exec_driver_sql(f"DROP TABLE {old}")
    old = _rebuilt(connection, Feedback)
    connection.exec_driver_sql(f"DROP TABLE {old}")
    raw = table_of(RawEvent)
    found = connection.execute(raw.select().where(raw.c.name == "FeedbackSubmitted").order_by(raw.c.id))
    while rows := found.fetchmany(MIGRATION_BATCH):
        connection.execute(table_of(Feedback).insert(), [_feedback_row(r) for r in rows])


def _payment_graph_v6(connection: Connection) -> None:
    """Issue 30: the payment graph (evidence, trust score) and the trust settings, the graph filled from the
    payments and the work orders' releases already indexed."""
    tables = [table_of(m) for m in (PaymentEdge, AgentTrust, TrustedMintSetting, TrustSeed)]
    SQLModel.metadata.create_all(connection, tables=tables)
    # `ghostpay.indexer.guard` records the chain here at the first run; created now so that readers of the
    # trusted mints (which depend on the chain) can always select from it
    connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS indexed_chain (genesis_hash VARCHAR NOT NULL PRIMARY KEY)")
    connection.exec_driver_sql("DELETE FROM payment_edges")  # rebuilt whole from what the index holds
    connection.exec_driver_sql(
        "INSERT INTO payment_edges (payer, agent, mint, kind, calls, amount, first_at, last_at) "
        "SELECT payer, agent, mint, 'x402', COUNT(*), SUM(amount), MIN(timestamp), MAX(timestamp) FROM payments "
        "GROUP BY payer, agent, mint"
    )
    connection.exec_driver_sql(
        "INSERT INTO payment_edges (payer, agent, mint, kind, calls, amount, first_at, last_at) "
        "SELECT o.client, o.agent, o.mint, 'escrow', COUNT(*), SUM(h.amount), MIN(h.timestamp), MAX(h.timestamp) "
        "FROM work_order_history h JOIN work_orders o ON o.address = h.work_order "
        "WHERE h.event IN ('PaymentReleased', 'DisputeResolved') AND h.amount > 0 "
        "GROUP BY o.client, o.agent, o.mint"
    )


SEARCH_INDEXES = {
    "ix_agents_score": "agents (reputation_score DESC, address)",
    "ix_agent_tokens_mint_price": "agent_tokens (mint, price, agent)",
    "ix_agent_tokens_position_price": "agent_tokens (position, price, agent)",
    "ix_agent_capabilities_lower": "agent_capabilities (lower(capability), agent)",  # the filter is case-blind
}
"""The orders `queries.search_agents` pages in, so a page walks an index and stops at its end instead of
sorting every match (100k agents)."""


FILTER_INDEXES = {"ix_agents_filters": "agents (address, closed, is_active, x402_enabled, reputation_score)"}
"""What a search checks of each agent it counts, covered: counting up to `paging.TOTAL_CAP` matches reads this
index instead of each agent's row (at 100k agents a third less for a capability + token <= price count)."""


def _create_indexes(connection: Connection, indexes: dict[str, str]) -> None:
    for name, columns in indexes.items():
        connection.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {columns}")


def _search_indexes_v7(connection: Connection) -> None:
    _create_indexes(connection, SEARCH_INDEXES)


def _filter_index_v8(connection: Connection) -> None:
    _create_indexes(connection, FILTER_INDEXES)


UNREAD_PAYMENT_INDEXES = ("ix_payments_rent_payer", "ix_payments_outcome")
"""Indexes no query reads (nothing searches payments by rent payer; an outcome has three values, and the rating's
lookup goes by reference), each written by every payment and the outcome's again by every rating."""


def _unread_payment_indexes_v9(connection: Connection) -> None:
    for name in UNREAD_PAYMENT_INDEXES:
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "agents, payments, feedback, reputation, work orders, daily volumes, raw events, cursor", _create_v1),
    Migration(2, "a price per accepted mint, registration number, receipt rent payer", _per_mint_prices_v2),
    Migration(3, "earnings per agent and mint", _earnings_per_mint_v3),
    Migration(4, "the newest slot seen while caught up", _seen_slot_v4),
    Migration(5, "payments and feedback keyed by their instruction, not the reference", _payments_by_instruction_v5),
    Migration(6, "the payment graph, agents' trust scores, trusted mints and trust seeds", _payment_graph_v6),
    Migration(7, "indexes in the orders agent search pages in", _search_indexes_v7),
    Migration(8, "an index covering what agent search checks of each agent", _filter_index_v8),
    Migration(9, "no payment index that no query reads", _unread_payment_indexes_v9),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


# The PostgreSQL channel the indexer NOTIFYs in the commit of every batch that added events: API replicas LISTEN on
# it to push their live feed instead of polling (the payload is empty: a listener reads on from its own cursor).
EVENTS_CHANNEL = "ghostpay_events"


NOTIFY_SQL = "SELECT pg_notify(%s, '')"


def notify_new_events(connection: Connection) -> None:
    """NOTIFY the API replicas, in `connection`'s open PostgreSQL transaction: delivered when (and only if) it
    commits, so a listener never reads ahead of it."""
    connection.exec_driver_sql(NOTIFY_SQL, (EVENTS_CHANNEL,))


def database_url(url: str) -> str:
    """SQLAlchemy URL of a `sqlite:///…` or `postgresql://…` URL (PostgreSQL through psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def connect(url: str) -> Engine:
    """An engine on `url` with the schema migrated to the newest version."""
    file = sqlite_path(url)
    if file and file != ":memory:":
        private_file(file)  # the index holds webhook secrets
    engine = create_engine(database_url(url))
    if engine.dialect.name == "sqlite":
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives a killed
        # process (the crash tests SIGKILL it), and a power cut can only drop the newest batches,
        # cursor and all, which the next run back-fills again.
        @event.listens_for(engine, "connect")
        def _synchronous_normal(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint every ~40 MB of WAL rather than 4 MB: a back-fill rewrites the same state and
            # index pages batch after batch, and each checkpoint copies them (and syncs) again.
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=10000")

        with engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")  # readers never block the writer
    migrate(engine)
    return engine


def schema_version(connection: Connection) -> int:
    """The version the database is at (0: empty)."""
    if not inspect(connection).has_table("schema_version"):
        return 0
    return int(connection.execute(text("SELECT COALESCE(MAX(version), 0) FROM schema_version")).scalar_one())


def migrate(engine: Engine) -> int:
    """Apply the migrations the database lacks, each in its own transaction; returns the version."""
    with engine.begin() as connection:
        current = schema_version(connection)
    if current > SCHEMA_VERSION:
        raise RuntimeError(f"database schema v{current} is newer than this indexer's v{SCHEMA_VERSION}")
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        with engine.begin() as connection:
            migration.apply(connection)
            connection.execute(
                table_of(SchemaVersion)
                .insert()
                .values(version=migration.version, description=migration.description, applied_at=time.time())
            )
        current = migration.version
    return current
