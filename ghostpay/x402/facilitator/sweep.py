"""A bounded sweep of the legacy receipts whose rent this facilitator's fee payer fronted.

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
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from ghostpay.accounts import X402Receipt
from ghostpay.instructions import close_receipt

# legacy X402Receipt: discriminator, agent, payer, rent_payer, mint, reference, amount, paid_at, registration,
# feedback_submitted, bump
RECEIPT_RENT_PAYER_OFFSET = 8 + 32 + 32
RECEIPT_PAID_AT_OFFSET = 8 + 32 * 4 + 32 + 8
RECEIPT_FEEDBACK_OFFSET = RECEIPT_PAID_AT_OFFSET + 8 + 8


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
            self.program_id,
            Confirmed,
            "base64",
            data_slice=DataSliceOpts(RECEIPT_PAID_AT_OFFSET, RECEIPT_FEEDBACK_OFFSET + 1 - RECEIPT_PAID_AT_OFFSET),
            filters=[
                MemcmpOpts(0, based58.b58encode(X402Receipt.discriminator).decode()),
                MemcmpOpts(RECEIPT_RENT_PAYER_OFFSET, str(self.fee_payer.pubkey())),
            ],
        ).value
        for keyed in found:
            data = bytes(keyed.account.data)
            paid_at = struct.unpack_from("<q", data, 0)[0]
            rated = data[RECEIPT_FEEDBACK_OFFSET - RECEIPT_PAID_AT_OFFSET]
            self.pending.append(
                SweptReceipt(0 if rated else paid_at + self.feedback_window, keyed.pubkey, keyed.account.lamports)
            )
        heapq.heapify(self.pending)
        self.listed = True

    def closable(self) -> list[SweptReceipt]:
        """The listed receipts due now that still exist (their payer may have closed some), at most PER_PASS."""
        if not self.listed:
            self.list_fronted()
        now = self.chain_time()
        due: list[SweptReceipt] = []
        while self.pending and self.pending[0].closable_at <= now and len(due) < self.PER_PASS:
            due.append(heapq.heappop(self.pending))
        live = []
        for start in range(0, len(due), 100):  # getMultipleAccounts takes at most 100
            chunk = due[start : start + 100]
            accounts = self.rpc.get_multiple_accounts(
                [r.address for r in chunk], Confirmed, "base64", DataSliceOpts(0, 0)
            ).value
            live += [
                r
                for r, account in zip(chunk, accounts, strict=True)
                if account is not None and account.owner == self.program_id
            ]
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
            batch = ready[start : start + self.BATCH]
            ixs = [
                close_receipt({"receipt": r.address, "authority": payer, "rent_payer": payer}, self.program_id)
                for r in batch
            ]
            blockhash = Hash.from_string(str(self.rpc.get_latest_blockhash(Confirmed).value.blockhash))
            tx = Transaction([self.fee_payer], Message.new_with_blockhash(ixs, payer, blockhash), blockhash)
            signature = self.rpc.send_transaction(tx).value
            self.rpc.confirm_transaction(signature, Confirmed, sleep_seconds=0.1)
            self.closed += len(batch)
            self.reclaimed_lamports += sum(r.lamports for r in batch)
        return ready
