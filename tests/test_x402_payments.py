"""Verified x402 payments end to end in LiteSVM: the TransferChecked and record_x402_payment in
one transaction (a facilitator pays the fees), the receipt, feedback and the score.

Every refused transaction is checked for its error NAME and for having moved nothing: token
balances, the agent, its metrics and the receipt address are exactly as before; only the
facilitator's fees go.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams
from solders.system_program import transfer as sol_transfer
from spl.token.instructions import TransferCheckedParams, transfer_checked

from ghostpay.accounts import Agent, ReputationMetrics, X402Receipt
from ghostpay.agent_instructions import AgentProfile, build_register_agent, mint_accounts
from ghostpay.instructions import (
    close_receipt,
    configure_x402,
    disable_x402,
    refresh_reputation,
    set_agent_active,
    submit_feedback,
)
from ghostpay.payments import build_record_x402_payment, build_x402_payment
from ghostpay.pda import associated_token_address, receipt_address, reputation_address
from ghostpay.reputation import ReputationInputs, day_of, reputation_score
from ghostpay.svm import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from ghostpay.svm import InProcessChain as Chain
from ghostpay.types import X402Config

PRICE = 10_000
DECIMALS = 6
FUNDS = 1_000_000
FEE = 5_000  # lamports per signature
RECEIPT_SPACE = 154
FEEDBACK_WINDOW_SECONDS = 30 * 86_400


@dataclass
class World:
    chain: Chain
    facilitator: Keypair  # fee payer of every transaction, in no instruction's accounts
    owner: Keypair
    payee: Keypair  # the agent's x402 payment address
    payer: Keypair
    agent: Pubkey
    usdc: Pubkey  # SPL Token, accepted
    pyusd: Pubkey  # Token-2022, accepted
    other: Pubkey  # SPL Token, not accepted

    @property
    def reputation(self) -> Pubkey:
        return reputation_address(self.agent)[0]

    def send(self, instructions: list[Instruction], *signers: Keypair):
        return self.chain.send(instructions, [self.facilitator, *signers])

    def payment(self, reference: bytes, amount: int = PRICE, mint: Pubkey | None = None,
                token_program: Pubkey = TOKEN_PROGRAM_ID) -> list[Instruction]:
        return build_x402_payment(self.payer.pubkey(), self.agent, self.payee.pubkey(), mint or self.usdc, DECIMALS,
                                  amount, reference, token_program, fee_payer=self.facilitator.pubkey(),
                                  compute_unit_limit=100_000)

    def pay(self, reference: bytes, **kwargs):
        result = self.send(self.payment(reference, **kwargs), self.payer)
        assert result.ok, (result.error, result.logs)
        return result

    def agent_state(self) -> Agent:
        return Agent.decode(self.chain.account(self.agent).data)

    def metrics(self) -> ReputationMetrics:
        return ReputationMetrics.decode(self.chain.account(self.reputation).data)

    def receipt(self, reference: bytes) -> X402Receipt | None:
        account = self.chain.account(receipt_address(self.agent, reference)[0])
        return X402Receipt.decode(account.data) if account and account.data else None

    def feedback(self, reference: bytes, success: bool = True, response_time_ms: int = 250, rating: int = 5,
                 signer: Keypair | None = None) -> Instruction:
        signer = signer or self.payer
        return submit_feedback({"success": success, "response_time_ms": response_time_ms, "rating": rating},
                               {"agent": self.agent, "reputation": self.reputation,
                                "receipt": receipt_address(self.agent, reference)[0], "payer": signer.pubkey()})


def make_world() -> World:
    chain = Chain()
    facilitator, owner, payee, payer = (chain.funded_keypair() for _ in range(4))
    usdc, other = chain.create_mint(DECIMALS), chain.create_mint(DECIMALS)
    pyusd = chain.create_mint(DECIMALS, token_program=TOKEN_2022_PROGRAM_ID)
    config = X402Config(payee.pubkey(), PRICE, [usdc, pyusd], "https://agent.example.com/translate")
    result = chain.send([build_register_agent(owner.pubkey(), AgentProfile("translator", "Translator"), config)],
                        [owner])
    assert result.ok, result.logs
    agent = Pubkey.from_string(str(result.event("AgentRegistered").agent))
    for mint, program in ((usdc, TOKEN_PROGRAM_ID), (pyusd, TOKEN_2022_PROGRAM_ID), (other, TOKEN_PROGRAM_ID)):
        chain.create_token_account(payer.pubkey(), mint, FUNDS, program)
        chain.create_token_account(payee.pubkey(), mint, 0, program)
    return World(chain, facilitator, owner, payee, payer, agent, usdc, pyusd, other)


@pytest.fixture
def world() -> World:
    return make_world()


def reference(n: int) -> bytes:
    return n.to_bytes(32, "big")


def ata(owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
    return associated_token_address(owner, mint, program)


def snapshot(world: World, extra: list[Pubkey] = ()) -> dict[Pubkey, object]:
    """Everything a payment could change, byte for byte."""
    keys = [world.agent, world.reputation, world.payer.pubkey(), world.payee.pubkey(), *extra]
    for mint, program in ((world.usdc, TOKEN_PROGRAM_ID), (world.pyusd, TOKEN_2022_PROGRAM_ID),
                          (world.other, TOKEN_PROGRAM_ID)):
        keys += [ata(world.payer.pubkey(), mint, program), ata(world.payee.pubkey(), mint, program)]
    state = {}
    for key in keys:
        account = world.chain.account(key)
        state[key] = None if account is None else (account.lamports, bytes(account.data), account.owner)
    return state


def assert_refused(world: World, instructions: list[Instruction], signers: list[Keypair], error: str,
                   watch: list[Pubkey] = ()) -> None:
    before = snapshot(world, list(watch))
    facilitator_before = world.chain.balance(world.facilitator.pubkey())
    result = world.send(instructions, *signers)
    assert result.error == error, (result.error, result.logs)
    assert not result.events
    assert snapshot(world, list(watch)) == before
    assert world.chain.balance(world.facilitator.pubkey()) == facilitator_before - FEE * (1 + len(signers))


def transfer(world: World, amount: int = PRICE, mint: Pubkey | None = None, source_owner: Keypair | None = None,
             destination: Pubkey | None = None, program: Pubkey = TOKEN_PROGRAM_ID) -> Instruction:
    mint = mint or world.usdc
    source_owner = source_owner or world.payer
    return transfer_checked(TransferCheckedParams(
        program_id=program, source=ata(source_owner.pubkey(), mint, program), mint=mint,
        dest=destination or ata(world.payee.pubkey(), mint, program), owner=source_owner.pubkey(),
        amount=amount, decimals=DECIMALS))


def record(world: World, ref: bytes, amount: int = PRICE, payer: Keypair | None = None) -> Instruction:
    return build_record_x402_payment(world.agent, (payer or world.payer).pubkey(), amount, ref)


# ---- the payment ------------------------------------------------------------------------------------


def test_payment_moves_tokens_records_it_and_creates_the_receipt(world: World) -> None:
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
    receipt = world.receipt(reference(1))
    assert (receipt.agent, receipt.payer, receipt.mint, bytes(receipt.reference), receipt.amount, receipt.paid_at,
            receipt.feedback_submitted) == (world.agent, world.payer.pubkey(), world.usdc, reference(1), PRICE, now,
                                            False)
    rent = chain.svm.minimum_balance_for_rent_exemption(RECEIPT_SPACE)
    assert chain.balance(world.payer.pubkey()) == payer_sol - rent  # the payer pays the receipt's rent
    assert chain.balance(world.facilitator.pubkey()) == facilitator_sol - 2 * FEE  # the facilitator the fees

    agent = world.agent_state()
    assert (agent.x402_total_calls, agent.x402_total_payments, agent.total_earnings, agent.last_payment_at) == (
        1, PRICE, PRICE, now)
    metrics = world.metrics()
    assert metrics.successful_payments == 1 and metrics.failed_payments == 0
    assert metrics.payment_history_7d[day_of(now) % 7] == 1 and sum(metrics.payment_history_7d) == 1
    event = result.event("X402PaymentRecorded")
    assert (event.agent, event.payer, event.mint, event.amount, bytes(event.reference), event.total_calls,
            event.timestamp) == (world.agent, world.payer.pubkey(), world.usdc, PRICE, reference(1), 1, now)
    # one payment, no feedback yet: the documented score of a new agent (see the vectors)
    updated = result.event("ReputationUpdated")
    assert (updated.old_score, updated.new_score) == (0, 6_800) and agent.reputation_score == 6_800


def test_token_2022_payment_and_overpayment_are_recorded(world: World) -> None:
    world.pay(reference(1), amount=PRICE + 1, mint=world.pyusd, token_program=TOKEN_2022_PROGRAM_ID)
    assert world.chain.token_balance(ata(world.payee.pubkey(), world.pyusd, TOKEN_2022_PROGRAM_ID)) == PRICE + 1
    assert world.receipt(reference(1)).mint == world.pyusd
    assert world.agent_state().x402_total_payments == PRICE + 1


def test_payee_account_created_in_the_same_transaction(world: World) -> None:
    fresh_payee = Keypair()
    config = X402Config(fresh_payee.pubkey(), PRICE, [world.usdc], "https://agent.example.com/translate")
    assert world.send([configure_x402({"config": config}, {"agent": world.agent, "owner": world.owner.pubkey()},
                                      remaining_accounts=mint_accounts([world.usdc]))], world.owner).ok
    instructions = build_x402_payment(world.payer.pubkey(), world.agent, fresh_payee.pubkey(), world.usdc, DECIMALS,
                                      PRICE, reference(9), fee_payer=world.facilitator.pubkey(),
                                      create_payee_account=True)
    assert world.send(instructions, world.payer).ok
    assert world.chain.token_balance(ata(fresh_payee.pubkey(), world.usdc)) == PRICE


# ---- attacks on record_x402_payment -----------------------------------------------------------------


def test_record_without_a_transfer_is_payment_transfer_missing(world: World) -> None:
    assert_refused(world, [record(world, reference(1))], [world.payer], "PaymentTransferMissing")


def test_record_after_a_non_token_instruction_is_payment_transfer_missing(world: World) -> None:
    pay_sol = sol_transfer(TransferParams(from_pubkey=world.payer.pubkey(), to_pubkey=world.payee.pubkey(),
                                          lamports=PRICE))
    assert_refused(world, [pay_sol, record(world, reference(1))], [world.payer], "PaymentTransferMissing")


def test_transfer_to_the_wrong_account_is_payment_wrong_destination(world: World) -> None:
    attacker = world.chain.funded_keypair()
    own = world.chain.create_token_account(attacker.pubkey(), world.usdc)
    assert_refused(world, [transfer(world, destination=own), record(world, reference(1))], [world.payer],
                   "PaymentWrongDestination", watch=[own])


def test_transfer_to_a_non_associated_account_of_the_payee_is_payment_wrong_destination(world: World) -> None:
    """A token account owned by the payee, but not its associated one."""
    side = Keypair().pubkey()
    data = bytearray(bytes(world.chain.account(ata(world.payee.pubkey(), world.usdc)).data))
    world.chain.set_account(side, bytes(data), owner=TOKEN_PROGRAM_ID)
    assert_refused(world, [transfer(world, destination=side), record(world, reference(1))], [world.payer],
                   "PaymentWrongDestination", watch=[side])


def test_transfer_in_the_wrong_mint_for_the_destination_fails_in_the_token_program(world: World) -> None:
    """usdc sent to the payee's account of another mint: SPL Token refuses (MintMismatch, 3) and the
    whole transaction with it, so nothing is recorded."""
    wrong = transfer(world, destination=ata(world.payee.pubkey(), world.other))
    token_mint_mismatch = "TransactionErrorInstructionError((0, Tagged(Custom(InstructionErrorCustom(3)))))"
    assert_refused(world, [wrong, record(world, reference(1))], [world.payer], token_mint_mismatch)


def test_unaccepted_mint_is_payment_mint_not_accepted(world: World) -> None:
    assert_refused(world, [transfer(world, mint=world.other), record(world, reference(1))], [world.payer],
                   "PaymentMintNotAccepted")


def test_less_than_the_price_is_payment_below_price(world: World) -> None:
    assert_refused(world, [transfer(world, amount=PRICE - 1), record(world, reference(1), amount=PRICE - 1)],
                   [world.payer], "PaymentBelowPrice")


def test_recorded_amount_must_equal_the_transfer(world: World) -> None:
    assert_refused(world, [transfer(world), record(world, reference(1), amount=PRICE * 2)], [world.payer],
                   "PaymentAmountMismatch")


def test_transfer_signed_by_someone_else_is_payment_authority_mismatch(world: World) -> None:
    """The tokens come from a friend's account: the payer did not pay, so may not record (nor rate)."""
    friend = world.chain.funded_keypair()
    world.chain.create_token_account(friend.pubkey(), world.usdc, FUNDS)
    assert_refused(world, [transfer(world, source_owner=friend), record(world, reference(1))], [friend, world.payer],
                   "PaymentAuthorityMismatch", watch=[ata(friend.pubkey(), world.usdc)])


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
    assert_refused(world, [transfer(world, mint=fake_mint, program=fake), record(world, reference(1))],
                   [world.payer], "PaymentTransferMissing")


def test_same_reference_twice_is_payment_already_recorded(world: World) -> None:
    world.pay(reference(1))
    assert_refused(world, world.payment(reference(1)), [world.payer], "PaymentAlreadyRecorded")
    assert world.agent_state().x402_total_calls == 1


def test_two_records_after_one_transfer_is_payment_transfer_missing(world: World) -> None:
    assert_refused(world, [transfer(world), record(world, reference(1)), record(world, reference(2))],
                   [world.payer], "PaymentTransferMissing",
                   watch=[receipt_address(world.agent, reference(n))[0] for n in (1, 2)])


def test_two_payments_in_one_transaction_both_count(world: World) -> None:
    result = world.send([transfer(world), record(world, reference(1)), transfer(world), record(world, reference(2))],
                        world.payer)
    assert result.ok, result.logs
    assert world.agent_state().x402_total_calls == 2


def test_payer_not_signing_is_account_not_signer(world: World) -> None:
    """The transfer is signed through another instruction's signature; record still needs the payer's."""
    ix = record(world, reference(1))
    unsigned = Instruction(ix.program_id, bytes(ix.data),
                           [AccountMeta(m.pubkey, False, m.is_writable) if m.pubkey == world.payer.pubkey() else m
                            for m in ix.accounts])
    friend = world.chain.funded_keypair()
    world.chain.create_token_account(friend.pubkey(), world.usdc, FUNDS)
    assert_refused(world, [transfer(world, source_owner=friend), unsigned], [friend], "AccountNotSigner",
                   watch=[ata(friend.pubkey(), world.usdc)])


def test_fake_instructions_sysvar_is_constraint_address(world: World) -> None:
    fake = Keypair().pubkey()
    world.chain.set_account(fake, bytes(64), owner=Pubkey.default())
    ix = record(world, reference(1))
    metas = [AccountMeta(fake, False, False) if i == 4 else m for i, m in enumerate(ix.accounts)]
    assert_refused(world, [transfer(world), Instruction(ix.program_id, bytes(ix.data), metas)], [world.payer],
                   "ConstraintAddress")


def test_receipt_at_another_address_is_constraint_seeds(world: World) -> None:
    ix = record(world, reference(1))
    wrong = receipt_address(world.agent, reference(2))[0]
    metas = [AccountMeta(wrong, False, True) if i == 2 else m for i, m in enumerate(ix.accounts)]
    assert_refused(world, [transfer(world), Instruction(ix.program_id, bytes(ix.data), metas)], [world.payer],
                   "ConstraintSeeds", watch=[wrong])


def test_another_agents_reputation_is_constraint_seeds(world: World) -> None:
    other = make_world()
    data = bytes(other.chain.account(other.reputation).data)
    world.chain.set_account(other.reputation, data, owner=world.chain.program_id)
    ix = record(world, reference(1))
    metas = [AccountMeta(other.reputation, False, True) if i == 1 else m for i, m in enumerate(ix.accounts)]
    assert_refused(world, [transfer(world), Instruction(ix.program_id, bytes(ix.data), metas)], [world.payer],
                   "ConstraintSeeds", watch=[other.reputation])


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
    assert (metrics.successful_payments, metrics.failed_payments, metrics.total_response_time_ms,
            metrics.response_time_count, metrics.total_rating, metrics.rating_count) == (1, 0, 245, 1, 4, 1)
    assert world.receipt(reference(1)).feedback_submitted
    expected = reputation_score(ReputationInputs.from_account(metrics))
    event = result.event("ReputationUpdated")
    assert (event.old_score, event.new_score, event.payment_success, event.service_quality, event.response_time,
            event.volume_consistency) == (6_800, expected.score, 10_000, 8_000, 10_000, 0)
    assert world.agent_state().reputation_score == expected.score
    submitted = result.event("FeedbackSubmitted")
    assert (submitted.payer, bytes(submitted.reference), submitted.success, submitted.response_time_ms,
            submitted.rating) == (world.payer.pubkey(), reference(1), True, 245, 4)


def test_failed_call_moves_the_payment_to_failed(world: World) -> None:
    world.pay(reference(1))
    world.pay(reference(2))
    assert world.send([world.feedback(reference(1), success=False, response_time_ms=0, rating=0)], world.payer).ok
    metrics = world.metrics()
    assert (metrics.successful_payments, metrics.failed_payments, metrics.response_time_count,
            metrics.rating_count) == (1, 1, 0, 0)
    assert world.agent_state().reputation_score == reputation_score(ReputationInputs.from_account(metrics)).score


def test_feedback_by_a_non_payer_is_not_receipt_payer(world: World) -> None:
    world.pay(reference(1))
    stranger = world.chain.funded_keypair()
    assert_refused(world, [world.feedback(reference(1), signer=stranger)], [stranger], "NotReceiptPayer",
                   watch=[receipt_address(world.agent, reference(1))[0]])


def test_feedback_twice_is_feedback_already_submitted(world: World) -> None:
    world.pay(reference(1))
    assert world.send([world.feedback(reference(1))], world.payer).ok
    assert_refused(world, [world.feedback(reference(1), rating=1)], [world.payer], "FeedbackAlreadySubmitted",
                   watch=[receipt_address(world.agent, reference(1))[0]])


@pytest.mark.parametrize("rating", [6, 255])
def test_rating_above_five_is_rating_out_of_range(world: World, rating: int) -> None:
    world.pay(reference(1))
    assert_refused(world, [world.feedback(reference(1), rating=rating)], [world.payer], "RatingOutOfRange")


@pytest.mark.parametrize("response_time_ms", [3_600_001, 2**32 - 1])
def test_response_time_overflow_is_response_time_out_of_range(world: World, response_time_ms: int) -> None:
    world.pay(reference(1))
    assert_refused(world, [world.feedback(reference(1), response_time_ms=response_time_ms)], [world.payer],
                   "ResponseTimeOutOfRange")


def test_feedback_with_another_agents_receipt_is_receipt_agent_mismatch(world: World) -> None:
    """The payer paid agent B, then tries to rate agent A with that receipt."""
    other = make_world()
    other.pay(reference(1))
    receipt = receipt_address(other.agent, reference(1))[0]
    data = bytes(other.chain.account(receipt).data)
    # the same payer key in this world, so only the agent differs
    forged = bytearray(data)
    forged[40:72] = bytes(world.payer.pubkey())
    world.chain.set_account(receipt, bytes(forged), owner=world.chain.program_id)
    ix = world.feedback(reference(1))
    metas = [AccountMeta(receipt, False, True) if i == 2 else m for i, m in enumerate(ix.accounts)]
    assert_refused(world, [Instruction(ix.program_id, bytes(ix.data), metas)], [world.payer], "ReceiptAgentMismatch",
                   watch=[receipt])


def test_forged_receipt_owned_by_another_program_is_refused(world: World) -> None:
    world.pay(reference(1))
    receipt = receipt_address(world.agent, reference(1))[0]
    data = bytes(world.chain.account(receipt).data)
    world.chain.set_account(receipt, data, owner=Pubkey.default())
    assert_refused(world, [world.feedback(reference(1))], [world.payer], "AccountOwnedByWrongProgram",
                   watch=[receipt])


# ---- close_receipt ----------------------------------------------------------------------------------


def close(world: World, ref: bytes, signer: Keypair | None = None) -> Instruction:
    signer = signer or world.payer
    return close_receipt({"receipt": receipt_address(world.agent, ref)[0], "payer": signer.pubkey()})


def test_close_receipt_after_feedback_refunds_the_payer(world: World) -> None:
    world.pay(reference(1))
    assert world.send([world.feedback(reference(1))], world.payer).ok
    receipt = receipt_address(world.agent, reference(1))[0]
    rent = world.chain.account(receipt).lamports
    before = world.chain.balance(world.payer.pubkey())
    assert world.send([close(world, reference(1))], world.payer).ok
    assert world.chain.balance(world.payer.pubkey()) == before + rent
    assert world.receipt(reference(1)) is None


def test_close_receipt_before_feedback_is_receipt_still_open_until_the_window_ends(world: World) -> None:
    world.pay(reference(1))
    receipt = receipt_address(world.agent, reference(1))[0]
    assert_refused(world, [close(world, reference(1))], [world.payer], "ReceiptStillOpen", watch=[receipt])
    paid_at = world.receipt(reference(1)).paid_at
    world.chain.set_unix_timestamp(paid_at + FEEDBACK_WINDOW_SECONDS)
    assert world.send([close(world, reference(1))], world.payer).ok


def test_close_receipt_by_someone_else_is_not_receipt_payer(world: World) -> None:
    world.pay(reference(1))
    assert world.send([world.feedback(reference(1))], world.payer).ok
    stranger = world.chain.funded_keypair()
    assert_refused(world, [close(world, reference(1), signer=stranger)], [stranger], "NotReceiptPayer",
                   watch=[receipt_address(world.agent, reference(1))[0], stranger.pubkey()])


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
    assert (agent.x402_total_calls, agent.x402_total_payments, agent.total_earnings) == (SOAK_PAYMENTS, paid, paid)
    assert world.chain.token_balance(ata(world.payee.pubkey(), world.usdc)) == paid
    assert world.metrics().successful_payments == SOAK_PAYMENTS
