"""Compute units are deterministic for given inputs, so budgets are asserted as upper bounds on the
bench's means over random inputs (bench/compute_units.py: random owners, agent ids, token counts, payers,
references and order ids; order ids also as the SDK picks them, bump 255).

The budgets are the issues' targets: register_agent (which also creates the ReputationMetrics) <= 9,000,
every owner update <= 1,500 with one accepted token, record_x402_payment <= 4,000 once the pair's PayerStats
exists (no account created on the hot path; the transfer before it not counted; the mint and source checks of
issue 24 included) and <= 9,000 for the pair's first payment, which creates it, create_work_order <= 20,000.
configure_x402 at the 10-token limit misses the 1,500 goal: logging its event alone costs about 720 CU
(sol_log_data charges a CU per byte and the event carries ten 40-byte token prices), and the runtime's input
of twelve accounts and ten mint checks about 1,300 more, so its budget is the measured cost with a small margin.
"""

from __future__ import annotations

import pytest

from bench.compute_units import Row, measure

BUDGETS = {
    ("register_agent", "no x402"): 9_000,
    ("register_agent", "x402, 1 token"): 9_000,
    ("register_agent", "x402, 10 tokens"): 9_000,
    ("register_agent", "x402, 1-10 tokens"): 9_000,
    ("configure_x402", "10 tokens"): 3_300,
    ("record_x402_payment", "first payment of a pair"): 9_000,
    ("record_x402_payment", "later payments"): 4_000,
    ("record_x402_payment", "later payments, after a Memo"): 4_000,
    ("submit_feedback", "rating and response time"): 3_000,
    ("close_payer_stats", "by its payer, 2 calls unrated"): 1_500,
    ("refresh_reputation", "7 days of history"): 1_500,
    ("create_work_order", "SDK order ids"): 20_000,
    ("create_work_order", "any order ids"): 20_000,
    ("accept_work_order", "naming the arbiter"): 1_500,
    ("release_payment", "partial"): 12_000,
    ("release_payment", "final: closes vault and work order"): 18_000,
}
UPDATE_BUDGET = 1_500
OWNER_UPDATES = {
    "update_agent",
    "configure_x402",
    "set_x402_price",
    "set_x402_tokens",
    "set_x402_endpoint",
    "disable_x402",
    "set_agent_active",
    "close_agent",
}


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return measure()


def test_every_budgeted_row_is_measured_and_within_budget(rows: list[Row]) -> None:
    measured = {(r.instruction, r.case): r.compute_units for r in rows if (r.instruction, r.case) in BUDGETS}
    assert measured.keys() == BUDGETS.keys()
    over = {key: cu for key, cu in measured.items() if cu > BUDGETS[key]}
    assert not over, f"over budget: {over}"


def test_owner_updates_stay_within_budget(rows: list[Row]) -> None:
    measured = {r.instruction: r.compute_units for r in rows if r.case == "owner update"}
    assert measured.keys() == OWNER_UPDATES
    over = {name: cu for name, cu in measured.items() if cu > UPDATE_BUDGET}
    assert not over, f"over {UPDATE_BUDGET} CU: {over}"


def test_means_are_over_varied_inputs(rows: list[Row]) -> None:
    """Random agent ids, payers and order ids really vary the PDA searches (not the luckiest bump only)."""
    varied = {(r.instruction, r.case) for r in rows if r.highest > r.lowest}
    assert {
        ("register_agent", "x402, 1 token"),
        ("record_x402_payment", "first payment of a pair"),
        ("create_work_order", "any order ids"),
    } <= varied
