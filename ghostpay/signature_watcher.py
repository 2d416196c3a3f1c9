"""Confirmation by `signatureSubscribe` over one shared websocket: the SDK's send path and the facilitator's.

Every transaction is watched before it is sent, on a connection opened once (and again after it drops),
and a reader thread resolves each watch's future when the node notifies: a sender learns the moment the
cluster confirms, with no polling and no connection set-up per transaction. The thread makes it usable
from threads (the facilitator) and from any event loop (`asyncio.wrap_future`, the SDK) alike.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

OPEN_TIMEOUT = 10.0  # seconds to open the websocket, by default
MAX_MESSAGE = 2**20


@dataclass(frozen=True)
class Notification:
    """What the node said of a watched signature: the slot it was confirmed in, and its error (None: success)."""

    slot: int
    err: Any


class SignatureWatcher:
    """`watch(signature)` -> a future resolved with its `Notification` when the node confirms it."""

    def __init__(self, ws_url: str, commitment: str = "confirmed", open_timeout: float = OPEN_TIMEOUT) -> None:
        self._ws_url = ws_url
        self._open_timeout = open_timeout
        self._commitment = commitment
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._requests: dict[int, Future[Any]] = {}  # request id -> the future, until the node acks
        self._subscriptions: dict[int, Future[Any]] = {}  # subscription id -> the future
        self._forgotten: set[int] = set()  # request ids forgotten before the node acked them
        self._lock = threading.Lock()

    def connect(self) -> None:
        """Open the websocket now if it is not open (it blocks: an event loop calls it in a thread)."""
        with self._lock:
            self._connection()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def watch(self, signature: str) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            ws = self._connection()
            request = next(self._ids)
            self._requests[request] = future
            try:
                ws.send(
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": request,
                            "method": "signatureSubscribe",
                            "params": [signature, {"commitment": self._commitment}],
                        }
                    )
                )
            except ConnectionClosed as exc:
                self._requests.pop(request, None)
                self._ws = None
                raise RuntimeError(f"signatureSubscribe: the websocket closed: {exc}") from exc
        return future

    def forget(self, future: Future[Any]) -> None:
        """Drop the watch behind `future` (its send failed, or its wait timed out) and unsubscribe from
        the node, so a settle that ends without a notification leaves nothing open."""
        future.cancel()
        with self._lock:
            for request, waiting in list(self._requests.items()):
                if waiting is future:
                    del self._requests[request]
                    self._forgotten.add(request)  # its ack, when it comes, is unsubscribed
            subscriptions = [s for s, waiting in self._subscriptions.items() if waiting is future]
            for subscription in subscriptions:
                del self._subscriptions[subscription]
            ws = self._ws
        for subscription in subscriptions:
            self._unsubscribe(ws, subscription)

    def _unsubscribe(self, ws: ClientConnection | None, subscription: int) -> None:
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):  # the subscription went with the connection
            ws.send(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": next(self._ids),
                        "method": "signatureUnsubscribe",
                        "params": [subscription],
                    }
                )
            )

    @property
    def pending(self) -> int:
        """Watches not yet resolved (subscribing or subscribed)."""
        with self._lock:
            return len(self._requests) + len(self._subscriptions)

    def _connection(self) -> ClientConnection:
        if self._ws is None:
            self._ws = connect(self._ws_url, open_timeout=self._open_timeout, max_size=MAX_MESSAGE)
            threading.Thread(
                target=self._read, args=(self._ws,), name="ghostpay-signature-watcher", daemon=True
            ).start()
        return self._ws

    def _read(self, ws: ClientConnection) -> None:
        try:
            for raw in ws:
                self._dispatch(json.loads(raw))
        except (ConnectionClosed, OSError, ValueError):
            pass
        with self._lock:  # every open subscription is lost with the connection: its settle stays pending
            if self._ws is ws:
                self._ws = None
            lost = list(self._requests.values()) + list(self._subscriptions.values())
            self._requests.clear()
            self._subscriptions.clear()
            self._forgotten.clear()
        for future in lost:
            if not future.done():
                future.set_exception(RuntimeError("the websocket closed before the transaction was confirmed"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:  # the ack of a subscription (or of an unsubscription), or a refusal
            self._acknowledged(message)
            return
        if message.get("method") != "signatureNotification":
            return
        params = message["params"]
        with self._lock:
            future = self._subscriptions.pop(params["subscription"], None)
        if future is not None and not future.done():
            future.set_result(Notification(params["result"]["context"]["slot"], params["result"]["value"].get("err")))

    def _acknowledged(self, message: dict[str, Any]) -> None:
        with self._lock:
            future = self._requests.pop(message["id"], None)
            if future is None:
                if message["id"] not in self._forgotten or "result" not in message:
                    return
                self._forgotten.discard(message["id"])  # forgotten before the ack: unsubscribe now
                ws = self._ws
            elif "error" in message:
                future.set_exception(RuntimeError(f"signatureSubscribe refused: {message['error']}"))
                return
            else:
                self._subscriptions[message["result"]] = future
                return
        self._unsubscribe(ws, message["result"])

    def close(self) -> None:
        with self._lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()
