"""The systemd units in docs/: each ExecStart is a `ghost` command line the installed CLI accepts (every option
known, every value of the right kind), and each unit has what a service needs to stop and restart cleanly."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GHOST = str(Path(sys.executable).with_name("ghost"))
UNITS = sorted((ROOT / "docs").glob("*.service"))


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive in systemd
    parser.read_string(path.read_text())
    return parser


def test_there_is_a_unit_for_each_long_running_command() -> None:
    commands = {" ".join(shlex.split(unit(p)["Service"]["ExecStart"])[1:3]) for p in UNITS}
    assert {"indexer run", "indexer serve", "facilitator start", "x402 proxy"} <= commands


@pytest.mark.parametrize("path", UNITS, ids=[p.name for p in UNITS])
def test_the_unit_runs_a_command_the_cli_accepts(path: Path, tmp_path: Path) -> None:
    service = unit(path)["Service"]
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert service["ExecStart"].startswith("/opt/ghostpay/.venv/bin/ghost ")
    # a template unit's instance name (%i) is the port it serves on
    exec_start = service["ExecStart"].replace("${CREDENTIALS_DIRECTORY}", str(tmp_path)).replace("%i", "8081")
    argv = shlex.split(exec_start)[1:]
    for name in ("api-token", "facilitator-key"):
        (tmp_path / name).write_text("s3cret\n")
    # --help after the options: click parses (and refuses) every option before it shows the help.
    checked = subprocess.run([GHOST, *argv, "--help"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert "Usage: ghost " + " ".join(argv[:2]) in checked.stdout
