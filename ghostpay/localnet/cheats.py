"""Cheat codes: JSON-RPC methods that set state directly, named like Surfpool's (`surfnet_*`).

- `surfnet_setAccount(pubkey, {lamports?, data?, owner?, executable?, rentEpoch?})`:
  create or update an account. `data` is hex (as in Surfpool) or `[text, "base64"]`.
- `surfnet_setTokenAccount(owner, mint, {amount?, delegate?, delegatedAmount?, state?}, tokenProgram?)`:
  set `owner`'s associated token account for `mint` (created if missing); the
  mint's supply follows the change in amount, so it works as "mint to".
- `surfnet_createMint({decimals?, mintAuthority?, freezeAuthority?, supply?, address?, tokenProgram?})`:
  an initialized SPL mint; returns its address (ours: Surfpool clones mints from mainnet instead).
- `surfnet_timeTravel({absoluteTimestamp? (ms), absoluteSlot?, absoluteEpoch?})`:
  move the clock; returns the epoch info.

The setters answer `{"context": {...}, "value": null}` like Surfpool.
"""

from __future__ import annotations

import struct
from typing import Any

from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.localnet import encoding as enc
from ghostpay.localnet.chain import is_mint
from ghostpay.localnet.errors import invalid_params
from ghostpay.localnet.programs import SYSTEM_PROGRAM_ID, TOKEN_PROGRAM_ID, TOKEN_PROGRAMS, associated_token_address
from ghostpay.localnet.rpc import Rpc, param, pubkey, required

MINT_LEN = 82
TOKEN_ACCOUNT_LEN = 165
TOKEN_STATES = {"uninitialized": 0, "initialized": 1, "frozen": 2}


def _option_key(key: Pubkey | None) -> bytes:
    return struct.pack("<I", 1) + bytes(key) if key is not None else bytes(36)


def _u64(value: Any, name: str) -> int:
    if not isinstance(value, int) or not 0 <= value < 2**64:
        raise invalid_params(f"`{name}` must be a u64")
    return value


def _data(value: Any) -> bytes:
    if isinstance(value, list) and len(value) == 2:
        return enc.decode_wire(value[0], value[1], "account data")
    if isinstance(value, str):
        try:
            return bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise invalid_params('`data` must be hex or [text, "base64"]') from None
    raise invalid_params('`data` must be hex or [text, "base64"]')


class Cheats:
    """Adds the `surfnet_*` methods to an `Rpc`."""

    def __init__(self, rpc: Rpc) -> None:
        self.rpc = rpc
        self.chain = rpc.chain
        rpc.methods.update(
            {
                "surfnet_setAccount": self.set_account,
                "surfnet_setTokenAccount": self.set_token_account,
                "surfnet_createMint": self.create_mint,
                "surfnet_timeTravel": self.time_travel,
            }
        )

    def set_account(self, params: list[Any]) -> Any:
        required(params, 2)
        key, update = pubkey(params[0]), params[1]
        if not isinstance(update, dict):
            raise invalid_params("the account update must be an object")
        current = self.chain.account(key)
        data = _data(update["data"]) if "data" in update else (current.data if current else b"")
        lamports = (
            _u64(update["lamports"], "lamports")
            if "lamports" in update
            else (current.lamports if current else self.chain.svm.minimum_balance_for_rent_exemption(len(data)))
        )
        owner = pubkey(update["owner"]) if "owner" in update else (current.owner if current else SYSTEM_PROGRAM_ID)
        executable = bool(update.get("executable", current.executable if current else False))
        rent_epoch = _u64(update.get("rentEpoch", current.rent_epoch if current else 0), "rentEpoch")
        self.chain.set_account(key, Account(lamports, data, owner, executable, rent_epoch))
        return self.rpc.with_context(None)

    def set_token_account(self, params: list[Any]) -> Any:
        required(params, 3)
        owner, mint, update = pubkey(params[0]), pubkey(params[1]), params[2]
        token_program = pubkey(param(params, 3, str(TOKEN_PROGRAM_ID)))
        if token_program not in TOKEN_PROGRAMS or not isinstance(update, dict):
            raise invalid_params("expected a token program id and an update object")
        mint_account = self.chain.account(mint)
        if not is_mint(mint_account):
            raise invalid_params(f"{mint} is not an SPL mint")
        address = associated_token_address(owner, mint, token_program)
        current = self.chain.account(address)
        data = bytearray(current.data if current is not None else bytes(TOKEN_ACCOUNT_LEN))
        old_amount = struct.unpack_from("<Q", data, 64)[0] if current is not None else 0
        data[0:32], data[32:64] = bytes(mint), bytes(owner)
        amount = _u64(update.get("amount", old_amount), "amount")
        struct.pack_into("<Q", data, 64, amount)
        if "delegate" in update:
            data[72:108] = _option_key(pubkey(update["delegate"]) if update["delegate"] else None)
        if "delegatedAmount" in update:
            struct.pack_into("<Q", data, 121, _u64(update["delegatedAmount"], "delegatedAmount"))
        state = update.get("state", "initialized" if current is None else None)
        if state is not None:
            if state not in TOKEN_STATES:
                raise invalid_params("`state` must be uninitialized, initialized or frozen")
            data[108] = TOKEN_STATES[state]
        lamports = current.lamports if current else self.chain.svm.minimum_balance_for_rent_exemption(len(data))
        self.chain.set_account(address, Account(lamports, bytes(data), token_program, False, 0))
        if amount != old_amount:  # keep the mint's supply equal to the sum of balances
            mint_data = bytearray(mint_account.data)
            supply = struct.unpack_from("<Q", mint_data, 36)[0] + amount - old_amount
            struct.pack_into("<Q", mint_data, 36, max(supply, 0))
            self.chain.set_account(
                mint,
                Account(mint_account.lamports, bytes(mint_data), mint_account.owner, False, mint_account.rent_epoch),
            )
        return self.rpc.with_context(None)

    def create_mint(self, params: list[Any]) -> Any:
        spec = param(params, 0, {})
        if not isinstance(spec, dict):
            raise invalid_params("the mint spec must be an object")
        decimals = spec.get("decimals", 6)
        if not isinstance(decimals, int) or not 0 <= decimals <= 255:
            raise invalid_params("`decimals` must be 0..255")
        address = pubkey(spec["address"]) if "address" in spec else Keypair().pubkey()
        token_program = pubkey(spec.get("tokenProgram", str(TOKEN_PROGRAM_ID)))
        if token_program not in TOKEN_PROGRAMS:
            raise invalid_params("`tokenProgram` must be SPL Token or Token-2022")
        authority = pubkey(spec["mintAuthority"]) if spec.get("mintAuthority") else None
        freeze = pubkey(spec["freezeAuthority"]) if spec.get("freezeAuthority") else None
        data = (
            _option_key(authority)
            + struct.pack("<QBB", _u64(spec.get("supply", 0), "supply"), decimals, 1)
            + _option_key(freeze)
        )
        lamports = self.chain.svm.minimum_balance_for_rent_exemption(MINT_LEN)
        self.chain.set_account(address, Account(lamports, data, token_program, False, 0))
        return self.rpc.with_context(str(address))

    def time_travel(self, params: list[Any]) -> Any:
        spec = param(params, 0, {})
        if not isinstance(spec, dict) or not ({"absoluteTimestamp", "absoluteSlot", "absoluteEpoch"} & spec.keys()):
            raise invalid_params("expected one of absoluteTimestamp (ms), absoluteSlot, absoluteEpoch")
        slot = spec.get("absoluteSlot")
        if "absoluteEpoch" in spec:
            slot = self.chain.schedule.get_first_slot_in_epoch(_u64(spec["absoluteEpoch"], "absoluteEpoch"))
        if slot is not None and (_u64(slot, "absoluteSlot") <= self.chain.slot):
            raise invalid_params(f"the clock only moves forward: slot {slot} <= current slot {self.chain.slot}")
        timestamp = spec.get("absoluteTimestamp")
        self.chain.move_clock(
            unix_timestamp=_u64(timestamp, "absoluteTimestamp") // 1000 if timestamp is not None else None, slot=slot
        )
        return self.chain.epoch_info()
