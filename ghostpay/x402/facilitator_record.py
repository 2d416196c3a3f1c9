"""The GhostPay extension of the facilitator: `record_x402_payment` right after the Memo.

A GhostPay buyer adds the program's record instruction to the official "exact" transaction:
[limit, price, TransferChecked, Memo, record_x402_payment]. Every unmodified official facilitator
refuses a fifth instruction that is not a Memo; this one accepts exactly this one, as the last
instruction right after the Memo, when `accept_record_instruction` says so. The official checks then
run on the transaction without it (so nothing else extra is let through), while signing, simulating
and sending use the whole transaction, so the program checks the payment on chain.

The fee payer may be the record's `rent_payer` (it fronts the receipt's rent, about 0.0022 SOL) and
nothing else; `ReceiptSweep` gets that rent back by closing those receipts once the program allows it
(after feedback, or after the feedback window).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

import based58
from solana.rpc.api import Client
from solana.rpc.commitment import Confirmed
from solana.rpc.types import MemcmpOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.sysvar import INSTRUCTIONS
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.transaction import Transaction, VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID

from ghostpay.accounts import X402Receipt
from ghostpay.instructions import close_receipt
from ghostpay.payments import build_record_x402_payment

EXTENSION_RECORD = "ghostpay-record-x402-payment"  # advertised in /supported: the record may follow the Memo
EXTENSION_FRONT_RENT = "ghostpay-front-receipt-rent"  # ... and the fee payer may pay the receipt's rent

ERR_RECORD_INVALID = "ghostpay_record_instruction_invalid"
ERR_RENT_NOT_FRONTED = "ghostpay_receipt_rent_not_fronted"

_probe = build_record_x402_payment(Pubkey.default(), Pubkey.default(), 0, bytes(32), Pubkey.default(),
                                   Pubkey.default(), Pubkey.default())
RECORD_DISCRIMINATOR = bytes(_probe.data[:8])
RECORD_DATA_LEN = len(_probe.data)  # discriminator, u64 amount, 32-byte reference
# record_x402_payment's accounts: agent, reputation, receipt, payer, rent_payer, payee_token_account,
# source_token_account, mint, instructions_sysvar, system_program
RECORD_ACCOUNTS = len(_probe.accounts)
AGENT, PAYER, RENT_PAYER, PAYEE_TOKEN_ACCOUNT, SOURCE_TOKEN_ACCOUNT, MINT, SYSVAR, SYSTEM = 0, 3, 4, 5, 6, 7, 8, 9
# TransferChecked's accounts: source, mint, destination, authority
TRANSFER_SOURCE, TRANSFER_MINT, TRANSFER_DESTINATION, TRANSFER_AUTHORITY = 0, 1, 2, 3
TRANSFER_INDEX, MEMO_INDEX, RECORD_INDEX = 2, 3, 4

RECEIPT_RENT_PAYER_OFFSET = 8 + 32 + 32  # discriminator, agent, payer
RECEIPT_PAID_AT_OFFSET = 8 + 32 * 4 + 32 + 8  # ..., rent_payer, mint, reference, amount
RECEIPT_FEEDBACK_OFFSET = RECEIPT_PAID_AT_OFFSET + 8 + 8  # ..., paid_at, registration


def accept_record_instruction(tx: VersionedTransaction, fee_payers: set[str], program_id: Pubkey,
                              front_rent: bool, agent: str | None = None) -> str | None:
    """Why the last instruction of `tx` is not an acceptable `record_x402_payment`, or None.

    Acceptable: the fifth and last instruction, right after the Memo; the GhostPay program's record
    instruction with exactly its accounts and arguments; its payer the transfer's authority, its
    payee account, source account and mint the transfer's destination, source and mint, and its
    amount the transfer's; for the seller's `agent`
    when the requirements name one (agents of one owner share a payee account: a payment for one must
    not build another's reputation); the fee payer nowhere in it but, when the facilitator fronts
    receipt rent, as the rent payer."""
    message = tx.message
    if not isinstance(message, MessageV0):  # the exact scheme's transactions are v0
        return ERR_RECORD_INVALID
    keys = list(message.account_keys)
    ixs = list(message.instructions)
    if len(ixs) != RECORD_INDEX + 1 or keys[ixs[MEMO_INDEX].program_id_index] != MEMO_PROGRAM_ID:
        return ERR_RECORD_INVALID
    record, transfer = ixs[RECORD_INDEX], ixs[TRANSFER_INDEX]
    accounts, data = bytes(record.accounts), bytes(record.data)
    if keys[record.program_id_index] != program_id or len(data) != RECORD_DATA_LEN or \
            data[:8] != RECORD_DISCRIMINATOR or len(accounts) != RECORD_ACCOUNTS:
        return ERR_RECORD_INVALID
    if keys[accounts[SYSVAR]] != INSTRUCTIONS or keys[accounts[SYSTEM]] != SYSTEM_PROGRAM_ID:
        return ERR_RECORD_INVALID
    transfer_accounts, transfer_data = bytes(transfer.accounts), bytes(transfer.data)
    if len(transfer_accounts) <= TRANSFER_AUTHORITY or len(transfer_data) < 9:
        return ERR_RECORD_INVALID
    if accounts[PAYER] != transfer_accounts[TRANSFER_AUTHORITY] or \
            accounts[PAYEE_TOKEN_ACCOUNT] != transfer_accounts[TRANSFER_DESTINATION] or \
            accounts[SOURCE_TOKEN_ACCOUNT] != transfer_accounts[TRANSFER_SOURCE] or \
            accounts[MINT] != transfer_accounts[TRANSFER_MINT] or data[8:16] != transfer_data[1:9]:
        return ERR_RECORD_INVALID
    if agent is not None and str(keys[accounts[AGENT]]) != agent:
        return ERR_RECORD_INVALID
    for position, index in enumerate(accounts):
        if str(keys[index]) in fee_payers:
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
    m = tx.message  # a v0 message: accept_record_instruction refuses others
    stripped = MessageV0(m.header, list(m.account_keys), m.recent_blockhash, list(m.instructions)[:-1],
                         list(m.address_table_lookups))
    return VersionedTransaction.populate(stripped, list(tx.signatures))


@dataclass(frozen=True)
class SweptReceipt:
    address: Pubkey
    lamports: int


class ReceiptSweep:
    """Closes the receipts whose rent the fee payer fronted, once the program lets it: after the
    payer's feedback, or after the feedback window (FEEDBACK_WINDOW_SECONDS of the cluster's clock)."""

    BATCH = 8  # close_receipt instructions per transaction

    def __init__(self, rpc: Client, fee_payer: Keypair, program_id: Pubkey, feedback_window: int) -> None:
        self.rpc = rpc
        self.fee_payer = fee_payer
        self.program_id = program_id
        self.feedback_window = feedback_window
        self.closed = 0
        self.reclaimed_lamports = 0

    def closable(self) -> list[SweptReceipt]:
        found = self.rpc.get_program_accounts(self.program_id, Confirmed, "base64", filters=[
            MemcmpOpts(0, based58.b58encode(X402Receipt.discriminator).decode()),
            MemcmpOpts(RECEIPT_RENT_PAYER_OFFSET, str(self.fee_payer.pubkey()))]).value
        now = self.chain_time()
        ready = []
        for keyed in found:
            data = bytes(keyed.account.data)
            paid_at = struct.unpack_from("<q", data, RECEIPT_PAID_AT_OFFSET)[0]
            if data[RECEIPT_FEEDBACK_OFFSET] or now >= paid_at + self.feedback_window:
                ready.append(SweptReceipt(keyed.pubkey, keyed.account.lamports))
        return ready

    def chain_time(self) -> int:
        slot = self.rpc.get_slot(Confirmed).value
        block_time = self.rpc.get_block_time(slot).value
        return int(block_time if block_time is not None else time.time())

    def run_once(self) -> list[SweptReceipt]:
        """Close every closable receipt now; returns those closed."""
        ready = self.closable()
        payer = self.fee_payer.pubkey()
        for start in range(0, len(ready), self.BATCH):
            batch = ready[start:start + self.BATCH]
            ixs = [close_receipt({"receipt": r.address, "authority": payer, "rent_payer": payer}, self.program_id)
                   for r in batch]
            blockhash = Hash.from_string(str(self.rpc.get_latest_blockhash(Confirmed).value.blockhash))
            tx = Transaction([self.fee_payer], Message.new_with_blockhash(ixs, payer, blockhash), blockhash)
            signature = self.rpc.send_transaction(tx).value
            self.rpc.confirm_transaction(signature, Confirmed, sleep_seconds=0.1)
            self.closed += len(batch)
            self.reclaimed_lamports += sum(r.lamports for r in batch)
        return ready
