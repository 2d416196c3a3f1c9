"""The Agent account's earnings table: one slot per mint, in that mint's atomic units.

Summing atomic units of different mints means nothing (1 unit of a 2-decimal token is 10,000 units of a
6-decimal one), so the program keeps x402 payments and escrow earnings per mint, in MAX_EARNING_MINTS slots per
registration. A payment or work order in an accepted mint takes the mint's slot (or an empty one); the
owner's configuration keeps room for every accepted mint, reusing a slot whose mint is no longer accepted and
has no open work order (its final totals in MintEarningsRetired). So no sequence of other people's
transactions can make an honest payment or order in an accepted mint fail (issue 24, item 12): the two attacks
of the issue are played here, then a random mix of strangers' payments and orders against the owner's
reconfigurations, with the table checked slot by slot against a model of those rules.
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.agent_instructions import mint_accounts
from ghostpay.earnings import earnings_by_mint
from ghostpay.instructions import set_x402_tokens
from ghostpay.payments import build_x402_payment
from ghostpay.pda import payer_stats_address
from ghostpay.types import TokenPrice
from ghostpay.work_orders import build_accept_work_order, build_decline_work_order, build_release_payment
from tests.program.conftest import (
    AMOUNT,
    DECIMALS,
    ESCROW_FUNDS,
    PAYMENT_FUNDS,
    PRICE,
    STATS_SPACE,
    World,
    escrow_world,
    payments_world,
    reference,
    snapshot,
)
from tests.program.svm import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, TxResult

MAX_EARNING_MINTS = 16
MAX_ACCEPTED_TOKENS = 10
EMPTY = Pubkey.default()
STEPS = int(os.environ.get("GHOSTPAY_EARNINGS_STEPS", "300"))
REFERENCES = itertools.count(1)


def set_tokens(world: World, mints: list[Pubkey]) -> TxResult:
    """The owner's configuration: exactly `mints` accepted, each at PRICE."""
    ix = set_x402_tokens(
        {"accepted_tokens": [TokenPrice(m, PRICE) for m in mints]},
        {"agent": world.agent, "owner": world.owner.pubkey()},
        remaining_accounts=mint_accounts(mints),
    )
    return world.send([ix], world.owner)


def accept(world: World, mints: list[Pubkey]) -> TxResult:
    result = set_tokens(world, mints)
    assert result.ok, (result.error, result.logs)
    return result


def retired(result: TxResult) -> list[tuple[Pubkey, int, int]]:
    return [
        (e.data.mint, e.data.x402_payments, e.data.escrow_earnings)
        for e in result.events
        if e.name == "MintEarningsRetired"
    ]


def payable_mint(world: World, *payers: Keypair) -> Pubkey:
    """A new mint: the client, the stranger and `payers` hold funds in it, the agent's owner (its payment
    address and the escrow's payee) an empty account."""
    mint = world.chain.create_mint(DECIMALS)
    for who in (world.client, world.stranger, *payers):
        world.chain.create_token_account(who.pubkey(), mint, ESCROW_FUNDS)
    world.chain.create_token_account(world.owner.pubkey(), mint, 0)
    return mint


def pay(world: World, payer: Keypair, mint: Pubkey) -> TxResult:
    """An x402 payment of PRICE by `payer` to the agent (whose payment address is its owner)."""
    return world.send(
        build_x402_payment(
            payer.pubkey(),
            world.agent,
            world.owner.pubkey(),
            mint,
            DECIMALS,
            PRICE,
            reference(next(REFERENCES)),
            TOKEN_PROGRAM_ID,
            fee_payer=world.facilitator.pubkey(),
            compute_unit_limit=100_000,
        ),
        payer,
    )


def table(world: World) -> list[tuple[Pubkey, int, int, int]]:
    """Every slot of the agent's earnings table: (mint, x402 payments, escrow earnings, open work orders)."""
    return [(s.mint, s.x402_payments, s.escrow_earnings, s.open_work_orders) for s in world.agent_state().earnings]


def tokens(world: World, owners: list[Keypair], mints: list[Pubkey]) -> dict[tuple[Pubkey, Pubkey], int]:
    return {(o.pubkey(), m): world.balance(o.pubkey(), m) for o in owners for m in mints}


def stats_rent(world: World) -> int:
    return world.chain.svm.minimum_balance_for_rent_exemption(STATS_SPACE)


def hire_and_pay_honestly(world: World, honest: Keypair, order_mint: Pubkey, payment_mint: Pubkey) -> None:
    """An honest client orders in `order_mint` (accepted, delivered, released in full) and pays one x402 call
    in `payment_mint`; every party's tokens and SOL are checked after."""
    parties = [honest, world.owner, world.stranger, world.client]
    mints = [order_mint, payment_mint]
    before, sol = tokens(world, parties, mints), world.chain.balances([p.pubkey() for p in parties])
    first_payment = world.chain.account(payer_stats_address(world.agent, honest.pubkey())[0]) is None
    attacker, world.client = world.client, honest
    try:
        order = world.open(mint=order_mint)
        world.ok(build_accept_work_order(order, world.arbiter.pubkey()), world.owner)
        world.ok(build_release_payment(order, AMOUNT), honest)
    finally:
        world.client = attacker
    paid = pay(world, honest, payment_mint)
    assert paid.ok, (paid.error, paid.logs)
    expected = dict(before)
    expected[honest.pubkey(), order_mint] -= AMOUNT
    expected[world.owner.pubkey(), order_mint] += AMOUNT
    expected[honest.pubkey(), payment_mint] -= PRICE
    expected[world.owner.pubkey(), payment_mint] += PRICE
    assert tokens(world, parties, mints) == expected
    # the facilitator pays every fee; the order's rents came back to the client; the rent of the client's
    # PayerStats stays, if this was its first payment to the agent
    assert world.chain.balances([p.pubkey() for p in parties]) == {
        **sol,
        honest.pubkey(): sol[honest.pubkey()] - (stats_rent(world) if first_payment else 0),
    }


# ---- per mint ------------------------------------------------------------------------------------------


def test_payments_in_mints_of_different_decimals_are_kept_apart() -> None:
    world = payments_world()
    cents = world.chain.create_mint(2)
    world.chain.create_token_account(world.payer.pubkey(), cents, PAYMENT_FUNDS)
    world.chain.create_token_account(world.payee.pubkey(), cents, 0)
    ix = set_x402_tokens(
        {"accepted_tokens": [TokenPrice(world.usdc, PRICE), TokenPrice(cents, 150)]},
        {"agent": world.agent, "owner": world.owner.pubkey()},
        remaining_accounts=mint_accounts([world.usdc, cents]),
    )
    assert world.send([ix], world.owner).ok
    for n, (mint, decimals, amount) in enumerate([(cents, 2, 150), (world.usdc, 6, PRICE), (cents, 2, 151)]):
        assert world.send(
            build_x402_payment(
                world.payer.pubkey(),
                world.agent,
                world.payee.pubkey(),
                mint,
                decimals,
                amount,
                reference(n),
                fee_payer=world.facilitator.pubkey(),
            ),
            world.payer,
        ).ok

    earned = earnings_by_mint(world.agent_state())
    assert list(earned) == [cents, world.usdc]  # slots in the order the mints were first paid in
    assert (earned[cents].x402_payments, earned[cents].escrow_earnings) == (301, 0)
    assert (earned[world.usdc].x402_payments, earned[world.usdc].escrow_earnings) == (PRICE, 0)


def test_escrow_earnings_count_in_the_order_mint_even_after_it_is_no_longer_accepted() -> None:
    world = escrow_world()
    order = world.open(mint=world.pyusd, token_program=TOKEN_2022_PROGRAM_ID)
    assert earnings_by_mint(world.agent_state())[world.pyusd].open_work_orders == 1  # held while the order is open
    world.ok(build_accept_work_order(order, world.arbiter.pubkey()), world.owner)
    accept(world, [world.usdc])  # pyusd no longer accepted
    world.ok(build_release_payment(order, 2_000_000), world.client)
    earned = earnings_by_mint(world.agent_state())
    assert list(earned) == [world.pyusd] and earned[world.pyusd].escrow_earnings == 2_000_000


# ---- the attacks of issue 24, item 12 --------------------------------------------------------------------


def test_a_stranger_paying_in_every_mint_the_agent_ever_accepted_cannot_block_honest_payments_or_orders() -> None:
    """The agent accepted 16 mints over its life, four at a time, and a stranger paid once in each: the
    table is full of the stranger's payments. The owner then accepts four new mints; its configuration
    retires the four oldest slots (their totals in MintEarningsRetired), the stranger keeps paying, and an
    honest payment and an honest order in the new mints go through."""
    world = escrow_world()
    honest = world.chain.funded_keypair(100)
    pool = [payable_mint(world, honest) for _ in range(MAX_EARNING_MINTS + 4)]
    for start in range(0, MAX_EARNING_MINTS, 4):
        accept(world, pool[start : start + 4])
        for mint in pool[start : start + 4]:
            assert pay(world, world.stranger, mint).ok
    assert table(world) == [(m, PRICE, 0, 0) for m in pool[:MAX_EARNING_MINTS]]  # full

    newest = pool[MAX_EARNING_MINTS:]
    assert retired(accept(world, newest)) == [(m, PRICE, 0) for m in pool[:4]]
    for mint in newest[:2]:
        assert pay(world, world.stranger, mint).ok
    hire_and_pay_honestly(world, honest, order_mint=newest[2], payment_mint=newest[3])

    assert table(world) == [
        (newest[0], PRICE, 0, 0),
        (newest[1], PRICE, 0, 0),
        (newest[2], 0, AMOUNT, 0),
        (newest[3], PRICE, 0, 0),
    ] + [(m, PRICE, 0, 0) for m in pool[4:MAX_EARNING_MINTS]]
    assert world.balance(world.owner.pubkey(), pool[0]) == PRICE  # retiring a slot moves no tokens


def test_a_stranger_keeping_an_order_open_while_re_creating_declined_ones_cannot_block_honest_payments_or_orders() -> (
    None
):
    """A client keeps one accepted order open (its slot must stay: the order will still pay out) and, each time
    the agent accepts a new mint, opens an order in it that the provider declines, leaving a slot that earned
    nothing. Once 16 mints hold slots, the owner accepts a 17th: an empty-handed slot is reused, an honest
    payment and an honest order in it go through, and the held order still counts in its own mint."""
    world = escrow_world()
    honest = world.chain.funded_keypair(100)
    pool = [payable_mint(world, honest) for _ in range(MAX_EARNING_MINTS + 1)]
    accept(world, [pool[0]])
    held = world.open(mint=pool[0])
    world.ok(build_accept_work_order(held, world.arbiter.pubkey()), world.owner)
    for mint in pool[1:MAX_EARNING_MINTS]:
        accept(world, [mint])
        world.ok(build_decline_work_order(world.open(mint=mint)), world.owner)
    assert table(world) == [(pool[0], 0, 0, 1)] + [(m, 0, 0, 0) for m in pool[1:MAX_EARNING_MINTS]]

    newest = pool[MAX_EARNING_MINTS]
    assert retired(accept(world, [newest])) == [(pool[1], 0, 0)]
    hire_and_pay_honestly(world, honest, order_mint=newest, payment_mint=newest)
    world.ok(build_decline_work_order(world.open(mint=newest)), world.owner)  # the attacker goes on, harmlessly

    world.ok(build_release_payment(held, AMOUNT), world.client)
    earned = earnings_by_mint(world.agent_state())
    assert (earned[pool[0]].escrow_earnings, earned[pool[0]].open_work_orders) == (AMOUNT, 0)
    assert (earned[newest].x402_payments, earned[newest].escrow_earnings) == (PRICE, AMOUNT)
    assert world.balance(world.owner.pubkey(), pool[0]) == AMOUNT
    assert world.agent_state().open_work_orders == 0


def test_a_configuration_that_needs_a_slot_an_open_order_holds_is_refused_and_moves_nothing() -> None:
    """Ten accepted mints with an open order each; accepting seven others would need 17 slots. The owner's own
    configuration is refused by name (its earlier one stays, so payments in those mints still work); once
    one order is settled its slot is free and the configuration goes through, and the orders in mints no
    longer accepted still pay out into their own slots."""
    world = escrow_world()
    pool = [payable_mint(world) for _ in range(MAX_ACCEPTED_TOKENS + 7)]
    first, second = pool[:MAX_ACCEPTED_TOKENS], pool[MAX_ACCEPTED_TOKENS:]
    accept(world, first)
    orders = [world.open(mint=mint) for mint in first]
    before = snapshot(world)
    refused = set_tokens(world, second)
    assert refused.error == "EarningsTableFull", refused.logs
    assert snapshot(world) == before
    assert pay(world, world.stranger, first[0]).ok  # the accepted mints are as they were

    world.ok(build_decline_work_order(orders[1]), world.owner)
    assert retired(accept(world, second)) == [(first[1], 0, 0)]
    world.ok(build_accept_work_order(orders[2], world.arbiter.pubkey()), world.owner)
    world.ok(build_release_payment(orders[2], AMOUNT), world.client)
    earned = earnings_by_mint(world.agent_state())
    assert (earned[first[2]].escrow_earnings, earned[first[2]].open_work_orders) == (AMOUNT, 0)
    assert world.balance(world.owner.pubkey(), first[2]) == AMOUNT
    assert set(earned) == set(pool) - {first[1]}


# ---- any sequence --------------------------------------------------------------------------------------


@dataclass
class Slot:
    mint: Pubkey
    x402_payments: int = 0
    escrow_earnings: int = 0
    open_work_orders: int = 0

    def row(self) -> tuple[Pubkey, int, int, int]:
        return (self.mint, self.x402_payments, self.escrow_earnings, self.open_work_orders)


class Table:
    """The earnings table by the documented rules (docs/program.md, "The Agent account")."""

    def __init__(self) -> None:
        self.slots: list[Slot] = []  # occupied slots form a prefix

    def rows(self) -> list[tuple[Pubkey, int, int, int]]:
        return [s.row() for s in self.slots] + [(EMPTY, 0, 0, 0)] * (MAX_EARNING_MINTS - len(self.slots))

    def slot(self, mint: Pubkey) -> Slot:
        """A payment's or new order's slot in an accepted mint: its own or the next empty one."""
        found = next((s for s in self.slots if s.mint == mint), None)
        if found is None:
            assert len(self.slots) < MAX_EARNING_MINTS, "an accepted mint found no room"
            found = Slot(mint)
            self.slots.append(found)
        return found

    def configure(self, accepted: list[Pubkey]) -> list[tuple[Pubkey, int, int]] | None:
        """The slots a configuration retires, or None if it is refused (EarningsTableFull)."""
        if MAX_EARNING_MINTS - len(self.slots) >= len(accepted):
            return []
        slots = [Slot(*s.row()) for s in self.slots]
        gone = []
        for mint in accepted:
            if any(s.mint == mint for s in slots):
                continue
            if len(slots) < MAX_EARNING_MINTS:
                slots.append(Slot(mint))
                continue
            free = [s for s in slots if not s.open_work_orders and s.mint not in accepted]
            if not free:
                return None
            slot = next((s for s in free if not s.x402_payments and not s.escrow_earnings), free[0])
            gone.append((slot.mint, slot.x402_payments, slot.escrow_earnings))
            slot.mint, slot.x402_payments, slot.escrow_earnings = mint, 0, 0
        self.slots = slots
        return gone


def test_no_sequence_of_strangers_transactions_blocks_an_accepted_mint() -> None:
    """GHOSTPAY_EARNINGS_STEPS random steps (default 300): the owner reconfigures to 1-10 random mints of 24 (refused
    only when the accepted mints and the mints with open orders need more than 16 slots), strangers pay in any
    accepted mint and open orders in it (some kept open, some declined, some paid out). Every stranger's step
    succeeds, the table equals the model after each step, and every 25 steps an honest payment and an honest
    order succeed in every accepted mint."""
    rng = random.Random(int(os.environ.get("GHOSTPAY_EARNINGS_SEED", "12")))
    world = escrow_world()
    honest = world.chain.funded_keypair(1_000)
    pool = [payable_mint(world, honest) for _ in range(24)]
    accepted = pool[:2]
    accept(world, accepted)
    model, open_orders, refusals = Table(), [], 0
    for step in range(STEPS):
        kind = rng.choices(["configure", "pay", "order", "settle"], weights=[2, 4, 3, 2])[0]
        if kind == "configure":
            wanted = rng.sample(pool, rng.randint(1, MAX_ACCEPTED_TOKENS))
            expected = model.configure(wanted)
            before = snapshot(world)
            result = set_tokens(world, wanted)
            if expected is None:
                assert result.error == "EarningsTableFull", result.logs
                assert snapshot(world) == before
                refusals += 1
            else:
                assert result.ok, (result.error, result.logs)
                assert retired(result) == expected
                accepted = wanted
        elif kind == "pay":
            mint = rng.choice(accepted)
            assert pay(world, rng.choice([world.stranger, world.client]), mint).ok
            model.slot(mint).x402_payments += PRICE
        elif kind == "order":
            mint = rng.choice(accepted)
            open_orders.append(world.open(mint=mint))
            model.slot(mint).open_work_orders += 1
        elif open_orders:
            order = open_orders.pop(rng.randrange(len(open_orders)))
            slot = next(s for s in model.slots if s.mint == order.mint)
            if rng.random() < 0.5:
                world.ok(build_decline_work_order(order), world.owner)
            else:
                world.ok(build_accept_work_order(order, world.arbiter.pubkey()), world.owner)
                world.ok(build_release_payment(order, AMOUNT), world.client)
                slot.escrow_earnings += AMOUNT
            slot.open_work_orders -= 1
        assert table(world) == model.rows(), (step, kind)
        if step % 25 == 24:
            for mint in accepted:
                hire_and_pay_honestly(world, honest, order_mint=mint, payment_mint=mint)
                model.slot(mint).escrow_earnings += AMOUNT
                model.slot(mint).x402_payments += PRICE
            assert table(world) == model.rows()
    assert refusals > 0 and len(model.slots) == MAX_EARNING_MINTS  # the walk reached the full table and refusals
