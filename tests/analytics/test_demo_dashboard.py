"""`ghost demo --dashboard`: the main job, then its dashboard served over the session's index until Ctrl-C."""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

GHOST = str(Path(sys.executable).with_name("ghost"))


def test_demo_ends_serving_its_dashboard(tmp_path: Path) -> None:
    # stdout to a file, not a pipe nobody reads until the end: the session prints more than a pipe holds
    stdout = (tmp_path / "stdout.txt").open("w+")
    process = subprocess.Popen(
        [GHOST, "demo", "--dashboard", "--port", "0"],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    try:
        assert process.stderr is not None
        url, deadline, seen = "", time.monotonic() + 240, []
        while not url and time.monotonic() < deadline and process.poll() is None:
            if select.select([process.stderr], [], [], 1)[0]:
                seen.append(process.stderr.readline())
                found = re.search(r"GhostPay dashboard: (http://\S+)", seen[-1])
                url = found.group(1) if found else ""
        assert url, "".join(seen)
        metrics = httpx.get(url + "api/metrics/x402?period=86400").json()
        # three paid with payment send, one over HTTP with ghost x402 call; all rated as successful
        assert metrics["payments"]["total"] == 4 and metrics["payments"]["successful"] == 4
        assert [a["name"] for a in httpx.get(url + "api/agents?sort=reputation").json()["items"]] == [
            "Translator",
            "Summarizer",
        ]
        assert "GhostPay dashboard" in httpx.get(url).text
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C, to this process only
        assert process.wait(60) == 0
    stdout.seek(0)
    assert "main job done; stopped the throwaway localnet" in stdout.read()
    stdout.close()


def test_a_busy_dashboard_port_is_refused_before_the_session() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [GHOST, "demo", "--dashboard", "--port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; pick another port with --port"
    )
    assert "agent register" not in run.stdout  # no session ran first
