"""Honest and hostile transactions mixed at random across x402 payments, feedback and work orders, with the
program's promises checked after every step (GHOSTPAY_TRUST_STEPS steps, default 400; GHOSTPAY_TRUST_SEED):

- tokens are conserved: per mint, every token account and vault together hold what was minted;
- every recorded payment is matched by exactly one real transfer to the payee: the payment address's balance
  in each mint equals the sum of the X402PaymentRecorded amounts in that mint (the payee receives nothing else,
  escrow pays the agent's owner);
- no account per payment (issue 25): the only accounts payments leave are one PayerStats per (payer, agent)
  pair, and each holds what a model of the documented rules says: calls paid since it was opened, rated (at
  most once each, only by its payer, within the window of the pair's newest payment), expired;
- the counters equal what the events say: the agent's call and payment totals, and every ReputationMetrics
  counter replayed from the events by the documented rules (docs/program.md, "Reputation").

Hostile steps are the attacks of issue 14 (CPI relay, two records after one transfer, a record without a transfer,
self-payment, a payment under a mint's price, the delivered-order robbery), of issue 24 (a dispute after the
rejection's grace period, to block the refund) and of issue 25 (feedback beyond the calls paid, by a stranger with
someone's PayerStats, on a forged PayerStats, after the window or after closing it; a payment transaction
replayed) and each must fail; honest steps (closing one's PayerStats among them) must succeed.
"""

from __future__ import annotations

import os
import random
import struct
from collections import Counter
from dataclasses import dataclass, field

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from spl.token.instructions import TransferCheckedParams, transfer_checked

from ghostpay.accounts import Agent, PayerStats, ReputationMetrics
from ghostpay.agent_instructions import AgentProfile, build_register_agent
from ghostpay.earnings import earnings_by_mint
from ghostpay.instructions import close_payer_stats, submit_feedback
from ghostpay.payments import build_memo, build_record_x402_payment
from ghostpay.pda import (
    agent_address,
    associated_token_address,
    payer_stats_address,
    receipt_address,
    reputation_address,
)
from ghostpay.program_id import PROGRAM_ID
from ghostpay.types import TokenPrice, X402Config
from ghostpay.work_orders import (
    WorkOrderRef,
    WorkOrderTerms,
    build_accept_work_order,
    build_claim_refund,
    build_create_work_order,
    build_open_dispute,
    build_reject_delivery,
    build_release_payment,
    build_resolve_dispute,
    build_settle_by_default,
    build_submit_work_delivery,
)
from tests.program.conftest import cpi_relay_program
from tests.program.svm import TOKEN_PROGRAM_ID, InProcessChain as Chain, TxResult

STEPS = int(os.environ.get("GHOSTPAY_TRUST_STEPS", "400"))
FUNDS = 10**12
DAY = 86_400
REVIEW = 3_600
RULING = 14 * DAY  # DISPUTE_RULING_SECONDS
WINDOW = 30 * DAY  # FEEDBACK_WINDOW_SECONDS
DECIMALS = {"usdc": 6, "cents": 2}
PRICES = {"usdc": 10_000, "cents": 2}


@dataclass
class Pair:
    """A buyer's PayerStats as the documented rules say it must be (exists: the account is open)."""

    exists: bool = False
    paid: int = 0
    rated: int = 0
    expired: int = 0
    last_paid_at: int = 0
    unrated: list[bytes] = field(default_factory=list)  # references of its calls not rated yet

    @property
    def open(self) -> int:
        return self.paid - self.rated - self.expired

    def window_open(self, now: int) -> bool:
        return now < self.last_paid_at + WINDOW

    def paid_at(self, now: int, ref: bytes) -> None:
        if not self.exists:
            self.__init__(exists=True)  # type: ignore[misc]
        if self.open and not self.window_open(now):
            self.expired, self.unrated = self.paid - self.rated, []
        self.paid, self.last_paid_at = self.paid + 1, now
        self.unrated.append(ref)


@dataclass
class Trust:
    chain: Chain
    owner: Keypair
    payee: Keypair
    buyers: list[Keypair]
    client: Keypair
    arbiter: Keypair
    agent: Pubkey
    mints: dict[str, Pubkey]
    relay: Pubkey
    rng: random.Random
    events: list = field(default_factory=list)
    pairs: dict[Pubkey, Pair] = field(default_factory=dict)  # buyer -> its PayerStats, modelled
    references: list[bytes] = field(default_factory=list)  # of every recorded payment
    next_ref: int = 1
    next_order: int = 1

    # ---- plumbing ------------------------------------------------------------------------------------

    def send(
        self, instructions: list[Instruction], *signers: Keypair, honest: bool, what: str, error: str | None = None
    ) -> bool:
        """Send; an honest step must succeed, a hostile one fail (with `error` when given)."""
        return self.landed(self.chain.send(instructions, [*signers]), honest, what, error)

    def landed(self, result: TxResult, honest: bool, what: str, error: str | None = None) -> bool:
        assert result.ok == honest, (what, result.error, result.logs[-4:])
        assert error is None or result.error == error, (what, result.error, error)
        if result.ok:
            self.events += result.events
        return result.ok

    def now(self) -> int:
        return self.chain.svm.get_clock().unix_timestamp

    def pair(self, buyer: Keypair) -> Pair:
        return self.pairs.setdefault(buyer.pubkey(), Pair())

    def reference(self) -> bytes:
        self.next_ref += 1
        return self.next_ref.to_bytes(32, "big")

    def ata(self, owner: Pubkey, mint: str) -> Pubkey:
        return associated_token_address(owner, self.mints[mint])

    def transfer(self, payer: Keypair, mint: str, amount: int, destination: Pubkey | None = None) -> Instruction:
        return transfer_checked(
            TransferCheckedParams(
                program_id=TOKEN_PROGRAM_ID,
                source=self.ata(payer.pubkey(), mint),
                mint=self.mints[mint],
                dest=destination or self.ata(self.payee.pubkey(), mint),
                owner=payer.pubkey(),
                amount=amount,
                decimals=DECIMALS[mint],
            )
        )

    def record(self, payer: Keypair, mint: str, amount: int, ref: bytes) -> Instruction:
        return build_record_x402_payment(
            self.agent,
            payer.pubkey(),
            amount,
            ref,
            self.ata(payer.pubkey(), mint),
            self.mints[mint],
            self.ata(self.payee.pubkey(), mint),
        )

    def stats_address(self, payer: Keypair) -> Pubkey:
        return payer_stats_address(self.agent, payer.pubkey())[0]

    def feedback(
        self, ref: bytes, payer: Keypair, success: bool, rating: int, stats: Pubkey | None = None
    ) -> Instruction:
        return submit_feedback(
            {
                "reference": list(ref),
                "success": success,
                "response_time_ms": self.rng.choice([0, 300, 4_000]),
                "rating": rating,
            },
            {
                "agent": self.agent,
                "reputation": reputation_address(self.agent)[0],
                "payer_stats": stats or self.stats_address(payer),
                "payer": payer.pubkey(),
            },
        )

    # ---- honest steps ----------------------------------------------------------------------------------

    def pay(self) -> None:
        payer, mint, ref = self.rng.choice(self.buyers), self.rng.choice(list(self.mints)), self.reference()
        amount = PRICES[mint] + self.rng.choice([0, 0, 1, 999])
        memo = [build_memo(os.urandom(8).hex())] if self.rng.random() < 0.5 else []
        if self.send(
            [self.transfer(payer, mint, amount), *memo, self.record(payer, mint, amount, ref)],
            payer,
            honest=True,
            what="pay",
        ):
            self.pair(payer).paid_at(self.now(), ref)
            self.references.append(ref)

    def rate(self) -> None:
        """A buyer rates one of its open calls: it lands while the window of its newest payment is open."""
        open_buyers = [b for b in self.buyers if self.pair(b).exists and self.pair(b).open]
        if not open_buyers:
            return self.pay()
        payer = self.rng.choice(open_buyers)
        pair = self.pair(payer)
        ref = pair.unrated.pop(self.rng.randrange(len(pair.unrated)))
        within = pair.window_open(self.now())
        if self.send(
            [self.feedback(ref, payer, self.rng.random() < 0.8, self.rng.randint(0, 5))],
            payer,
            honest=within,
            what="feedback",
            error=None if within else "FeedbackWindowClosed",
        ):
            pair.rated += 1
        else:
            pair.unrated.append(ref)

    def close_stats(self) -> None:
        """A buyer closes its PayerStats (rent back; its open calls forfeited)."""
        opened = [b for b in self.buyers if self.pair(b).exists]
        if not opened:
            return self.pay()
        payer = self.rng.choice(opened)
        self.send(
            [
                close_payer_stats(
                    {
                        "payer_stats": self.stats_address(payer),
                        "authority": payer.pubkey(),
                        "rent_payer": payer.pubkey(),
                    }
                )
            ],
            payer,
            honest=True,
            what="close stats",
        )
        self.pairs[payer.pubkey()] = Pair()

    def delivered_order(self, amount: int, deadline_in: int) -> WorkOrderRef:
        """A work order created, accepted and delivered on time."""
        vault, order_id = Keypair(), self.next_order
        self.next_order += 1
        now = self.chain.svm.get_clock().unix_timestamp
        terms = WorkOrderTerms(amount, now + deadline_in, self.arbiter.pubkey(), "Job", "", (), REVIEW)
        self.send(
            [
                build_create_work_order(
                    self.client.pubkey(), self.agent, self.mints["usdc"], order_id, terms, vault.pubkey()
                )
            ],
            self.client,
            vault,
            honest=True,
            what="create",
        )
        order = WorkOrderRef.derive(
            self.client.pubkey(),
            order_id,
            self.agent,
            self.owner.pubkey(),
            self.arbiter.pubkey(),
            self.mints["usdc"],
            vault.pubkey(),
        )
        self.send([build_accept_work_order(order, order.arbiter)], self.owner, honest=True, what="accept")
        self.send(
            [build_submit_work_delivery(order, "ipfs://work", bytes(32))], self.owner, honest=True, what="deliver"
        )
        return order

    def work_order(self) -> None:
        """A work order from creation to an end the rules allow: release, dispute ruling, a dispute the arbiter
        leaves unruled (settled by default), or a refund after a rejection the provider let lapse."""
        amount = self.rng.randint(1_000, 10**9)
        order = self.delivered_order(amount, DAY)
        end = self.rng.choice(["release", "dispute", "unruled", "lapse"])
        if end == "release":
            self.send([build_release_payment(order, amount)], self.client, honest=True, what="release")
        elif end == "dispute":
            self.send([build_open_dispute(order, self.client.pubkey(), "no")], self.client, honest=True, what="dispute")
            self.send(
                [build_resolve_dispute(order, self.rng.choice([0, 5_000, 10_000]))],
                self.arbiter,
                honest=True,
                what="resolve",
            )
        elif end == "unruled":
            self.send([build_open_dispute(order, self.owner.pubkey(), "no")], self.owner, honest=True, what="dispute")
            self.warp(RULING)
            self.send([build_settle_by_default(order, self.owner.pubkey())], self.owner, honest=True, what="settle")
        else:
            self.send([build_reject_delivery(order, "no")], self.client, honest=True, what="reject")
            self.warp(DAY + REVIEW)
            self.send([build_claim_refund(order)], self.client, honest=True, what="refund")

    def warp(self, seconds: int) -> None:
        self.chain.set_unix_timestamp(self.chain.svm.get_clock().unix_timestamp + seconds)

    # ---- hostile steps ---------------------------------------------------------------------------------

    def attack(self) -> None:
        payer, ref = self.rng.choice(self.buyers), self.reference()
        kind = self.rng.choice(
            [
                "relay",
                "two records",
                "no transfer",
                "self",
                "below price",
                "wrong price mint",
                "stranger feedback",
                "feedback beyond paid",
                "forged stats",
                "replay",
                "robbery",
                "two memos",
                "late dispute",
            ]
        )
        if kind == "relay":
            refs = [ref, self.reference()]
            metas = [AccountMeta(PROGRAM_ID, False, False)] + list(
                self.record(payer, "usdc", PRICES["usdc"], ref).accounts
            )
            relay = Instruction(self.relay, struct.pack("<Q", PRICES["usdc"]) + b"".join(refs), metas)
            self.send([self.transfer(payer, "usdc", PRICES["usdc"]), relay], payer, honest=False, what=kind)
        elif kind == "two records":
            self.send(
                [
                    self.transfer(payer, "usdc", PRICES["usdc"]),
                    self.record(payer, "usdc", PRICES["usdc"], ref),
                    self.record(payer, "usdc", PRICES["usdc"], self.reference()),
                ],
                payer,
                honest=False,
                what=kind,
            )
        elif kind == "no transfer":
            self.send([self.record(payer, "usdc", PRICES["usdc"], ref)], payer, honest=False, what=kind)
        elif kind == "self":
            self.send(
                [
                    self.transfer(self.owner, "usdc", PRICES["usdc"]),
                    self.record(self.owner, "usdc", PRICES["usdc"], ref),
                ],
                self.owner,
                honest=False,
                what=kind,
            )
        elif kind == "below price":
            self.send(
                [self.transfer(payer, "cents", 1), self.record(payer, "cents", 1, ref)], payer, honest=False, what=kind
            )
        elif kind == "wrong price mint":  # the cents price paid in usdc
            self.send(
                [self.transfer(payer, "usdc", PRICES["cents"]), self.record(payer, "usdc", PRICES["cents"], ref)],
                payer,
                honest=False,
                what=kind,
            )
        elif kind == "stranger feedback":  # signed by another buyer, with this buyer's PayerStats
            stranger = next(b for b in self.buyers if b != payer)
            self.send(
                [self.feedback(ref, stranger, False, 1, stats=self.stats_address(payer))],
                stranger,
                honest=False,
                what=kind,
            )
        elif kind == "feedback beyond paid":  # more ratings than open calls, or none paid since closing
            pair = self.pair(payer)
            extra = [self.feedback(self.reference(), payer, False, 1) for _ in range(pair.open + 1)]
            self.send(extra, payer, honest=False, what=kind)
        elif kind == "forged stats":  # the buyer's PayerStats bytes with 50 more paid calls, owned by another program
            if self.pair(payer).exists:
                forged = Keypair().pubkey()
                data = bytearray(self.chain.account(self.stats_address(payer)).data)
                data[104:112] = (PayerStats.decode(bytes(data)).paid_calls + 50).to_bytes(8, "little")
                self.chain.set_account(forged, bytes(data), owner=Pubkey.new_unique())
                self.send(
                    [self.feedback(ref, payer, False, 1, stats=forged)],
                    payer,
                    honest=False,
                    what=kind,
                    error="AccountOwnedByWrongProgram",
                )
        elif kind == "replay":  # an honest payment's signed transaction, sent twice: it lands once
            message = Message.new_with_blockhash(
                [self.transfer(payer, "usdc", PRICES["usdc"]), self.record(payer, "usdc", PRICES["usdc"], ref)],
                payer.pubkey(),
                self.chain.svm.latest_blockhash(),
            )
            signed = Transaction([payer], message, self.chain.svm.latest_blockhash())
            self.landed(self.chain.execute(signed), honest=True, what="replayed payment, first")
            self.pair(payer).paid_at(self.now(), ref)
            self.references.append(ref)
            self.landed(self.chain.execute(signed), honest=False, what=kind)
            self.chain.svm.expire_blockhash()
        elif kind == "robbery":  # delivered 100 s before the deadline; 200 s later, reject and refund at once
            order = self.delivered_order(5_000_000, 100)
            self.warp(200)
            self.send(
                [build_reject_delivery(order, "mine now"), build_claim_refund(order)],
                self.client,
                honest=False,
                what=kind,
            )
            self.send([build_release_payment(order, 5_000_000)], self.client, honest=True, what="release")
        elif kind == "late dispute":  # the grace period after a rejection passed: the refund is the client's
            order = self.delivered_order(5_000_000, DAY)
            self.send([build_reject_delivery(order, "no")], self.client, honest=True, what="reject")
            self.warp(DAY + REVIEW)
            self.send([build_open_dispute(order, self.owner.pubkey(), "too late")], self.owner, honest=False, what=kind)
            self.send([build_claim_refund(order)], self.client, honest=True, what="refund")
        elif kind == "two memos":
            memo = build_memo("x")
            self.send(
                [
                    self.transfer(payer, "usdc", PRICES["usdc"]),
                    memo,
                    memo,
                    self.record(payer, "usdc", PRICES["usdc"], ref),
                ],
                payer,
                honest=False,
                what=kind,
            )


def make_trust(seed: int) -> Trust:
    chain = Chain()
    owner, payee, client, arbiter = (chain.funded_keypair(1_000) for _ in range(4))
    buyers = [chain.funded_keypair(1_000) for _ in range(3)]
    mints = {name: chain.create_mint(decimals) for name, decimals in DECIMALS.items()}
    config = X402Config(payee.pubkey(), [TokenPrice(mints[n], PRICES[n]) for n in mints], "https://agent.example/x")
    result = chain.send([build_register_agent(owner.pubkey(), AgentProfile("worker", "Worker"), config)], [owner])
    assert result.ok, result.logs
    for who in [owner, payee, client, *buyers]:
        for mint in mints.values():
            chain.create_token_account(who.pubkey(), mint, 0 if who in (payee,) else FUNDS)
    relay = Pubkey.new_unique()
    chain.svm.add_program(relay, cpi_relay_program())
    return Trust(
        chain,
        owner,
        payee,
        buyers,
        client,
        arbiter,
        agent_address(owner.pubkey(), "worker")[0],
        mints,
        relay,
        random.Random(seed),
    )


def token_total(t: Trust, mint: str) -> int:
    """Every party's tokens of `mint` (each work order ends within its step, so no vault holds any)."""
    holders = [t.owner, t.payee, t.client, t.arbiter, *t.buyers]
    return sum(t.chain.token_balance(t.ata(h.pubkey(), mint)) for h in holders)


def expected_metrics(events: list) -> Counter:
    """ReputationMetrics counters replayed from events by the documented rules."""
    m: Counter = Counter()
    for e in events:
        if e.name == "X402PaymentRecorded":
            m["successful"] += 1
        elif e.name == "FeedbackSubmitted":
            if not e.data.success:
                m["successful"] -= 1
                m["failed"] += 1
            if e.data.rating:
                m["rating_total"] += e.data.rating
                m["ratings"] += 1
        elif e.name == "PaymentReleased" and e.data.completed:
            m["successful"] += 1
        elif e.name == "DisputeOpened":
            m["disputes"] += 1
        elif e.name == "DisputeResolved":
            share = e.data.client_share_bps
            if share == 0:  # a ruling for the provider erases the dispute and completes the job
                m["disputes"] -= 1
                m["successful"] += 1
            else:
                m["resolved"] += 1
                m["failed" if share == 10_000 else "successful"] += 1
        elif e.name == "DisputeSettledByDefault":  # counted as a ruling wholly for the client
            m["resolved"] += 1
            m["failed"] += 1
        elif e.name == "WorkOrderRefunded":
            m["failed"] += 1  # every refund here is of an accepted order
    return m


def check_pairs(t: Trust, recorded: list) -> None:
    """One PayerStats per buyer with an open pair, as the model says; no receipt, no other account per payment."""
    for buyer in t.buyers:
        pair, account = t.pair(buyer), t.chain.account(t.stats_address(buyer))
        assert (account is not None and account.lamports > 0) == pair.exists
        if pair.exists:
            stats = PayerStats.decode(bytes(account.data))
            assert (stats.paid_calls, stats.rated_calls, stats.expired_calls, stats.last_paid_at) == (
                pair.paid,
                pair.rated,
                pair.expired,
                pair.last_paid_at,
            )
            assert stats.rated_calls + stats.expired_calls <= stats.paid_calls
    assert not any(t.chain.account(receipt_address(t.agent, bytes(r.reference))[0]) for r in recorded[-20:])
    ratings = Counter(str(e.data.payer) for e in t.events if e.name == "FeedbackSubmitted")
    for buyer in t.buyers:  # each rating is its payer's, and no payer rated more calls than it paid
        paid = sum(1 for r in recorded if r.payer == buyer.pubkey())
        assert ratings[str(buyer.pubkey())] <= paid


def check(t: Trust, totals: dict[str, int]) -> None:
    for mint in t.mints:
        assert token_total(t, mint) == totals[mint], f"{mint} not conserved"
    recorded = [e.data for e in t.events if e.name == "X402PaymentRecorded"]
    for name, mint in t.mints.items():
        assert t.chain.token_balance(t.ata(t.payee.pubkey(), name)) == sum(r.amount for r in recorded if r.mint == mint)
    assert [bytes(r.reference) for r in recorded] == t.references  # each payment recorded once, in order
    check_pairs(t, recorded)
    agent = Agent.decode(bytes(t.chain.account(t.agent).data))
    assert agent.x402_total_calls == len(recorded)
    earned = earnings_by_mint(agent)
    for mint in t.mints.values():  # each mint's earnings are its own recorded amounts, never another's
        paid = sum(r.amount for r in recorded if r.mint == mint)
        assert (earned[mint].x402_payments if mint in earned else 0) == paid
    metrics = ReputationMetrics.decode(bytes(t.chain.account(reputation_address(t.agent)[0]).data))
    m = expected_metrics(t.events)
    assert (
        metrics.successful_payments,
        metrics.failed_payments,
        metrics.total_rating,
        metrics.rating_count,
        metrics.total_disputes,
        metrics.disputes_resolved,
    ) == (m["successful"], m["failed"], m["rating_total"], m["ratings"], m["disputes"], m["resolved"])


def test_random_honest_and_hostile_steps_keep_every_promise() -> None:
    t = make_trust(int(os.environ.get("GHOSTPAY_TRUST_SEED", "14")))
    totals = {mint: token_total(t, mint) for mint in t.mints}
    kinds = Counter()
    for _ in range(STEPS):
        step = t.rng.choices(["pay", "rate", "close stats", "work order", "attack"], weights=[4, 2, 0.2, 1, 3])[0]
        kinds[step] += 1
        {"pay": t.pay, "rate": t.rate, "close stats": t.close_stats, "work order": t.work_order, "attack": t.attack}[
            step
        ]()
        check(t, totals)
    assert min(kinds.values()) > 0 and sum(1 for e in t.events if e.name == "X402PaymentRecorded") > 0
