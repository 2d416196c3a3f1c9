"""`/metrics` in the Prometheus text format, read from the index on every scrape (no state kept here).

Counters that only a running indexer knows (reconnects, RPC errors) come from the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ghostpay.analytics.webhooks import delivery_counts
from ghostpay.indexer.models import Payment, RawEvent
from ghostpay.indexer.queries import index_status

CONTENT_TYPE = CONTENT_TYPE_LATEST
FEED_HELP = {  # the live feed of this process (`ghostpay.analytics.feed.FeedCounters`)
    "reads": "Database reads made by this process's live feed streams",
    "wakeups": "NOTIFYs from the indexer heard by this process's live feed (PostgreSQL)",
    "reconnects": "LISTEN connections this process opened again after a drop (PostgreSQL)",
}


class IndexCollector(Collector):
    def __init__(
        self,
        engine: Engine,
        chain_slot: int | None,
        extra: Mapping[str, float],
        webhooks: bool,
        feed: Mapping[str, float],
    ) -> None:
        self.engine, self.chain_slot, self.extra, self.webhooks, self.feed = engine, chain_slot, extra, webhooks, feed

    def collect(self) -> Iterator[Metric]:
        with Session(self.engine) as session:
            state = index_status(session)
            by_name = session.exec(select(RawEvent.name, func.count()).group_by(RawEvent.name)).all()
            by_agent = session.exec(
                select(Payment.agent, Payment.mint, func.count(), func.sum(Payment.amount)).group_by(
                    Payment.agent, Payment.mint
                )
            ).all()
        events = CounterMetricFamily(
            "ghostpay_indexer_events", "Program events indexed, by event name", labels=["event"]
        )
        for name, count in by_name:
            events.add_metric([name], int(count))
        yield events
        skipped = CounterMetricFamily(
            "ghostpay_indexer_skipped", "Input seen and not applied, by reason", labels=["reason"]
        )
        for reason, count in state.skipped.items():
            skipped.add_metric([reason], count)
        yield skipped
        if state.cursor_slot is not None:
            yield GaugeMetricFamily(
                "ghostpay_indexer_cursor_slot", "Slot of the newest applied transaction", value=state.cursor_slot
            )
        if self.chain_slot is not None:
            yield GaugeMetricFamily("ghostpay_chain_slot", "The chain's confirmed slot", value=self.chain_slot)
            lag = state.lag(self.chain_slot)
            if lag is not None:
                yield GaugeMetricFamily(
                    "ghostpay_indexer_lag_slots",
                    "Chain slot minus the newest slot the index "
                    "is complete through (its cursor, or a later slot seen while caught up)",
                    value=lag,
                )
        yield CounterMetricFamily(
            "ghostpay_rpc_errors", "Failed RPC requests made by this process", value=self.extra.get("rpc_errors", 0)
        )
        for key, value in self.extra.items():
            if key != "rpc_errors":
                yield CounterMetricFamily(f"ghostpay_indexer_{key}", f"Indexer in this process: {key}", value=value)
        for key, value in self.feed.items():
            yield CounterMetricFamily(f"ghostpay_live_feed_{key}", FEED_HELP[key], value=value)
        payments = CounterMetricFamily("ghostpay_x402_payments", "Recorded x402 payments", labels=["agent", "mint"])
        volume = CounterMetricFamily(
            "ghostpay_x402_volume_atomic", "Recorded x402 volume in atomic units", labels=["agent", "mint"]
        )
        for agent, mint, count, amount in by_agent:
            payments.add_metric([agent, mint], int(count))
            volume.add_metric([agent, mint], int(amount))
        yield payments
        yield volume
        if self.webhooks:
            counts = delivery_counts(self.engine)
            deliveries = GaugeMetricFamily(
                "ghostpay_webhook_deliveries", "Webhook deliveries by status", labels=["status"]
            )
            for status in ("pending", "delivered", "failed"):
                deliveries.add_metric([status], counts.get(status, 0))
            yield deliveries
            yield CounterMetricFamily(
                "ghostpay_webhook_attempts", "Webhook POSTs attempted", value=counts.get("attempts", 0)
            )


def render(
    engine: Engine, chain_slot: int | None, extra: Mapping[str, float], webhooks: bool, feed: Mapping[str, float]
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IndexCollector(engine, chain_slot, extra, webhooks, feed))
    return generate_latest(registry)
