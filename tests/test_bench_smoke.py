"""Every benchmark target of the Makefile runs: its command, as the Makefile writes it, with GHOSTPAY_BENCH_SMOKE=1
(a few operations instead of thousands) and GHOSTPAY_BENCH_RESULTS a temporary folder (bench/results/ untouched),
must exit 0 and write its results file there. The figures of such a run mean nothing; only that it ran."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.localnet.conftest import ROOT

# A Makefile recipe line that runs a benchmark: `.venv/bin/python -m bench.<module> [args]`.
RECIPE = re.compile(r"^(bench[\w-]*):.*\n\t\.venv/bin/python (-m bench\.\w+.*)$", re.M)
# Covered by a test of its own, which runs it small and checks its figures.
ELSEWHERE = {"bench-economics": "tests/test_bench_economics.py"}
# What each target writes (bench-x402 ends with the buyer's benchmark too).
RESULTS = {
    "bench": ["compute_units"],
    "bench-localnet": ["localnet"],
    "bench-sdk": ["sdk"],
    "bench-cli": ["cli"],
    "bench-indexer": ["indexer"],
    "bench-indexer-scale": ["indexer_scale"],
    "bench-search-scale": ["search_scale"],
    "bench-api": ["api"],
    "bench-x402": ["x402", "x402_buyer"],
    "bench-x402-buyer": ["x402_buyer"],
    "bench-mcp": ["mcp"],
    "bench-decoders": ["decoders"],
    "bench-trust": ["trust"],
    "bench-scale-out": ["scale_out"],
}


def targets() -> dict[str, list[str]]:
    """Each bench target of the Makefile and its command, the interpreter being this one."""
    makefile = (ROOT / "Makefile").read_text()
    found = {
        name: [sys.executable, *shlex.split(command.replace("$(ARGS)", ""))]
        for name, command in RECIPE.findall(makefile)
    }
    declared = set(re.findall(r"^(bench[\w-]*):", makefile, re.M))
    assert declared == set(found), f"bench targets whose recipe is not `python -m bench.…`: {declared - set(found)}"
    return found


def test_every_target_is_smoke_run() -> None:
    assert set(targets()) == set(RESULTS) | set(ELSEWHERE)
    for test in ELSEWHERE.values():
        assert (ROOT / test).exists(), test


@pytest.mark.parametrize("target", sorted(RESULTS))
def test_benchmark_runs(target: str, tmp_path: Path) -> None:
    env = {**os.environ, "GHOSTPAY_BENCH_SMOKE": "1", "GHOSTPAY_BENCH_RESULTS": str(tmp_path)}
    for name in (
        "GHOSTPAY_BENCH_X402_CALLS",
        "GHOSTPAY_BENCH_X402_KEYLESS",
        "X402_BENCH_CALLS",
        "MCP_BENCH_CALLS",
        "GHOSTPAY_CU_SAMPLES",
        "SDK_BENCH_PAYMENTS",
        "LOCALNET_BENCH_GROWTH",
    ):
        env.pop(name, None)  # sizes of a real run
    done = subprocess.run(targets()[target], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    for name in RESULTS[target]:
        assert json.loads((tmp_path / f"{name}.json").read_text()), name


def test_localnet_send_only_mode_runs(tmp_path: Path) -> None:
    """LOCALNET_BENCH_SEND_ONLY=1 (the quick before/after of send and confirm) writes its own results file, with the
    ceiling and each asked level's rate and ratio, and leaves the full run's file alone."""
    env = {
        **os.environ,
        "GHOSTPAY_BENCH_SMOKE": "1",
        "GHOSTPAY_BENCH_RESULTS": str(tmp_path),
        "LOCALNET_BENCH_SEND_ONLY": "1",
        "LOCALNET_BENCH_IN_FLIGHT": "1",
    }
    command = targets()["bench-localnet"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    rows = json.loads((tmp_path / "localnet_send.json").read_text())
    assert [row["unit"] for row in rows] == ["tx/s", "tx/s", "tx/s", "ratio"]
    assert "1 in flight" in rows[2]["metric"]
    assert not (tmp_path / "localnet.json").exists()
