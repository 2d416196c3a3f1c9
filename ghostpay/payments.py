"""Instructions of an x402 payment on Solana: the "exact" scheme's TransferChecked,
optionally the Memo the official x402 client adds, then `record_x402_payment`,
which the program only accepts as a top-level instruction right after a transfer
that really paid the agent (or after a single Memo that follows it).

    >>> from solders.pubkey import Pubkey
    >>> payer, agent, pay_to, mint = (Pubkey.new_unique() for _ in range(4))
    >>> ixs = build_x402_payment(payer, agent, pay_to, mint, decimals=6, amount=10_000, reference=bytes(32),
    ...                          compute_unit_limit=30_000, memo="a1b2")
    >>> [str(ix.program_id)[:8] for ix in ixs]
    ['ComputeB', 'Tokenkeg', 'MemoSq4g', 'GPycXcaR']
"""

from __future__ import annotations

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import Instruction
from solders.pubkey import Pubkey
from solders.sysvar import INSTRUCTIONS
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import (
    TransferCheckedParams,
    create_idempotent_associated_token_account,
    transfer_checked,
)

from ghostpay.instructions import record_x402_payment
from ghostpay.pda import associated_token_address, payer_stats_address, reputation_address
from ghostpay.program_id import PROGRAM_ID

__all__ = ["MEMO_PROGRAM_ID", "build_memo", "build_record_x402_payment", "build_x402_payment"]


def build_record_x402_payment(
    agent: Pubkey,
    payer: Pubkey,
    amount: int,
    reference: bytes,
    source_token_account: Pubkey,
    mint: Pubkey,
    payee_token_account: Pubkey,
    *,
    rent_payer: Pubkey | None = None,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """`record_x402_payment`; valid only as a top-level instruction right after the TransferChecked that
    paid `amount` of `mint` from `source_token_account` into `payee_token_account` (the transfer's own
    accounts, in its order; or after one Memo that follows it). `rent_payer` (default: the payer) signs, and
    pays the rent of the payer's PayerStats if this is the pair's first payment (nothing otherwise); it gets
    it back when that account is closed."""
    stats, _ = payer_stats_address(agent, payer, program_id)
    reputation, _ = reputation_address(agent, program_id)
    return record_x402_payment(
        {"amount": amount, "reference": list(reference)},
        {
            "agent": agent,
            "reputation": reputation,
            "payer_stats": stats,
            "payer": payer,
            "rent_payer": rent_payer or payer,
            "payee_token_account": payee_token_account,
            "source_token_account": source_token_account,
            "mint": mint,
            "instructions_sysvar": INSTRUCTIONS,
        },
        program_id=program_id,
    )


def build_memo(memo: bytes | str) -> Instruction:
    """An SPL Memo without signers, as the x402 "exact" client adds after its transfer (a nonce or
    `extra.memo`)."""
    return Instruction(MEMO_PROGRAM_ID, memo.encode() if isinstance(memo, str) else bytes(memo), [])


def build_x402_payment(
    payer: Pubkey,
    agent: Pubkey,
    payment_address: Pubkey,
    mint: Pubkey,
    decimals: int,
    amount: int,
    reference: bytes,
    token_program: Pubkey = TOKEN_PROGRAM_ID,
    *,
    fee_payer: Pubkey | None = None,
    rent_payer: Pubkey | None = None,
    memo: bytes | str | None = None,
    create_payee_account: bool = False,
    compute_unit_limit: int | None = None,
    compute_unit_price: int | None = None,
    program_id: Pubkey = PROGRAM_ID,
) -> list[Instruction]:
    """The instructions of one paid call, in the order the program requires.

    Compute-budget instructions (optional), the payee's associated token account
    created idempotently (optional, paid by `fee_payer` or the payer), the
    TransferChecked from the payer's associated token account, a Memo (optional,
    the official x402 layout), then `record_x402_payment` with its rent from
    `rent_payer` (default: the payer), who pays the PayerStats rent on the pair's
    first payment. With a facilitator as `fee_payer`, the facilitator appears in
    no instruction but the optional account creation and, when it fronts that
    rent, as `rent_payer`.
    """
    instructions = []
    if compute_unit_limit is not None:
        instructions.append(set_compute_unit_limit(compute_unit_limit))
    if compute_unit_price is not None:
        instructions.append(set_compute_unit_price(compute_unit_price))
    source = associated_token_address(payer, mint, token_program)
    destination = associated_token_address(payment_address, mint, token_program)
    if create_payee_account:
        instructions.append(
            create_idempotent_associated_token_account(fee_payer or payer, payment_address, mint, token_program)
        )
    instructions.append(
        transfer_checked(
            TransferCheckedParams(
                program_id=token_program,
                source=source,
                mint=mint,
                dest=destination,
                owner=payer,
                amount=amount,
                decimals=decimals,
            )
        )
    )
    if memo is not None:
        instructions.append(build_memo(memo))
    instructions.append(
        build_record_x402_payment(
            agent, payer, amount, reference, source, mint, destination, rent_payer=rent_payer, program_id=program_id
        )
    )
    return instructions
