"""Compute units are deterministic, so budgets are asserted as upper bounds.

The budgets are the issues' targets: register_agent with an x402 config (which
also creates the agent's ReputationMetrics) <= 9,000 CU, every owner update
<= 1,500 CU (with one accepted token), record_x402_payment <= 8,000 CU (the
transfer before it not counted) and submit_feedback <= 3,000 CU; create_work_order <= 20,000 CU, a partial
release_payment <= 12,000 CU and the final one <= 18,000 CU. Rows that
derive addresses are measured where every canonical bump is 255 (see the bench).
"""

from __future__ import annotations

import pytest

from bench.compute_units import Row, measure

REGISTER_BUDGETS = {
    "no x402, bump 255": 8_500,
    "x402, 1 token, bump 255": 9_000,
    "x402, 10 tokens, bump 255": 10_000,
}
PAYMENT_BUDGETS = {
    ("record_x402_payment", "receipt and payee ATA bumps 255"): 8_000,
    ("submit_feedback", "rating and response time"): 3_000,
    ("refresh_reputation", "7 days of history"): 1_500,
}
# Issue 5: including the vault's creation and every token CPI.
ESCROW_BUDGETS = {
    ("create_work_order", "vault + transfer, bump 255"): 20_000,
    ("release_payment", "partial"): 12_000,
    ("release_payment", "final: closes vault and work order"): 18_000,
}
UPDATE_BUDGET = 1_500
OWNER_UPDATES = {"update_agent", "configure_x402", "set_x402_price", "set_x402_tokens", "set_x402_endpoint",
                 "disable_x402", "set_agent_active", "close_agent"}
# At the 10-token limit configure_x402 checks ten mint accounts and logs them all.
CONFIGURE_TEN_TOKENS_BUDGET = 3_000


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return measure()


def test_register_agent_stays_within_budget(rows: list[Row]) -> None:
    measured = {r.case: r.compute_units for r in rows if r.case in REGISTER_BUDGETS}
    assert measured.keys() == REGISTER_BUDGETS.keys()
    over = {case: cu for case, cu in measured.items() if cu > REGISTER_BUDGETS[case]}
    assert not over, f"over budget: {over} (budgets {REGISTER_BUDGETS})"


def test_owner_updates_stay_within_budget(rows: list[Row]) -> None:
    measured = {r.instruction: r.compute_units for r in rows if r.case == "owner update"}
    assert measured.keys() == OWNER_UPDATES
    over = {name: cu for name, cu in measured.items() if cu > UPDATE_BUDGET}
    assert not over, f"over {UPDATE_BUDGET} CU: {over}"


def test_configure_x402_at_the_token_limit_stays_within_budget(rows: list[Row]) -> None:
    [cu] = [r.compute_units for r in rows if r.instruction == "configure_x402" and r.case == "10 tokens"]
    assert cu <= CONFIGURE_TEN_TOKENS_BUDGET


def test_payment_and_feedback_stay_within_budget(rows: list[Row]) -> None:
    measured = {(r.instruction, r.case): r.compute_units for r in rows if (r.instruction, r.case) in PAYMENT_BUDGETS}
    assert measured.keys() == PAYMENT_BUDGETS.keys()
    over = {key: cu for key, cu in measured.items() if cu > PAYMENT_BUDGETS[key]}
    assert not over, f"over budget: {over}"


def test_escrow_stays_within_budget(rows: list[Row]) -> None:
    measured = {(r.instruction, r.case): r.compute_units for r in rows if (r.instruction, r.case) in ESCROW_BUDGETS}
    assert measured.keys() == ESCROW_BUDGETS.keys()
    over = {key: cu for key, cu in measured.items() if cu > ESCROW_BUDGETS[key]}
    assert not over, f"over budget: {over} (budgets {ESCROW_BUDGETS})"
