"""The work-order escrow in LiteSVM: every flow, the attacks, and a random-sequence property test.

A facilitator pays every fee and appears in no instruction, so on a refused transaction the parties'
lamports, every token balance and every byte of the work order, the agent and its metrics must be
exactly as before.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.accounts import Agent, ReputationMetrics, WorkOrder
from ghostpay.agent_instructions import AgentProfile, build_register_agent
from ghostpay.pda import agent_address, associated_token_address, reputation_address
from ghostpay.svm import MINT_LEN, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from ghostpay.svm import InProcessChain as Chain
from ghostpay.types import X402Config
from ghostpay.work_orders import (
    WorkOrderRef,
    WorkOrderTerms,
    build_accept_work_order,
    build_cancel_work_order,
    build_claim_payment,
    build_claim_refund,
    build_create_work_order,
    build_open_dispute,
    build_reject_delivery,
    build_release_payment,
    build_resolve_dispute,
    build_submit_work_delivery,
)

DECIMALS = 6
FUNDS = 10**12
AMOUNT = 5_000_000
DAY = 86_400
REVIEW = 3_600
FEE = 5_000
HASH = bytes(range(32))
SEQUENCES = int(os.environ.get("GHOSTPAY_ESCROW_SEQUENCES", "1500"))

CREATED, ACCEPTED, SUBMITTED, DISPUTED = "Created", "Accepted", "Submitted", "Disputed"
TERMINAL = {"Completed", "Resolved", "Cancelled", "Refunded"}


@dataclass
class World:
    chain: Chain
    facilitator: Keypair
    owner: Keypair  # the provider agent's owner
    client: Keypair
    arbiter: Keypair
    stranger: Keypair
    agent: Pubkey
    usdc: Pubkey
    pyusd: Pubkey  # Token-2022, accepted
    other: Pubkey  # not accepted
    next_id: int = 1
    orders: dict[Pubkey, WorkOrderRef] = field(default_factory=dict)

    @property
    def now(self) -> int:
        return self.chain.svm.get_clock().unix_timestamp

    def warp(self, seconds: int) -> None:
        self.chain.set_unix_timestamp(self.now + seconds)

    def send(self, instructions: list[Instruction], *signers: Keypair):
        return self.chain.send(instructions, [self.facilitator, *signers])

    def create(self, amount: int = AMOUNT, mint: Pubkey | None = None, token_program: Pubkey = TOKEN_PROGRAM_ID,
               deadline_in: int = DAY, **kwargs) -> tuple[WorkOrderRef, object]:
        mint = mint or self.usdc
        terms = WorkOrderTerms(amount, self.now + deadline_in, self.arbiter.pubkey(), "Translate 10 pages",
                               "EN to DE", ("glossary", "two rounds"), REVIEW)
        vault = Keypair()
        order_id, self.next_id = self.next_id, self.next_id + 1
        ix = build_create_work_order(self.client.pubkey(), self.agent, mint, order_id, terms, vault.pubkey(),
                                     token_program, **kwargs)
        order = WorkOrderRef.derive(self.client.pubkey(), order_id, self.agent, self.owner.pubkey(),
                                    self.arbiter.pubkey(), mint, vault.pubkey(), token_program)
        return order, self.send([ix], self.client, vault)

    def open(self, **kwargs) -> WorkOrderRef:
        order, result = self.create(**kwargs)
        assert result.ok, (result.error, result.logs)
        return order

    def ok(self, ix: Instruction, *signers: Keypair):
        result = self.send([ix], *signers)
        assert result.ok, (result.error, result.logs)
        return result

    def state(self, order: WorkOrderRef) -> WorkOrder | None:
        account = self.chain.account(order.address)
        return WorkOrder.decode(bytes(account.data)) if account and account.data else None

    def agent_state(self) -> Agent:
        return Agent.decode(bytes(self.chain.account(self.agent).data))

    def metrics(self) -> ReputationMetrics:
        return ReputationMetrics.decode(bytes(self.chain.account(reputation_address(self.agent)[0]).data))

    def balance(self, owner: Pubkey, mint: Pubkey | None = None, program: Pubkey = TOKEN_PROGRAM_ID) -> int:
        return self.chain.token_balance(associated_token_address(owner, mint or self.usdc, program))


def make_world() -> World:
    chain = Chain()
    facilitator, owner, client, arbiter, stranger = (chain.funded_keypair(100) for _ in range(5))
    usdc, other = chain.create_mint(DECIMALS), chain.create_mint(DECIMALS)
    pyusd = chain.create_mint(DECIMALS, token_program=TOKEN_2022_PROGRAM_ID)
    config = X402Config(owner.pubkey(), 10_000, [usdc, pyusd], "https://agent.example.com/translate")
    result = chain.send([build_register_agent(owner.pubkey(), AgentProfile("translator", "Translator"), config)],
                        [owner])
    assert result.ok, result.logs
    agent = Pubkey.from_string(str(result.event("AgentRegistered").agent))
    for who in (client, owner, stranger, arbiter):
        for mint, program in ((usdc, TOKEN_PROGRAM_ID), (pyusd, TOKEN_2022_PROGRAM_ID), (other, TOKEN_PROGRAM_ID)):
            chain.create_token_account(who.pubkey(), mint, FUNDS if who is client else 0, program)
    return World(chain, facilitator, owner, client, arbiter, stranger, agent, usdc, pyusd, other)


@pytest.fixture
def world() -> World:
    return make_world()


def snapshot(world: World, order: WorkOrderRef | None = None) -> dict:
    """Every balance and account an escrow instruction could touch."""
    parties = [world.client, world.owner, world.arbiter, world.stranger]
    keys = [world.agent, reputation_address(world.agent)[0]] + [p.pubkey() for p in parties]
    keys += [associated_token_address(p.pubkey(), m, prog) for p in parties
             for m, prog in ((world.usdc, TOKEN_PROGRAM_ID), (world.pyusd, TOKEN_2022_PROGRAM_ID))]
    if order:
        keys += [order.address, order.vault]
    state = {}
    for key in keys:
        account = world.chain.account(key)
        state[key] = None if account is None else (account.lamports, bytes(account.data), account.owner)
    return state


def assert_refused(world: World, ix: Instruction, signers: list[Keypair], error: str,
                   order: WorkOrderRef | None = None) -> None:
    before = snapshot(world, order)
    facilitator = world.chain.balance(world.facilitator.pubkey())
    result = world.send([ix], *signers)
    assert result.error == error, (result.error, result.logs)
    assert snapshot(world, order) == before
    assert world.chain.balance(world.facilitator.pubkey()) == facilitator - FEE * (1 + len(signers))


def status(world: World, order: WorkOrderRef) -> str:
    return type(world.state(order).status).__name__


def assert_closed(world: World, order: WorkOrderRef) -> None:
    for key in (order.address, order.vault):
        account = world.chain.account(key)
        assert account is None or account.lamports == 0


# ---- flows -------------------------------------------------------------------------------------------


def test_create_moves_the_amount_into_a_vault_the_work_order_controls(world: World) -> None:
    client_sol = world.chain.balance(world.client.pubkey())
    order, result = world.create()
    assert result.ok, result.logs
    assert world.balance(world.client.pubkey()) == FUNDS - AMOUNT
    vault = world.chain.account(order.vault)
    assert vault.owner == TOKEN_PROGRAM_ID and len(vault.data) == 165
    assert bytes(vault.data[32:64]) == bytes(order.address)  # the vault's authority is the work-order PDA
    assert world.chain.token_balance(order.vault) == AMOUNT
    state = world.state(order)
    assert (state.client, state.agent, state.provider_owner, state.arbiter, state.mint, state.vault, state.amount,
            state.released, state.title, state.requirements, state.deliverable_uri) == (
        world.client.pubkey(), world.agent, world.owner.pubkey(), world.arbiter.pubkey(), world.usdc, order.vault,
        AMOUNT, 0, "Translate 10 pages", ["glossary", "two rounds"], "")
    assert status(world, order) == CREATED
    assert world.agent_state().open_work_orders == 1
    rent = sum(world.chain.balance(k) for k in (order.address, order.vault))
    assert world.chain.balance(world.client.pubkey()) == client_sol - rent  # the client pays both rents
    event = result.event("WorkOrderCreated")
    assert (event.work_order, event.agent, event.client, event.amount, event.order_id) == (
        order.address, world.agent, world.client.pubkey(), AMOUNT, 1)


def test_milestones_then_completion_pay_the_provider_and_close_everything(world: World) -> None:
    order = world.open()
    client_sol = world.chain.balance(world.client.pubkey())
    rent = sum(world.chain.balance(k) for k in (order.address, order.vault))
    world.ok(build_accept_work_order(order), world.owner)
    world.ok(build_submit_work_delivery(order, "ipfs://bafy-report", HASH), world.owner)
    state = world.state(order)
    assert (state.deliverable_uri, bytes(state.content_hash)) == ("ipfs://bafy-report", HASH)
    first = world.ok(build_release_payment(order, 2_000_000), world.client)
    assert first.event("PaymentReleased").completed is False
    assert world.chain.token_balance(order.vault) == AMOUNT - 2_000_000
    assert world.state(order).released == 2_000_000

    last = world.ok(build_release_payment(order, AMOUNT - 2_000_000), world.client)
    released = last.event("PaymentReleased")
    assert (released.amount, released.released, released.remaining, released.completed) == (
        AMOUNT - 2_000_000, AMOUNT, 0, True)
    assert world.balance(world.owner.pubkey()) == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS - AMOUNT
    assert_closed(world, order)
    assert world.chain.balance(world.client.pubkey()) == client_sol + rent  # both rents come back
    agent = world.agent_state()
    assert (agent.total_jobs_completed, agent.total_earnings, agent.open_work_orders) == (1, AMOUNT, 0)
    metrics = world.metrics()
    assert (metrics.successful_payments, metrics.failed_payments, sum(metrics.payment_history_7d)) == (1, 0, 1)
    assert last.event("ReputationUpdated").new_score == agent.reputation_score > 0


def test_a_shorter_redelivery_after_rejection_replaces_the_uri(world: World) -> None:
    order = world.open()
    world.ok(build_accept_work_order(order), world.owner)
    world.ok(build_submit_work_delivery(order, "https://files.example/draft-one-is-long", HASH), world.owner)
    rejected = world.ok(build_reject_delivery(order, "missing chapter 3"), world.client)
    assert rejected.event("DeliveryRejected").reason == "missing chapter 3"
    assert status(world, order) == ACCEPTED
    world.ok(build_submit_work_delivery(order, "ipfs://v2", bytes(32)), world.owner)
    account = bytes(world.chain.account(order.address).data)
    assert world.state(order).deliverable_uri == "ipfs://v2"
    assert b"draft-one" not in account  # the longer URI's tail was zeroed


def test_the_provider_claims_after_the_review_period(world: World) -> None:
    order = world.open()
    world.ok(build_accept_work_order(order), world.owner)
    world.ok(build_submit_work_delivery(order, "ipfs://x", HASH), world.owner)
    assert_refused(world, build_claim_payment(order), [world.owner], "ReviewPeriodActive", order)
    world.warp(REVIEW)
    result = world.ok(build_claim_payment(order), world.owner)
    assert result.event("PaymentReleased").completed
    assert world.balance(world.owner.pubkey()) == AMOUNT
    assert_closed(world, order)
    assert world.agent_state().total_jobs_completed == 1


@pytest.mark.parametrize("client_share_bps", [0, 3_000, 10_000])
def test_the_arbiter_splits_a_dispute(world: World, client_share_bps: int) -> None:
    order = world.open()
    world.ok(build_accept_work_order(order), world.owner)
    world.ok(build_release_payment(order, 1_000_000), world.client)
    opened = world.ok(build_open_dispute(order, world.owner.pubkey(), "client unresponsive"), world.owner)
    assert opened.event("DisputeOpened").opened_by == world.owner.pubkey()
    assert world.metrics().total_disputes == 1
    remaining = AMOUNT - 1_000_000
    result = world.ok(build_resolve_dispute(order, client_share_bps), world.arbiter)
    client_amount = remaining * client_share_bps // 10_000
    event = result.event("DisputeResolved")
    assert (event.client_amount, event.provider_amount) == (client_amount, remaining - client_amount)
    assert world.balance(world.client.pubkey()) == FUNDS - AMOUNT + client_amount
    assert world.balance(world.owner.pubkey()) == 1_000_000 + remaining - client_amount
    assert_closed(world, order)
    metrics = world.metrics()
    assert (metrics.total_disputes, metrics.disputes_resolved) == (1, 1)
    failed = client_share_bps == 10_000
    assert (metrics.successful_payments, metrics.failed_payments) == (0 if failed else 1, 1 if failed else 0)
    agent = world.agent_state()
    assert (agent.total_jobs_completed, agent.total_earnings, agent.open_work_orders) == (
        0, AMOUNT - client_amount, 0)


def test_cancel_before_acceptance_refunds_everything(world: World) -> None:
    order = world.open()
    result = world.ok(build_cancel_work_order(order), world.client)
    assert result.event("WorkOrderCancelled").refunded == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS
    assert_closed(world, order)
    assert world.agent_state().open_work_orders == 0
    assert world.metrics().failed_payments == 0


def test_refund_after_the_deadline_counts_a_failed_payment_once_accepted(world: World) -> None:
    order = world.open()
    world.ok(build_accept_work_order(order), world.owner)
    assert_refused(world, build_claim_refund(order), [world.client], "DeadlineNotReached", order)
    world.warp(DAY + 1)
    assert_refused(world, build_submit_work_delivery(order, "ipfs://late", HASH), [world.owner], "DeadlinePassed",
                   order)
    result = world.ok(build_claim_refund(order), world.client)
    assert result.event("WorkOrderRefunded").refunded == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS
    assert_closed(world, order)
    assert world.metrics().failed_payments == 1


def test_token_2022_mint_without_fees_works_end_to_end(world: World) -> None:
    order = world.open(mint=world.pyusd, token_program=TOKEN_2022_PROGRAM_ID)
    assert world.chain.account(order.vault).owner == TOKEN_2022_PROGRAM_ID
    world.ok(build_accept_work_order(order), world.owner)
    world.ok(build_release_payment(order, AMOUNT), world.client)
    assert world.balance(world.owner.pubkey(), world.pyusd, TOKEN_2022_PROGRAM_ID) == AMOUNT
    assert_closed(world, order)


def test_tokens_sent_to_the_vault_on_the_side_go_back_to_the_client(world: World) -> None:
    """A donation to the vault must not block closing it, and is not paid to the provider."""
    order = world.open()
    vault = bytearray(world.chain.account(order.vault).data)
    vault[64:72] = (AMOUNT + 777).to_bytes(8, "little")
    world.chain.set_account(order.vault, bytes(vault), owner=TOKEN_PROGRAM_ID)
    world.ok(build_accept_work_order(order), world.owner)
    world.ok(build_release_payment(order, AMOUNT), world.client)
    assert world.balance(world.owner.pubkey()) == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS - AMOUNT + 777
    assert_closed(world, order)


# ---- mints the escrow refuses ------------------------------------------------------------------------


def token_2022_mint(world: World, extension_type: int, extension_len: int) -> Pubkey:
    """A Token-2022 mint carrying one extension (zeroed), written straight into the ledger."""
    data = bytearray(MINT_LEN)
    data[44], data[45] = DECIMALS, 1
    data += bytes(165 - MINT_LEN) + bytes([1])  # padding to the account size, then AccountType::Mint
    data += extension_type.to_bytes(2, "little") + extension_len.to_bytes(2, "little") + bytes(extension_len)
    mint = Keypair().pubkey()
    world.chain.set_account(mint, bytes(data), owner=TOKEN_2022_PROGRAM_ID)
    return mint


@pytest.mark.parametrize(("extension_type", "extension_len", "error"), [
    (1, 108, "MintHasTransferFee"),
    (14, 64, "MintHasTransferHook"),
    (12, 32, "MintExtensionNotSupported"),  # a permanent delegate could empty the vault
    (9, 0, "MintExtensionNotSupported"),  # non-transferable
])
def test_mints_with_extensions_the_escrow_cannot_account_for_are_refused(
        world: World, extension_type: int, extension_len: int, error: str) -> None:
    mint = token_2022_mint(world, extension_type, extension_len)
    world.ok(build_register_agent(world.owner.pubkey(), AgentProfile("fees", "Fees"),
                                  X402Config(world.owner.pubkey(), 10_000, [mint], "https://a.example")), world.owner)
    world.chain.create_token_account(world.client.pubkey(), mint, FUNDS, TOKEN_2022_PROGRAM_ID)
    world.agent = agent_address(world.owner.pubkey(), "fees")[0]
    order, result = world.create(mint=mint, token_program=TOKEN_2022_PROGRAM_ID)
    assert result.error == error, result.logs
    assert world.chain.account(order.address) is None
    assert world.balance(world.client.pubkey(), mint, TOKEN_2022_PROGRAM_ID) == FUNDS


def test_a_neutral_extension_is_accepted(world: World) -> None:
    mint = token_2022_mint(world, 3, 32)  # MintCloseAuthority (no authority set)
    world.ok(build_register_agent(world.owner.pubkey(), AgentProfile("close", "Close"),
                                  X402Config(world.owner.pubkey(), 10_000, [mint], "https://a.example")), world.owner)
    world.agent = agent_address(world.owner.pubkey(), "close")[0]
    world.chain.create_token_account(world.client.pubkey(), mint, FUNDS, TOKEN_2022_PROGRAM_ID)
    world.chain.create_token_account(world.owner.pubkey(), mint, 0, TOKEN_2022_PROGRAM_ID)
    order = world.open(mint=mint, token_program=TOKEN_2022_PROGRAM_ID)
    world.ok(build_accept_work_order(order), world.owner)
    world.ok(build_release_payment(order, AMOUNT), world.client)
    assert world.balance(world.owner.pubkey(), mint, TOKEN_2022_PROGRAM_ID) == AMOUNT
