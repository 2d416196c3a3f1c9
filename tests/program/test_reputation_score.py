"""The score is one function in two languages: the program's (C, driven through LiteSVM by
refresh_reputation on metrics written into the ledger) and ghostpay.reputation's. Both read
tests/vectors/reputation.json; a random sweep checks they agree everywhere else.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from ghostpay.accounts import Agent, ReputationMetrics
from ghostpay.agent_instructions import AgentProfile, build_register_agent
from ghostpay.instructions import refresh_reputation
from ghostpay.pda import reputation_address
from ghostpay.reputation import (
    HISTORY_DAYS,
    ReputationInputs,
    ReputationScore,
    day_of,
    reputation_score,
    roll_payment_history,
    tier,
)
from tests.program.svm import InProcessChain as Chain

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "reputation.json").read_text())
RANDOM_SAMPLES = int(os.environ.get("GHOSTPAY_REPUTATION_SAMPLES", "10000"))  # raise it for a longer sweep
AGENTS_PER_TRANSACTION = 10
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1


def inputs(vector: dict) -> ReputationInputs:
    metrics = dict(vector["metrics"])
    metrics["payment_history_7d"] = tuple(metrics["payment_history_7d"])
    return ReputationInputs(**metrics)


def expected(vector: dict) -> ReputationScore:
    e = vector["expected"]
    return ReputationScore(
        e["payment_success"], e["service_quality"], e["response_time"], e["volume_consistency"], e["score"]
    )


# ---- Python ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"][:60])
def test_python_score_matches_the_vectors(vector: dict) -> None:
    m = inputs(vector)
    assert reputation_score(m) == expected(vector)
    has_payments = m.successful_payments + m.failed_payments > 0
    assert tier(reputation_score(m).score, has_payments).value == vector["expected"]["tier"]


def test_seed_worked_example_is_a_vector() -> None:
    seed = next(v for v in VECTORS["vectors"] if v["name"].startswith("seed worked example"))
    assert expected(seed) == ReputationScore(9_900, 8_000, 10_000, 8_500, 9_210)


@pytest.mark.parametrize("score, name", VECTORS["tiers"])
def test_tiers(score: int, name: str) -> None:
    assert tier(score, has_payments=name != "UNRATED").value == name


def test_rolling_the_window() -> None:
    history = [1, 2, 3, 4, 5, 6, 7]
    assert roll_payment_history(history, 10, 10) == (history, 10)
    assert roll_payment_history(history, 10, 9) == (history, 10)  # the clock moved back: unchanged
    rolled, day = roll_payment_history(history, 10, 12)  # days 11 and 12 (slots 4 and 5) restart at 0
    assert (rolled, day) == ([1, 2, 3, 4, 0, 0, 7], 12)
    assert roll_payment_history(history, 10, 17) == ([0] * 7, 17)
    assert day_of(-1) == 0 and day_of(86_399) == 0 and day_of(86_400) == 1


# ---- the program, through LiteSVM --------------------------------------------------------------------


class ScoreOracle:
    """Writes metrics into agents' ReputationMetrics accounts and asks the program for the score."""

    def __init__(self, count: int = AGENTS_PER_TRANSACTION) -> None:
        self.chain = Chain()
        self.payer = self.chain.funded_keypair(1_000)
        self.today = day_of(self.chain.svm.get_clock().unix_timestamp)
        self.agents: list[tuple[Pubkey, Pubkey, int]] = []
        for n in range(count):
            owner = self.chain.funded_keypair()
            result = self.chain.send([build_register_agent(owner.pubkey(), AgentProfile(f"agent-{n}", "A"))], [owner])
            assert result.ok, result.logs
            agent = Pubkey.from_string(str(result.event("AgentRegistered").agent))
            reputation, bump = reputation_address(agent)
            self.agents.append((agent, reputation, bump))

    def scores(self, batch: list[ReputationInputs]) -> list[tuple[ReputationScore, int]]:
        """The program's (components, score written to the agent) for each metrics set."""
        assert len(batch) <= len(self.agents)
        instructions = []
        for metrics, (agent, reputation, bump) in zip(batch, self.agents, strict=False):  # the first len(batch) agents
            fields = {
                **metrics.__dict__,
                "payment_history_7d": list(metrics.payment_history_7d),
                "agent": agent,
                "history_day": self.today,
                "created_at": 0,
                "updated_at": 0,
                "registration": 1,
                "bump": bump,
            }
            data = ReputationMetrics.discriminator + ReputationMetrics.layout.build(fields)
            self.chain.set_account(reputation, data, owner=self.chain.program_id)
            instructions.append(refresh_reputation({"agent": agent, "reputation": reputation}))
        result = self.chain.send(instructions, [self.payer])
        assert result.ok, result.logs
        events = [e.data for e in result.events if e.name == "ReputationUpdated"]
        assert len(events) == len(batch)
        out = []
        for event, (agent, _, _) in zip(events, self.agents, strict=False):  # an event a metrics set: the first agents
            components = ReputationScore(
                event.payment_success,
                event.service_quality,
                event.response_time,
                event.volume_consistency,
                event.new_score,
            )
            out.append((components, Agent.decode(self.chain.account(agent).data).reputation_score))
        return out


@pytest.fixture(scope="module")
def oracle() -> ScoreOracle:
    return ScoreOracle()


def test_program_score_matches_the_vectors(oracle: ScoreOracle) -> None:
    vectors = VECTORS["vectors"]
    for start in range(0, len(vectors), AGENTS_PER_TRANSACTION):
        chunk = vectors[start : start + AGENTS_PER_TRANSACTION]
        for vector, (components, stored) in zip(chunk, oracle.scores([inputs(v) for v in chunk]), strict=True):
            assert components == expected(vector), vector["name"]
            assert stored == expected(vector).score, vector["name"]


def random_counter(rng: random.Random, limit: int = U64_MAX) -> int:
    """Mostly realistic counts, sometimes the edges where integer math breaks first."""
    kind = rng.random()
    if kind < 0.55:
        return rng.randint(0, 50)
    if kind < 0.8:
        return rng.randint(0, 1_000_000)
    if kind < 0.9:
        return min(rng.choice([0, 1, 2**16 - 1, 2**16, 2**40 - 1, 2**40, 2**63, limit]), limit)
    return rng.randint(0, limit)


def random_metrics(rng: random.Random) -> ReputationInputs:
    ratings = random_counter(rng)
    responses = random_counter(rng)
    disputes = random_counter(rng, U32_MAX)
    return ReputationInputs(
        successful_payments=random_counter(rng),
        failed_payments=random_counter(rng),
        total_response_time_ms=min(responses * rng.randint(0, 12_000), U64_MAX)
        if rng.random() < 0.8
        else random_counter(rng),
        response_time_count=responses,
        total_rating=min(ratings * rng.randint(1, 5), U64_MAX) if rng.random() < 0.8 else random_counter(rng),
        rating_count=ratings,
        total_disputes=disputes,
        disputes_resolved=rng.randint(0, disputes) if rng.random() < 0.8 else random_counter(rng, U32_MAX),
        payment_history_7d=tuple(random_counter(rng) for _ in range(HISTORY_DAYS)),
    )


def test_program_and_python_agree_on_random_metrics(oracle: ScoreOracle) -> None:
    rng = random.Random(20261121)
    checked = 0
    while checked < RANDOM_SAMPLES:
        batch = [random_metrics(rng) for _ in range(min(AGENTS_PER_TRANSACTION, RANDOM_SAMPLES - checked))]
        for metrics, (components, stored) in zip(batch, oracle.scores(batch), strict=True):
            assert components == reputation_score(metrics), metrics
            assert stored == components.score
        checked += len(batch)
    assert checked == RANDOM_SAMPLES
