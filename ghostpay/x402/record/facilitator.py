"""The facilitator's side of GhostPay's record extension: `record_x402_payment` right after the Memo.

A GhostPay buyer adds the program's record instruction to the official "exact" transaction:
[limit, price, TransferChecked, Memo, record_x402_payment]. Every unmodified official facilitator
refuses a fifth instruction that is not a Memo; this one accepts exactly this one, as the last
instruction right after the Memo, when `accept_record_instruction` says so. The official checks then
run on the transaction without it (so nothing else extra is let through), while signing, simulating
and sending use the whole transaction, so the program checks the payment on chain.

The fee payer may be the record's `rent_payer` and nothing else. No account is made per payment: the
rent payer pays only for the buyer's PayerStats ["payer_stats", agent, buyer] (137 bytes, about 0.0018
SOL), once, when the pair's first payment creates it (`fronted_account` names it, so a policy can tell
whether a settle fronts rent); every later payment of the pair costs the fee payer the fee alone. The
fee payer gets that rent back with close_payer_stats once the pair has been idle for the feedback window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.sysvar import INSTRUCTIONS
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID

from ghostpay.artifacts import idl_dict
from ghostpay.payments import build_record_x402_payment
from ghostpay.x402.record.types import (
    ERR_RECORD_INVALID,
    ERR_RENT_NOT_FRONTED,
    HINT_KEY,
    MEMO_INDEX,
    RECORD_INDEX,
    TRANSFER_INDEX,
)

RECORD_REFUSALS = {
    ERR_RECORD_INVALID: "an instruction after the Memo that is not an acceptable record_x402_payment",
    ERR_RENT_NOT_FRONTED: "the record names the fee payer as rent payer, for a seller whose key does not "
    "allow rent fronting (or with --no-front-rent)",
}

_probe = build_record_x402_payment(
    Pubkey.default(), Pubkey.default(), 0, bytes(32), Pubkey.default(), Pubkey.default(), Pubkey.default()
)
RECORD_DISCRIMINATOR = bytes(_probe.data[:8])
RECORD_DATA_LEN = len(_probe.data)  # discriminator, u64 amount, 32-byte reference
_ACCOUNTS = [
    a["name"] for a in next(i for i in idl_dict()["instructions"] if i["name"] == "record_x402_payment")["accounts"]
]
RECORD_ACCOUNTS = len(_ACCOUNTS)
AGENT, PAYER_STATS, PAYER, RENT_PAYER, PAYEE_TOKEN_ACCOUNT, SOURCE_TOKEN_ACCOUNT, MINT, SYSVAR, SYSTEM = (
    _ACCOUNTS.index(name)
    for name in (
        "agent",
        "payer_stats",
        "payer",
        "rent_payer",
        "payee_token_account",
        "source_token_account",
        "mint",
        "instructions_sysvar",
        "system_program",
    )
)
# TransferChecked's accounts: source, mint, destination, authority
TRANSFER_SOURCE, TRANSFER_MINT, TRANSFER_DESTINATION, TRANSFER_AUTHORITY = 0, 1, 2, 3


def accept_record_instruction(
    tx: VersionedTransaction, fee_payers: set[str], program_id: Pubkey, front_rent: bool, agent: str | None = None
) -> str | None:
    """Why the last instruction of `tx` is not an acceptable `record_x402_payment`, or None.

    Acceptable: the fifth and last instruction, right after the Memo; the GhostPay program's record
    instruction with exactly its accounts and arguments; its payer the transfer's authority, its
    payee account, source account and mint the transfer's destination, source and mint, and its
    amount the transfer's; for the seller's `agent`
    when the requirements name one (agents of one owner share a payee account: a payment for one must
    not build another's reputation); the fee payer nowhere in it but, when the facilitator fronts
    the PayerStats rent, as the rent payer."""
    message = tx.message
    if not isinstance(message, MessageV0):  # the exact scheme's transactions are v0
        return ERR_RECORD_INVALID
    keys = list(message.account_keys)
    ixs = list(message.instructions)
    if len(ixs) != RECORD_INDEX + 1 or keys[ixs[MEMO_INDEX].program_id_index] != MEMO_PROGRAM_ID:
        return ERR_RECORD_INVALID
    record, transfer = ixs[RECORD_INDEX], ixs[TRANSFER_INDEX]
    accounts, data = bytes(record.accounts), bytes(record.data)
    if (
        keys[record.program_id_index] != program_id
        or len(data) != RECORD_DATA_LEN
        or data[:8] != RECORD_DISCRIMINATOR
        or len(accounts) != RECORD_ACCOUNTS
    ):
        return ERR_RECORD_INVALID
    if keys[accounts[SYSVAR]] != INSTRUCTIONS or keys[accounts[SYSTEM]] != SYSTEM_PROGRAM_ID:
        return ERR_RECORD_INVALID
    transfer_accounts, transfer_data = bytes(transfer.accounts), bytes(transfer.data)
    if len(transfer_accounts) <= TRANSFER_AUTHORITY or len(transfer_data) < 9:
        return ERR_RECORD_INVALID
    if (
        accounts[PAYER] != transfer_accounts[TRANSFER_AUTHORITY]
        or accounts[PAYEE_TOKEN_ACCOUNT] != transfer_accounts[TRANSFER_DESTINATION]
        or accounts[SOURCE_TOKEN_ACCOUNT] != transfer_accounts[TRANSFER_SOURCE]
        or accounts[MINT] != transfer_accounts[TRANSFER_MINT]
        or data[8:16] != transfer_data[1:9]
    ):
        return ERR_RECORD_INVALID
    if agent is not None and str(keys[accounts[AGENT]]) != agent:
        return ERR_RECORD_INVALID
    payer_keys = {Pubkey.from_string(f) for f in fee_payers}
    for position, index in enumerate(accounts):
        if keys[index] in payer_keys:
            if position != RENT_PAYER:
                return ERR_RECORD_INVALID
            if not front_rent:
                return ERR_RENT_NOT_FRONTED
    return None


def has_record_instruction(tx: VersionedTransaction, program_id: Pubkey) -> bool:
    """Whether the transaction's last instruction is a call to the GhostPay program (to be accepted or refused)."""
    ixs = tx.message.instructions
    return len(ixs) > RECORD_INDEX and tx.message.account_keys[ixs[-1].program_id_index] == program_id


def without_record(tx: VersionedTransaction) -> VersionedTransaction:
    """The same transaction without its last instruction: what the official checks see."""
    m = tx.message
    assert isinstance(m, MessageV0)  # accept_record_instruction refuses others
    stripped = MessageV0(
        m.header, list(m.account_keys), m.recent_blockhash, list(m.instructions)[:-1], list(m.address_table_lookups)
    )
    return VersionedTransaction.populate(stripped, list(tx.signatures))


def fronted_account(tx: VersionedTransaction, fee_payers: set[str]) -> str | None:
    """The PayerStats whose rent the fee payer would pay if the payment opens it (a pair's first payment):
    the last instruction is an accepted record instruction (the caller checked) and names a fee payer as
    its rent payer; else None."""
    message = tx.message
    accounts = bytes(message.instructions[-1].accounts)
    if (
        len(accounts) <= max(PAYER_STATS, RENT_PAYER)
        or str(message.account_keys[accounts[RENT_PAYER]]) not in fee_payers
    ):
        return None
    return str(message.account_keys[accounts[PAYER_STATS]])


@dataclass(frozen=True)
class RecordExtension:
    """The extension as a facilitator runs it: which program's record instruction may follow the Memo, and
    whether the fee payer fronts the rent of a buyer's PayerStats (paid once, by the pair's first payment)."""

    program_id: Pubkey
    front_rent: bool

    def records(self, tx: VersionedTransaction) -> bool:
        """Whether `tx` ends with this program's record instruction (acceptable or not)."""
        return has_record_instruction(tx, self.program_id)

    def refusal(
        self, tx: VersionedTransaction, fee_payers: set[str], requirements: Any, may_front_rent: bool
    ) -> tuple[str, str] | None:
        """(reason, message) when the record instruction ending `tx` is not acceptable for `requirements`
        (their `extra.ghostpay.agent`), from a caller that may (or may not) have the rent fronted."""
        hints = (requirements.extra or {}).get(HINT_KEY)
        agent = hints.get("agent") if isinstance(hints, dict) else None
        front_rent = self.front_rent and may_front_rent
        reason = accept_record_instruction(
            tx, fee_payers, self.program_id, front_rent, agent if isinstance(agent, str) else None
        )
        if reason is None:
            return None
        return (
            reason,
            "record_x402_payment is accepted only as the last instruction, right after the "
            "Memo, recording the transfer before it"
            + ("" if front_rent else ", with the payer paying the PayerStats rent"),
        )
