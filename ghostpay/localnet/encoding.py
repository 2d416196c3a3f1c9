"""Account and transaction JSON in the shapes Agave's RPC gives them."""

from __future__ import annotations

import base64
import binascii
import struct
from functools import cache
from typing import Any, NamedTuple

import based58
from solders.account import Account
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from ghostpay.localnet.chain import is_mint, is_token_account, token_amount
from ghostpay.localnet.errors import RpcError, invalid_params
from ghostpay.localnet.programs import TOKEN_2022_PROGRAM_ID

ACCOUNT_ENCODINGS = ("base58", "base64", "base64+zstd", "jsonParsed", "binary")
KEPT_ENCODING = "base64+zstd"
"""The encoding whose getProgramAccounts items the localnet keeps (`KeyedAccountJson`) until their account is
written: an agent search asks for it, and a kept item (~1 KB for a 2.8 KB agent) costs no zstd, base64 or JSON
work again. Other encodings are a few times larger and encoded per request."""
FILTER_PREFIX = 128  # bytes of the data kept beside a kept item, for the memcmp filters that end within them
# zstd's fastest level short of dropping matches: half the time of the default (3) on a 2.8 KB agent, its frame
# 2 % larger (552 bytes against 539); any level writes a standard frame, and compressing was ~half of the first
# answer over 100,000 agents.
ZSTD_LEVEL = -1
U64_MAX = 2**64 - 1
MAX_BASE58_BYTES = 128
TOKEN_STATES = {0: "uninitialized", 1: "initialized", 2: "frozen"}


@cache
def _zstd() -> Any:
    """One compressor for every account (making one per account was most of a 100k-account answer's time);
    imported only when asked for: the import would add ~4 ms to every localnet start."""
    import zstandard

    return zstandard.ZstdCompressor(level=ZSTD_LEVEL)


def encode_bytes(data: bytes, encoding: str) -> Any:
    """Account data as `[text, encoding]` (or a bare base58 string for the legacy `binary`)."""
    if encoding == "base64":
        return [base64.b64encode(data).decode(), "base64"]
    if encoding == "base64+zstd":  # one zstd frame, as the validator sends (the Solana CLI asks for it)
        return [base64.b64encode(_zstd().compress(data)).decode(), "base64+zstd"]
    if encoding in ("base58", "binary"):
        if len(data) > MAX_BASE58_BYTES:
            raise RpcError(
                -32600, "Encoded binary (base 58) data should be less than 128 bytes, please use Base64 encoding."
            )
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
            "isNative": struct.unpack_from("<I", data, 109)[0] == 1,
            "mint": str(mint),
            "owner": str(Pubkey(data[32:64])),
            "state": TOKEN_STATES.get(data[108], "uninitialized"),
            "tokenAmount": token_amount(struct.unpack_from("<Q", data, 64)[0], decimals_of(mint)),
        }
        if struct.unpack_from("<I", data, 72)[0] == 1:
            info["delegate"] = str(Pubkey(data[76:108]))
            info["delegatedAmount"] = token_amount(struct.unpack_from("<Q", data, 121)[0], decimals_of(mint))
        return {"program": program, "parsed": {"info": info, "type": "account"}, "space": len(data)}
    if is_mint(account):
        info = {
            "decimals": data[44],
            "isInitialized": True,
            "supply": str(struct.unpack_from("<Q", data, 36)[0]),
            "mintAuthority": str(Pubkey(data[4:36])) if data[0] == 1 else None,
            "freezeAuthority": str(Pubkey(data[50:82])) if data[46] == 1 else None,
        }
        return {"program": program, "parsed": {"info": info, "type": "mint"}, "space": len(data)}
    return None


def encode_account(
    account: Account, encoding: str = "binary", data_slice: dict[str, int] | None = None, decimals_of: Any = None
) -> dict[str, Any]:
    """A `UiAccount`."""
    data = account.data
    if encoding == "jsonParsed":
        parsed = _parsed_token(account, decimals_of) if decimals_of is not None else None
        encoded: Any = parsed if parsed is not None else encode_bytes(data, "base64")
    else:
        if data_slice is not None:
            data = data[data_slice["offset"] : data_slice["offset"] + data_slice["length"]]
        encoded = encode_bytes(data, encoding)
    return {
        "lamports": account.lamports,
        "owner": str(account.owner),
        "data": encoded,
        "executable": account.executable,
        "rentEpoch": min(account.rent_epoch, U64_MAX),
        "space": len(account.data),
    }


class KeyedAccountJson(NamedTuple):
    """One getProgramAccounts item as compact JSON, kept with what its filters read."""

    prefix: bytes  # data[:FILTER_PREFIX]
    size: int  # len(data), for `dataSize`
    json: bytes  # {"pubkey":…,"account":{…}}


# The compact JSON `compact({"pubkey": …, "account": encode_account(account, KEPT_ENCODING)})` writes, filled in
# by one `%`: a dict and orjson per account cost more than its base64.
_KEPT_ITEM = (
    b'{"pubkey":"%s","account":{"lamports":%d,"owner":"%s","data":["%s","'
    + KEPT_ENCODING.encode()
    + b'"],"executable":%s,"rentEpoch":%d,"space":%d}}'
)
_JSON_BOOL = {False: b"false", True: b"true"}


def keyed_account_json(key: Pubkey, account: Account, owner: bytes) -> KeyedAccountJson:
    """The item of `account` at `key` in getProgramAccounts' answer in `KEPT_ENCODING` (no dataSlice); `owner`
    is `str(account.owner)` as bytes, the same for every account of one answer."""
    data = account.data
    text = binascii.b2a_base64(_zstd().compress(data), newline=False)
    item = _KEPT_ITEM % (
        str(key).encode(),
        account.lamports,
        owner,
        text,
        _JSON_BOOL[account.executable],
        min(account.rent_epoch, U64_MAX),
        len(data),
    )
    return KeyedAccountJson(data[:FILTER_PREFIX], len(data), item)


def encode_message(message: Message | MessageV0) -> dict[str, Any]:
    header = message.header
    encoded: dict[str, Any] = {
        "accountKeys": [str(k) for k in message.account_keys],
        "header": {
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
            "numRequiredSignatures": header.num_required_signatures,
        },
        "instructions": [
            {
                "accounts": list(ix.accounts),
                "data": based58.b58encode(bytes(ix.data)).decode(),
                "programIdIndex": ix.program_id_index,
                "stackHeight": None,
            }
            for ix in message.instructions
        ],
        "recentBlockhash": str(message.recent_blockhash),
    }
    if isinstance(message, MessageV0):
        encoded["addressTableLookups"] = [
            {
                "accountKey": str(lookup.account_key),
                "writableIndexes": list(lookup.writable_indexes),
                "readonlyIndexes": list(lookup.readonly_indexes),
            }
            for lookup in message.address_table_lookups
        ]
    return encoded


def _u64(data: bytes, offset: int) -> int:
    return struct.unpack_from("<Q", data, offset)[0]


def _parse_system(data: bytes, accounts: list[str]) -> tuple[str, dict[str, Any]] | None:
    kind = struct.unpack_from("<I", data, 0)[0] if len(data) >= 4 else None
    if kind == 0 and len(data) >= 52 and len(accounts) >= 2:
        return "createAccount", {
            "lamports": _u64(data, 4),
            "newAccount": accounts[1],
            "owner": str(Pubkey(data[20:52])),
            "source": accounts[0],
            "space": _u64(data, 12),
        }
    if kind == 1 and len(data) >= 36 and accounts:
        return "assign", {"account": accounts[0], "owner": str(Pubkey(data[4:36]))}
    if kind == 2 and len(data) >= 12 and len(accounts) >= 2:
        return "transfer", {"destination": accounts[1], "lamports": _u64(data, 4), "source": accounts[0]}
    if kind == 8 and len(data) >= 12 and accounts:
        return "allocate", {"account": accounts[0], "space": _u64(data, 4)}
    return None


def _parse_token(data: bytes, accounts: list[str]) -> tuple[str, dict[str, Any]] | None:
    kind = data[0] if data else None
    if kind == 3 and len(data) >= 9 and len(accounts) >= 3:
        return "transfer", {
            "amount": str(_u64(data, 1)),
            "authority": accounts[2],
            "destination": accounts[1],
            "source": accounts[0],
        }
    if kind == 12 and len(data) >= 10 and len(accounts) >= 4:
        return "transferChecked", {
            "authority": accounts[3],
            "destination": accounts[2],
            "mint": accounts[1],
            "source": accounts[0],
            "tokenAmount": token_amount(_u64(data, 1), data[9]),
        }
    if kind == 7 and len(data) >= 9 and len(accounts) >= 3:
        return "mintTo", {
            "account": accounts[1],
            "amount": str(_u64(data, 1)),
            "mint": accounts[0],
            "mintAuthority": accounts[2],
        }
    if kind == 9 and len(accounts) >= 3:
        return "closeAccount", {"account": accounts[0], "destination": accounts[1], "owner": accounts[2]}
    if kind == 18 and len(data) >= 33 and len(accounts) >= 2:
        return "initializeAccount3", {"account": accounts[0], "mint": accounts[1], "owner": str(Pubkey(data[1:33]))}
    return None


def _parse_associated(data: bytes, accounts: list[str]) -> tuple[str, dict[str, Any]] | None:
    kind = {b"": "create", b"\x00": "create", b"\x01": "createIdempotent"}.get(data)
    if kind is None or len(accounts) < 6:
        return None
    return kind, {
        "account": accounts[1],
        "mint": accounts[3],
        "source": accounts[0],
        "systemProgram": accounts[4],
        "tokenProgram": accounts[5],
        "wallet": accounts[2],
    }


def parse_instruction(program: Pubkey, data: bytes, accounts: list[str], stack_height: Any = None) -> dict[str, Any]:
    """A `UiInstruction` as Agave's jsonParsed gives it: parsed for the System, SPL Token (both), Associated
    Token and Memo programs when it understands the instruction, else partially decoded."""
    from ghostpay.localnet.programs import (
        ASSOCIATED_TOKEN_PROGRAM_ID,
        MEMO_PROGRAM_ID,
        MEMO_V1_PROGRAM_ID,
        SYSTEM_PROGRAM_ID,
        TOKEN_PROGRAM_ID,
    )

    parsed: Any = None
    name = None
    if program == SYSTEM_PROGRAM_ID:
        name, parsed = "system", _parse_system(data, accounts)
    elif program in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
        name, parsed = "spl-token", _parse_token(data, accounts)
    elif program == ASSOCIATED_TOKEN_PROGRAM_ID:
        name, parsed = "spl-associated-token-account", _parse_associated(data, accounts)
    elif program in (MEMO_PROGRAM_ID, MEMO_V1_PROGRAM_ID):
        try:
            return {
                "parsed": data.decode(),
                "program": "spl-memo",
                "programId": str(program),
                "stackHeight": stack_height,
            }
        except UnicodeDecodeError:
            parsed = None
    if parsed is not None:
        kind, info = parsed
        return {
            "parsed": {"info": info, "type": kind},
            "program": name,
            "programId": str(program),
            "stackHeight": stack_height,
        }
    return {
        "accounts": accounts,
        "data": based58.b58encode(data).decode(),
        "programId": str(program),
        "stackHeight": stack_height,
    }


def encode_parsed_transaction(raw: bytes, meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """getTransaction's `jsonParsed` shape: account keys as objects (pubkey, signer, writable, source),
    instructions (and inner instructions) parsed where Agave parses them; returns (transaction, meta)."""
    tx = VersionedTransaction.from_bytes(raw)
    message = tx.message
    header = message.header
    static = [str(k) for k in message.account_keys]
    loaded = meta.get("loadedAddresses") or {"writable": [], "readonly": []}
    signers = header.num_required_signatures
    keys = []
    for i, key in enumerate(static):
        writable = (
            i < signers - header.num_readonly_signed_accounts
            if i < signers
            else i < len(static) - header.num_readonly_unsigned_accounts
        )
        keys.append({"pubkey": key, "signer": i < signers, "source": "transaction", "writable": writable})
    keys += [{"pubkey": k, "signer": False, "source": "lookupTable", "writable": True} for k in loaded["writable"]]
    keys += [{"pubkey": k, "signer": False, "source": "lookupTable", "writable": False} for k in loaded["readonly"]]
    names = [str(k["pubkey"]) for k in keys]

    def parse(program_index: int, account_indexes: list[int], data: bytes, height: Any = None) -> dict[str, Any]:
        return parse_instruction(
            Pubkey.from_string(names[program_index]), data, [names[a] for a in account_indexes], height
        )

    encoded_message: dict[str, Any] = {
        "accountKeys": keys,
        "instructions": [parse(ix.program_id_index, list(ix.accounts), bytes(ix.data)) for ix in message.instructions],
        "recentBlockhash": str(message.recent_blockhash),
    }
    if isinstance(message, MessageV0):
        encoded_message["addressTableLookups"] = encode_message(message)["addressTableLookups"]
    parsed_meta = {k: v for k, v in meta.items() if k != "loadedAddresses"}
    parsed_meta["innerInstructions"] = [
        {
            "index": group["index"],
            "instructions": [
                parse(
                    ix["programIdIndex"], ix["accounts"], based58.b58decode(ix["data"].encode()), ix.get("stackHeight")
                )
                for ix in group["instructions"]
            ],
        }
        for group in meta.get("innerInstructions") or []
    ]
    return {"message": encoded_message, "signatures": [str(s) for s in tx.signatures]}, parsed_meta


def encode_transaction(raw: bytes, encoding: str) -> Any:
    """An `EncodedTransaction` for getTransaction (`json`, `base64`, `base58`; see encode_parsed_transaction)."""
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
    except Exception as exc:  # noqa: BLE001 - solders raises its own errors for bad bytes: the caller's bad input
        raise invalid_params(
            f"failed to deserialize solana_transaction::versioned::VersionedTransaction: {exc}"
        ) from None
    try:
        tx.sanitize()
    except Exception as exc:  # noqa: BLE001 - solders raises its own errors for bad bytes: the caller's bad input
        raise invalid_params(f"invalid transaction: {exc}") from None
    return tx


def transaction_memo(raw: bytes) -> str | None:
    """The `memo` getSignaturesForAddress gives a transaction, as Agave formats it: each top-level Memo
    instruction as "[<byte length>] <text>" ("(unparseable)" if not UTF-8), joined by "; "; None without one."""
    from ghostpay.localnet.programs import MEMO_PROGRAM_ID, MEMO_V1_PROGRAM_ID

    memo_programs = (bytes(MEMO_PROGRAM_ID), bytes(MEMO_V1_PROGRAM_ID))
    if not any(key in raw for key in memo_programs):  # most transactions: no decoding at all
        return None
    message = VersionedTransaction.from_bytes(raw).message
    keys = message.account_keys
    memos = []
    for instruction in message.instructions:
        if bytes(keys[instruction.program_id_index]) in memo_programs:
            data = bytes(instruction.data)
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text = "(unparseable)"
            memos.append(f"[{len(data)}] {text}")
    return "; ".join(memos) or None
