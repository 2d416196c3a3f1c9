"""A rating's UPDATE finds the payment it names through the reference's index. Through the event name's index (the
plan SQLite's planner took without statistics) or the outcome's, every rating read every recorded payment, and a
back-fill's time grew with the square of its payments (bench/indexer.py: 40 % of a 3,300-transaction back-fill)."""

from __future__ import annotations

from pathlib import Path

from ghostpay.indexer.models import connect
from ghostpay.indexer.process import rating_update


def test_a_rating_searches_payments_by_reference_only(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'index.db'}")
    compiled = rating_update().compile(dialect=engine.dialect)
    with engine.connect() as connection:
        plan = [
            str(step[3])
            for step in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}", tuple(None for _ in compiled.positiontup or ())
            )
        ]
    assert any("SEARCH payments USING INDEX ix_payments_reference" in step for step in plan), plan
    assert not [step for step in plan if "SCAN" in step or "ix_raw_events_name" in step or "outcome" in step], plan
