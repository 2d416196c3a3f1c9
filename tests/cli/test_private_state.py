"""Local state is private whatever the umask: files 0600 in folders 0700 (the index holds webhook secrets,
the journal and spend ledger what a wallet paid, the ledger a localnet's whole chain)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_state_created_by_the_sdk_is_private(tmp_path: Path, umask_022: None) -> None:
    from ghostpay.indexer.models import connect
    from ghostpay.localnet.ledger import Ledger
    from ghostpay.spending import SpendLedger
    from ghostpay.x402.facilitator.store import SettledLog

    home = tmp_path / "home"
    SpendLedger(home / "x402" / "spending.sqlite3")
    SettledLog(home / "facilitator" / "facilitator.db").close()
    ledger = Ledger(home / "localnet" / "ledger")
    connect(f"sqlite:///{home / 'indexes' / 'indexer.db'}").dispose()
    files = [
        home / "x402" / "spending.sqlite3",
        home / "localnet" / "ledger" / "ledger.sqlite3",
        home / "indexes" / "indexer.db",
        home / "facilitator" / "facilitator.db",
    ]
    for file in files:
        assert file.exists() and mode(file) == 0o600, file
    for folder in (
        home,
        home / "x402",
        home / "localnet",
        home / "localnet" / "ledger",
        home / "indexes",
        home / "facilitator",
    ):
        assert mode(folder) == 0o700, folder
    wal = [p for p in home.rglob("*-wal")]
    assert wal and all(mode(p) == 0o600 for p in wal)  # SQLite copies the database file's mode
    ledger.close()


def test_config_written_by_the_cli_is_private(tmp_path: Path) -> None:
    ghost = str(Path(sys.executable).with_name("ghost"))
    config = tmp_path / "conf" / "ghost" / "config.toml"
    env = {**os.environ, "GHOST_CONFIG": str(config), "GHOSTPAY_HOME": str(tmp_path / "data")}
    run = subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$0" config set x402.daily_budget.USDC 1', ghost],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert mode(config) == 0o600 and mode(config.parent) == 0o700 and mode(config.parent.parent) == 0o700
