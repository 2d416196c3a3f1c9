"""What the buyer reads and reports: a 402's requirements decoded (`Quote`), a paid call (`PaymentRecord`),
and how a paid call is rated."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import httpx
from x402.schemas import SettleResponse

from ghostpay.tokens import from_atomic
from ghostpay.x402.record.types import HINT_KEY

FeedbackMode = Literal["off", "auto"]
RECORD_KEY = "ghostpay.x402.payment"  # where a response carries its PaymentRecord (httpx extensions)
# a request's payment identifier (httpx request extensions), overriding the client's `idempotency_key`
IDEMPOTENCY_KEY = "ghostpay.x402.idempotency_key"
# set in a request's extensions once a payment for it left the process (its outcome is then the seller's to say)
PAYMENT_SENT = "ghostpay.x402.payment_sent"


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
        hint = self.extra.get(HINT_KEY)
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
    idempotency_key: str | None = None  # the payment identifier sent (the seller declared the extension)
    replayed: bool = False  # the seller answered from its cache: an earlier payment (`signature`) paid this call

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["amount"] = str(self.amount)
        data["assumed"] = list(self.assumed)
        return data


def settled_record(
    quote: Quote,
    url: str,
    settle: SettleResponse | None,
    wallet: str,
    status: int,
    latency_ms: int,
    unanswered: str | None = None,
    *,
    judged: tuple[bool, str | None] | None = None,
) -> PaymentRecord:
    """The PaymentRecord of paying `quote` for `url` as the seller's settlement response says it went (`unanswered`:
    the error when the seller sent none). `judged`: (settled, error) as the caller's protocol reads `settle`
    instead (a2a also asks the task's state)."""
    if judged is None:
        settled = bool(settle and settle.success)
        error = None if settled else unanswered if settle is None else (settle.error_reason or "settlement failed")
    else:
        settled, error = judged
    assert quote.decimals is not None
    return PaymentRecord(
        url=url,
        network=quote.network,
        x402_version=quote.x402_version,
        mint=quote.mint,
        amount=from_atomic(quote.amount_atomic, quote.decimals),
        amount_atomic=quote.amount_atomic,
        seller=quote.pay_to,
        payer=(settle.payer if settle and settle.payer else wallet),
        agent=quote.agent,
        status=status,
        latency_ms=latency_ms,
        settled=settled,
        signature=settle.transaction if settled and settle else None,
        error=error,
        assumed=quote.assumed,
        label=quote.label,
    )


def payment_record(response: httpx.Response) -> PaymentRecord | None:
    """The PaymentRecord of a response the buyer paid for (None if it paid nothing)."""
    return response.extensions.get(RECORD_KEY)


def ms(seconds: float) -> int:
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
