"""The x402 buyer: an httpx client that pays 402 answers with the official `x402` package's exact SVM scheme.

    async with x402_http(gp, guards=SpendingGuards(daily=Decimal("5")), max_price=Decimal("0.05")) as http:
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

Modules: `models` (Quote, PaymentRecord, rating), `quotes` (reading a 402), `policy` (which requirement to
pay, under the guards), `payer` (X402Buyer: sign, pay, read the answer), `transport` (the httpx client),
`sync` (its blocking face), `session` (signing in instead of paying a seller that offers sessions: a
response served so carries a `SessionCall`, `session_call(r)`, and no PaymentRecord). GhostPay's record
itself is the extension `ghostpay.x402.record`.
"""

from ghostpay.x402.buyer.models import (
    IDEMPOTENCY_KEY,
    PAYMENT_SENT,
    RECORD_KEY,
    FeedbackMode,
    PaymentRecord,
    Quote,
    payment_record,
    rating_for,
)
from ghostpay.x402.buyer.payer import REQUOTES, X402Buyer
from ghostpay.x402.buyer.policy import BuyerPolicy
from ghostpay.x402.buyer.quotes import (
    LEGACY_TIMEOUT_SECONDS,
    Required,
    decode_quotes,
    fetch_quotes,
    lenient_v1,
    read_payment_required,
)
from ghostpay.x402.buyer.session import SESSION_KEY, SessionCall, session_call
from ghostpay.x402.buyer.sync import X402HttpSync
from ghostpay.x402.buyer.transport import X402HttpClient, X402Transport

__all__ = [
    "IDEMPOTENCY_KEY",
    "PAYMENT_SENT",
    "LEGACY_TIMEOUT_SECONDS",
    "RECORD_KEY",
    "SESSION_KEY",
    "REQUOTES",
    "BuyerPolicy",
    "FeedbackMode",
    "PaymentRecord",
    "Quote",
    "Required",
    "SessionCall",
    "X402Buyer",
    "X402HttpClient",
    "X402HttpSync",
    "X402Transport",
    "decode_quotes",
    "fetch_quotes",
    "lenient_v1",
    "payment_record",
    "rating_for",
    "read_payment_required",
    "session_call",
]
