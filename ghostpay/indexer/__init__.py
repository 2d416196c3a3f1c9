"""The GhostPay indexer: program events over the websocket and JSON-RPC into SQLite or PostgreSQL.

datasource (`source`) → decoder (`ghostpay.events.decode_logs`) → processor (`process`, exactly-once upserts) → tables
(`models`); `queries` reads them, `verify` checks them against the chain, `service` runs it all.
"""
