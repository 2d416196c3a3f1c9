"""The HTTP JSON-RPC methods: Solana's names, parameters, JSON shapes and error codes.

`Rpc.handle` takes one decoded JSON-RPC request object and returns the response
object; `Rpc.handle_body` takes a raw HTTP body (single or batch request) and
says whether its answer reports only "processed" (see `PROCESSED_ONLY`);
`encode_response` writes a response as JSON.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

import orjson
from solders.hash import Hash
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature

from ghostpay.localnet import encoding as enc
from ghostpay.localnet.chain import Chain, fee_for_message, is_mint, is_token_account, token_amount
from ghostpay.localnet.errors import (
    BLOCK_NOT_AVAILABLE,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SEND_TRANSACTION_PREFLIGHT_FAILURE,
    TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
    UNSUPPORTED_TRANSACTION_VERSION,
    RpcError,
    describe_transaction_error,
    invalid_params,
)
from ghostpay.localnet.programs import SYSVAR_OWNER, TOKEN_PROGRAMS

SOLANA_CORE_VERSION = "2.1.21"  # the Agave line solders 0.26's LiteSVM runs
FEATURE_SET = 1_416_569_292
COMMITMENTS = ("processed", "confirmed", "finalized", "recent", "single", "singleGossip", "root", "max")
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURE_STATUSES = 256
MAX_SIGNATURES_FOR_ADDRESS = 1000
# Accounts a getProgramAccounts answer encodes between two writes of it to the socket (~1 ms of encoding, ~128 KB):
# small enough that the client starts parsing at once and other connections wait little, large enough that the
# event loop's pass per slice costs nothing next to it.
KEPT_SLICE = 128
# Calls that write nothing (no account, status or clock): answered while an answer streams without settling it
# (`ItemStream`), so a client polling a status or a balance does not wait for the rest of a search's encoding.
# Any other call settles the streams first.
READS = frozenset(
    {
        "getAccountInfo",
        "getBalance",
        "getBlockHeight",
        "getBlockTime",
        "getEpochInfo",
        "getEpochSchedule",
        "getFeeForMessage",
        "getGenesisHash",
        "getHealth",
        "getIdentity",
        "getLatestBlockhash",
        "getMinimumBalanceForRentExemption",
        "getMultipleAccounts",
        "getProgramAccounts",
        "getSignatureStatuses",
        "getSignaturesForAddress",
        "getSlot",
        "getTokenAccountBalance",
        "getTokenAccountsByOwner",
        "getTokenSupply",
        "getTransaction",
        "getTransactionCount",
        "getVersion",
        "isBlockhashValid",
    }
)

Handler = Callable[[list[Any]], Any]
# Methods whose answer says no more than a validator's "processed" (a signature, or why the transaction was
# refused): the server may send it before the transaction is committed. Every other answer shows only what is.
PROCESSED_ONLY = ("sendTransaction",)  # a tuple: `in` compares any JSON value, hashable or not


class AccountFilter:
    """getProgramAccounts' filters as one check of an account's data and size: every `dataSize` holds, and each
    `memcmp`'s bytes are at its offset (all the slices taken in one `itemgetter` call: the check runs once per
    account of the program). `reach` is where the last compared byte ends."""

    def __init__(self, sizes: list[int], memcmps: list[tuple[int, bytes]]) -> None:
        self.sizes = frozenset(sizes)
        self.reach = max((offset + len(wanted) for offset, wanted in memcmps), default=0)
        self._slices = (
            itemgetter(*(slice(offset, offset + len(wanted)) for offset, wanted in memcmps)) if memcmps else None
        )
        wanted = tuple(wanted for _, wanted in memcmps)
        self._wanted = wanted[0] if len(wanted) == 1 else wanted  # itemgetter of one slice gives it, not a tuple

    def __call__(self, data: bytes, size: int) -> bool:
        if self.sizes and (len(self.sizes) > 1 or size not in self.sizes):
            return False
        return self._slices is None or self._slices(data) == self._wanted


class ItemStream:
    """A JSON array of items already written as JSON (getProgramAccounts' kept items), produced a slice at a time
    as the server sends the answer: the client parses the first items while the localnet encodes the next.

    It shows the chain as it was when its call was handled: `Rpc.handle` settles every open stream (encodes what
    is left of it at once) before any call that may write (any but `READS`), so no write lands in an answer
    already under way. Its slices hold the items themselves (a kept item is the very bytes `Chain.encoded`
    keeps), never a joined copy of the answer."""

    def __init__(self, slices: Iterator[list[bytes]], open_streams: set[ItemStream]) -> None:
        self._slices = slices
        self._settled: deque[list[bytes]] | None = None
        self._open = open_streams
        self._opening: bytes | None = b"["  # before the next item: "[", then ","; None once the array is closed
        self._error: Exception | None = None  # what settling it raised: raised again to the sender
        open_streams.add(self)

    def next_chunk(self) -> bytes | None:
        """The next part of the array's text (never empty), None after its end. Raises what encoding it raised
        (the answer cannot be finished: its sender drops the connection rather than end the array short)."""
        if self._error is not None:
            raise self._error
        if self._opening is None:
            return None
        while (items := self._next_slice()) is not None:
            if items:
                chunk = self._opening + b",".join(items)
                self._opening = b","
                return chunk
        closing = b"]" if self._opening == b"," else b"[]"
        self._end()
        return closing

    def _next_slice(self) -> list[bytes] | None:
        if self._settled is None:
            return next(self._slices, None)
        return self._settled.popleft() if self._settled else None

    def settle(self) -> None:
        """Encode what is left now (the chain is about to change). A failure is this answer's, not the settling
        call's: it is kept for `next_chunk`."""
        if self._settled is None:
            try:
                self._settled = deque(self._slices)
            except Exception as exc:  # noqa: BLE001 - whatever it is, the call that settles it is not at fault
                self._settled, self._error = deque(), exc
            self._open.discard(self)

    def close(self) -> None:
        """The answer will not be sent (its connection went away): nothing more to encode."""
        self._slices, self._settled = iter(()), deque()
        self._end()

    def _end(self) -> None:
        self._opening = None
        self._open.discard(self)

    def text(self) -> bytes:
        """The whole array at once (an answer written in one piece)."""
        return b"".join(iter(self.next_chunk, None))


Piece = bytes | ItemStream
_RAW_MARK = f"raw-json-{secrets.token_hex(16)}"  # unguessable: no string in a request can stand for it


def encode_pieces(response: Any) -> list[Piece]:
    """A response as compact JSON, in pieces to write one after another: each `ItemStream` value is a piece of
    its own, its text produced as it is sent."""
    raws: list[Piece] = []

    def mark(value: Any) -> str:
        if not isinstance(value, ItemStream):
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
        raws.append(value)
        return _RAW_MARK

    try:
        text = orjson.dumps(response, default=mark)
    except TypeError:  # orjson's refusal (see `jsonwire.compact`): the standard library's, from the start
        raws.clear()
        text = json.dumps(response, separators=(",", ":"), default=mark).encode()
    if not raws:
        return [text]
    parts = text.split(f'"{_RAW_MARK}"'.encode())
    pieces: list[Piece] = [parts[0]]
    for raw, part in zip(raws, parts[1:], strict=True):
        pieces += [raw, part]
    return pieces


def processed_only(request: Any) -> bool:
    """Whether `request` (a decoded request object) calls a method of PROCESSED_ONLY."""
    return isinstance(request, dict) and request.get("method") in PROCESSED_ONLY


def written_whole(pieces: list[Piece]) -> list[bytes]:
    """`pieces` with every stream written whole: for an answer sent in one piece."""
    return [piece if isinstance(piece, bytes) else piece.text() for piece in pieces]


def encode_response(response: Any) -> list[bytes]:
    """`encode_pieces`, written whole."""
    return written_whole(encode_pieces(response))


def param(params: list[Any], index: int, default: Any = None) -> Any:
    return params[index] if len(params) > index and params[index] is not None else default


def config(params: list[Any], index: int) -> dict[str, Any]:
    """The optional config object at `index`, with its commitment checked."""
    cfg = param(params, index, {})
    if not isinstance(cfg, dict):
        raise invalid_params("invalid type: expected a config object")
    commitment = cfg.get("commitment")
    if commitment is not None and commitment not in COMMITMENTS:
        raise invalid_params(f"unknown variant `{commitment}`, expected one of `processed`, `confirmed`, `finalized`")
    return cfg


def pubkey(value: Any) -> Pubkey:
    if not isinstance(value, str):
        raise invalid_params("invalid type: expected a base-58 public key string")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise RpcError(INVALID_PARAMS, "Invalid param: Invalid") from None


def signature(value: Any) -> Signature:
    if not isinstance(value, str):
        raise invalid_params("invalid type: expected a base-58 signature string")
    try:
        return Signature.from_string(value)
    except ValueError:
        raise RpcError(INVALID_PARAMS, "Invalid param: Invalid") from None


def required(params: list[Any], count: int) -> None:
    if len(params) < count:
        raise invalid_params(f"`params` should have at least {count} argument(s)")


def account_encoding(cfg: dict[str, Any], default: str = "binary") -> str:
    encoding = cfg.get("encoding") or default
    if encoding not in enc.ACCOUNT_ENCODINGS:
        raise invalid_params(
            f"unknown variant `{encoding}`, expected one of `binary`, `base58`, `base64`, `jsonParsed`, `base64+zstd`"
        )
    return encoding


def data_slice(cfg: dict[str, Any]) -> dict[str, int] | None:
    sliced = cfg.get("dataSlice")
    if sliced is None:
        return None
    if (
        not isinstance(sliced, dict)
        or not isinstance(sliced.get("offset"), int)
        or not isinstance(sliced.get("length"), int)
    ):
        raise invalid_params("dataSlice needs integer `offset` and `length`")
    return sliced


class Rpc:
    """Solana's JSON-RPC over a `Chain`. Cheat codes add themselves to `methods`."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.methods: dict[str, Handler] = {
            name[len("rpc_") :]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }
        self.open_streams: set[ItemStream] = set()  # answers under way that still read the chain

    # -- framing -------------------------------------------------------------------------

    def handle_body(self, body: bytes) -> tuple[Any, bool]:
        """The response (object or list) for an HTTP body, and whether every request in it was a method of
        `PROCESSED_ONLY`."""
        try:
            # A body that opens with "{" or "[" and no NUL after it is UTF-8: decoded here, it skips json's
            # encoding detection (half of a small request's parse); any other goes through it as before.
            utf8 = body[:1] in (b"{", b"[") and body[1:2] != b"\x00"
            request = json.loads(body.decode() if utf8 else body)
        except (ValueError, UnicodeDecodeError):
            return {"jsonrpc": "2.0", "error": {"code": PARSE_ERROR, "message": "Parse error"}, "id": None}, False
        if isinstance(request, list):
            if not request:
                error = {"code": INVALID_REQUEST, "message": "Invalid request"}
                return {"jsonrpc": "2.0", "error": error, "id": None}, False
            return [self.handle(item) for item in request], all(map(processed_only, request))
        return self.handle(request), processed_only(request)

    def handle(self, request: Any) -> dict[str, Any]:
        if self.open_streams and not (isinstance(request, dict) and request.get("method") in READS):
            for stream in list(self.open_streams):  # this call may change what they show: they show it as it was
                stream.settle()
        if (
            not isinstance(request, dict)
            or request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)
            or not isinstance(request.get("id", 0), (int, str, type(None)))
        ):
            request_id = request.get("id") if isinstance(request, dict) else None
            return {
                "jsonrpc": "2.0",
                "error": {"code": INVALID_REQUEST, "message": "Invalid request"},
                "id": request_id if isinstance(request_id, (int, str)) else None,
            }
        request_id = request.get("id")
        handler = self.methods.get(request["method"])
        if handler is None:
            return {
                "jsonrpc": "2.0",
                "error": {"code": METHOD_NOT_FOUND, "message": "Method not found"},
                "id": request_id,
            }
        params = request.get("params") or []
        if not isinstance(params, list):
            error = invalid_params("invalid type: map, expected a sequence").to_json()
            return {"jsonrpc": "2.0", "error": error, "id": request_id}
        try:
            return {"jsonrpc": "2.0", "result": handler(params), "id": request_id}
        except RpcError as exc:
            return {"jsonrpc": "2.0", "error": exc.to_json(), "id": request_id}
        except Exception as exc:  # noqa: BLE001 - the server keeps serving whatever one request does
            return {
                "jsonrpc": "2.0",
                "error": {"code": INTERNAL_ERROR, "message": f"Internal error: {exc}"},
                "id": request_id,
            }

    def context(self) -> dict[str, Any]:
        return {"slot": self.chain.slot, "apiVersion": SOLANA_CORE_VERSION}

    def with_context(self, value: Any) -> dict[str, Any]:
        return {"context": self.context(), "value": value}

    def ui_account(self, account: Any, cfg: dict[str, Any]) -> dict[str, Any]:
        return enc.encode_account(account, account_encoding(cfg), data_slice(cfg), self.chain.mint_decimals)

    # -- accounts --------------------------------------------------------------------------

    def rpc_getAccountInfo(self, params: list[Any]) -> Any:
        required(params, 1)
        key, cfg = pubkey(params[0]), config(params, 1)
        account = self.chain.account(key)
        return self.with_context(None if account is None else self.ui_account(account, cfg))

    def rpc_getMultipleAccounts(self, params: list[Any]) -> Any:
        required(params, 1)
        if not isinstance(params[0], list):
            raise invalid_params("invalid type: expected an array of public keys")
        if len(params[0]) > MAX_MULTIPLE_ACCOUNTS:
            raise invalid_params(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        keys, cfg = [pubkey(k) for k in params[0]], config(params, 1)
        accounts = [self.chain.account(k) for k in keys]
        return self.with_context([None if a is None else self.ui_account(a, cfg) for a in accounts])

    def rpc_getBalance(self, params: list[Any]) -> Any:
        required(params, 1)
        key = pubkey(params[0])
        config(params, 1)
        account = self.chain.account(key)
        return self.with_context(account.lamports if account else 0)

    @staticmethod
    def _filters(cfg: dict[str, Any]) -> AccountFilter:
        filters = cfg.get("filters") or []
        if not isinstance(filters, list) or len(filters) > 4:
            raise invalid_params(
                "Too many filters provided; max 4" if isinstance(filters, list) else "filters must be an array"
            )
        sizes: list[int] = []
        memcmps: list[tuple[int, bytes]] = []
        for spec in filters:
            if isinstance(spec, dict) and isinstance(spec.get("dataSize"), int):
                sizes.append(spec["dataSize"])
            elif isinstance(spec, dict) and isinstance(spec.get("memcmp"), dict):
                memcmp = spec["memcmp"]
                offset = memcmp.get("offset")
                if not isinstance(offset, int) or offset < 0:
                    raise invalid_params("memcmp needs an integer `offset`")
                wanted = enc.decode_wire(memcmp.get("bytes"), memcmp.get("encoding") or "base58", "memcmp bytes")
                if len(wanted) > 128:
                    raise invalid_params("encoded binary data should be less than 129 bytes")
                memcmps.append((offset, wanted))
            else:
                raise invalid_params(f"unsupported filter: {json.dumps(spec)}")
        return AccountFilter(sizes, memcmps)

    def rpc_getProgramAccounts(self, params: list[Any]) -> Any:
        required(params, 1)
        owner, cfg = pubkey(params[0]), config(params, 1)
        check = self._filters(cfg)
        if account_encoding(cfg) == enc.KEPT_ENCODING and data_slice(cfg) is None:
            value: Any = self._kept_program_accounts(owner, check)
        else:
            value = [
                {"pubkey": str(key), "account": self.ui_account(account, cfg)}
                for key, account in self.chain.program_accounts(owner)
                if check(account.data, len(account.data))
            ]
        return self.with_context(value) if cfg.get("withContext") else value

    def _kept_program_accounts(self, owner: Pubkey, check: AccountFilter) -> ItemStream:
        """getProgramAccounts' items in `KEPT_ENCODING`, produced `KEPT_SLICE` accounts at a time as the answer
        is sent (`ItemStream`); the program's keys are taken now. Sysvars' are produced at once: the slot clock
        rewrites them, and it is no call that would settle the stream."""
        keys = list(self.chain.program_account_keys(owner))
        owner_text = str(owner).encode()
        slices = (
            self._kept_items(keys[start : start + KEPT_SLICE], owner_text, check)
            for start in range(0, len(keys), KEPT_SLICE)
        )
        stream = ItemStream(slices, self.open_streams)
        if owner == SYSVAR_OWNER:
            stream.settle()
        return stream

    def _kept_items(self, keys: list[Pubkey], owner_text: bytes, check: AccountFilter) -> list[bytes]:
        """The items of `keys` that pass `check`, from the chain's `encoded` (written there the first time an
        account is answered, dropped when it is written), filtered on their kept prefix when the filters end
        within it: no account is read from LiteSVM, compressed or encoded again."""
        chain, kept = self.chain, self.chain.encoded
        on_prefix = check.reach <= enc.FILTER_PREFIX
        found = []
        for key in keys:
            item = kept.get(key)
            if item is None or not on_prefix:
                account = chain.account(key)
                if account is None or not check(account.data, len(account.data)):
                    continue
                if item is None:
                    item = enc.keyed_account_json(key, account, owner_text)
                    if chain.is_recorded(account):
                        kept[key] = item
            elif not check(item.prefix, item.size):
                continue
            found.append(item.json)
        return found

    def rpc_getMinimumBalanceForRentExemption(self, params: list[Any]) -> Any:
        size = param(params, 0, 0)
        if not isinstance(size, int) or size < 0:
            raise invalid_params("invalid type: expected usize")
        return self.chain.svm.minimum_balance_for_rent_exemption(size)

    # -- tokens ----------------------------------------------------------------------------

    def rpc_getTokenAccountsByOwner(self, params: list[Any]) -> Any:
        required(params, 2)
        owner, selector, cfg = pubkey(params[0]), params[1], config(params, 2)
        if not isinstance(selector, dict) or not ({"mint", "programId"} & selector.keys()):
            raise invalid_params("Invalid params: expected `mint` or `programId`")
        mint = pubkey(selector["mint"]) if "mint" in selector else None
        token_programs = [pubkey(selector["programId"])] if "programId" in selector else list(TOKEN_PROGRAMS)
        if token_programs[0] not in TOKEN_PROGRAMS:
            raise RpcError(INVALID_PARAMS, "Invalid param: unrecognized Token program id")
        value = []
        for program in token_programs:
            for key, account in self.chain.program_accounts(program):
                data = account.data
                if (
                    is_token_account(account)
                    and data[32:64] == bytes(owner)
                    and (mint is None or data[0:32] == bytes(mint))
                ):
                    value.append({"pubkey": str(key), "account": self.ui_account(account, cfg)})
        return self.with_context(value)

    def rpc_getTokenAccountBalance(self, params: list[Any]) -> Any:
        required(params, 1)
        key = pubkey(params[0])
        config(params, 1)
        account = self.chain.account(key)
        if not is_token_account(account):
            raise RpcError(INVALID_PARAMS, "Invalid param: not a Token account")
        amount = int.from_bytes(account.data[64:72], "little")
        return self.with_context(token_amount(amount, self.chain.mint_decimals(Pubkey(account.data[0:32]))))

    def rpc_getTokenSupply(self, params: list[Any]) -> Any:
        required(params, 1)
        key = pubkey(params[0])
        config(params, 1)
        account = self.chain.account(key)
        if not is_mint(account):
            raise RpcError(INVALID_PARAMS, "Invalid param: not a Token mint")
        return self.with_context(token_amount(int.from_bytes(account.data[36:44], "little"), account.data[44]))

    # -- transactions ------------------------------------------------------------------------

    def rpc_getSignaturesForAddress(self, params: list[Any]) -> Any:
        required(params, 1)
        address, cfg = pubkey(params[0]), config(params, 1)
        limit = cfg.get("limit") or MAX_SIGNATURES_FOR_ADDRESS
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SIGNATURES_FOR_ADDRESS:
            raise invalid_params("Invalid limit; max 1000")
        bounds = [
            self.chain.ledger.seq(bytes(signature(cfg[name]))) if cfg.get(name) is not None else None
            for name in ("before", "until")
        ]
        rows = self.chain.ledger.signatures_for_address(bytes(address), limit, bounds[0], bounds[1])
        return [
            {
                "signature": str(Signature(row.signature)),
                "slot": row.slot,
                "err": row.err,
                "memo": enc.transaction_memo(row.raw),
                "blockTime": row.block_time,
                "confirmationStatus": "finalized",
            }
            for row in rows
        ]

    def rpc_getSignatureStatuses(self, params: list[Any]) -> Any:
        required(params, 1)
        if not isinstance(params[0], list):
            raise invalid_params("invalid type: expected an array of signatures")
        if len(params[0]) > MAX_SIGNATURE_STATUSES:
            raise invalid_params(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
        history = bool(config(params, 1).get("searchTransactionHistory"))
        value = []
        for sig in params[0]:
            status = self.chain.status(signature(sig), history)
            value.append(
                None
                if status is None
                else {
                    "slot": status[0],
                    "confirmations": None,
                    "err": status[1],
                    "status": {"Ok": None} if status[1] is None else {"Err": status[1]},
                    "confirmationStatus": "finalized",
                }
            )
        return self.with_context(value)

    def rpc_getTransaction(self, params: list[Any]) -> Any:
        required(params, 1)
        sig = signature(params[0])
        cfg = {"encoding": params[1]} if isinstance(param(params, 1), str) else config(params, 1)
        encoding = cfg.get("encoding") or "json"
        if encoding not in ("json", "jsonParsed", "base64", "base58"):  # never answer in another shape
            raise invalid_params(
                f"unsupported encoding: {encoding!r}; this localnet serves getTransaction as "
                "json, jsonParsed, base64 or base58"
            )
        stored = self.chain.ledger.transaction(bytes(sig))
        if stored is None:
            return None
        max_version = cfg.get("maxSupportedTransactionVersion")
        version: Any = "legacy" if stored.raw[1 + 64 * stored.raw[0]] < 0x80 else 0
        if version == 0 and max_version is None:
            raise RpcError(
                UNSUPPORTED_TRANSACTION_VERSION,
                "Transaction version (0) is not supported by the requesting client. Please try the "
                "request again with the following configuration parameter: "
                '"maxSupportedTransactionVersion": 0',
            )
        if encoding == "jsonParsed":
            transaction, meta = enc.encode_parsed_transaction(stored.raw, stored.meta)
        else:
            transaction, meta = enc.encode_transaction(stored.raw, encoding), stored.meta
        result: dict[str, Any] = {
            "slot": stored.slot,
            "transaction": transaction,
            "meta": meta,
            "blockTime": stored.block_time,
        }
        if max_version is not None:
            result["version"] = version
        return result

    def rpc_getLatestBlockhash(self, params: list[Any]) -> Any:
        config(params, 0)
        chain = self.chain
        return self.with_context(
            {"blockhash": chain.blockhash, "lastValidBlockHeight": chain.last_valid_block_height()}
        )

    def rpc_isBlockhashValid(self, params: list[Any]) -> Any:
        required(params, 1)
        config(params, 1)
        if not isinstance(params[0], str):
            raise invalid_params("invalid type: expected a blockhash string")
        try:
            Hash.from_string(params[0])
        except ValueError:
            raise RpcError(INVALID_PARAMS, "Invalid param: Invalid") from None
        return self.with_context(self.chain.is_blockhash_valid(params[0]))

    def rpc_getFeeForMessage(self, params: list[Any]) -> Any:
        required(params, 1)
        config(params, 1)
        raw = enc.decode_wire(params[0], "base64", "message")
        try:
            message: Message | MessageV0 = (
                MessageV0.from_bytes(raw[1:]) if raw[:1] == b"\x80" else Message.from_bytes(raw)
            )
        except Exception as exc:  # noqa: BLE001 - solders raises its own errors for bad bytes: the caller's bad input
            raise invalid_params(f"invalid message: {exc}") from None
        valid = self.chain.is_blockhash_valid(str(message.recent_blockhash))
        return self.with_context(fee_for_message(message) if valid else None)

    @staticmethod
    def _simulation_value(
        outcome: Any, accounts: Any = None, inner: bool = False, replacement: Any = None
    ) -> dict[str, Any]:
        value = {
            "err": outcome.err,
            "logs": outcome.logs,
            "accounts": accounts,
            "unitsConsumed": outcome.units,
            "returnData": outcome.return_data,
            "innerInstructions": outcome.inner_instructions if inner else None,
            "replacementBlockhash": replacement,
        }
        return value

    def rpc_sendTransaction(self, params: list[Any]) -> Any:
        required(params, 1)
        cfg = config(params, 1)
        if cfg.get("preflightCommitment") not in (None, *COMMITMENTS):
            raise invalid_params(f"unknown variant `{cfg['preflightCommitment']}`")
        tx = enc.decode_transaction(params[0], cfg.get("encoding") or "base58")
        preflight = not cfg.get("skipPreflight", False)
        outcome = self.chain.process(tx, preflight=preflight)
        if preflight and outcome.err == "SignatureFailure":
            raise RpcError(TRANSACTION_SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
        if preflight and outcome.err is not None:
            raise RpcError(
                SEND_TRANSACTION_PREFLIGHT_FAILURE,
                f"Transaction simulation failed: {describe_transaction_error(outcome.err)}",
                self._simulation_value(outcome),
            )
        return outcome.signature

    def rpc_simulateTransaction(self, params: list[Any]) -> Any:
        required(params, 1)
        cfg = config(params, 1)
        tx = enc.decode_transaction(params[0], cfg.get("encoding") or "base58")
        sig_verify, replace = bool(cfg.get("sigVerify", False)), bool(cfg.get("replaceRecentBlockhash", False))
        if sig_verify and replace:
            raise invalid_params("sigVerify may not be used with replaceRecentBlockhash")
        wanted = cfg.get("accounts")
        addresses: list[Pubkey] = []
        accounts_cfg: dict[str, Any] = {}
        if wanted is not None:
            if not isinstance(wanted, dict) or not isinstance(wanted.get("addresses"), list):
                raise invalid_params("accounts needs an `addresses` array")
            addresses = [pubkey(a) for a in wanted["addresses"]]
            accounts_cfg = {"encoding": wanted.get("encoding") or "base64"}
            account_encoding(accounts_cfg)
        outcome, post = self.chain.simulate(tx, sig_verify, replace)
        accounts = None
        if wanted is not None:
            accounts = []
            for key in addresses:
                account = post[key] if key in post else self.chain.account(key)
                accounts.append(None if account is None else self.ui_account(account, accounts_cfg))
        replacement = (
            {"blockhash": self.chain.blockhash, "lastValidBlockHeight": self.chain.last_valid_block_height()}
            if replace
            else None
        )
        return self.with_context(
            self._simulation_value(outcome, accounts, bool(cfg.get("innerInstructions")), replacement)
        )

    def rpc_requestAirdrop(self, params: list[Any]) -> Any:
        required(params, 2)
        key, lamports = pubkey(params[0]), params[1]
        config(params, 2)
        if not isinstance(lamports, int) or lamports <= 0:
            raise invalid_params("invalid type: expected u64 lamports")
        outcome = self.chain.airdrop(key, lamports)
        if outcome.err is not None:
            raise RpcError(INTERNAL_ERROR, f"airdrop failed: {describe_transaction_error(outcome.err)}")
        return outcome.signature

    # -- cluster ---------------------------------------------------------------------------

    def rpc_getSlot(self, params: list[Any]) -> Any:
        config(params, 0)
        return self.chain.slot

    def rpc_getBlockHeight(self, params: list[Any]) -> Any:
        config(params, 0)
        return self.chain.slot

    def rpc_getEpochInfo(self, params: list[Any]) -> Any:
        config(params, 0)
        return self.chain.epoch_info()

    def rpc_getEpochSchedule(self, params: list[Any]) -> Any:
        schedule = self.chain.schedule
        return {
            "firstNormalEpoch": schedule.first_normal_epoch,
            "firstNormalSlot": schedule.first_normal_slot,
            "leaderScheduleSlotOffset": schedule.leader_schedule_slot_offset,
            "slotsPerEpoch": schedule.slots_per_epoch,
            "warmup": schedule.warmup,
        }

    def rpc_getTransactionCount(self, params: list[Any]) -> Any:
        config(params, 0)
        return self.chain.transaction_count

    def rpc_getHealth(self, params: list[Any]) -> Any:
        return "ok"

    def rpc_getVersion(self, params: list[Any]) -> Any:
        return {"solana-core": SOLANA_CORE_VERSION, "feature-set": FEATURE_SET}

    def rpc_getGenesisHash(self, params: list[Any]) -> Any:
        return self.chain.genesis_hash

    def rpc_getIdentity(self, params: list[Any]) -> Any:
        return {"identity": str(self.chain.faucet.pubkey())}

    def rpc_getFirstAvailableBlock(self, params: list[Any]) -> Any:
        return 0

    def rpc_minimumLedgerSlot(self, params: list[Any]) -> Any:
        return 0

    def rpc_getBlockTime(self, params: list[Any]) -> Any:
        required(params, 1)
        slot = params[0]
        if not isinstance(slot, int) or slot < 0:
            raise invalid_params("invalid type: expected u64 slot")
        block_time = self.chain.block_time(slot)
        if block_time is None:
            raise RpcError(BLOCK_NOT_AVAILABLE, f"Block not available for slot {slot}")
        return block_time

    def rpc_getRecentPrioritizationFees(self, params: list[Any]) -> Any:
        addresses = param(params, 0, [])
        if not isinstance(addresses, list) or len(addresses) > 128:
            raise invalid_params(
                "Too many inputs provided; max 128"
                if isinstance(addresses, list)
                else "expected an array of public keys"
            )
        for address in addresses:
            pubkey(address)
        first = max(0, self.chain.slot - 149)
        return [{"slot": slot, "prioritizationFee": 0} for slot in range(first, self.chain.slot + 1)]
