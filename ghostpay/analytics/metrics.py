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
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from sqlalchemy import func
from sqlmodel import Session, col, select

from ghostpay.analytics.mints import whole_tokens
from ghostpay.indexer.models import Agent, Payment, RawEvent
from ghostpay.indexer.queries import PaymentAnalytics, payment_analytics

Decimals = Mapping[str, Optional[int]]


@dataclass(frozen=True)
class Window:
    start: int  # inclusive, unix seconds
    end: int  # inclusive

    @property
    def seconds(self) -> int:
        return self.end - self.start


def window_for(session: Session, period: int, now: Optional[float] = None) -> Window:
    newest = session.exec(select(func.max(RawEvent.timestamp))).one()
    end = max(int(time.time() if now is None else now), int(newest or 0))
    return Window(end - period, end)


def _percent(part: int, whole: int) -> Optional[str]:
    """part / whole in percent with two exact places (rounded down), None when whole is 0."""
    if not whole:
        return None
    bps = part * 10_000 // whole
    return f"{bps // 100}.{bps % 100:02d}"


@dataclass(frozen=True)
class X402Metrics:
    window: Window
    agent: Optional[str]
    analytics: PaymentAnalytics
    average_response_ms: Optional[int]
    names: dict[str, str]  # agent address -> name, for the top earners

    @property
    def mints(self) -> set[str]:
        return {t.mint for t in self.analytics.by_token} | {e.mint for e in self.analytics.top_earners}

    def to_json(self, decimals: Decimals) -> dict[str, Any]:
        a = self.analytics
        successful, failed = a.by_outcome.get("success", 0), a.by_outcome.get("failed", 0)
        by_token = [{"mint": t.mint, "decimals": decimals.get(t.mint), "payments": t.payments,
                     "total": whole_tokens(t.volume, decimals.get(t.mint)), "total_atomic": str(t.volume),
                     "average": whole_tokens(t.average_per_call, decimals.get(t.mint)),
                     "average_atomic": str(t.average_per_call)} for t in a.by_token]
        return {
            "period": {"seconds": self.window.seconds, "start": self.window.start, "end": self.window.end},
            "agent": self.agent,
            "payments": {"total": a.payments, "successful": successful, "failed": failed,
                         "pending": a.by_outcome.get("recorded", 0)},
            "volume": {"total": {t["mint"]: t["total"] for t in by_token},
                       "average": {t["mint"]: t["average"] for t in by_token},
                       "by_token": by_token},
            "agents": {"active": a.active_agents,
                       "top_earners": [{"agent": e.agent, "name": self.names.get(e.agent, ""), "mint": e.mint,
                                        "earnings": whole_tokens(e.volume, decimals.get(e.mint)),
                                        "earnings_atomic": str(e.volume), "calls": e.payments}
                                       for e in a.top_earners]},
            "performance": {"success_rate": _percent(successful, successful + failed),
                            "error_rate": _percent(failed, successful + failed),
                            "rated": successful + failed,
                            "average_response_ms": self.average_response_ms,
                            "average_confirmation_ms": None},
        }


def x402_metrics(session: Session, window: Window, agent: Optional[str] = None, top: int = 10) -> X402Metrics:
    analytics = payment_analytics(session, window.start, window.end + 1, top=top, agent=agent)
    timed = select(func.avg(Payment.response_time_ms)).where(
        Payment.timestamp >= window.start, Payment.timestamp <= window.end, col(Payment.response_time_ms) > 0)
    if agent is not None:
        timed = timed.where(Payment.agent == agent)
    average = session.exec(timed).one()
    earners = [e.agent for e in analytics.top_earners]
    names = {address: name for address, name in session.exec(
        select(Agent.address, Agent.name).where(col(Agent.address).in_(earners))).all()} if earners else {}
    return X402Metrics(window, agent, analytics, None if average is None else round(float(average)), names)


def volume_series(session: Session, window: Window, buckets: int, agent: Optional[str] = None
                  ) -> list[dict[str, Any]]:
    """Payments and atomic volume per mint in `buckets` equal slices of the window, oldest first."""
    width = max(1, -(-(window.seconds + 1) // buckets))
    slot = ((col(Payment.timestamp) - window.start) // width).label("bucket")
    statement = (select(slot, Payment.mint, func.count(), func.sum(Payment.amount))
                 .where(Payment.timestamp >= window.start, Payment.timestamp <= window.end))
    if agent is not None:
        statement = statement.where(Payment.agent == agent)
    series: list[dict[str, Any]] = [{"start": window.start + i * width, "payments": 0, "volume_atomic": {}}
                                    for i in range(buckets)]
    for index, mint, count, amount in session.exec(statement.group_by(slot, Payment.mint)).all():
        bucket = series[min(int(index), buckets - 1)]
        bucket["payments"] += int(count)
        bucket["volume_atomic"][mint] = str(int(bucket["volume_atomic"].get(mint, 0)) + int(amount))
    return series
