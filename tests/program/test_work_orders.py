"""The work-order escrow in LiteSVM: every flow, the attacks, and a random-sequence property test.

A facilitator pays every fee and appears in no instruction, so on a refused transaction the parties'
lamports, every token balance and every byte of the work order, the agent and its metrics must be
exactly as before.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.agent_instructions import AgentProfile, build_register_agent
from ghostpay.earnings import earnings_by_mint
from ghostpay.instructions import close_agent
from ghostpay.pda import agent_address, associated_token_address
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
    build_settle_by_default,
    build_submit_work_delivery,
)
from tests.program.conftest import (
    AMOUNT,
    DAY,
    DECIMALS,
    ESCROW_FUNDS as FUNDS,
    REVIEW,
    World,
    assert_refused,
    escrow_world,
    escrowed,
    snapshot,
)
from tests.program.svm import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

HASH = bytes(range(32))
SEQUENCES = int(os.environ.get("GHOSTPAY_ESCROW_SEQUENCES", "2000"))

CREATED, ACCEPTED, SUBMITTED, DISPUTED, REJECTED = "Created", "Accepted", "Submitted", "Disputed", "Rejected"
TERMINAL = {"Completed", "Resolved", "Cancelled", "Refunded", "Declined"}
MAX_DEADLINE = 365 * DAY
RULING = 14 * DAY  # DISPUTE_RULING_SECONDS


def escrow_earned(world: World, mint: Pubkey | None = None) -> int:
    """What escrow released to the agent in `mint` (default USDC) this registration."""
    return earnings_by_mint(world.agent_state())[mint or world.usdc].escrow_earnings


@pytest.fixture
def world() -> World:
    return escrow_world()


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
    assert (
        state.client,
        state.agent,
        state.provider_owner,
        state.arbiter,
        state.mint,
        state.vault,
        state.amount,
        state.released,
        state.title,
        state.requirements,
        state.deliverable_uri,
    ) == (
        world.client.pubkey(),
        world.agent,
        world.owner.pubkey(),
        world.arbiter.pubkey(),
        world.usdc,
        order.vault,
        AMOUNT,
        0,
        "Translate 10 pages",
        ["glossary", "two rounds"],
        "",
    )
    assert status(world, order) == CREATED
    assert world.agent_state().open_work_orders == 1
    rent = sum(world.chain.balance(k) for k in (order.address, order.vault))
    assert world.chain.balance(world.client.pubkey()) == client_sol - rent  # the client pays both rents
    event = result.event("WorkOrderCreated")
    assert (event.work_order, event.agent, event.client, event.amount, event.order_id) == (
        order.address,
        world.agent,
        world.client.pubkey(),
        AMOUNT,
        1,
    )


def test_milestones_then_completion_pay_the_provider_and_close_everything(world: World) -> None:
    order = world.open()
    client_sol = world.chain.balance(world.client.pubkey())
    rent = sum(world.chain.balance(k) for k in (order.address, order.vault))
    accepted_event = world.ok(build_accept_work_order(order, order.arbiter), world.owner).event("WorkOrderAccepted")
    assert (accepted_event.work_order, accepted_event.agent, accepted_event.provider) == (
        order.address,
        world.agent,
        world.owner.pubkey(),
    )
    delivered = world.ok(build_submit_work_delivery(order, "ipfs://bafy-report", HASH), world.owner)
    assert (delivered.event("WorkDelivered").deliverable_uri, bytes(delivered.event("WorkDelivered").content_hash)) == (
        "ipfs://bafy-report",
        HASH,
    )
    state = world.state(order)
    assert (state.deliverable_uri, bytes(state.content_hash)) == ("ipfs://bafy-report", HASH)
    first = world.ok(build_release_payment(order, 2_000_000), world.client)
    assert first.event("PaymentReleased").completed is False
    assert world.chain.token_balance(order.vault) == AMOUNT - 2_000_000
    assert world.state(order).released == 2_000_000

    last = world.ok(build_release_payment(order, AMOUNT - 2_000_000), world.client)
    released = last.event("PaymentReleased")
    assert (released.amount, released.released, released.remaining, released.completed) == (
        AMOUNT - 2_000_000,
        AMOUNT,
        0,
        True,
    )
    assert world.balance(world.owner.pubkey()) == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS - AMOUNT
    assert_closed(world, order)
    assert world.chain.balance(world.client.pubkey()) == client_sol + rent  # both rents come back
    agent = world.agent_state()
    assert (agent.total_jobs_completed, escrow_earned(world), agent.open_work_orders) == (1, AMOUNT, 0)
    metrics = world.metrics()
    assert (metrics.successful_payments, metrics.failed_payments, sum(metrics.payment_history_7d)) == (1, 0, 1)
    assert last.event("ReputationUpdated").new_score == agent.reputation_score > 0


def test_a_shorter_redelivery_after_rejection_replaces_the_uri(world: World) -> None:
    order = world.open()
    world.ok(build_accept_work_order(order, order.arbiter), world.owner)
    world.ok(build_submit_work_delivery(order, "https://files.example/draft-one-is-long", HASH), world.owner)
    rejected = world.ok(build_reject_delivery(order, "missing chapter 3"), world.client)
    assert rejected.event("DeliveryRejected").reason == "missing chapter 3"
    assert status(world, order) == REJECTED and world.state(order).rejected_at == world.now
    world.ok(build_submit_work_delivery(order, "ipfs://v2", bytes(32)), world.owner)
    account = bytes(world.chain.account(order.address).data)
    assert world.state(order).deliverable_uri == "ipfs://v2"
    assert b"draft-one" not in account  # the longer URI's tail was zeroed


def test_the_provider_claims_after_the_review_period(world: World) -> None:
    order = world.open()
    world.ok(build_accept_work_order(order, order.arbiter), world.owner)
    world.ok(build_submit_work_delivery(order, "ipfs://x", HASH), world.owner)
    assert_refused(world, [build_claim_payment(order)], [world.owner], "ReviewPeriodActive", escrowed(order))
    world.warp(REVIEW)
    result = world.ok(build_claim_payment(order), world.owner)
    assert result.event("PaymentReleased").completed
    assert world.balance(world.owner.pubkey()) == AMOUNT
    assert_closed(world, order)
    assert world.agent_state().total_jobs_completed == 1


@pytest.mark.parametrize("client_share_bps", [0, 3_000, 10_000])
def test_the_arbiter_splits_a_dispute(world: World, client_share_bps: int) -> None:
    order = world.open()
    world.ok(build_accept_work_order(order, order.arbiter), world.owner)
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
    for_provider = client_share_bps == 0  # the dispute is erased and the job counts as completed
    assert (metrics.total_disputes, metrics.disputes_resolved) == ((0, 0) if for_provider else (1, 1))
    failed = client_share_bps == 10_000
    assert (metrics.successful_payments, metrics.failed_payments) == (0 if failed else 1, 1 if failed else 0)
    agent = world.agent_state()
    assert (agent.total_jobs_completed, escrow_earned(world), agent.open_work_orders) == (
        int(for_provider),
        AMOUNT - client_amount,
        0,
    )


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
    world.ok(build_accept_work_order(order, order.arbiter), world.owner)
    assert_refused(world, [build_claim_refund(order)], [world.client], "DeadlineNotReached", escrowed(order))
    world.warp(DAY + 1)
    assert_refused(
        world,
        [build_submit_work_delivery(order, "ipfs://late", HASH)],
        [world.owner],
        "DeadlinePassed",
        escrowed(order),
    )
    result = world.ok(build_claim_refund(order), world.client)
    assert result.event("WorkOrderRefunded").refunded == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS
    assert_closed(world, order)
    assert world.metrics().failed_payments == 1


def test_token_2022_mint_without_fees_works_end_to_end(world: World) -> None:
    order = world.open(mint=world.pyusd, token_program=TOKEN_2022_PROGRAM_ID)
    assert world.chain.account(order.vault).owner == TOKEN_2022_PROGRAM_ID
    world.ok(build_accept_work_order(order, order.arbiter), world.owner)
    world.ok(build_release_payment(order, AMOUNT), world.client)
    assert world.balance(world.owner.pubkey(), world.pyusd, TOKEN_2022_PROGRAM_ID) == AMOUNT
    assert_closed(world, order)


def test_tokens_sent_to_the_vault_on_the_side_go_back_to_the_client(world: World) -> None:
    """A donation to the vault must not block closing it, and is not paid to the provider."""
    order = world.open()
    vault = bytearray(world.chain.account(order.vault).data)
    vault[64:72] = (AMOUNT + 777).to_bytes(8, "little")
    world.chain.set_account(order.vault, bytes(vault), owner=TOKEN_PROGRAM_ID)
    world.ok(build_accept_work_order(order, order.arbiter), world.owner)
    world.ok(build_release_payment(order, AMOUNT), world.client)
    assert world.balance(world.owner.pubkey()) == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS - AMOUNT + 777
    assert_closed(world, order)


# ---- mints the escrow refuses ------------------------------------------------------------------------


def token_2022_mint(world: World, extension_type: int, extension_len: int) -> Pubkey:
    """A Token-2022 mint carrying one extension (zeroed)."""
    return world.chain.create_token_2022_mint([(extension_type, bytes(extension_len))], DECIMALS)


@pytest.mark.parametrize(
    ("extension_type", "extension_len", "error"),
    [
        (1, 108, "MintHasTransferFee"),
        (14, 64, "MintHasTransferHook"),
        (12, 32, "MintExtensionNotSupported"),  # a permanent delegate could empty the vault
        (9, 0, "MintExtensionNotSupported"),  # non-transferable
    ],
)
def test_mints_with_extensions_the_escrow_cannot_account_for_are_refused(
    world: World, extension_type: int, extension_len: int, error: str
) -> None:
    """An agent cannot accept such a mint (configure_x402 applies the same policy), so the escrow's own
    check is tried on an agent whose stored token list was written before that rule: its usdc entry is
    overwritten with the bad mint's key in the ledger."""
    mint = token_2022_mint(world, extension_type, extension_len)
    refused = world.send(
        [
            build_register_agent(
                world.owner.pubkey(),
                AgentProfile("fees", "Fees"),
                X402Config(world.owner.pubkey(), [TokenPrice(mint, 10_000)], "https://a.example"),
            )
        ],
        world.owner,
    )
    assert refused.error == error, refused.logs
    data = bytes(world.chain.account(world.agent).data)
    assert data.count(bytes(world.usdc)) == 1
    world.chain.set_account(world.agent, data.replace(bytes(world.usdc), bytes(mint)), owner=world.chain.program_id)
    world.chain.create_token_account(world.client.pubkey(), mint, FUNDS, TOKEN_2022_PROGRAM_ID)
    order, result = world.create(mint=mint, token_program=TOKEN_2022_PROGRAM_ID)
    assert result.error == error, result.logs
    assert world.chain.account(order.address) is None
    assert world.balance(world.client.pubkey(), mint, TOKEN_2022_PROGRAM_ID) == FUNDS


def test_a_neutral_extension_is_accepted(world: World) -> None:
    mint = token_2022_mint(world, 3, 32)  # MintCloseAuthority (no authority set)
    world.ok(
        build_register_agent(
            world.owner.pubkey(),
            AgentProfile("close", "Close"),
            X402Config(world.owner.pubkey(), [TokenPrice(mint, 10_000)], "https://a.example"),
        ),
        world.owner,
    )
    world.agent = agent_address(world.owner.pubkey(), "close")[0]
    world.chain.create_token_account(world.client.pubkey(), mint, FUNDS, TOKEN_2022_PROGRAM_ID)
    world.chain.create_token_account(world.owner.pubkey(), mint, 0, TOKEN_2022_PROGRAM_ID)
    order = world.open(mint=mint, token_program=TOKEN_2022_PROGRAM_ID)
    world.ok(build_accept_work_order(order, order.arbiter), world.owner)
    world.ok(build_release_payment(order, AMOUNT), world.client)
    assert world.balance(world.owner.pubkey(), mint, TOKEN_2022_PROGRAM_ID) == AMOUNT


# ---- attacks: each refused with its named error, nothing moved ---------------------------------------


def accepted(world: World) -> WorkOrderRef:
    order = world.open()
    world.ok(build_accept_work_order(order, order.arbiter), world.owner)
    return order


def test_release_by_the_provider_is_refused(world: World) -> None:
    order = accepted(world)
    forged = WorkOrderRef(**{**order.__dict__, "client": world.owner.pubkey()})
    assert_refused(world, [build_release_payment(forged, AMOUNT)], [world.owner], "NotWorkOrderClient", escrowed(order))


def test_release_above_the_remainder_is_refused(world: World) -> None:
    order = accepted(world)
    world.ok(build_release_payment(order, 1_000_000), world.client)
    assert_refused(
        world,
        [build_release_payment(order, AMOUNT - 1_000_000 + 1)],
        [world.client],
        "ReleaseExceedsRemainder",
        escrowed(order),
    )
    assert_refused(
        world, [build_release_payment(order, 2**64 - 1)], [world.client], "ReleaseExceedsRemainder", escrowed(order)
    )
    assert_refused(world, [build_release_payment(order, 0)], [world.client], "ZeroAmount", escrowed(order))


def test_dispute_resolution_by_anyone_but_the_arbiter_is_refused(world: World) -> None:
    order = accepted(world)
    world.ok(build_open_dispute(order, world.client.pubkey(), "late"), world.client)
    for who in (world.client, world.owner, world.stranger):
        forged = WorkOrderRef(**{**order.__dict__, "arbiter": who.pubkey()})
        assert_refused(world, [build_resolve_dispute(forged, 0)], [who], "NotWorkOrderArbiter", escrowed(order))
    assert_refused(world, [build_resolve_dispute(order, 10_001)], [world.arbiter], "ShareOutOfRange", escrowed(order))


def test_refund_before_the_deadline_is_refused(world: World) -> None:
    order = accepted(world)
    world.warp(DAY - 1)
    assert_refused(world, [build_claim_refund(order)], [world.client], "DeadlineNotReached", escrowed(order))


def test_claim_before_the_review_period_is_refused(world: World) -> None:
    order = accepted(world)
    world.ok(build_submit_work_delivery(order, "ipfs://x", HASH), world.owner)
    world.warp(REVIEW - 1)
    assert_refused(world, [build_claim_payment(order)], [world.owner], "ReviewPeriodActive", escrowed(order))


def test_acceptance_by_a_stranger_is_refused(world: World) -> None:
    order = world.open()
    forged = WorkOrderRef(**{**order.__dict__, "provider_owner": world.stranger.pubkey()})
    assert_refused(
        world,
        [build_accept_work_order(forged, order.arbiter)],
        [world.stranger],
        "NotWorkOrderProvider",
        escrowed(order),
    )
    assert_refused(
        world,
        [build_open_dispute(order, world.stranger.pubkey(), "x")],
        [world.stranger],
        "NotWorkOrderParty",
        escrowed(order),
    )


def test_a_vault_swapped_for_another_token_account_is_refused(world: World) -> None:
    order = accepted(world)
    other = world.open()  # a real vault of the same mint, owned by another work order
    swapped = WorkOrderRef(**{**order.__dict__, "vault": other.vault})
    assert_refused(world, [build_release_payment(swapped, AMOUNT)], [world.client], "VaultMismatch", escrowed(order))
    client_ata = associated_token_address(world.client.pubkey(), world.usdc)
    swapped = WorkOrderRef(**{**order.__dict__, "vault": client_ata})
    assert_refused(world, [build_release_payment(swapped, AMOUNT)], [world.client], "VaultMismatch", escrowed(order))


def test_payouts_to_a_token_account_of_someone_else_are_refused(world: World) -> None:
    order = accepted(world)
    stranger_ata = associated_token_address(world.stranger.pubkey(), world.usdc)
    assert_refused(
        world,
        [build_release_payment(order, AMOUNT, provider_token_account=stranger_ata)],
        [world.client],
        "TokenAccountOwnerMismatch",
        escrowed(order),
    )
    assert_refused(
        world,
        [build_release_payment(order, AMOUNT, provider_token_account=order.vault)],
        [world.client],
        "TokenAccountOwnerMismatch",
        escrowed(order),
    )
    created = world.open()
    assert_refused(
        world,
        [build_cancel_work_order(created, client_token_account=stranger_ata)],
        [world.client],
        "TokenAccountOwnerMismatch",
        escrowed(created),
    )


def test_a_mint_the_provider_does_not_accept_is_refused(world: World) -> None:
    before = world.balance(world.client.pubkey(), world.other)
    order, result = world.create(mint=world.other)
    assert result.error == "PaymentMintNotAccepted"
    assert world.chain.account(order.address) is None and world.chain.account(order.vault) is None
    assert world.balance(world.client.pubkey(), world.other) == before


def test_another_agent_or_mint_or_token_program_is_refused(world: World) -> None:
    order = accepted(world)
    wrong_agent = WorkOrderRef(**{**order.__dict__, "agent": world.stranger.pubkey()})
    assert_refused(
        world, [build_release_payment(wrong_agent, AMOUNT)], [world.client], "WorkOrderAgentMismatch", escrowed(order)
    )
    wrong_mint = WorkOrderRef(**{**order.__dict__, "mint": world.pyusd, "token_program": TOKEN_2022_PROGRAM_ID})
    assert_refused(
        world, [build_release_payment(wrong_mint, AMOUNT)], [world.client], "WorkOrderMintMismatch", escrowed(order)
    )
    wrong_program = WorkOrderRef(**{**order.__dict__, "token_program": TOKEN_2022_PROGRAM_ID})
    assert_refused(
        world, [build_release_payment(wrong_program, AMOUNT)], [world.client], "TokenProgramMismatch", escrowed(order)
    )


def test_a_forged_work_order_account_is_refused(world: World) -> None:
    """A look-alike WorkOrder owned by another program, naming the attacker as client and his own vault."""
    order = accepted(world)
    forged_address = Keypair().pubkey()
    data = bytes(world.chain.account(order.address).data)
    world.chain.set_account(forged_address, data, owner=TOKEN_PROGRAM_ID)
    forged = WorkOrderRef(**{**order.__dict__, "address": forged_address})
    assert_refused(
        world, [build_release_payment(forged, AMOUNT)], [world.client], "AccountOwnedByWrongProgram", escrowed(order)
    )


def test_replayed_and_late_steps_are_refused(world: World) -> None:
    order = world.open()
    world.ok(build_accept_work_order(order, order.arbiter), world.owner)
    assert_refused(
        world, [build_accept_work_order(order, order.arbiter)], [world.owner], "InvalidWorkOrderStatus", escrowed(order)
    )
    assert_refused(world, [build_cancel_work_order(order)], [world.client], "InvalidWorkOrderStatus", escrowed(order))
    world.ok(build_release_payment(order, AMOUNT), world.client)
    # the order is closed: replaying the final release finds no work order
    assert_refused(world, [build_release_payment(order, AMOUNT)], [world.client], "AccountOwnedByWrongProgram")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"amount": 999}, "WorkOrderAmountOutOfRange"),
        ({"amount": 10**12 + 1}, "WorkOrderAmountOutOfRange"),
        ({"deadline_in": 0}, "DeadlineInPast"),
    ],
)
def test_bad_terms_are_refused(world: World, change: dict, error: str) -> None:
    order, result = world.create(**change)
    assert result.error == error
    assert world.chain.account(order.address) is None
    assert world.balance(world.client.pubkey()) == FUNDS


def test_bad_text_and_parties_are_refused(world: World) -> None:
    def create(**terms_change) -> str:
        base = dict(
            amount=AMOUNT,
            deadline=world.now + DAY,
            arbiter=world.arbiter.pubkey(),
            title="T",
            review_period_seconds=REVIEW,
        )
        vault = Keypair()
        ix = build_create_work_order(
            world.client.pubkey(),
            world.agent,
            world.usdc,
            99,
            WorkOrderTerms(**{**base, **terms_change}),
            vault.pubkey(),
        )
        return world.send([ix], world.client, vault).error

    assert create(title="") == "TitleInvalid"
    assert create(title="x" * 101) == "TitleInvalid"
    assert create(description="d" * 513) == "WorkOrderDescriptionTooLong"
    assert create(requirements=("r",) * 11) == "TooManyRequirements"
    assert create(requirements=("",)) == "RequirementInvalid"
    assert create(review_period_seconds=59) == "ReviewPeriodOutOfRange"
    assert create(arbiter=world.client.pubkey()) == "InvalidArbiter"
    assert create(arbiter=world.owner.pubkey()) == "InvalidArbiter"
    assert world.balance(world.client.pubkey()) == FUNDS


def test_hiring_your_own_agent_is_refused(world: World) -> None:
    world.client = world.owner
    world.chain.create_token_account(world.owner.pubkey(), world.usdc, FUNDS)
    order, result = world.create()
    assert result.error == "CannotHireOwnAgent"


# ---- hardening: a delivered order cannot be robbed, the provider consents, nobody is blocked -------------


def delivered(world: World, before_deadline: int = DAY) -> WorkOrderRef:
    """An accepted order delivered `before_deadline` seconds before its deadline (default: right away)."""
    order = accepted(world)
    world.warp(DAY - before_deadline)
    world.ok(build_submit_work_delivery(order, "ipfs://on-time", HASH), world.owner)
    return order


def test_reject_and_refund_in_one_transaction_after_the_deadline_is_refused(world: World) -> None:
    """The robbery: the provider delivered on time, the deadline passes, the client rejects and takes the escrow
    back in one transaction. The rejection opens a grace period (the review period) first."""
    order = delivered(world, before_deadline=60)
    world.warp(120)  # past the deadline, still within the review period
    before = snapshot(world, escrowed(order))
    result = world.send([build_reject_delivery(order, "too late to object"), build_claim_refund(order)], world.client)
    assert result.error == "GracePeriodActive", result.logs
    assert snapshot(world, escrowed(order)) == before


def test_a_rejection_after_the_review_period_is_refused(world: World) -> None:
    order = delivered(world)
    world.warp(REVIEW)
    assert_refused(world, [build_reject_delivery(order, "late")], [world.client], "ReviewPeriodOver", escrowed(order))
    world.ok(build_claim_payment(order), world.owner)
    assert world.balance(world.owner.pubkey()) == AMOUNT


def test_after_a_rejection_the_provider_can_deliver_again_even_past_the_deadline(world: World) -> None:
    order = delivered(world, before_deadline=100)
    world.warp(50)
    world.ok(build_reject_delivery(order, "chapter 3 missing"), world.client)
    world.warp(REVIEW // 2)  # past the deadline, within the grace period
    assert_refused(world, [build_claim_refund(order)], [world.client], "GracePeriodActive", escrowed(order))
    world.ok(build_submit_work_delivery(order, "ipfs://with-chapter-3", HASH), world.owner)
    assert status(world, order) == SUBMITTED
    world.warp(REVIEW)
    world.ok(build_claim_payment(order), world.owner)
    assert world.balance(world.owner.pubkey()) == AMOUNT and world.metrics().failed_payments == 0


def test_after_a_rejection_the_provider_can_dispute(world: World) -> None:
    order = delivered(world)
    world.ok(build_reject_delivery(order, "no"), world.client)
    world.ok(build_open_dispute(order, world.owner.pubkey(), "the delivery meets the requirements"), world.owner)
    world.warp(DAY + REVIEW)
    assert_refused(world, [build_claim_refund(order)], [world.client], "InvalidWorkOrderStatus", escrowed(order))
    world.ok(build_resolve_dispute(order, 0), world.arbiter)
    assert world.balance(world.owner.pubkey()) == AMOUNT


def test_a_provider_who_ignores_a_rejection_loses_the_escrow_after_the_grace_period(world: World) -> None:
    order = delivered(world)
    world.ok(build_reject_delivery(order, "wrong language"), world.client)
    world.warp(DAY + 1)
    assert_refused(
        world,
        [build_submit_work_delivery(order, "ipfs://late", HASH)],
        [world.owner],
        "DeadlinePassed",
        escrowed(order),
    )
    result = world.ok(build_claim_refund(order), world.client)
    assert result.event("WorkOrderRefunded").refunded == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS and world.metrics().failed_payments == 1


# ---- liveness: every window is final, an unruled dispute ends by default -----------------------------


def order_rent(world: World, order: WorkOrderRef) -> int:
    """What closing the order gives back to the client: the work order's and the vault's rent."""
    return sum(world.chain.balance(k) for k in (order.address, order.vault))


def assert_agent_closes(world: World) -> None:
    """Nothing holds the agent open: close_agent succeeds and refunds its rent to the owner."""
    rent = world.chain.balance(world.agent)
    owner_sol = world.chain.balance(world.owner.pubkey())
    world.ok(close_agent({"agent": world.agent, "owner": world.owner.pubkey()}), world.owner)
    assert world.chain.balance(world.agent) == 0
    assert world.chain.balance(world.owner.pubkey()) == owner_sol + rent


@pytest.mark.parametrize("settled_by", ["client", "provider"])
def test_a_dispute_the_arbiter_never_rules_on_is_settled_by_default_after_the_ruling_period(
    world: World, settled_by: str
) -> None:
    """The arbiter stays silent. Until the ruling period ends nobody can force the default (RulingPeriodActive,
    nothing moved); then either party settles: the remainder back to the client, counted as a ruling wholly
    for the client, the vault and work order closed, and the agent free to close."""
    order = delivered(world)
    world.ok(build_release_payment(order, 1_000_000), world.client)  # a milestone the provider keeps
    world.ok(build_reject_delivery(order, "chapter 3 missing"), world.client)
    world.ok(build_open_dispute(order, world.owner.pubkey(), "it is there"), world.owner)
    disputed_at = world.state(order).disputed_at
    assert disputed_at == world.now
    for party in (world.client, world.owner):
        assert_refused(
            world, [build_settle_by_default(order, party.pubkey())], [party], "RulingPeriodActive", escrowed(order)
        )
    world.warp(RULING - 1)
    assert_refused(
        world,
        [build_settle_by_default(order, world.owner.pubkey())],
        [world.owner],
        "RulingPeriodActive",
        escrowed(order),
    )
    assert_refused(
        world,
        [build_settle_by_default(order, world.stranger.pubkey())],
        [world.stranger],
        "NotWorkOrderParty",
        escrowed(order),
    )
    world.warp(1)

    party = world.client if settled_by == "client" else world.owner
    client_sol = world.chain.balance(world.client.pubkey())
    rent = order_rent(world, order)
    result = world.ok(build_settle_by_default(order, party.pubkey()), party)
    assert result.event("DisputeSettledByDefault").refunded == AMOUNT - 1_000_000
    assert world.balance(world.client.pubkey()) == FUNDS - 1_000_000
    assert world.balance(world.owner.pubkey()) == 1_000_000
    assert world.balance(world.arbiter.pubkey()) == world.balance(world.stranger.pubkey()) == 0
    assert_closed(world, order)
    assert world.chain.balance(world.client.pubkey()) == client_sol + rent  # the facilitator pays every fee
    metrics, agent = world.metrics(), world.agent_state()
    assert (
        metrics.total_disputes,
        metrics.disputes_resolved,
        metrics.successful_payments,
        metrics.failed_payments,
    ) == (1, 1, 0, 1)  # as a ruling of client_share_bps = 10,000
    assert (agent.open_work_orders, agent.total_jobs_completed, escrow_earned(world)) == (0, 0, 1_000_000)
    assert earnings_by_mint(agent)[world.usdc].open_work_orders == 0
    assert_agent_closes(world)


def test_the_arbiter_may_still_rule_after_the_ruling_period_until_someone_settles(world: World) -> None:
    order = accepted(world)
    world.ok(build_open_dispute(order, world.client.pubkey(), "late"), world.client)
    world.warp(RULING + DAY)
    world.ok(build_resolve_dispute(order, 0), world.arbiter)
    assert world.balance(world.owner.pubkey()) == AMOUNT and world.balance(world.client.pubkey()) == FUNDS - AMOUNT
    assert_closed(world, order)
    assert_refused(
        world, [build_settle_by_default(order, world.client.pubkey())], [world.client], "AccountOwnedByWrongProgram"
    )


def test_a_dispute_after_the_grace_period_is_refused_and_the_refund_goes_through(world: World) -> None:
    """The provider let the rejection's grace period (and the deadline) pass; disputing now would block the
    refund docs/program.md promises. Refused by name, nothing moved; the client's refund then goes through."""
    order = delivered(world)
    world.ok(build_reject_delivery(order, "wrong language"), world.client)
    world.warp(DAY + 1)  # past the deadline and the grace period (REVIEW < DAY)
    for party in (world.owner, world.client):
        assert_refused(
            world, [build_open_dispute(order, party.pubkey(), "too late")], [party], "GracePeriodOver", escrowed(order)
        )
    assert world.metrics().total_disputes == 0
    client_sol = world.chain.balance(world.client.pubkey())
    rent = order_rent(world, order)
    result = world.ok(build_claim_refund(order), world.client)
    assert result.event("WorkOrderRefunded").refunded == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS and world.balance(world.owner.pubkey()) == 0
    assert world.chain.balance(world.client.pubkey()) == client_sol + rent
    assert_closed(world, order)
    metrics = world.metrics()
    assert (metrics.total_disputes, metrics.failed_payments, world.agent_state().open_work_orders) == (0, 1, 0)


def test_a_dispute_within_the_grace_period_but_past_the_deadline_is_still_open_to_the_provider(world: World) -> None:
    order = delivered(world, before_deadline=100)
    world.warp(50)
    world.ok(build_reject_delivery(order, "no"), world.client)
    world.warp(REVIEW - 1)  # past the deadline, the grace period's last second
    world.ok(build_open_dispute(order, world.owner.pubkey(), "it meets the requirements"), world.owner)
    assert status(world, order) == DISPUTED


def test_every_dispute_window_closes_when_a_party_may_settle_alone(world: World) -> None:
    """Accepted past the deadline (the refund is due) and Submitted past the review period (the claim is due):
    a dispute then would only block the party the rules favour."""
    never_delivered = accepted(world)
    world.warp(DAY + 1)
    assert_refused(
        world,
        [build_open_dispute(never_delivered, world.owner.pubkey(), "stall")],
        [world.owner],
        "DeadlinePassed",
        escrowed(never_delivered),
    )
    world.ok(build_claim_refund(never_delivered), world.client)
    assert world.balance(world.client.pubkey()) == FUNDS

    late_objection = delivered(world)
    world.warp(REVIEW)
    assert_refused(
        world,
        [build_open_dispute(late_objection, world.client.pubkey(), "stall")],
        [world.client],
        "ReviewPeriodOver",
        escrowed(late_objection),
    )
    world.ok(build_claim_payment(late_objection), world.owner)
    assert world.balance(world.owner.pubkey()) == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS - AMOUNT
    assert world.metrics().total_disputes == 0


def test_the_provider_settles_a_refund_the_client_never_claims(world: World) -> None:
    """An accepted order never delivered: after the deadline the refund is the client's, and a client who
    never claims it cannot keep the provider (and its close_agent) waiting."""
    order = accepted(world)
    assert_refused(
        world,
        [build_settle_by_default(order, world.owner.pubkey())],
        [world.owner],
        "DeadlineNotReached",
        escrowed(order),
    )
    world.warp(DAY + 1)
    client_sol = world.chain.balance(world.client.pubkey())
    rent = order_rent(world, order)
    result = world.ok(build_settle_by_default(order, world.owner.pubkey()), world.owner)
    assert result.event("WorkOrderRefunded").refunded == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS and world.balance(world.owner.pubkey()) == 0
    assert world.chain.balance(world.client.pubkey()) == client_sol + rent
    assert_closed(world, order)
    assert world.metrics().failed_payments == 1  # as claim_refund counts it
    assert world.agent_state().open_work_orders == 0
    assert_agent_closes(world)


def test_the_provider_must_name_the_arbiter_it_accepts(world: World) -> None:
    order = world.open()
    for wrong in (world.stranger.pubkey(), world.client.pubkey(), Pubkey.default()):
        assert_refused(
            world, [build_accept_work_order(order, wrong)], [world.owner], "ArbiterNotAgreed", escrowed(order)
        )
    world.ok(build_accept_work_order(order, world.arbiter.pubkey()), world.owner)


def test_the_arbiter_cannot_be_the_agents_payment_wallet(world: World) -> None:
    payee = world.chain.funded_keypair()
    config = X402Config(payee.pubkey(), [TokenPrice(world.usdc, 10_000)], "https://a.example")
    world.ok(build_register_agent(world.owner.pubkey(), AgentProfile("paid-elsewhere", "P"), config), world.owner)
    world.agent = agent_address(world.owner.pubkey(), "paid-elsewhere")[0]
    world.arbiter = payee
    order, result = world.create()
    assert result.error == "InvalidArbiter", result.logs
    assert world.chain.account(order.address) is None and world.balance(world.client.pubkey()) == FUNDS


def test_a_deadline_more_than_a_year_away_is_refused(world: World) -> None:
    order, result = world.create(deadline_in=MAX_DEADLINE + 1)
    assert result.error == "DeadlineTooFar"
    assert world.chain.account(order.address) is None and world.balance(world.client.pubkey()) == FUNDS
    world.open(deadline_in=MAX_DEADLINE)


def test_the_provider_declines_an_order_it_never_accepted(world: World) -> None:
    order = world.open()
    client_sol = world.chain.balance(world.client.pubkey())
    rent = sum(world.chain.balance(k) for k in (order.address, order.vault))
    forged = WorkOrderRef(**{**order.__dict__, "provider_owner": world.stranger.pubkey()})
    assert_refused(world, [build_decline_work_order(forged)], [world.stranger], "NotWorkOrderProvider", escrowed(order))
    result = world.ok(build_decline_work_order(order), world.owner)
    assert result.event("WorkOrderDeclined").refunded == AMOUNT
    assert world.balance(world.client.pubkey()) == FUNDS
    assert world.chain.balance(world.client.pubkey()) == client_sol + rent
    assert_closed(world, order)
    assert world.agent_state().open_work_orders == 0 and world.metrics().failed_payments == 0
    # once accepted it is a commitment: only the usual paths end it
    accepted_order = accepted(world)
    assert_refused(
        world,
        [build_decline_work_order(accepted_order)],
        [world.owner],
        "InvalidWorkOrderStatus",
        escrowed(accepted_order),
    )


def test_a_ruling_for_the_provider_counts_as_if_the_client_had_paid() -> None:
    """Same history twice: once released by the client, once disputed by the client and ruled wholly for the
    provider. Metrics, score and counters must be identical: the dispute must not lower the score."""

    def run(disputed: bool) -> tuple:
        world = escrow_world()
        world.chain.set_unix_timestamp(1_800_000_000)
        order = delivered(world)
        score_before = world.agent_state().reputation_score
        if disputed:
            world.ok(build_open_dispute(order, world.client.pubkey(), "not good enough"), world.client)
            world.ok(build_resolve_dispute(order, 0), world.arbiter)
        else:
            world.ok(build_release_payment(order, AMOUNT), world.client)
        m, agent = world.metrics(), world.agent_state()
        counters = (
            m.successful_payments,
            m.failed_payments,
            m.total_disputes,
            m.disputes_resolved,
            list(m.payment_history_7d),
            agent.total_jobs_completed,
            escrow_earned(world),
        )
        return counters, agent.reputation_score, score_before

    released, disputed = run(False), run(True)
    assert disputed == released
    assert disputed[1] >= disputed[2]


# ---- the property test -------------------------------------------------------------------------------

ACTIONS = (
    "accept",
    "deliver",
    "reject",
    "release",
    "claim",
    "dispute",
    "resolve",
    "cancel",
    "decline",
    "refund",
    "settle",
)
# Most steps are signed by the party the action is for, so sequences get deep; the rest by anyone.
RIGHTFUL_ROLE = {
    "accept": "provider",
    "deliver": "provider",
    "reject": "client",
    "release": "client",
    "claim": "provider",
    "dispute": "client",
    "resolve": "arbiter",
    "cancel": "client",
    "decline": "provider",
    "refund": "client",
    "settle": "provider",
}


@dataclass
class Model:
    """What the program must do: the listed transitions and nothing else."""

    status: str
    amount: int
    deadline: int
    released: int = 0
    delivered_at: int = 0
    rejected_at: int = 0
    disputed_at: int = 0

    def allows(self, action: str, role: str, now: int, value: int) -> bool:
        remaining = self.amount - self.released
        in_progress = self.status in (ACCEPTED, SUBMITTED, REJECTED)
        grace = now < self.rejected_at + REVIEW  # after a rejection: deliver again or dispute, no refund yet
        refund_due = now > self.deadline and (
            self.status in (CREATED, ACCEPTED) or (self.status == REJECTED and not grace)
        )
        # a dispute only while neither party can settle alone (no refund due, no claim open)
        disputable = (
            (self.status == ACCEPTED and now <= self.deadline)
            or (self.status == SUBMITTED and now < self.delivered_at + REVIEW)
            or (self.status == REJECTED and (now <= self.deadline or grace))
        )
        unruled = self.status == DISPUTED and now >= self.disputed_at + RULING
        return {
            "accept": role == "provider" and self.status == CREATED and now <= self.deadline,
            "deliver": role == "provider"
            and (
                (self.status == ACCEPTED and now <= self.deadline)
                or (self.status == REJECTED and (now <= self.deadline or grace))
            ),
            "reject": role == "client" and self.status == SUBMITTED and now < self.delivered_at + REVIEW,
            "release": role == "client" and in_progress and 0 < value <= remaining,
            "claim": role == "provider" and self.status == SUBMITTED and now >= self.delivered_at + REVIEW,
            "dispute": role in ("client", "provider") and disputable,
            "resolve": role == "arbiter" and self.status == DISPUTED and value <= 10_000,
            "cancel": role == "client" and self.status == CREATED,
            "decline": role == "provider" and self.status == CREATED,
            "refund": role == "client" and refund_due,
            "settle": role in ("client", "provider") and (refund_due or unruled),
        }[action]

    def apply(self, action: str, now: int, value: int) -> None:
        remaining = self.amount - self.released
        if action == "release":
            self.released += value
            self.status = "Completed" if value == remaining else self.status
        elif action == "deliver":
            self.status, self.delivered_at = SUBMITTED, now
        elif action == "reject":
            self.status, self.rejected_at = REJECTED, now
        elif action == "dispute":
            self.status, self.disputed_at = DISPUTED, now
        else:
            self.status = {
                "accept": ACCEPTED,
                "claim": "Completed",
                "resolve": "Resolved",
                "cancel": "Cancelled",
                "decline": "Declined",
                "refund": "Refunded",
                "settle": "Refunded",
            }[action]


def step_instruction(world: World, order: WorkOrderRef, action: str, signer: Keypair, value: int) -> Instruction:
    """`action` signed by `signer`, who is put in the signer's slot whatever its role."""
    key = signer.pubkey()
    as_client = WorkOrderRef(**{**order.__dict__, "client": key})
    as_provider = WorkOrderRef(**{**order.__dict__, "provider_owner": key})
    return {
        "accept": lambda: build_accept_work_order(as_provider, order.arbiter),
        "deliver": lambda: build_submit_work_delivery(as_provider, f"ipfs://d{value}", HASH),
        "reject": lambda: build_reject_delivery(as_client, "again"),
        "release": lambda: build_release_payment(
            as_client,
            value,
            client_token_account=order.token_account(order.client),
            provider_token_account=order.token_account(order.provider_owner),
        ),
        "claim": lambda: build_claim_payment(
            as_provider,
            client_token_account=order.token_account(order.client),
            provider_token_account=order.token_account(order.provider_owner),
        ),
        "dispute": lambda: build_open_dispute(order, key, "no"),
        "resolve": lambda: build_resolve_dispute(WorkOrderRef(**{**order.__dict__, "arbiter": key}), value),
        "cancel": lambda: build_cancel_work_order(as_client, client_token_account=order.token_account(order.client)),
        "decline": lambda: build_decline_work_order(
            as_provider, client_token_account=order.token_account(order.client)
        ),
        "refund": lambda: build_claim_refund(as_client, client_token_account=order.token_account(order.client)),
        "settle": lambda: build_settle_by_default(order, key, client_token_account=order.token_account(order.client)),
    }[action]()


def token_total(world: World, order: WorkOrderRef) -> tuple[int, int, int]:
    return (
        world.balance(world.client.pubkey()),
        world.balance(world.owner.pubkey()),
        world.chain.token_balance(order.vault),
    )


def test_random_sequences_keep_the_escrow_invariants() -> None:
    """GHOSTPAY_ESCROW_SEQUENCES random sequences (default 2,000) of every instruction by random signers, with
    random amounts and clock jumps. After every step: a refused step moved nothing, an accepted one is a listed
    transition, the vault holds amount - released while open, the three parties' tokens sum to the same total,
    and a terminal state leaves no work order and no vault. A provider who delivered on time never loses the
    escrow but by a ruling, by letting a rejection's grace period pass (the model's `refund` rule) or by a
    dispute its arbiter left unruled past the ruling period (`settle`)."""
    world = escrow_world()
    world.chain.create_token_account(world.client.pubkey(), world.usdc, 2**62)  # enough for every sequence
    rng = random.Random(int(os.environ.get("GHOSTPAY_ESCROW_SEED", "5")))
    roles = {"client": world.client, "provider": world.owner, "arbiter": world.arbiter, "stranger": world.stranger}
    seen: set[tuple[str, str]] = set()
    for _ in range(SEQUENCES):
        amount = rng.choice([1_000, rng.randrange(1_000, 10**9), 10**12])
        order, result = world.create(amount=amount, deadline_in=rng.choice([60, DAY]))
        assert result.ok, result.logs
        model = Model(CREATED, amount, world.state(order).deadline)
        total = sum(token_total(world, order))
        while model.status not in TERMINAL:
            world.warp(rng.choice([0, 0, 1, 30, REVIEW, DAY, RULING]))
            # Half the time an action the rightful party may take now, so walks reach the deep states.
            live = [a for a in ACTIONS if model.allows(a, RIGHTFUL_ROLE[a], world.now, 1)]
            action = rng.choice(live if live and rng.random() < 0.5 else ACTIONS)
            role = RIGHTFUL_ROLE[action] if rng.random() < 0.6 else rng.choice(list(roles))
            remaining = model.amount - model.released
            value = {
                "release": rng.choice([0, 1, remaining // 2, remaining, remaining + 1]),
                "resolve": rng.choice([0, 1, 5_000, 10_000, 10_001]),
            }.get(action, 0)
            now = world.now
            expected = model.allows(action, role, now, value)
            before = snapshot(world, escrowed(order))
            result = world.send([step_instruction(world, order, action, roles[role], value)], roles[role])
            assert result.ok == expected, (model, action, role, value, result.error, result.logs[-3:])
            if not result.ok:
                assert snapshot(world, escrowed(order)) == before, (action, role, result.error)
                continue
            seen.add((model.status, action))
            model.apply(action, now, value)
            assert sum(token_total(world, order)) == total
            if model.status in TERMINAL:
                assert_closed(world, order)
            else:
                assert world.chain.token_balance(order.vault) == model.amount - model.released
                assert status(world, order) == model.status
        assert world.agent_state().open_work_orders == 0
    if SEQUENCES >= 500:  # the random walk reached every listed transition
        assert seen == {
            (CREATED, "accept"),
            (CREATED, "cancel"),
            (CREATED, "decline"),
            (CREATED, "refund"),
            (ACCEPTED, "deliver"),
            (ACCEPTED, "release"),
            (ACCEPTED, "dispute"),
            (ACCEPTED, "refund"),
            (SUBMITTED, "reject"),
            (SUBMITTED, "release"),
            (SUBMITTED, "claim"),
            (SUBMITTED, "dispute"),
            (REJECTED, "deliver"),
            (REJECTED, "release"),
            (REJECTED, "dispute"),
            (REJECTED, "refund"),
            (DISPUTED, "resolve"),
            (CREATED, "settle"),
            (ACCEPTED, "settle"),
            (REJECTED, "settle"),
            (DISPUTED, "settle"),
        }
