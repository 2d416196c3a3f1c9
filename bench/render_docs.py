"""The benchmarks' figures in the docs, rendered from bench/results/*.json so they cannot drift.

    python -m bench.render_docs           # rewrite the tables in docs/performance.md (after running a benchmark)
    python -m bench.render_docs --check   # exit 1 if a table is stale (tests/test_render_docs.py does this)

A table sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`, NAME being a results file's stem; what is
between the markers is replaced, the rest of the page is left alone.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
PAGES = (ROOT / "docs" / "performance.md", ROOT / "docs" / "scale.md")
MARKED = re.compile(r"(<!-- bench:(?P<name>\w+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)

Row = dict[str, Any]
Column = tuple[str, str]  # (header, key of the row)


def number(value: Any) -> str:
    """Thousands separated, at most two decimals from 1 up and nine below (lamport-sized SOL figures), never an
    exponent; a whole float as an integer; None empty."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    digits = 2 if abs(value) >= 1 else 9
    return f"{value:,.{digits}f}".rstrip("0").rstrip(".")


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return number(value).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def columns(*spec: Column) -> Callable[[list[Row]], str]:
    """A table with one column per (header, key)."""
    return lambda rows: markdown([h for h, _ in spec], [[row[key] for _, key in spec] for row in rows])


def latency_pivot(row_key: str, column_key: str, low: str, high: str) -> Callable[[list[Row]], str]:
    """Rows by `row_key`, a column per `column_key`: each cell `low` (`high`), e.g. p50 (p90)."""

    def render(rows: list[Row]) -> str:
        row_names = list(dict.fromkeys(r[row_key] for r in rows))
        column_names = list(dict.fromkeys(r[column_key] for r in rows))
        cells = {(r[row_key], r[column_key]): f"{number(r[low])} ({number(r[high])})" for r in rows}
        return markdown(
            [row_key, *column_names], [[name, *(cells.get((name, c), "") for c in column_names)] for name in row_names]
        )

    return render


def compute_units(rows: list[Row]) -> str:
    """Lowest and highest only where the samples differed."""
    return markdown(
        ["instruction", "case", "mean CU", "lowest", "highest", "samples"],
        [
            [
                r["instruction"],
                r["case"],
                r["compute_units"],
                *((None, None) if r["lowest"] == r["highest"] else (r["lowest"], r["highest"])),
                r["samples"],
            ]
            for r in rows
        ],
    )


def _pairs(backfill: dict[str, Any], key: str) -> str:
    """`, median of n pairs (a, b, …)` when the run alternated back-fill and floor several times."""
    ratios = backfill.get(key, [])
    return f", median of {len(ratios)} pairs ({', '.join(map(str, ratios))})" if len(ratios) > 1 else ""


def indexer(results: dict[str, Any]) -> str:
    history = results["history"]
    rows: list[list[Any]] = [
        [
            "history",
            f"{number(history['transactions'])} transactions "
            f"({history['failed']} failed), generated in {history['seconds']} s",
        ]
    ]
    for key, label, write in (
        ("backfill_sqlite", "SQLite", "executemany"),
        ("backfill_postgresql", "PostgreSQL", "COPY"),
    ):
        if key in results:
            b = results[key]
            rows += [
                [
                    f"back-fill into {label} (goal ≥ {number(b['goal_events_per_second'])} events/s)",
                    f"{number(b['events_per_second'])} events/s ({number(b['events'])} events, "
                    f"{number(b['transactions_per_second'])} tx/s, {b['seconds']} s)",
                ],
                [
                    f"raw floor into {label}: pipelined fetch + decode + {write}, a transaction per batch",
                    f"{number(b['raw_floor']['events_per_second'])} events/s",
                ],
                [
                    "back-fill ÷ raw floor (goal ≥ 0.6)" + _pairs(b, "ratios_to_floor"),
                    b["ratio_to_floor"],
                ],
                *(
                    [["  CPU: floor's CPU s ÷ back-fill's" + _pairs(b, "cpu_ratios_to_floor"), b["cpu_ratio_to_floor"]]]
                    if "cpu_ratio_to_floor" in b
                    else []
                ),
                [f"peak RSS of the {label} back-fill", f"{b['peak_rss_mib']} MiB"],
            ]
    live = results["live_sqlite"]
    for key, label in (("confirmed_to_row_ms", "confirmation"), ("submitted_to_row_ms", "submission")):
        rows.append(
            [
                f"live lag, {label} → row, p50 / p99 (SQLite, {live['payments']} payments)",
                f"{live[key]['p50']} / {live[key]['p99']} ms",
            ]
        )
    return markdown(["metric", "value"], rows)


def x402(rows: list[Row]) -> str:
    """The simulations column is empty in results written before it existed."""
    return columns(
        ("scenario", "scenario"),
        ("concurrency", "concurrency"),
        ("calls", "calls"),
        ("p50 ms", "p50_ms"),
        ("p99 ms", "p99_ms"),
        ("calls/s", "calls_per_s"),
        ("p50 ÷ official", "p50_vs_official"),
        ("CPU ms/call: servers", "server_cpu_ms"),
        ("localnet", "localnet_cpu_ms"),
        ("buyers", "client_cpu_ms"),
        ("simulations per paid call", "simulations"),
    )([{"simulations": None, **row} for row in rows])


def trust(rows: list[Row]) -> str:
    """bench/trust.py's sections: where the farms rank, the price of the top 10 %, the recomputation's time."""
    of = {section: [r["data"] for r in rows if r["section"] == section] for section in ("shape", "price", "scale")}
    shapes = columns(
        ("seeds", "setting"),
        ("farm", "shape"),
        ("best farm rank, on-chain", "best_rank_onchain"),
        ("best farm rank, trust", "best_rank_trust"),
        ("of agents", "agents_ranked"),
        ("AUC, trust", "auc_trust"),
        ("precision@k, trust", "precision_trust"),
        ("tied at the cut", "tied_at_cut_trust"),
        ("honest with ≥ 5 payers not above", "strong_not_above"),
    )(of["shape"])
    prices = columns(
        ("seeds", "setting"),
        ("score", "score"),
        ("cheapest way to the top 10 %", "strategy"),
        ("wallets", "wallets"),
        ("USDC lost", "usdc_lost"),
        ("SOL", "sol"),
        ("USD", "usd"),
        ("× on-chain", "times_onchain"),
        ("× a top-10 % agent's earnings", "times_top_earnings"),
    )(of["price"])
    scale = columns(
        ("agents", "agents"),
        ("payments", "payments"),
        ("edges", "edges"),
        ("build graph s", "build_graph_s"),
        ("iterate s", "iterate_s"),
        ("SybilRank s", "sybilrank_s"),
        ("recompute from SQLite s", "recompute_from_sqlite_s"),
    )(of["scale"])
    return "\n".join((shapes, prices, scale))


def scale_out(results: dict[str, Any]) -> str:
    """bench/scale_out.py: each section's title, its table (a column per row key) and its notes."""
    parts = []
    for section in results["sections"]:
        rows = section["rows"]
        table = markdown(list(rows[0]), [list(r.values()) for r in rows]) if rows else ""
        parts.append(f"**{section['title']}** ({results['cores']} cores)\n\n{table}\n{section['notes']}\n")
    return "\n".join(parts)


METRIC_VALUE_UNIT = columns(("metric", "metric"), ("value", "value"), ("unit", "unit"))
ECONOMICS = columns(
    ("metric", "metric"),
    ("before: a receipt per call", "before"),
    ("after: a PayerStats per buyer and agent", "after"),
    ("unit", "unit"),
    ("how", "how"),
)
RENDERERS: dict[str, Callable[[Any], str]] = {
    "compute_units": compute_units,
    "economics": ECONOMICS,
    "economics_soak": ECONOMICS,
    "x402": x402,
    "x402_keyless": x402,
    "x402_buyer": latency_pivot("transaction", "phase", "p50_ms", "p90_ms"),
    "mcp": latency_pivot("path", "operation", "p50_ms", "p90_ms"),
    "localnet": METRIC_VALUE_UNIT,
    "sdk": columns(
        ("client", "client"),
        ("tasks", "tasks"),
        ("payments/s", "per_second"),
        ("p50 ms", "p50_ms"),
        ("p90 ms", "p90_ms"),
        ("throughput ÷ lean", "throughput_ratio"),
        ("p50 ÷ lean", "p50_ratio"),
    ),
    "cli": columns(("command", "command"), ("median ms", "median_ms"), ("results", "results")),
    "indexer": indexer,
    "scale_out": scale_out,
    "indexer_scale": METRIC_VALUE_UNIT,
    "api": columns(("request", "request"), ("median ms", "median_ms"), ("p95 ms", "p95_ms")),
    "search_scale": columns(
        ("agents", "agents"),
        ("search", "search"),
        ("source", "source"),
        ("ms", "wall_ms"),
        ("peak MiB", "peak_rss_mib"),
        ("goal", "goal"),
    ),
    "trust": trust,
    "decoders": columns(
        ("value decoded", "value"),
        ("construct µs", "construct_us"),
        ("ghostpay.borsh_layout µs", "struct_us"),
        ("speed-up ×", "speedup"),
    ),
}


def table(name: str, results_dir: Path = RESULTS_DIR) -> str:
    return RENDERERS[name](json.loads((results_dir / f"{name}.json").read_text()))


def render(text: str, results_dir: Path = RESULTS_DIR) -> str:
    """`text` with every marked table rendered afresh from `results_dir`."""
    return MARKED.sub(lambda m: m.group(1) + table(m.group("name"), results_dir) + m.group(4), text)


def main(argv: Sequence[str] = sys.argv[1:]) -> int:
    stale = [page for page in PAGES if render(page.read_text()) != page.read_text()]
    if "--check" in argv:
        for page in stale:
            print(f"{page.relative_to(ROOT)} is stale: run python -m bench.render_docs", file=sys.stderr)
        return 1 if stale else 0
    for page in stale:
        page.write_text(render(page.read_text()))
        print(f"rendered {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
