"""`ghost demo`, the README's first command: the main job as a scripted `ghost` session on a throwaway localnet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

GHOST = str(Path(sys.executable).with_name("ghost"))  # the installed command, as a user runs it


def ghost(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHOST_")}  # the demo follows GHOST_URL
    return subprocess.run([GHOST, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def shadowing_folder(tmp_path: Path) -> Path:
    """A folder holding a broken clone named `ghostpay/`: a child started there with `python -m` would import it."""
    clone = tmp_path / "work" / "ghostpay"
    clone.mkdir(parents=True)
    (clone / "__init__.py").write_text('raise ImportError("the clone in the current folder was imported")\n')
    return clone.parent


def test_demo_runs_the_main_job_through_the_cli(tmp_path: Path) -> None:
    # From a folder with a clone named ghostpay/ in it: every child still runs the installed package.
    run = ghost("--output", "json", "demo", cwd=shadowing_folder(tmp_path))
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

    # bought over real HTTP: the proxy's 402, paid through the facilitator, recorded in the same transaction
    assert sum(s["command"].endswith(" &") for s in result["steps"]) == 2  # facilitator and proxy in the background
    discovered = next(s["output"] for s in result["steps"] if " x402 discover " in s["command"])
    listed = {i["extensions"]["ghostpay"]["agent"]: i for i in discovered["items"]}  # the Bazaar, from the chain
    assert set(listed) == {translator, summarizer}  # both summarize
    assert listed[summarizer]["accepts"][0]["amount"] == "20000"  # 0.02 USDC, its on-chain price
    bought, retried = [s["output"] for s in result["steps"] if " x402 call " in s["command"]]
    assert bought["status"] == 200 and bought["body"]["summary"].startswith("GhostPay lets AI agents")
    payment = bought["payment"]
    assert (payment["agent"], payment["amount"], payment["verified"], payment["settled"]) == (
        summarizer,
        "0.020000",
        True,
        True,
    )
    assert payment["payer_stats"] and payment["feedback"]  # rated on chain (--feedback auto)
    # the retry with the same idempotency key: the same answer and the same payment, nothing paid again
    assert retried["body"] == bought["body"] and retried["payment"]["replayed"] is True
    assert retried["payment"]["signature"] == payment["signature"]

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


def test_demo_honours_the_global_url_and_stops_cleanly_on_ctrl_c(tmp_path) -> None:
    import time
    from pathlib import Path

    import pexpect

    from tests.localnet.conftest import LocalnetProcess

    net = LocalnetProcess(tmp_path / "ledger").start()
    try:  # -u before or after the command: the demo runs on that localnet, not a throwaway one
        run = ghost("-u", net.http_url, "--output", "json", "demo")
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert result["throwaway_localnet"] is False and result["rpc_url"] == net.http_url
    finally:
        net.stop()

    ghost_script = str(Path(sys.executable).with_name("ghost"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHOST_")}
    child = pexpect.spawn(ghost_script, ["demo"], encoding="utf-8", timeout=120, env={**env, "COLUMNS": "200"})
    child.expect("agent register translator")  # mid-session, with the throwaway localnet running
    children = Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()
    assert children, "the throwaway localnet runs as a child process"
    # Ctrl-C signals the terminal's foreground process group: the localnet is out of it, so the demo stops
    # it after its own clean-up instead of finding its RPC gone mid-command (which exited 1).
    assert all(os.getpgid(int(pid)) != os.getpgid(child.pid) for pid in children)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    output = child.before
    assert child.exitstatus == 130, output
    assert "error: interrupted; the demo stopped and its throwaway localnet with it" in output
    assert "Traceback" not in output
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(
        Path(f"/proc/{pid}/cmdline").exists() and b"ghostpay.localnet" in Path(f"/proc/{pid}/cmdline").read_bytes()
        for pid in children
    )
