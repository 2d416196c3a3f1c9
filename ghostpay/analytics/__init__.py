"""Analytics over the indexer's database: x402 metrics, the HTTP API and dashboard (`ghost indexer serve`),
Prometheus metrics and signed webhooks."""
