"""Idempotent paid calls for sellers: the x402 `payment-identifier` extension with a persistent answer cache.

The seller declares the package's extension in its 402s (`declare_payment_identifier_extension`); a buyer
puts an identifier in its payment payload (`append_payment_identifier_to_extensions`). The first paid call
with an identifier runs as usual (verify → handler → settle) and its answer is kept, keyed by
(payer, identifier): a retry of the same request by the same payer is answered from the cache — status,
headers and body, or, for a body over `max_body_bytes`, an answer naming the settlement — and never
verified or settled again. The same identifier on another request (method, path and query, body hash) is
refused by name, before anything is verified.

The settlement is kept the moment it succeeds, before the answer goes out: if the seller stops (a crash,
an error in the middle of the answer) before the whole answer is kept, a retry of the same request by the
same payer finds the settled entry, runs the handler again (the upstream call is made again) and is
answered, without being verified or charged again (`RERUN`); that answer is then kept like any other.

The payer of a payload is the authority of its transfer, and a cache hit requires the payload's
transaction to carry that payer's valid signature and to pay the token account the kept payment paid: an
identifier alone (which is no secret) opens nothing, and another payer who sends it gets, and pays for, its
own call. Only settled calls are kept, so every entry cost its payer a payment; each payer keeps at most
`max_entries_per_payer` (its oldest go first), the whole cache `max_entries` and `max_bytes`, and entries
expire after `max_age_seconds`.

    >>> cache = AnswerCache(IdempotencySettings(":memory:", max_entries_per_payer=2))
    >>> for n in range(3):
    ...     cache.put("P", f"id-{n}", "fp", Answer(200, [], b"ok", "sig", "solana:x"))
    >>> [cache.get("P", f"id-{n}") is not None for n in range(3)]
    [False, True, True]
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from starlette.types import Message, Receive, Scope, Send
from x402.extensions.payment_identifier import (
    PAYMENT_IDENTIFIER,
    declare_payment_identifier_extension,
    extract_and_validate_payment_identifier,
)
from x402.http.constants import PAYMENT_RESPONSE_HEADER, X_PAYMENT_RESPONSE_HEADER
from x402.http.utils import decode_payment_response_header
from x402.mechanisms.svm.types import ExactSvmPayload
from x402.mechanisms.svm.utils import decode_transaction_from_payload, get_token_payer_from_transaction
from x402.schemas import PaymentPayload, SettleResponse

from ghostpay.paths import data_dir, private_sqlite

REASON_INVALID_IDENTIFIER = "invalid_payment_identifier"
REASON_IDENTIFIER_CONFLICT = "payment_identifier_conflict"  # the same identifier on another request
REASON_BODY_NOT_KEPT = "payment_identifier_answer_not_kept"  # the paid answer was over max_body_bytes
TRANSFER_INDEX = 2  # an exact payment's TransferChecked, after the two compute-budget instructions
TRANSFER_DESTINATION = 2  # TransferChecked's accounts: source, mint, destination, authority
REPLAY_HEADER = "x-payment-identifier-replay"  # on an answer from the cache: the settlement it replays
STATUS_NOT_KEPT = 410  # the paid answer exists no more: its settlement is named instead
PAYMENT_RESPONSE_HEADERS = {PAYMENT_RESPONSE_HEADER.lower().encode(), X_PAYMENT_RESPONSE_HEADER.lower().encode()}
RERUN = "payment_identifier_rerun"  # a paid-call record's error: the handler ran again for a payment settled before

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    payer       TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,      -- sha256 of method, path and query, sha256(body)
    status      INTEGER NOT NULL,
    headers     TEXT NOT NULL,      -- JSON [[name, value], ...], latin-1 text, PAYMENT-RESPONSE included
    body        BLOB,               -- NULL: over max_body_bytes (the answer names the settlement), or not answered
    body_bytes  INTEGER NOT NULL,
    transaction_ TEXT NOT NULL,     -- the settlement's signature
    payee       TEXT NOT NULL,      -- the token account the payment paid: a hit's transaction pays it too
    network     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    answered    INTEGER NOT NULL DEFAULT 1,  -- 0: settled, its answer not kept yet (a retry runs the call again)
    PRIMARY KEY (payer, identifier)
);
CREATE INDEX IF NOT EXISTS answers_age ON answers (created_at);
CREATE INDEX IF NOT EXISTS answers_payer ON answers (payer, created_at);
"""


def default_cache_path(agent: Pubkey | str) -> Path:
    """A seller's cache in the private data folder (`ghost path`), one file per agent."""
    return data_dir() / "x402-idempotency" / f"{agent}.sqlite3"


@dataclass(frozen=True)
class IdempotencySettings:
    """Where the answer cache lives and how big it may grow (`SellerSettings(idempotency=...)`)."""

    # a SQLite file (":memory:": a cache that dies with the process); None: `default_cache_path(agent)`
    path: Path | str | None = None
    max_entries: int = 10_000
    max_bytes: int = 64 * 1024 * 1024  # bodies and headers of all entries; the oldest go first
    max_entries_per_payer: int = 100
    max_age_seconds: float = 24 * 3600.0
    max_body_bytes: int = 64 * 1024  # a longer answer is not kept: a retry gets one naming its settlement
    max_request_bytes: int = 1024 * 1024  # a request with an identifier is read whole (its body is hashed)
    wait_seconds: float = 60.0  # a retry arriving while the first call is still running waits this long


@dataclass(frozen=True)
class Answer:
    """A paid call's answer as sent: its status, headers (as bytes pairs), body (None: not kept)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes | None
    transaction: str
    network: str
    body_bytes: int = 0
    payee: str = ""  # the token account the payment paid
    answered: bool = True  # False: the payment settled, the answer was not kept (the seller stopped before)

    def settlement(self) -> SettleResponse:
        """The settle response this answer's PAYMENT-RESPONSE header carried (what a re-run sends again)."""
        for name, value in self.headers:
            if name.lower() in PAYMENT_RESPONSE_HEADERS:
                return decode_payment_response_header(value.decode("latin-1"))
        return SettleResponse(success=True, transaction=self.transaction, network=self.network)


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    """What makes two requests the same call: method, path and query, and the body's hash."""
    parts = [method.upper(), path, query.decode("latin-1"), hashlib.sha256(body).hexdigest()]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def signed_payer(payload: PaymentPayload) -> tuple[str, str] | None:
    """(payer, token account paid) of an exact SVM payment whose transaction carries its payer's valid
    signature, else None."""
    try:
        tx = decode_transaction_from_payload(ExactSvmPayload.from_dict(payload.payload))
        payer = get_token_payer_from_transaction(tx)
        keys = list(tx.message.account_keys)
        transfer = tx.message.instructions[TRANSFER_INDEX]
        payee = str(keys[transfer.accounts[TRANSFER_DESTINATION]])
        slot = keys[: tx.message.header.num_required_signatures].index(Pubkey.from_string(payer))
        signed = tx.signatures[slot].verify(keys[slot], to_bytes_versioned(tx.message))
        return (payer, payee) if signed else None
    except Exception:  # noqa: BLE001 - not an exact SVM payment, or no signature of its payer
        return None


def identifier_of(payload: PaymentPayload) -> tuple[str | None, str | None]:
    """(the payload's payment identifier or None, the reason it is refused or None), by the package's rules."""
    identifier, validation = extract_and_validate_payment_identifier(payload)
    if not validation.valid:
        return None, "; ".join(validation.errors)
    return identifier, None


class AnswerCache:
    """The (payer, identifier) → answer table, pruned on every write (age, per payer, in all)."""

    def __init__(self, settings: IdempotencySettings, agent: Pubkey | str = "") -> None:
        self.settings = settings
        path = default_cache_path(agent) if settings.path is None else settings.path
        self._db = private_sqlite(path, SCHEMA)
        self._lock = threading.Lock()
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}
        if "answered" not in columns:  # a cache written before settlements were kept ahead of their answers
            self._db.execute("ALTER TABLE answers ADD COLUMN answered INTEGER NOT NULL DEFAULT 1")

    def close(self) -> None:
        self._db.close()

    def get(self, payer: str, identifier: str, now: float | None = None) -> tuple[str, Answer] | None:
        """(fingerprint, answer) kept for this payer's identifier, unless expired."""
        oldest = (time.time() if now is None else now) - self.settings.max_age_seconds
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, status, headers, body, transaction_, network, body_bytes, payee, answered "
                "FROM answers WHERE payer = ? AND identifier = ? AND created_at >= ?",
                (payer, identifier, oldest),
            ).fetchone()
        if row is None:
            return None
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in json.loads(row[2])]
        return row[0], Answer(row[1], headers, row[3], row[4], row[5], row[6], row[7], bool(row[8]))

    def put(self, payer: str, identifier: str, fp: str, answer: Answer, now: float | None = None) -> None:
        now = time.time() if now is None else now
        body = answer.body if answer.body is not None and len(answer.body) <= self.settings.max_body_bytes else None
        headers = json.dumps([(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.headers])
        with self._lock, closing(self._db.cursor()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                # `answered` is the last column, in a table made with it or one it was added to
                db.execute(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        payer,
                        identifier,
                        fp,
                        answer.status,
                        headers,
                        body,
                        answer.body_bytes,
                        answer.transaction,
                        answer.payee,
                        answer.network,
                        now,
                        int(answer.answered),
                    ),
                )
                self._prune(db, payer, now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _prune(self, db: sqlite3.Cursor, payer: str, now: float) -> None:
        db.execute("DELETE FROM answers WHERE created_at < ?", (now - self.settings.max_age_seconds,))
        db.execute(
            "DELETE FROM answers WHERE payer = ? AND rowid NOT IN "
            "(SELECT rowid FROM answers WHERE payer = ? ORDER BY created_at DESC, rowid DESC LIMIT ?)",
            (payer, payer, self.settings.max_entries_per_payer),
        )
        db.execute(
            "DELETE FROM answers WHERE rowid NOT IN "
            "(SELECT rowid FROM answers ORDER BY created_at DESC, rowid DESC LIMIT ?)",
            (self.settings.max_entries,),
        )
        db.execute(
            "DELETE FROM answers WHERE rowid IN (SELECT rowid FROM (SELECT rowid, SUM(COALESCE(LENGTH(body), 0) + "
            "LENGTH(headers)) OVER (ORDER BY created_at DESC, rowid DESC) AS kept FROM answers) WHERE kept > ?)",
            (self.settings.max_bytes,),
        )

    def count(self, payer: str | None = None) -> int:
        with self._lock:
            if payer is None:
                return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
            return int(self._db.execute("SELECT COUNT(*) FROM answers WHERE payer = ?", (payer,)).fetchone()[0])


class Idempotency:
    """A seller's idempotency: the 402 declaration, the cache, and the calls still running per key."""

    def __init__(self, settings: IdempotencySettings, agent: Pubkey | str) -> None:
        self.settings = settings
        self.cache = AnswerCache(settings, agent)
        self._running: dict[tuple[str, str], asyncio.Event] = {}

    def close(self) -> None:
        self.cache.close()

    @staticmethod
    def declaration() -> dict[str, Any]:
        """`PaymentRequired.extensions` entries: the package's payment-identifier declaration (optional id)."""
        return {PAYMENT_IDENTIFIER: declare_payment_identifier_extension(required=False)}

    async def claim(self, key: tuple[str, str]) -> asyncio.Event:
        """Wait for a call with this key still running (a retry that arrived early), then run as it; the
        event to `release` once done."""
        deadline = time.monotonic() + self.settings.wait_seconds
        while (running := self._running.get(key)) is not None:
            try:
                await asyncio.wait_for(running.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break  # the first call hangs: this one is served on its own (the cache still says if it paid)
        mine = self._running[key] = asyncio.Event()
        return mine

    def release(self, key: tuple[str, str], mine: asyncio.Event) -> None:
        """Wake the calls waiting for this one (the key stays claimed by a later call that stopped waiting)."""
        if self._running.get(key) is mine:
            del self._running[key]
        mine.set()

    def not_kept_body(self, answer: Answer) -> bytes:
        """What a retry gets for an answer not kept: the settlement that paid for it."""
        return json.dumps(
            {
                "error": REASON_BODY_NOT_KEPT,
                "message": "this paid call was answered before; its answer was too large to keep "
                f"(over {self.settings.max_body_bytes} bytes)",
                "status": answer.status,
                "bodyBytes": answer.body_bytes,
                "transaction": answer.transaction,
                "network": answer.network,
            },
            separators=(",", ":"),
        ).encode()


class IdempotentCall:
    """One paid request carrying an identifier, not answered from the cache: its body (read whole, and
    replayed to the app by `receive`), and its answer as it goes out: the settlement kept as soon as it
    succeeds, the answer once it was sent whole. `rerun`: the kept settlement of this request, whose answer
    was never kept (the call runs again, not verified, not settled)."""

    def __init__(
        self,
        idem: Idempotency,
        key: tuple[str, str],
        claimed: asyncio.Event,
        fp: str,
        payee: str,
        body: bytes,
        receive: Receive,
        rerun: Answer | None = None,
    ) -> None:
        self.idem, self.key, self.claimed, self.fp, self.payee = idem, key, claimed, fp, payee
        self.rerun = rerun
        self._body: bytes | None = body
        self._receive = receive
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False
        self.transaction = ""
        self.network = ""

    async def receive(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        return await self._receive()

    def settled(self, start: Message, transaction: str, network: str) -> None:
        """The payment settled (or had, for a re-run) and this answer starts (its PAYMENT-RESPONSE among the
        headers): the settlement is kept before the answer goes out."""
        self.status, self.headers = start["status"], list(start.get("headers", []))
        self.transaction, self.network = transaction, network
        if self.rerun is None:
            pending = Answer(self.status, self.headers, None, transaction, network, 0, self.payee, answered=False)
            self.idem.cache.put(*self.key, self.fp, pending)

    def body(self, message: Message) -> None:
        chunk = message.get("body", b"")
        self.size += len(chunk)
        if self.size <= self.idem.settings.max_body_bytes:
            self.chunks.append(chunk)
        self.complete = not message.get("more_body", False)

    def finish(self) -> None:
        """Keep the answer once it was sent whole (its body if small enough); free the key. An answer cut short
        leaves the settlement kept alone: a retry runs the call again."""
        try:
            if self.transaction and self.complete:
                body = b"".join(self.chunks) if self.size <= self.idem.settings.max_body_bytes else None
                answer = Answer(self.status, self.headers, body, self.transaction, self.network, self.size, self.payee)
                self.idem.cache.put(*self.key, self.fp, answer)
        finally:
            self.idem.release(self.key, self.claimed)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past `limit` bytes (or when the client left)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass(frozen=True)
class Refusal:
    """A request the cache refuses, by name: the 402's error and `reason`."""

    reason: str
    message: str


REPLAYED = object()  # `begin`'s answer when the cache answered the request


async def begin(
    idem: Idempotency, payload: PaymentPayload, scope: Scope, receive: Receive, send: Send
) -> IdempotentCall | Refusal | object | None:
    """Before a payment with an identifier is verified: answer it from the cache (REPLAYED), refuse it
    (`Refusal`), or claim its key and return the call to run (`IdempotentCall`). None: no identifier, or
    no valid signature of its payer (the facilitator's verify refuses such a payment)."""
    identifier, invalid = identifier_of(payload)
    if invalid is not None:
        return Refusal(REASON_INVALID_IDENTIFIER, invalid)
    signed = signed_payer(payload) if identifier else None
    if identifier is None or signed is None:
        return None
    payer, payee = signed
    body = await read_body(receive, idem.settings.max_request_bytes)
    if body is None:
        return Refusal(
            REASON_INVALID_IDENTIFIER,
            f"a paid request with a payment identifier has a body of at most {idem.settings.max_request_bytes} bytes",
        )
    fp = fingerprint(scope["method"], scope["path"], scope.get("query_string", b""), body)
    key = (payer, identifier)
    claimed = await idem.claim(key)
    kept = await asyncio.to_thread(idem.cache.get, *key)
    # a transaction the payer signed for another payee gets nothing from the cache: its verify refuses it
    if kept is None or kept[1].payee != payee:
        return IdempotentCall(idem, key, claimed, fp, payee, body, receive)
    kept_fp, answer = kept
    if kept_fp != fp:
        idem.release(key, claimed)
        return Refusal(
            REASON_IDENTIFIER_CONFLICT,
            f"payment identifier {identifier} was used by this payer for another request (method, path, query or "
            "body differ); use a new identifier for a new call",
        )
    if not answer.answered:  # paid, never answered whole: run it again, the key stays claimed
        return IdempotentCall(idem, key, claimed, fp, payee, body, receive, rerun=answer)
    idem.release(key, claimed)
    await replay(idem, answer, send)
    return REPLAYED


async def replay(idem: Idempotency, answer: Answer, send: Send) -> None:
    """Send a kept answer again, marked with the settlement it replays; nothing is verified or settled."""
    marker = (REPLAY_HEADER.encode(), answer.transaction.encode())
    if answer.body is not None:
        headers = [*answer.headers, marker]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        return
    body = idem.not_kept_body(answer)
    payment = [(k, v) for k, v in answer.headers if k.lower() in PAYMENT_RESPONSE_HEADERS]
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *payment,
        marker,
    ]
    await send({"type": "http.response.start", "status": STATUS_NOT_KEPT, "headers": headers})
    await send({"type": "http.response.body", "body": body})
