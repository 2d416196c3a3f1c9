"""The names and values GhostPay's record extension shares between its client, server and facilitator sides.

The extension: a GhostPay buyer appends the program's `record_x402_payment` right after the Memo of the
official "exact" transaction, [limit, price, TransferChecked, Memo, record], so the settled payment is
recorded on chain (the agent's reputation, the buyer's PayerStats). A facilitator that accepts it says so
in `/supported` (`EXTENSION_RECORD`, and `EXTENSION_FRONT_RENT` when its fee payer pays the rent of a
buyer's PayerStats); the seller passes that on in each requirement's `extra.ghostpay` (`HINT_KEY`).
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.pubkey import Pubkey
from x402.interfaces import FacilitatorExtension

EXTENSION_RECORD = "ghostpay-record-x402-payment"  # advertised in /supported: the record may follow the Memo
EXTENSION_FRONT_RENT = "ghostpay-front-receipt-rent"  # ... and the fee payer may pay the PayerStats rent
RECORD_EXTENSION = FacilitatorExtension(key=EXTENSION_RECORD)  # for x402Facilitator.register_extension
FRONT_RENT_EXTENSION = FacilitatorExtension(key=EXTENSION_FRONT_RENT)

# A facilitator's refusals of the record instruction itself.
ERR_RECORD_INVALID = "ghostpay_record_instruction_invalid"
ERR_RENT_NOT_FRONTED = "ghostpay_receipt_rent_not_fronted"

# Where a requirement's `extra` carries the seller's offer: {agent, programId, recordAfterMemo, rentPayer?}.
HINT_KEY = "ghostpay"

# The instructions of a recorded payment.
TRANSFER_INDEX, MEMO_INDEX, RECORD_INDEX = 2, 3, 4

# record_x402_payment when the pair's first payment creates its PayerStats: about 5,100 CU, at most about 5,700
# (bench/compute_units.py), with a margin (later payments need about 2,600); the official limit (20,000) leaves
# 778 CU after TransferChecked (6,147) and the Memo (12,775)
RECORD_COMPUTE_UNITS = 8_000


@dataclass(frozen=True)
class RecordHint:
    """What the seller's `extra.ghostpay` says about GhostPay's record: the agent, and who pays the rent of
    the buyer's PayerStats if this payment creates it (the facilitator when it fronts it, else the buyer)."""

    agent: Pubkey
    rent_payer: Pubkey | None


@dataclass(frozen=True)
class RecordedPayment:
    """The payment transaction with `record_x402_payment` added, its reference, and the buyer's PayerStats."""

    transaction: str  # base64, signed by the buyer, the fee payer's slot empty
    reference: bytes
    payer_stats: Pubkey
