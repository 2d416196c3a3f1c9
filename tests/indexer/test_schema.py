"""Schema migrations: a database at v1 (one price per agent, no registration or rent payer) moves to the newest
version; a v4 database's payments and feedback, keyed by their reference, are keyed by their instruction in v5,
and gain the payment graph (v6) and the search indexes (v7)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, inspect, text

from ghostpay.indexer.models import (
    FILTER_INDEXES,
    SCHEMA_VERSION,
    SEARCH_INDEXES,
    UNREAD_PAYMENT_INDEXES,
    connect,
    migrate,
    schema_version,
)


def test_v1_database_gains_per_mint_prices_and_earnings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    engine = connect(url)
    with engine.begin() as c:  # turn the fresh database back into v1's shape
        for name in SEARCH_INDEXES:  # v7's
            c.exec_driver_sql(f"DROP INDEX {name}")
        c.exec_driver_sql("ALTER TABLE agents DROP COLUMN registration")
        c.exec_driver_sql("DROP INDEX ix_agent_tokens_price")
        c.exec_driver_sql("ALTER TABLE agent_tokens DROP COLUMN price")
        c.exec_driver_sql("DROP INDEX IF EXISTS ix_payments_rent_payer")  # v2 adds it, v9 drops it
        c.exec_driver_sql("ALTER TABLE payments DROP COLUMN rent_payer")
        c.exec_driver_sql("ALTER TABLE agents ADD COLUMN price_per_call BIGINT NOT NULL DEFAULT 0")
        c.exec_driver_sql("CREATE INDEX ix_agents_price_per_call ON agents (price_per_call)")
        c.exec_driver_sql("INSERT INTO agent_tokens (agent, mint, position) VALUES ('a', 'm', 0)")
        c.exec_driver_sql("DROP TABLE agent_earnings")
        for column in ("total_earnings", "x402_total_payments"):  # v1-v2 summed atomic units over mints
            c.exec_driver_sql(f"ALTER TABLE agents ADD COLUMN {column} BIGINT NOT NULL DEFAULT 0")
        c.execute(text("DELETE FROM schema_version WHERE version > 1"))
    with engine.begin() as c:
        assert schema_version(c) == 1
    assert migrate(engine) == SCHEMA_VERSION == 9
    with engine.begin() as c:
        columns = {
            t: {col["name"] for col in inspect(c).get_columns(t)} for t in ("agents", "agent_tokens", "payments")
        }
        assert "registration" in columns["agents"] and "price_per_call" not in columns["agents"]
        indexes = {r[0] for r in c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert set(SEARCH_INDEXES) <= indexes  # v7: the orders agent search pages in
        assert set(FILTER_INDEXES) <= indexes  # v8: what it checks of each agent, covered
        assert not set(UNREAD_PAYMENT_INDEXES) & indexes  # v9: v2's rent payer index gone again
        assert "price" in columns["agent_tokens"] and "rent_payer" in columns["payments"]
        assert c.exec_driver_sql("SELECT price FROM agent_tokens").scalar_one() == 0
        assert not {"total_earnings", "x402_total_payments"} & columns["agents"]
        assert {col["name"] for col in inspect(c).get_columns("agent_earnings")} == {
            "agent",
            "mint",
            "registration",
            "x402_payments",
            "escrow_earnings",
        }
        assert "seen_slot" in inspect(c).get_table_names()
    assert migrate(engine) == SCHEMA_VERSION  # nothing left to apply


V4_PAYMENTS = """CREATE TABLE payments (agent VARCHAR NOT NULL, reference VARCHAR NOT NULL, payer VARCHAR NOT NULL,
    rent_payer VARCHAR NOT NULL DEFAULT '', mint VARCHAR NOT NULL, amount BIGINT NOT NULL, signature VARCHAR NOT NULL,
    instruction_index INTEGER NOT NULL, slot BIGINT NOT NULL, timestamp BIGINT NOT NULL, outcome VARCHAR NOT NULL,
    rating INTEGER, response_time_ms INTEGER, PRIMARY KEY (agent, reference))"""
V4_FEEDBACK = """CREATE TABLE feedback (agent VARCHAR NOT NULL, reference VARCHAR NOT NULL, payer VARCHAR NOT NULL,
    success BOOLEAN NOT NULL, rating INTEGER NOT NULL, response_time_ms BIGINT NOT NULL, signature VARCHAR NOT NULL,
    slot BIGINT NOT NULL, timestamp BIGINT NOT NULL, PRIMARY KEY (agent, reference))"""


def test_v4_payments_and_feedback_are_keyed_by_their_instruction(tmp_path: Path) -> None:
    """A v4 index: payments and feedback keyed (agent, reference), with the indexes whose names v5 reuses. v5
    copies the payments and rebuilds the feedback from the raw events (the old rows lack their instruction);
    afterwards a second payment with the same reference has a row of its own."""
    engine = connect(f"sqlite:///{tmp_path / 'index.db'}")
    reference = "ab" * 32
    feedback_event = json.dumps(
        {
            "agent": "A",
            "payer": "P",
            "reference": list(bytes.fromhex(reference)),
            "success": False,
            "response_time_ms": 900,
            "rating": 2,
            "timestamp": 1_700_000_100,
        }
    )
    with engine.begin() as c:
        c.exec_driver_sql("DROP TABLE payments")
        c.exec_driver_sql("DROP TABLE feedback")
        c.exec_driver_sql(V4_PAYMENTS)
        c.exec_driver_sql(V4_FEEDBACK)
        for name, table, column in (
            ("ix_payments_payer", "payments", "payer"),
            ("ix_payments_signature", "payments", "signature"),
            ("ix_feedback_payer", "feedback", "payer"),
        ):
            c.exec_driver_sql(f"CREATE INDEX {name} ON {table} ({column})")
        c.exec_driver_sql(
            "INSERT INTO payments VALUES ('A', ?, 'P', 'P', 'M', 10000, 'sig1', 2, 10, 1700000000, 'failed', 2, 900)",
            (reference,),
        )
        c.exec_driver_sql("INSERT INTO feedback VALUES ('A', ?, 'P', 0, 2, 900, 'sig2', 11, 1700000100)", (reference,))
        c.exec_driver_sql(
            "INSERT INTO raw_events (signature, slot, instruction_index, event_index, name, agent, "
            "timestamp, data) VALUES ('sig2', 11, 3, 0, 'FeedbackSubmitted', 'A', 1700000100, ?)",
            (feedback_event,),
        )
        c.execute(text("DELETE FROM schema_version WHERE version > 4"))
    assert migrate(engine) == SCHEMA_VERSION == 9
    with engine.begin() as c:
        assert [
            tuple(r)
            for r in c.exec_driver_sql(
                "SELECT signature, instruction_index, agent, reference, outcome, rating FROM payments"
            )
        ] == [("sig1", 2, "A", reference, "failed", 2)]
        # v6: the payment graph built from the payments already indexed
        assert [
            tuple(r) for r in c.exec_driver_sql("SELECT payer, agent, mint, kind, calls, amount FROM payment_edges")
        ] == [("P", "A", "M", "x402", 1, 10000)]
        assert [
            tuple(r)
            for r in c.exec_driver_sql(
                "SELECT signature, instruction_index, agent, reference, payer, success, rating, response_time_ms, "
                "slot, timestamp FROM feedback"
            )
        ] == [("sig2", 3, "A", reference, "P", 0, 2, 900, 11, 1_700_000_100)]
        assert {i["name"] for i in inspect(c).get_indexes("payments")} >= {"ix_payments_reference", "ix_payments_agent"}
        indexes = {r[0] for r in c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert set(SEARCH_INDEXES) <= indexes  # v7, after the payment graph
        assert not set(UNREAD_PAYMENT_INDEXES) & indexes  # v9
        assert not {"payments_v4", "feedback_v4"} & set(inspect(c).get_table_names())
        c.exec_driver_sql(
            "INSERT INTO payments (signature, instruction_index, agent, reference, payer, rent_payer, "
            "mint, amount, slot, timestamp, outcome) VALUES ('sig3', 2, 'A', ?, 'P', 'P', 'M', 10000, "
            "12, 1700000200, 'recorded')",
            (reference,),
        )
        assert c.exec_driver_sql("SELECT COUNT(*) FROM payments WHERE reference = ?", (reference,)).scalar_one() == 2


def test_payments_keep_only_the_indexes_a_query_reads(tmp_path: Path) -> None:
    """A fresh index and one at v8 end with the same payment indexes, neither of the two nobody reads."""
    fresh = connect(f"sqlite:///{tmp_path / 'fresh.db'}")
    old = connect(f"sqlite:///{tmp_path / 'old.db'}")
    with old.begin() as c:  # back to v8: the two indexes it had
        c.exec_driver_sql("CREATE INDEX ix_payments_rent_payer ON payments (rent_payer)")
        c.exec_driver_sql("CREATE INDEX ix_payments_outcome ON payments (outcome)")
        c.execute(text("DELETE FROM schema_version WHERE version > 8"))
    assert migrate(old) == SCHEMA_VERSION == 9

    def payment_indexes(engine: Engine) -> set[str]:
        with engine.begin() as c:
            return {i["name"] for i in inspect(c).get_indexes("payments")}

    assert payment_indexes(old) == payment_indexes(fresh)
    assert not set(UNREAD_PAYMENT_INDEXES) & payment_indexes(fresh)
    assert {"ix_payments_reference", "ix_payments_agent", "ix_payments_timestamp"} <= payment_indexes(fresh)
