"""Schema migrations: a database at v1 (one price per agent, no registration or rent payer) moves to v2."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from ghostpay.indexer.models import SCHEMA_VERSION, connect, migrate, schema_version


def test_v1_database_gains_per_mint_prices_and_earnings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    engine = connect(url)
    with engine.begin() as c:  # turn the fresh database back into v1's shape
        c.exec_driver_sql("ALTER TABLE agents DROP COLUMN registration")
        c.exec_driver_sql("DROP INDEX ix_agent_tokens_price")
        c.exec_driver_sql("ALTER TABLE agent_tokens DROP COLUMN price")
        c.exec_driver_sql("DROP INDEX ix_payments_rent_payer")
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
    assert migrate(engine) == SCHEMA_VERSION == 4
    with engine.begin() as c:
        columns = {t: {col["name"] for col in inspect(c).get_columns(t)} for t in ("agents", "agent_tokens", "payments")}
        assert "registration" in columns["agents"] and "price_per_call" not in columns["agents"]
        assert "price" in columns["agent_tokens"] and "rent_payer" in columns["payments"]
        assert c.exec_driver_sql("SELECT price FROM agent_tokens").scalar_one() == 0
        assert not {"total_earnings", "x402_total_payments"} & columns["agents"]
        assert {col["name"] for col in inspect(c).get_columns("agent_earnings")} == {
            "agent", "mint", "registration", "x402_payments", "escrow_earnings"}
        assert "seen_slot" in inspect(c).get_table_names()
    assert migrate(engine) == SCHEMA_VERSION  # nothing left to apply
