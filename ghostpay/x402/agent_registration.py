"""The sold agent's ERC-8004 registration file at `/.well-known/agent-registration.json` (ASGI, in front of
a paywall): built from the agent's account and rebuilt after each notification of it, so a rename, a new
endpoint or a deactivation shows at the next request, as the 402s follow the price."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from ghostpay import erc8004
from ghostpay.exceptions import AccountNotFound, GhostPayError
from ghostpay.x402.seller import X402Seller, _json, _send

JSON = b"application/json"


class RegistrationRoute:
    """GET `erc8004.REGISTRATION_PATH` answers the registration file of `seller`'s agent; the rest goes to `app`."""

    def __init__(self, app: ASGIApp, seller: X402Seller) -> None:
        self.app = app
        self.seller = seller
        self._document: bytes = b""
        self._built_at = -1  # the watch's notification count the document was built after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != erc8004.REGISTRATION_PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        try:
            document = await self.document()
        except AccountNotFound:
            await _json(send, 404, {"error": "agent_not_found", "message": f"no agent at {self.seller.settings.agent}"})
            return
        except GhostPayError as exc:  # the RPC is down
            await _json(send, 503, {"error": "registration_unavailable", "message": str(exc)[:300]})
            return
        await _send(send, 200, JSON, document, None)

    async def document(self) -> bytes:
        """The file as the account is now: kept until the seller's watch hears of a change (read each time
        while the watch is not following the account)."""
        watch = self.seller.watch
        following = watch.offer is not None
        seen = watch.notifications
        if following and seen == self._built_at:
            return self._document
        found = await erc8004.registration_of(self.seller.gp, self.seller.settings.agent_pubkey)
        document = json.dumps(found.to_json(), separators=(",", ":")).encode()
        if following:
            self._document, self._built_at = document, seen
        return document
