"""Confirmation by `signatureSubscribe` over one shared websocket.

Every settle subscribes to its transaction's signature before sending it, on a connection opened
once (and again after it drops), and a reader thread resolves each subscription's future when the
node notifies. A settle then returns the moment the cluster confirms, with no polling and no
connection set-up per payment.
"""

from __future__ import annotations

import itertools
import json
import threading
from concurrent.futures import Future
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


class SignatureWatcher:
    """`watch(signature)` -> a future resolved with the transaction's error (None when it succeeded)."""

    def __init__(self, ws_url: str, commitment: str = "confirmed") -> None:
        self._ws_url = ws_url
        self._commitment = commitment
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._requests: dict[int, Future[Any]] = {}  # request id -> the future, until the node acks
        self._subscriptions: dict[int, Future[Any]] = {}  # subscription id -> the future
        self._lock = threading.Lock()

    def watch(self, signature: str) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            ws = self._connection()
            request = next(self._ids)
            self._requests[request] = future
            try:
                ws.send(json.dumps({"jsonrpc": "2.0", "id": request, "method": "signatureSubscribe",
                                    "params": [signature, {"commitment": self._commitment}]}))
            except ConnectionClosed as exc:
                self._requests.pop(request, None)
                self._ws = None
                raise RuntimeError(f"signatureSubscribe: the websocket closed: {exc}") from exc
        return future

    def _connection(self) -> ClientConnection:
        if self._ws is None:
            self._ws = connect(self._ws_url, open_timeout=10, max_size=2**20)
            threading.Thread(target=self._read, args=(self._ws,), name="ghostpay-signature-watcher",
                             daemon=True).start()
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
        for future in lost:
            if not future.done():
                future.set_exception(RuntimeError("the websocket closed before the transaction was confirmed"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._lock:
            if "id" in message:  # the ack of a subscription, or its refusal
                future = self._requests.pop(message["id"], None)
                if future is None:
                    return
                if "error" in message:
                    future.set_exception(RuntimeError(f"signatureSubscribe refused: {message['error']}"))
                else:
                    self._subscriptions[message["result"]] = future
                return
            if message.get("method") != "signatureNotification":
                return
            params = message["params"]
            future = self._subscriptions.pop(params["subscription"], None)
        if future is not None and not future.done():
            future.set_result(params["result"]["value"].get("err"))

    def close(self) -> None:
        with self._lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()
