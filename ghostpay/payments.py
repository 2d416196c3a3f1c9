"""Instructions of an x402 payment on Solana: the "exact" scheme's TransferChecked
followed by `record_x402_payment`, which the program only accepts right after a
transfer that really paid the agent.

    >>> from solders.pubkey import Pubkey
    >>> payer, agent, pay_to, mint = (Pubkey.new_unique() for _ in range(4))
    >>> ixs = build_x402_payment(payer, agent, pay_to, mint, decimals=6, amount=10_000, reference=bytes(32),
    ...                          compute_unit_limit=30_000)
    >>> [str(ix.program_id)[:8] for ix in ixs]
    ['ComputeB', 'Tokenkeg', 'GPycXcaR']
"""

from __future__ import annotations

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import Instruction
from solders.pubkey import Pubkey
from solders.sysvar import INSTRUCTIONS
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import (
    TransferCheckedParams,
    create_idempotent_associated_token_account,
    get_associated_token_address,
    transfer_checked,
)

from ghostpay.instructions import record_x402_payment
from ghostpay.pda import receipt_address, reputation_address
from ghostpay.program_id import PROGRAM_ID


def build_record_x402_payment(agent: Pubkey, payer: Pubkey, amount: int, reference: bytes,
                              program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """`record_x402_payment`; valid only right after the TransferChecked that paid `amount`."""
    receipt, _ = receipt_address(agent, reference, program_id)
    reputation, _ = reputation_address(agent, program_id)
    return record_x402_payment(
        {"amount": amount, "reference": list(reference)},
        {"agent": agent, "reputation": reputation, "receipt": receipt, "payer": payer,
         "instructions_sysvar": INSTRUCTIONS},
        program_id=program_id,
    )


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
    create_payee_account: bool = False,
    compute_unit_limit: int | None = None,
    compute_unit_price: int | None = None,
    program_id: Pubkey = PROGRAM_ID,
) -> list[Instruction]:
    """The instructions of one paid call, in the order the program requires.

    Compute-budget instructions (optional), the payee's associated token account
    created idempotently (optional, paid by `fee_payer` or the payer), the
    TransferChecked from the payer's associated token account, then
    `record_x402_payment`. With a facilitator as `fee_payer`, the facilitator
    appears in no instruction but the optional account creation.
    """
    instructions = []
    if compute_unit_limit is not None:
        instructions.append(set_compute_unit_limit(compute_unit_limit))
    if compute_unit_price is not None:
        instructions.append(set_compute_unit_price(compute_unit_price))
    destination = get_associated_token_address(payment_address, mint, token_program)
    if create_payee_account:
        instructions.append(create_idempotent_associated_token_account(
            fee_payer or payer, payment_address, mint, token_program))
    instructions.append(transfer_checked(TransferCheckedParams(
        program_id=token_program,
        source=get_associated_token_address(payer, mint, token_program),
        mint=mint,
        dest=destination,
        owner=payer,
        amount=amount,
        decimals=decimals,
    )))
    instructions.append(build_record_x402_payment(agent, payer, amount, reference, program_id))
    return instructions
