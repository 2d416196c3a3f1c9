"""The buyer's side of Sign-In-With-Solana sessions: instead of paying a 402 that offers the `sign-in-with-x`
extension, sign its challenge with the wallet's key when that key paid for this route within the seller's
period (`ghostpay.sessionSeconds` in the declaration), and send the request again with `SIGN-IN-WITH-X` (the
package's `create_siwx_payload` and `encode_siwx_header`). What the wallet paid comes from this client's own
payments and, with guards, from the spend ledger (settled payments, every process of the user). A seller that
refuses the sign-in answers another 402: the buyer then pays as usual."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from x402.extensions.sign_in_with_x import SIGN_IN_WITH_X, create_siwx_payload, encode_siwx_header
from x402.mechanisms.svm.signers import KeypairSigner

from ghostpay.x402.buyer.quotes import Required
from ghostpay.x402.networks import X402Network, same_network
from ghostpay.x402.sessions import HINT_KEY, SESSION_HEADER

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient
    from ghostpay.spending import GuardedWallet

SESSION_KEY = "ghostpay.x402.session"  # where a response served on a session carries its SessionCall


@dataclass
class SessionCall:
    """A call served on a SIWX session: nothing was paid for it."""

    url: str
    payer: str  # the key that signed in (the wallet)
    period_seconds: float  # the seller's session period
    paid_by: str | None  # the settlement that opened the session, as the seller names it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def session_call(response: httpx.Response) -> SessionCall | None:
    """The SessionCall of a response served on a session (None otherwise)."""
    return response.extensions.get(SESSION_KEY)


def route_key(url: str) -> str:
    """What a session is for: the URL's origin and path (its query aside)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def offered_session(required: Required, network: X402Network) -> tuple[dict[str, Any], float] | None:
    """(the challenge completed with this wallet's chain, the period) when the 402 offers a session on its
    network with a period, else None."""
    declared = (getattr(required, "extensions", None) or {}).get(SIGN_IN_WITH_X)
    if not isinstance(declared, dict) or not isinstance(declared.get("info"), dict):
        return None
    period = (declared.get(HINT_KEY) or {}).get("sessionSeconds")
    for chain in declared.get("supportedChains") or ():
        chain_id = chain.get("chainId", "") if isinstance(chain, dict) else ""
        if chain.get("type") == "ed25519" and same_network(chain_id, network.caip2) and isinstance(period, int | float):
            return {**declared["info"], "chainId": chain_id, "type": "ed25519"}, float(period)
    return None


class BuyerSessions:
    """When one wallet may sign in instead of paying, and the signed-in request."""

    def __init__(self, gp: GhostPayClient, network: X402Network, guarded: GuardedWallet | None) -> None:
        self.gp = gp
        self.network = network
        self.guarded = guarded
        self.signer = KeypairSigner(gp.keypair)
        self._paid: dict[str, float] = {}  # route_key -> when this client's last payment for it settled

    def paid(self, url: str) -> None:
        """This client's payment for `url` settled now."""
        self._paid[route_key(url)] = time.time()

    def paid_within(self, url: str, seconds: float) -> bool:
        """Whether the wallet paid for `url`'s route in the last `seconds` (this client, or the ledger)."""
        key, since = route_key(url), time.time() - seconds
        if self._paid.get(key, 0.0) > since:
            return True
        if self.guarded is None:
            return False
        urls = self.guarded.ledger.settled_urls(str(self.gp.wallet), since)
        return any(route_key(u) == key for u in urls)

    async def sign_in(self, request: httpx.Request, required: Required, send: Any) -> httpx.Response | None:
        """The answer to `request` sent again signed in, when the 402 offers a session that the wallet's payments
        open; None when it does not (or the seller refused it: pay then)."""
        url = str(request.url)
        offered = offered_session(required, self.network)
        if offered is None or not self.paid_within(url, offered[1]):
            return None
        challenge, period = offered
        try:  # the package binds the challenge to the URL's origin (ValueError) before signing
            payload = await create_siwx_payload(challenge, self.signer, url)
        except ValueError:
            return None
        headers = {**request.headers, SIGN_IN_WITH_X: encode_siwx_header(payload)}
        signed = httpx.Request(
            request.method, request.url, headers=headers, content=request.content, extensions=request.extensions
        )
        response: httpx.Response = await send(signed)
        await response.aread()
        if response.status_code == 402:
            return None
        paid_by = response.headers.get(SESSION_HEADER)
        response.extensions[SESSION_KEY] = SessionCall(url, str(self.gp.wallet), period, paid_by)
        return response
