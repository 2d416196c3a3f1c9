"""Processor: applies decoded transactions to the tables, exactly once.

A `Batch` is one database transaction. A chain transaction is applied only if its signature is
not in `transactions` yet; its effects, its raw events (unique on signature, instruction index,
event index) and the cursor commit together. So replaying any transaction (a back-fill that
overlaps the live stream, a restart after SIGKILL) changes nothing: at-least-once delivery,
exactly-once effect.

The write path is built for back-fill speed: `apply_all` checks a batch's signatures and loads
every state row its events touch in one query per table, the handlers then change plain
in-memory rows, and `commit` writes the append-only tables with `executemany` (`COPY` on PostgreSQL) and each state
table with one `INSERT … ON CONFLICT DO UPDATE`, compiled once by SQLAlchemy Core from the sqlmodel tables and
executed by the driver. `commit` is `prepare` (the rows become statements) then `write` (executed and committed),
so a back-fill can apply the next batch while this one is written: that batch is made with `after=` this one and
takes the state rows the back-fill holds (this one's, and up to CARRIED_ROWS of earlier ones) from memory rather
than from the database.

Reputation counters follow the program's rules (program/src/record_x402_payment.c, submit_feedback.c,
work_order.h): every change that the program makes after rolling the 7-day window to the day of
its clock is mirrored here at the event's timestamp, and the score is recomputed with
`ghostpay.reputation.reputation_score`, the program's own integer function.

A payment is keyed by the instruction that recorded it (a reference is not unique on chain). A rating
names a reference: it sets the outcome of the newest unrated payment of that payer with that reference
applied before it (in this batch, else among the back-fill's earlier ones held in memory, else in the
database: the same one however the batches are cut); a reference that names none of the payer's payments
moves the reputation (the program counted it) and sets no outcome.
"""

from __future__ import annotations

import json
import logging
import operator
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, bindparam, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from ghostpay import accounts
from ghostpay.events import DecodedLogs, IndexedEvent, Skipped, decode_logs
from ghostpay.indexer.models import (
    EVENTS_CHANNEL,
    NOTIFY_SQL,
    Agent,
    AgentCapability,
    AgentEarning,
    AgentToken,
    Cursor,
    DailyVolume,
    Feedback,
    IndexedTransaction,
    Payment,
    PaymentEdge,
    RawEvent,
    Reputation,
    SkipCounter,
    WorkOrder,
    WorkOrderTransition,
    notify_new_events,
    table_of,
)
from ghostpay.indexer.source import ChainTransaction
from ghostpay.indexer.writer import COPY, EXECUTE, Plan, WriterProcess
from ghostpay.program_id import PROGRAM_ID
from ghostpay.reputation import HISTORY_DAYS, ReputationInputs, day_of, reputation_score, roll_payment_history, tier

log = logging.getLogger(__name__)

FULL_CLIENT_SHARE_BPS = 10_000
IN_CHUNK = 500  # keys per `IN (…)` lookup: well under SQLite's and PostgreSQL's parameter limits
CARRIED_ROWS = 20_000
"""State rows a back-fill keeps in memory from batch to batch (beyond it, a batch carries only the previous one's)."""

# Event → the work-order status it leaves the order in.
WORK_ORDER_STATUS = {
    "WorkOrderCreated": "Created",
    "WorkOrderAccepted": "Accepted",
    "WorkDelivered": "Submitted",
    "DeliveryRejected": "Rejected",
    "DisputeOpened": "Disputed",
    "DisputeResolved": "Resolved",
    "WorkOrderCancelled": "Cancelled",
    "WorkOrderRefunded": "Refunded",
    "WorkOrderDeclined": "Declined",
    "DisputeSettledByDefault": "Refunded",
}
STATE_MODELS: tuple[type[SQLModel], ...] = (
    Agent,
    AgentEarning,
    Reputation,
    WorkOrder,
    DailyVolume,
    PaymentEdge,
)
"""Tables of current state: loaded in bulk, changed in memory, upserted at commit."""
X402_EDGE, ESCROW_EDGE = "x402", "escrow"  # payment_edges.kind
RAW_ONLY_EVENTS = frozenset({"PayerStatsOpened", "PayerStatsClosed"})
"""Events no table but raw_events (the feed, webhooks) needs: a PayerStats' rent and its closing."""


class Row:
    """One table row in memory: its columns as attributes (what the handlers change)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    if TYPE_CHECKING:  # any column, read or written (declared for the type checker only: a typo still raises)

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...


# Columns stored as JSON text and held decoded in memory (parsed at load, dumped at commit).
JSON_COLUMNS: dict[type[SQLModel], tuple[str, ...]] = {Reputation: ("history",)}


def _defaults(model: type[SQLModel]) -> dict[str, Any]:
    return {name: f.default for name, f in model.model_fields.items() if not f.is_required()}


ROW_MODELS: tuple[type[SQLModel], ...] = (*STATE_MODELS, Payment)
"""Tables whose rows the handlers hold in memory (payments: append-only, changed by ratings until written)."""
DEFAULTS = {model: _defaults(model) for model in ROW_MODELS}
PRIMARY_KEYS = {model: tuple(c.name for c in table_of(model).primary_key) for model in STATE_MODELS}
COLUMNS = {model: tuple(c.name for c in table_of(model).columns) for model in ROW_MODELS}


def loaded_row(model: type[SQLModel], values: Any) -> Row:
    """A row in memory from stored column values (JSON columns decoded)."""
    row = Row(**values)
    for name in JSON_COLUMNS.get(model, ()):
        setattr(row, name, json.loads(getattr(row, name)))
    return row


def new_row(model: type[SQLModel], **values: Any) -> Row:
    """A row with the model's defaults for what `values` leaves out."""
    return loaded_row(model, {**DEFAULTS[model], **values})


def metrics_inputs(rep: Any) -> ReputationInputs:
    """The score's inputs from a reputation row (a stored one, or one in memory with `history` decoded)."""
    history = json.loads(rep.history) if isinstance(rep.history, str) else rep.history
    return ReputationInputs(
        rep.successful_payments,
        rep.failed_payments,
        rep.total_response_time_ms,
        rep.response_time_count,
        rep.total_rating,
        rep.rating_count,
        rep.total_disputes,
        rep.disputes_resolved,
        tuple(history),
    )


def _row_keys(name: str, e: Any, agent: str) -> Iterable[tuple[type[SQLModel], Any]]:
    """The state rows an event's handler reads, known from the event alone (for the bulk load).
    Payments are written without being read (see their handlers)."""
    yield Agent, agent
    yield Reputation, agent
    if name in ("X402PaymentRecorded", "PaymentReleased"):
        yield DailyVolume, (day_of(e.timestamp), agent, str(e.mint))
        yield AgentEarning, (agent, str(e.mint))
    if name == "X402PaymentRecorded":
        yield PaymentEdge, (str(e.payer), agent, str(e.mint), X402_EDGE)
    if name == "MintEarningsRetired":
        yield AgentEarning, (agent, str(e.mint))
    if hasattr(e, "work_order"):
        yield WorkOrder, str(e.work_order)


@dataclass
class BatchStats:
    transactions: int = 0  # applied
    duplicates: int = 0  # already applied before
    failed: int = 0
    events: int = 0
    skipped: Skipped = field(default_factory=Skipped)


def _insert_statement(dialect: str, model: type[SQLModel]) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table_of(model))


class DriverStatement:
    """A statement compiled once per dialect and key set, its rows handed to the driver's `executemany` as they
    are: SQLAlchemy's per-row parameter processing cost more than SQLite's own work on those rows."""

    def __init__(self, statement: Any, dialect: Any, keys: tuple[str, ...]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = str(compiled)
        self.constants = {k: v for k, v in compiled.params.items() if k not in keys}  # the statement's own values
        self.order = tuple(compiled.positiontup) if compiled.positiontup is not None else None  # None: by name
        self.processors: dict[str, Callable[[Any], Any]] = {
            name: processor
            for name, bind in compiled.binds.items()
            if name in keys and (processor := bind.type.bind_processor(dialect)) is not None
        }  # the columns' own conversions (a u64 capped on SQLite)

    def parameters(self, rows: list[dict[str, Any]]) -> list[Any]:
        if self.constants or self.processors:
            rows = [{**self.constants, **row} for row in rows]
            for row in rows:
                for name, process in self.processors.items():
                    row[name] = process(row[name])
        if self.order is None:
            return rows
        if len(self.order) == 1:
            return [(row[self.order[0]],) for row in rows]
        get = operator.itemgetter(*self.order)
        return [get(row) for row in rows]

    def run(self, connection: Any, rows: list[dict[str, Any]]) -> None:
        cursor = connection.connection.driver_connection.cursor()
        try:
            cursor.executemany(self.sql, self.parameters(rows))
        finally:
            cursor.close()


_DRIVER_STATEMENTS: dict[tuple[Any, ...], DriverStatement] = {}
POSITIONAL_POSTGRESQL = postgresql.psycopg.dialect(paramstyle="format")
"""psycopg's dialect with `%s` placeholders: a DriverStatement's rows go to the driver (or the writer process) as
tuples, not as dicts that psycopg maps to positions row by row."""


def driver_statement(name: str, statement: Callable[[], Any], dialect: Any, keys: tuple[str, ...]) -> DriverStatement:
    """`statement()` compiled for `dialect` with these parameter keys, once per process (`name` names the statement)."""
    key = (name, dialect.name, dialect.driver, dialect.paramstyle, keys)
    if key not in _DRIVER_STATEMENTS:
        _DRIVER_STATEMENTS[key] = DriverStatement(statement(), dialect, keys)
    return _DRIVER_STATEMENTS[key]


@dataclass(frozen=True)
class CopyRows:
    """Append-only rows for PostgreSQL's COPY: one stream per table instead of an INSERT per row (the
    INSERTs were two thirds of a back-fill's time in PostgreSQL)."""

    table: Table

    def sql(self, columns: Sequence[str]) -> str:
        return f"COPY {self.table.name} ({', '.join(columns)}) FROM STDIN"

    def run(self, connection: Any, rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0])
        with connection.connection.driver_connection.cursor() as cursor, cursor.copy(self.sql(columns)) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])

    def step(self, rows: list[dict[str, Any]]) -> tuple[str, str, list[Any]]:
        """The writer process's step (`ghostpay.indexer.writer`): the same COPY, its rows as lists."""
        columns = list(rows[0])
        return COPY, self.sql(columns), [[row[c] for c in columns] for row in rows]


def _unindexed(column: Any) -> Any:
    """`column || ''`: the same text, through no index of the column (SQLite's planner, without statistics,
    would take an index of a column that nearly every row shares)."""
    return column.op("||")("")


@cache
def rating_update() -> Any:
    """The UPDATE of a stored payment that a rating names: the newest applied unrated one of its agent, reference
    and payer (raw_events.id: the order events were applied in). Found through the reference's index, the only
    one that narrows it to a payment or two: through the event name's or the outcome's, each rating read every
    recorded payment, a back-fill's time growing with the square of its payments."""
    table, raw = table_of(Payment), table_of(RawEvent)
    newest = (
        select(table.c.signature, table.c.instruction_index)
        .join(
            raw,
            and_(
                raw.c.signature == table.c.signature,
                raw.c.instruction_index == table.c.instruction_index,
                _unindexed(raw.c.name) == "X402PaymentRecorded",
            ),
        )
        .where(
            table.c.reference == bindparam("key_reference"),
            _unindexed(table.c.agent) == bindparam("key_agent"),
            _unindexed(table.c.payer) == bindparam("key_payer"),
            _unindexed(table.c.outcome) == "recorded",
        )
        .order_by(raw.c.id.desc())
        .limit(1)
    )
    # `=` a scalar subquery: SQLite evaluates `IN (subquery)` into a temporary table per row, several times slower
    return table.update().where(tuple_(table.c.signature, table.c.instruction_index) == newest.scalar_subquery())


@cache
def rated_update() -> Any:
    """The UPDATE of a stored payment's outcome by its key (the recording instruction)."""
    table = table_of(Payment)
    return table.update().where(
        table.c.signature == bindparam("key_signature"), table.c.instruction_index == bindparam("key_index")
    )


@cache
def cursor_upsert(dialect: str) -> Any:
    """The cursor moved to a batch's last transaction, never back."""
    table = table_of(Cursor)
    stmt = _insert_statement(dialect, Cursor)
    return stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={name: stmt.excluded[name] for name in ("slot", "signature", "updated_at")},
        where=table.c.slot <= stmt.excluded.slot,
    )


@cache
def _upsert_statement(dialect: str, model: type[SQLModel]) -> Any:
    """A state table's upsert, built once per dialect (building `excluded` makes a column proxy per column)."""
    stmt = _insert_statement(dialect, model)
    keys = PRIMARY_KEYS[model]
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: stmt.excluded[name] for name in COLUMNS[model] if name not in keys}
    )


def _skip_counter_add(dialect: str) -> Any:
    """Add a batch's skipped counts to the stored ones."""
    stmt = _insert_statement(dialect, SkipCounter)
    added = table_of(SkipCounter).c["count"] + stmt.excluded["count"]
    return stmt.on_conflict_do_update(index_elements=["name"], set_={"count": added})


class Batch:
    """One database transaction's worth of chain transactions, applied in the order given."""

    def __init__(self, engine: Engine, program_id: Any = PROGRAM_ID, after: Batch | None = None) -> None:
        """`after`: the batch just before this one, when it may not be committed yet (a pipelined
        back-fill): the state rows it touched and its signatures are taken from it, not from the database."""
        self.connection = engine.connect()
        self.transaction = self.connection.begin()
        self.dialect = engine.dialect.name
        self.program_id = program_id
        self.stats = BatchStats()
        self.cursor: tuple[int, str] | None = None
        self.needs_account: set[str] = set()  # agents whose account the service must fetch (fill_agents)
        self.applied_signatures: list[str] = []
        self._rows: dict[type[SQLModel], dict[Any, Row | None]] = {model: {} for model in STATE_MODELS}
        self._payments: list[Row] = []  # recorded in this batch (new keys: written without reading)
        self._unscored: dict[str, Row] = {}  # agent → its reputation, changed since it was last scored
        self._rescored: set[str] = set()  # agents whose reputation the transaction being applied changed
        self._score_checks: dict[str, str] = {}  # agent → the transaction whose ReputationUpdated the batch ends on
        self._seen: set[str] = set()
        self._carried = after._carry_on() if after is not None else {}
        self._seen_before = set(after.applied_signatures) if after is not None else set()
        self._writes: list[tuple[Any, Any]] = []  # (statement, parameters) that `write` executes, from `prepare`
        self._inserts: dict[type[SQLModel], list[dict[str, Any]]] = {
            IndexedTransaction: [],
            RawEvent: [],
            WorkOrderTransition: [],
            Feedback: [],
        }
        self._tokens: dict[str, list[tuple[str, int]]] = {}  # agent → (mint, price)s, replacing the stored ones
        self._capabilities: dict[str, list[str]] = {}
        self._by_reference: dict[tuple[str, str, str], list[Row]] = {}  # (agent, reference, payer): this batch's
        self._earlier_payments = after._payments_on() if after is not None else {}  # the back-fill's, by the same key
        self._rated: list[dict[str, Any]] = []  # ratings of earlier batches' payments held here: UPDATE by key
        self._outcomes: list[dict[str, Any]] = []  # ratings of payments not in memory: UPDATE at commit, in order

    # rows ---------------------------------------------------------------------------------------------

    def _carry_on(self) -> dict[type[SQLModel], dict[Any, Row | None]]:
        """The rows the next batch takes from this one rather than from the database: every state row the
        back-fill has held so far (this batch's over the older ones), or only this batch's beyond CARRIED_ROWS.
        The older ones are committed already, as this batch's will be before the next one's write."""
        carried = self._carried
        if sum(map(len, carried.values())) + sum(map(len, self._rows.values())) > CARRIED_ROWS:
            carried = {}
        for model, rows in self._rows.items():
            carried.setdefault(model, {}).update(rows)
        return carried

    def _payments_on(self) -> dict[tuple[str, str, str], list[Row]]:
        """The payments the next batch's ratings look for in memory before the database: every one the back-fill
        applied so far (in order), or only this batch's beyond CARRIED_ROWS."""
        earlier = self._earlier_payments
        if sum(map(len, earlier.values())) + len(self._payments) > CARRIED_ROWS:
            earlier = {}
        for key, payments in self._by_reference.items():
            earlier.setdefault(key, []).extend(payments)
        return earlier

    def _key_filter(self, model: type[SQLModel], keys: Sequence[Any]) -> Any:
        """Rows whose primary key is among `keys`, or a few more. A composite key is matched column by
        column (each `IN` walks the primary-key index; SQLite scans the whole table for a row-value
        `IN`), so the answer can hold other combinations: `_load` keeps only the keys asked for."""
        table, names = table_of(model), PRIMARY_KEYS[model]
        if len(names) == 1:
            return table.c[names[0]].in_(keys)
        return and_(*(table.c[n].in_(sorted({key[i] for key in keys})) for i, n in enumerate(names)))

    def _key_of(self, model: type[SQLModel], values: Any) -> Any:
        names = PRIMARY_KEYS[model]
        return values[names[0]] if len(names) == 1 else tuple(values[n] for n in names)

    def _load(self, model: type[SQLModel], keys: Iterable[Any]) -> None:
        """Read the rows of `keys` not in memory yet (the previous batch's if it touched them, else the
        database's, in chunks); the absent ones are remembered as None."""
        rows, carried = self._rows[model], self._carried.get(model, {})
        wanted = []
        for k in dict.fromkeys(keys):
            if k in rows:
                continue
            if k in carried:
                rows[k] = carried[k]
            else:
                wanted.append(k)
        for i in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[i : i + IN_CHUNK]
            for k in chunk:
                rows[k] = None
            for found in self.connection.execute(
                select(table_of(model)).where(self._key_filter(model, chunk))
            ).mappings():
                key = self._key_of(model, found)
                if key in rows and rows[key] is None:
                    rows[key] = loaded_row(model, found)

    def _get(self, model: type[SQLModel], key: Any) -> Row | None:
        rows = self._rows[model]
        if key not in rows:
            self._load(model, [key])
        return rows[key]

    def _add(self, model: type[SQLModel], key: Any, row: Row) -> Row:
        self._rows[model][key] = row
        return row

    def _get_or_add(self, model: type[SQLModel], key: Any, make: Callable[[], Row]) -> Row:
        row = self._get(model, key)
        return row if row is not None else self._add(model, key, make())

    def _agent(self, address: str) -> Row:
        """The agent row; a stub (filled from its account) for an agent whose registration we never saw."""
        row = self._get(Agent, address)
        if row is None:
            self.needs_account.add(address)
            row = self._add(Agent, address, new_row(Agent, address=address, owner=""))
        return row

    def _reputation(self, agent: str, timestamp: int) -> Row:
        return self._get_or_add(
            Reputation,
            agent,
            lambda: new_row(Reputation, agent=agent, history_day=day_of(timestamp), updated_at=timestamp),
        )

    # transactions -------------------------------------------------------------------------------------

    def apply(self, tx: ChainTransaction) -> bool:
        """Apply one transaction unless it was applied before; False if skipped (failed or a duplicate)."""
        return self.apply_all([tx]) == 1

    def apply_all(
        self, transactions: Sequence[ChainTransaction], decoded: Mapping[str, DecodedLogs] | None = None
    ) -> int:
        """Apply transactions in order, skipping those applied before; returns how many were applied.
        `decoded`: logs already decoded (by signature, with this batch's program id); the rest are decoded here."""
        decoded = self._prefetch(transactions, decoded or {})
        applied = 0
        for tx in transactions:
            applied += self._apply(tx, decoded.get(tx.signature))
        self._score_all()  # before the service fetches the accounts of the agents this created
        self._check_scores()
        return applied

    def _prefetch(
        self, transactions: Sequence[ChainTransaction], known: Mapping[str, DecodedLogs]
    ) -> dict[str, DecodedLogs]:
        """Decode the new transactions (unless `known`) and load what they touch: one query per table."""
        candidates = [tx for tx in transactions if not tx.failed and tx.signature not in self._seen]
        done = {tx.signature for tx in candidates if tx.signature in self._seen_before}
        signatures = [tx.signature for tx in candidates]
        for i in range(0, len(signatures), IN_CHUNK):
            done.update(self._applied_before(signatures[i : i + IN_CHUNK]))
        decoded: dict[str, DecodedLogs] = {}
        wanted: dict[type[SQLModel], list[Any]] = {model: [] for model in STATE_MODELS}
        for tx in candidates:
            if tx.signature in done:
                continue
            logs = known.get(tx.signature)
            if logs is None:
                logs = decode_logs(tx.logs, self.program_id, signature=tx.signature, slot=tx.slot)
            decoded[tx.signature] = logs
            for indexed in logs.events:
                for model, key in _row_keys(indexed.name, indexed.data, str(indexed.data.agent)):
                    wanted[model].append(key)
        for model, keys in wanted.items():
            self._load(model, keys)
        return decoded

    def _applied_before(self, signatures: Sequence[str]) -> list[str]:
        """Those of `signatures` in `transactions`: one driver-level query (a batch's SQLAlchemy `IN` rebuilt its
        parameters per call)."""
        mark = "?" if self.connection.dialect.paramstyle == "qmark" else "%s"
        table = table_of(IndexedTransaction).name
        sql = f"SELECT signature FROM {table} WHERE signature IN ({', '.join([mark] * len(signatures))})"
        return [row[0] for row in self.connection.exec_driver_sql(sql, tuple(signatures))]

    def _apply(self, tx: ChainTransaction, decoded: DecodedLogs | None) -> int:
        if tx.failed:  # ignored, but the cursor moves past it so the next back-fill does not list it again
            self.stats.failed += 1
            self._advance(tx)
            return 0
        if decoded is None or tx.signature in self._seen:  # applied before, or earlier in this batch
            self.stats.duplicates += 1
            return 0
        self._seen.add(tx.signature)
        self._rescored.clear()
        for indexed in decoded.events:
            self._apply_event(tx, indexed)
        # The program's score is compared with ours after a transaction, not mid-instruction (claim_refund logs
        # ReputationUpdated before the event that changes the counters), and only after the agent's last such
        # transaction in the batch (`_check_scores`): scoring after every payment cost a tenth of the apply.
        updated = {str(i.data.agent) for i in decoded.events if i.name == "ReputationUpdated"}
        for agent in updated:
            self._score_checks[agent] = tx.signature
        for agent in self._rescored - updated:  # counters changed since that ReputationUpdated: nothing to compare
            self._score_checks.pop(agent, None)
        self._inserts[IndexedTransaction].append(
            {
                "signature": tx.signature,
                "slot": tx.slot,
                "events": len(decoded.events),
                "skipped": decoded.skipped.total,
            }
        )
        self.stats.transactions += 1
        self.stats.events += len(decoded.events)
        self.stats.skipped.add(decoded.skipped)
        if decoded.skipped.total:
            log.warning(
                "%s: skipped %d event lines (malformed %d, unknown %d, foreign %d)",
                tx.signature,
                decoded.skipped.total,
                decoded.skipped.malformed,
                decoded.skipped.unknown,
                decoded.skipped.foreign,
            )
        self._advance(tx)
        self.applied_signatures.append(tx.signature)
        return 1

    def _advance(self, tx: ChainTransaction) -> None:
        if self.cursor is None or tx.slot >= self.cursor[0]:
            self.cursor = (tx.slot, tx.signature)

    def _apply_event(self, tx: ChainTransaction, indexed: IndexedEvent) -> None:
        e = indexed.data
        agent = str(e.agent)
        self._inserts[RawEvent].append(
            {
                "signature": tx.signature,
                "slot": tx.slot,
                "instruction_index": indexed.instruction_index,
                "event_index": indexed.event_index,
                "name": indexed.name,
                "agent": agent,
                "timestamp": e.timestamp,
                "data": indexed.to_json(),
            }
        )
        if indexed.name not in RAW_ONLY_EVENTS:
            getattr(self, "_on_" + indexed.name)(tx, indexed, e, agent)

    # agent lifecycle ------------------------------------------------------------------------------------

    def _on_AgentRegistered(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        # A closed agent's address can be registered again: the new account starts from zero, its
        # reputation continues (the program keeps the ReputationMetrics and rescores, which its
        # ReputationUpdated event right after mirrors). Prices come with the account (fill_agents).
        fresh = new_row(
            Agent,
            address=agent,
            owner=str(e.owner),
            agent_id=e.agent_id,
            name=e.name,
            agent_type=e.agent_type,
            x402_enabled=e.x402_enabled,
            registration=e.registration,
            created_at=e.timestamp,
            updated_at=e.timestamp,
            slot=tx.slot,
        )
        row = self._get(Agent, agent)
        if row is None:
            self._add(Agent, agent, fresh)
        else:
            row.__dict__.update(fresh.__dict__)
        rep = self._reputation(agent, e.timestamp)
        if e.registration <= 1:  # a first registration creates the metrics (a stale row from a reset chain goes)
            rep.__dict__.update(
                new_row(Reputation, agent=agent, history_day=day_of(e.timestamp), updated_at=e.timestamp).__dict__
            )
        else:
            self._roll(rep, e.timestamp)
        self.needs_account.add(agent)

    def _on_AgentUpdated(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        row = self._agent(agent)
        row.name, row.agent_type, row.updated_at, row.slot = e.name, e.agent_type, e.timestamp, tx.slot
        self.needs_account.add(agent)

    def _on_X402Configured(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        row = self._agent(agent)
        row.x402_enabled = True
        row.payment_address, row.endpoint = str(e.payment_address), e.service_endpoint
        row.updated_at, row.slot = e.timestamp, tx.slot
        self._set_tokens(agent, e.accepted_tokens)

    def _on_X402Disabled(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        row = self._agent(agent)
        row.x402_enabled, row.updated_at, row.slot = False, e.timestamp, tx.slot

    def _on_AgentStatusChanged(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        row = self._agent(agent)
        row.is_active, row.updated_at, row.slot = e.is_active, e.timestamp, tx.slot

    def _on_AgentClosed(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        row = self._agent(agent)
        row.closed, row.closed_at, row.slot = True, e.timestamp, tx.slot
        # The fields only the account held are gone with it. Clearing them makes the row the same
        # whether the account was read before the close (live) or never (a later back-fill).
        row.description, row.metadata_uri, row.endpoint, row.payment_address = "", "", "", None
        self._set_tokens(agent, [])
        self._set_capabilities(agent, [])
        self.needs_account.discard(agent)

    def _set_tokens(self, agent: str, tokens: Sequence[Any]) -> None:
        """Replace the agent's accepted mints with these `TokenPrice`s, in order (written at commit)."""
        self._tokens[agent] = list(dict((str(t.mint), t.price) for t in tokens).items())

    def _set_capabilities(self, agent: str, capabilities: Iterable[str]) -> None:
        self._capabilities[agent] = list(dict.fromkeys(capabilities))

    def fill_agents(self, found: dict[str, accounts.Agent | None]) -> None:
        """Copy the fields events do not carry from freshly fetched agent accounts (None: closed)."""
        for address, account in found.items():
            row = self._get(Agent, address)
            if row is None or account is None:
                continue
            row.owner, row.agent_id, row.name, row.agent_type = (
                str(account.owner),
                account.agent_id,
                account.name,
                account.agent_type,
            )
            row.description, row.metadata_uri = account.description, account.metadata_uri
            row.endpoint = account.x402_service_endpoint
            row.payment_address = str(account.x402_payment_address)
            self._set_tokens(address, account.x402_accepted_tokens)
            self._set_capabilities(address, account.capabilities)
        self.needs_account.clear()

    # payments and reputation ----------------------------------------------------------------------------

    def _roll(self, rep: Row, timestamp: int) -> list[int]:
        rep.history, rep.history_day = roll_payment_history(rep.history, rep.history_day, day_of(timestamp))
        rep.updated_at = timestamp
        history: list[int] = rep.history
        return history

    def _count_successful(self, rep: Row, timestamp: int) -> None:
        history = self._roll(rep, timestamp)
        history[rep.history_day % HISTORY_DAYS] += 1
        rep.successful_payments += 1

    def _count_failed(self, rep: Row, timestamp: int) -> None:
        self._roll(rep, timestamp)
        rep.failed_payments += 1

    def _rescore(self, agent: str, rep: Row) -> None:
        """The reputation changed: its score is computed once, at the batch's end (`_score_all`), however many
        events changed it (a payment changes it twice: its record, then the program's ReputationUpdated)."""
        self._unscored[agent] = rep
        self._rescored.add(agent)

    def _score_all(self) -> None:
        """Score every reputation changed since the batch began (or since `_score_all` last ran)."""
        for agent, rep in self._unscored.items():
            score = reputation_score(metrics_inputs(rep))
            rep.payment_success, rep.service_quality = score.payment_success, score.service_quality
            rep.response_time, rep.volume_consistency, rep.score = (
                score.response_time,
                score.volume_consistency,
                score.score,
            )
            row = self._agent(agent)
            row.reputation_score = score.score
            row.tier = tier(score.score, rep.successful_payments + rep.failed_payments > 0).value
        self._unscored.clear()

    def _check_scores(self) -> None:
        """Warn of each agent whose recomputed score differs from the one its last ReputationUpdated logged."""
        for agent, signature in self._score_checks.items():
            rep = self._get(Reputation, agent)
            if rep is not None and rep.score != rep.chain_score:
                log.warning(
                    "%s: recomputed score %d differs from the program's %s (%s)",
                    agent,
                    rep.score,
                    rep.chain_score,
                    signature,
                )
        self._score_checks.clear()

    def _on_X402PaymentRecorded(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        reference = bytes(e.reference).hex()
        mint = str(e.mint)
        payment = new_row(
            Payment,
            agent=agent,
            reference=reference,
            payer=str(e.payer),
            rent_payer=str(e.rent_payer),
            mint=mint,
            amount=e.amount,
            signature=tx.signature,
            instruction_index=indexed.instruction_index,
            slot=tx.slot,
            timestamp=e.timestamp,
        )
        # Written without reading: its key, the recording instruction, is new (the transaction is).
        self._payments.append(payment)
        self._by_reference.setdefault((agent, reference, payment.payer), []).append(payment)
        row = self._agent(agent)
        row.x402_total_calls += 1
        self._earnings(agent, mint).x402_payments += e.amount
        row.last_payment_at = e.timestamp
        day = day_of(e.timestamp)
        volume = self._get_or_add(
            DailyVolume, (day, agent, mint), lambda: new_row(DailyVolume, day=day, agent=agent, mint=mint)
        )
        volume.payments += 1
        volume.amount += e.amount
        self._edge(payment.payer, agent, mint, X402_EDGE, e.amount, e.timestamp)
        rep = self._reputation(agent, e.timestamp)
        self._count_successful(rep, e.timestamp)
        self._rescore(agent, rep)

    def _on_FeedbackSubmitted(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        reference, payer = bytes(e.reference).hex(), str(e.payer)
        self._inserts[Feedback].append(
            {
                "signature": tx.signature,
                "instruction_index": indexed.instruction_index,
                "agent": agent,
                "reference": reference,
                "payer": payer,
                "success": e.success,
                "rating": e.rating,
                "response_time_ms": e.response_time_ms,
                "slot": tx.slot,
                "timestamp": e.timestamp,
            }
        )
        # No row is read: the payment's outcome is set in memory, or by an UPDATE at commit.
        outcome = {
            "outcome": "success" if e.success else "failed",
            "rating": e.rating or None,
            "response_time_ms": e.response_time_ms or None,
        }
        key = (agent, reference, payer)
        unrated = [p for p in self._by_reference.get(key, ()) if p.outcome == "recorded"]
        earlier = [p for p in self._earlier_payments.get(key, ()) if p.outcome == "recorded"]
        if unrated:
            unrated[-1].__dict__.update(outcome)
        elif earlier:  # newer than any the database holds and the back-fill does not: written by its key
            earlier[-1].__dict__.update(outcome)
            self._rated.append(
                {"key_signature": earlier[-1].signature, "key_index": earlier[-1].instruction_index, **outcome}
            )
        else:
            self._outcomes.append({"key_agent": agent, "key_reference": reference, "key_payer": payer, **outcome})
        rep = self._reputation(agent, e.timestamp)
        if not e.success:  # the program moves the payment from successful to failed
            rep.successful_payments = max(rep.successful_payments - 1, 0)
            rep.failed_payments += 1
        if e.rating:
            rep.total_rating += e.rating
            rep.rating_count += 1
        if e.response_time_ms:
            rep.total_response_time_ms += e.response_time_ms
            rep.response_time_count += 1
        self._roll(rep, e.timestamp)
        self._rescore(agent, rep)

    def _on_ReputationUpdated(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        rep = self._reputation(agent, e.timestamp)
        self._roll(rep, e.timestamp)  # refresh_reputation's roll; a no-op after any other instruction's
        self._rescore(agent, rep)
        rep.chain_score = e.new_score

    # work orders --------------------------------------------------------------------------------------

    def _transition(
        self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, amount: int = 0, status: str | None = None
    ) -> Row | None:
        """Record the order's state change (`status`, default the event's) and return the order."""
        address = str(e.work_order)
        order = self._get(WorkOrder, address)
        to_status = status or WORK_ORDER_STATUS.get(indexed.name) or (order.status if order else "Created")
        self._inserts[WorkOrderTransition].append(
            {
                "signature": tx.signature,
                "instruction_index": indexed.instruction_index,
                "event_index": indexed.event_index,
                "work_order": address,
                "event": indexed.name,
                "from_status": order.status if order else None,
                "to_status": to_status,
                "amount": amount,
                "slot": tx.slot,
                "timestamp": e.timestamp,
            }
        )
        if order is not None:
            order.status, order.updated_at = to_status, e.timestamp
        return order

    def _close_order(self, agent: str) -> None:
        row = self._agent(agent)
        row.open_work_orders = max(row.open_work_orders - 1, 0)

    def _on_WorkOrderCreated(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        provider = self._agent(agent).owner or None
        address = str(e.work_order)
        self._transition(tx, indexed, e, e.amount)
        order = new_row(
            WorkOrder,
            address=address,
            agent=agent,
            client=str(e.client),
            provider=provider,
            arbiter=str(e.arbiter),
            mint=str(e.mint),
            order_id=e.order_id,
            amount=e.amount,
            deadline=e.deadline,
            review_period_seconds=e.review_period_seconds,
            status="Created",
            created_at=e.timestamp,
            updated_at=e.timestamp,
            signature=tx.signature,
        )
        existing = self._get(WorkOrder, address)
        if existing is None:
            self._add(WorkOrder, address, order)
        else:  # a closed order's address reused by a new order with the same id
            existing.__dict__.update(order.__dict__)
        self._agent(agent).open_work_orders += 1

    def _on_WorkOrderAccepted(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e)
        if order is not None:
            order.was_accepted, order.provider = True, str(e.provider)

    def _on_WorkDelivered(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e)
        if order is not None:
            order.deliverable_uri, order.content_hash = e.deliverable_uri, bytes(e.content_hash).hex()

    def _on_DeliveryRejected(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        self._transition(tx, indexed, e)

    def _earnings(self, agent: str, mint: str) -> Row:
        """The agent's earnings in `mint` in its current registration: the program starts a new registration's
        earnings from zero, so a row of an earlier one is reset on its first payment in this one."""
        registration = self._agent(agent).registration
        row = self._get_or_add(
            AgentEarning,
            (agent, mint),
            lambda: new_row(AgentEarning, agent=agent, mint=mint, registration=registration),
        )
        if row.registration != registration:
            row.registration, row.x402_payments, row.escrow_earnings = registration, 0, 0
        return row

    def _on_MintEarningsRetired(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        """The owner's configuration gave the mint's slot to a newly accepted one: the account's table starts
        that mint from zero, and so does its row (the event's totals stay in raw_events, the flows in
        daily_volumes)."""
        row = self._earnings(agent, str(e.mint))
        row.x402_payments, row.escrow_earnings = 0, 0

    def _edge(self, payer: str, agent: str, mint: str, kind: str, amount: int, timestamp: int) -> None:
        """One more payment from `payer` to `agent` in the payment graph (`payment_edges`)."""
        key = (payer, agent, mint, kind)
        edge = self._get_or_add(
            PaymentEdge,
            key,
            lambda: new_row(PaymentEdge, payer=payer, agent=agent, mint=mint, kind=kind, first_at=timestamp),
        )
        edge.calls += 1
        edge.amount += amount
        edge.first_at, edge.last_at = min(edge.first_at, timestamp), max(edge.last_at, timestamp)

    def _escrow_earned(self, agent: str, mint: str, amount: int, timestamp: int, client: str | None) -> None:
        if amount:
            self._earnings(agent, mint).escrow_earnings += amount
            if client is not None:
                self._edge(client, agent, mint, ESCROW_EDGE, amount, timestamp)
        day = day_of(timestamp)
        volume = self._get_or_add(
            DailyVolume, (day, agent, mint), lambda: new_row(DailyVolume, day=day, agent=agent, mint=mint)
        )
        volume.escrow_released += amount

    def _on_PaymentReleased(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        # a partial release leaves the order where it was; the one that empties the escrow completes it
        order = self._transition(tx, indexed, e, e.amount, "Completed" if e.completed else None)
        if order is not None:
            order.released = e.released
        self._escrow_earned(agent, str(e.mint), e.amount, e.timestamp, order.client if order else None)
        if e.completed:
            self._agent(agent).total_jobs_completed += 1
            rep = self._reputation(agent, e.timestamp)
            self._count_successful(rep, e.timestamp)
            self._rescore(agent, rep)
            self._close_order(agent)

    def _on_DisputeOpened(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        self._transition(tx, indexed, e)
        rep = self._reputation(agent, e.timestamp)
        self._roll(rep, e.timestamp)
        rep.total_disputes += 1
        self._rescore(agent, rep)

    def _on_DisputeResolved(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e, e.provider_amount)
        if order is not None:
            order.released += e.provider_amount
            order.refunded += e.client_amount
        self._escrow_earned(
            agent, order.mint if order else "", e.provider_amount, e.timestamp, order.client if order else None
        )
        rep = self._reputation(agent, e.timestamp)
        # program/src/resolve_dispute.c: a ruling wholly for the provider erases the
        # dispute and completes the job, as a release would; any other counts a resolved dispute.
        if e.client_share_bps == 0:
            rep.total_disputes = max(rep.total_disputes - 1, 0)
            self._agent(agent).total_jobs_completed += 1
            self._count_successful(rep, e.timestamp)
        else:
            rep.disputes_resolved += 1
            if e.client_share_bps == FULL_CLIENT_SHARE_BPS:
                self._count_failed(rep, e.timestamp)
            else:
                self._count_successful(rep, e.timestamp)
        self._rescore(agent, rep)
        self._close_order(agent)

    def _on_DisputeSettledByDefault(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        # program/src/settle_by_default.c settle_dispute_by_default: counted as a ruling wholly for the client
        order = self._transition(tx, indexed, e, e.refunded)
        if order is not None:
            order.refunded += e.refunded
        rep = self._reputation(agent, e.timestamp)
        rep.disputes_resolved += 1
        self._count_failed(rep, e.timestamp)
        self._rescore(agent, rep)
        self._close_order(agent)

    def _on_WorkOrderCancelled(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e, e.refunded)
        if order is not None:
            order.refunded += e.refunded
        self._close_order(agent)

    def _on_WorkOrderDeclined(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e, e.refunded)
        if order is not None:
            order.refunded += e.refunded
        self._close_order(agent)

    def _on_WorkOrderRefunded(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e, e.refunded)
        if order is not None:
            order.refunded += e.refunded
            if order.was_accepted:  # a provider that accepted and never delivered has a failed payment
                rep = self._reputation(agent, e.timestamp)
                self._count_failed(rep, e.timestamp)
                self._rescore(agent, rep)
        self._close_order(agent)

    # commit ---------------------------------------------------------------------------------------------

    def _replace_lists(
        self, model: type[SQLModel], lists: dict[str, list[Any]], row: Callable[[str, int, Any], dict[str, Any]]
    ) -> None:
        """Replace the stored (agent, item) rows of every agent in `lists`."""
        if not lists:
            return
        table = table_of(model)
        agents = list(lists)
        for i in range(0, len(agents), IN_CHUNK):
            self._writes.append((delete(table).where(table.c.agent.in_(agents[i : i + IN_CHUNK])), None))
        rows = [row(agent, position, item) for agent, items in lists.items() for position, item in enumerate(items)]
        if rows:
            self._writes.append((self._driver(f"insert {model.__name__}", table.insert, rows[0]), rows))

    def commit(self) -> None:
        """Write everything applied and the cursor in one database transaction."""
        self.prepare()
        self.write()

    def prepare(self, found: dict[str, accounts.Agent | None] | None = None) -> None:
        """Fill the agents from `found` (see `fill_agents`), then turn everything applied into the statements
        `write` executes. After this the batch's rows in memory may change (the next batch carries them on)."""
        if found:
            self.fill_agents(found)
        for model, rows in self._inserts.items():  # append-only: the duplicate check ran before
            if rows:
                self._writes.append((self._appender(model, rows[0]), rows))
        if self._rated:  # before the searches below, which must find these rated
            self._writes.append((self._driver("rated", rated_update, self._rated[0]), self._rated))
        if self._outcomes:  # ratings of stored payments: each the newest applied unrated one it names
            self._writes.append((self._driver("rating", rating_update, self._outcomes[0]), self._outcomes))
        if self._payments:  # after the ratings of stored payments, which must not find these
            payments = [{c: row.__dict__[c] for c in COLUMNS[Payment]} for row in self._payments]
            self._writes.append((self._appender(Payment, payments[0]), payments))
        for model in STATE_MODELS:
            columns, encoded = COLUMNS[model], JSON_COLUMNS.get(model, ())
            rows = [{c: row.__dict__[c] for c in columns} for row in self._rows[model].values() if row is not None]
            for values in rows:
                for name in encoded:
                    values[name] = json.dumps(values[name])
            if rows:
                upsert = self._driver(
                    f"upsert {model.__name__}", partial(_upsert_statement, self.dialect, model), rows[0]
                )
                self._writes.append((upsert, rows))
        self._replace_lists(
            AgentToken,
            self._tokens,
            lambda agent, position, token: {"agent": agent, "mint": token[0], "position": position, "price": token[1]},
        )
        self._replace_lists(
            AgentCapability, self._capabilities, lambda agent, _, capability: {"agent": agent, "capability": capability}
        )
        self._count_skips()

    def _driver(self, name: str, statement: Callable[[], Any], row: dict[str, Any]) -> DriverStatement:
        dialect = POSITIONAL_POSTGRESQL if self.dialect == "postgresql" else self.connection.dialect
        return driver_statement(name, statement, dialect, tuple(row))

    def _appender(self, model: type[SQLModel], row: dict[str, Any]) -> CopyRows | DriverStatement:
        """COPY on PostgreSQL, else a driver-level executemany of the table's INSERT."""
        if self.dialect == "postgresql":
            return CopyRows(table_of(model))
        return self._driver(f"insert {model.__name__}", table_of(model).insert, row)

    def write(self) -> None:
        """Execute what `prepare` built, move the cursor and commit: one database transaction."""
        for statement, parameters in self._writes:
            if isinstance(statement, CopyRows | DriverStatement):
                statement.run(self.connection, parameters)
            else:
                self.connection.execute(statement, parameters)
        if self.cursor is not None:
            cursor, row = self._cursor_move()
            cursor.run(self.connection, [row])
        if self.dialect == "postgresql" and self._inserts[RawEvent]:
            notify_new_events(self.connection)
        self.transaction.commit()
        self.connection.close()

    def write_to(self, writer: WriterProcess) -> None:
        """`write` through the writer process (PostgreSQL): the same statements and rows, the cursor with them,
        one database transaction, committed when this returns. The batch's own connection (its reads) ends."""
        plan = self.plan()
        self.rollback()  # it read, it wrote nothing
        writer.write(plan)

    def plan(self) -> Plan:
        """What `write` executes, as SQL and plain values, in the same order."""
        dialect = self.connection.dialect
        steps = []
        for statement, parameters in self._writes:
            if isinstance(statement, CopyRows):
                steps.append(statement.step(parameters))
            elif isinstance(statement, DriverStatement):
                steps.append((EXECUTE, statement.sql, statement.parameters(parameters)))
            else:  # a DELETE of the agents' lists: its values its own
                compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
                steps.append((EXECUTE, str(compiled), [compiled.params]))
        if self.cursor is not None:
            cursor, row = self._cursor_move()
            steps.append((EXECUTE, cursor.sql, cursor.parameters([row])))
        if self._inserts[RawEvent]:
            steps.append((EXECUTE, NOTIFY_SQL, [(EVENTS_CHANNEL,)]))
        return Plan(steps)

    def _cursor_move(self) -> tuple[DriverStatement, dict[str, Any]]:
        """The cursor's upsert and its row: this batch's last transaction (the cursor never moves back)."""
        assert self.cursor is not None
        slot, signature = self.cursor
        row = {"id": 1, "slot": slot, "signature": signature, "updated_at": time.time()}
        return self._driver("cursor", partial(cursor_upsert, self.dialect), row), row

    def _count_skips(self) -> None:
        s = self.stats
        counts = [
            {"name": name, "count": value}
            for name, value in (
                ("malformed", s.skipped.malformed),
                ("unknown", s.skipped.unknown),
                ("foreign", s.skipped.foreign),
                ("failed_transactions", s.failed),
            )
            if value
        ]
        if counts:
            add = self._driver("add skips", partial(_skip_counter_add, self.dialect), counts[0])
            self._writes.append((add, counts))

    def rollback(self) -> None:
        if not self.connection.closed:
            self.transaction.rollback()
            self.connection.close()
