"""`ghost demo`, the README's first command: the main job as a scripted `ghost` session on a throwaway localnet."""

from __future__ import annotations

import json
import subprocess
import sys


def ghost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ghostpay.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def test_demo_runs_the_main_job_through_the_cli() -> None:
    run = ghost("--output", "json", "demo")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)  # one JSON document, nothing else
    assert result["throwaway_localnet"] is True
    commands = [step["command"] for step in result["steps"]]
    translator, summarizer = result["agents"]["translator"], result["agents"]["summarizer"]

    registered = [s["output"] for s in result["steps"] if " agent register " in s["command"]]
    assert [r["x402"] for r in registered] == [True, True]  # registered and priced in one transaction each
    found = next(s["output"] for s in result["steps"] if "agent search --x402-enabled --capability" in s["command"])
    assert found["source"] == "chain" and [a["address"] for a in found["agents"]] == [translator, summarizer]
    paid = [s["output"] for s in result["steps"] if " payment send " in s["command"]]
    assert [p["amount"] for p in paid] == ["0.010000", "0.010000", "0.020000"]
    assert sum(" payment feedback " in c for c in commands) == 3
    released = next(s["output"] for s in result["steps"] if " escrow release " in s["command"])
    assert released["status"] == "closed" and released["work_order"] == result["work_order"]

    history = next(s["output"] for s in result["steps"] if " agent payment-history " in s["command"])
    assert history["source"] == "indexer"
    assert sorted(p["reference"] for p in history["payments"]) == sorted(result["references"][:2])
    table = next(s["output"] for s in result["steps"] if "--sort reputation" in s["command"])
    assert table["source"] == "indexer" and [a["address"] for a in table["agents"]] == [translator, summarizer]
    reputation = next(s["output"] for s in result["steps"] if " agent reputation " in s["command"])
    assert reputation["score"] == table["agents"][0]["reputation_score"] > 0


def test_demo_against_an_unreachable_url_is_one_clean_error() -> None:
    run = ghost("demo", "--url", "http://127.0.0.1:9")
    assert run.returncode == 1
    assert run.stderr.strip().startswith("error: cannot reach a Solana RPC at http://127.0.0.1:9")
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
