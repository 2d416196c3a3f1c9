"""One localnet subprocess for the SDK tests (the helpers of tests/localnet), plus funded wallets and mints."""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.accounts import X402Receipt
from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.pda import receipt_address
from ghostpay.program_id import PROGRAM_ID
from tests.localnet.conftest import LocalnetProcess

SOL = 1_000_000_000
PRICE = Decimal("0.01")
RECEIPT_RENT = (128 + 194) * 3_480 * 2  # rent-exempt minimum of a legacy X402Receipt (194 bytes)


@pytest.fixture(scope="session")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalnetProcess]:
    node = LocalnetProcess(tmp_path_factory.mktemp("sdk-localnet") / "ledger").start()
    yield node
    node.stop()


def cheat(net: LocalnetProcess, method: str, *params: object) -> object:
    answer = httpx.post(
        net.http_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10
    ).json()
    assert "error" not in answer, answer
    return answer["result"]


def plant_legacy_receipt(
    net: LocalnetProcess,
    agent: Pubkey,
    payer: Pubkey,
    rent_payer: Pubkey,
    mint: Pubkey,
    paid_at: int,
    *,
    registration: int = 1,
    rated: bool = False,
    amount: int = 10_000,
) -> tuple[Pubkey, bytes]:
    """An X402Receipt of a random reference as the program made them before PayerStats (it makes none now),
    planted at its address with its rent; returns the address and the reference."""
    reference = os.urandom(32)
    address, bump = receipt_address(agent, reference)
    data = (
        bytes(X402Receipt.discriminator)
        + bytes(agent)
        + bytes(payer)
        + bytes(rent_payer)
        + bytes(mint)
        + reference
        + struct.pack("<QqQBB", amount, paid_at, registration, int(rated), bump)
    )
    cheat(
        net,
        "surfnet_setAccount",
        str(address),
        {"data": data.hex(), "owner": str(PROGRAM_ID), "lamports": RECEIPT_RENT},
    )
    return address, reference


def fund(net: LocalnetProcess, keypair: Keypair | None = None, sol: int = 10) -> Keypair:
    keypair = keypair or Keypair()
    cheat(net, "surfnet_setAccount", str(keypair.pubkey()), {"lamports": sol * SOL})
    return keypair


def create_mint(net: LocalnetProcess, decimals: int = 6) -> Pubkey:
    return Pubkey.from_string(cheat(net, "surfnet_createMint", {"decimals": decimals})["value"])  # type: ignore[index]


def mint_to(net: LocalnetProcess, owner: Pubkey, mint: Pubkey, atomic: int) -> None:
    cheat(net, "surfnet_setTokenAccount", str(owner), str(mint), {"amount": atomic})


@pytest.fixture
async def client(net: LocalnetProcess) -> AsyncIterator[GhostPayClient]:
    async with GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url) as gp:
        yield gp


@pytest.fixture(scope="session")
def usdc(net: LocalnetProcess) -> Pubkey:
    return create_mint(net, 6)


def time_travel(net: LocalnetProcess, seconds: int) -> None:
    """Move the localnet's clock `seconds` forward (deadlines and review periods are checked against it)."""
    now = cheat(net, "getBlockTime", cheat(net, "getSlot"))
    cheat(net, "surfnet_timeTravel", {"absoluteTimestamp": (now + seconds) * 1000})  # type: ignore[operator]


@dataclass
class Escrow:
    """Three wallets on one localnet: a provider owning an agent that accepts `mint`, a client holding
    100 tokens of it, and an arbiter."""

    provider: GhostPayClient
    client: GhostPayClient
    arbiter: GhostPayClient
    agent: Pubkey
    mint: Pubkey

    async def __aenter__(self) -> Escrow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for gp in (self.provider, self.client, self.arbiter):
            await gp.close()


async def escrow(net: LocalnetProcess, mint: Pubkey, agent_id: str = "worker") -> Escrow:
    provider, client, arbiter = (GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url) for _ in range(3))
    registered = await provider.register_agent(
        agent_id, agent_id.title(), capabilities=["work"], x402=X402Settings({mint: PRICE}, "https://work.example")
    )
    mint_to(net, client.wallet, mint, 100_000_000)
    return Escrow(provider, client, arbiter, registered.address, mint)
