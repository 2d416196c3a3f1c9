"""The GhostPay extension of the facilitator: `record_x402_payment` right after the Memo.

A GhostPay buyer adds the program's record instruction to the official "exact" transaction:
[limit, price, TransferChecked, Memo, record_x402_payment]. Every unmodified official facilitator
refuses a fifth instruction that is not a Memo; this one accepts exactly this one, as the last
instruction right after the Memo, when `accept_record_instruction` says so. The official checks then
run on the transaction without it (so nothing else extra is let through), while signing, simulating
and sending use the whole transaction, so the program checks the payment on chain.

The fee payer may be the record's `rent_payer` and nothing else. No account is made per payment: the
rent payer pays only for the buyer's PayerStats ["payer_stats", agent, buyer] (137 bytes, about 0.0018
SOL), once, when the pair's first payment creates it (`payer_stats_of` names it, so a policy can tell
whether a settle fronts rent); every later payment of the pair costs the fee payer the fee alone. The
fee payer gets that rent back with close_payer_stats once the pair has been idle for the feedback window.

`ReceiptSweep` closes the legacy receipts (X402Receipt, one per payment, made by the program before
PayerStats) whose rent this fee payer fronted, once each may be closed. It reads them once (only the
fields it needs), closes a bounded number per pass, and ends when none is left: no new ones are made.
"""

from __future__ import annotations

import heapq
import struct
import time
from dataclasses import dataclass, field

import based58
from solana.rpc.api import Client
from solana.rpc.commitment import Confirmed
from solana.rpc.types import DataSliceOpts, MemcmpOpts
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
EXTENSION_FRONT_RENT = "ghostpay-front-receipt-rent"  # ... and the fee payer may pay the PayerStats rent

ERR_RECORD_INVALID = "ghostpay_record_instruction_invalid"
ERR_RENT_NOT_FRONTED = "ghostpay_receipt_rent_not_fronted"

_probe = build_record_x402_payment(Pubkey.default(), Pubkey.default(), 0, bytes(32), Pubkey.default(),
                                   Pubkey.default(), Pubkey.default())
RECORD_DISCRIMINATOR = bytes(_probe.data[:8])
RECORD_DATA_LEN = len(_probe.data)  # discriminator, u64 amount, 32-byte reference
# record_x402_payment's accounts: agent, reputation, payer_stats, payer, rent_payer, payee_token_account,
# source_token_account, mint, instructions_sysvar, system_program
RECORD_ACCOUNTS = len(_probe.accounts)
AGENT, PAYER_STATS, PAYER, RENT_PAYER, PAYEE_TOKEN_ACCOUNT, SOURCE_TOKEN_ACCOUNT, MINT, SYSVAR, SYSTEM = \
    0, 2, 3, 4, 5, 6, 7, 8, 9
# TransferChecked's accounts: source, mint, destination, authority
TRANSFER_SOURCE, TRANSFER_MINT, TRANSFER_DESTINATION, TRANSFER_AUTHORITY = 0, 1, 2, 3
TRANSFER_INDEX, MEMO_INDEX, RECORD_INDEX = 2, 3, 4

# legacy X402Receipt: discriminator, agent, payer, rent_payer, mint, reference, amount, paid_at, registration,
# feedback_submitted, bump
RECEIPT_RENT_PAYER_OFFSET = 8 + 32 + 32
RECEIPT_PAID_AT_OFFSET = 8 + 32 * 4 + 32 + 8
RECEIPT_FEEDBACK_OFFSET = RECEIPT_PAID_AT_OFFSET + 8 + 8


def accept_record_instruction(tx: VersionedTransaction, fee_payers: set[str], program_id: Pubkey,
                              front_rent: bool, agent: str | None = None) -> str | None:
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


def payer_stats_of(tx: VersionedTransaction) -> Pubkey:
    """The PayerStats an accepted record instruction names: if it does not exist when the transaction lands, the
    transaction creates it, its rent paid by the record's rent payer (call after `accept_record_instruction`)."""
    message = tx.message
    record = message.instructions[RECORD_INDEX]
    return message.account_keys[bytes(record.accounts)[PAYER_STATS]]


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


@dataclass(frozen=True, order=True)
class SweptReceipt:
    closable_at: int  # unix time from which the program lets its rent payer close it
    address: Pubkey = field(compare=False)
    lamports: int = field(compare=False)


class ReceiptSweep:
    """Closes the legacy receipts whose rent the fee payer fronted, once the program lets it: after the
    payer's feedback, or after the feedback window (FEEDBACK_WINDOW_SECONDS of the cluster's clock).

    Bounded: the receipts are listed once (getProgramAccounts with only paid_at, registration and
    feedback_submitted in the answer), kept as a heap ordered by when each may close, and each pass
    closes at most `PER_PASS` of those due. The program makes no new receipts, so once the heap is empty
    the sweep is `finished` and a pass reads nothing."""

    BATCH = 8  # close_receipt instructions per transaction
    PER_PASS = 256  # receipts closed per pass at most

    def __init__(self, rpc: Client, fee_payer: Keypair, program_id: Pubkey, feedback_window: int) -> None:
        self.rpc = rpc
        self.fee_payer = fee_payer
        self.program_id = program_id
        self.feedback_window = feedback_window
        self.closed = 0
        self.reclaimed_lamports = 0
        self.listed = False
        self.pending: list[SweptReceipt] = []  # a heap by closable_at

    @property
    def finished(self) -> bool:
        return self.listed and not self.pending

    def list_fronted(self) -> None:
        """Read the fronted receipts once: their address, lamports and when each may close."""
        found = self.rpc.get_program_accounts(
            self.program_id, Confirmed, "base64",
            data_slice=DataSliceOpts(RECEIPT_PAID_AT_OFFSET, RECEIPT_FEEDBACK_OFFSET + 1 - RECEIPT_PAID_AT_OFFSET),
            filters=[MemcmpOpts(0, based58.b58encode(X402Receipt.discriminator).decode()),
                     MemcmpOpts(RECEIPT_RENT_PAYER_OFFSET, str(self.fee_payer.pubkey()))]).value
        for keyed in found:
            data = bytes(keyed.account.data)
            paid_at = struct.unpack_from("<q", data, 0)[0]
            rated = data[RECEIPT_FEEDBACK_OFFSET - RECEIPT_PAID_AT_OFFSET]
            self.pending.append(SweptReceipt(0 if rated else paid_at + self.feedback_window, keyed.pubkey,
                                             keyed.account.lamports))
        heapq.heapify(self.pending)
        self.listed = True

    def closable(self) -> list[SweptReceipt]:
        """The listed receipts due now that still exist (their payer may have closed some), at most PER_PASS."""
        if not self.listed:
            self.list_fronted()
        now = self.chain_time()
        due = []
        while self.pending and self.pending[0].closable_at <= now and len(due) < self.PER_PASS:
            due.append(heapq.heappop(self.pending))
        live = []
        for start in range(0, len(due), 100):  # getMultipleAccounts takes at most 100
            chunk = due[start:start + 100]
            accounts = self.rpc.get_multiple_accounts([r.address for r in chunk], Confirmed, "base64",
                                                      DataSliceOpts(0, 0)).value
            live += [r for r, account in zip(chunk, accounts) if account is not None and account.owner == self.program_id]
        return live

    def chain_time(self) -> int:
        slot = self.rpc.get_slot(Confirmed).value
        block_time = self.rpc.get_block_time(slot).value
        return int(block_time if block_time is not None else time.time())

    def run_once(self) -> list[SweptReceipt]:
        """Close the receipts due now (at most PER_PASS); returns those closed. Nothing is read once finished."""
        if self.finished:
            return []
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
