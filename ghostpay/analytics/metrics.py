"""x402 metrics over a period of indexed history: the seed's X402TransactionMetrics, from what is recorded.

What the chain records per payment (the `payments` table): agent, payer, mint, amount, block time and,
once the payer rates the call, success and response time. So:

- payments: total = x402 payments recorded in the period; successful / failed = those whose payer
  reported the call succeeded / failed (`submit_feedback`); pending = not rated yet.
- volume: per mint (amounts of different mints do not add up): total and average per payment.
- agents: active = agents paid at least once in the period; top earners by volume within a mint.
- performance: success rate = successful / rated, error rate = failed / rated (percent, two places;
  None before any rating); average response time = the payers' reported times (0 = not measured is
  left out). Confirmation time is not recorded on chain (a transaction carries its block time only,
  not when it was sent), so it is None here.

The period ends at the later of the wall clock and the newest indexed block time (a localnet that
travelled in time is ahead of the wall clock) and starts `period` seconds before.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from ghostpay.analytics.mints import whole_tokens
from ghostpay.indexer.models import Agent, Payment, RawEvent

Decimals = Mapping[str, int | None]


@dataclass(frozen=True)
class Window:
    start: int  # inclusive, unix seconds
    end: int  # inclusive

    @property
    def seconds(self) -> int:
        return self.end - self.start


def window_for(session: Session, period: int, now: float | None = None) -> Window:
    newest = session.exec(select(func.max(RawEvent.timestamp))).one()
    end = max(int(time.time() if now is None else now), int(newest or 0))
    return Window(end - period, end)


def _percent(part: int, whole: int) -> str | None:
    """part / whole in percent with two exact places (rounded down), None when whole is 0."""
    if not whole:
        return None
    bps = part * 10_000 // whole
    return f"{bps // 100}.{bps % 100:02d}"


@dataclass(frozen=True)
class Totals:
    payments: int = 0
    volume: int = 0  # atomic units


@dataclass(frozen=True)
class X402Metrics:
    window: Window
    agent: str | None
    by_outcome: dict[str, int]  # recorded (not rated yet), success, failed
    by_token: dict[str, Totals]  # mint ->
    top_earners: list[tuple[str, str, Totals]]  # (agent, mint, totals), by volume within a mint
    active_agents: int
    average_response_ms: int | None
    names: dict[str, str]  # agent address -> name, for the top earners

    @property
    def mints(self) -> set[str]:
        return set(self.by_token)

    def to_json(self, decimals: Decimals, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The API's document; `labels` (mint -> token label) names the mints that have one."""
        labels = labels or {}
        successful, failed = self.by_outcome.get("success", 0), self.by_outcome.get("failed", 0)
        by_token = [
            {
                "mint": mint,
                "label": labels.get(mint),
                "decimals": decimals.get(mint),
                "payments": t.payments,
                "total": whole_tokens(t.volume, decimals.get(mint)),
                "total_atomic": str(t.volume),
                "average": whole_tokens(t.volume // t.payments, decimals.get(mint)),
                "average_atomic": str(t.volume // t.payments),
            }
            for mint, t in sorted(self.by_token.items(), key=lambda kv: (-kv[1].volume, kv[0]))
        ]
        return {
            "period": {"seconds": self.window.seconds, "start": self.window.start, "end": self.window.end},
            "agent": self.agent,
            "payments": {
                "total": sum(self.by_outcome.values()),
                "successful": successful,
                "failed": failed,
                "pending": self.by_outcome.get("recorded", 0),
            },
            "volume": {
                "total": {t["mint"]: t["total"] for t in by_token},
                "average": {t["mint"]: t["average"] for t in by_token},
                "by_token": by_token,
            },
            "agents": {
                "active": self.active_agents,
                "top_earners": [
                    {
                        "agent": agent,
                        "name": self.names.get(agent, ""),
                        "mint": mint,
                        "label": labels.get(mint),
                        "earnings": whole_tokens(t.volume, decimals.get(mint)),
                        "earnings_atomic": str(t.volume),
                        "calls": t.payments,
                    }
                    for agent, mint, t in self.top_earners
                ],
            },
            "performance": {
                "success_rate": _percent(successful, successful + failed),
                "error_rate": _percent(failed, successful + failed),
                "rated": successful + failed,
                "average_response_ms": self.average_response_ms,
            },
        }


def x402_metrics(session: Session, window: Window, agent: str | None = None, top: int = 10) -> X402Metrics:
    """One pass over the period's payments (the timestamp index), grouped by agent, mint and outcome."""
    timed = col(Payment.response_time_ms) > 0
    statement = (
        select(  # type: ignore[call-overload]  # sqlmodel's select() is typed for up to 4 columns; this has 7
            Payment.agent,
            Payment.mint,
            Payment.outcome,
            func.count(),
            func.sum(Payment.amount),
            func.sum(case((timed, Payment.response_time_ms))),
            func.count(case((timed, 1))),
        )
        .where(Payment.timestamp >= window.start, Payment.timestamp <= window.end)
        .group_by(Payment.agent, Payment.mint, Payment.outcome)
    )
    if agent is not None:
        statement = statement.where(Payment.agent == agent)
    by_outcome: dict[str, int] = defaultdict(int)
    by_token: dict[str, Totals] = defaultdict(Totals)
    by_earner: dict[tuple[str, str], Totals] = defaultdict(Totals)
    response_ms = response_count = 0
    for payee, mint, outcome, count, amount, ms, timed_count in session.exec(statement).all():
        by_outcome[outcome] += int(count)
        by_token[mint] = Totals(by_token[mint].payments + int(count), by_token[mint].volume + int(amount))
        earned = by_earner[(payee, mint)]
        by_earner[(payee, mint)] = Totals(earned.payments + int(count), earned.volume + int(amount))
        response_ms, response_count = response_ms + int(ms or 0), response_count + int(timed_count)
    earners = sorted(by_earner.items(), key=lambda kv: (-kv[1].volume, kv[0][0], kv[0][1]))[:top]
    names = {
        address: name
        for address, name in session.exec(
            select(Agent.address, Agent.name).where(col(Agent.address).in_([a for (a, _), _ in earners]))
        ).all()
    }
    return X402Metrics(
        window,
        agent,
        dict(by_outcome),
        dict(by_token),
        [(a, m, t) for (a, m), t in earners],
        len({a for a, _ in by_earner}),
        round(response_ms / response_count) if response_count else None,
        names,
    )


def volume_series(session: Session, window: Window, buckets: int, agent: str | None = None) -> list[dict[str, Any]]:
    """Payments and atomic volume per mint in `buckets` equal slices of the window, oldest first."""
    width = max(1, -(-(window.seconds + 1) // buckets))
    slot = ((col(Payment.timestamp) - window.start) // width).label("bucket")
    statement = select(slot, Payment.mint, func.count(), func.sum(Payment.amount)).where(
        Payment.timestamp >= window.start, Payment.timestamp <= window.end
    )
    if agent is not None:
        statement = statement.where(Payment.agent == agent)
    series: list[dict[str, Any]] = [
        {"start": window.start + i * width, "payments": 0, "volume_atomic": {}} for i in range(buckets)
    ]
    for index, mint, count, amount in session.exec(statement.group_by(slot, Payment.mint)).all():
        bucket = series[min(int(index), buckets - 1)]
        bucket["payments"] += int(count)
        bucket["volume_atomic"][mint] = str(int(bucket["volume_atomic"].get(mint, 0)) + int(amount))
    return series
