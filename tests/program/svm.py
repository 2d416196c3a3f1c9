"""An in-process chain: LiteSVM (the real Agave runtime) with GhostPay loaded.

Used by the program tests and the compute-unit benchmark (bench/), so it lives
under tests/ and the wheel does not ship it. Results expose logs, compute
units, events decoded with anchorpy's EventParser, and the program error by its
IDL / Anchor name.

    >>> chain = InProcessChain()
    >>> payer = chain.funded_keypair()
    >>> chain.balance(payer.pubkey())
    10000000000
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from anchorpy import EventParser
from anchorpy.coder.coder import Coder
from solders.account import Account
from solders.clock import Clock
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata
from spl.token.constants import ACCOUNT_LEN, MINT_LEN, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from ghostpay import artifacts
from ghostpay.exceptions import InvalidArgument, program_error_class
from ghostpay.pda import associated_token_address
from ghostpay.program_id import PROGRAM_ID

__all__ = [
    "LAMPORTS_PER_SOL",
    "MINT_LEN",
    "TOKEN_2022_PROGRAM_ID",
    "TOKEN_PROGRAM_ID",
    "InProcessChain",
    "TxResult",
    "error_name",
    "transfer_fee_config",
]

TOKEN_ACCOUNT_AMOUNT_OFFSET = 64
TOKEN_ACCOUNT_STATE_INITIALIZED = 1
TOKEN_ACCOUNT_STATE_OFFSET = 108
TOKEN_2022_ACCOUNT_TYPE_MINT = 1  # the byte after a token account's 165 bytes in an extended mint
TOKEN_2022_ACCOUNT_TYPE_ACCOUNT = 2  # ... and in an extended token account
LAMPORTS_PER_SOL = 1_000_000_000


def _tlv(extensions: Sequence[tuple[int, bytes]]) -> bytes:
    """Token-2022 extension entries: u16 ExtensionType, u16 length, value."""
    return b"".join(kind.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value for kind, value in extensions)


def transfer_fee_config(basis_points: int) -> bytes:
    """A Token-2022 TransferFeeConfig value (108 bytes): two authorities, the withheld amount, then the older
    and newer TransferFee (epoch u64, maximum_fee u64, transfer_fee_basis_points u16), both at `basis_points`
    with no maximum."""
    fee = (0).to_bytes(8, "little") + (2**64 - 1).to_bytes(8, "little") + basis_points.to_bytes(2, "little")
    return bytes(32) + bytes(32) + bytes(8) + fee + fee


@dataclass
class TxResult:
    """What one transaction did."""

    ok: bool
    logs: list[str]
    compute_units: int
    error: str | None = None  # program error name, or the runtime error text
    events: list[Any] = field(default_factory=list)

    def event(self, name: str) -> Any:
        matches = [e for e in self.events if e.name == name]
        assert len(matches) == 1, f"expected one {name} event, got {[e.name for e in self.events]}"
        return matches[0].data


def error_name(err: Any) -> str:
    """`InstructionErrorCustom(n)` -> the IDL / Anchor name; anything else -> its text."""
    text = str(err)
    custom = getattr(getattr(err, "err", None), "code", None)
    if custom is None and "Custom(" in text:
        custom = int(text.split("Custom(")[1].split(")")[0])
    if custom is None:
        return text
    try:
        return program_error_class(custom).name
    except InvalidArgument:  # not an Anchor or GhostPay code (another program's)
        return text


class InProcessChain:
    """A LiteSVM instance with the GhostPay program at its IDL address."""

    def __init__(self, program_so: bytes | None = None, program_id: Pubkey = PROGRAM_ID) -> None:
        self.svm = LiteSVM()
        self.program_id = program_id
        self.svm.add_program(program_id, program_so if program_so is not None else artifacts.program_bytes())
        self._event_parser = EventParser(program_id, Coder(artifacts.idl()))
        self.set_unix_timestamp(int(time.time()))  # block time is wall-clock time, as on a validator

    def set_unix_timestamp(self, unix_timestamp: int) -> None:
        """Move the clock sysvar's block time (slots and epochs stay)."""
        clock = self.svm.get_clock()
        self.svm.set_clock(
            Clock(clock.slot, clock.epoch_start_timestamp, clock.epoch, clock.leader_schedule_epoch, unix_timestamp)
        )

    def funded_keypair(self, sol: int = 10) -> Keypair:
        keypair = Keypair()
        self.svm.airdrop(keypair.pubkey(), sol * LAMPORTS_PER_SOL)
        return keypair

    def balance(self, key: Pubkey) -> int:
        return self.svm.get_balance(key) or 0

    def balances(self, keys: Iterable[Pubkey]) -> dict[Pubkey, int]:
        return {k: self.balance(k) for k in keys}

    def account(self, key: Pubkey) -> Account | None:
        return self.svm.get_account(key)

    def send(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        """Sign with `signers` (the first pays the fee) and execute."""
        message = Message.new_with_blockhash(list(instructions), signers[0].pubkey(), self.svm.latest_blockhash())
        result = self.execute(Transaction(list(signers), message, self.svm.latest_blockhash()))
        self.svm.expire_blockhash()  # lets an identical transaction be sent again
        return result

    def execute(self, tx: Transaction) -> TxResult:
        """Execute a signed transaction as it is (sent again before the blockhash moves: AlreadyProcessed)."""
        result = self.svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            meta = result.meta()
            return TxResult(False, list(meta.logs()), meta.compute_units_consumed(), error_name(result.err()))
        logs = list(result.logs())
        events: list[Any] = []
        self._event_parser.parse_logs(logs, events.append)
        return TxResult(True, logs, result.compute_units_consumed(), events=events)

    def create_mint(self, decimals: int = 6, token_program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
        """An initialized mint written straight into the ledger (no authority)."""
        mint = Keypair().pubkey()
        data = bytearray(MINT_LEN)
        data[44] = decimals
        data[45] = 1  # is_initialized
        self.set_account(mint, bytes(data), owner=token_program)
        return mint

    def create_token_2022_mint(self, extensions: Sequence[tuple[int, bytes]], decimals: int = 6) -> Pubkey:
        """An initialized Token-2022 mint carrying `extensions` ((ExtensionType, value) TLV entries) after the
        account-type byte, written straight into the ledger (no authority)."""
        mint = Keypair().pubkey()
        data = bytearray(MINT_LEN)
        data[44] = decimals
        data[45] = 1  # is_initialized
        data += bytes(ACCOUNT_LEN - MINT_LEN) + bytes([TOKEN_2022_ACCOUNT_TYPE_MINT]) + _tlv(extensions)
        self.set_account(mint, bytes(data), owner=TOKEN_2022_PROGRAM_ID)
        return mint

    def create_token_account(
        self,
        owner: Pubkey,
        mint: Pubkey,
        amount: int = 0,
        token_program: Pubkey = TOKEN_PROGRAM_ID,
        extensions: Sequence[tuple[int, bytes]] = (),
    ) -> Pubkey:
        """`owner`'s associated token account for `mint`, holding `amount`, written straight into the ledger.
        Any `token_program` (a test may load a fake one) is accepted; Token-2022 account `extensions`
        ((ExtensionType, value) TLV entries) follow the account-type byte."""
        address = associated_token_address(owner, mint, token_program)
        data = bytearray(ACCOUNT_LEN)
        data[0:32] = bytes(mint)
        data[32:64] = bytes(owner)
        data[TOKEN_ACCOUNT_AMOUNT_OFFSET : TOKEN_ACCOUNT_AMOUNT_OFFSET + 8] = amount.to_bytes(8, "little")
        data[TOKEN_ACCOUNT_STATE_OFFSET] = TOKEN_ACCOUNT_STATE_INITIALIZED
        if extensions:
            data += bytes([TOKEN_2022_ACCOUNT_TYPE_ACCOUNT]) + _tlv(extensions)
        self.set_account(address, bytes(data), owner=token_program)
        return address

    def token_balance(self, token_account: Pubkey) -> int:
        """The amount in a token account (0 if it does not exist)."""
        account = self.account(token_account)
        if account is None or len(account.data) < TOKEN_ACCOUNT_AMOUNT_OFFSET + 8:
            return 0
        return int.from_bytes(
            bytes(account.data[TOKEN_ACCOUNT_AMOUNT_OFFSET : TOKEN_ACCOUNT_AMOUNT_OFFSET + 8]), "little"
        )

    def set_account(self, key: Pubkey, data: bytes, owner: Pubkey, lamports: int | None = None) -> None:
        lamports = self.svm.minimum_balance_for_rent_exemption(len(data)) if lamports is None else lamports
        self.svm.set_account(key, Account(lamports=lamports, data=data, owner=owner, executable=False))
