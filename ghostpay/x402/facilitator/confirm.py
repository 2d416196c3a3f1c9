"""Where a settle's signature stands on chain (its confirmation by `signatureSubscribe` is
`ghostpay.signature_watcher`'s, shared with the SDK)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ghostpay.x402.facilitator.rpc import JsonRpc

CONFIRMED_STATUSES = ("confirmed", "finalized")

# Where a transaction stands on chain (`chain_status`).
SUCCEEDED, FAILED_ON_CHAIN, EXPIRED, IN_FLIGHT = "succeeded", "failed", "expired", "in_flight"


class FailedOnChain(RuntimeError):
    """The transaction landed and failed: its fee was paid, nothing else moved."""

    def __init__(self, err: Any) -> None:
        super().__init__(f"Transaction failed: {json.dumps(err)}")
        self.err = err


@dataclass(frozen=True)
class ChainStatus:
    state: str  # SUCCEEDED, FAILED_ON_CHAIN, EXPIRED or IN_FLIGHT
    error: Any = None  # the on-chain error of a failed one


def chain_status(rpc: JsonRpc, signature: str, blockhash: str | None) -> ChainStatus:
    """Where the transaction with this fee-payer signature stands. The blockhash is read first: expired
    then (at confirmed commitment, where it was valid when the transaction was simulated), and the
    signature still unknown after, means it never landed and never will."""
    expired = (
        blockhash is not None and not rpc.call("isBlockhashValid", [blockhash, {"commitment": "confirmed"}])["value"]
    )
    status = rpc.call("getSignatureStatuses", [[signature], {"searchTransactionHistory": True}])["value"][0]
    if status is not None and status.get("confirmationStatus") in CONFIRMED_STATUSES:
        return ChainStatus(SUCCEEDED) if status.get("err") is None else ChainStatus(FAILED_ON_CHAIN, status["err"])
    return ChainStatus(EXPIRED if expired and status is None else IN_FLIGHT)
