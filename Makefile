# The two commands of the README are `make demo` and `make test`; both set up first.
.PHONY: setup demo test codegen program check bench bench-localnet bench-sdk bench-indexer bench-indexer-scale bench-search-scale bench-cli bench-api \
	bench-x402 bench-x402-buyer bench-mcp bench-economics bench-decoders bench-trust bench-scale-out

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/ghost demo

test: setup
	.venv/bin/pytest

# Regenerate the C header and the Python bindings from idl/ghostpay.json.
codegen: setup
	.venv/bin/python -m tools.codegen

# Rebuild ghostpay/program/ghostpay.so from program/.
program: setup
	.venv/bin/python -m tools.build_program

# Fail if anything generated or built is stale, then on ruff's lint and format and on mypy (scopes in pyproject.toml).
check: setup
	.venv/bin/python -m tools.codegen --check
	.venv/bin/python -m tools.build_program --check
	.venv/bin/python -m tools.checks

bench: setup
	.venv/bin/python -m bench.compute_units

# Localnet start-up, send-and-confirm over HTTP (1, 4, 16 in flight) ÷ in-process, getProgramAccounts over
# 10,000 agents, RSS and start-up as the ledger grows to 100,000 transactions (LOCALNET_BENCH_GROWTH=1000000 for a million).
bench-localnet: setup
	.venv/bin/python -m bench.localnet

# The SDK's payments/s and p50 with 1 and 16 tasks beside a lean solana-py client → bench/results/sdk.json.
bench-sdk: setup
	.venv/bin/python -m bench.sdk

# ghost --help and ghost agent search over 10,000 indexed agents, wall time as a user sees it.
bench-cli: setup
	.venv/bin/python -m bench.cli

# Indexer back-fill throughput over 10,000+ transactions and live lag → bench/results/indexer.json.
bench-indexer: setup
	.venv/bin/python -m bench.indexer

# 100,000 events back-filled (RSS along the way), then ghost agent search over them → bench/results/indexer_scale.json.
bench-indexer-scale: setup
	.venv/bin/python -m bench.indexer_scale

# ghost agent search over 1k / 10k / 100k realistic agents, from the chain and from the index: wall time and peak RSS of
# the process, start included → bench/results/search_scale.json.
bench-search-scale: setup
	.venv/bin/python -m bench.search_scale

# ghost indexer serve: API response times over 10,000 agents and 50,000 payments, live feed delay → bench/results/api.json.
bench-api: setup
	.venv/bin/python -m bench.api

# Paid x402 calls through ghost x402 proxy + ghost facilitator (official, bench-only and product buyers; cold from
# process start) next to the official stack → bench/results/x402.json,
# then the buyer's overhead per call (as bench-x402-buyer) → bench/results/x402_buyer.json.
bench-x402: setup
	.venv/bin/python -m bench.x402

# The x402 buyer's overhead per paid call (quote, sign, verify + settle) → bench/results/x402_buyer.json.
bench-x402-buyer: setup
	.venv/bin/python -m bench.x402_buyer

# Sybil farms against the trust score: an economy of 1,000 buyers and 200 sellers with three farm shapes, ranks, AUC,
# precision@k, the price of the top 10 %, the recomputation at 100,000 agents and 1,000,000 payments → bench/results/trust.json.
bench-trust: setup
	.venv/bin/python -m bench.trust

# µs per decoded Agent account, event and transaction's logs: ghostpay.borsh_layout beside construct → bench/results/decoders.json.
bench-decoders: setup
	.venv/bin/python -m bench.decoders

# MCP tool calls over stdio and HTTP beside the SDK in-process → bench/results/mcp.json.
bench-mcp: setup
	.venv/bin/python -m bench.mcp

# SOL spent and locked per recorded call (fee payer, buyers, seller), before and after, ledger growth, the facilitator's
# memory over a soak → bench/results/economics.json (issue 25's figures: ARGS="--calls 10000 --soak-seconds 600").
bench-economics: setup
	.venv/bin/python -m bench.economics $(ARGS)

# Replicas on one PostgreSQL (issue 32), one table per section of bench/scale_out.py: the live feed's delay with 3 API
# replicas, NOTIFY beside polling → bench/results/scale_out.json.
bench-scale-out: setup
	.venv/bin/python -m bench.scale_out
