"""Verified x402 payments end to end in LiteSVM: the TransferChecked and record_x402_payment in
one transaction (a facilitator pays the fees), the payer's PayerStats (no account per payment),
feedback and the score, and the legacy receipts made before.

Every refused transaction is checked for its error NAME and for having moved nothing: token
balances, the agent, its metrics and the payer's PayerStats are exactly as before; only the
facilitator's fees go.
"""

from __future__ import annotations

import os
import struct

import pytest
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer as sol_transfer
from solders.sysvar import INSTRUCTIONS
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata
from spl.token.instructions import TransferCheckedParams, transfer_checked

from ghostpay.accounts import X402Receipt
from ghostpay.agent_instructions import AgentProfile, build_close_agent, build_register_agent, mint_accounts
from ghostpay.earnings import earnings_by_mint
from ghostpay.instructions import (
    close_payer_stats,
    close_receipt,
    configure_x402,
    disable_x402,
    refresh_reputation,
    set_agent_active,
)
from ghostpay.payments import build_memo, build_record_x402_payment, build_x402_payment
from ghostpay.pda import agent_address, associated_token_address, payer_stats_address, receipt_address
from ghostpay.program_id import PROGRAM_ID
from ghostpay.reputation import ReputationInputs, day_of, reputation_score
from ghostpay.types import TokenPrice, X402Config
from tests.program.conftest import (
    DECIMALS,
    FEE,
    PAYMENT_FUNDS as FUNDS,
    PRICE,
    STATS_SPACE,
    World,
    assert_refused,
    cpi_relay_program,
    payments_world,
    reference,
    snapshot,
)
from tests.program.svm import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, transfer_fee_config

RECEIPT_SPACE = 194  # a legacy X402Receipt
FEEDBACK_WINDOW_SECONDS = 30 * 86_400


@pytest.fixture
def world() -> World:
    return payments_world()


def ata(owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
    return associated_token_address(owner, mint, program)


def transfer(
    world: World,
    amount: int = PRICE,
    mint: Pubkey | None = None,
    source_owner: Keypair | None = None,
    destination: Pubkey | None = None,
    program: Pubkey = TOKEN_PROGRAM_ID,
) -> Instruction:
    mint = mint or world.usdc
    source_owner = source_owner or world.payer
    return transfer_checked(
        TransferCheckedParams(
            program_id=program,
            source=ata(source_owner.pubkey(), mint, program),
            mint=mint,
            dest=destination or ata(world.payee.pubkey(), mint, program),
            owner=source_owner.pubkey(),
            amount=amount,
            decimals=DECIMALS,
        )
    )


def record(
    world: World,
    ref: bytes,
    amount: int = PRICE,
    payer: Keypair | None = None,
    mint: Pubkey | None = None,
    payee_token_account: Pubkey | None = None,
    rent_payer: Keypair | None = None,
    source: Pubkey | None = None,
) -> Instruction:
    """The record of a transfer from `source` (default: the payer's token account) into the payee's."""
    payer, mint = payer or world.payer, mint or world.usdc
    destination = payee_token_account or ata(world.payee.pubkey(), mint)
    return build_record_x402_payment(
        world.agent,
        payer.pubkey(),
        amount,
        ref,
        source or ata(payer.pubkey(), mint),
        mint,
        destination,
        rent_payer=rent_payer.pubkey() if rent_payer else None,
    )


# ---- the payment ------------------------------------------------------------------------------------


def test_payment_moves_tokens_records_it_and_opens_the_payer_stats(world: World) -> None:
    chain = world.chain
    now = chain.svm.get_clock().unix_timestamp
    payer_sol = chain.balance(world.payer.pubkey())
    facilitator_sol = chain.balance(world.facilitator.pubkey())
    instructions = world.payment(reference(1))
    # x402 "exact": the fee payer signs but appears in no instruction
    assert all(meta.pubkey != world.facilitator.pubkey() for ix in instructions for meta in ix.accounts)

    result = world.pay(reference(1))

    assert chain.token_balance(ata(world.payer.pubkey(), world.usdc)) == FUNDS - PRICE
    assert chain.token_balance(ata(world.payee.pubkey(), world.usdc)) == PRICE
    stats = world.stats()
    assert (
        stats.agent,
        stats.payer,
        stats.rent_payer,
        stats.paid_calls,
        stats.rated_calls,
        stats.expired_calls,
        stats.last_paid_at,
    ) == (world.agent, world.payer.pubkey(), world.payer.pubkey(), 1, 0, 0, now)
    rent = chain.svm.minimum_balance_for_rent_exemption(STATS_SPACE)
    assert chain.account(world.stats_address()).lamports == rent
    assert chain.balance(world.payer.pubkey()) == payer_sol - rent  # the pair's first payment: its PayerStats
    assert chain.balance(world.facilitator.pubkey()) == facilitator_sol - 2 * FEE  # the facilitator the fees
    assert chain.account(receipt_address(world.agent, reference(1))[0]) is None  # no account per payment
    opened = result.event("PayerStatsOpened")
    assert (opened.agent, opened.payer, opened.rent_payer, opened.rent_lamports, opened.timestamp) == (
        world.agent,
        world.payer.pubkey(),
        world.payer.pubkey(),
        rent,
        now,
    )

    agent = world.agent_state()
    assert (agent.x402_total_calls, agent.last_payment_at) == (1, now)
    earned = earnings_by_mint(agent)
    assert list(earned) == [world.usdc]  # a mint gets its slot with its first payment
    assert (earned[world.usdc].x402_payments, earned[world.usdc].escrow_earnings) == (PRICE, 0)
    metrics = world.metrics()
    assert metrics.successful_payments == 1 and metrics.failed_payments == 0
    assert metrics.payment_history_7d[day_of(now) % 7] == 1 and sum(metrics.payment_history_7d) == 1
    event = result.event("X402PaymentRecorded")
    assert (
        event.agent,
        event.payer,
        event.rent_payer,
        event.mint,
        event.amount,
        bytes(event.reference),
        event.total_calls,
        event.timestamp,
    ) == (world.agent, world.payer.pubkey(), world.payer.pubkey(), world.usdc, PRICE, reference(1), 1, now)
    # one payment, no feedback yet: the documented score of a new agent (see the vectors)
    updated = result.event("ReputationUpdated")
    assert (updated.old_score, updated.new_score) == (0, 6_800) and agent.reputation_score == 6_800


def test_later_payments_of_the_pair_create_nothing_and_cost_only_fees(world: World) -> None:
    """The pair's PayerStats exists: a payment only updates it (no rent, no PayerStatsOpened)."""
    chain = world.chain
    world.pay(reference(1))
    payer_sol, facilitator_sol = chain.balance(world.payer.pubkey()), chain.balance(world.facilitator.pubkey())
    stats_account = chain.account(world.stats_address())
    result = world.pay(reference(2))
    assert [e.name for e in result.events] == ["X402PaymentRecorded", "ReputationUpdated"]
    assert chain.balance(world.payer.pubkey()) == payer_sol
    assert chain.balance(world.facilitator.pubkey()) == facilitator_sol - 2 * FEE  # the fee of 2 signatures alone
    assert chain.account(world.stats_address()).lamports == stats_account.lamports
    assert (world.stats().paid_calls, world.agent_state().x402_total_calls) == (2, 2)


def test_token_2022_payment_and_overpayment_are_recorded(world: World) -> None:
    world.pay(reference(1), amount=PRICE + 1, mint=world.pyusd, token_program=TOKEN_2022_PROGRAM_ID)
    assert world.chain.token_balance(ata(world.payee.pubkey(), world.pyusd, TOKEN_2022_PROGRAM_ID)) == PRICE + 1
    assert world.stats().paid_calls == 1
    earned = earnings_by_mint(world.agent_state())
    assert list(earned) == [world.pyusd] and earned[world.pyusd].x402_payments == PRICE + 1


def test_payee_account_created_in_the_same_transaction(world: World) -> None:
    fresh_payee = Keypair()
    config = X402Config(fresh_payee.pubkey(), [TokenPrice(world.usdc, PRICE)], "https://agent.example.com/translate")
    assert world.send(
        [
            configure_x402(
                {"config": config},
                {"agent": world.agent, "owner": world.owner.pubkey()},
                remaining_accounts=mint_accounts([world.usdc]),
            )
        ],
        world.owner,
    ).ok
    instructions = build_x402_payment(
        world.payer.pubkey(),
        world.agent,
        fresh_payee.pubkey(),
        world.usdc,
        DECIMALS,
        PRICE,
        reference(9),
        fee_payer=world.facilitator.pubkey(),
        create_payee_account=True,
    )
    assert world.send(instructions, world.payer).ok
    assert world.chain.token_balance(ata(fresh_payee.pubkey(), world.usdc)) == PRICE


# ---- attacks on record_x402_payment -----------------------------------------------------------------


def test_record_without_a_transfer_is_payment_transfer_missing(world: World) -> None:
    assert_refused(world, [record(world, reference(1))], [world.payer], "PaymentTransferMissing")


def test_record_after_a_non_token_instruction_is_payment_transfer_missing(world: World) -> None:
    pay_sol = sol_transfer(
        TransferParams(from_pubkey=world.payer.pubkey(), to_pubkey=world.payee.pubkey(), lamports=PRICE)
    )
    assert_refused(world, [pay_sol, record(world, reference(1))], [world.payer], "PaymentTransferMissing")


def test_transfer_to_the_wrong_account_is_payee_token_account_mismatch(world: World) -> None:
    attacker = world.chain.funded_keypair()
    own = world.chain.create_token_account(attacker.pubkey(), world.usdc)
    for passed in (own, ata(world.payee.pubkey(), world.usdc)):  # naming the transfer's account, or the payee's
        assert_refused(
            world,
            [transfer(world, destination=own), record(world, reference(1), payee_token_account=passed)],
            [world.payer],
            "PayeeTokenAccountMismatch",
            watch=[own],
        )


def test_a_forged_payee_token_account_is_payee_token_account_mismatch(world: World) -> None:
    """The payee's token-account bytes at another address, owned by another program: the runtime ran the
    transfer into the attacker's account, and the copy names the payee."""
    attacker = world.chain.funded_keypair()
    own = world.chain.create_token_account(attacker.pubkey(), world.usdc)
    forged = Keypair().pubkey()
    world.chain.set_account(
        forged, bytes(world.chain.account(ata(world.payee.pubkey(), world.usdc)).data), owner=Pubkey.new_unique()
    )
    assert_refused(
        world,
        [transfer(world, destination=own), record(world, reference(1), payee_token_account=forged)],
        [world.payer],
        "PayeeTokenAccountMismatch",
        watch=[own, forged],
    )


def test_payment_into_another_token_account_of_the_payee_counts(world: World) -> None:
    """Not the associated account, but one the payment address owns in the paid mint: the payee has the
    money, which is what the program checks (the stored owner and mint, cheaper than an ATA derivation)."""
    side = Keypair().pubkey()
    world.chain.set_account(
        side, bytes(world.chain.account(ata(world.payee.pubkey(), world.usdc)).data), owner=TOKEN_PROGRAM_ID
    )
    result = world.send(
        [transfer(world, destination=side), record(world, reference(1), payee_token_account=side)], world.payer
    )
    assert result.ok, result.logs
    assert world.chain.token_balance(side) == PRICE and world.agent_state().x402_total_calls == 1


def test_transfer_in_the_wrong_mint_for_the_destination_fails_in_the_token_program(world: World) -> None:
    """usdc sent to the payee's account of another mint: SPL Token refuses (MintMismatch, 3) and the
    whole transaction with it, so nothing is recorded."""
    wrong = transfer(world, destination=ata(world.payee.pubkey(), world.other))
    token_mint_mismatch = "TransactionErrorInstructionError((0, Tagged(Custom(InstructionErrorCustom(3)))))"
    assert_refused(world, [wrong, record(world, reference(1))], [world.payer], token_mint_mismatch)


def test_unaccepted_mint_is_payment_mint_not_accepted(world: World) -> None:
    assert_refused(
        world,
        [transfer(world, mint=world.other), record(world, reference(1), mint=world.other)],
        [world.payer],
        "PaymentMintNotAccepted",
    )


def test_less_than_the_price_is_payment_below_price(world: World) -> None:
    assert_refused(
        world,
        [transfer(world, amount=PRICE - 1), record(world, reference(1), amount=PRICE - 1)],
        [world.payer],
        "PaymentBelowPrice",
    )


def test_recorded_amount_must_equal_the_transfer(world: World) -> None:
    assert_refused(
        world, [transfer(world), record(world, reference(1), amount=PRICE * 2)], [world.payer], "PaymentAmountMismatch"
    )


def test_transfer_signed_by_someone_else_is_payment_authority_mismatch(world: World) -> None:
    """The tokens come from a friend's account: the payer did not pay, so may not record (nor rate)."""
    friend = world.chain.funded_keypair()
    world.chain.create_token_account(friend.pubkey(), world.usdc, FUNDS)
    assert_refused(
        world,
        [transfer(world, source_owner=friend), record(world, reference(1))],
        [friend, world.payer],
        "PaymentAuthorityMismatch",
        watch=[ata(friend.pubkey(), world.usdc)],
    )


def test_transfer_through_a_fake_token_program_is_payment_transfer_missing(world: World) -> None:
    """A clone of SPL Token at another address, with accounts it owns that claim to hold usdc."""
    chain = world.chain
    fake = Keypair().pubkey()
    chain.svm.add_program(fake, bytes(chain.account(TOKEN_PROGRAM_ID).data))
    fake_mint = chain.create_mint(DECIMALS, token_program=fake)
    for owner in (world.payer.pubkey(), world.payee.pubkey()):
        chain.create_token_account(owner, fake_mint, FUNDS, token_program=fake)
    fake_transfer = transfer(world, mint=fake_mint, program=fake)
    # the clone moves its own "tokens" ...
    assert chain.send([fake_transfer], [world.facilitator, world.payer]).ok
    # ... but the program only trusts SPL Token and Token-2022
    assert_refused(
        world,
        [transfer(world, mint=fake_mint, program=fake), record(world, reference(1))],
        [world.payer],
        "PaymentTransferMissing",
    )


def test_a_replayed_payment_lands_once(world: World) -> None:
    """The same signed transaction sent again is refused by the runtime (one signature lands once): nothing
    moves, nothing is counted twice. This, not an account per reference, is what makes a payment count once."""
    chain = world.chain
    message = Message.new_with_blockhash(
        world.payment(reference(1)), world.facilitator.pubkey(), chain.svm.latest_blockhash()
    )
    signed = Transaction([world.facilitator, world.payer], message, chain.svm.latest_blockhash())
    assert not isinstance(chain.svm.send_transaction(signed), FailedTransactionMetadata)
    before, facilitator_sol = snapshot(world), chain.balance(world.facilitator.pubkey())
    replay = chain.svm.send_transaction(signed)
    assert isinstance(replay, FailedTransactionMetadata) and "AlreadyProcessed" in str(replay.err())
    assert snapshot(world) == before and chain.balance(world.facilitator.pubkey()) == facilitator_sol
    assert (world.agent_state().x402_total_calls, world.stats().paid_calls) == (1, 1)
    assert chain.token_balance(ata(world.payee.pubkey(), world.usdc)) == PRICE


def test_a_record_replayed_without_a_new_transfer_is_payment_transfer_missing(world: World) -> None:
    """The record instruction of a landed payment, sent again on its own (or after a non-token instruction):
    no transfer backs it."""
    world.pay(reference(1))
    assert_refused(world, [record(world, reference(1))], [world.payer], "PaymentTransferMissing")
    assert world.agent_state().x402_total_calls == 1


def test_the_same_reference_with_a_new_transfer_is_a_second_payment(world: World) -> None:
    """A reference names a payment; it is not what makes it count once. Paying again with it really pays
    again: two transfers, two calls (the journal and the buyer never reuse one for a new payment)."""
    world.pay(reference(1))
    world.pay(reference(1))
    assert world.chain.token_balance(ata(world.payee.pubkey(), world.usdc)) == 2 * PRICE
    assert (world.agent_state().x402_total_calls, world.stats().paid_calls) == (2, 2)


def test_two_records_after_one_transfer_is_payment_transfer_missing(world: World) -> None:
    assert_refused(
        world,
        [transfer(world), record(world, reference(1)), record(world, reference(2))],
        [world.payer],
        "PaymentTransferMissing",
    )


def test_two_payments_in_one_transaction_both_count(world: World) -> None:
    result = world.send(
        [transfer(world), record(world, reference(1)), transfer(world), record(world, reference(2))], world.payer
    )
    assert result.ok, result.logs
    assert world.agent_state().x402_total_calls == 2


def test_payer_not_signing_is_account_not_signer(world: World) -> None:
    """The transfer is signed through another instruction's signature; record still needs the payer's."""
    ix = record(world, reference(1))
    unsigned = Instruction(
        ix.program_id,
        bytes(ix.data),
        [AccountMeta(m.pubkey, False, m.is_writable) if m.pubkey == world.payer.pubkey() else m for m in ix.accounts],
    )
    friend = world.chain.funded_keypair()
    world.chain.create_token_account(friend.pubkey(), world.usdc, FUNDS)
    assert_refused(
        world,
        [transfer(world, source_owner=friend), unsigned],
        [friend],
        "AccountNotSigner",
        watch=[ata(friend.pubkey(), world.usdc)],
    )


def test_fake_instructions_sysvar_is_constraint_address(world: World) -> None:
    fake = Keypair().pubkey()
    world.chain.set_account(fake, bytes(64), owner=Pubkey.default())
    ix = record(world, reference(1))
    metas = [AccountMeta(fake, False, False) if m.pubkey == INSTRUCTIONS else m for m in ix.accounts]
    assert_refused(
        world, [transfer(world), Instruction(ix.program_id, bytes(ix.data), metas)], [world.payer], "ConstraintAddress"
    )


def with_stats(ix: Instruction, stats: Pubkey) -> Instruction:
    """The record instruction with another account in the payer_stats slot."""
    metas = [AccountMeta(stats, False, True) if i == 2 else m for i, m in enumerate(ix.accounts)]
    return Instruction(ix.program_id, bytes(ix.data), metas)


def test_payer_stats_at_another_address_is_constraint_seeds(world: World) -> None:
    """A first payment naming an address that is not ["payer_stats", agent, payer]: another agent's, or a
    keypair's."""
    for wrong in (payer_stats_address(Pubkey.new_unique(), world.payer.pubkey())[0], Keypair().pubkey()):
        assert_refused(
            world,
            [transfer(world), with_stats(record(world, reference(1)), wrong)],
            [world.payer],
            "ConstraintSeeds",
            watch=[wrong],
        )


def test_another_payers_stats_is_payer_stats_mismatch(world: World) -> None:
    """A payer naming a friend's existing PayerStats (to count its calls there, or skip creating its own)."""
    friend = world.chain.funded_keypair()
    world.chain.create_token_account(friend.pubkey(), world.usdc, FUNDS)
    assert world.send([transfer(world, source_owner=friend), record(world, reference(1), payer=friend)], friend).ok
    theirs = world.stats_address(friend)
    assert_refused(
        world,
        [transfer(world), with_stats(record(world, reference(2)), theirs)],
        [world.payer],
        "PayerStatsMismatch",
        watch=[theirs],
    )


def test_payer_stats_forged_by_another_program_is_not_created_over(world: World) -> None:
    """PayerStats bytes at the pair's address owned by another program (no program can put them there but
    the test's ledger): the record neither trusts them nor creates the account over them."""
    world.pay(reference(1))
    address = world.stats_address()
    world.chain.set_account(address, bytes(world.chain.account(address).data), owner=Pubkey.new_unique())
    assert_refused(world, world.payment(reference(2)), [world.payer], "AccountNotSystemOwned")


def test_another_agents_reputation_is_constraint_seeds(world: World) -> None:
    other = payments_world()
    data = bytes(other.chain.account(other.reputation).data)
    world.chain.set_account(other.reputation, data, owner=world.chain.program_id)
    ix = record(world, reference(1))
    metas = [AccountMeta(other.reputation, False, True) if i == 1 else m for i, m in enumerate(ix.accounts)]
    assert_refused(
        world,
        [transfer(world), Instruction(ix.program_id, bytes(ix.data), metas)],
        [world.payer],
        "ConstraintSeeds",
        watch=[other.reputation],
    )


def test_disabled_or_inactive_agent_takes_no_payments(world: World) -> None:
    accts = {"agent": world.agent, "owner": world.owner.pubkey()}
    assert world.send([set_agent_active({"is_active": False}, accts)], world.owner).ok
    assert_refused(world, world.payment(reference(1)), [world.payer], "AgentInactive")
    assert world.send([set_agent_active({"is_active": True}, accts), disable_x402(accts)], world.owner).ok
    assert_refused(world, world.payment(reference(1)), [world.payer], "X402NotEnabled")


@pytest.mark.parametrize("keep", [8, 8 + 8, 8 + 8 + 31])
def test_truncated_arguments_are_instruction_did_not_deserialize(world: World, keep: int) -> None:
    ix = record(world, reference(1))
    truncated = Instruction(ix.program_id, bytes(ix.data)[:keep], ix.accounts)
    assert_refused(world, [transfer(world), truncated], [world.payer], "InstructionDidNotDeserialize")


# ---- feedback ---------------------------------------------------------------------------------------


def test_feedback_updates_metrics_and_score(world: World) -> None:
    world.pay(reference(1))
    result = world.send([world.feedback(reference(1), success=True, response_time_ms=245, rating=4)], world.payer)
    assert result.ok, result.logs
    metrics = world.metrics()
    assert (
        metrics.successful_payments,
        metrics.failed_payments,
        metrics.total_response_time_ms,
        metrics.response_time_count,
        metrics.total_rating,
        metrics.rating_count,
    ) == (1, 0, 245, 1, 4, 1)
    assert (world.stats().paid_calls, world.stats().rated_calls) == (1, 1)
    expected = reputation_score(ReputationInputs.from_account(metrics))
    event = result.event("ReputationUpdated")
    assert (
        event.old_score,
        event.new_score,
        event.payment_success,
        event.service_quality,
        event.response_time,
        event.volume_consistency,
    ) == (6_800, expected.score, 10_000, 8_000, 10_000, 0)
    assert world.agent_state().reputation_score == expected.score
    submitted = result.event("FeedbackSubmitted")
    assert (
        submitted.payer,
        bytes(submitted.reference),
        submitted.success,
        submitted.response_time_ms,
        submitted.rating,
    ) == (world.payer.pubkey(), reference(1), True, 245, 4)


def test_failed_call_moves_the_payment_to_failed(world: World) -> None:
    world.pay(reference(1))
    world.pay(reference(2))
    assert world.send([world.feedback(reference(1), success=False, response_time_ms=0, rating=0)], world.payer).ok
    metrics = world.metrics()
    assert (
        metrics.successful_payments,
        metrics.failed_payments,
        metrics.response_time_count,
        metrics.rating_count,
    ) == (1, 1, 0, 0)
    assert world.agent_state().reputation_score == reputation_score(ReputationInputs.from_account(metrics)).score


def test_each_paid_call_is_rated_at_most_once(world: World) -> None:
    """Three paid calls, three ratings; a fourth (naming any reference, even a new one) is NothingToRate and
    moves nothing. Another payment opens one more."""
    for n in range(3):
        world.pay(reference(n))
    for n in range(3):
        assert world.send([world.feedback(reference(n), success=False, rating=1)], world.payer).ok
    for named in (reference(0), reference(99)):
        assert_refused(world, [world.feedback(named, success=False, rating=1)], [world.payer], "NothingToRate")
    assert (world.metrics().failed_payments, world.metrics().rating_count) == (3, 3)
    world.pay(reference(3))
    assert world.send([world.feedback(reference(3))], world.payer).ok
    assert_refused(world, [world.feedback(reference(3))], [world.payer], "NothingToRate")
    stats = world.stats()
    assert (stats.paid_calls, stats.rated_calls, stats.expired_calls) == (4, 4, 0)


def test_feedback_by_a_non_payer_is_payer_stats_mismatch(world: World) -> None:
    """A stranger signing with the payer's PayerStats (its own has nothing to rate, or does not exist)."""
    world.pay(reference(1))
    stranger = world.chain.funded_keypair()
    assert_refused(
        world,
        [world.feedback(reference(1), signer=stranger, rated=world.stats_address())],
        [stranger],
        "PayerStatsMismatch",
        watch=[stranger.pubkey()],
    )
    assert_refused(
        world,
        [world.feedback(reference(1), signer=stranger)],
        [stranger],
        "AccountOwnedByWrongProgram",
        watch=[stranger.pubkey(), world.stats_address(stranger)],
    )
    assert world.stats().rated_calls == 0


def test_feedback_with_another_agents_payer_stats_is_payer_stats_mismatch(world: World) -> None:
    """The payer paid agent B, then rates agent A with B's PayerStats (its own for A does not exist)."""
    other_agent = agent_address(world.owner.pubkey(), "summarizer")[0]
    config = X402Config(world.payee.pubkey(), [TokenPrice(world.usdc, PRICE)], "https://agent.example.com/summarize")
    assert world.send(
        [build_register_agent(world.owner.pubkey(), AgentProfile("summarizer", "Summarizer"), config)], world.owner
    ).ok
    assert world.send(
        [
            transfer(world),
            build_record_x402_payment(
                other_agent,
                world.payer.pubkey(),
                PRICE,
                reference(1),
                ata(world.payer.pubkey(), world.usdc),
                world.usdc,
                ata(world.payee.pubkey(), world.usdc),
            ),
        ],
        world.payer,
    ).ok
    theirs = payer_stats_address(other_agent, world.payer.pubkey())[0]
    assert_refused(
        world, [world.feedback(reference(1), rated=theirs)], [world.payer], "PayerStatsMismatch", watch=[theirs]
    )


@pytest.mark.parametrize("forgery", ["another program's", "a program account of another kind"])
def test_feedback_on_a_forged_payer_stats_is_refused(world: World, forgery: str) -> None:
    """PayerStats bytes claiming 5 open calls at a keypair address owned by another program, or the agent's
    ReputationMetrics in the slot: neither passes for a PayerStats."""
    world.pay(reference(1))
    assert world.send([world.feedback(reference(1))], world.payer).ok
    if forgery == "another program's":
        forged = Keypair().pubkey()
        data = bytearray(world.chain.account(world.stats_address()).data)
        data[104:112] = (6).to_bytes(8, "little")  # paid_calls: 6, rated 1
        world.chain.set_account(forged, bytes(data), owner=Pubkey.new_unique())
        error = "AccountOwnedByWrongProgram"
    else:
        forged, error = world.reputation, "AccountDiscriminatorMismatch"
    assert_refused(world, [world.feedback(reference(2), rated=forged)], [world.payer], error, watch=[forged])


def test_feedback_after_the_window_of_the_newest_payment_is_feedback_window_closed(world: World) -> None:
    """Unrated calls stay open while the pair's newest payment is within the window; after it, they expire,
    and a late payment opens only itself."""
    chain = world.chain
    world.pay(reference(1))
    paid_at = world.stats().last_paid_at
    chain.set_unix_timestamp(paid_at + FEEDBACK_WINDOW_SECONDS - 1)
    world.pay(reference(2))  # the window now runs from here, for both calls
    chain.set_unix_timestamp(paid_at + FEEDBACK_WINDOW_SECONDS + 10)
    assert world.send([world.feedback(reference(1))], world.payer).ok
    newest = world.stats().last_paid_at
    chain.set_unix_timestamp(newest + FEEDBACK_WINDOW_SECONDS)
    assert_refused(world, [world.feedback(reference(2))], [world.payer], "FeedbackWindowClosed")
    world.pay(reference(3))  # call 2 expires here: only call 3 may be rated
    stats = world.stats()
    assert (stats.paid_calls, stats.rated_calls, stats.expired_calls) == (3, 1, 1)
    assert world.send([world.feedback(reference(3))], world.payer).ok
    assert_refused(world, [world.feedback(reference(2))], [world.payer], "NothingToRate")


@pytest.mark.parametrize("rating", [6, 255])
def test_rating_above_five_is_rating_out_of_range(world: World, rating: int) -> None:
    world.pay(reference(1))
    assert_refused(world, [world.feedback(reference(1), rating=rating)], [world.payer], "RatingOutOfRange")


@pytest.mark.parametrize("response_time_ms", [3_600_001, 2**32 - 1])
def test_response_time_overflow_is_response_time_out_of_range(world: World, response_time_ms: int) -> None:
    world.pay(reference(1))
    assert_refused(
        world,
        [world.feedback(reference(1), response_time_ms=response_time_ms)],
        [world.payer],
        "ResponseTimeOutOfRange",
    )


# ---- close_payer_stats ------------------------------------------------------------------------------


def close_stats(
    world: World, signer: Keypair | None = None, rent_payer: Pubkey | None = None, payer: Keypair | None = None
) -> Instruction:
    return close_payer_stats(
        {
            "payer_stats": world.stats_address(payer),
            "authority": (signer or world.payer).pubkey(),
            "rent_payer": rent_payer or world.payer.pubkey(),
        }
    )


def test_a_payer_closing_its_stats_gets_the_rent_back_and_forfeits_its_ratings(world: World) -> None:
    chain = world.chain
    world.pay(reference(1))
    world.pay(reference(2))
    assert world.send([world.feedback(reference(1))], world.payer).ok
    rent = chain.account(world.stats_address()).lamports
    before = chain.balance(world.payer.pubkey())
    result = world.send([close_stats(world)], world.payer)
    assert result.ok, result.logs
    assert chain.balance(world.payer.pubkey()) == before + rent and world.stats() is None
    closed = result.event("PayerStatsClosed")
    assert (closed.payer, closed.rent_payer, closed.refunded_lamports, closed.paid_calls, closed.forfeited_calls) == (
        world.payer.pubkey(),
        world.payer.pubkey(),
        rent,
        2,
        1,
    )
    # the payer closed it, then tries to rate the call it left open
    assert_refused(world, [world.feedback(reference(2))], [world.payer], "AccountOwnedByWrongProgram")
    assert world.metrics().rating_count == 1
    # the pair's next payment creates it again, from zero
    world.pay(reference(3))
    stats = world.stats()
    assert (stats.paid_calls, stats.rated_calls) == (1, 0)


def test_closing_someone_elses_stats_is_not_receipt_payer(world: World) -> None:
    world.pay(reference(1))
    stranger = world.chain.funded_keypair()
    for rent_payer in (world.payer.pubkey(), stranger.pubkey()):
        assert_refused(
            world,
            [close_stats(world, signer=stranger, rent_payer=rent_payer)],
            [stranger],
            "NotReceiptPayer",
            watch=[stranger.pubkey()],
        )


# ---- legacy receipts --------------------------------------------------------------------------------


def legacy_receipt(
    world: World, ref: bytes, rent_payer: Pubkey | None = None, paid_at: int | None = None, registration: int = 1
) -> Pubkey:
    """An X402Receipt as the program made them before PayerStats, written into the ledger (with its rent)."""
    address, bump = receipt_address(world.agent, ref)
    paid_at = world.chain.svm.get_clock().unix_timestamp if paid_at is None else paid_at
    data = (
        bytes(X402Receipt.discriminator)
        + bytes(world.agent)
        + bytes(world.payer.pubkey())
        + bytes(rent_payer or world.payer.pubkey())
        + bytes(world.usdc)
        + ref
        + struct.pack("<QqQBB", PRICE, paid_at, registration, 0, bump)
    )
    assert len(data) == RECEIPT_SPACE
    world.chain.set_account(address, data, owner=world.chain.program_id)
    return address


def receipt(world: World, ref: bytes) -> X402Receipt | None:
    account = world.chain.account(receipt_address(world.agent, ref)[0])
    return X402Receipt.decode(bytes(account.data)) if account and account.data else None


def close(world: World, ref: bytes, signer: Keypair | None = None, rent_payer: Pubkey | None = None) -> Instruction:
    signer = signer or world.payer
    return close_receipt(
        {
            "receipt": receipt_address(world.agent, ref)[0],
            "authority": signer.pubkey(),
            "rent_payer": rent_payer or world.payer.pubkey(),
        }
    )


def test_a_legacy_receipt_is_rated_once_by_its_own_rules(world: World) -> None:
    world.pay(reference(7))  # counted in the metrics, as the legacy payment was
    address = legacy_receipt(world, reference(1))
    assert_refused(
        world, [world.feedback(reference(2), rated=address)], [world.payer], "ReceiptReferenceMismatch", watch=[address]
    )
    result = world.send([world.feedback(reference(1), success=False, rating=2, rated=address)], world.payer)
    assert result.ok, result.logs
    assert receipt(world, reference(1)).feedback_submitted and world.stats().rated_calls == 0
    assert bytes(result.event("FeedbackSubmitted").reference) == reference(1)
    assert_refused(
        world, [world.feedback(reference(1), rated=address)], [world.payer], "FeedbackAlreadySubmitted", watch=[address]
    )
    stranger = world.chain.funded_keypair()
    assert_refused(
        world,
        [world.feedback(reference(1), signer=stranger, rated=address)],
        [stranger],
        "NotReceiptPayer",
        watch=[address],
    )


def test_a_legacy_receipt_past_its_window_is_feedback_window_closed(world: World) -> None:
    world.pay(reference(7))
    now = world.chain.svm.get_clock().unix_timestamp
    address = legacy_receipt(world, reference(1), paid_at=now - FEEDBACK_WINDOW_SECONDS)
    assert_refused(
        world, [world.feedback(reference(1), rated=address)], [world.payer], "FeedbackWindowClosed", watch=[address]
    )


def test_a_legacy_receipt_of_another_agent_is_receipt_agent_mismatch(world: World) -> None:
    other = payments_world()
    address = legacy_receipt(world, reference(1))
    data = bytearray(world.chain.account(address).data)
    data[8:40] = bytes(other.agent)
    world.chain.set_account(address, bytes(data), owner=world.chain.program_id)
    assert_refused(
        world, [world.feedback(reference(1), rated=address)], [world.payer], "ReceiptAgentMismatch", watch=[address]
    )


def test_close_receipt_after_feedback_refunds_the_payer(world: World) -> None:
    world.pay(reference(7))
    address = legacy_receipt(world, reference(1))
    assert world.send([world.feedback(reference(1), rated=address)], world.payer).ok
    rent = world.chain.account(address).lamports
    before = world.chain.balance(world.payer.pubkey())
    assert world.send([close(world, reference(1))], world.payer).ok
    assert world.chain.balance(world.payer.pubkey()) == before + rent
    assert receipt(world, reference(1)) is None


def test_close_receipt_before_feedback_is_receipt_still_open_until_the_window_ends(world: World) -> None:
    address = legacy_receipt(world, reference(1))
    assert_refused(world, [close(world, reference(1))], [world.payer], "ReceiptStillOpen", watch=[address])
    world.chain.set_unix_timestamp(receipt(world, reference(1)).paid_at + FEEDBACK_WINDOW_SECONDS)
    assert world.send([close(world, reference(1))], world.payer).ok


def test_close_receipt_by_someone_else_is_not_receipt_payer(world: World) -> None:
    address = legacy_receipt(world, reference(1))
    world.chain.set_unix_timestamp(receipt(world, reference(1)).paid_at + FEEDBACK_WINDOW_SECONDS)
    stranger = world.chain.funded_keypair()
    for rent_payer in (world.payer.pubkey(), stranger.pubkey()):
        assert_refused(
            world,
            [close(world, reference(1), signer=stranger, rent_payer=rent_payer)],
            [stranger],
            "NotReceiptPayer",
            watch=[address, stranger.pubkey()],
        )


def test_a_fronted_legacy_receipt_closes_to_its_rent_payer(world: World) -> None:
    chain = world.chain
    address = legacy_receipt(world, reference(1), rent_payer=world.facilitator.pubkey())
    assert_refused(
        world,
        [close(world, reference(1), signer=world.facilitator, rent_payer=world.facilitator.pubkey())],
        [],
        "ReceiptStillOpen",
        watch=[address],
    )
    world.chain.set_unix_timestamp(receipt(world, reference(1)).paid_at + FEEDBACK_WINDOW_SECONDS)
    assert_refused(world, [close(world, reference(1))], [world.payer], "NotReceiptRentPayer", watch=[address])
    rent, before = chain.account(address).lamports, chain.balance(world.facilitator.pubkey())
    assert world.send([close(world, reference(1), signer=world.facilitator, rent_payer=world.facilitator.pubkey())]).ok
    assert chain.balance(world.facilitator.pubkey()) == before - FEE + rent and receipt(world, reference(1)) is None


# ---- the 7-day window -------------------------------------------------------------------------------


def test_daily_buckets_roll_with_the_clock(world: World) -> None:
    chain = world.chain
    start = chain.svm.get_clock().unix_timestamp
    day0 = day_of(start)
    world.pay(reference(1))
    chain.set_unix_timestamp(start + 2 * 86_400)
    world.pay(reference(2))
    world.pay(reference(3))
    history = world.metrics().payment_history_7d
    assert (history[day0 % 7], history[(day0 + 2) % 7], sum(history)) == (1, 2, 3)
    assert world.metrics().history_day == day0 + 2

    chain.set_unix_timestamp(start + 7 * 86_400)  # day0 falls out of the window, day0 + 2 stays
    world.pay(reference(4))
    history = world.metrics().payment_history_7d
    assert (history[day0 % 7], history[(day0 + 2) % 7], sum(history)) == (1, 2, 3)  # day0 % 7 is today's slot now

    chain.set_unix_timestamp(start + 30 * 86_400)
    result = world.send([refresh_reputation({"agent": world.agent, "reputation": world.reputation})])
    assert result.ok and sum(world.metrics().payment_history_7d) == 0
    assert result.event("ReputationUpdated").volume_consistency == 0


SOAK_PAYMENTS = int(os.environ.get("GHOSTPAY_SOAK_PAYMENTS", "50"))  # raise it for a longer soak


def test_many_payments_keep_every_total_exact(world: World) -> None:
    for n in range(SOAK_PAYMENTS):
        world.pay(reference(n), amount=PRICE + n)
    agent = world.agent_state()
    paid = sum(PRICE + n for n in range(SOAK_PAYMENTS))
    assert (agent.x402_total_calls, earnings_by_mint(agent)[world.usdc].x402_payments) == (SOAK_PAYMENTS, paid)
    assert world.chain.token_balance(ata(world.payee.pubkey(), world.usdc)) == paid
    assert world.metrics().successful_payments == SOAK_PAYMENTS


def test_a_thousand_recorded_calls_create_one_account_per_pair(world: World) -> None:
    """1,000 payments from 4 payers: every account any of those transactions names (a transaction can create
    no other) is counted before and after. The only new accounts are the 4 pairs' PayerStats, the only
    program accounts among them the agent, its metrics and those 4."""
    chain = world.chain
    payers = [world.payer] + [chain.funded_keypair() for _ in range(3)]
    for payer in payers:  # 250 calls each
        chain.create_token_account(payer.pubkey(), world.usdc, 250 * PRICE)
    named: set[Pubkey] = set()
    payments = []
    for n in range(1_000):
        payer = payers[n % len(payers)]
        instructions = build_x402_payment(
            payer.pubkey(),
            world.agent,
            world.payee.pubkey(),
            world.usdc,
            DECIMALS,
            PRICE,
            reference(n),
            fee_payer=world.facilitator.pubkey(),
        )
        named.update(meta.pubkey for ix in instructions for meta in ix.accounts)
        payments.append((instructions, payer))

    def existing() -> set[Pubkey]:
        return {key for key in named if chain.account(key) is not None and chain.account(key).lamports > 0}

    def program_accounts() -> set[Pubkey]:
        return {key for key in existing() if chain.account(key).owner == chain.program_id}

    before, program_before = existing(), program_accounts()
    for instructions, payer in payments:
        assert world.send(instructions, payer).ok
    pairs = {world.stats_address(payer) for payer in payers}
    assert existing() - before == pairs
    assert program_accounts() - program_before == pairs and program_before == {world.agent, world.reputation}
    assert sum(world.stats(payer).paid_calls for payer in payers) == world.agent_state().x402_total_calls == 1_000


# ---- hardening: one transfer, one payment -----------------------------------------------------------


def relay(world: World, relay_id: Pubkey, references: list[bytes], amount: int = PRICE) -> Instruction:
    """The relay's instruction: CPI record_x402_payment once per reference."""
    metas = [AccountMeta(PROGRAM_ID, False, False)] + list(record(world, references[0], amount).accounts)
    return Instruction(relay_id, struct.pack("<Q", amount) + b"".join(references), metas)


@pytest.mark.parametrize("count", [1, 3])
def test_record_through_cpi_is_payment_not_top_level(world: World, count: int) -> None:
    """A program that, after one TransferChecked, CPIs record_x402_payment several times (each with a new
    reference, so one transfer would count as several calls) is refused at its first CPI: nothing recorded,
    whether the payer's PayerStats exists yet or not."""
    relay_id = Pubkey.new_unique()
    world.chain.svm.add_program(relay_id, cpi_relay_program())
    references = [reference(n) for n in range(10, 10 + count)]
    for existing in (False, True):
        if existing:
            world.pay(reference(1))
        before = snapshot(world)
        result = world.send([transfer(world), relay(world, relay_id, references)], world.payer)
        assert result.error == "PaymentNotTopLevel", (result.error, result.logs)
        assert any(f"Program {PROGRAM_ID} invoke [2]" in line for line in result.logs)  # GhostPay ran, under CPI
        assert snapshot(world) == before


def test_the_official_x402_layout_with_one_memo_is_recorded(world: World) -> None:
    """[SetComputeUnitLimit, SetComputeUnitPrice, TransferChecked, Memo, record]: the x402 "exact" transaction
    with GhostPay's record after the Memo."""
    layout = [
        set_compute_unit_limit(60_000),
        set_compute_unit_price(1),
        transfer(world),
        build_memo("0f" * 16),
        record(world, reference(1)),
    ]
    result = world.send(layout, world.payer)
    assert result.ok, result.logs
    assert result.event("X402PaymentRecorded").amount == PRICE
    assert world.chain.token_balance(ata(world.payee.pubkey(), world.usdc)) == PRICE


@pytest.mark.parametrize(
    "layout",
    [
        "two memos",
        "memo without transfer",
        "memo before the transfer",
        "record between transfer and memo, then another",
    ],
)
def test_other_layouts_are_payment_transfer_missing(world: World, layout: str) -> None:
    memo = build_memo("nonce")
    instructions = {
        "two memos": [transfer(world), memo, memo, record(world, reference(1))],
        "memo without transfer": [memo, record(world, reference(1))],
        "memo before the transfer": [memo, transfer(world), memo, memo, record(world, reference(1))],
        "record between transfer and memo, then another": [
            transfer(world),
            record(world, reference(1)),
            memo,
            record(world, reference(2)),
        ],
    }[layout]
    assert_refused(world, instructions, [world.payer], "PaymentTransferMissing")


# ---- hardening: no self-dealing ---------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "payment address"])
def test_paying_your_own_agent_is_self_payment(world: World, who: str) -> None:
    """A wallet paying itself (or its own agent) costs nothing and would lift the score for free."""
    self_payer = world.owner if who == "owner" else world.payee
    world.chain.create_token_account(self_payer.pubkey(), world.usdc, FUNDS)
    assert_refused(
        world,
        [transfer(world, source_owner=self_payer), record(world, reference(1), payer=self_payer)],
        [self_payer],
        "SelfPayment",
        watch=[world.stats_address(self_payer)],
    )


def test_a_transfer_from_the_destination_to_itself_is_self_payment(world: World) -> None:
    """The payer, made a delegate of the payee's own account, 'pays' from it into it: no token moves."""
    payee_ata = ata(world.payee.pubkey(), world.usdc)
    data = bytearray(world.chain.account(payee_ata).data)
    data[64:72] = PRICE.to_bytes(8, "little")
    data[72:76] = (1).to_bytes(4, "little")  # delegate: Some(payer)
    data[76:108] = bytes(world.payer.pubkey())
    data[121:129] = PRICE.to_bytes(8, "little")  # delegated_amount
    world.chain.set_account(payee_ata, bytes(data), owner=TOKEN_PROGRAM_ID)
    circular = transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID,
            source=payee_ata,
            mint=world.usdc,
            dest=payee_ata,
            owner=world.payer.pubkey(),
            amount=PRICE,
            decimals=DECIMALS,
        )
    )
    assert_refused(world, [circular, record(world, reference(1), source=payee_ata)], [world.payer], "SelfPayment")


# ---- per-mint prices --------------------------------------------------------------------------------


def test_each_mint_is_checked_against_its_own_price(world: World) -> None:
    """A 2-decimal mint priced 0.02 (2 atomic units) beside usdc at 0.01 (10,000): the record checks the price
    of the mint actually paid, so 2 units of the cents mint pay a call and 1 does not."""
    cents = world.chain.create_mint(2)
    for owner in (world.payer.pubkey(), world.payee.pubkey()):
        world.chain.create_token_account(owner, cents, FUNDS if owner == world.payer.pubkey() else 0)
    config = X402Config(
        world.payee.pubkey(),
        [TokenPrice(world.usdc, PRICE), TokenPrice(cents, 2)],
        "https://agent.example.com/translate",
    )
    assert world.send(
        [
            configure_x402(
                {"config": config},
                {"agent": world.agent, "owner": world.owner.pubkey()},
                remaining_accounts=mint_accounts([world.usdc, cents]),
            )
        ],
        world.owner,
    ).ok

    def pay_cents(ref: bytes, amount: int) -> list[Instruction]:
        cents_transfer = transfer_checked(
            TransferCheckedParams(
                program_id=TOKEN_PROGRAM_ID,
                source=ata(world.payer.pubkey(), cents),
                mint=cents,
                dest=ata(world.payee.pubkey(), cents),
                owner=world.payer.pubkey(),
                amount=amount,
                decimals=2,
            )
        )
        return [cents_transfer, record(world, ref, amount, mint=cents)]

    assert_refused(world, pay_cents(reference(1), 1), [world.payer], "PaymentBelowPrice")
    result = world.send(pay_cents(reference(2), 2), world.payer)
    assert result.ok, result.logs
    assert world.chain.token_balance(ata(world.payee.pubkey(), cents)) == 2
    assert result.event("X402PaymentRecorded").mint == cents
    # usdc's price is still 10,000 of its own units
    assert_refused(
        world, [transfer(world, amount=2), record(world, reference(3), amount=2)], [world.payer], "PaymentBelowPrice"
    )


# ---- rent payer -------------------------------------------------------------------------------------


def test_a_facilitator_fronts_the_pair_rent_once_and_gets_it_back_when_the_pair_is_idle(world: World) -> None:
    """The facilitator pays the PayerStats rent with the pair's first payment, and only fees afterwards: 100
    recorded calls cost it 100 fees and one rent. It may close the account once the pair has been idle for
    the feedback window (not before: the payer could still rate), and gets the rent back."""
    chain = world.chain
    payer_sol = chain.balance(world.payer.pubkey())
    facilitator_sol = chain.balance(world.facilitator.pubkey())
    for n in range(100):
        result = world.send([transfer(world), record(world, reference(n), rent_payer=world.facilitator)], world.payer)
        assert result.ok, result.logs
        assert result.event("X402PaymentRecorded").rent_payer == world.facilitator.pubkey()
    rent = chain.svm.minimum_balance_for_rent_exemption(STATS_SPACE)
    assert chain.balance(world.payer.pubkey()) == payer_sol  # a buyer holding only tokens can pay
    assert chain.balance(world.facilitator.pubkey()) == facilitator_sol - 100 * 2 * FEE - rent
    assert (world.stats().rent_payer, world.stats().paid_calls) == (world.facilitator.pubkey(), 100)

    by_facilitator = close_stats(world, signer=world.facilitator, rent_payer=world.facilitator.pubkey())
    chain.set_unix_timestamp(world.stats().last_paid_at + FEEDBACK_WINDOW_SECONDS - 1)
    assert_refused(world, [by_facilitator], [], "ReceiptStillOpen")
    chain.set_unix_timestamp(world.stats().last_paid_at + FEEDBACK_WINDOW_SECONDS)
    assert_refused(world, [close_stats(world)], [world.payer], "NotReceiptRentPayer")  # the rent to the payer
    before = chain.balance(world.facilitator.pubkey())
    closed = world.send([by_facilitator])
    assert closed.ok, closed.logs
    assert chain.balance(world.facilitator.pubkey()) == before - FEE + rent and world.stats() is None
    assert closed.event("PayerStatsClosed").forfeited_calls == 0  # their window had passed


def test_the_rent_payer_must_sign(world: World) -> None:
    ix = record(world, reference(1), rent_payer=world.facilitator)
    stranger = Keypair().pubkey()
    metas = [AccountMeta(stranger, False, True) if i == 4 else m for i, m in enumerate(ix.accounts)]
    assert_refused(
        world,
        [transfer(world), Instruction(ix.program_id, bytes(ix.data), metas)],
        [world.payer],
        "AccountNotSigner",
        watch=[stranger],
    )


# ---- a reputation outlives its registration ---------------------------------------------------------


def test_closing_and_registering_again_keeps_the_reputation_and_voids_old_calls(world: World) -> None:
    world.pay(reference(1))
    world.pay(reference(2))
    assert world.send([world.feedback(reference(1), success=False, rating=1)], world.payer).ok
    metrics_before, score_before = world.metrics(), world.agent_state().reputation_score
    assert score_before > 0

    world.chain.set_unix_timestamp(world.agent_state().last_payment_at + FEEDBACK_WINDOW_SECONDS)
    closed = world.send([build_close_agent(world.agent, world.owner.pubkey())], world.owner)
    assert closed.ok, closed.logs
    config = X402Config(world.payee.pubkey(), [TokenPrice(world.usdc, PRICE)], "https://agent.example.com/v2")
    again = world.send(
        [build_register_agent(world.owner.pubkey(), AgentProfile("translator", "Translator"), config)], world.owner
    )
    assert again.ok, again.logs

    agent, metrics = world.agent_state(), world.metrics()
    assert (agent.registration, metrics.registration, again.event("AgentRegistered").registration) == (2, 2, 2)
    assert (metrics.successful_payments, metrics.failed_payments, metrics.total_rating) == (
        metrics_before.successful_payments,
        metrics_before.failed_payments,
        metrics_before.total_rating,
    )
    assert agent.reputation_score == score_before == again.event("ReputationUpdated").new_score

    # call 2 paid the first registration, whose window is over: it cannot rate this one, before or after the
    # pair's next payment (which expires it and opens only itself)
    assert_refused(world, [world.feedback(reference(2), rating=5)], [world.payer], "FeedbackWindowClosed")
    world.pay(reference(3))
    stats = world.stats()
    assert (stats.paid_calls, stats.rated_calls, stats.expired_calls) == (3, 1, 1)
    assert world.send([world.feedback(reference(3), rating=5)], world.payer).ok
    assert_refused(world, [world.feedback(reference(2), rating=5)], [world.payer], "NothingToRate")


def test_closing_waits_until_no_paid_call_can_be_rated(world: World) -> None:
    """5 good calls rated, then 10 bad ones not rated yet: closing and registering again would void those
    ratings (their window over, they expire) and keep 9,000. The close is refused until the last payment's
    feedback window has passed; deactivating works at once; the 1-star ratings land."""
    chain = world.chain
    for n in range(5):
        world.pay(reference(n))
        assert world.send([world.feedback(reference(n), response_time_ms=250, rating=5)], world.payer).ok
    for n in range(5, 15):
        world.pay(reference(n))
    assert world.agent_state().reputation_score == 9_000
    close_agent = build_close_agent(world.agent, world.owner.pubkey())
    owner_sol = chain.balance(world.owner.pubkey())
    assert_refused(world, [close_agent], [world.owner], "FeedbackWindowOpen", watch=[world.owner.pubkey()])

    # the owner can stop new payments at once, and still cannot close
    owned = {"agent": world.agent, "owner": world.owner.pubkey()}
    assert world.send([set_agent_active({"is_active": False}, owned)], world.owner).ok
    assert_refused(world, world.payment(reference(15)), [world.payer], "AgentInactive")
    assert_refused(world, [close_agent], [world.owner], "FeedbackWindowOpen", watch=[world.owner.pubkey()])

    for n in range(5, 15):  # timeouts: failed, 30 s, one star
        result = world.send(
            [world.feedback(reference(n), success=False, response_time_ms=30_000, rating=1)], world.payer
        )
        assert result.ok, result.logs
    metrics = world.metrics()
    assert (metrics.successful_payments, metrics.failed_payments, metrics.rating_count) == (5, 10, 15)
    assert (
        world.agent_state().reputation_score == reputation_score(ReputationInputs.from_account(metrics)).score == 2_733
    )

    last_paid = world.agent_state().last_payment_at
    chain.set_unix_timestamp(last_paid + FEEDBACK_WINDOW_SECONDS - 1)
    assert_refused(world, [close_agent], [world.owner], "FeedbackWindowOpen", watch=[world.owner.pubkey()])
    chain.set_unix_timestamp(last_paid + FEEDBACK_WINDOW_SECONDS)
    rent = chain.account(world.agent).lamports
    closed = world.send([close_agent], world.owner)
    assert closed.ok, closed.logs
    assert chain.balance(world.owner.pubkey()) == owner_sol + rent  # the facilitator paid the fees
    config = X402Config(world.payee.pubkey(), [TokenPrice(world.usdc, PRICE)], "https://agent.example.com/v2")
    again = world.send(
        [build_register_agent(world.owner.pubkey(), AgentProfile("translator", "Translator"), config)], world.owner
    )
    assert again.ok, again.logs
    assert world.agent_state().reputation_score == again.event("ReputationUpdated").new_score == 2_733


# ---- the mint as it is when paid --------------------------------------------------------------------


CLOSE_AUTHORITY, PERMANENT_DELEGATE, TRANSFER_FEE_CONFIG, TRANSFER_FEE_AMOUNT = 3, 12, 1, 2


@pytest.mark.parametrize(
    "recreated, error",
    [
        ("permanent delegate", "MintExtensionNotSupported"),  # the issuer could take the payment back
        ("100% transfer fee", "MintHasTransferFee"),  # the payee would receive 0
    ],
)
def test_a_mint_closed_and_re_created_with_a_claw_back_is_refused_when_paid(
    world: World, recreated: str, error: str
) -> None:
    """An accepted Token-2022 mint with a close authority (neutral when configured) is closed at supply 0 and
    re-created at the same address with a permanent delegate or a 100 % transfer fee. The transfer itself
    succeeds in Token-2022; the record reads the mint and fails, so the whole transaction is undone."""
    chain, issuer = world.chain, world.chain.funded_keypair()
    mint = chain.create_token_2022_mint([(CLOSE_AUTHORITY, bytes(issuer.pubkey()))])
    config = X402Config(
        world.payee.pubkey(),
        [TokenPrice(world.usdc, PRICE), TokenPrice(mint, PRICE)],
        "https://agent.example.com/translate",
    )
    assert world.send(
        [
            configure_x402(
                {"config": config},
                {"agent": world.agent, "owner": world.owner.pubkey()},
                remaining_accounts=mint_accounts([world.usdc, mint]),
            )
        ],
        world.owner,
    ).ok

    extension = {
        "permanent delegate": (PERMANENT_DELEGATE, bytes(issuer.pubkey())),
        "100% transfer fee": (TRANSFER_FEE_CONFIG, transfer_fee_config(10_000)),
    }[recreated]
    chain.set_account(
        mint, bytes(chain.account(chain.create_token_2022_mint([extension])).data), owner=TOKEN_2022_PROGRAM_ID
    )
    # accounts of a fee mint carry the withheld amount (Token-2022 refuses a fee transfer into one without)
    account_extensions = [(TRANSFER_FEE_AMOUNT, bytes(8))] if recreated == "100% transfer fee" else []
    payer_account, payee_account = (
        chain.create_token_account(owner, mint, amount, TOKEN_2022_PROGRAM_ID, account_extensions)
        for owner, amount in ((world.payer.pubkey(), FUNDS), (world.payee.pubkey(), 0))
    )
    payment = world.payment(reference(1), mint=mint, token_program=TOKEN_2022_PROGRAM_ID)

    # the program's error, not Token-2022's: the transfer before the record ran, and is undone with it
    assert_refused(world, payment, [world.payer], error, watch=[payer_account, payee_account, mint, issuer.pubkey()])
    assert (chain.token_balance(payer_account), chain.token_balance(payee_account)) == (FUNDS, 0)
    assert world.agent_state().x402_total_calls == 0 and world.stats() is None


def test_a_mint_with_a_close_authority_is_paid_while_it_stays_neutral(world: World) -> None:
    """The same mint before it is re-created: its close authority alone changes nothing for the payee."""
    mint = world.chain.create_token_2022_mint([(CLOSE_AUTHORITY, bytes(world.chain.funded_keypair().pubkey()))])
    config = X402Config(world.payee.pubkey(), [TokenPrice(mint, PRICE)], "https://agent.example.com/translate")
    assert world.send(
        [
            configure_x402(
                {"config": config},
                {"agent": world.agent, "owner": world.owner.pubkey()},
                remaining_accounts=mint_accounts([mint]),
            )
        ],
        world.owner,
    ).ok
    for owner, amount in ((world.payer.pubkey(), FUNDS), (world.payee.pubkey(), 0)):
        world.chain.create_token_account(owner, mint, amount, TOKEN_2022_PROGRAM_ID)
    result = world.pay(reference(1), mint=mint, token_program=TOKEN_2022_PROGRAM_ID)
    assert world.chain.token_balance(ata(world.payee.pubkey(), mint, TOKEN_2022_PROGRAM_ID)) == PRICE
    assert result.event("X402PaymentRecorded").mint == mint


# ---- whose tokens moved -----------------------------------------------------------------------------


def delegated_account(world: World, holder: Pubkey, amount: int = FUNDS) -> Pubkey:
    """A usdc token account of `holder` (not its associated one) holding `amount`, with the payer approved
    as delegate for all of it."""
    account = Keypair().pubkey()
    data = bytearray(world.chain.account(ata(world.payee.pubkey(), world.usdc)).data)
    data[32:64] = bytes(holder)
    data[64:72] = amount.to_bytes(8, "little")
    data[72:76] = (1).to_bytes(4, "little")  # delegate: Some(payer)
    data[76:108] = bytes(world.payer.pubkey())
    data[121:129] = amount.to_bytes(8, "little")  # delegated_amount
    world.chain.set_account(account, bytes(data), owner=TOKEN_PROGRAM_ID)
    return account


def delegated_transfer(world: World, source: Pubkey) -> Instruction:
    return transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID,
            source=source,
            mint=world.usdc,
            dest=ata(world.payee.pubkey(), world.usdc),
            owner=world.payer.pubkey(),
            amount=PRICE,
            decimals=DECIMALS,
        )
    )


@pytest.mark.parametrize("holder", ["payment address", "owner"])
def test_paying_from_the_agents_own_tokens_through_a_delegate_is_self_payment(world: World, holder: str) -> None:
    """The payment address's (or owner's) second token account pays the payee's account through a delegate
    (the payer): the signer is a stranger, but the tokens are the agent's own."""
    own = delegated_account(world, (world.payee if holder == "payment address" else world.owner).pubkey())
    for n in range(1, 6):
        assert_refused(
            world,
            [delegated_transfer(world, own), record(world, reference(n), source=own)],
            [world.payer],
            "SelfPayment",
            watch=[own],
        )
    assert world.chain.token_balance(own) == FUNDS
    assert world.chain.token_balance(ata(world.payee.pubkey(), world.usdc)) == 0
    assert world.agent_state().x402_total_calls == 0


def test_a_delegate_paying_from_someone_elses_tokens_counts(world: World) -> None:
    """A delegate spending a third party's tokens is a real payment: recorded, signed by the delegate."""
    friend = world.chain.funded_keypair()
    theirs = delegated_account(world, friend.pubkey())
    result = world.send([delegated_transfer(world, theirs), record(world, reference(1), source=theirs)], world.payer)
    assert result.ok, result.logs
    assert world.chain.token_balance(theirs) == FUNDS - PRICE
    assert world.chain.token_balance(ata(world.payee.pubkey(), world.usdc)) == PRICE
    assert result.event("X402PaymentRecorded").payer == world.payer.pubkey() and world.stats().paid_calls == 1


@pytest.mark.parametrize("named", ["source", "mint"])
def test_naming_another_source_or_mint_than_the_transfers_is_refused(world: World, named: str) -> None:
    """The record must describe the transfer that ran: a self-payment through a delegate that names the
    payer's own account as source, or a payment in a re-created mint that names a clean mint."""
    if named == "source":
        own = delegated_account(world, world.payee.pubkey())
        instructions = [delegated_transfer(world, own), record(world, reference(1))]
        error, watch = "SourceTokenAccountMismatch", [own]
    else:
        ix = record(world, reference(1))
        metas = [AccountMeta(world.pyusd, False, False) if m.pubkey == world.usdc else m for m in ix.accounts]
        instructions = [transfer(world), Instruction(ix.program_id, bytes(ix.data), metas)]
        error, watch = "PaymentMintAccountMismatch", []
    assert_refused(world, instructions, [world.payer], error, watch=watch)
