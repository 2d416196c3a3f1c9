"""`X402Buyer`: pays one 402 with the official package's exact SVM client, adding GhostPay's record when the
seller asks for it, then reads the seller's answer into a `PaymentRecord`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
from solana.rpc.commitment import Confirmed
from solders.pubkey import Pubkey
from solders.signature import Signature
from x402 import x402ClientSync
from x402.extensions.payment_identifier import (
    PAYMENT_IDENTIFIER,
    append_payment_identifier_to_extensions,
    generate_payment_id,
    is_payment_identifier_extension,
    is_valid_payment_id,
)
from x402.mechanisms.svm.constants import V1_NETWORKS
from x402.mechanisms.svm.exact.client import ExactSvmScheme
from x402.mechanisms.svm.exact.v1.client import ExactSvmSchemeV1
from x402.mechanisms.svm.signers import KeypairSigner
from x402.schemas import PaymentPayload, PaymentPayloadV1, PaymentRequired, SettleResponse

from ghostpay.exceptions import GhostPayError, InvalidArgument, PaymentRequirementsInvalid
from ghostpay.spending import GuardedWallet, SentProof, SpendingGuards, sent_proof
from ghostpay.x402.buyer.models import (
    IDEMPOTENCY_KEY,
    PAYMENT_SENT,
    RECORD_KEY,
    FeedbackMode,
    PaymentRecord,
    Quote,
    ms,
    rating_for,
    settled_record,
)
from ghostpay.x402.buyer.policy import BuyerPolicy
from ghostpay.x402.buyer.quotes import HTTP_CODEC, Required, read_payment_required
from ghostpay.x402.buyer.session import BuyerSessions
from ghostpay.x402.idempotency import REPLAY_HEADER
from ghostpay.x402.networks import X402Network, network_for_cluster
from ghostpay.x402.record.client import RECORD_REFUSED, add_ghostpay_record, names_recorded, record_hint
from ghostpay.x402.record.types import RecordedPayment

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient

REQUOTES = 1  # a seller may change its price once between the 402 and the paid retry
# With a payment identifier, a paid retry whose connection failed is sent again, the very same payment: the
# seller answers it from its cache if it settled it, and it can land on chain only once anyway.
RESENDS = 2
BLOCKHASH_HINT = "recentBlockhash"  # a requirement's extra the package's exact client signs with, instead of reading


class X402Buyer:
    """Pays 402 answers for one wallet (a GhostPayClient's) under spending guards."""

    def __init__(
        self,
        gp: GhostPayClient,
        *,
        guards: SpendingGuards | GuardedWallet | None = None,
        max_price: Decimal | None = None,
        tokens: Sequence[Pubkey | str] = (),
        feedback: FeedbackMode = "off",
        idempotency_key: str | None = None,
    ) -> None:
        if feedback not in ("off", "auto"):
            raise InvalidArgument(f"feedback is 'off' or 'auto', not {feedback!r}")
        check_idempotency_key(idempotency_key)
        self.idempotency_key = idempotency_key
        self.gp = gp
        self.wallet = gp.wallet
        self.network: X402Network = network_for_cluster(gp.cluster.http_url, gp.cluster.ws_url)
        self.policy = BuyerPolicy(gp, self.network, guards=guards, max_price=max_price, tokens=tokens)
        self.feedback = feedback
        self.sessions = BuyerSessions(gp, self.network, self.policy.guarded)
        # the package's own client builds and signs the transaction; our guards replace its spend controls
        signer = KeypairSigner(gp.keypair)
        self._official = x402ClientSync().set_spend_controls(False)
        self._official.register("solana:*", ExactSvmScheme(signer, self.network.rpc_url))
        v1 = ExactSvmSchemeV1(signer, self.network.rpc_url)
        for name in V1_NETWORKS:
            self._official.register_v1(name, v1)

    # paying ------------------------------------------------------------------------------------------

    def proof(self, payload: Any) -> SentProof | None:
        """What finds the signed payment of `payload` on chain if this process dies before it settles."""
        return sent_proof(payload.payload["transaction"], self.gp.wallet)

    async def _blockhash(self) -> str | None:
        """The node's latest blockhash, for `sign`; None when it cannot be read (the package's client reads it)."""
        try:
            return str((await self.gp.latest_blockhash())[0])
        except GhostPayError:
            return None

    async def sign(
        self,
        required: Required,
        index: int,
        quote: Quote,
        *,
        record: bool = True,
        identifier: str | None = None,
        blockhash: str | None = None,
    ) -> tuple[PaymentPayload | PaymentPayloadV1, RecordedPayment | None]:
        """The official payment payload for `required.accepts[index]` (the package's exact SVM client),
        with GhostPay's record added when the requirement asks for it (and `record`), and `identifier` as its
        payment identifier when the seller declares the extension. `blockhash`: the latest, read beforehand (v2:
        the package's client then reads none; it is not sent as part of the requirement accepted)."""
        accepted = required.accepts[index]
        given = dict(accepted.extra or {})
        if blockhash is not None and isinstance(required, PaymentRequired) and not given.get(BLOCKHASH_HINT):
            signed_for = accepted.model_copy(update={"extra": {**given, BLOCKHASH_HINT: blockhash}})
        else:
            signed_for = accepted
        only = required.model_copy(update={"accepts": [signed_for]})
        extensions = None
        if identifier is not None and declares_identifier(required):
            assert isinstance(required, PaymentRequired) and required.extensions is not None
            extensions = append_payment_identifier_to_extensions(dict(required.extensions), identifier)
        try:  # the package's SVM client reads the chain with a blocking RPC client: off the event loop
            payload = await asyncio.to_thread(self._official.create_payment_payload, only, None, extensions)
            if isinstance(payload, PaymentPayload):
                payload = payload.model_copy(update={"accepted": accepted})  # the seller's terms, as it sent them
            hint = record_hint(quote.extra, self.gp.program_id) if record else None
            if hint is None:
                return payload, None
            recorded = add_ghostpay_record(
                payload.payload["transaction"], self.gp.keypair, hint.agent, self.gp.program_id, hint.rent_payer
            )
        except Exception as exc:  # the package raises ValueError, RPC and parse errors
            raise PaymentRequirementsInvalid(
                f"the payment cannot be built from the seller's requirement: {type(exc).__name__}: {exc}"
            ) from exc
        return payload.model_copy(
            update={"payload": {**payload.payload, "transaction": recorded.transaction}}
        ), recorded

    async def handle(
        self, request: httpx.Request, response: httpx.Response, send: Any, asked_at: float
    ) -> httpx.Response:
        """Pay a 402 `response` to `request` (sent at `asked_at`, perf_counter); `send(request)` sends
        through the inner transport."""
        url = str(request.url)
        await response.aread()
        required, assumed = read_payment_required(response, url)
        on_session = await self.sessions.sign_in(request, required, send)
        if on_session is not None:  # the wallet paid for this route within the seller's session period
            return on_session
        paid: set[tuple[str, str, int, str]] = set()
        with_record = True
        given = request.extensions.get(IDEMPOTENCY_KEY) or self.idempotency_key  # may have paid in an earlier run
        identifier = given or generate_payment_id()
        check_idempotency_key(identifier)
        while True:
            index, quote = await self.policy.choose(required, url, assumed)
            quoted_at = time.perf_counter()
            blockhash = asyncio.ensure_future(self._blockhash())  # read while the reservation is written to disk
            try:
                reservation = await self.policy.authorize(await self.policy.spend(quote, url))
            except BaseException:
                blockhash.cancel()
                raise
            try:
                payload, recorded = await self.sign(
                    required, index, quote, record=with_record, identifier=identifier, blockhash=await blockhash
                )
            except BaseException:
                if reservation is not None:
                    await reservation.release()
                raise
            headers = dict(request.headers)
            headers.update(HTTP_CODEC.encode_payment_signature_header(payload))
            retry = httpx.Request(
                request.method, request.url, headers=headers, content=request.content, extensions=request.extensions
            )
            if reservation is not None:
                await reservation.sent(self.proof(payload))
            request.extensions[PAYMENT_SENT] = True
            started = time.perf_counter()
            with_identifier = declares_identifier(required)
            response, resent = await self._send_paid(send, retry, with_identifier)
            latency_ms = ms(time.perf_counter() - started)
            record = self._record(quote, url, response, latency_ms)
            record.idempotency_key = identifier if with_identifier else None
            claimed = bool(with_identifier and record.settled and response.headers.get(REPLAY_HEADER))
            earlier = claimed and not resent and given is not None and await self._paid_earlier(quote, record.signature)
            record.replayed = claimed and (resent or earlier)
            record.quote_ms, record.sign_ms = ms(quoted_at - asked_at), ms(started - quoted_at)
            if recorded is not None:
                record.reference, record.payer_stats = recorded.reference.hex(), str(recorded.payer_stats)
                record.verified = record.settled and await self._recorded(quote, recorded, record.signature)
            if reservation is not None and earlier:
                # Answered from the seller's cache at the first send, naming an earlier payment (another run's,
                # with the key given) that the chain shows this wallet made: this transaction was not settled.
                # (Resent, it is this payment that was settled. A replay claimed for a new key, or naming no
                # payment of this wallet, is not believed: the payment keeps counting.)
                await reservation.release()
            elif reservation is not None and record.settled:
                await reservation.settled(record.signature)
            elif reservation is not None and response.status_code == 402 and not record.signature:
                # Refused before any transaction was sent: nothing was spent. (A seller that answers 402 and
                # still submits the signed transaction before its blockhash expires could take it: the budget
                # would then run one payment over; it takes nothing more than that payment.)
                await reservation.release()
            if record.settled:
                self.sessions.paid(url)  # its route is open to this wallet for the seller's session period
            if response.status_code == 402 and not record.settled:
                try:
                    required, assumed = read_payment_required(response, url)
                except PaymentRequirementsInvalid:
                    break
                record.error = required.error or record.error
                if recorded is not None and record.error in RECORD_REFUSED and not record.signature:
                    with_record = False  # its facilitator takes no record instruction: pay without it, once
                    asked_at = started
                    continue
                paid.add(quote.terms)
                # the seller refused this payment: if its terms changed (a new price), pay the new ones once
                if len(paid) <= REQUOTES and not paid & {q.terms for q in await self.policy.quotes(required, url)}:
                    asked_at = started
                    continue
            break
        if self.feedback == "auto" and record.verified and record.agent and record.reference:
            success, rating = rating_for(response.status_code, latency_ms)
            result = await self.gp.submit_feedback(
                Pubkey.from_string(record.agent),
                record.reference,
                success=success,
                response_time_ms=latency_ms,
                rating=rating,
            )
            record.feedback = str(result.signature)
        response.extensions[RECORD_KEY] = record
        return response

    async def _send_paid(self, send: Any, retry: httpx.Request, with_identifier: bool) -> tuple[httpx.Response, bool]:
        """Send the paid retry and read its answer; (answer, whether it was sent again). With an identifier, a
        connection that fails (maybe after the seller settled) sends the same payment again, RESENDS times."""
        for attempt in range(RESENDS + 1):
            try:
                response = await send(retry)
                await response.aread()
                return response, attempt > 0
            except httpx.TransportError:
                if not with_identifier or attempt == RESENDS:
                    raise
        raise AssertionError("unreachable")

    async def _paid_earlier(self, quote: Quote, signature: str | None) -> bool:
        """Whether `signature` is a transaction that landed and moved at least the quote's amount of its mint out
        of this wallet (what a seller answering from its cache says an earlier payment did)."""
        try:
            answer = await self.gp.rpc.get_transaction(Signature.from_string(signature or ""), "json", Confirmed, 0)
        except Exception:  # noqa: BLE001 - not a signature, or the RPC failed: not shown, not believed
            return False
        meta = answer.value.transaction.meta if answer.value is not None else None
        if meta is None or meta.err is not None:
            return False

        def held(balances: Any) -> int:
            return sum(
                int(b.ui_token_amount.amount)
                for b in balances or ()
                if str(b.owner) == str(self.wallet) and str(b.mint) == quote.mint
            )

        return held(meta.pre_token_balances) - held(meta.post_token_balances) >= quote.amount_atomic

    async def _recorded(self, quote: Quote, recorded: RecordedPayment, signature: str | None) -> bool:
        """Whether the settled transaction recorded this wallet's payment of this reference to the agent: the
        signature names the transaction the wallet signed with the record in it, and the node has it confirmed
        without an error (every instruction ran, the record's X402PaymentRecorded with them)."""
        if record_hint(quote.extra, self.gp.program_id) is None or signature is None:
            return False
        if not names_recorded(signature, recorded):
            return False
        try:
            return await self.gp.landed(signature)
        except GhostPayError:
            return False

    def _record(self, quote: Quote, url: str, response: httpx.Response, latency_ms: int) -> PaymentRecord:
        settle: SettleResponse | None = None
        with contextlib.suppress(Exception):  # no or unreadable PAYMENT-RESPONSE: not settled as far as we know
            settle = HTTP_CODEC.get_payment_settle_response(response.headers.get)
        return settled_record(quote, url, settle, str(self.wallet), response.status_code, latency_ms)


def declares_identifier(required: Required) -> bool:
    """Whether a 402 declares the package's payment-identifier extension (v2 only)."""
    extensions = getattr(required, "extensions", None) or {}
    return is_payment_identifier_extension(extensions.get(PAYMENT_IDENTIFIER))


def check_idempotency_key(key: str | None) -> None:
    """An InvalidArgument for a key the extension does not allow (16-128 of A-Z a-z 0-9 _ -)."""
    if key is not None and not is_valid_payment_id(key):
        raise InvalidArgument(
            f"idempotency key {key!r}: 16 to 128 characters among letters, digits, '-' and '_' "
            "(x402 payment-identifier)"
        )
