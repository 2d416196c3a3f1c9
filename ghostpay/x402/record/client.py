"""The buyer's side of GhostPay's record extension: `record_x402_payment` appended after the Memo of the
official exact payment, when the seller's requirement asks for it.

GhostPay's buyer (`ghostpay.x402.buyer`) calls `add_ghostpay_record` itself (it also falls back to the plain
payment when a facilitator refuses the record). An unchanged official client adds it by registering the
extension, which the package calls on every v2 payload it creates (`enrich_payment_payload`):

    client = x402Client()
    register_exact_svm_client(client, KeypairSigner(keypair))
    client.register_extension(RecordClientExtension(keypair))
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from solders.compute_budget import set_compute_unit_limit
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from x402.mechanisms.svm.constants import (
    COMPUTE_BUDGET_PROGRAM_ADDRESS,
    ERR_INVALID_INSTRUCTION_COUNT,
    ERR_UNKNOWN_FIFTH_INSTRUCTION,
    ERR_UNKNOWN_SIXTH_INSTRUCTION,
)
from x402.schemas import PaymentPayload, PaymentRequired

from ghostpay.payments import build_record_x402_payment
from ghostpay.pda import new_reference, payer_stats_address
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402.record.types import (
    ERR_RECORD_INVALID,
    ERR_RENT_NOT_FRONTED,
    EXTENSION_RECORD,
    HINT_KEY,
    RECORD_COMPUTE_UNITS,
    RecordedPayment,
    RecordHint,
)

# A facilitator's refusals of the record instruction itself (an unchanged official one refuses a fifth
# instruction; ours when it may not front the rent): the buyer then pays once more without it.
RECORD_REFUSED = frozenset(
    {
        ERR_INVALID_INSTRUCTION_COUNT,
        ERR_UNKNOWN_FIFTH_INSTRUCTION,
        ERR_UNKNOWN_SIXTH_INSTRUCTION,
        ERR_RECORD_INVALID,
        ERR_RENT_NOT_FRONTED,
    }
)
COMPUTE_BUDGET = Pubkey.from_string(COMPUTE_BUDGET_PROGRAM_ADDRESS)
SET_COMPUTE_UNIT_LIMIT = 2  # ComputeBudget instruction tag
TRANSFER_CHECKED = 12  # Token instruction tag


def record_hint(extra: Mapping[str, Any], program_id: Pubkey) -> RecordHint | None:
    """GhostPay's record for a requirement with this `extra`, when the seller asks for it: `extra.ghostpay =
    {agent, programId, recordAfterMemo: true, rentPayer?}`; the seller sets `recordAfterMemo` when its
    facilitator advertises the GhostPay extension (it accepts `record_x402_payment` after the Memo)."""
    hint = extra.get(HINT_KEY)
    if (
        not isinstance(hint, dict)
        or hint.get("recordAfterMemo") is not True
        or hint.get("programId") != str(program_id)
    ):
        return None
    try:
        rent_payer = hint.get("rentPayer")
        return RecordHint(
            Pubkey.from_string(str(hint.get("agent"))),
            Pubkey.from_string(rent_payer) if isinstance(rent_payer, str) else None,
        )
    except ValueError:
        return None


def add_ghostpay_record(
    transaction_b64: str, buyer: Keypair, agent: Pubkey, program_id: Pubkey, rent_payer: Pubkey | None = None
) -> RecordedPayment:
    """The official exact payment with `record_x402_payment` appended after its Memo: [compute limit,
    compute price, TransferChecked, Memo, record]. Same blockhash, fee payer and instructions but the
    compute limit, raised by what the record needs. The rent of the buyer's PayerStats, if this is the pair's
    first payment, is paid by `rent_payer` (the facilitator fronting it) or else the buyer, whose account then
    becomes writable; the buyer signs again."""
    tx = VersionedTransaction.from_bytes(base64.b64decode(transaction_b64))
    message = tx.message
    keys, header = list(message.account_keys), message.header
    signers = header.num_required_signatures

    def writable(i: int) -> bool:
        if i < signers:
            return i < signers - header.num_readonly_signed_accounts
        return i < len(keys) - header.num_readonly_unsigned_accounts

    instructions = [
        Instruction(
            keys[ix.program_id_index],
            bytes(ix.data),
            [AccountMeta(keys[a], a < signers, writable(a)) for a in ix.accounts],
        )
        for ix in message.instructions
    ]
    if (
        instructions
        and instructions[0].program_id == COMPUTE_BUDGET
        and instructions[0].data[:1] == bytes([SET_COMPUTE_UNIT_LIMIT])
    ):
        limit = int.from_bytes(instructions[0].data[1:5], "little") + RECORD_COMPUTE_UNITS
        instructions[0] = set_compute_unit_limit(limit)
    transfer = next(ix for ix in instructions if ix.data[:1] == bytes([TRANSFER_CHECKED]))
    amount = int.from_bytes(transfer.data[1:9], "little")
    source, mint, destination = (meta.pubkey for meta in transfer.accounts[:3])
    reference = new_reference()
    instructions.append(
        build_record_x402_payment(
            agent,
            buyer.pubkey(),
            amount,
            reference,
            source,
            mint,
            destination,
            rent_payer=rent_payer,
            program_id=program_id,
        )
    )
    recorded = MessageV0.try_compile(keys[0], instructions, [], message.recent_blockhash)
    signatures = [Signature.default()] * recorded.header.num_required_signatures
    signatures[list(recorded.account_keys).index(buyer.pubkey())] = buyer.sign_message(
        bytes([0x80]) + bytes(recorded)
    )  # a v0 message is signed with its version prefix
    signed = VersionedTransaction.populate(recorded, signatures)
    return RecordedPayment(
        base64.b64encode(bytes(signed)).decode(), reference, payer_stats_address(agent, buyer.pubkey(), program_id)[0]
    )


def names_recorded(signature: str, recorded: RecordedPayment) -> bool:
    """Whether `signature` is the fee payer's over the very message the buyer signed with the record in it: the id
    of that transaction (which carries this reference to the hinted agent), not of another."""
    try:
        claimed = Signature.from_string(signature)
    except ValueError:
        return False
    message = VersionedTransaction.from_bytes(base64.b64decode(recorded.transaction)).message
    return claimed.verify(message.account_keys[0], to_bytes_versioned(message))


class RecordClientExtension:
    """GhostPay's record as an x402 client extension (`x402Client.register_extension`): the package calls
    `enrich_payment_payload` on each v2 payload it created, and this one appends the record when the
    chosen requirement asks for it (any other payload passes unchanged). `last` is the last payment it
    recorded (its reference and the buyer's PayerStats)."""

    key = EXTENSION_RECORD
    hooks = None  # no payment-creation or payment-response hooks
    transport_hooks = None

    def __init__(self, keypair: Keypair, program_id: Pubkey = PROGRAM_ID) -> None:
        self.keypair = keypair
        self.program_id = program_id
        self.last: RecordedPayment | None = None

    def enrich_payment_payload(
        self, payment_payload: PaymentPayload, payment_required: PaymentRequired
    ) -> PaymentPayload:
        hint = record_hint(payment_payload.accepted.extra or {}, self.program_id)
        transaction = payment_payload.payload.get("transaction")
        if hint is None or not isinstance(transaction, str):
            return payment_payload
        self.last = add_ghostpay_record(transaction, self.keypair, hint.agent, self.program_id, hint.rent_payer)
        return payment_payload.model_copy(
            update={"payload": {**payment_payload.payload, "transaction": self.last.transaction}}
        )
