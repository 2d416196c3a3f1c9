"""A small, known GhostPay history made through the SDK on a localnet, and indexed: three agents (one
accepting two mints of different decimals), two payers, paid calls with and without feedback, and
a work order. Tests compare what the API, the CLI and the dashboard show with what was sent here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.indexer.service import Indexer, IndexerConfig
from ghostpay.token_labels import LABELS_FILE, TokenLabels
from tests.localnet.conftest import LocalnetProcess

SOL = 1_000_000_000
DAY = 86_400


def cheat(url: str, method: str, *params: object) -> object:
    answer = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10
    ).json()
    assert "error" not in answer, answer
    return answer["result"]


def time_travel(url: str, seconds: int) -> None:
    now = cheat(url, "getBlockTime", cheat(url, "getSlot"))
    cheat(url, "surfnet_timeTravel", {"absoluteTimestamp": (now + seconds) * 1000})  # type: ignore[operator]


def funded(url: str, mints: list[Pubkey] = ()) -> Keypair:  # type: ignore[assignment]
    keypair = Keypair()
    cheat(url, "surfnet_setAccount", str(keypair.pubkey()), {"lamports": 10 * SOL})
    for mint in mints:
        cheat(url, "surfnet_setTokenAccount", str(keypair.pubkey()), str(mint), {"amount": 10**12})
    return keypair


@dataclass
class Paid:
    agent: Pubkey
    mint: Pubkey
    atomic: int
    signature: str
    outcome: str  # recorded (no feedback), success, failed
    response_time_ms: int = 0
    reference: bytes = b""


@dataclass
class World:
    net: LocalnetProcess
    db_url: str
    usdc: Pubkey  # 6 decimals, labelled USDC on this localnet
    bonk: Pubkey  # 9 decimals, no label
    home: Path  # the data folder of the servers the tests start (its token-labels.json names usdc)
    agents: dict[str, Pubkey] = field(default_factory=dict)  # agent_id -> address
    owners: dict[str, Keypair] = field(default_factory=dict)
    payers: list[Keypair] = field(default_factory=list)
    payments: list[Paid] = field(default_factory=list)
    work_order: Pubkey | None = None
    client: Keypair | None = None

    async def pay(
        self,
        payer: Keypair,
        agent_id: str,
        mint: Pubkey,
        amount: Decimal,
        feedback: bool | None = None,
        response_time_ms: int = 0,
    ) -> Paid:
        """One paid call (and the payer's feedback: True success, False failed, None none)."""
        decimals = 6 if mint == self.usdc else 9
        async with GhostPayClient(self.net.http_url, payer, ws_url=self.net.ws_url) as gp:
            paid = await gp.pay_agent(self.agents[agent_id], amount=amount, mint=mint)
            if feedback is not None:
                await gp.submit_feedback(
                    self.agents[agent_id],
                    paid.reference,
                    success=feedback,
                    response_time_ms=response_time_ms,
                    rating=5 if feedback else 1,
                )
        record = Paid(
            self.agents[agent_id],
            mint,
            int(amount.scaleb(decimals)),
            str(paid.signature),
            "recorded" if feedback is None else "success" if feedback else "failed",
            response_time_ms,
            paid.reference,
        )
        self.payments.append(record)
        return record

    async def index(self) -> None:
        labels = str(self.home / LABELS_FILE)  # its test USDC is trusted on this localnet, for the trust score
        await Indexer(IndexerConfig(self.net.http_url, self.net.ws_url, self.db_url, token_labels=labels)).run(
            once=True
        )


async def build(net: LocalnetProcess, db_url: str, home: Path) -> World:
    url = net.http_url
    usdc = Pubkey.from_string(cheat(url, "surfnet_createMint", {"decimals": 6})["value"])  # type: ignore[index]
    bonk = Pubkey.from_string(cheat(url, "surfnet_createMint", {"decimals": 9})["value"])  # type: ignore[index]
    TokenLabels(home / LABELS_FILE).add(str(cheat(url, "getGenesisHash")), "USDC", str(usdc), test_mint=True)
    world = World(net, db_url, usdc, bonk, home)
    specs = [
        ("translator", "Translator", ["translate"], Decimal("0.01"), [usdc]),
        ("summarizer", "Summarizer", ["summarize", "translate"], Decimal("0.02"), [usdc]),
        ("coder", "Coder", ["code"], Decimal("0.05"), [usdc, bonk]),
    ]
    for agent_id, name, capabilities, price, tokens in specs:
        owner = funded(url, [usdc])
        async with GhostPayClient(url, owner, ws_url=net.ws_url) as gp:
            reg = await gp.register_agent(
                agent_id,
                name,
                capabilities=capabilities,
                x402=X402Settings({t: price for t in tokens}, f"https://{agent_id}.example/api"),
            )
        world.agents[agent_id], world.owners[agent_id] = reg.address, owner
        time_travel(url, 1)  # distinct creation times: "newest" has no ties (which the index and the chain
        # would break differently: by the address's base58 text there, by its bytes here)
    world.payers = [funded(url, [usdc, bonk]) for _ in range(2)]
    a, b = world.payers
    plan = [
        (a, "translator", usdc, "0.01", True, 400),
        (a, "translator", usdc, "0.01", True, 600),
        (b, "translator", usdc, "0.012", None, 0),
        (b, "summarizer", usdc, "0.02", False, 2_000),
        (a, "summarizer", usdc, "0.02", True, 0),
        (a, "coder", usdc, "0.05", None, 0),
        (b, "coder", bonk, "0.05", True, 1_000),
        (b, "coder", bonk, "0.07", None, 0),
    ]
    for n, (payer, agent_id, mint, amount, feedback, ms) in enumerate(plan):
        if n in (3, 6):  # over three days, so the volume chart has history (the last day ends now)
            time_travel(url, DAY // 2)
        await world.pay(payer, agent_id, mint, Decimal(amount), feedback, ms)
    world.client = a
    arbiter = funded(url)
    async with GhostPayClient(url, a, ws_url=net.ws_url) as gp:
        order = await gp.create_work_order(
            world.agents["translator"],
            Decimal("5"),
            deadline=timedelta(days=7),
            arbiter=arbiter.pubkey(),
            title="Translate the manual",
            mint=usdc,
            order_id=7,
        )  # SQLite caps u64 ids above 2^63 - 1 (models.U64)
    async with GhostPayClient(url, world.owners["translator"], ws_url=net.ws_url) as gp:
        await gp.accept_work_order(order.address)
    world.work_order = order.address
    await world.index()
    return world


def build_sync(net: LocalnetProcess, db_url: str, home: Path) -> World:
    return asyncio.run(build(net, db_url, home))
