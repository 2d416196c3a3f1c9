"""The x402 buyer: an httpx client that pays 402 answers with the official `x402` package's exact SVM scheme.

    async with gp.x402_http(guards=SpendingGuards(daily=Decimal("5")), max_price=Decimal("0.05")) as http:
        r = await http.get("https://api.example/paid")
        paid = payment_record(r)        # signature, payer, amount (Decimal), mint, seller, settled, verified...

On a 402 it reads the requirements (v2 `PAYMENT-REQUIRED` header, else the v1 body, leniently for
legacy sellers that miss fields the spec requires), keeps those on this wallet's network in the
"exact" scheme, picks the first accepted mint the wallet holds enough of (the `tokens` preference
first) that the guards allow, reserves it in the spend ledger, signs the official transaction
(the package's own client builds it: compute budget, TransferChecked, Memo), retries with
`PAYMENT-SIGNATURE` (v1: `X-PAYMENT`) and returns the seller's answer with a `PaymentRecord`.
A seller that answers the paid retry with a new 402 (its price changed) is quoted again once;
`max_price` still caps what is paid.

`feedback="auto"` submits on-chain feedback for verified payments (the settled transaction recorded this
wallet's payment): `rating_for` derives the rating from the status and the response time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Literal, Sequence, Union

import httpx
from solders.compute_budget import set_compute_unit_limit
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from x402 import x402ClientSync
from x402.http import x402HTTPClientSync
from x402.mechanisms.svm.constants import (
    COMPUTE_BUDGET_PROGRAM_ADDRESS,
    ERR_INVALID_INSTRUCTION_COUNT,
    ERR_UNKNOWN_FIFTH_INSTRUCTION,
    ERR_UNKNOWN_SIXTH_INSTRUCTION,
    V1_NETWORKS,
)
from x402.mechanisms.svm.default_assets import get_default_asset
from x402.mechanisms.svm.exact.client import ExactSvmScheme
from x402.mechanisms.svm.exact.v1.client import ExactSvmSchemeV1
from x402.mechanisms.svm.signers import KeypairSigner
from x402.schemas import PaymentPayload, PaymentPayloadV1, PaymentRequired, SettleResponse
from x402.schemas.v1 import PaymentRequiredV1, PaymentRequirementsV1

from ghostpay.exceptions import (
    GhostPayError,
    InvalidArgument,
    NoPayableRequirement,
    PaymentRequirementsInvalid,
    SpendingRefused,
    TokenNotAccepted,
)
from ghostpay.payments import build_record_x402_payment
from ghostpay.pda import new_reference, payer_stats_address
from ghostpay.tokens import from_atomic, to_atomic
from ghostpay.spending import GuardedWallet, Reservation, SpendingGuards, Spend
from ghostpay.x402.networks import X402Network, network_for_cluster, same_network

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient

Required = Union[PaymentRequired, PaymentRequiredV1]
FeedbackMode = Literal["off", "auto"]

RECORD_KEY = "ghostpay.x402.payment"  # where a response carries its PaymentRecord (httpx extensions)
LEGACY_TIMEOUT_SECONDS = 60  # for a v1 requirement that names no maxTimeoutSeconds
REQUOTES = 1  # a seller may change its price once between the 402 and the paid retry
# A facilitator's refusals of the record instruction itself (an unchanged official one refuses a fifth
# instruction; ours when it may not front the rent): the buyer then pays once more without it.
RECORD_REFUSED = frozenset({ERR_INVALID_INSTRUCTION_COUNT, ERR_UNKNOWN_FIFTH_INSTRUCTION,
                            ERR_UNKNOWN_SIXTH_INSTRUCTION, "ghostpay_record_instruction_invalid",
                            "ghostpay_receipt_rent_not_fronted"})
# record_x402_payment when the pair's first payment creates its PayerStats: about 5,100 CU, at most about 5,700
# (bench/compute_units.py), with a margin (later payments need about 2,600); the official limit (20,000) leaves
# 778 CU after TransferChecked (6,147) and the Memo (12,775)
RECORD_COMPUTE_UNITS = 8_000
COMPUTE_BUDGET = Pubkey.from_string(COMPUTE_BUDGET_PROGRAM_ADDRESS)


@dataclass(frozen=True)
class Quote:
    """One requirement of a 402, decoded: what paying it would cost and to whom."""

    x402_version: int
    scheme: str
    network: str
    mint: str
    amount_atomic: int
    pay_to: str
    fee_payer: str | None
    resource: str
    max_timeout_seconds: int
    extra: dict[str, Any]
    decimals: int | None = None  # read from the mint (None when it cannot be read)
    assumed: tuple[str, ...] = ()  # fields a lenient v1 read filled in
    label: str | None = None  # the mint's token label on the wallet's cluster

    @property
    def token(self) -> str:
        """The mint by name, for messages: `USDC (EPjF…)`, else the address."""
        return f"{self.label} ({self.mint})" if self.label else self.mint

    @property
    def amount(self) -> Decimal | None:
        return None if self.decimals is None else from_atomic(self.amount_atomic, self.decimals)

    @property
    def terms(self) -> tuple[str, str, int, str]:
        """What paying it means: network, mint, amount, payee."""
        return (self.network, self.mint, self.amount_atomic, self.pay_to)

    @property
    def agent(self) -> str | None:
        hint = self.extra.get("ghostpay")
        return hint.get("agent") if isinstance(hint, dict) else None


@dataclass
class PaymentRecord:
    """One payment made for an HTTP call, and how the call went."""

    url: str
    network: str
    x402_version: int
    mint: str
    amount: Decimal
    amount_atomic: int
    seller: str  # the wallet paid (payTo)
    payer: str
    agent: str | None
    status: int  # the HTTP status of the paid retry
    latency_ms: int  # paid retry sent -> its whole answer read (the seller's verify and settle included)
    settled: bool  # the seller's answer carried a successful settlement
    signature: str | None  # the settled transaction
    verified: bool = False  # the settled transaction recorded it on chain (GhostPay's X402PaymentRecorded)
    payer_stats: str | None = None  # the payer's PayerStats for the agent (what lets it rate the call)
    reference: str | None = None
    error: str | None = None  # the settlement's error, when it failed
    feedback: str | None = None  # the feedback transaction, with feedback="auto"
    assumed: tuple[str, ...] = ()
    quote_ms: int = 0  # first request sent -> requirement chosen (the 402 round trip, mint and balance reads)
    sign_ms: int = 0  # guards, then the transaction built and signed
    label: str | None = None  # the mint's token label on the wallet's cluster

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["amount"] = str(self.amount)
        data["assumed"] = list(self.assumed)
        return data


def payment_record(response: httpx.Response) -> PaymentRecord | None:
    """The PaymentRecord of a response the buyer paid for (None if it paid nothing)."""
    return response.extensions.get(RECORD_KEY)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def rating_for(status: int, latency_ms: int) -> tuple[bool, int]:
    """(success, rating 1-5) of a paid call: a 5xx or no answer is a failure rated 1, a 4xx a failure rated 2;
    a success is rated by response time: under 1 s 5, 3 s 4, 10 s 3, slower 2."""
    if status >= 500:
        return False, 1
    if status >= 400:
        return False, 2
    for limit_ms, rating in ((1_000, 5), (3_000, 4), (10_000, 3)):
        if latency_ms < limit_ms:
            return True, rating
    return True, 2


# the GhostPay record ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordedPayment:
    """The payment transaction with `record_x402_payment` added, its reference, and the buyer's PayerStats."""

    transaction: str  # base64, signed by the buyer, the fee payer's slot empty
    reference: bytes
    payer_stats: Pubkey


@dataclass(frozen=True)
class RecordHint:
    """What the seller's `extra.ghostpay` says about GhostPay's record: the agent, and who pays the rent of
    the buyer's PayerStats if this payment creates it (the facilitator when it fronts it, else the buyer)."""

    agent: Pubkey
    rent_payer: Pubkey | None


def record_hint(quote: Quote, program_id: Pubkey) -> RecordHint | None:
    """GhostPay's record for this requirement, when the seller asks for it: `extra.ghostpay = {agent,
    programId, recordAfterMemo: true, rentPayer?}`; the seller sets `recordAfterMemo` when its facilitator
    advertises the GhostPay extension (it accepts `record_x402_payment` after the Memo)."""
    hint = quote.extra.get("ghostpay")
    if not isinstance(hint, dict) or hint.get("recordAfterMemo") is not True \
            or hint.get("programId") != str(program_id):
        return None
    try:
        rent_payer = hint.get("rentPayer")
        return RecordHint(Pubkey.from_string(str(hint.get("agent"))),
                          Pubkey.from_string(rent_payer) if isinstance(rent_payer, str) else None)
    except ValueError:
        return None


def add_ghostpay_record(transaction_b64: str, buyer: Keypair, agent: Pubkey, program_id: Pubkey,
                        rent_payer: Pubkey | None = None) -> RecordedPayment:
    """The official exact payment with `record_x402_payment` appended after its Memo: [compute limit,
    compute price, TransferChecked, Memo, record]. Same blockhash, fee payer and instructions but the
    compute limit, raised by what the record needs. The rent of the buyer's PayerStats, if this is the pair's
    first payment, is paid by `rent_payer` (the facilitator fronting it) or else the buyer, whose account then
    becomes writable; the buyer signs again."""
    tx = VersionedTransaction.from_bytes(base64.b64decode(transaction_b64))
    message = tx.message
    keys, header = list(message.account_keys), message.header
    signers = header.num_required_signatures

    def writable(i: int) -> bool:
        if i < signers:
            return i < signers - header.num_readonly_signed_accounts
        return i < len(keys) - header.num_readonly_unsigned_accounts

    instructions = [Instruction(keys[ix.program_id_index], bytes(ix.data),
                                [AccountMeta(keys[a], a < signers, writable(a)) for a in ix.accounts])
                    for ix in message.instructions]
    if instructions and instructions[0].program_id == COMPUTE_BUDGET and instructions[0].data[:1] == bytes([2]):
        limit = int.from_bytes(instructions[0].data[1:5], "little") + RECORD_COMPUTE_UNITS
        instructions[0] = set_compute_unit_limit(limit)
    transfer = next(ix for ix in instructions if ix.data[:1] == bytes([12]))  # TransferChecked
    amount = int.from_bytes(transfer.data[1:9], "little")
    source, mint, destination = (meta.pubkey for meta in transfer.accounts[:3])
    reference = new_reference()
    instructions.append(build_record_x402_payment(agent, buyer.pubkey(), amount, reference, source, mint, destination,
                                                  rent_payer=rent_payer, program_id=program_id))
    recorded = MessageV0.try_compile(keys[0], instructions, [], message.recent_blockhash)
    signatures = [Signature.default()] * recorded.header.num_required_signatures
    signatures[list(recorded.account_keys).index(buyer.pubkey())] = buyer.sign_message(
        bytes([0x80]) + bytes(recorded))  # a v0 message is signed with its version prefix
    signed = VersionedTransaction.populate(recorded, signatures)
    return RecordedPayment(base64.b64encode(bytes(signed)).decode(), reference,
                           payer_stats_address(agent, buyer.pubkey(), program_id)[0])


# reading a 402 ------------------------------------------------------------------------------------------

_HTTP = x402HTTPClientSync(x402ClientSync())  # header codecs only: no scheme registered


def read_payment_required(response: httpx.Response, url: str) -> tuple[Required, dict[int, tuple[str, ...]]]:
    """The requirements of a 402 (v2 header, v1 body), and per accepts index the fields a lenient v1 read
    assumed. PaymentRequirementsInvalid, naming what is missing, when nothing can be paid from it."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    try:
        return _HTTP.get_payment_required_response(response.headers.get, body), {}
    except Exception as exc:  # noqa: BLE001 - the package raises ValueError or pydantic errors
        if response.headers.get("payment-required"):
            raise PaymentRequirementsInvalid(f"the seller's PAYMENT-REQUIRED header cannot be read: {exc}") from None
        if isinstance(body, dict) and body.get("x402Version", 1) == 1 and "accepts" in body:
            return lenient_v1(body, url)
        raise PaymentRequirementsInvalid("the seller answered 402 without x402 requirements "
                                         "(no PAYMENT-REQUIRED header, no v1 body with accepts)") from None


def lenient_v1(body: dict[str, Any], url: str) -> tuple[PaymentRequiredV1, dict[int, tuple[str, ...]]]:
    """A legacy v1 body the spec's parser refuses (e.g. an integer `maxAmountRequired`, no `resource`,
    no `asset`), filled in where the payment stays unambiguous: the resource is the URL called, the
    timeout 60 s, the asset the network's default stablecoin (USDC). No payTo, amount or fee payer
    cannot be guessed: PaymentRequirementsInvalid names them."""
    accepts = body.get("accepts")
    if not isinstance(accepts, list) or not accepts:
        raise PaymentRequirementsInvalid("the seller's v1 402 body has no accepts list")
    fixed: list[PaymentRequirementsV1] = []
    assumed: dict[int, tuple[str, ...]] = {}
    problems = []
    for given in accepts:
        if not isinstance(given, dict):
            problems.append("an accepts entry is not an object")
            continue
        req, filled, missing = dict(given), [], []
        amount = req.get("maxAmountRequired")
        if isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0:
            req["maxAmountRequired"] = str(amount)
        elif not (isinstance(amount, str) and amount.isdigit()):
            missing.append("maxAmountRequired (atomic units)")
        for name in ("scheme", "network", "payTo"):
            if not isinstance(req.get(name), str) or not req[name]:
                missing.append(name)
        extra = req.get("extra") if isinstance(req.get("extra"), dict) else {}
        if not extra.get("feePayer"):
            missing.append("extra.feePayer (the facilitator paying the fees)")
        if not req.get("resource"):
            req["resource"], _ = url, filled.append("resource")
        if not isinstance(req.get("maxTimeoutSeconds"), int):
            req["maxTimeoutSeconds"], _ = LEGACY_TIMEOUT_SECONDS, filled.append("maxTimeoutSeconds")
        if not req.get("asset") and isinstance(req.get("network"), str):
            try:
                req["asset"] = get_default_asset(req["network"])["asset"]
                filled.append("asset")
            except ValueError:
                missing.append("asset")
        if missing:
            problems.append(f"{given.get('payTo', 'a requirement')} misses {', '.join(missing)}")
            continue
        assumed[len(fixed)] = tuple(filled)
        fixed.append(PaymentRequirementsV1.model_validate(req))
    if not fixed:
        raise PaymentRequirementsInvalid("the seller's 402 cannot be paid: " + "; ".join(problems))
    return PaymentRequiredV1(x402_version=1, error=body.get("error"), accepts=fixed), assumed


async def decode_quotes(gp: "GhostPayClient", required: Required, url: str,
                        assumed: dict[int, tuple[str, ...]] | None = None) -> list[Quote]:
    """Every requirement of a 402 decoded, with the mint's decimals where it can be read, and its label."""
    out = []
    try:
        labels = (await gp.labels()).by_mint
    except GhostPayError:  # the node cannot say which cluster it is: no labels
        labels = {}
    for i, req in enumerate(required.accepts):
        decimals = None
        try:
            decimals = (await gp.get_mint(Pubkey.from_string(req.asset))).decimals
        except (GhostPayError, ValueError):
            pass
        resource = getattr(req, "resource", None) or (required.resource.url if getattr(
            required, "resource", None) else url)
        extra = dict(req.extra or {})
        out.append(Quote(required.x402_version, req.scheme, str(req.network), req.asset, int(req.get_amount()),
                         req.pay_to, extra.get("feePayer"), resource, req.max_timeout_seconds, extra, decimals,
                         (assumed or {}).get(i, ()), labels.get(req.asset)))
    return out


async def fetch_quotes(gp: "GhostPayClient", method: str, url: str, **request: Any) -> tuple[int, list[Quote]]:
    """Call `url` without paying: its HTTP status and, for a 402, its requirements decoded."""
    async with httpx.AsyncClient(timeout=30) as plain:
        response = await plain.request(method, url, **request)
    if response.status_code != 402:
        return response.status_code, []
    required, assumed = read_payment_required(response, url)
    return 402, await decode_quotes(gp, required, url, assumed)


# the buyer ----------------------------------------------------------------------------------------------

class X402Buyer:
    """Pays 402 answers for one wallet (a GhostPayClient's) under spending guards."""

    def __init__(self, gp: "GhostPayClient", *, guards: SpendingGuards | GuardedWallet | None = None,
                 max_price: Decimal | None = None, tokens: Sequence[Pubkey | str] = (),
                 feedback: FeedbackMode = "off") -> None:
        if feedback not in ("off", "auto"):
            raise InvalidArgument(f"feedback is 'off' or 'auto', not {feedback!r}")
        self.gp = gp
        self.wallet = gp.wallet
        self.network: X402Network = network_for_cluster(gp.cluster.http_url, gp.cluster.ws_url)
        self.guarded = guards if isinstance(guards, GuardedWallet) or guards is None else GuardedWallet(guards)
        self.max_price = max_price
        self.asked = list(tokens)  # mints or token labels, resolved on the wallet's cluster at the first 402
        self.tokens: list[str] | None = None
        self.feedback = feedback
        self._agents: dict[tuple[str, str], bool] = {}  # (agent, payTo): the agent's payment address is payTo
        # the package's own client builds and signs the transaction; our guards replace its spend controls
        signer = KeypairSigner(gp.keypair)
        self._official = x402ClientSync().set_spend_controls(False)
        self._official.register("solana:*", ExactSvmScheme(signer, self.network.rpc_url))
        v1 = ExactSvmSchemeV1(signer, self.network.rpc_url)
        for name in V1_NETWORKS:
            self._official.register_v1(name, v1)

    # quoting -----------------------------------------------------------------------------------------

    async def quotes(self, required: Required, url: str, assumed: dict[int, tuple[str, ...]] | None = None
                     ) -> list[Quote]:
        return await decode_quotes(self.gp, required, url, assumed)

    async def choose(self, required: Required, url: str, assumed: dict[int, tuple[str, ...]]) -> tuple[int, Quote]:
        """The requirement to pay: the first (in `tokens` order, then the seller's) on this network, in the
        exact scheme, with a fee payer, that the guards allow and the wallet holds enough of."""
        quotes = await self.quotes(required, url, assumed)
        if self.tokens is None:
            self.tokens = [str(await self.gp.resolve_mint(t)) for t in self.asked]
        tokens = self.tokens
        order = sorted(range(len(quotes)), key=lambda i: (tokens.index(quotes[i].mint)
                                                          if quotes[i].mint in tokens else len(tokens), i))
        reasons: list[str] = []
        refusal: SpendingRefused | None = None
        if self.guarded is not None:
            await self.gp.bind_guards(self.guarded)
        guards = self.guarded.guards if self.guarded else SpendingGuards()
        if tokens and not {q.mint for q in quotes} & set(tokens):
            labels = await self.gp.labels()
            asked = ", ".join(f"{labels.label(t)} ({t})" if labels.label(t) else t for t in tokens)
            raise TokenNotAccepted(f"the seller does not take {asked}; it asks for "
                                   + ", ".join(q.token for q in quotes) + "; nothing was paid",
                                   asked=tokens, accepted=list(dict.fromkeys(q.mint for q in quotes)))
        for i in order:
            quote = quotes[i]
            if quote.scheme != "exact":
                reasons.append(f"scheme {quote.scheme!r} is not supported (only 'exact')")
            elif not same_network(quote.network, self.network.caip2) and \
                    not same_network(quote.network, self.network.v1_name):
                reasons.append(f"the seller wants network {quote.network}; this wallet is on {self.network.caip2}")
            elif not quote.fee_payer:
                reasons.append(f"{quote.token}: no extra.feePayer (the facilitator paying the fees)")
            elif quote.decimals is None:
                reasons.append(f"{quote.mint} is not a token mint on {self.network.rpc_url}")
            elif quote.pay_to == str(self.wallet):
                reasons.append(f"you are the seller: its payTo {quote.pay_to} is this wallet, and a payment to "
                               "yourself proves nothing (the program refuses it as SelfPayment)")
            elif tokens and quote.mint not in tokens:
                continue  # another requirement is in a token asked for
            else:
                try:
                    guards.with_max_price(self.max_price).check(await self.spend(quote, url))
                except SpendingRefused as exc:
                    refusal = refusal or exc
                    continue
                balance = to_atomic(await self.gp.get_token_balance(self.wallet, Pubkey.from_string(quote.mint)),
                                    quote.decimals)
                if balance >= quote.amount_atomic:
                    return i, quote
                reasons.append(f"{quote.token}: the wallet holds {from_atomic(balance, quote.decimals)}, "
                               f"the price is {quote.amount}")
        if refusal is not None:
            raise refusal
        raise NoPayableRequirement("nothing in the seller's 402 can be paid from this wallet: " + "; ".join(reasons))

    async def spend(self, quote: Quote, url: str) -> Spend:
        """What the guards see of paying `quote`: the agent only when the chain confirms it is the seller's."""
        assert quote.decimals is not None
        return Spend(str(self.wallet), quote.mint, quote.decimals, quote.amount_atomic, quote.pay_to,
                     await self._verified_agent(quote), url, quote.label)

    async def _verified_agent(self, quote: Quote) -> str | None:
        """The agent the seller names (`extra.ghostpay.agent`), if its on-chain payment address is the payTo:
        a seller may not borrow an allowed agent's name."""
        if quote.agent is None:
            return None
        key = (quote.agent, quote.pay_to)
        if key not in self._agents:
            try:
                info = await self.gp.get_agent(Pubkey.from_string(quote.agent))
                self._agents[key] = str(info.payment_address) == quote.pay_to
            except (GhostPayError, ValueError):
                self._agents[key] = False
        return quote.agent if self._agents[key] else None

    async def _authorize(self, spend: Spend) -> Reservation | None:
        if self.guarded is None:
            return None
        return await self.guarded.authorize(spend, self.max_price)

    # paying ------------------------------------------------------------------------------------------

    async def sign(self, required: Required, index: int, quote: Quote, *, record: bool = True
                   ) -> tuple[PaymentPayload | PaymentPayloadV1, RecordedPayment | None]:
        """The official payment payload for `required.accepts[index]` (the package's exact SVM client),
        with GhostPay's record added when the requirement asks for it (and `record`)."""
        only = required.model_copy(update={"accepts": [required.accepts[index]]})
        try:  # the package's SVM client reads the chain with a blocking RPC client: off the event loop
            payload = await asyncio.to_thread(self._official.create_payment_payload, only)
            hint = record_hint(quote, self.gp.program_id) if record else None
            if hint is None:
                return payload, None
            recorded = add_ghostpay_record(payload.payload["transaction"], self.gp.keypair, hint.agent,
                                           self.gp.program_id, hint.rent_payer)
        except Exception as exc:  # noqa: BLE001 - the package raises ValueError, RPC and parse errors
            raise PaymentRequirementsInvalid(f"the payment cannot be built from the seller's requirement: "
                                             f"{type(exc).__name__}: {exc}") from exc
        return payload.model_copy(update={"payload": {**payload.payload, "transaction": recorded.transaction}}), \
            recorded

    async def handle(self, request: httpx.Request, response: httpx.Response, send: Any,
                     asked_at: float) -> httpx.Response:
        """Pay a 402 `response` to `request` (sent at `asked_at`, perf_counter); `send(request)` sends
        through the inner transport."""
        url = str(request.url)
        await response.aread()
        required, assumed = read_payment_required(response, url)
        paid: set[tuple[str, str, int, str]] = set()
        with_record = True
        while True:
            index, quote = await self.choose(required, url, assumed)
            quoted_at = time.perf_counter()
            reservation = await self._authorize(await self.spend(quote, url))
            try:
                payload, recorded = await self.sign(required, index, quote, record=with_record)
            except BaseException:
                if reservation is not None:
                    await reservation.release()
                raise
            headers = dict(request.headers)
            headers.update(_HTTP.encode_payment_signature_header(payload))
            retry = httpx.Request(request.method, request.url, headers=headers, content=request.content,
                                  extensions=request.extensions)
            if reservation is not None:
                await reservation.sent()
            started = time.perf_counter()
            response = await send(retry)
            await response.aread()
            latency_ms = _ms(time.perf_counter() - started)
            record = self._record(quote, url, response, latency_ms)
            record.quote_ms, record.sign_ms = _ms(quoted_at - asked_at), _ms(started - quoted_at)
            if recorded is not None:
                record.reference, record.payer_stats = recorded.reference.hex(), str(recorded.payer_stats)
                record.verified = record.settled and await self._recorded(quote, recorded, record.signature)
            if reservation is not None and record.settled:
                await reservation.settled(record.signature)
            elif reservation is not None and response.status_code == 402 and not record.signature:
                # Refused before any transaction was sent: nothing was spent. (A seller that answers 402 and
                # still submits the signed transaction before its blockhash expires could take it: the budget
                # would then run one payment over; it takes nothing more than that payment.)
                await reservation.release()
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
                if len(paid) <= REQUOTES and not paid & {q.terms for q in await self.quotes(required, url)}:
                    asked_at = started
                    continue
            break
        if self.feedback == "auto" and record.verified and record.agent and record.reference:
            success, rating = rating_for(response.status_code, latency_ms)
            result = await self.gp.submit_feedback(Pubkey.from_string(record.agent), record.reference,
                                                   success=success, response_time_ms=latency_ms, rating=rating)
            record.feedback = str(result.signature)
        response.extensions[RECORD_KEY] = record
        return response

    async def _recorded(self, quote: Quote, recorded: RecordedPayment, signature: str | None) -> bool:
        """Whether the settled transaction recorded this wallet's payment of this reference to the agent."""
        hint = record_hint(quote, self.gp.program_id)
        if hint is None or signature is None:
            return False
        try:
            events = await self.gp.get_transaction_events(signature)
        except GhostPayError:
            return False
        return any(e.name == "X402PaymentRecorded" and e.agent == hint.agent and e.payer == self.wallet
                   and bytes(e.reference) == recorded.reference for e in events)

    def _record(self, quote: Quote, url: str, response: httpx.Response, latency_ms: int) -> PaymentRecord:
        settle: SettleResponse | None = None
        try:
            settle = _HTTP.get_payment_settle_response(response.headers.get)
        except Exception:  # noqa: BLE001 - no or unreadable PAYMENT-RESPONSE: not settled as far as we know
            pass
        settled = bool(settle and settle.success)
        assert quote.decimals is not None
        return PaymentRecord(
            url=url, network=quote.network, x402_version=quote.x402_version, mint=quote.mint,
            amount=from_atomic(quote.amount_atomic, quote.decimals), amount_atomic=quote.amount_atomic,
            seller=quote.pay_to, payer=(settle.payer if settle and settle.payer else str(self.wallet)),
            agent=quote.agent, status=response.status_code, latency_ms=latency_ms, settled=settled,
            signature=settle.transaction if settled and settle else None,
            error=None if settled or settle is None else (settle.error_reason or "settlement failed"),
            assumed=quote.assumed, label=quote.label)


class X402Transport(httpx.AsyncBaseTransport):
    """An httpx transport that pays 402 answers through an X402Buyer."""

    def __init__(self, buyer: X402Buyer, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.buyer = buyer
        self._inner = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()  # a 402 replays the request: keep its body
        asked_at = time.perf_counter()
        response = await self._inner.handle_async_request(request)
        if response.status_code != 402:
            return response
        return await self.buyer.handle(request, response, self._inner.handle_async_request, asked_at)

    async def aclose(self) -> None:
        await self._inner.aclose()


class X402HttpClient(httpx.AsyncClient):
    """An httpx.AsyncClient that pays x402 answers; `payments` lists what it paid, oldest first."""

    def __init__(self, buyer: X402Buyer, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", 60.0)  # a paid retry waits for the facilitator's settlement
        super().__init__(transport=X402Transport(buyer, kwargs.pop("transport", None)), **kwargs)
        self.buyer = buyer
        self.payments: list[PaymentRecord] = []

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        response = await super().send(request, **kwargs)
        record = payment_record(response)
        if record is not None:
            self.payments.append(record)
        return response

    async def quote(self, url: str, method: str = "GET", **kwargs: Any) -> list[Quote]:
        """The decoded requirements of `url`'s 402, without paying ([] if it answers anything else)."""
        return (await fetch_quotes(self.buyer.gp, method, url, **kwargs))[1]


class X402HttpSync:
    """The blocking face of an X402HttpClient (from `GhostPay.x402_http`): its coroutines run on the
    facade's event loop through `run`."""

    def __init__(self, client: X402HttpClient, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self.client = client
        self._run = run

    @property
    def payments(self) -> list[PaymentRecord]:
        return self.client.payments

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._run(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def quote(self, url: str, method: str = "GET", **kwargs: Any) -> list[Quote]:
        return self._run(self.client.quote(url, method, **kwargs))

    def close(self) -> None:
        self._run(self.client.aclose())

    def __enter__(self) -> "X402HttpSync":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
