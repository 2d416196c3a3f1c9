"""The websocket pub-sub: Solana's `*Subscribe` / `*Unsubscribe` methods and notifications.

Each connection gets an outgoing queue drained by one writer task, so a slow
client never blocks the chain and every client sees notifications in order.
Commitment is accepted and checked; every commitment level is final here, so
notifications go out as soon as a transaction is committed to the ledger: every
message is queued only after the commit of what was written before it (the
server's group commit), so a notification never reports a transaction that a
SIGKILL could still lose.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ghostpay.localnet import encoding as enc
from ghostpay.localnet.chain import Chain
from ghostpay.localnet.errors import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    invalid_params,
)
from ghostpay.localnet.programs import SYSTEM_PROGRAM_ID
from ghostpay.localnet.rpc import (
    AccountFilter,
    Rpc,
    account_encoding,
    config,
    encode_response,
    param,
    pubkey,
    required,
    signature,
)

NOTIFICATION = {
    "account": "accountNotification",
    "logs": "logsNotification",
    "program": "programNotification",
    "signature": "signatureNotification",
    "slot": "slotNotification",
    "root": "rootNotification",
}
EMPTY_ACCOUNT = Account(0, b"", SYSTEM_PROGRAM_ID, False, 0)


@dataclass
class Subscription:
    """One subscription of one connection."""

    id: int
    kind: str  # a key of NOTIFICATION
    client: Client
    key: str | None = None  # account, program, signature, or the logs `mentions` address
    cfg: dict[str, Any] | None = None
    check: AccountFilter | None = None  # a program subscription's filters


# Runs a delivery (its second argument) once everything written so far is committed; the transport is
# dropped instead if that commit fails.
AfterCommit = Callable[[asyncio.BaseTransport, Callable[[], object]], None]


class Client:
    """A websocket connection and its outgoing queue."""

    def __init__(self, connection: ServerConnection, after_commit: AfterCommit) -> None:
        self.connection = connection
        self.after_commit = after_commit
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.subscriptions: set[int] = set()

    def send(self, message: dict[str, Any]) -> None:
        """Queue `message` once what it may show is committed."""
        self.after_commit(self.connection.transport, partial(self.queue.put_nowait, b"".join(encode_response(message))))

    async def write(self) -> None:
        try:
            while True:
                await self.connection.send(await self.queue.get(), text=True)  # JSON: UTF-8 already
        except ConnectionClosed:
            pass  # the reader side sees the close and cleans up


class PubSub:
    """Subscriptions over a `Chain`; registers itself as the chain's listener."""

    def __init__(self, rpc: Rpc, after_commit: AfterCommit) -> None:
        self.rpc = rpc
        self.after_commit = after_commit
        self.chain: Chain = rpc.chain
        self.ids = itertools.count(1)
        self.subscriptions: dict[int, Subscription] = {}
        self.chain.listeners.append(self)

    # -- connections ---------------------------------------------------------------------------

    async def serve(self, connection: ServerConnection) -> None:
        """The websockets handler for one connection."""
        client = Client(connection, self.after_commit)
        writer = asyncio.create_task(client.write())
        try:
            async for message in connection:
                for reply in self.handle(client, message):
                    client.send(reply)
        except ConnectionClosed:
            pass
        finally:
            for sub_id in list(client.subscriptions):
                self.subscriptions.pop(sub_id, None)
            writer.cancel()

    def handle(self, client: Client, message: str | bytes) -> list[dict[str, Any]]:
        try:
            request = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            return [{"jsonrpc": "2.0", "error": {"code": PARSE_ERROR, "message": "Parse error"}, "id": None}]
        requests = request if isinstance(request, list) and request else [request]
        return [reply for reply in (self.handle_one(client, r) for r in requests) if reply is not None]

    def handle_one(self, client: Client, request: Any) -> dict[str, Any] | None:
        """The reply to one request; None when the reply was already queued (subscriptions)."""
        if (
            not isinstance(request, dict)
            or request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)
        ):
            return {"jsonrpc": "2.0", "error": {"code": INVALID_REQUEST, "message": "Invalid request"}, "id": None}
        request_id, method, params = request.get("id"), request["method"], request.get("params") or []
        if not isinstance(params, list):
            return {"jsonrpc": "2.0", "error": invalid_params("expected a sequence").to_json(), "id": request_id}
        try:
            if method.endswith("Unsubscribe") and method[: -len("Unsubscribe")] in NOTIFICATION:
                return {"jsonrpc": "2.0", "result": self.unsubscribe(client, params), "id": request_id}
            if method.endswith("Subscribe") and method[: -len("Subscribe")] in NOTIFICATION:
                sub = self.subscribe(client, method[: -len("Subscribe")], params)
                client.send({"jsonrpc": "2.0", "result": sub.id, "id": request_id})
                self.after_subscribe(sub)
                return None
        except RpcError as exc:
            return {"jsonrpc": "2.0", "error": exc.to_json(), "id": request_id}
        if method in self.rpc.methods:  # Agave's pub-sub answers only subscriptions; be lenient
            return self.rpc.handle(request)
        return {"jsonrpc": "2.0", "error": {"code": METHOD_NOT_FOUND, "message": "Method not found"}, "id": request_id}

    # -- subscriptions -------------------------------------------------------------------------

    def subscribe(self, client: Client, kind: str, params: list[Any]) -> Subscription:
        sub = Subscription(next(self.ids), kind, client)
        if kind == "account":
            required(params, 1)
            sub.key, sub.cfg = str(pubkey(params[0])), config(params, 1)
            account_encoding(sub.cfg)
        elif kind == "program":
            required(params, 1)
            sub.key, sub.cfg = str(pubkey(params[0])), config(params, 1)
            account_encoding(sub.cfg)
            sub.check = Rpc._filters(sub.cfg)
        elif kind == "signature":
            required(params, 1)
            sub.key, sub.cfg = str(signature(params[0])), config(params, 1)
        elif kind == "logs":
            required(params, 1)
            selector = params[0]
            config(params, 1)
            if (
                isinstance(selector, dict)
                and isinstance(selector.get("mentions"), list)
                and len(selector["mentions"]) == 1
            ):
                sub.key = str(pubkey(selector["mentions"][0]))
            elif selector not in ("all", "allWithVotes"):
                raise RpcError(INVALID_PARAMS, "Invalid Request: Only 1 address supported")
        self.subscriptions[sub.id] = sub
        client.subscriptions.add(sub.id)
        return sub

    def after_subscribe(self, sub: Subscription) -> None:
        """A signature that is already processed notifies at once (and the subscription ends)."""
        if sub.kind == "signature":
            status = self.chain.status(signature(sub.key))
            if status is not None:
                self.notify(sub, {"context": {"slot": status[0]}, "value": {"err": status[1]}})
                self.drop(sub)

    def unsubscribe(self, client: Client, params: list[Any]) -> bool:
        sub_id = param(params, 0)
        if not isinstance(sub_id, int) or sub_id not in client.subscriptions:
            raise RpcError(INVALID_PARAMS, "Invalid subscription id.")
        self.drop(self.subscriptions[sub_id])
        return True

    def drop(self, sub: Subscription) -> None:
        self.subscriptions.pop(sub.id, None)
        sub.client.subscriptions.discard(sub.id)

    @staticmethod
    def notify(sub: Subscription, result: Any) -> None:
        sub.client.send(
            {"jsonrpc": "2.0", "method": NOTIFICATION[sub.kind], "params": {"result": result, "subscription": sub.id}}
        )

    # -- chain events (ChainListener) ----------------------------------------------------------------

    def on_transaction(self, slot: int, signature_: str, err: Any, logs: list[str], keys: list[Pubkey]) -> None:
        if not self.subscriptions:
            return
        context = {"slot": slot}
        mentions = {str(key) for key in keys}
        for sub in list(self.subscriptions.values()):
            if sub.kind == "logs" and (sub.key is None or sub.key in mentions):
                self.notify(sub, {"context": context, "value": {"signature": signature_, "err": err, "logs": logs}})
            elif sub.kind == "signature" and sub.key == signature_:
                self.notify(sub, {"context": context, "value": {"err": err}})
                self.drop(sub)

    def on_accounts(self, slot: int, accounts: list[tuple[Pubkey, Account | None]]) -> None:
        if not self.subscriptions or not accounts:
            return
        context = {"slot": slot}
        for key, account in accounts:
            shown = account if account is not None else EMPTY_ACCOUNT
            address, owner = str(key), str(shown.owner)
            for sub in list(self.subscriptions.values()):
                if sub.kind == "account" and sub.key == address:
                    self.notify(sub, {"context": context, "value": self.encode(shown, sub)})
                elif (
                    sub.kind == "program"
                    and sub.key == owner
                    and account is not None
                    and (sub.check is None or sub.check(shown.data, len(shown.data)))
                ):
                    self.notify(
                        sub, {"context": context, "value": {"pubkey": address, "account": self.encode(shown, sub)}}
                    )

    def encode(self, account: Account, sub: Subscription) -> dict[str, Any]:
        cfg = sub.cfg or {}
        encoding = account_encoding(cfg, default="base64")
        try:
            return enc.encode_account(account, encoding, cfg.get("dataSlice"), self.chain.mint_decimals)
        except RpcError:  # base58 cannot carry accounts over 128 bytes
            return enc.encode_account(account, "base64", cfg.get("dataSlice"))

    def on_slot(self, slot: int, parent: int) -> None:
        for sub in list(self.subscriptions.values()):
            if sub.kind == "slot":
                self.notify(sub, {"parent": parent, "root": slot, "slot": slot})
            elif sub.kind == "root":
                self.notify(sub, slot)
