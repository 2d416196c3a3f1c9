"""The localnet's chain: LiteSVM plus what a validator adds around the runtime.

LiteSVM executes transactions; this wrapper gives it a validator's life: slots
and blockhashes that advance (`advance_slot`, driven every ~400 ms by the
server), blockhashes that stay valid for 150 slots, duplicate-signature
rejection from a status cache of the last 150 slots (as a validator's: an
older duplicate's blockhash has expired; older statuses are read from the
ledger on disk; after a restart, the slots before it are recent on disk only,
so start-up reads nothing per transaction), a faucet for `requestAirdrop`, an
account index (LiteSVM cannot list accounts) for `getProgramAccounts`,
transaction status metas in the RPC's shape, and the ledger that makes all of
it survive a restart.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeGuard

import based58
from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from ghostpay.localnet import programs
from ghostpay.localnet.ledger import Ledger, StoredAccount

MAX_PROCESSING_AGE = 150  # slots a blockhash stays valid, as on mainnet
SLOT_SECONDS = 0.4
LAMPORTS_PER_SIGNATURE = 5000
NONCE_ACCOUNT_SIZE = 80  # a durable nonce account's data: the only system account with data that pays fees
FAUCET_LAMPORTS = 500_000_000 * 1_000_000_000
COMPUTE_BUDGET_PROGRAM_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
# Accounts LiteSVM creates itself: indexed for getProgramAccounts, never persisted.
PRELOADED = [
    programs.TOKEN_PROGRAM_ID,
    programs.TOKEN_2022_PROGRAM_ID,
    programs.MEMO_PROGRAM_ID,
    programs.MEMO_V1_PROGRAM_ID,
    programs.ASSOCIATED_TOKEN_PROGRAM_ID,
    *(
        Pubkey.from_string(s)
        for s in (
            "SysvarC1ock11111111111111111111111111111111",
            "SysvarRent111111111111111111111111111111111",
            "SysvarRecentB1ockHashes11111111111111111111",
            "SysvarEpochSchedu1e111111111111111111111111",
            "SysvarS1otHashes111111111111111111111111111",
            "SysvarStakeHistory1111111111111111111111111",
            "SysvarFees111111111111111111111111111111111",
            "SysvarEpochRewards1111111111111111111111111",
            "SysvarLastRestartS1ot1111111111111111111111",
        )
    ),
]


class ProgramLoadError(Exception):
    """The program file is not a loadable SBF ELF."""


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """Keep Rust's panic report (written straight to fd 2) off the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_program(svm: LiteSVM, program_id: Pubkey, elf: bytes) -> None:
    """`add_program`, with a bad ELF reported as `ProgramLoadError` instead of a Rust panic."""
    if elf[:4] != b"\x7fELF" or len(elf) < 20 or struct.unpack_from("<H", elf, 18)[0] != 247:
        raise ProgramLoadError("not an SBF program (expected a 64-bit BPF ELF shared object)")
    try:
        with silenced_stderr():
            svm.add_program(program_id, elf)
    except BaseException as exc:  # LiteSVM panics (pyo3 PanicException, a BaseException) on a bad ELF
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise ProgramLoadError(f"the runtime rejects the program: {str(exc).splitlines()[0]}") from None


class ChainListener(Protocol):
    """What the pub-sub layer hears from the chain."""

    def on_transaction(self, slot: int, signature: str, err: Any, logs: list[str], keys: list[Pubkey]) -> None: ...

    def on_accounts(self, slot: int, accounts: list[tuple[Pubkey, Account | None]]) -> None: ...

    def on_slot(self, slot: int, parent: int) -> None: ...


@dataclass
class Outcome:
    """What sending or simulating one transaction did, in the RPC's JSON terms."""

    signature: str
    err: Any  # the UI JSON of the TransactionError, or None
    logs: list[str]
    units: int
    return_data: dict[str, Any] | None = None
    inner_instructions: list[dict[str, Any]] | None = None
    committed: bool = False  # recorded in a block (possibly as a failed transaction)


def error_json(err: Any) -> Any:
    """A solders TransactionError as the RPC's JSON (e.g. {"InstructionError": [0, {"Custom": 1}]})."""
    if err is None:
        return None
    result = RpcSimulateTransactionResult(err=err, logs=None, accounts=None, units_consumed=None, return_data=None)
    return json.loads(result.to_json())["err"]


def is_live(account: Account | None) -> TypeGuard[Account]:
    return account is not None and account.lamports > 0


def lamports(account: Account | None) -> int:
    return account.lamports if account is not None else 0


def token_amount(raw: int, decimals: int) -> dict[str, Any]:
    """A `UiTokenAmount`."""
    ui = raw / 10**decimals
    text = str(raw) if decimals == 0 else f"{raw / 10**decimals:.{decimals}f}".rstrip("0").rstrip(".")
    return {"amount": str(raw), "decimals": decimals, "uiAmount": ui, "uiAmountString": text}


def is_token_account(account: Account | None) -> TypeGuard[Account]:
    if account is None or account.owner not in programs.TOKEN_PROGRAMS or len(account.data) < 165:
        return False
    return len(account.data) == 165 or account.data[165] == 2  # Token-2022: AccountType::Account


def is_mint(account: Account | None) -> TypeGuard[Account]:
    if account is None or account.owner not in programs.TOKEN_PROGRAMS or len(account.data) < 82:
        return False
    return account.data[45] == 1 and (len(account.data) == 82 or (len(account.data) > 165 and account.data[165] == 1))


def compute_unit_price_fee(message: Message | MessageV0) -> int:
    """The priority fee of `message` (micro-lamports per CU times the CU limit)."""
    keys = message.account_keys
    price, limit, others = 0, None, 0
    for ix in message.instructions:
        if keys[ix.program_id_index] != COMPUTE_BUDGET_PROGRAM_ID:
            others += 1
            continue
        data = bytes(ix.data)
        if data[:1] == b"\x02" and len(data) >= 5:
            limit = struct.unpack_from("<I", data, 1)[0]
        elif data[:1] == b"\x03" and len(data) >= 9:
            price = struct.unpack_from("<Q", data, 1)[0]
    limit = min(limit if limit is not None else 200_000 * others, 1_400_000)
    return (price * limit + 999_999) // 1_000_000


def fee_for_message(message: Message | MessageV0) -> int:
    return LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures + compute_unit_price_fee(message)


def fee_payer_error(account: Account | None, fee: int, rent_exempt: Callable[[int], int]) -> Any:
    """Agave's fee-payer validation: the error when `account` cannot pay `fee`, or None.

    It must be a live system account (a nonce account keeps its rent-exempt minimum) holding the
    whole fee, and paying it may not leave a rent-exempt account rent-paying."""
    if account is None or account.lamports == 0:
        return "AccountNotFound"
    if account.owner != programs.SYSTEM_PROGRAM_ID or len(account.data) not in (0, NONCE_ACCOUNT_SIZE):
        return "InvalidAccountForFee"
    exempt = rent_exempt(len(account.data))
    if account.lamports < (exempt if account.data else 0) + fee:
        return "InsufficientFundsForFee"
    left = account.lamports - fee
    if 0 < left < exempt <= account.lamports:
        return {"InsufficientFundsForRent": {"account_index": 0}}
    return None


def runtime() -> LiteSVM:
    """LiteSVM as the localnet runs it (default features, signatures verified). Blockhash age is checked by the
    chain (150 slots), duplicates too: LiteSVM's own checks are stricter. bench/localnet.py times its ceiling on
    this same runtime."""
    return LiteSVM().with_blockhash_check(False).with_transaction_history(0)


class Chain:
    """LiteSVM with GhostPay and the SPL programs, a slot clock, an account index and a ledger."""

    def __init__(self, ledger: Ledger, program_so: bytes, program_id: Pubkey, cache_dir: Path) -> None:
        self.ledger = ledger
        self.program_id = program_id
        self.listeners: list[ChainListener] = []
        self.svm = runtime()
        self.schedule = self.svm.get_epoch_schedule()
        self.owner_of: dict[Pubkey, Pubkey] = {}
        self.by_owner: dict[Pubkey, set[Pubkey]] = {}
        # what the RPC derives from an account (its JSON for getProgramAccounts), kept until the account is written
        self.encoded: dict[Pubkey, Any] = {}
        self.transaction_count = ledger.transaction_count()

        for stored in ledger.accounts():
            key = Pubkey(stored.pubkey)
            account = Account(stored.lamports, stored.data, Pubkey(stored.owner), stored.executable, stored.rent_epoch)
            self.svm.set_account(key, account)
            self._index(key, account)
        ata = programs.associated_token_program(cache_dir)
        if ata is not None:
            self.svm.add_program(programs.ASSOCIATED_TOKEN_PROGRAM_ID, ata)
        load_program(self.svm, program_id, program_so)
        for key in (*PRELOADED, program_id):
            self._index(key, self.svm.get_account(key))

        state = ledger.get_state("chain")
        if state is None:
            faucet = Keypair()
            state = {
                "genesis_hash": str(Hash(os.urandom(32))),
                "faucet": str(faucet),
                "slot": 0,
                "time_offset": 0,
                "blockhashes": [[str(self.svm.latest_blockhash()), 0]],
            }
        self.genesis_hash: str = state["genesis_hash"]
        self.faucet = Keypair.from_base58_string(state["faucet"])
        self.slot: int = state["slot"]
        self.time_offset: int = state["time_offset"]
        self.blockhashes: OrderedDict[str, int] = OrderedDict((h, s) for h, s in state["blockhashes"])
        # signature -> (slot, err) of the transactions of the last MAX_PROCESSING_AGE slots since this start,
        # oldest first; those of the slots before it are looked up in the ledger while they are recent, so a
        # start-up reads no status, however busy the slots before it were.
        self.recent: OrderedDict[bytes, tuple[int, Any]] = OrderedDict()
        self.started_slot = self.slot if self.transaction_count else None  # None: nothing landed before this start
        if not is_live(self.svm.get_account(self.faucet.pubkey())):
            self.set_account(self.faucet.pubkey(), Account(FAUCET_LAMPORTS, b"", programs.SYSTEM_PROGRAM_ID, False, 0))
        self._set_clock()
        self._save_state()
        ledger.commit()

    # -- time ----------------------------------------------------------------------------

    def now(self) -> int:
        """The block time of the current slot: wall-clock time unless the clock was moved."""
        return int(time.time()) + self.time_offset

    @property
    def blockhash(self) -> str:
        return next(reversed(self.blockhashes))

    def last_valid_block_height(self, blockhash: str | None = None) -> int:
        return self.blockhashes[blockhash or self.blockhash] + MAX_PROCESSING_AGE

    def is_blockhash_valid(self, blockhash: str) -> bool:
        slot = self.blockhashes.get(blockhash)
        return slot is not None and self.slot <= slot + MAX_PROCESSING_AGE

    def epoch_info(self) -> dict[str, int]:
        epoch, index = self.schedule.get_epoch_and_slot_index(self.slot)
        return {
            "absoluteSlot": self.slot,
            "blockHeight": self.slot,
            "epoch": epoch,
            "slotIndex": index,
            "slotsInEpoch": self.schedule.get_slots_in_epoch(epoch),
            "transactionCount": self.transaction_count,
        }

    def _set_clock(self) -> None:
        epoch, _ = self.schedule.get_epoch_and_slot_index(self.slot)
        clock = self.svm.get_clock()
        self.svm.set_clock(Clock(self.slot, clock.epoch_start_timestamp, epoch, epoch + 1, self.now()))

    def _save_state(self) -> None:
        self.ledger.set_state(
            "chain",
            {
                "genesis_hash": self.genesis_hash,
                "faucet": str(self.faucet),
                "slot": self.slot,
                "time_offset": self.time_offset,
                "blockhashes": [[h, s] for h, s in self.blockhashes.items()],
            },
        )

    def _oldest_recent_slot(self) -> int:
        """The oldest slot whose transactions could be sent again with a valid blockhash (a blockhash is never
        newer than the slot its transaction lands in)."""
        return self.slot - MAX_PROCESSING_AGE

    def _forget_old_statuses(self) -> None:
        oldest = self._oldest_recent_slot()
        while self.recent and next(iter(self.recent.values()))[0] < oldest:
            self.recent.popitem(last=False)

    def advance_slot(self, to_slot: int | None = None) -> None:
        """Close the current slot and open the next (or `to_slot`) with a fresh blockhash."""
        parent = self.slot
        self.ledger.put_block(parent, self.blockhash, self.now())
        self.slot = parent + 1 if to_slot is None else max(to_slot, parent + 1)
        self.svm.expire_blockhash()
        self.blockhashes[str(self.svm.latest_blockhash())] = self.slot
        while len(self.blockhashes) > MAX_PROCESSING_AGE + 1:
            self.blockhashes.popitem(last=False)
        self._forget_old_statuses()
        self._set_clock()
        self._save_state()
        for listener in self.listeners:
            listener.on_slot(self.slot, parent)

    def move_clock(self, unix_timestamp: int | None = None, slot: int | None = None) -> None:
        """Time travel: set the block time and/or jump forward to `slot`."""
        if unix_timestamp is not None:
            self.time_offset = unix_timestamp - int(time.time())
        if slot is not None and slot > self.slot:
            self.advance_slot(slot)
        self._set_clock()
        self._save_state()

    def block_time(self, slot: int) -> int | None:
        return self.now() if slot == self.slot else self.ledger.block_time(slot)

    # -- accounts --------------------------------------------------------------------------

    def account(self, key: Pubkey) -> Account | None:
        account = self.svm.get_account(key)
        return account if is_live(account) else None

    def program_account_keys(self, owner: Pubkey) -> set[Pubkey]:
        """The keys of the live accounts `owner` owns (their accounts: `program_accounts`)."""
        return self.by_owner.get(owner, set())

    def program_accounts(self, owner: Pubkey) -> list[tuple[Pubkey, Account]]:
        found = []
        for key in self.by_owner.get(owner, ()):
            account = self.svm.get_account(key)
            if is_live(account):
                found.append((key, account))
        return found

    @staticmethod
    def is_recorded(account: Account) -> bool:
        """Every write of this account goes through `_record_accounts` (so `encoded` may keep what is derived
        from it): not a program or a sysvar, which LiteSVM itself rewrites (the clock each slot)."""
        return not account.executable and account.owner != programs.SYSVAR_OWNER

    def _index(self, key: Pubkey, account: Account | None) -> None:
        self.encoded.pop(key, None)  # every write, whatever it changed: the kept item is stale
        owner = account.owner if is_live(account) else None
        old = self.owner_of.get(key)
        if old == owner:  # most writes (a balance) keep the owner
            return
        if old is not None:
            del self.owner_of[key]
            self.by_owner[old].discard(key)
        if owner is not None:
            self.owner_of[key] = owner
            self.by_owner.setdefault(owner, set()).add(key)

    def _record_accounts(self, accounts: list[tuple[Pubkey, Account | None]]) -> None:
        """Index `accounts` and write them to the ledger in one statement per kind (programs and sysvars
        are reloaded, not stored)."""
        stored, deleted = [], []
        for key, account in accounts:
            self._index(key, account)
            if not is_live(account):
                deleted.append(bytes(key))
            elif self.is_recorded(account):
                stored.append(
                    StoredAccount(
                        bytes(key),
                        account.lamports,
                        bytes(account.owner),
                        account.executable,
                        account.rent_epoch,
                        account.data,
                    )
                )
        self.ledger.put_accounts(stored)
        self.ledger.delete_accounts(deleted)

    def set_account(self, key: Pubkey, account: Account) -> None:
        """Write an account directly (the cheat codes), indexed, persisted and notified."""
        self.svm.set_account(key, account)
        self._record_accounts([(key, account)])
        live = account if is_live(account) else None
        for listener in self.listeners:
            listener.on_accounts(self.slot, [(key, live)])

    def mint_decimals(self, mint: Pubkey) -> int:
        account = self.svm.get_account(mint)
        return account.data[44] if account is not None and len(account.data) >= 82 else 0

    # -- transactions ------------------------------------------------------------------------

    def account_keys(self, message: Message | MessageV0) -> tuple[list[Pubkey], list[Pubkey], list[Pubkey]]:
        """The static keys and the writable / read-only keys loaded from address lookup tables."""
        writable: list[Pubkey] = []
        readonly: list[Pubkey] = []
        if isinstance(message, MessageV0):
            for lookup in message.address_table_lookups:
                table = self.svm.get_account(lookup.account_key)
                data = table.data if table is not None else b""
                addresses = [Pubkey(data[i : i + 32]) for i in range(56, len(data) - 31, 32)]
                writable += [addresses[i] for i in lookup.writable_indexes if i < len(addresses)]
                readonly += [addresses[i] for i in lookup.readonly_indexes if i < len(addresses)]
        return list(message.account_keys), writable, readonly

    def _token_balances(self, keys: list[Pubkey], accounts: list[Account | None]) -> list[dict[str, Any]]:
        balances = []
        for index, account in enumerate(accounts):
            if is_token_account(account):
                data = account.data
                mint = Pubkey(data[0:32])
                balances.append(
                    {
                        "accountIndex": index,
                        "mint": str(mint),
                        "owner": str(Pubkey(data[32:64])),
                        "programId": str(account.owner),
                        "uiTokenAmount": token_amount(struct.unpack_from("<Q", data, 64)[0], self.mint_decimals(mint)),
                    }
                )
        return balances

    @staticmethod
    def _inner_instructions(meta: TransactionMetadata) -> list[dict[str, Any]]:
        inner = []
        for index, instructions in enumerate(meta.inner_instructions()):
            if instructions:
                inner.append(
                    {
                        "index": index,
                        "instructions": [
                            {
                                "programIdIndex": ix.instruction().program_id_index,
                                "accounts": list(ix.instruction().accounts),
                                "data": based58.b58encode(bytes(ix.instruction().data)).decode(),
                                "stackHeight": ix.stack_height(),  # type: ignore[attr-defined]  # not in solders' stub
                            }
                            for ix in instructions
                        ],
                    }
                )
        return inner

    @staticmethod
    def _return_data(meta: TransactionMetadata) -> dict[str, Any] | None:
        data = meta.return_data()  # type: ignore[attr-defined]  # solders' stub calls it transaction_return_data
        if data is None or (not data.data and data.program_id == Pubkey.default()):
            return None
        return {"programId": str(data.program_id), "data": [base64.b64encode(bytes(data.data)).decode(), "base64"]}

    def _outcome(self, signature: str, result: TransactionMetadata | FailedTransactionMetadata) -> Outcome:
        if isinstance(result, FailedTransactionMetadata):
            meta, err = result.meta(), error_json(result.err())
        else:
            meta, err = result, None
        return Outcome(
            signature,
            err,
            list(meta.logs()),
            meta.compute_units_consumed(),
            self._return_data(meta),
            self._inner_instructions(meta),
        )

    def precheck(self, tx: VersionedTransaction) -> Any:
        """The error a validator gives before executing `tx` (duplicate, expired blockhash), or None. A duplicate
        with a valid blockhash is in the recent statuses; one with a durable nonce (no blockhash expiry) is
        looked up in the ledger."""
        signature = bytes(tx.signatures[0])
        blockhash = str(tx.message.recent_blockhash)
        blockhash_slot = self.blockhashes.get(blockhash)
        # a blockhash newer than this start cannot be on a transaction that landed before it: no disk read
        maybe_before_start = self.started_slot is not None and (
            blockhash_slot is None or blockhash_slot <= self.started_slot
        )
        if signature in self.recent or (maybe_before_start and self._recent_on_disk(signature) is not None):
            return "AlreadyProcessed"
        if not tx.uses_durable_nonce():
            return None if self.is_blockhash_valid(blockhash) else "BlockhashNotFound"
        return "AlreadyProcessed" if self.ledger.status(signature) is not None else None

    def _take_priority_fee(
        self, tx: VersionedTransaction, payer: Account | None, check_signatures: bool
    ) -> tuple[Any, int]:
        """Take the priority fee from the fee payer (`payer`, its account) before execution, as a validator
        takes the whole fee (LiteSVM takes only the 5,000 lamports per signature). Returns (the error a
        validator gives when the fee payer cannot pay the whole fee, or None; the lamports taken)."""
        priority = compute_unit_price_fee(tx.message)
        if priority == 0:
            return None, 0
        err = fee_payer_error(payer, fee_for_message(tx.message), self.svm.minimum_balance_for_rent_exemption)
        if err is not None:  # a validator verifies signatures first
            return ("SignatureFailure" if check_signatures and not all(tx.verify_with_results()) else err), 0
        assert payer is not None
        self.svm.set_account(
            tx.message.account_keys[0],
            Account(payer.lamports - priority, payer.data, payer.owner, payer.executable, payer.rent_epoch),
        )
        return None, priority

    def process(self, tx: VersionedTransaction, preflight: bool = True) -> Outcome:
        """Execute `tx`. With `preflight`, a failing transaction is rolled back and not recorded
        (the validator rejects it in simulation); without, it lands like any failed transaction."""
        signature = str(tx.signatures[0])
        early = self.precheck(tx)
        if early is not None:
            return Outcome(signature, early, [], 0)
        message = tx.message
        static, writable, readonly = self.account_keys(message)
        keys = static + writable + readonly
        before = [self.svm.get_account(k) for k in keys]
        refused, taken = self._take_priority_fee(tx, before[0], check_signatures=True)
        if refused is not None:
            return Outcome(signature, refused, [], 0)
        result = self.svm.send_transaction(tx)
        outcome = self._outcome(signature, result)
        after = [self.svm.get_account(k) for k in keys]
        # LiteSVM took the signature fee too: a failed transaction lands and pays
        charged = lamports(after[0]) != lamports(before[0]) - taken
        if outcome.err is not None and (preflight or not charged):
            for key, account in zip(keys, before, strict=True):
                if account != self.svm.get_account(key):
                    self.svm.set_account(key, account or Account(0, b"", programs.SYSTEM_PROGRAM_ID, False, 0))
            return outcome
        outcome.committed = True
        changed = [(key, new) for key, old, new in zip(keys, before, after, strict=True) if old != new]
        self._record_accounts(changed)
        meta: dict[str, Any] = {
            "err": outcome.err,
            "status": {"Ok": None} if outcome.err is None else {"Err": outcome.err},
            "fee": LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures + taken,  # taken: the priority fee
            "preBalances": [lamports(a) for a in before],
            "postBalances": [lamports(a) for a in after],
            "innerInstructions": outcome.inner_instructions,
            "logMessages": outcome.logs,
            "preTokenBalances": self._token_balances(keys, before),
            "postTokenBalances": self._token_balances(keys, after),
            "rewards": [],
            "loadedAddresses": {"writable": [str(k) for k in writable], "readonly": [str(k) for k in readonly]},
            "computeUnitsConsumed": outcome.units,
        }
        if outcome.return_data is not None:
            meta["returnData"] = outcome.return_data
        raw_signature = bytes(tx.signatures[0])
        self.recent[raw_signature] = (self.slot, outcome.err)
        self.transaction_count += 1
        self.ledger.put_transaction(
            raw_signature, self.slot, self.now(), bytes(tx), meta, [bytes(k) for k in dict.fromkeys(keys)]
        )
        if self.listeners:
            changed = [(key, new if is_live(new) else None) for key, new in changed]
            for listener in self.listeners:
                listener.on_accounts(self.slot, changed)
                listener.on_transaction(self.slot, signature, outcome.err, outcome.logs, keys)
        return outcome

    def simulate(
        self,
        tx: VersionedTransaction,
        sig_verify: bool,
        replace_blockhash: bool,
    ) -> tuple[Outcome, dict[Pubkey, Account | None]]:
        """Run `tx` without committing it; returns the outcome and the post-state of its accounts."""
        signature = str(tx.signatures[0])
        if not replace_blockhash:
            early = self.precheck(tx)
            if early is not None:
                return Outcome(signature, early, [], 0), {}
        payer = self.svm.get_account(tx.message.account_keys[0])
        refused, taken = self._take_priority_fee(tx, payer, check_signatures=sig_verify)
        if refused is not None:
            return Outcome(signature, refused, [], 0), {}
        self.svm.with_sigverify(sig_verify)
        try:
            result = self.svm.simulate_transaction(tx)
        finally:
            self.svm.with_sigverify(True)
            if taken and payer is not None:  # the fee was taken for the simulation only
                self.svm.set_account(tx.message.account_keys[0], payer)
        if isinstance(result, FailedTransactionMetadata):
            return self._outcome(signature, result), {}
        post = {key: (account if is_live(account) else None) for key, account in result.post_accounts()}
        return self._outcome(signature, result.meta()), post

    def airdrop(self, to: Pubkey, lamports: int) -> Outcome:
        """A real transfer from the faucet, like the validator's faucet sends."""

        def build() -> VersionedTransaction:
            blockhash = Hash.from_string(self.blockhash)
            message = Message.new_with_blockhash(
                [transfer(TransferParams(from_pubkey=self.faucet.pubkey(), to_pubkey=to, lamports=lamports))],
                self.faucet.pubkey(),
                blockhash,
            )
            return VersionedTransaction(message, [self.faucet])

        tx = build()
        if self.status(tx.signatures[0], search_history=False) is not None:  # the same airdrop twice in one slot
            self.advance_slot()
            tx = build()
        return self.process(tx, preflight=True)

    def status(self, signature: Signature, search_history: bool = True) -> tuple[int, Any] | None:
        """(slot, err) of a processed transaction: a recent one's from memory (or from the ledger if it landed
        before this start), an older one's from the ledger with `search_history` (as the RPC's
        searchTransactionHistory), else None."""
        raw = bytes(signature)
        recent = self.recent.get(raw)
        if recent is not None:
            return recent
        return self.ledger.status(raw) if search_history else self._recent_on_disk(raw)

    def _recent_on_disk(self, signature: bytes) -> tuple[int, Any] | None:
        """(slot, err) of a transaction that landed before this start in a slot that is still recent, or None."""
        oldest = self._oldest_recent_slot()
        if self.started_slot is None or self.started_slot < oldest:  # nothing before this start is recent
            return None
        stored = self.ledger.status(signature)
        return stored if stored is not None and stored[0] >= oldest else None
