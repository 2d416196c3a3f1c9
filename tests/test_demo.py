"""`ghost demo`, the README's first command: the main job over JSON-RPC on a throwaway localnet."""

from __future__ import annotations

import json
import subprocess
import sys

from ghostpay.reputation import Tier


def ghost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ghostpay.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


def test_demo_registers_pays_rates_and_reads_the_reputation() -> None:
    run = ghost("demo", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    state = result["state"]
    assert (state["x402_enabled"], state["x402_price_per_call"], state["x402_total_calls"],
            state["x402_total_payments"]) == (True, 10_000, 1, 10_000)
    # one paid call rated 5 stars at 245 ms, all on one day: volume consistency is 0 (see the vectors)
    reputation = result["reputation"]
    assert (reputation["payment_success"], reputation["service_quality"], reputation["response_time"],
            reputation["volume_consistency"], reputation["score"]) == (10_000, 10_000, 10_000, 0, 9_000)
    assert state["reputation_score"] == 9_000 and reputation["tier"] == Tier.ELITE.value
    assert set(result["signatures"]) == {"register_agent", "x402_payment", "submit_feedback"}


def test_demo_against_an_unreachable_url_is_one_clean_error() -> None:
    run = ghost("demo", "--url", "http://127.0.0.1:9")
    assert run.returncode == 1
    assert run.stderr.strip().startswith("error: cannot reach a Solana RPC at http://127.0.0.1:9")
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
