"""What every benchmark ends with: its table on stdout and its rows in bench/results/<name>.json."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# GHOSTPAY_BENCH_RESULTS sends the results elsewhere, and GHOSTPAY_BENCH_SMOKE=1 shrinks every benchmark to a few
# operations: tests/test_bench_smoke.py runs each that way, so a benchmark that no longer runs fails the suite.
RESULTS_DIR = Path(os.environ.get("GHOSTPAY_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
SMOKE = os.environ.get("GHOSTPAY_BENCH_SMOKE") == "1"


def size(full: int, smoke: int) -> int:
    """`full` for a measurement; `smoke` under GHOSTPAY_BENCH_SMOKE=1 (the figures then mean nothing)."""
    return smoke if SMOKE else full


def report(table: Table, rows: list[Any], name: str, console: Console, width: int | None = None) -> Path:
    """Print `table`, write `rows` (dataclasses) to bench/results/`name`.json, say where on `console`."""
    Console(width=width).print(table)
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    console.print(f"wrote {path}")
    return path


def latency_table(title: str, rows: list[Any], labels: tuple[str, ...]) -> Table:
    """A table of rows with `labels` fields then `p50_ms` and `p90_ms`."""
    table = Table(title=title)
    for column in (*labels, "p50 ms", "p90 ms"):
        table.add_column(column, justify="right" if column.endswith("ms") else "left")
    for row in rows:
        table.add_row(*(str(getattr(row, label)) for label in labels), f"{row.p50_ms:.1f}", f"{row.p90_ms:.1f}")
    return table
