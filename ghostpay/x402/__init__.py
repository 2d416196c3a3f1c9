"""x402 over HTTP on the official `x402` package: networks, facilitator, seller middleware, proxy, buyer.

The buyer's entry point is `x402_http`: an httpx client that pays x402 (HTTP 402) answers from a
GhostPay wallet, async from a `GhostPayClient`, blocking from a `GhostPay`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from solders.pubkey import Pubkey

    from ghostpay.client import GhostPayClient
    from ghostpay.spending import GuardedWallet, SpendingGuards
    from ghostpay.sync_client import GhostPay
    from ghostpay.x402.buyer import FeedbackMode, X402HttpClient, X402HttpSync


@overload
def x402_http(
    gp: GhostPayClient,
    *,
    guards: SpendingGuards | GuardedWallet | None = None,
    max_price: Decimal | str | int | None = None,
    tokens: Sequence[Pubkey | str] = (),
    feedback: FeedbackMode = "off",
    idempotency_key: str | None = None,
    **httpx_options: Any,
) -> X402HttpClient: ...


@overload
def x402_http(
    gp: GhostPay,
    *,
    guards: SpendingGuards | GuardedWallet | None = None,
    max_price: Decimal | str | int | None = None,
    tokens: Sequence[Pubkey | str] = (),
    feedback: FeedbackMode = "off",
    idempotency_key: str | None = None,
    **httpx_options: Any,
) -> X402HttpSync: ...


def x402_http(
    gp: GhostPayClient | GhostPay,
    *,
    guards: SpendingGuards | GuardedWallet | None = None,
    max_price: Decimal | str | int | None = None,
    tokens: Sequence[Pubkey | str] = (),
    feedback: FeedbackMode = "off",
    idempotency_key: str | None = None,
    **httpx_options: Any,
) -> X402HttpClient | X402HttpSync:
    """An `httpx.AsyncClient` that pays x402 (HTTP 402) answers from `gp`'s wallet (see `ghostpay.x402.buyer`):

        async with x402_http(gp, max_price=Decimal("0.05")) as http:
            r = await http.get(url)          # payment_record(r): signature, amount, mint, seller...

    From a blocking `GhostPay`, its blocking face: `with x402_http(gp, ...) as http: http.get(url)`.
    `guards` default to the client's; `max_price` caps one call (whole tokens of the mint paid);
    `tokens` are the mints to pay with, preferred in that order; `feedback="auto"` rates verified calls.
    `idempotency_key`: the payment identifier sent to sellers that declare the extension (one client, one
    logical call; per request: `extensions={IDEMPOTENCY_KEY: key}`); default: a new one per paid request, kept
    while the buyer sends that payment again after a failed connection.
    """
    from ghostpay.sync_client import GhostPay
    from ghostpay.x402.buyer import X402Buyer, X402HttpClient, X402HttpSync

    client = gp.client if isinstance(gp, GhostPay) else gp
    buyer = X402Buyer(
        client,
        guards=guards if guards is not None else client.guards,
        max_price=None if max_price is None else Decimal(str(max_price)),
        tokens=tokens,
        feedback=feedback,
        idempotency_key=idempotency_key,
    )
    http = X402HttpClient(buyer, **httpx_options)
    return X402HttpSync(http, gp.run) if isinstance(gp, GhostPay) else http


__all__ = ["x402_http"]
