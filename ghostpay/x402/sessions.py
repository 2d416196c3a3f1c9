"""Sign-In-With-Solana sessions for sellers: the x402 `sign-in-with-x` extension over the seller's paid-call log.

A seller with a session period (`SellerSettings(session=3600)`, `ghost x402 proxy --session 1h`) declares the
package's SIWX extension in every 402 of a priced route (`declare_siwx_extension`, Solana's ed25519 signature
type), with a fresh challenge: its origin's domain, the route's URI, a nonce, issuedAt and expirationTime. A
buyer who paid for that route signs the challenge with the key that paid and sends it as `SIGN-IN-WITH-X`
(the package's `create_siwx_payload` / `encode_siwx_header`); the seller serves the request without a payment
when every check passes:

- the header parses and the message passes the package's `validate_siwx_message` against the seller's origin
  (domain, URI origin, issuedAt not older than the challenge's lifetime nor in the future, not expired);
- it is on the seller's network, for this route's path (a session for /a opens nothing on /b);
- its nonce is one this seller issued for these fields (an HMAC under a secret kept in the session database:
  challenges outlive a restart, and no 402 writes anything);
- the package's `verify_siwx_signature` accepts its ed25519 signature by `address`;
- `address` paid for this path within the period, measured from its last settled payment in the log (and,
  with `confirm_on_chain`, a payment that carried GhostPay's record must also show its receipt on chain: the
  settled transaction's X402PaymentRecorded event for this agent and payer, within the period by its time);
- the nonce was never used (recorded in the database: a replay is refused, after a restart too).

A refusal answers a fresh 402 (a new challenge and the requirements) whose error and `reason` name it.

The origin is `SessionSettings.origin`, else the address the server listens on (the connection's, never the
client's Host header: a challenge another site obtained cannot be made ours by sending its host).

    >>> store = SessionStore(":memory:")
    >>> store.record_payment("Payer", "/paid", "sig", 10, "Mint", False, now=100.0)
    >>> store.payment("Payer", "/paid").paid_at, store.payment("Payer", "/other")
    (100.0, None)
    >>> store.use_nonce("n1", 200.0, now=100.0), store.use_nonce("n1", 200.0, now=100.0)
    (True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from solders.pubkey import Pubkey
from starlette.types import Message, Scope, Send
from x402.extensions.sign_in_with_x import (
    SIGN_IN_WITH_X,
    DeclareSIWxOptions,
    SIWxPayload,
    SIWxValidationOptions,
    declare_siwx_extension,
    normalize_configured_origin,
    parse_siwx_header,
    validate_siwx_message,
    verify_siwx_signature,
)

from ghostpay.exceptions import GhostPayError
from ghostpay.paths import data_dir, private_sqlite
from ghostpay.x402.idempotency import Refusal

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient

SESSION_HEADER = "x-ghostpay-session"  # on an answer served on a session: the settlement that paid for it
HINT_KEY = "ghostpay"  # beside the package's info/supportedChains/schema: {"sessionSeconds": the period}
NONCE_RANDOM_BYTES = 8
NONCE_MAC_BYTES = 12
DEFAULT_PORTS = {"http": 80, "https": 443}
NONCE_KEPT_AFTER_EXPIRY = 60.0  # seconds a used nonce is kept past its challenge's expiry (clock skew)

REASON_MALFORMED = "invalid_siwx_header"
REASON_CHAIN = "invalid_siwx_chain_id"
REASON_OTHER_ROUTE = "siwx_other_route"  # the challenge names another route's URI
REASON_NONCE_FORGED = "invalid_siwx_nonce"  # not a nonce this seller issued for these fields
REASON_NOT_PAID = "siwx_not_paid"  # the key never paid for this route (in this seller's log)
REASON_EXPIRED = "siwx_session_expired"  # it paid, longer ago than the period
REASON_NOT_CONFIRMED = "siwx_payment_not_confirmed"  # confirm_on_chain: the paying transaction is not on chain
REASON_REPLAYED = "siwx_nonce_used"  # the challenge was used before

SCHEMA = """
CREATE TABLE IF NOT EXISTS secret (id INTEGER PRIMARY KEY CHECK (id = 1), value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS paid (
    payer        TEXT NOT NULL,
    path         TEXT NOT NULL,
    paid_at      REAL NOT NULL,      -- the last settled payment of this payer for this path (seller's clock)
    transaction_ TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    mint         TEXT NOT NULL,
    recorded     INTEGER NOT NULL,   -- the payment carried GhostPay's record instruction
    PRIMARY KEY (payer, path)
);
CREATE TABLE IF NOT EXISTS used_nonces (nonce TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS used_nonces_expiry ON used_nonces (expires_at);
"""


def default_session_path(agent: Pubkey | str) -> Path:
    """A seller's session database in the private data folder (`ghost path`), one file per agent."""
    return data_dir() / "x402-sessions" / f"{agent}.sqlite3"


@dataclass(frozen=True)
class SessionSettings:
    """How long a payment opens its route to its payer, and where the session state lives."""

    period_seconds: float
    path: Path | str | None = None  # SQLite (":memory:": dies with the process); None: default_session_path
    origin: str | None = None  # scheme://host[:port] buyers call; None: the address the server listens on
    challenge_seconds: int = 300  # a challenge's lifetime: its expirationTime, and the max age of its issuedAt
    confirm_on_chain: bool = False  # a recorded payment opens a session only once its receipt is on chain
    statement: str = "Sign in with the key that paid for this route: calls within the paid period are free."

    def __post_init__(self) -> None:
        if self.period_seconds <= 0:
            raise ValueError(f"a session period is positive, not {self.period_seconds}")
        if self.origin is not None:
            object.__setattr__(self, "origin", normalize_configured_origin(self.origin))


def session_settings(value: SessionSettings | timedelta | float | None) -> SessionSettings | None:
    """`SellerSettings.session` as SessionSettings: a period (timedelta or seconds), or the settings."""
    if value is None or isinstance(value, SessionSettings):
        return value
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return SessionSettings(seconds)


@dataclass(frozen=True)
class Payment:
    """A payer's last settled payment for a path, as the session log keeps it."""

    paid_at: float
    transaction: str
    amount: int
    mint: str
    recorded: bool


@dataclass(frozen=True)
class Granted:
    """A request served on a session: who signed in, and the payment that opened the session."""

    payer: str
    payment: Payment


class SessionStore:
    """The session database: the nonce secret, each payer's last payment per path, the nonces used."""

    def __init__(self, path: Path | str) -> None:
        self._db = private_sqlite(path, SCHEMA)
        self._lock = threading.Lock()
        self._db.execute("INSERT OR IGNORE INTO secret VALUES (1, ?)", (secrets.token_bytes(32),))
        self.secret: bytes = self._db.execute("SELECT value FROM secret").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def record_payment(
        self, payer: str, path: str, transaction: str, amount: int, mint: str, recorded: bool, now: float
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO paid VALUES (?, ?, ?, ?, ?, ?, ?)",
                (payer, path, now, transaction, amount, mint, int(recorded)),
            )

    def payment(self, payer: str, path: str) -> Payment | None:
        with self._lock:
            row = self._db.execute(
                "SELECT paid_at, transaction_, amount, mint, recorded FROM paid WHERE payer = ? AND path = ?",
                (payer, path),
            ).fetchone()
        return None if row is None else Payment(row[0], row[1], row[2], row[3], bool(row[4]))

    def use_nonce(self, nonce: str, expires_at: float, now: float) -> bool:
        """Mark `nonce` used; False if it was already (expired ones are forgotten: their challenges are refused)."""
        with self._lock:
            self._db.execute("DELETE FROM used_nonces WHERE expires_at < ?", (now - NONCE_KEPT_AFTER_EXPIRY,))
            try:
                self._db.execute("INSERT INTO used_nonces VALUES (?, ?)", (nonce, expires_at))
            except sqlite3.IntegrityError:
                return False
        return True


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def origin_of(scope: Scope) -> str:
    """The origin of the address the server listens on for this connection (not the client's Host header)."""
    scheme = scope.get("scheme", "http")
    server = scope.get("server")
    if not server or server[1] is None:
        raise ValueError("the server's address is unknown: set SessionSettings(origin=...)")
    host, port = server
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if DEFAULT_PORTS.get(scheme) == port else f":{port}")


class Sessions:
    """A seller's sessions: the SIWX challenge of its 402s and the sign-in check of a request."""

    def __init__(
        self,
        settings: SessionSettings,
        agent: Pubkey | str,
        network: str,
        gp: GhostPayClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.agent = str(agent)
        self.network = network
        self.gp = gp  # reads the payments' receipts, with confirm_on_chain
        self.clock = clock  # the paid period's clock (the package checks the challenge's times on the wall clock)
        self.store = SessionStore(default_session_path(agent) if settings.path is None else settings.path)

    def close(self) -> None:
        self.store.close()

    def origin(self, scope: Scope) -> str:
        return self.settings.origin or origin_of(scope)

    def _mac(self, random_part: str, domain: str, uri: str, issued_at: str, expiration: str) -> str:
        message = "\n".join((random_part, domain, uri, issued_at, expiration, self.network)).encode()
        return hmac.new(self.store.secret, message, hashlib.sha256).hexdigest()[: NONCE_MAC_BYTES * 2]

    def challenge(self, scope: Scope, now: float | None = None) -> dict[str, Any]:
        """`PaymentRequired.extensions` entries: the package's SIWX declaration for this route, its challenge
        filled in (as the package's server extension fills it, with a nonce this seller can recognise), and the
        period in `ghostpay.sessionSeconds`. `now`: when it is issued (unix time; default: now)."""
        origin = self.origin(scope)
        options = DeclareSIWxOptions(
            statement=self.settings.statement, network=self.network, expirationSeconds=self.settings.challenge_seconds
        )
        declaration = dict(declare_siwx_extension(options)[SIGN_IN_WITH_X])
        declaration.pop("_options", None)  # the package's server-side options, not for the wire
        now = time.time() if now is None else now
        uri = origin + scope["path"]
        issued_at, expiration = _iso(now), _iso(now + self.settings.challenge_seconds)
        random_part = secrets.token_hex(NONCE_RANDOM_BYTES)
        nonce = random_part + self._mac(random_part, urlparse(origin).netloc, uri, issued_at, expiration)
        declaration["info"] = {
            **declaration["info"],
            "domain": urlparse(origin).netloc,
            "uri": uri,
            "nonce": nonce,
            "issuedAt": issued_at,
            "expirationTime": expiration,
            "resources": [uri],
        }
        declaration[HINT_KEY] = {"sessionSeconds": self.settings.period_seconds}
        return {SIGN_IN_WITH_X: declaration}

    def _issued_here(self, payload: SIWxPayload) -> bool:
        random_part = payload.nonce[: NONCE_RANDOM_BYTES * 2]
        expected = random_part + self._mac(
            random_part, payload.domain, payload.uri, payload.issued_at, payload.expiration_time or ""
        )
        return hmac.compare_digest(expected, payload.nonce)

    async def sign_in(self, header: str, scope: Scope) -> Granted | Refusal:
        """Check a SIGN-IN-WITH-X header sent to this route (see the module's doc), consuming its nonce."""
        try:
            payload = parse_siwx_header(header)
        except ValueError as exc:
            return Refusal(REASON_MALFORMED, str(exc)[:300])
        max_age_ms = self.settings.challenge_seconds * 1000
        valid = await validate_siwx_message(payload, self.origin(scope), SIWxValidationOptions(maxAge=max_age_ms))
        if not valid.is_valid:
            return Refusal(valid.invalid_reason or REASON_MALFORMED, valid.invalid_message or "invalid SIWX message")
        if payload.chain_id != self.network or payload.type != "ed25519":
            return Refusal(REASON_CHAIN, f"sign in on {self.network} with an ed25519 (Solana) key")
        if urlparse(payload.uri).path != scope["path"]:
            return Refusal(REASON_OTHER_ROUTE, f"the challenge is for {payload.uri}, not this route")
        if not self._issued_here(payload):
            return Refusal(REASON_NONCE_FORGED, "the challenge's nonce was not issued by this seller for it")
        verified = await verify_siwx_signature(payload)
        if not verified.is_valid or not verified.payer:
            return Refusal(verified.invalid_reason or "invalid_siwx_signature", verified.invalid_message or "")
        payment = self.store.payment(verified.payer, scope["path"])
        refusal = await self._session_refusal(verified.payer, payment)
        if refusal is not None:
            return refusal
        assert payment is not None
        expires = _timestamp(payload.expiration_time or payload.issued_at)  # the MAC covers it: always ours
        if not self.store.use_nonce(payload.nonce, expires, time.time()):
            return Refusal(REASON_REPLAYED, "this challenge was used before: sign a new one (this 402's)")
        return Granted(verified.payer, payment)

    async def _session_refusal(self, payer: str, payment: Payment | None) -> Refusal | None:
        """Why `payer`'s last payment opens no session now, or None."""
        period = self.settings.period_seconds
        if payment is None:
            return Refusal(REASON_NOT_PAID, f"{payer} has not paid for this route: pay once, then sign in")
        if self.clock() - payment.paid_at >= period:
            return Refusal(REASON_EXPIRED, f"{payer}'s last payment for this route is older than {period:g} s")
        if self.settings.confirm_on_chain and payment.recorded:
            paid_at = await self._receipt_time(payer, payment.transaction)
            if paid_at is None:
                return Refusal(REASON_NOT_CONFIRMED, f"no receipt of {payer}'s payment {payment.transaction} on chain")
            if self.clock() - paid_at >= period:
                return Refusal(REASON_EXPIRED, f"{payer}'s payment on chain is older than {period:g} s")
        return None

    async def _receipt_time(self, payer: str, transaction: str) -> float | None:
        """When the chain says `transaction` recorded `payer`'s payment to this agent (its X402PaymentRecorded
        event's timestamp), or None."""
        if self.gp is None:
            return None
        try:
            events = await self.gp.get_transaction_events(transaction)
        except (GhostPayError, ValueError):  # not on chain (yet), or not a signature
            return None
        for event in events:
            if event.name == "X402PaymentRecorded" and str(event.agent) == self.agent and str(event.payer) == payer:
                return float(event.timestamp)
        return None

    def paid(self, payer: str, path: str, transaction: str, amount: int, mint: str, recorded: bool) -> None:
        """A settled payment of `payer` for `path`: its session starts now."""
        self.store.record_payment(payer, path, transaction, amount, mint, recorded, self.clock())


def with_session_header(send: Send, granted: Granted) -> Send:
    """`send` adding SESSION_HEADER (the settlement that opened the session) to the answer's start."""
    marker = (SESSION_HEADER.encode(), granted.payment.transaction.encode())

    async def session_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), marker]}
        await send(message)

    return session_send
