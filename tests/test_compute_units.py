"""Compute units are deterministic, so the budgets are asserted as upper bounds."""

from __future__ import annotations

from bench.compute_units import measure

BUDGETS = {
    "no x402, bump 255": 5_500,
    "x402, 1 token, bump 255": 6_000,
    "x402, 10 tokens, bump 255": 7_500,
}


def test_register_agent_stays_within_budget() -> None:
    measured = {row.case: row.compute_units for row in measure() if row.case in BUDGETS}
    assert measured.keys() == BUDGETS.keys()
    over = {case: cu for case, cu in measured.items() if cu > BUDGETS[case]}
    assert not over, f"over budget: {over} (budgets {BUDGETS})"
