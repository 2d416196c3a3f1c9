"""The seller's side of GhostPay's record extension: offering it in each requirement, and telling whether a
payment carries it.

The offer rides in `extra.ghostpay` of every requirement, not in `PaymentRequired.extensions`: the record
changes the transaction the facilitator verifies, so it is a term of the requirement the buyer pays.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from ghostpay.x402.record.types import EXTENSION_FRONT_RENT, EXTENSION_RECORD


def declare_record_extension(
    agent: Pubkey, program_id: Pubkey, fee_payer: str, facilitator_extensions: Collection[str]
) -> dict[str, Any]:
    """`extra.ghostpay`: what a GhostPay buyer needs to add the record. `recordAfterMemo` when the facilitator
    advertises the extension (it accepts `record_x402_payment` after the Memo); `rentPayer` (its fee payer)
    when it also fronts the rent of the buyer's PayerStats (once per buyer and agent)."""
    hints: dict[str, Any] = {
        "agent": str(agent),
        "programId": str(program_id),
        "recordAfterMemo": EXTENSION_RECORD in facilitator_extensions,
    }
    if EXTENSION_FRONT_RENT in facilitator_extensions:
        hints["rentPayer"] = fee_payer
    return hints


def records_payment_for(tx: VersionedTransaction, program_id: Pubkey, agent: Pubkey) -> bool:
    """Whether an instruction of the GhostPay program in `tx` records the payment for `agent` (its first account)."""
    keys = tx.message.account_keys
    return any(
        keys[ix.program_id_index] == program_id and ix.accounts and keys[ix.accounts[0]] == agent
        for ix in tx.message.instructions
    )
