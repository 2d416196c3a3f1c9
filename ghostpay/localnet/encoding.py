"""Account and transaction JSON in the shapes Agave's RPC gives them."""

from __future__ import annotations

import base64
import struct
from typing import Any

import based58
from solders.account import Account
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from ghostpay.localnet.chain import is_mint, is_token_account, token_amount
from ghostpay.localnet.programs import TOKEN_2022_PROGRAM_ID
from ghostpay.localnet.errors import RpcError, invalid_params

ACCOUNT_ENCODINGS = ("base58", "base64", "base64+zstd", "jsonParsed", "binary")
U64_MAX = 2**64 - 1
MAX_BASE58_BYTES = 128
TOKEN_STATES = {0: "uninitialized", 1: "initialized", 2: "frozen"}


def encode_bytes(data: bytes, encoding: str) -> Any:
    """Account data as `[text, encoding]` (or a bare base58 string for the legacy `binary`)."""
    if encoding == "base64":
        return [base64.b64encode(data).decode(), "base64"]
    if encoding in ("base58", "binary"):
        if len(data) > MAX_BASE58_BYTES:
            raise RpcError(-32600, "Encoded binary (base 58) data should be less than 128 bytes, "
                                   "please use Base64 encoding.")
        text = based58.b58encode(data).decode()
        return text if encoding == "binary" else [text, "base58"]
    raise invalid_params(f"unsupported encoding: {encoding}")


def _parsed_token(account: Account, decimals_of: Any) -> dict[str, Any] | None:
    """`jsonParsed` for SPL token accounts and mints (what wallets and web3.js read)."""
    data = account.data
    program = "spl-token-2022" if account.owner == TOKEN_2022_PROGRAM_ID else "spl-token"
    if is_token_account(account):
        mint = Pubkey(data[0:32])
        info: dict[str, Any] = {
            "isNative": struct.unpack_from("<I", data, 109)[0] == 1, "mint": str(mint),
            "owner": str(Pubkey(data[32:64])), "state": TOKEN_STATES.get(data[108], "uninitialized"),
            "tokenAmount": token_amount(struct.unpack_from("<Q", data, 64)[0], decimals_of(mint)),
        }
        if struct.unpack_from("<I", data, 72)[0] == 1:
            info["delegate"] = str(Pubkey(data[76:108]))
            info["delegatedAmount"] = token_amount(struct.unpack_from("<Q", data, 121)[0], decimals_of(mint))
        return {"program": program, "parsed": {"info": info, "type": "account"}, "space": len(data)}
    if is_mint(account):
        info = {"decimals": data[44], "isInitialized": True, "supply": str(struct.unpack_from("<Q", data, 36)[0]),
                "mintAuthority": str(Pubkey(data[4:36])) if data[0] == 1 else None,
                "freezeAuthority": str(Pubkey(data[50:82])) if data[46] == 1 else None}
        return {"program": program, "parsed": {"info": info, "type": "mint"}, "space": len(data)}
    return None


def encode_account(account: Account, encoding: str = "binary", data_slice: dict[str, int] | None = None,
                   decimals_of: Any = None) -> dict[str, Any]:
    """A `UiAccount`."""
    data = account.data
    if encoding == "jsonParsed":
        parsed = _parsed_token(account, decimals_of) if decimals_of is not None else None
        encoded: Any = parsed if parsed is not None else encode_bytes(data, "base64")
    else:
        if data_slice is not None:
            data = data[data_slice["offset"]:data_slice["offset"] + data_slice["length"]]
        encoded = encode_bytes(data, encoding)
    return {"lamports": account.lamports, "owner": str(account.owner), "data": encoded,
            "executable": account.executable, "rentEpoch": min(account.rent_epoch, U64_MAX),
            "space": len(account.data)}


def encode_message(message: Message | MessageV0) -> dict[str, Any]:
    header = message.header
    encoded: dict[str, Any] = {
        "accountKeys": [str(k) for k in message.account_keys],
        "header": {"numReadonlySignedAccounts": header.num_readonly_signed_accounts,
                   "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
                   "numRequiredSignatures": header.num_required_signatures},
        "instructions": [{"accounts": list(ix.accounts), "data": based58.b58encode(bytes(ix.data)).decode(),
                          "programIdIndex": ix.program_id_index, "stackHeight": None}
                         for ix in message.instructions],
        "recentBlockhash": str(message.recent_blockhash),
    }
    if isinstance(message, MessageV0):
        encoded["addressTableLookups"] = [
            {"accountKey": str(lookup.account_key), "writableIndexes": list(lookup.writable_indexes),
             "readonlyIndexes": list(lookup.readonly_indexes)} for lookup in message.address_table_lookups]
    return encoded


def encode_transaction(raw: bytes, encoding: str) -> Any:
    """An `EncodedTransaction` for getTransaction."""
    if encoding == "base64":
        return [base64.b64encode(raw).decode(), "base64"]
    if encoding == "base58":
        return [based58.b58encode(raw).decode(), "base58"]
    tx = VersionedTransaction.from_bytes(raw)
    return {"message": encode_message(tx.message), "signatures": [str(s) for s in tx.signatures]}


def decode_wire(text: Any, encoding: str, what: str) -> bytes:
    """Bytes of a base58 / base64 parameter, with Agave's error wording."""
    if not isinstance(text, str):
        raise invalid_params(f"invalid type: expected a {what} string")
    try:
        if encoding == "base58":
            return based58.b58decode(text.encode())
        if encoding == "base64":
            return base64.b64decode(text, validate=True)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the caller's bad input
        raise invalid_params(f"invalid {encoding} encoding: {exc}") from None
    raise invalid_params(f"unknown variant `{encoding}`, expected `base58` or `base64`")


def decode_transaction(text: Any, encoding: str) -> VersionedTransaction:
    raw = decode_wire(text, encoding, "transaction")
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except Exception as exc:  # noqa: BLE001
        raise invalid_params(f"failed to deserialize solana_transaction::versioned::VersionedTransaction: {exc}") \
            from None
    try:
        tx.sanitize()
    except Exception as exc:  # noqa: BLE001
        raise invalid_params(f"invalid transaction: {exc}") from None
    return tx
