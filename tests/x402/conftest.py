"""One localnet for the x402 tests, an official facilitator served over HTTP on it, and funded parties."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.client import GhostPayClient
from ghostpay.x402.guards import GuardedWallet, SpendingGuards
from tests.localnet.conftest import LocalnetProcess
from tests.sdk.conftest import create_mint, fund, mint_to
from tests.x402.official_stack import Served, official_facilitator_app

PRICE = 10_000  # atomic units: 0.01 of a 6-decimal mint


@pytest.fixture(scope="session")
def x402_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalnetProcess]:
    node = LocalnetProcess(tmp_path_factory.mktemp("x402-localnet") / "ledger").start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def official_facilitator(x402_net: LocalnetProcess) -> Iterator[Served]:
    """The package's facilitator logic behind HTTP, its fee payer funded on the localnet."""
    with Served(official_facilitator_app(fund(x402_net), x402_net.http_url)) as served:
        yield served


@dataclass
class Seller:
    """A wallet that sells: its token account for `mint` exists (the official client never creates it)."""

    wallet: Pubkey
    mint: Pubkey


def new_seller(net: LocalnetProcess, mint: Pubkey) -> Seller:
    wallet = fund(net, sol=1).pubkey()
    mint_to(net, wallet, mint, 0)
    return Seller(wallet, mint)


@pytest.fixture
def mint(x402_net: LocalnetProcess) -> Pubkey:
    return create_mint(x402_net, 6)


@pytest.fixture
def seller(x402_net: LocalnetProcess, mint: Pubkey) -> Seller:
    return new_seller(x402_net, mint)


@pytest.fixture
def buyer_keypair(x402_net: LocalnetProcess, mint: Pubkey) -> Keypair:
    """A buyer holding 1 token of `mint`."""
    keypair = fund(x402_net, sol=1)
    mint_to(x402_net, keypair.pubkey(), mint, 1_000_000)
    return keypair


@pytest.fixture
async def buyer(x402_net: LocalnetProcess, buyer_keypair: Keypair) -> AsyncIterator[GhostPayClient]:
    async with GhostPayClient(x402_net.http_url, buyer_keypair, ws_url=x402_net.ws_url) as gp:
        yield gp


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "spending.sqlite3"


def guarded(path: Path, **limits: object) -> GuardedWallet:
    return GuardedWallet(SpendingGuards(**limits), path)  # type: ignore[arg-type]
