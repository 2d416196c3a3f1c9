"""The static checks pass (ruff's lint and format, mypy; scopes in pyproject.toml), and they catch what they
are configured for: an unused import, unformatted code, a wrong return type, an unannotated function (strict by
default, as the SDK core is)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import checks


@pytest.mark.parametrize("name", list(checks.commands()))
def test_the_check_passes(name: str) -> None:
    done = checks.run(name)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}{done.stderr}"


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        'import os\n\n\ndef answer(x: int) -> str:\n    return x\n\n\ndef same(x):\n    return x\n\n\nNAMES = {"a":1}\n'
    )
    config = ["--config", str(checks.PYPROJECT)]
    linted = checks.run("ruff check", *config, str(bad))
    assert linted.returncode == 1 and "F401" in linted.stdout
    reformatted = checks.run("ruff format", *config, str(bad))
    assert reformatted.returncode == 1 and "bad.py" in reformatted.stdout
    typed = checks.run("mypy", "--config-file", str(checks.PYPROJECT), str(bad))
    assert typed.returncode == 1 and "[return-value]" in typed.stdout and "[no-untyped-def]" in typed.stdout
