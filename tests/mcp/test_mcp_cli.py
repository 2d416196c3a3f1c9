"""`ghost mcp`'s start-up: a budget is mandatory (CLI and SDK), usage errors, and `ghost --help` that
does not import the mcp package."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ghostpay.exceptions import InvalidArgument
from ghostpay.mcp.service import McpSettings
from ghostpay.spending import Limits, SpendingGuards
from tests.cli.conftest import ghost


def test_refuses_to_start_without_a_budget(net: Any, wallet: Any, home: Path) -> None:
    _, key = wallet
    env = {"GHOSTPAY_HOME": str(home), "GHOST_URL": net.http_url, "GHOST_CONFIG": ""}
    assert "needs a spending budget" in ghost("-k", key, "mcp", env=env).one_line_error(2)
    assert "needs a spending budget" in ghost("-k", key, "mcp", "--max-per-call", "0.1", env=env).one_line_error(2)
    assert "--transport must be one of" in ghost(
        "-k", key, "mcp", "-t", "sse", "--budget-daily", "1", env=env
    ).one_line_error(2)
    assert "set GHOST_MCP_TOKEN or pass --token-file FILE" in ghost(
        "-k", key, "mcp", "-t", "http", "--host", "0.0.0.0", "--budget-daily", "1", env=env
    ).one_line_error(2)
    assert "--token-file" in ghost(
        "-k", key, "mcp", "-t", "http", "--token", "s3cret", "--budget-daily", "1", env=env
    ).one_line_error(2)  # no secret on the command line
    empty = home / "empty-token"
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_text("")
    assert f"--token-file {empty} is empty" in ghost(
        "-k", key, "mcp", "-t", "http", "--token-file", str(empty), "--budget-daily", "1", env=env
    ).one_line_error(2)
    assert "must be" in ghost("-k", key, "mcp", "--budget-daily", "lots", env=env).one_line_error(2)
    assert "not found" in ghost("-k", home / "none.json", "mcp", "--budget-daily", "1", env=env).one_line_error(1)


def test_settings_need_a_budget_for_every_mint() -> None:
    with pytest.raises(InvalidArgument, match="needs a spending budget"):
        McpSettings(SpendingGuards(per_call=Decimal("0.1")))
    with pytest.raises(InvalidArgument):  # a budget for one mint leaves the others unlimited
        McpSettings(SpendingGuards(mint_limits={"M1": Limits(daily=Decimal(1))}))
    McpSettings(SpendingGuards(mint_limits={"M1": Limits(daily=Decimal(1))}, allowed_mints={"M1"}))
    McpSettings(SpendingGuards(hourly=Decimal(1)))


def test_help_does_not_import_mcp() -> None:
    probe = (
        "import sys\nfrom ghostpay.cli.main import app\n"
        "for argv in (['--help'], ['mcp', '--help']):\n"
        "    try:\n        app(argv)\n    except SystemExit as exc:\n        assert exc.code == 0, argv\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mcp' or m.startswith('ghostpay.mcp')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
