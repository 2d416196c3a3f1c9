"""Seller keys of the facilitator: who may have payments settled, and on what terms.

`ghost facilitator keys add NAME` makes a key `gpk_<id>_<secret>`, prints it once and stores only
its SHA-256, with the seller's terms (rent fronting, quotas), in the facilitator's database (SQLite, or the
PostgreSQL its replicas share).
A request authenticates in one of two ways:

    Authorization: Bearer gpk_<id>_<secret>
    Authorization: GhostPay-HMAC-SHA256 key=<id>, ts=<unix seconds>, nonce=<hex>, sig=<hex>

The HMAC is HMAC-SHA256 over `<ts>.<nonce>.<endpoint>.` + the request body (`endpoint`: the last
path segment, `verify`, `settle`, `supported` or `policy`, so a facilitator behind a path prefix
checks the same bytes), keyed with SHA-256(key): the key itself never crosses the wire. A signature
is accepted once, within `MAX_AGE_SECONDS` of its timestamp, by whichever replica sees it first (the nonces
used are kept in the database).

    >>> store = KeyStore(":memory:")
    >>> seller, key = store.add("alice")
    >>> key.startswith("gpk_" + seller.key_id + "_"), seller.front_rent
    (True, False)
    >>> auth = Authenticator(store)
    >>> auth.identify("settle", {"authorization": f"Bearer {key}"}).key.name
    'alice'
    >>> signed = sign_request(key, "settle", b"{}")
    >>> auth.identify("settle", signed).check(b"{}").name
    'alice'
    >>> auth.identify("settle", signed).check(b"{}")
    Traceback (most recent call last):
    ...
    ghostpay.x402.facilitator.keys.AuthRefused: ghostpay_auth_replayed: this signature was already used
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ghostpay.exceptions import GhostPayError
from ghostpay.x402.facilitator.database import POSTGRESQL, SQLITE, Database, DatabaseError
from ghostpay.x402.facilitator.defaults import (
    DEFAULT_FEE_LAMPORTS_PER_DAY,
    DEFAULT_MAX_RENT_OUTSTANDING,
    DEFAULT_SETTLES_PER_MINUTE,
)

KEY_PREFIX = "gpk_"
MAX_AGE_SECONDS = 300  # an HMAC timestamp this far from the facilitator's clock (either way) is refused
HMAC_SCHEME = "GhostPay-HMAC-SHA256"
STORE_TIMEOUT_SECONDS = 2.0  # waiting for a lock on the database longer than this fails closed


# Refusals (HTTP 401, 403 or 503 with {"error": reason, "message": ...}).
ERR_AUTH_REQUIRED = "ghostpay_auth_required"
ERR_AUTH_MALFORMED = "ghostpay_auth_malformed"
ERR_AUTH_UNKNOWN_KEY = "ghostpay_auth_unknown_key"
ERR_AUTH_REVOKED = "ghostpay_auth_key_revoked"
ERR_AUTH_EXPIRED = "ghostpay_auth_expired"
ERR_AUTH_REPLAYED = "ghostpay_auth_replayed"
ERR_AUTH_BAD_SIGNATURE = "ghostpay_auth_bad_signature"
ERR_AUTH_STORE_UNAVAILABLE = "ghostpay_auth_store_unavailable"
ERR_LOOPBACK_ONLY = "ghostpay_loopback_only"
AUTH_REFUSALS = {
    ERR_AUTH_REQUIRED: "no Authorization header on /verify or /settle while seller keys are configured (HTTP 401)",
    ERR_AUTH_MALFORMED: "an Authorization header that is neither a bearer key nor an HMAC (HTTP 401)",
    ERR_AUTH_UNKNOWN_KEY: "a key this facilitator does not know (HTTP 401)",
    ERR_AUTH_REVOKED: "a revoked key (HTTP 401)",
    ERR_AUTH_EXPIRED: f"an HMAC timestamp more than {MAX_AGE_SECONDS} s from the facilitator's clock (HTTP 401)",
    ERR_AUTH_REPLAYED: "an HMAC signature already used (HTTP 401)",
    ERR_AUTH_BAD_SIGNATURE: "an HMAC that does not match the request (HTTP 401)",
    ERR_AUTH_STORE_UNAVAILABLE: "the key store cannot be read (HTTP 503, fails closed)",
    ERR_LOOPBACK_ONLY: "a client not on loopback (or behind a forwarding proxy) while no key is configured (HTTP 403)",
}
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")  # a local proxy relaying someone else

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS seller_keys (
    key_id               TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,     -- one active key per name
    key_sha256           TEXT NOT NULL,     -- SHA-256 of the whole key; also the HMAC signing key
    front_rent           INTEGER NOT NULL,  -- the fee payer may pay this seller's receipts' rent
    max_rent_outstanding BIGINT NOT NULL,   -- lamports of fronted rent not yet swept back
    settles_per_minute   BIGINT NOT NULL,
    fee_lamports_per_day BIGINT NOT NULL,   -- in any 24 hours
    created_at           DOUBLE PRECISION NOT NULL,
    revoked_at           DOUBLE PRECISION
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS seller_keys_active_name ON seller_keys (name) WHERE revoked_at IS NULL",
    # Bumped by every change to seller_keys, from any process: a facilitator keeps the table in memory and reads
    # only this row per request, reloading the table when it moved (a key added or revoked counts at once).
    "CREATE TABLE IF NOT EXISTS seller_keys_version (id INTEGER PRIMARY KEY CHECK (id = 0), version BIGINT NOT NULL)",
    # HMAC signatures used (key id and nonce) within twice MAX_AGE_SECONDS: each is accepted once, by any replica.
    "CREATE TABLE IF NOT EXISTS auth_nonces (replay_id TEXT PRIMARY KEY, used_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS auth_nonces_used_at ON auth_nonces (used_at)",
)
BUMP = (
    "INSERT INTO seller_keys_version VALUES (0, 1) ON CONFLICT (id) DO UPDATE "
    "SET version = seller_keys_version.version + 1"
)
VERSION_TRIGGERS = {
    SQLITE: tuple(
        f"CREATE TRIGGER IF NOT EXISTS seller_keys_{done} AFTER {event} ON seller_keys BEGIN {BUMP}; END"
        for event, done in (("INSERT", "inserted"), ("UPDATE", "updated"), ("DELETE", "deleted"))
    ),
    POSTGRESQL: (
        "CREATE OR REPLACE FUNCTION ghostpay_seller_keys_changed() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN {BUMP}; RETURN NULL; END $$",
        "CREATE OR REPLACE TRIGGER seller_keys_changed AFTER INSERT OR UPDATE OR DELETE ON seller_keys "
        "FOR EACH STATEMENT EXECUTE FUNCTION ghostpay_seller_keys_changed()",
    ),
}
NONCE_PRUNE_EVERY = 256  # signed requests between two deletes of the nonces too old to matter
_HMAC_FIELDS = re.compile(r"\s*(key|ts|nonce|sig)=([A-Za-z0-9_-]+)\s*")


class AuthRefused(GhostPayError):
    """A request the facilitator will not serve: `reason` names why, `status` is the HTTP status."""

    def __init__(self, reason: str, message: str, status: int = 401) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message, self.status = reason, message, status


class KeyStoreError(GhostPayError):
    """A key operation the store refuses (a name taken, no such key)."""


@dataclass(frozen=True)
class SellerKey:
    """A seller's key as stored (never the key itself) and the terms it grants."""

    key_id: str
    name: str
    front_rent: bool
    max_rent_outstanding: int
    settles_per_minute: int
    fee_lamports_per_day: int
    created_at: float
    revoked_at: float | None = None

    def terms(self) -> dict[str, object]:
        return {
            "name": self.name,
            "keyId": self.key_id,
            "frontRent": self.front_rent,
            "maxRentOutstandingLamports": self.max_rent_outstanding,
            "settlesPerMinute": self.settles_per_minute,
            "feeLamportsPerDay": self.fee_lamports_per_day,
        }


@dataclass(frozen=True)
class Caller:
    """Who a verify, settle or policy request is for: a seller's key, the operator (a loopback client
    while no key is configured, or an in-process caller), or an anonymous reader of public routes."""

    name: str
    seller: SellerKey | None = None
    operator: bool = False

    @property
    def may_front_rent(self) -> bool:
        return self.operator or (self.seller is not None and self.seller.front_rent)


OPERATOR = Caller("operator", operator=True)
ANONYMOUS = Caller("anonymous")


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id_of(key: str) -> str | None:
    """The id inside a key (`gpk_<id>_<secret>`), or None when it is not shaped like one."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    return key_id if sep and key_id and secret else None


def signed_message(timestamp: str, nonce: str, endpoint: str, body: bytes) -> bytes:
    return f"{timestamp}.{nonce}.{endpoint}.".encode() + body


def endpoint_of(path: str) -> str:
    """The last segment of a URL path: what an HMAC names (`/fac/settle` and `/settle` sign alike)."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def sign_request(key: str, endpoint: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The Authorization header of an HMAC-signed request to `endpoint` carrying `body`."""
    key_id = key_id_of(key)
    if key_id is None:
        raise KeyStoreError("not a facilitator key (gpk_<id>_<secret>)")
    timestamp, nonce = str(int(time.time() if now is None else now)), secrets.token_hex(12)
    signature = hmac.new(key_digest(key), signed_message(timestamp, nonce, endpoint, body), hashlib.sha256)
    return {"Authorization": f"{HMAC_SCHEME} key={key_id}, ts={timestamp}, nonce={nonce}, sig={signature.hexdigest()}"}


def bearer_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def official_create_headers(key: str) -> dict[str, dict[str, str]]:
    """The official package's `create_headers` answer sending `key` as a bearer to every endpoint:
    `HTTPFacilitatorClient({"url": URL, "create_headers": lambda: official_create_headers(KEY)})`."""
    headers = bearer_headers(key)
    return {"verify": headers, "settle": headers, "supported": headers}


class KeyStore:
    """The `seller_keys` table of the facilitator's database; safe to share between threads and processes."""

    def __init__(self, target: str | Path) -> None:
        self._db = Database(target, timeout=STORE_TIMEOUT_SECONDS)
        self._db.schema(SCHEMA + VERSION_TRIGGERS[self._db.dialect])
        self._lock = threading.Lock()
        self._version: int | None = None  # seller_keys_version when `_keys` was read
        self._keys: dict[str, tuple[SellerKey, bytes]] = {}
        self._nonces = 0

    @property
    def database(self) -> Database:
        """The store's connection, shared with the quota store."""
        return self._db

    def add(
        self,
        name: str,
        *,
        front_rent: bool = False,
        max_rent_outstanding: int = DEFAULT_MAX_RENT_OUTSTANDING,
        settles_per_minute: int = DEFAULT_SETTLES_PER_MINUTE,
        fee_lamports_per_day: int = DEFAULT_FEE_LAMPORTS_PER_DAY,
    ) -> tuple[SellerKey, str]:
        """A new key for seller `name`: (what is stored, the key, to show once)."""
        if not name or not name.isprintable():
            raise KeyStoreError("a key's name is printable text")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        seller = SellerKey(
            key_id, name, front_rent, max_rent_outstanding, settles_per_minute, fee_lamports_per_day, time.time()
        )
        added = self._db.run(
            "INSERT INTO seller_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING",
            (
                key_id,
                name,
                key_digest(key).hex(),
                int(front_rent),
                max_rent_outstanding,
                settles_per_minute,
                fee_lamports_per_day,
                seller.created_at,
            ),
        )
        if not added:
            raise KeyStoreError(f"an active key is named {name!r}; revoke it first or choose another name")
        return seller, key

    def revoke(self, name: str) -> SellerKey:
        """Revoke the active key named `name`; the row stays, for the record."""
        rows = self._db.rows(
            "UPDATE seller_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL RETURNING *",
            (time.time(), name),
        )
        if not rows:
            raise KeyStoreError(f"no active key named {name!r}")
        return _seller(rows[0])

    def entries(self) -> list[SellerKey]:
        """Every key ever added, revoked ones too, oldest first."""
        return [_seller(row) for row in self._db.rows("SELECT * FROM seller_keys ORDER BY created_at")]

    def lookup(self, key_id: str) -> tuple[SellerKey, bytes] | None:
        """The seller and the key's SHA-256 for an id, or None."""
        return self._current().get(key_id)

    def any_keys(self) -> bool:
        """Whether a key was ever added (revoking the last one does not open the facilitator to loopback)."""
        return bool(self._current())

    def first_use(self, replay_id: str, now: float, max_age: float) -> bool:
        """Record an HMAC signature's use; False when it was used already (here or in a replica)."""
        with self._lock:
            self._nonces += 1
            prune = self._nonces % NONCE_PRUNE_EVERY == 0
        if prune:
            self._db.run("DELETE FROM auth_nonces WHERE used_at < ?", (now - 2 * max_age,))
        return (
            self._db.run(
                "INSERT INTO auth_nonces (replay_id, used_at) VALUES (?, ?) ON CONFLICT (replay_id) DO NOTHING",
                (replay_id, now),
            )
            == 1
        )

    def _current(self) -> dict[str, tuple[SellerKey, bytes]]:
        """Every key by id, as committed now: one read of the table's version, the table itself only when
        it changed (DatabaseError when the store cannot be read)."""
        with self._lock:
            version = self._db.rows("SELECT COALESCE(MAX(version), 0) FROM seller_keys_version")[0][0]
            if version != self._version:
                self._keys = {
                    row[0]: (_seller(row), bytes.fromhex(row[2])) for row in self._db.rows("SELECT * FROM seller_keys")
                }
                self._version = version
            return self._keys

    def close(self) -> None:
        self._db.close()


def _seller(row: tuple[Any, ...]) -> SellerKey:
    return SellerKey(row[0], row[1], bool(row[3]), row[4], row[5], row[6], row[7], row[8])


@dataclass
class Credential:
    """An identified caller whose request body may still need its signature checked (`check`)."""

    key: SellerKey
    _verify: Authenticator | None = None
    _signed: tuple[bytes, str, str, str] | None = None  # (signing key, signature, prefix, replay id)

    def check(self, body: bytes) -> Caller:
        """The seller, once the body is what the HMAC signed (a bearer needs no body); AuthRefused otherwise."""
        if self._signed is not None and self._verify is not None:
            self._verify.check_signature(self._signed, body)
        return Caller(self.key.name, self.key)


class Authenticator:
    """Checks a request's Authorization header against the key store; the store remembers HMAC signatures
    for twice `MAX_AGE_SECONDS` so none is accepted twice."""

    def __init__(self, store: KeyStore, max_age: float = MAX_AGE_SECONDS) -> None:
        self.store = store
        self.max_age = max_age

    def identify(self, endpoint: str, headers: Mapping[str, str]) -> Credential:
        """Who is calling (AuthRefused when nobody valid is); an HMAC's body is checked by `Credential.check`."""
        header = (headers.get("authorization") or headers.get("Authorization") or "").strip()
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return Credential(self._bearer(value.strip()))
        if scheme == HMAC_SCHEME:
            return self._hmac(endpoint, value)
        if header:
            raise AuthRefused(
                ERR_AUTH_MALFORMED, f"Authorization is 'Bearer <key>' or '{HMAC_SCHEME} key=…, ts=…, nonce=…, sig=…'"
            )
        raise AuthRefused(ERR_AUTH_REQUIRED, "this facilitator serves sellers with a key (Authorization header)")

    def _known(self, key_id: str | None) -> tuple[SellerKey, bytes]:
        try:
            found = self.store.lookup(key_id) if key_id else None
        except DatabaseError as exc:
            raise AuthRefused(ERR_AUTH_STORE_UNAVAILABLE, f"the key store cannot be read: {exc}", 503) from None
        if found is None:
            raise AuthRefused(ERR_AUTH_UNKNOWN_KEY, "no such key")
        if found[0].revoked_at is not None:
            raise AuthRefused(ERR_AUTH_REVOKED, f"the key {found[0].name!r} was revoked")
        return found

    def _bearer(self, key: str) -> SellerKey:
        seller, digest = self._known(key_id_of(key))
        if not hmac.compare_digest(key_digest(key), digest):
            raise AuthRefused(ERR_AUTH_UNKNOWN_KEY, "no such key")
        return seller

    def _hmac(self, endpoint: str, value: str) -> Credential:
        fields = {}
        for part in value.split(","):
            match = _HMAC_FIELDS.fullmatch(part)
            if match is None:
                raise AuthRefused(ERR_AUTH_MALFORMED, f"{HMAC_SCHEME} takes key=, ts=, nonce= and sig=")
            fields[match[1]] = match[2]
        if set(fields) != {"key", "ts", "nonce", "sig"} or not fields["ts"].isdigit():
            raise AuthRefused(ERR_AUTH_MALFORMED, f"{HMAC_SCHEME} takes key=, ts= (unix seconds), nonce= and sig=")
        if abs(time.time() - int(fields["ts"])) > self.max_age:
            raise AuthRefused(
                ERR_AUTH_EXPIRED,
                f"the signature's timestamp is more than {self.max_age:g} s from the facilitator's clock",
            )
        seller, digest = self._known(fields["key"])
        prefix = f"{fields['ts']}.{fields['nonce']}.{endpoint}."
        return Credential(seller, self, (digest, fields["sig"], prefix, f"{fields['key']}:{fields['nonce']}"))

    def check_signature(self, signed: tuple[bytes, str, str, str], body: bytes) -> None:
        digest, signature, prefix, replay_id = signed
        expected = hmac.new(digest, prefix.encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise AuthRefused(ERR_AUTH_BAD_SIGNATURE, "the signature does not match the request")
        try:
            first = self.store.first_use(replay_id, time.time(), self.max_age)
        except DatabaseError as exc:
            raise AuthRefused(ERR_AUTH_STORE_UNAVAILABLE, f"the key store cannot be written: {exc}", 503) from None
        if not first:
            raise AuthRefused(ERR_AUTH_REPLAYED, "this signature was already used")


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AccessGate:
    """Who may use the facilitator. Until a key is added: loopback clients only, as the operator. From then
    on (revoked keys count): /verify and /settle need an active key; the read-only routes answer anyone,
    tailored to a key when given."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.authenticator = Authenticator(store)
        self._keyed = False

    def keyed(self) -> bool:
        """Whether keys are in use (a store that cannot be read counts as keyed: lookups then fail closed).
        Keys are revoked, never deleted: once keyed, always, without asking the store again."""
        if not self._keyed:
            try:
                self._keyed = self.store.any_keys()
            except DatabaseError:
                return True
        return self._keyed

    def mode(self) -> str:
        return "keys" if self.keyed() else "loopback-only"

    def admit(
        self, client: str | None, endpoint: str, headers: Mapping[str, str], *, public: bool
    ) -> Caller | Credential:
        """The caller, or a credential whose body is still to check; AuthRefused (401/403/503) otherwise."""
        if not self.keyed():
            if not is_loopback(client) or any(headers.get(h) for h in FORWARDING_HEADERS):
                raise AuthRefused(
                    ERR_LOOPBACK_ONLY, "no seller key is configured: this facilitator serves loopback clients only", 403
                )
            return OPERATOR
        if public and not headers.get("authorization"):
            return ANONYMOUS
        return self.authenticator.identify(endpoint, headers)
