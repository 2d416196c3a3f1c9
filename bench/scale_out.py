"""Issue 32's figures: GhostPay beyond one process, every service's replicas on one PostgreSQL.

    python -m bench.scale_out   # one table per section, then bench/results/scale_out.json   (make bench-scale-out)
    python -m bench.scale_out_api   # one section alone: its table, no results file

Each section is a module in SECTIONS with `run(smoke: bool) -> {"title", "rows": [...], "notes"}`, the rows being
flat dicts (their keys are the columns). The replicas share this machine's cores with PostgreSQL and the
clients: what saturates first is in each section's notes. GHOSTPAY_BENCH_SMOKE=1 runs each a few operations.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.report import RESULTS_DIR, SMOKE

SECTIONS = [  # one line per section (the lead merges them by union)
    "bench.scale_out_api",  # SSE delivery delay with 3 API replicas: NOTIFY vs polling
    "bench.scale_out_facilitators",  # paid calls/s with 1, 2 and 3 facilitator replicas
    "bench.scale_out_ledger",  # the shared spend ledger's reservations/s, 1 vs 4 processes
]


def show(section: dict[str, Any]) -> None:
    """Print one section's table (and its notes under it)."""
    Console(width=160).print(section_table(section))


def section_table(section: dict[str, Any]) -> Table:
    rows = section["rows"]
    table = Table(title=section["title"], caption=section.get("notes") or None)
    for column in rows[0] if rows else ():
        table.add_column(column, justify="left" if isinstance(rows[0][column], str) else "right")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    return table


def main() -> int:
    console = Console(stderr=True)
    results = []
    for name in SECTIONS:
        section = importlib.import_module(name).run(SMOKE)
        results.append({"section": name.rsplit(".", 1)[1], **section})
        show(section)
    path = RESULTS_DIR / "scale_out.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cores": os.cpu_count(), "sections": results}, indent=2) + "\n")
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
