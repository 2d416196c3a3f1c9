"""A small run of bench/economics.py (real localnet, facilitator and proxy): a recorded call costs the fee payer
its fee alone once the buyer's PayerStats exists, nobody else any SOL, and locks nothing per call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CALLS, BUYERS = 24, 3
FEE = 2 * 5_000 + 1  # two signatures, and the buyers' 1 µlamport per CU over a 60,000 CU limit, rounded up
STATS_RENT = (128 + 137) * 3_480 * 2  # a PayerStats' rent-exempt minimum
RECEIPT_RENT = (128 + 194) * 3_480 * 2  # a legacy X402Receipt's
SOL = 1_000_000_000


def test_a_small_economics_run(tmp_path: Path) -> None:
    output = tmp_path / "economics.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.economics",
            "--calls",
            str(CALLS),
            "--buyers",
            str(BUYERS),
            "--soak-seconds",
            "2",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    rows = {row["metric"]: row for row in json.loads(output.read_text())}

    def after(metric: str) -> float:
        return rows[metric]["after"]  # type: ignore[no-any-return]

    assert after("recorded calls") == CALLS
    assert round(after("fee payer: SOL spent per call") * SOL * CALLS) == CALLS * FEE + BUYERS * STATS_RENT
    assert round(after("fee payer: SOL spent per call, steady state") * SOL) == FEE
    assert round(after("fee payer: SOL locked per call") * SOL * CALLS) == BUYERS * STATS_RENT
    assert after("fee payer: SOL locked per call, steady state") == 0
    assert after("buyers: SOL spent per call") == after("seller: SOL spent per call") == 0
    assert after("seller: tokens earned per call") == 0.01
    assert after("new accounts per buyer and agent") == 1
    assert int(after("calls per 100 SOL of fee payer")) == 100 * SOL // FEE
    before = rows["calls per 100 SOL of fee payer"]["before"]
    assert int(before) == 100 * SOL // (FEE + RECEIPT_RENT) == 44_422  # issue 25's soak ran dry after 44,400
    assert after("facilitator RSS after warm-up") > 0 and after("localnet ledger growth per call") > 0
