"""A localnet in a subprocess on free ports with a temporary ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ghostpay.localnet import process
from ghostpay.localnet.process import free_port_pair

__all__ = ["ROOT", "LocalnetProcess", "free_port_pair"]

ROOT = Path(__file__).resolve().parents[2]


class LocalnetProcess(process.LocalnetProcess):
    """A localnet with its own data folder beside the ledger, so tests never touch the user's."""

    def __init__(self, ledger: Path, *extra: str) -> None:
        super().__init__(ledger, *extra, home=ledger.parent / "home")


@pytest.fixture(scope="session")
def localnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalnetProcess]:
    """One localnet shared by the tests that do not restart it."""
    net = LocalnetProcess(tmp_path_factory.mktemp("localnet") / "ledger").start()
    yield net
    net.stop()
