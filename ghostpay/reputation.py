"""The reputation score, exactly as the program computes it (program/src/reputation.h).

Integer math only; the tests drive this function and the on-chain one with the
same vectors (tests/vectors/reputation.json) and with random metrics.

    >>> metrics = ReputationInputs(successful_payments=99, failed_payments=1,
    ...                            total_rating=40, rating_count=10,
    ...                            total_response_time_ms=2_450, response_time_count=10,
    ...                            payment_history_7d=(10,) * 7)
    >>> score = reputation_score(metrics)
    >>> (score.payment_success, score.service_quality, score.response_time, score.volume_consistency)
    (9900, 8000, 10000, 10000)
    >>> score.score, tier(score.score, has_payments=True).value
    (9360, 'ELITE')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from math import isqrt
from typing import Any

HISTORY_DAYS = 7
SECONDS_PER_DAY = 86_400
BPS = 10_000
MAX_RATING = 5
WEIGHT_PAYMENT_SUCCESS = 40
WEIGHT_SERVICE_QUALITY = 30
WEIGHT_RESPONSE_TIME = 20
WEIGHT_VOLUME_CONSISTENCY = 10
WEIGHT_TOTAL = 100
COUNTER_CAP = (1 << 40) - 1  # counters are capped first, which keeps the C products below 2^64
BPS_PER_STAR = BPS // MAX_RATING
NEUTRAL_RATING_BPS = 3 * BPS_PER_STAR  # no ratings yet: three stars
NEUTRAL_RESPONSE_TIME_BPS = 5_000  # no measurements yet
FAST_RESPONSE_MS = 1_000
SLOW_RESPONSE_MS = 10_000
HISTORY_COUNT_CAP = 0xFFFF  # daily counts are halved together until the largest fits 16 bits


class Tier(StrEnum):
    """Reputation tiers by score; UNRATED until the first recorded payment. `print(tier)` and f"{tier}" show
    ELITE, not Tier.ELITE."""

    LEGENDARY = "LEGENDARY"
    ELITE = "ELITE"
    EXCELLENT = "EXCELLENT"
    GOOD = "GOOD"
    FAIR = "FAIR"
    POOR = "POOR"
    UNRATED = "UNRATED"


TIER_FLOORS: tuple[tuple[int, Tier], ...] = (
    (9_500, Tier.LEGENDARY),
    (9_000, Tier.ELITE),
    (8_500, Tier.EXCELLENT),
    (7_000, Tier.GOOD),
    (5_000, Tier.FAIR),
    (0, Tier.POOR),
)


@dataclass(frozen=True)
class ReputationInputs:
    """The fields of a ReputationMetrics account that the score reads."""

    successful_payments: int = 0
    failed_payments: int = 0
    total_response_time_ms: int = 0
    response_time_count: int = 0
    total_rating: int = 0
    rating_count: int = 0
    total_disputes: int = 0
    disputes_resolved: int = 0
    payment_history_7d: Sequence[int] = (0,) * HISTORY_DAYS

    @classmethod
    def from_account(cls, metrics: Any) -> ReputationInputs:
        """From a decoded `ghostpay.accounts.ReputationMetrics` (or anything with those fields)."""
        return cls(**{name: getattr(metrics, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ReputationScore:
    """The four components and the weighted score, all in basis points (0-10,000)."""

    payment_success: int
    service_quality: int
    response_time: int
    volume_consistency: int
    score: int


def _cap(value: int) -> int:
    return min(value, COUNTER_CAP)


def _service_quality(m: ReputationInputs, payments: int) -> int:
    ratings = _cap(m.rating_count)
    rating = min(_cap(m.total_rating) * BPS_PER_STAR // ratings, BPS) if ratings else NEUTRAL_RATING_BPS
    dispute_rate = min(m.total_disputes * BPS // payments, BPS)
    resolution = min(m.disputes_resolved * BPS // m.total_disputes, BPS) if m.total_disputes else 0
    return max(0, min(BPS, rating - dispute_rate // 2 + resolution // 10))


def _response_time(m: ReputationInputs) -> int:
    count = _cap(m.response_time_count)
    if count == 0:
        return NEUTRAL_RESPONSE_TIME_BPS
    average_ms = _cap(m.total_response_time_ms) // count
    if average_ms <= FAST_RESPONSE_MS:
        return BPS
    if average_ms >= SLOW_RESPONSE_MS:
        return 0
    return (SLOW_RESPONSE_MS - average_ms) * BPS // (SLOW_RESPONSE_MS - FAST_RESPONSE_MS)


def _volume_consistency(history: Sequence[int]) -> int:
    """10,000 minus the coefficient of variation of the daily counts, in bps."""
    counts = [_cap(c) for c in history]
    shift = 0
    while (max(counts) >> shift) > HISTORY_COUNT_CAP:
        shift += 1
    counts = [c >> shift for c in counts]
    total = sum(counts)
    if total == 0:
        return 0
    # With mean = total / 7: cv^2 = sum((7 * count - total)^2) / (7 * total^2).
    squares = sum((HISTORY_DAYS * c - total) ** 2 for c in counts)
    cv = isqrt(squares * BPS // total * BPS // (HISTORY_DAYS * total))
    return 0 if cv >= BPS else BPS - cv


def reputation_score(m: ReputationInputs) -> ReputationScore:
    """The score the program writes to `Agent.reputation_score`; all zeros with no payments."""
    if len(m.payment_history_7d) != HISTORY_DAYS:
        raise ValueError(f"payment_history_7d has {HISTORY_DAYS} days, got {len(m.payment_history_7d)}")
    payments = _cap(m.successful_payments) + _cap(m.failed_payments)
    if payments == 0:
        return ReputationScore(0, 0, 0, 0, 0)
    success = _cap(m.successful_payments) * BPS // payments
    quality = _service_quality(m, payments)
    response = _response_time(m)
    volume = _volume_consistency(m.payment_history_7d)
    score = (
        WEIGHT_PAYMENT_SUCCESS * success
        + WEIGHT_SERVICE_QUALITY * quality
        + WEIGHT_RESPONSE_TIME * response
        + WEIGHT_VOLUME_CONSISTENCY * volume
    ) // WEIGHT_TOTAL
    return ReputationScore(success, quality, response, volume, score)


def tier(score: int, has_payments: bool) -> Tier:
    """The tier of a score (UNRATED for an agent without recorded payments)."""
    if not has_payments:
        return Tier.UNRATED
    return next(t for floor, t in TIER_FLOORS if score >= floor)


def day_of(unix_timestamp: int) -> int:
    """Day number of a timestamp, as the program computes it (before 1970: day 0)."""
    return max(unix_timestamp, 0) // SECONDS_PER_DAY


def roll_payment_history(history: Sequence[int], history_day: int, today: int) -> tuple[list[int], int]:
    """The 7-day window moved to `today`: days that passed are zeroed (day d sits at d % 7).
    A clock that moved back leaves it as it is. Returns (history, history_day)."""
    rolled = list(history)
    if today <= history_day:
        return rolled, history_day
    if today - history_day >= HISTORY_DAYS:
        return [0] * HISTORY_DAYS, today
    for day in range(history_day + 1, today + 1):
        rolled[day % HISTORY_DAYS] = 0
    return rolled, today
