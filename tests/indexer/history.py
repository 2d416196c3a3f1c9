"""A scripted, seeded GhostPay history on a localnet, sent as raw transactions (fast enough for
10,000 of them): registrations with x402 pricing, payments with feedback, owner updates, failed
transactions, work orders down every path (release, partial release, rejection, claim, the three
kinds of dispute ruling, cancel, decline, the three refunds), an agent priced in two mints of
different decimals, payments whose record names a facilitator as rent payer (it pays a PayerStats' rent when
the payment opens one), a PayerStats closed by its payer, an agent closed once its feedback window has
passed and registered again (its reputation continues) and days passing (surfnet_timeTravel), so the 7-day
reputation window rolls.

    history = await generate(net.http_url, HistorySpec(payments=200))
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from ghostpay import instructions as ix
from ghostpay.agent_instructions import AgentProfile, build_close_agent, build_register_agent, mint_accounts
from ghostpay.payments import build_x402_payment
from ghostpay.pda import agent_address, payer_stats_address, reputation_address
from ghostpay.types import TokenPrice, X402Config
from ghostpay.work_orders import (
    WorkOrderRef,
    WorkOrderTerms,
    build_accept_work_order,
    build_cancel_work_order,
    build_claim_payment,
    build_claim_refund,
    build_create_work_order,
    build_decline_work_order,
    build_open_dispute,
    build_reject_delivery,
    build_release_payment,
    build_resolve_dispute,
    build_submit_work_delivery,
)

SOL = 1_000_000_000
DAY = 86_400
FEEDBACK_WINDOW = 30 * DAY  # close_agent waits this long after an agent's last payment
PRICE = 10_000  # atomic units, 0.01 of a 6-decimal token
CENTS_PRICE = 2  # 0.02 of the 2-decimal mint agent-2 also accepts
CAPABILITIES = ("translate", "summarize", "code", "search", "vision")


@dataclass(frozen=True)
class HistorySpec:
    """How much history to make; every choice is drawn from `seed`."""

    agents: int = 6
    payers: int = 4
    payments: int = 120
    days: int = 3
    work_orders: bool = True
    concurrency: int = 16
    seed: int = 7


@dataclass
class History:
    mint: Pubkey
    cents_mint: Pubkey  # 2 decimals, accepted by agent-2 only
    facilitator: Pubkey  # the rent payer of some payments' records
    agents: list[Pubkey] = field(default_factory=list)
    reregistered: Pubkey | None = None  # closed after the last day's feedback window, registered again, paid
    fronted_rent: int = 0  # payments whose record names the facilitator as rent payer
    cents_payments: int = 0  # payments in the 2-decimal mint
    transactions: int = 0  # successful, sent by the script
    failed: int = 0  # sent on purpose, landed as failed
    event_counts: dict[str, int] = field(default_factory=dict)  # expected events by name


class Chain:
    """Raw JSON-RPC to a localnet: cheats, and signed transactions sent with preflight."""

    def __init__(self, http_url: str, concurrency: int = 16) -> None:
        self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency + 2))
        self.url = http_url
        self.limit = asyncio.Semaphore(concurrency)
        self._blockhash: Hash | None = None
        self._uses = 0

    async def rpc(self, method: str, *params: Any) -> Any:
        answer = (
            await self.http.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        ).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def blockhash(self) -> Hash:
        # one blockhash for a few hundred transactions: valid for 150 slots (a minute)
        if self._blockhash is None or self._uses >= 200:
            self._blockhash = Hash.from_string((await self.rpc("getLatestBlockhash"))["value"]["blockhash"])
            self._uses = 0
        self._uses += 1
        return self._blockhash

    async def send(
        self, instructions: Sequence[Instruction], signers: Sequence[Keypair], *, expect_failure: bool = False
    ) -> str:
        """Send and return the signature; raises if it fails (or, with expect_failure, if it succeeds)."""
        async with self.limit:
            blockhash = await self.blockhash()
            tx = Transaction(
                list(signers), Message.new_with_blockhash(list(instructions), signers[0].pubkey(), blockhash), blockhash
            )
            wire = base64.b64encode(bytes(tx)).decode()
            options = {"encoding": "base64", "skipPreflight": expect_failure, "preflightCommitment": "confirmed"}
            signature = await self.rpc("sendTransaction", wire, options)
        if expect_failure:
            status = (await self.rpc("getSignatureStatuses", [signature]))["value"][0]
            if status is None or status.get("err") is None:
                raise RuntimeError(f"{signature} was meant to fail")
        return str(signature)

    async def fund(self, keypair: Keypair, sol: int = 100) -> None:
        await self.rpc("surfnet_setAccount", str(keypair.pubkey()), {"lamports": sol * SOL})

    async def mint_to(self, owner: Pubkey, mint: Pubkey, atomic: int) -> None:
        await self.rpc("surfnet_setTokenAccount", str(owner), str(mint), {"amount": atomic})

    async def now(self) -> int:
        return int(await self.rpc("getBlockTime", await self.rpc("getSlot")))

    async def time_travel(self, seconds: int) -> None:
        await self.rpc("surfnet_timeTravel", {"absoluteTimestamp": (await self.now() + seconds) * 1000})
        self._blockhash = None

    async def close(self) -> None:
        await self.http.aclose()


@dataclass
class _Agent:
    owner: Keypair
    agent_id: str
    address: Pubkey
    price: int
    cents_price: int | None = None  # its price in the 2-decimal mint, if it accepts it
    active: bool = True
    x402: bool = True

    def prices(self, history: History) -> list[TokenPrice]:
        cents = [TokenPrice(history.cents_mint, self.cents_price)] if self.cents_price is not None else []
        return [TokenPrice(history.mint, self.price)] + cents


class _Script:
    def __init__(self, chain: Chain, spec: HistorySpec, history: History) -> None:
        self.chain, self.spec, self.history = chain, spec, history
        self.rng = random.Random(spec.seed)
        self.agents: list[_Agent] = []
        self.payers: list[Keypair] = []
        self.arbiter = Keypair()
        self.facilitator = Keypair()
        self.order_ids = 0
        self.pairs: set[tuple[Pubkey, Pubkey]] = set()  # (payer, agent) with an open PayerStats

    def expect(self, *names: str) -> None:
        for name in names:
            self.history.event_counts[name] = self.history.event_counts.get(name, 0) + 1

    async def send(self, instructions: Sequence[Instruction], signers: Sequence[Keypair], *events: str) -> str:
        signature = await self.chain.send(instructions, signers)
        self.history.transactions += 1
        self.expect(*events)
        return signature

    async def gather(self, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
        return list(await asyncio.gather(*(job() for job in jobs)))

    # setup -------------------------------------------------------------------------------------------

    async def setup(self) -> None:
        mint = self.history.mint
        owners = [Keypair() for _ in range(self.spec.agents)]
        self.payers = [Keypair() for _ in range(self.spec.payers)]
        for k in owners + self.payers + [self.arbiter, self.facilitator]:
            await self.chain.fund(k)
        for payer in self.payers:
            await self.chain.mint_to(payer.pubkey(), mint, 10**15)
            await self.chain.mint_to(payer.pubkey(), self.history.cents_mint, 10**12)
        for owner in owners:  # the providers' token accounts, for escrow payouts and x402 payments
            await self.chain.mint_to(owner.pubkey(), mint, 0)
            await self.chain.mint_to(owner.pubkey(), self.history.cents_mint, 0)
        for i, owner in enumerate(owners):
            agent_id = f"agent-{i}"
            price = PRICE * (1 + i % 3)
            with_x402 = i != 1  # agent-1 registers without pricing and configures it later
            capabilities = [CAPABILITIES[i % len(CAPABILITIES)], CAPABILITIES[(i + 2) % len(CAPABILITIES)]]
            address = agent_address(owner.pubkey(), agent_id)[0]
            agent = _Agent(owner, agent_id, address, price, CENTS_PRICE if i == 2 else None, x402=with_x402)
            await self.register(agent, capabilities)
            self.agents.append(agent)
            self.history.agents.append(address)
        late = self.agents[1]
        await self.send(
            [
                ix.configure_x402(
                    {"config": X402Config(late.owner.pubkey(), late.prices(self.history), "https://late.example")},
                    {"agent": late.address, "owner": late.owner.pubkey()},
                    remaining_accounts=mint_accounts([mint]),
                )
            ],
            [late.owner],
            "X402Configured",
        )
        late.x402 = True

    async def register(self, agent: _Agent, capabilities: list[str], *events: str) -> None:
        i = int(agent.agent_id.split("-")[1])
        prices = agent.prices(self.history)
        config = X402Config(agent.owner.pubkey(), prices, f"https://agent-{i}.example/api") if agent.x402 else None
        profile = AgentProfile(agent.agent_id, f"Agent {i}", i % 4, f"agent number {i}", "", capabilities)
        await self.send(
            [build_register_agent(agent.owner.pubkey(), profile, config)], [agent.owner], "AgentRegistered", *events
        )

    # payments ----------------------------------------------------------------------------------------

    def payable(self) -> list[_Agent]:
        return [a for a in self.agents if a.active and a.x402]

    async def payments(self, count: int) -> None:
        jobs = []
        for _ in range(count):
            agent = self.rng.choice(self.payable())
            payer = self.rng.choice(self.payers)
            in_cents = agent.cents_price is not None and self.rng.random() < 0.5
            if in_cents:
                amount = agent.cents_price + self.rng.randrange(0, 3)  # type: ignore[operator]
            else:
                amount = agent.price + self.rng.randrange(0, 3) * 1_000
            reference = self.rng.randbytes(32)
            feedback = self.rng.random() < 0.6
            fronted = self.rng.random() < 0.25
            jobs.append(
                lambda a=agent, p=payer, m=amount, r=reference, f=feedback, c=in_cents, fr=fronted: self.pay(
                    a, p, m, r, f, cents=c, fronted=fr
                )
            )
        await self.gather(jobs)

    async def pay(
        self,
        agent: _Agent,
        payer: Keypair,
        amount: int,
        reference: bytes,
        feedback: bool,
        *,
        cents: bool = False,
        fronted: bool = False,
    ) -> None:
        """One payment, in the 2-decimal mint if `cents`, the facilitator its record's rent payer if `fronted` (it
        pays the rent of the pair's PayerStats if this payment opens it, whichever of concurrent ones does)."""
        mint, decimals = (self.history.cents_mint, 2) if cents else (self.history.mint, 6)
        rent_payer = self.facilitator if fronted else payer
        ixs = build_x402_payment(
            payer.pubkey(),
            agent.address,
            agent.owner.pubkey(),
            mint,
            decimals,
            amount,
            reference,
            rent_payer=rent_payer.pubkey(),
            compute_unit_limit=60_000,
        )
        pair = (payer.pubkey(), agent.address)
        opens = pair not in self.pairs
        self.pairs.add(pair)
        await self.send(
            ixs,
            [payer, self.facilitator] if fronted else [payer],
            *(["PayerStatsOpened"] if opens else []),
            "X402PaymentRecorded",
            "ReputationUpdated",
        )
        self.history.fronted_rent += fronted
        self.history.cents_payments += cents
        if not feedback:
            return
        accounts = {
            "agent": agent.address,
            "reputation": reputation_address(agent.address)[0],
            "payer_stats": payer_stats_address(agent.address, payer.pubkey())[0],
            "payer": payer.pubkey(),
        }
        args = {
            "reference": list(reference),
            "success": self.rng.random() < 0.85,
            "response_time_ms": self.rng.choice([0, 300, 900, 2_500, 7_000]),
            "rating": self.rng.choice([0, 2, 3, 4, 5, 5]),
        }
        await self.send(
            [ix.submit_feedback(args, accounts)],
            [payer],  # type: ignore[arg-type]
            "FeedbackSubmitted",
            "ReputationUpdated",
        )

    async def failed_payment(self) -> None:
        """A payment below the price, sent without preflight so it lands as a failed transaction."""
        agent = self.payable()[0]
        payer = self.payers[0]
        ixs = build_x402_payment(
            payer.pubkey(),
            agent.address,
            agent.owner.pubkey(),
            self.history.mint,
            6,
            agent.price - 1,
            os.urandom(32),
            compute_unit_limit=60_000,
        )
        await self.chain.send(ixs, [payer], expect_failure=True)
        self.history.failed += 1

    # owner updates -----------------------------------------------------------------------------------

    async def owner_updates(self, day: int) -> None:
        a = self.agents[day % len(self.agents)]
        owned = {"agent": a.address, "owner": a.owner.pubkey()}
        await self.send(
            [
                ix.update_agent(
                    {
                        "agent_type": None,
                        "name": f"Agent {a.agent_id} v{day}",
                        "description": f"updated on day {day}",
                        "metadata_uri": None,
                        "capabilities": [CAPABILITIES[day % len(CAPABILITIES)]],
                    },
                    owned,
                )
            ],
            [a.owner],
            "AgentUpdated",
        )
        if a.x402:
            a.price += 1_000
            await self.send(
                [ix.set_x402_price({"prices": [TokenPrice(self.history.mint, a.price)]}, owned)],
                [a.owner],
                "X402Configured",
            )
        b = self.agents[(day + 1) % len(self.agents)]
        owned_b = {"agent": b.address, "owner": b.owner.pubkey()}
        await self.send([ix.set_agent_active({"is_active": False}, owned_b)], [b.owner], "AgentStatusChanged")
        await self.send([ix.set_agent_active({"is_active": True}, owned_b)], [b.owner], "AgentStatusChanged")

    async def refresh_all(self) -> None:
        for a in self.agents:
            await self.send(
                [ix.refresh_reputation({"agent": a.address, "reputation": reputation_address(a.address)[0]})],
                [self.payers[0]],
                "ReputationUpdated",
            )

    # work orders -------------------------------------------------------------------------------------

    async def create_order(
        self, agent: _Agent, client: Keypair, deadline: int, review: int = 3 * DAY, amount: int = 50_000
    ) -> WorkOrderRef:
        self.order_ids += 1
        vault = Keypair()
        terms = WorkOrderTerms(
            amount, deadline, self.arbiter.pubkey(), f"job {self.order_ids}", review_period_seconds=review
        )
        await self.send(
            [
                build_create_work_order(
                    client.pubkey(), agent.address, self.history.mint, self.order_ids, terms, vault.pubkey()
                )
            ],
            [client, vault],
            "WorkOrderCreated",
        )
        return WorkOrderRef.derive(
            client.pubkey(),
            self.order_ids,
            agent.address,
            agent.owner.pubkey(),
            self.arbiter.pubkey(),
            self.history.mint,
            vault.pubkey(),
        )

    async def work_orders(self, now: int) -> list[Callable[[], Awaitable[None]]]:
        """Start every path; returns what finishes them after a day has passed."""
        client = self.payers[0]
        a = self.agents[0]
        owner = a.owner
        later: list[Callable[[], Awaitable[None]]] = []
        accepted = ("WorkOrderAccepted",)
        deliver = lambda o: build_submit_work_delivery(o, "ipfs://result", bytes(32))  # noqa: E731

        o = await self.create_order(a, client, now + 30 * DAY)  # release in full
        await self.send([build_accept_work_order(o, self.arbiter.pubkey())], [owner], *accepted)
        await self.send([deliver(o)], [owner], "WorkDelivered")
        await self.send([build_release_payment(o, 50_000)], [client], "PaymentReleased", "ReputationUpdated")

        o2 = await self.create_order(a, client, now + 30 * DAY)  # partial release, then the rest tomorrow
        await self.send([build_accept_work_order(o2, self.arbiter.pubkey())], [owner], *accepted)
        await self.send([build_release_payment(o2, 20_000)], [client], "PaymentReleased")

        async def finish_partial(o2: WorkOrderRef = o2) -> None:
            await self.send([deliver(o2)], [owner], "WorkDelivered")
            await self.send([build_release_payment(o2, 30_000)], [client], "PaymentReleased", "ReputationUpdated")

        later.append(finish_partial)

        o3 = await self.create_order(a, client, now + 30 * DAY)  # rejected once, then accepted
        await self.send([build_accept_work_order(o3, self.arbiter.pubkey())], [owner], *accepted)
        await self.send([deliver(o3)], [owner], "WorkDelivered")
        await self.send([build_reject_delivery(o3, "not yet")], [client], "DeliveryRejected")

        async def finish_rejected(o3: WorkOrderRef = o3) -> None:
            # a new URI: the first delivery's transaction again, under the same blockhash, would be a duplicate
            await self.send([build_submit_work_delivery(o3, "ipfs://result-v2", bytes(32))], [owner], "WorkDelivered")
            await self.send([build_release_payment(o3, 50_000)], [client], "PaymentReleased", "ReputationUpdated")

        later.append(finish_rejected)

        for share, party in ((5_000, client), (10_000, owner), (0, client)):  # the three kinds of ruling
            od = await self.create_order(a, client, now + 30 * DAY)
            await self.send([build_accept_work_order(od, self.arbiter.pubkey())], [owner], *accepted)
            await self.send([deliver(od)], [owner], "WorkDelivered")
            await self.send(
                [build_open_dispute(od, party.pubkey(), "disagree")], [party], "DisputeOpened", "ReputationUpdated"
            )
            await self.send([build_resolve_dispute(od, share)], [self.arbiter], "DisputeResolved", "ReputationUpdated")

        oc = await self.create_order(a, client, now + 30 * DAY)
        await self.send([build_cancel_work_order(oc)], [client], "WorkOrderCancelled")
        declined = await self.create_order(a, client, now + 30 * DAY)
        await self.send([build_decline_work_order(declined)], [owner], "WorkOrderDeclined")

        short = now + 3_600  # refunds after the deadline, which a day of time travel passes
        accepted_late = await self.create_order(a, client, short)
        await self.send([build_accept_work_order(accepted_late, self.arbiter.pubkey())], [owner], *accepted)
        never_accepted = await self.create_order(a, client, short)
        claimable = await self.create_order(a, client, now + 30 * DAY, review=60)
        await self.send([build_accept_work_order(claimable, self.arbiter.pubkey())], [owner], *accepted)
        await self.send([deliver(claimable)], [owner], "WorkDelivered")
        rejected_late = await self.create_order(a, client, short, review=60)  # the grace period passes too
        await self.send([build_accept_work_order(rejected_late, self.arbiter.pubkey())], [owner], *accepted)
        await self.send([deliver(rejected_late)], [owner], "WorkDelivered")
        await self.send([build_reject_delivery(rejected_late, "wrong file")], [client], "DeliveryRejected")

        async def refunds_and_claim() -> None:
            await self.send([build_claim_refund(accepted_late)], [client], "WorkOrderRefunded", "ReputationUpdated")
            await self.send([build_claim_refund(never_accepted)], [client], "WorkOrderRefunded")
            await self.send([build_claim_refund(rejected_late)], [client], "WorkOrderRefunded", "ReputationUpdated")
            await self.send([build_claim_payment(claimable)], [owner], "PaymentReleased", "ReputationUpdated")

        later.append(refunds_and_claim)
        return later

    async def reregister(self) -> None:
        """Close an agent that has been paid (its last payment's feedback window over) and register the same
        id again: its metrics carry on, and new payments count for the new registration."""
        a = self.agents[-2]
        await self.send([build_close_agent(a.address, a.owner.pubkey())], [a.owner], "AgentClosed")
        await self.register(a, ["translate"], "ReputationUpdated")
        self.history.reregistered = a.address
        for payer in self.payers[:2]:
            await self.pay(a, payer, a.price, self.rng.randbytes(32), feedback=True)

    async def close_payer_stats(self) -> None:
        """The first payer with a PayerStats closes it, for the first agent it paid (its unrated calls forfeited)."""
        opened = [(p, a) for p in self.payers for a in self.agents if (p.pubkey(), a.address) in self.pairs]
        if not opened:
            return
        payer, agent = opened[0]
        stats = payer_stats_address(agent.address, payer.pubkey())[0]
        await self.send(
            [
                ix.close_payer_stats(
                    {"payer_stats": stats, "authority": payer.pubkey(), "rent_payer": (await self.rent_payer(stats))}
                )
            ],
            [payer],
            "PayerStatsClosed",
        )
        self.pairs.discard((payer.pubkey(), agent.address))

    async def rent_payer(self, stats: Pubkey) -> Pubkey:
        """Who paid a PayerStats' rent (its payer, or the facilitator), read from the account."""
        account = await self.chain.rpc("getAccountInfo", str(stats), {"encoding": "base64"})
        return Pubkey.from_bytes(base64.b64decode(account["value"]["data"][0])[72:104])

    async def close_last_agent(self) -> None:
        a = self.agents[-1]
        await self.send([build_close_agent(a.address, a.owner.pubkey())], [a.owner], "AgentClosed")
        a.active = False


async def generate(
    http_url: str, spec: HistorySpec = HistorySpec(), between_days: Callable[[int], Awaitable[None]] | None = None
) -> History:
    """Make the history; `between_days(day)` runs before each day's clock jump (tests hook in there)."""
    chain = Chain(http_url, spec.concurrency)
    try:
        mint = Pubkey.from_string((await chain.rpc("surfnet_createMint", {"decimals": 6}))["value"])
        cents_mint = Pubkey.from_string((await chain.rpc("surfnet_createMint", {"decimals": 2}))["value"])
        script = _Script(chain, spec, History(mint, cents_mint, Pubkey.default()))
        history = script.history
        history.facilitator = script.facilitator.pubkey()
        await script.setup()
        pending: list[Callable[[], Awaitable[None]]] = []
        per_day = spec.payments // max(spec.days, 1)
        for day in range(spec.days):
            await script.payments(per_day if day < spec.days - 1 else spec.payments - per_day * day)
            await script.owner_updates(day)
            for finish in pending:
                await finish()
            pending = await script.work_orders(await chain.now()) if spec.work_orders and day == 0 else []
            await script.failed_payment()
            if between_days is not None:
                await between_days(day)
            await chain.time_travel(DAY if day != 1 else 3 * DAY)
        for finish in pending:
            await finish()
        await chain.time_travel(FEEDBACK_WINDOW)  # every receipt's feedback window is over: agents may close
        await script.reregister()
        await script.close_payer_stats()
        await script.refresh_all()
        await script.close_last_agent()
        return history
    finally:
        await chain.close()
