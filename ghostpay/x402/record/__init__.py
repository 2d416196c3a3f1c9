"""GhostPay's record extension for x402: `record_x402_payment` right after the Memo of the exact payment.

In the shape of the official package's `x402.extensions.<name>`: `types` (names shared by all sides),
`client` (the buyer adds the record; `RecordClientExtension` for an unchanged official `x402Client`),
`server` (the seller offers it in `extra.ghostpay`), `facilitator` (the checks of the record instruction
and of rent fronting).
"""

from ghostpay.x402.record.client import (
    RECORD_REFUSED,
    RecordClientExtension,
    add_ghostpay_record,
    names_recorded,
    record_hint,
)
from ghostpay.x402.record.facilitator import (
    RECORD_REFUSALS,
    RecordExtension,
    accept_record_instruction,
    fronted_account,
    has_record_instruction,
    without_record,
)
from ghostpay.x402.record.server import declare_record_extension, records_payment_for
from ghostpay.x402.record.types import (
    ERR_RECORD_INVALID,
    ERR_RENT_NOT_FRONTED,
    EXTENSION_FRONT_RENT,
    EXTENSION_RECORD,
    FRONT_RENT_EXTENSION,
    HINT_KEY,
    RECORD_COMPUTE_UNITS,
    RECORD_EXTENSION,
    RecordedPayment,
    RecordHint,
)

__all__ = [
    "ERR_RECORD_INVALID",
    "ERR_RENT_NOT_FRONTED",
    "EXTENSION_FRONT_RENT",
    "EXTENSION_RECORD",
    "FRONT_RENT_EXTENSION",
    "HINT_KEY",
    "RECORD_COMPUTE_UNITS",
    "RECORD_EXTENSION",
    "RECORD_REFUSALS",
    "RECORD_REFUSED",
    "RecordClientExtension",
    "RecordExtension",
    "RecordHint",
    "RecordedPayment",
    "accept_record_instruction",
    "add_ghostpay_record",
    "declare_record_extension",
    "fronted_account",
    "has_record_instruction",
    "record_hint",
    "names_recorded",
    "records_payment_for",
    "without_record",
]
