"""Sell HTTP routes for x402 payments at an agent's on-chain price: an ASGI middleware.

    from fastapi import FastAPI, Request
    from ghostpay.x402.seller import SellerSettings, X402Paywall, paid_call

    app = FastAPI()

    @app.post("/translate")
    async def translate(request: Request):
        call = paid_call(request)            # who paid, how much, in which mint, verified on chain?
        return {"text": "hola", "payer": str(call.payer)}

    app.add_middleware(X402Paywall, settings=SellerSettings(
        agent="translator", keypair="~/.config/solana/id.json",   # an agent_id and its owner, or an address
        rpc_url="localnet", facilitator="http://127.0.0.1:8403", routes=("POST /translate",)))

Each priced route answers 402 with one requirement per accepted mint, at that mint's price from the
agent's account, `payTo` its payment address and `extra.feePayer` from the facilitator's
`/supported`, plus `extra.ghostpay`: the agent, the program id, whether the facilitator accepts
`record_x402_payment` after the Memo and, when it fronts the buyer's PayerStats rent, the rent payer (so a
GhostPay buyer can add the record instruction). The 402 carries the v2 `PAYMENT-REQUIRED` header
and the v1 body; a payment comes as `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1) and the answer carries
`PAYMENT-RESPONSE` or `X-PAYMENT-RESPONSE`. The handler runs only after the facilitator verified the payment; the
payment settles when the handler's response starts with a status below 400 (an error is not
charged) and the client is still there (a client that disconnected is not charged: the call is
recorded as abandoned), and the body streams after. A malformed payment header answers 402 with a
named `reason` (`ghostpay.x402.wire`). An inactive or x402-disabled agent answers 503. Each paid
call's status and latency go to `X402Seller.calls` (and `on_paid_call` hooks, and GET `stats_route`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from x402 import x402ResourceServer
from x402.extensions.bazaar import BAZAAR, bazaar_resource_server_extension
from x402.extensions.sign_in_with_x import SIGN_IN_WITH_X
from x402.http.constants import (
    PAYMENT_REQUIRED_HEADER,
    PAYMENT_RESPONSE_HEADER,
    PAYMENT_SIGNATURE_HEADER,
    X_PAYMENT_HEADER,
    X_PAYMENT_RESPONSE_HEADER,
)
from x402.http.utils import encode_payment_required_header, encode_payment_response_header
from x402.mechanisms.svm.exact.register import register_exact_svm_server
from x402.mechanisms.svm.types import ExactSvmPayload
from x402.mechanisms.svm.utils import decode_transaction_from_payload, get_token_payer_from_transaction
from x402.schemas import (
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
)
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequirementsV1

from ghostpay.client import GhostPayClient, looks_like_address
from ghostpay.cluster import resolve, ws_url_for
from ghostpay.keypairs import KeypairSource, load_keypair
from ghostpay.pda import agent_address
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402.a2a.card import CARD_PATH
from ghostpay.x402.a2a.seller import A2AMerchant, is_a2a_call, serve_card
from ghostpay.x402.facilitator.client import AiohttpFacilitatorClient, FailoverFacilitatorClient, facilitator_client
from ghostpay.x402.idempotency import (
    REPLAY_HEADER,
    REPLAYED,
    RERUN,
    Idempotency,
    IdempotencySettings,
    IdempotentCall,
    Refusal,
    begin,
)
from ghostpay.x402.networks import X402Network, network_for_cluster
from ghostpay.x402.paywall_page import PaywallPage, is_browser
from ghostpay.x402.record.server import declare_record_extension, records_payment_for
from ghostpay.x402.record.types import HINT_KEY
from ghostpay.x402.seller_offer import (
    AgentWatch,
    Offer,
    PayeeAccountsMissing,
    PaywallError,
    payee_account,
    payee_account_instructions,
)
from ghostpay.x402.sessions import Granted, Sessions, SessionSettings, session_settings, with_session_header
from ghostpay.x402.wire import (
    REASON_HEADER_TOO_LARGE,
    REASON_V1_IN_V2_HEADER,
    REASON_V2_IN_V1_HEADER,
    MalformedInput,
    payment_header,
)

log = logging.getLogger(__name__)

MAX_PAYMENT_HEADER_BYTES = 8 * 1024  # a transaction is ≤ 1,232 bytes; base64 JSON around it stays far under
CLIENT_CLOSED_REQUEST = 499  # the status a paid call is recorded with when its client left before the settle
ERR_CLIENT_GONE = "client_disconnected"
# Event-loop turns a server's receive gets to hand over a message it already holds (uvicorn's takes none;
# a wrapping middleware's may take one or two); a receive still waiting after them has nothing to say.
READY_RECEIVE_TURNS = 2
PAYMENT_REQUIRED_KEPT = 256  # 402 answers remembered (per resource URL and error)

__all__ = ["SellerSettings", "X402Paywall", "X402Seller", "PaidCall", "PaidCallRecord", "paid_call", "PaywallError"]


@dataclass(frozen=True)
class SellerSettings:
    """What a paywall sells and through whom.

    `agent`: the agent's address (a Pubkey or base58), or its agent_id with its owner's `keypair`.
    `rpc_url`: an RPC URL or a moniker (`localnet`, `devnet`, `mainnet-beta`).
    `facilitator`: a facilitator URL (several, comma-separated: replicas sharing one PostgreSQL, each call to
    the next in turn, failing over to another when one does not answer), or an in-process facilitator object.
    `facilitator_key`: this seller's key at that facilitator (`ghost facilitator keys add`): every request
    to it is signed with the key (HMAC over timestamp and body; the key itself is never sent).
    `routes`: "METHOD /path" patterns (`*` matches within the path; a bare path means any method).
    `payee_accounts`: "create" makes the payment address's missing token accounts at start-up,
    paid by `keypair` (a Keypair, a keypair file's path, or its JSON); "check" refuses to start when one
    is missing. A value that cannot work is refused here (`PaywallError`), not on every request.
    `session`: a period (timedelta or seconds, or `SessionSettings`) during which a payer signs in with the
    x402 sign-in-with-x extension instead of paying again for a route it paid (`ghostpay.x402.sessions`).
    """

    agent: Pubkey | str
    rpc_url: str
    facilitator: Any = "http://127.0.0.1:8403"
    routes: Sequence[str] = ("*",)
    ws_url: str | None = None
    network: X402Network | None = None  # default: the network of rpc_url (a localnet goes by devnet's id)
    max_timeout_seconds: int = 60
    payee_accounts: str = "check"
    keypair: KeypairSource = None
    description: str = ""  # what a call buys, in the 402 (default: the agent's on-chain description)
    mime_type: str = ""  # the paid answer's media type, in the 402
    program_id: Pubkey = PROGRAM_ID
    stats_route: str | None = None  # e.g. "/_x402/stats": GET there answers `X402Seller.stats_document()`
    facilitator_key: str | None = field(default=None, repr=False)
    paywall_title: str = ""  # the browser paywall page's title (default: the agent's on-chain name)
    discovery: Mapping[str, Any] | None = (
        None  # the bazaar extension its 402s declare: `declare_discovery_extension(...)`
    )
    # payment identifiers (idempotent paid calls): declared in the 402s, answers kept (`ghostpay.x402.idempotency`)
    idempotency: IdempotencySettings | None = None
    # Sign-In-With-Solana sessions: a payer comes back for this long without paying (`ghostpay.x402.sessions`)
    session: SessionSettings | timedelta | float | None = None

    def __post_init__(self) -> None:
        keypair = None if self.keypair is None else load_keypair(self.keypair)
        object.__setattr__(self, "keypair", keypair)
        object.__setattr__(self, "rpc_url", resolve(self.rpc_url, self.ws_url).http_url)
        object.__setattr__(self, "agent", self._agent_address(keypair))
        object.__setattr__(self, "session", session_settings(self.session))

    @property
    def agent_pubkey(self) -> Pubkey:
        """`agent` as __post_init__ resolved it: the agent's address."""
        assert isinstance(self.agent, Pubkey)
        return self.agent

    @property
    def owner(self) -> Keypair | None:
        """`keypair` as __post_init__ loaded it."""
        assert self.keypair is None or isinstance(self.keypair, Keypair)
        return self.keypair

    def _agent_address(self, owner: Keypair | None) -> Pubkey:
        if isinstance(self.agent, Pubkey):
            return self.agent
        text = str(self.agent).strip()
        try:
            return Pubkey.from_string(text)
        except ValueError:
            pass
        if looks_like_address(text) or not text:
            raise PaywallError(f"agent {self.agent!r} is not a valid agent address (base58, 32 bytes)")
        if owner is None:
            raise PaywallError(f"agent {text!r} is an agent_id: pass its owner's keypair= too, or the agent's address")
        return agent_address(owner.pubkey(), text, self.program_id)[0]


@dataclass(frozen=True)
class PaidCall:
    """What the handler of a paid request may know: in `request.state.x402` (or `paid_call(request)`)."""

    payer: Pubkey
    amount: int  # atomic units of `mint`
    mint: Pubkey
    network: str
    x402_version: int
    verified_on_chain: bool  # the payment records itself on chain (GhostPay's record instruction)
    session: str | None = None  # served on a SIWX session (amount 0): the settlement of the payment that opened it


@dataclass(frozen=True)
class PaidCallRecord:
    """One paid call as the seller saw it, for monitoring: status, latency and the settlement."""

    route: str
    status: int
    handler_ms: float  # from calling the handler to its response starting
    settle_ms: float
    total_ms: float  # from the request to the response starting
    payer: str
    amount: int
    mint: str
    settled: bool
    transaction: str
    error: str | None = None
    abandoned: bool = False  # the client went away before the settle: not settled, not charged


def paid_call(request: Any) -> PaidCall:
    """The payment behind this request (a Starlette/FastAPI `Request`); AttributeError on an unpaid route."""
    return request.state.x402


def route_matcher(patterns: Sequence[str]) -> Callable[[str, str], str | None]:
    """(method, path) -> the pattern that prices it, or None.

    >>> match = route_matcher(["POST /translate", "GET /weather/*", "/free-for-all"])
    >>> match("POST", "/translate"), match("GET", "/translate"), match("GET", "/weather/paris")
    ('POST /translate', None, 'GET /weather/*')
    >>> match("DELETE", "/free-for-all")
    '/free-for-all'
    """
    compiled = []
    for pattern in patterns:
        method, _, path = pattern.strip().rpartition(" ")
        compiled.append((pattern, method.upper() or None, path or "*"))

    def match(method: str, path: str) -> str | None:
        for pattern, verb, glob in compiled:
            if (verb is None or verb == method.upper()) and (glob == "*" or fnmatch.fnmatchcase(path, glob)):
                return pattern
        return None

    return match


def _transfer_mint(payload: PaymentPayload | PaymentPayloadV1) -> str | None:
    """The mint of the payment's TransferChecked (the third instruction of an exact payment)."""
    try:
        tx = decode_transaction_from_payload(ExactSvmPayload.from_dict(payload.payload))
        transfer = tx.message.instructions[2]
        return str(tx.message.account_keys[transfer.accounts[1]])
    except Exception:  # noqa: BLE001 - not an exact payment: the facilitator will say why
        return None


def _payment_facts(payload: PaymentPayload | PaymentPayloadV1, program_id: Pubkey, agent: Pubkey) -> tuple[str, bool]:
    """(payer, whether the GhostPay program's instruction records the payment for this agent)."""
    try:
        tx = decode_transaction_from_payload(ExactSvmPayload.from_dict(payload.payload))
    except Exception:  # noqa: BLE001 - verified payloads always decode
        return "", False
    return get_token_payer_from_transaction(tx) or "", records_payment_for(tx, program_id, agent)


class X402Seller:
    """The priced routes of one agent: its live offer, the x402 resource server and the paid-call log."""

    def __init__(self, settings: SellerSettings) -> None:
        if settings.payee_accounts not in ("check", "create"):
            raise PaywallError(f"payee_accounts is 'check' or 'create', not {settings.payee_accounts!r}")
        self.settings = settings
        self.network = settings.network or network_for_cluster(settings.rpc_url, settings.ws_url)
        self.match = route_matcher(settings.routes)
        self.page = PaywallPage(settings.paywall_title)
        facilitator = settings.facilitator
        if isinstance(facilitator, str):
            facilitator = facilitator_client(facilitator, key=settings.facilitator_key)
        self._facilitator = facilitator
        self.server = register_exact_svm_server(x402ResourceServer(facilitator), [self.network.caip2])
        self.gp = GhostPayClient(
            settings.rpc_url, settings.keypair, ws_url=settings.ws_url, program_id=settings.program_id
        )
        self.watch = AgentWatch(
            self.gp, settings.agent_pubkey, settings.ws_url or ws_url_for(settings.rpc_url), self._offer_changed
        )
        self.fee_payer: str | None = None
        self.hints: dict[str, Any] = {}  # extra.ghostpay: what a GhostPay buyer needs to add the record
        self.calls: deque[PaidCallRecord] = deque(maxlen=10_000)
        self.on_paid_call: list[Callable[[PaidCallRecord], Any]] = []
        self._requirements: list[PaymentRequirements] = []
        # (resource, error, description) -> (the requirements it was made of, header, v1 accepts)
        self._payment_required: dict[tuple[str, str, str, str], tuple[list[PaymentRequirements], str, Any]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._started = False
        self.idempotency = (
            None if settings.idempotency is None else Idempotency(settings.idempotency, settings.agent_pubkey)
        )
        session = settings.session
        assert session is None or isinstance(session, SessionSettings)
        self.sessions = (
            None if session is None else Sessions(session, settings.agent_pubkey, self.network.caip2, self.gp)
        )

    # lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Ask the facilitator what it supports, read the agent, check (or create) the payee token
        accounts, then follow the agent's account. PaywallError says what is wrong."""
        if self._started:
            return
        try:
            await asyncio.to_thread(self.server.initialize)
        except Exception as exc:  # an unreachable or misconfigured facilitator
            raise PaywallError(f"facilitator {self.settings.facilitator}: {exc}") from exc
        kind = self.server.get_supported_kind(2, self.network.caip2, "exact")
        fee_payer = (kind.extra or {}).get("feePayer") if kind is not None else None
        if not fee_payer:
            raise PaywallError(f"the facilitator does not settle exact payments on {self.network.caip2}")
        self.fee_payer = fee_payer
        extensions = set(await asyncio.to_thread(lambda: self._facilitator.get_supported().extensions or []))
        self.hints = declare_record_extension(
            self.settings.agent_pubkey, self.settings.program_id, fee_payer, extensions
        )
        offer = await self.watch.start()
        await self.ensure_payee_accounts(offer)
        self._started = True

    async def stop(self) -> None:
        await self.watch.stop()
        await self.gp.close()
        for store in (self.idempotency, self.sessions):  # their SQLite connections (a stopped seller stays stopped)
            if store is not None:
                store.close()
        if isinstance(self._facilitator, (AiohttpFacilitatorClient, FailoverFacilitatorClient)):
            await self._facilitator.aclose()
        self._started = False

    async def ensure_payee_accounts(self, offer: Offer) -> None:
        """The official client never creates the payee's token account: without one the first buyer's
        payment fails. Create the missing ones (payee_accounts="create") or refuse to start."""
        if offer.unavailable:
            return
        accounts = [payee_account(offer, p) for p in offer.prices]
        infos = (await self.gp._rpc(self.gp.rpc.get_multiple_accounts(accounts))).value
        existing = {a for a, info in zip(accounts, infos, strict=True) if info is not None}
        if existing.issuperset(accounts):
            return
        owner = self.settings.owner
        if self.settings.payee_accounts != "create" or owner is None:
            raise PayeeAccountsMissing(
                offer.payment_address, [p.mint.address for p in offer.prices if payee_account(offer, p) not in existing]
            )
        await self.gp.send(payee_account_instructions(offer, owner.pubkey(), existing))

    async def _ensure_payee_accounts_quietly(self, offer: Offer) -> None:
        try:
            await self.ensure_payee_accounts(offer)
        except Exception as exc:  # noqa: BLE001 - the paywall keeps serving; buyers of that mint fail until fixed
            log.warning("agent %s: %s", offer.agent, exc)

    # pricing -------------------------------------------------------------------------------------------

    def _offer_changed(self, offer: Offer) -> None:
        self._requirements = []  # rebuilt on the next request from the new offer
        if self._started:  # a mint added on chain needs its payee account too
            self._pending.add(asyncio.get_running_loop().create_task(self._ensure_payee_accounts_quietly(offer)))
            for task in [t for t in self._pending if t.done()]:
                self._pending.discard(task)

    def requirements(self) -> list[PaymentRequirements]:
        """One v2 requirement per accepted mint, at the agent's current price in that mint."""
        offer = self.watch.offer
        if not self._requirements and offer is not None and not offer.unavailable:
            extra = {"feePayer": self.fee_payer, HINT_KEY: self.hints}
            self._requirements = [
                PaymentRequirements(
                    scheme="exact",
                    network=self.network.caip2,
                    asset=str(p.mint.address),
                    amount=str(p.amount),
                    pay_to=str(offer.payment_address),
                    max_timeout_seconds=self.settings.max_timeout_seconds,
                    extra=extra,
                )
                for p in offer.prices
            ]
        return self._requirements

    @property
    def description(self) -> str:
        """What the 402 says is sold: the seller's description, else the agent's on-chain one (followed live)."""
        offer = self.watch.offer
        return self.settings.description or (offer.description if offer is not None else "")

    def extensions(self, method: str) -> dict[str, Any] | None:
        """The 402's extensions: the payment identifier's declaration when answers are kept, and the declared
        discovery info (`SellerSettings.discovery`) with the request's method, as the package's
        `bazaar_resource_server_extension` adds it, for facilitators to catalogue."""
        extensions: dict[str, Any] = {} if self.idempotency is None else dict(self.idempotency.declaration())
        declared = self.settings.discovery
        if declared and BAZAAR.key in declared:
            context = SimpleNamespace(method=method)
            extensions.update(declared)
            extensions[BAZAAR.key] = bazaar_resource_server_extension.enrich_declaration(declared[BAZAAR.key], context)
        return extensions or None

    def requirements_v1(self, resource: str) -> list[PaymentRequirementsV1]:
        return [
            PaymentRequirementsV1(
                scheme=r.scheme,
                network=self.network.v1_name,
                max_amount_required=r.amount,
                resource=resource,
                description=self.description,
                mime_type=self.settings.mime_type,
                pay_to=r.pay_to,
                max_timeout_seconds=r.max_timeout_seconds,
                asset=r.asset,
                extra=r.extra,
            )
            for r in self.requirements()
        ]

    def required(
        self,
        resource: str,
        error: str,
        method: str,
        requirements: list[PaymentRequirements],
        challenge: dict[str, Any] | None = None,
    ) -> PaymentRequired:
        """The v2 402 of `resource` asked with `method`: the requirements, and the extensions it declares (with
        `challenge`: the SIWX session challenge of this 402, `Sessions.challenge`)."""
        extensions = {**(self.extensions(method) or {}), **(challenge or {})}
        return PaymentRequired(
            error=error,
            resource=ResourceInfo(url=resource, description=self.description, mime_type=self.settings.mime_type),
            accepts=requirements,
            extensions=extensions or None,
        )

    def payment_required(
        self, resource: str, error: str, method: str, challenge: dict[str, Any] | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        """A 402's PAYMENT-REQUIRED header (v2) and its body's `accepts` (v1) for `resource`, remembered while
        the requirements and the description stay the same (a buyer's first request gets the same bytes; not
        with a session `challenge`, which is new in every 402)."""
        requirements = self.requirements()
        key = (resource, error, self.description, method)
        known = self._payment_required.get(key)
        if challenge is None and known is not None and known[0] is requirements:  # rebuilt when the offer changes
            return known[1], known[2]
        header = encode_payment_required_header(self.required(resource, error, method, requirements, challenge))
        accepts = [r.model_dump(by_alias=True, exclude_none=True) for r in self.requirements_v1(resource)]
        if challenge is not None:
            return header, accepts
        if len(self._payment_required) >= PAYMENT_REQUIRED_KEPT:  # resources carry their query: bounded
            self._payment_required.clear()
        self._payment_required[key] = (requirements, header, accepts)
        return header, accepts

    def record(self, call: PaidCallRecord) -> None:
        self.calls.append(call)
        for hook in self.on_paid_call:
            hook(call)

    def stats_document(self, last: int = 100) -> dict[str, Any]:
        """The stats and the last paid calls, as JSON for monitoring."""
        return {
            "agent": str(self.settings.agent),
            "stats": self.stats(),
            "calls": [asdict(c) for c in list(self.calls)[-last:]],
        }

    def stats(self) -> dict[str, Any]:
        """Counts by status and latency percentiles of the recorded paid calls (for dashboards)."""
        calls = list(self.calls)
        totals = sorted(c.total_ms for c in calls)

        def pct(q: float) -> float | None:
            return round(totals[min(len(totals) - 1, int(q * len(totals)))], 2) if totals else None

        by_status: dict[str, int] = {}
        for c in calls:
            by_status[str(c.status)] = by_status.get(str(c.status), 0) + 1
        return {
            "calls": len(calls),
            "settled": sum(c.settled for c in calls),
            "abandoned": sum(c.abandoned for c in calls),
            "byStatus": by_status,
            "p50Ms": pct(0.5),
            "p99Ms": pct(0.99),
        }


class X402Paywall:
    """ASGI middleware: the routes of `settings` cost the agent's price; everything else passes through.

    It starts its `X402Seller` on the ASGI lifespan start-up (so a missing agent or payee account
    stops the server from starting) or, without lifespan, on the first request.
    """

    def __init__(self, app: ASGIApp, settings: SellerSettings | None = None, seller: X402Seller | None = None) -> None:
        if seller is None and settings is not None:
            seller = X402Seller(settings)
        elif seller is None or settings is not None:  # neither, or both
            raise PaywallError("pass settings= or seller=")
        self.app = app
        self.seller = seller
        self._start_lock = asyncio.Lock()
        self.a2a = A2AMerchant(seller, self._pay)  # the Agent Card, and a2a-x402 calls to the priced routes

    async def _pay(
        self, scope: Scope, receive: Receive, send: Send, route: str, payload: PaymentPayload | PaymentPayloadV1
    ) -> None:
        await PaidRequest(self, scope, receive, send, route).pay(payload, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == self.seller.settings.stats_route and scope["method"] == "GET":
            await _json(send, 200, self.seller.stats_document())
            return
        # the agent's card, unless no priced route takes A2A calls (then the app's own card, if any)
        card = scope["path"] == CARD_PATH and scope["method"] == "GET" and bool(self.a2a.paths)
        route = self.seller.match(scope["method"], scope["path"])
        if route is None and not card:
            await self.app(scope, receive, send)
            return
        if not self.seller._started:
            async with self._start_lock:
                try:
                    await self.seller.start()
                except PaywallError as exc:
                    await _json(send, 503, {"error": "paywall_unavailable", "message": str(exc)})
                    return
        if card:
            await serve_card(self.a2a, scope, send)
        elif route is not None and is_a2a_call(scope):
            await self.a2a.handle(scope, receive, send, route)
        else:
            assert route is not None
            await PaidRequest(self, scope, receive, send, route).run()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.seller.start()  # a PaywallError fails the start-up, with its message
            elif message["type"] == "lifespan.shutdown":
                await self.seller.stop()
            return message

        await self.app(scope, wrapped_receive, send)


async def _json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    await _send(send, status, b"application/json", json.dumps(body, separators=(",", ":")).encode(), headers)


async def _send(send: Send, status: int, content_type: bytes, data: bytes, headers: dict[str, str] | None) -> None:
    raw = [
        (b"content-type", content_type),
        (b"content-length", str(len(data)).encode()),
        (b"cache-control", b"no-store"),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode()
    for key, value in scope["headers"]:
        if key == wanted:
            return value.decode("latin-1")
    return None


class ClientWatch:
    """The request's `receive`, handed to the app, noticing when the client goes away (`http.disconnect`)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._held: deque[Message] = deque()  # read by `client_gone`, still owed to the app
        self.gone = False

    async def receive(self) -> Message:
        message = self._held.popleft() if self._held else await self._receive()
        self.gone = self.gone or message["type"] == "http.disconnect"
        return message

    async def client_gone(self) -> bool:
        """Whether the client has disconnected, without waiting for it: a message the server already has
        is read (and kept for the app); none there means the client is still connected."""
        if self.gone:
            return True
        pending = asyncio.ensure_future(self._receive())
        for _ in range(READY_RECEIVE_TURNS):
            await asyncio.sleep(0)
            if pending.done():
                break
        else:
            pending.cancel()
        await asyncio.wait({pending})
        if pending.cancelled():
            return False
        message = pending.result()
        self._held.append(message)
        self.gone = message["type"] == "http.disconnect"
        return self.gone


class PaidRequest:
    """One request to a priced route: 402, or verify → handler → settle."""

    def __init__(self, paywall: X402Paywall, scope: Scope, receive: Receive, send: Send, route: str) -> None:
        self.seller = paywall.seller
        self.app = paywall.app
        self.scope, self.receive, self.send = scope, receive, send
        self.route = route
        self.started = time.perf_counter()

    def resource_url(self) -> str:
        host = _header(self.scope, "host") or "localhost"
        query = self.scope.get("query_string", b"").decode("latin-1")
        return f"{self.scope.get('scheme', 'http')}://{host}{self.scope['path']}" + (f"?{query}" if query else "")

    def challenge(self) -> dict[str, Any] | None:
        """This 402's SIWX session challenge, when the seller offers sessions."""
        return None if self.seller.sessions is None else self.seller.sessions.challenge(self.scope)

    def required(self, error: str) -> PaymentRequired:
        """The v2 402 of this route: the current requirements for this resource."""
        method, requirements = self.scope["method"], self.seller.requirements()
        return self.seller.required(self.resource_url(), error, method, requirements, self.challenge())

    async def payment_required(
        self, error: str, message: str | None = None, status: int = 402, reason: str | None = None
    ) -> None:
        """402 with both wire formats: the v2 header and the v1 body (which also names the error, and for a
        malformed payment header the `reason`)."""
        header, accepts = self.seller.payment_required(
            self.resource_url(), error, self.scope["method"], self.challenge()
        )
        body = {"x402Version": 1, "error": error, "accepts": accepts}
        if message:
            body["message"] = message
        if reason:
            body["reason"] = reason
        await _json(self.send, status, body, {PAYMENT_REQUIRED_HEADER: header})

    async def paywall_page(self, offer: Offer) -> None:
        """A browser's 402: the package's paywall page for the same requirements, the v2 header as well."""
        required = self.required("payment required")
        page = self.seller.page.render(required, offer.name, offer.prices).encode()
        headers = {PAYMENT_REQUIRED_HEADER: encode_payment_required_header(required)}
        await _send(self.send, 402, b"text/html; charset=utf-8", page, headers)

    async def run(self) -> None:
        offer = self.seller.watch.offer
        if offer is None or offer.unavailable:
            reason = offer.unavailable if offer else "the agent is not loaded"
            await _json(
                self.send,
                503,
                {
                    "error": "agent_unavailable",
                    "agent": str(self.seller.settings.agent),
                    "message": f"{reason}; it takes no payments now",
                },
            )
            return
        v2_header = _header(self.scope, PAYMENT_SIGNATURE_HEADER)
        header = v2_header or _header(self.scope, X_PAYMENT_HEADER)
        sign_in = None if self.seller.sessions is None else _header(self.scope, SIGN_IN_WITH_X)
        if header is None and sign_in is not None:
            await self.on_session(sign_in)
            return
        if header is None:
            if is_browser(_header(self.scope, "accept"), _header(self.scope, "user-agent")):
                await self.paywall_page(offer)
            else:
                await self.payment_required("payment required")
            return
        try:
            payload = payment_header(header, MAX_PAYMENT_HEADER_BYTES)
        except MalformedInput as exc:  # the official server answers an undecodable header with a 402 too
            message = (
                str(exc)
                if exc.reason == REASON_HEADER_TOO_LARGE
                else f"the payment header is not base64 JSON of an x402 payment: {exc}"
            )
            await self.payment_required("invalid_payment", message, reason=exc.reason)
            return
        if isinstance(payload, PaymentPayload) != (v2_header is not None):  # each version has its header
            v2 = isinstance(payload, PaymentPayload)
            await self.payment_required(
                "invalid_payment",
                f"a v{2 if v2 else 1} payment goes in the {'PAYMENT-SIGNATURE' if v2 else 'X-PAYMENT'} header",
                reason=REASON_V2_IN_V1_HEADER if v2 else REASON_V1_IN_V2_HEADER,
            )
            return
        call = None
        if self.seller.idempotency is not None and isinstance(payload, PaymentPayload):
            begun = await begin(self.seller.idempotency, payload, self.scope, self.receive, self.send)
            if begun is REPLAYED:
                return
            if isinstance(begun, Refusal):
                await self.payment_required(begun.reason, begun.message, reason=begun.reason)
                return
            call = begun if isinstance(begun, IdempotentCall) else None
        try:
            await self.pay(payload, call)
        finally:
            if call is not None:
                call.finish()

    async def on_session(self, sign_in: str) -> None:
        """A request signed in with SIWX: served without a payment on the signer's session, or a fresh 402
        naming why not."""
        assert self.seller.sessions is not None
        granted = await self.seller.sessions.sign_in(sign_in, self.scope)
        if not isinstance(granted, Granted):
            await self.payment_required(granted.reason, granted.message, reason=granted.reason)
            return
        payment = granted.payment
        self.scope.setdefault("state", {})["x402"] = PaidCall(
            payer=Pubkey.from_string(granted.payer),
            amount=0,
            mint=Pubkey.from_string(payment.mint),
            network=self.seller.network.caip2,
            x402_version=2,  # sign-in-with-x is a v2 extension
            verified_on_chain=payment.recorded,
            session=payment.transaction,
        )
        await self.app(self.scope, self.receive, with_session_header(self.send, granted))

    async def pay(self, payload: PaymentPayload | PaymentPayloadV1, call: IdempotentCall | None) -> None:
        """Verify the payment, run the handler, settle (`call`: keep the answer of a call with an identifier;
        one whose payment settled before, its answer never kept, runs again unverified and unsettled)."""
        if call is not None and call.rerun is not None and isinstance(payload, PaymentPayload):
            await self.serve(payload, payload.accepted, call)
            return
        requirements = self.matching(payload)
        if requirements is None:
            await self.payment_required(
                "payment_mismatch", "the payment is not for this route's current price, token, payee or network"
            )
            return
        try:
            verified = await self.seller.server.verify_payment(payload, requirements)
        except Exception as exc:  # noqa: BLE001 - the facilitator is down or answered garbage
            await _json(self.send, 502, {"error": "facilitator_unavailable", "message": str(exc)[:300]})
            return
        result = verified.verify
        if not result.is_valid:
            await self.payment_required(result.invalid_reason or "invalid_payment", result.invalid_message)
            return
        await self.serve(payload, requirements, call)

    def matching(self, payload: PaymentPayload | PaymentPayloadV1) -> Any:
        """The requirement this payment pays (v2: the `accepted` one; v1: by network and the transfer's
        mint), among the current ones, or None."""
        if isinstance(payload, PaymentPayload):
            for r in self.seller.requirements():
                a = payload.accepted
                if (a.scheme, a.network, a.asset, a.amount, a.pay_to) == (
                    r.scheme,
                    r.network,
                    r.asset,
                    r.amount,
                    r.pay_to,
                ):
                    return r
            return None
        mint = _transfer_mint(payload)
        for r1 in self.seller.requirements_v1(self.resource_url()):
            if payload.scheme == r1.scheme and payload.network == r1.network and r1.asset == mint:
                return r1
        return None

    async def serve(
        self, payload: PaymentPayload | PaymentPayloadV1, requirements: Any, call: IdempotentCall | None = None
    ) -> None:
        payer, recorded = _payment_facts(payload, self.seller.settings.program_id, self.seller.settings.agent_pubkey)
        amount = int(requirements.get_amount())
        self.scope.setdefault("state", {})["x402"] = PaidCall(
            Pubkey.from_string(payer),
            amount,
            Pubkey.from_string(requirements.asset),
            str(requirements.network),
            payload.x402_version,
            recorded,
        )
        response_header = PAYMENT_RESPONSE_HEADER if payload.x402_version == 2 else X_PAYMENT_RESPONSE_HEADER
        handler_started = time.perf_counter()
        timing: dict[str, float] = {}
        outcome: dict[str, Any] = {
            "status": 500,
            "settled": False,
            "transaction": "",
            "error": None,
            "abandoned": False,
        }
        swallow = False
        client = ClientWatch(self.receive if call is None else call.receive)

        async def paid_send(message: Message) -> None:
            nonlocal swallow
            if message["type"] == "http.response.start":
                timing["handler"] = time.perf_counter()
                status = message["status"]
                outcome["status"] = status
                if status >= 400:  # the call failed: nothing is charged
                    await self.send(message)
                    return
                if await client.client_gone():  # nobody gets the answer: the payment is not settled
                    swallow = True
                    outcome.update(status=CLIENT_CLOSED_REQUEST, error=ERR_CLIENT_GONE, abandoned=True)
                    return
                settle_started = time.perf_counter()
                rerun = call.rerun if call is not None else None  # paid before: not settled again
                settled = rerun.settlement() if rerun is not None else await self.settle(payload, requirements)
                timing["settle"] = time.perf_counter() - settle_started
                outcome.update(
                    settled=settled.success and rerun is None,
                    transaction=settled.transaction or "",
                    error=settled.error_reason if rerun is None else RERUN,
                )
                header = (response_header.lower().encode(), encode_payment_response_header(settled).encode())
                if not settled.success:
                    swallow = True
                    outcome["status"] = 402
                    await self.payment_required(settled.error_reason or "settlement_failed", settled.error_message)
                    return
                start = {**message, "headers": [*message.get("headers", []), header]}
                if call is not None:
                    call.settled(start, settled.transaction or "", str(settled.network))
                if self.seller.sessions is not None:
                    self.seller.sessions.paid(
                        payer, self.scope["path"], settled.transaction or "", amount, requirements.asset, recorded
                    )
                if rerun is not None:  # the buyer learns its payment was not taken again: the settlement it re-runs
                    start["headers"] = [*start["headers"], (REPLAY_HEADER.encode(), rerun.transaction.encode())]
                await self.send(start)
                return
            if not swallow:
                if call is not None and call.transaction and message["type"] == "http.response.body":
                    call.body(message)
                await self.send(message)

        try:
            await self.app(self.scope, client.receive, paid_send)
        finally:
            now = time.perf_counter()
            responded = timing.get("handler", now) + timing.get("settle", 0.0)  # the response starts after the settle
            self.seller.record(
                PaidCallRecord(
                    self.route,
                    outcome["status"],
                    (timing.get("handler", now) - handler_started) * 1000,
                    timing.get("settle", 0.0) * 1000,
                    (responded - self.started) * 1000,
                    payer,
                    amount,
                    requirements.asset,
                    outcome["settled"],
                    outcome["transaction"],
                    outcome["error"],
                    outcome["abandoned"],
                )
            )

    async def settle(self, payload: PaymentPayload | PaymentPayloadV1, requirements: Any) -> SettleResponse:
        try:
            return await self.seller.server.settle_payment(payload, requirements)
        except Exception as exc:  # noqa: BLE001 - the facilitator went away between verify and settle
            return SettleResponse(
                success=False,
                error_reason="facilitator_unavailable",
                error_message=str(exc)[:300],
                transaction="",
                network=str(requirements.network),
            )
