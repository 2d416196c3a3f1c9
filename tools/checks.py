"""The static checks: ruff's lint over the repository, ruff's format on the files formatted so far, mypy.

    python -m tools.checks        # what `make check` runs after the codegen and build checks

The tools are the versions pinned in the dev extra, run from this environment; their scopes live in
pyproject.toml ([tool.ruff], [tool.ghostpay.checks] `formatted`, [tool.mypy]). tests/test_checks.py runs
the same commands, so the suite fails on what `make check` would.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


def formatted() -> list[str]:
    """The paths `ruff format --check` covers."""
    with PYPROJECT.open("rb") as f:
        paths: list[str] = tomllib.load(f)["tool"]["ghostpay"]["checks"]["formatted"]
    return paths


def commands() -> dict[str, list[str]]:
    python = sys.executable
    return {
        "ruff check": [python, "-m", "ruff", "check", "--no-cache", "."],
        "ruff format": [python, "-m", "ruff", "format", "--no-cache", "--check", *formatted()],
        "mypy": [python, "-m", "mypy"],
    }


def run(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """One check (its command with `extra` arguments), from the repository's root."""
    return subprocess.run([*commands()[name], *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)


def main() -> int:
    failed = []
    for name in commands():
        done = run(name)
        if done.returncode != 0:
            failed.append(name)
            print(done.stdout + done.stderr, file=sys.stderr)
        print(f"{name}: {'FAILED' if done.returncode else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
