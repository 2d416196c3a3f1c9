"""scripts/setup.sh, run by every `make` target: quick when nothing changed."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_setup_skips_the_install_when_pyproject_is_unchanged() -> None:
    # `make test` ran the set-up just before this suite: a second run finds its stamp and installs nothing.
    stamp = ROOT / ".venv" / ".ghostpay-install-stamp"
    assert (
        stamp.read_text().strip()
        == subprocess.run(
            ["sha256sum", "pyproject.toml"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    run = subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "installing ghostpay" not in run.stderr
