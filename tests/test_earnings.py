"""The Agent account's earnings table: one slot per mint, in that mint's atomic units.

Summing atomic units of different mints means nothing (1 unit of a 2-decimal token is 10,000 units of a
6-decimal one), so the program keeps x402 payments and escrow earnings per mint, in at most
MAX_EARNING_MINTS slots per registration. A mint takes its slot with its first x402 payment or when a work
order in it is created (so a release always finds its slot); a slot that earned nothing is reused once no
work order is open; anything else in a 17th mint is EarningsTableFull and moves nothing.
"""

from __future__ import annotations

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.earnings import earnings_by_mint
from ghostpay.instructions import set_x402_tokens
from ghostpay.agent_instructions import mint_accounts
from ghostpay.payments import build_x402_payment
from ghostpay.svm import TOKEN_PROGRAM_ID
from ghostpay.types import TokenPrice
from ghostpay.work_orders import build_accept_work_order, build_decline_work_order, build_release_payment
from tests import test_work_orders as escrow
from tests import test_x402_payments as x402

MAX_EARNING_MINTS = 16


def accept_only(chain, agent: Pubkey, owner: Keypair, fee_payer: Keypair, mint: Pubkey, price: int = 10_000) -> None:
    ix = set_x402_tokens({"accepted_tokens": [TokenPrice(mint, price)]}, {"agent": agent, "owner": owner.pubkey()},
                         remaining_accounts=mint_accounts([mint]))
    result = chain.send([ix], [fee_payer, owner])
    assert result.ok, (result.error, result.logs)


def x402_pay(world: x402.World, n: int, mint: Pubkey, decimals: int, amount: int):
    return world.send(build_x402_payment(world.payer.pubkey(), world.agent, world.payee.pubkey(), mint, decimals,
                                         amount, x402.reference(n), TOKEN_PROGRAM_ID,
                                         fee_payer=world.facilitator.pubkey(), compute_unit_limit=100_000),
                      world.payer)


def new_payable_mint(world: x402.World, decimals: int = 6) -> Pubkey:
    mint = world.chain.create_mint(decimals)
    world.chain.create_token_account(world.payer.pubkey(), mint, x402.FUNDS)
    world.chain.create_token_account(world.payee.pubkey(), mint, 0)
    return mint


def test_payments_in_mints_of_different_decimals_are_kept_apart() -> None:
    world = x402.make_world()
    cents = new_payable_mint(world, decimals=2)
    ix = set_x402_tokens({"accepted_tokens": [TokenPrice(world.usdc, x402.PRICE), TokenPrice(cents, 150)]},
                         {"agent": world.agent, "owner": world.owner.pubkey()},
                         remaining_accounts=mint_accounts([world.usdc, cents]))
    assert world.send([ix], world.owner).ok
    assert x402_pay(world, 1, cents, 2, 150).ok
    assert x402_pay(world, 2, world.usdc, 6, x402.PRICE).ok
    assert x402_pay(world, 3, cents, 2, 151).ok

    earned = earnings_by_mint(world.agent_state())
    assert list(earned) == [cents, world.usdc]  # slots in the order the mints were first paid in
    assert (earned[cents].x402_payments, earned[cents].escrow_earnings) == (301, 0)
    assert (earned[world.usdc].x402_payments, earned[world.usdc].escrow_earnings) == (x402.PRICE, 0)


def test_a_payment_in_a_seventeenth_mint_is_earnings_table_full_and_moves_nothing() -> None:
    world = x402.make_world()
    mints = [new_payable_mint(world) for _ in range(MAX_EARNING_MINTS + 1)]
    for n, mint in enumerate(mints[:MAX_EARNING_MINTS]):
        accept_only(world.chain, world.agent, world.owner, world.facilitator, mint, x402.PRICE)
        assert x402_pay(world, n, mint, 6, x402.PRICE).ok
    assert list(earnings_by_mint(world.agent_state())) == mints[:MAX_EARNING_MINTS]

    accept_only(world.chain, world.agent, world.owner, world.facilitator, mints[-1], x402.PRICE)  # accepting is fine
    before = x402.snapshot(world, [x402.ata(world.payer.pubkey(), mints[-1]), x402.ata(world.payee.pubkey(), mints[-1])])
    refused = x402_pay(world, 99, mints[-1], 6, x402.PRICE)
    assert refused.error == "EarningsTableFull", refused.logs
    assert x402.snapshot(world, [x402.ata(world.payer.pubkey(), mints[-1]),
                                 x402.ata(world.payee.pubkey(), mints[-1])]) == before
    assert world.receipt(x402.reference(99)) is None
    # a mint that already has its slot is still paid in
    accept_only(world.chain, world.agent, world.owner, world.facilitator, mints[0], x402.PRICE)
    assert x402_pay(world, 100, mints[0], 6, x402.PRICE).ok
    assert earnings_by_mint(world.agent_state())[mints[0]].x402_payments == 2 * x402.PRICE


def order_in(world: escrow.World, mint: Pubkey) -> escrow.WorkOrderRef:
    accept_only(world.chain, world.agent, world.owner, world.facilitator, mint)
    world.chain.create_token_account(world.client.pubkey(), mint, escrow.FUNDS)
    world.chain.create_token_account(world.owner.pubkey(), mint, 0)
    return world.open(mint=mint)


def earn_by_escrow(world: escrow.World, mint: Pubkey) -> None:
    """An order in `mint` accepted and paid out in full (so it is no longer open)."""
    order = order_in(world, mint)
    world.ok(build_accept_work_order(order, world.arbiter.pubkey()), world.owner)
    world.ok(build_release_payment(order, escrow.AMOUNT), world.client)


def test_escrow_earnings_count_in_the_order_mint_even_after_it_is_no_longer_accepted() -> None:
    world = escrow.make_world()
    order = world.open(mint=world.pyusd, token_program=escrow.TOKEN_2022_PROGRAM_ID)
    assert earnings_by_mint(world.agent_state())[world.pyusd].escrow_earnings == 0  # the slot is taken at creation
    world.ok(build_accept_work_order(order, world.arbiter.pubkey()), world.owner)
    accept_only(world.chain, world.agent, world.owner, world.facilitator, world.usdc)  # pyusd no longer accepted
    world.ok(build_release_payment(order, 2_000_000), world.client)
    earned = earnings_by_mint(world.agent_state())
    assert list(earned) == [world.pyusd] and earned[world.pyusd].escrow_earnings == 2_000_000


def test_a_refunded_orders_slot_is_reused_only_once_no_order_is_open() -> None:
    world = escrow.make_world()
    declined = world.open()  # usdc takes slot 0 ...
    world.ok(build_decline_work_order(declined), world.owner)  # ... and earns nothing
    mints = [world.chain.create_mint(escrow.DECIMALS) for _ in range(MAX_EARNING_MINTS)]
    for mint in mints[:MAX_EARNING_MINTS - 1]:
        earn_by_escrow(world, mint)
    assert list(earnings_by_mint(world.agent_state())) == [world.usdc, *mints[:MAX_EARNING_MINTS - 1]]

    pinned = order_in(world, mints[0])  # an open order: no slot may be reused while it is open
    newest = mints[-1]
    world.chain.create_token_account(world.client.pubkey(), newest, escrow.FUNDS)
    accept_only(world.chain, world.agent, world.owner, world.facilitator, newest)
    before = escrow.snapshot(world)
    refused, result = world.create(mint=newest)
    assert result.error == "EarningsTableFull", result.logs
    assert world.chain.account(refused.address) is None
    assert escrow.snapshot(world) == before
    assert world.balance(world.client.pubkey(), newest) == escrow.FUNDS

    world.ok(build_decline_work_order(pinned), world.owner)
    world.open(mint=newest)  # now it takes usdc's empty-handed slot
    earned = earnings_by_mint(world.agent_state())
    assert list(earned) == [newest, *mints[:MAX_EARNING_MINTS - 1]]
    assert all(earned[m].escrow_earnings == escrow.AMOUNT for m in mints[:MAX_EARNING_MINTS - 1])
