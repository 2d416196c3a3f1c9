"""The facilitator's JSON-RPC calls on a paid call's path: one keep-alive stdlib connection per thread.

Each paid call costs the facilitator two RPC calls (simulateTransaction at verify,
sendTransaction at settle), made from worker threads. Through solana-py's `Client` each one spends
about 1 ms of CPU in httpx (pool bookkeeping, cookie jar, URL parsing): most of what the
facilitator does per payment. `http.client` on a connection kept per thread does the same POST for
a small fraction of that.

    rpc = JsonRpc("http://127.0.0.1:8899")
    rpc.call("getSlot", [])
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

# JSON-RPC error code of a sendTransaction whose preflight simulation failed: nothing was forwarded.
SEND_TRANSACTION_PREFLIGHT_FAILURE = -32002


class RpcError(RuntimeError):
    """The node refused the call or could not be reached; the message says which. `code` and `data` are
    the node's JSON-RPC error code and data when it answered one."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data

    @property
    def preflight_failed(self) -> bool:
        """A sendTransaction refused by its preflight simulation: the transaction was not sent."""
        return self.code == SEND_TRANSACTION_PREFLIGHT_FAILURE

    @property
    def simulation_error(self) -> Any:
        """The transaction error of a failed preflight simulation (as simulateTransaction's `err`)."""
        return self.data.get("err") if isinstance(self.data, dict) else None


class JsonRpc:
    """Blocking JSON-RPC 2.0 over HTTP(S); safe to share between threads (each keeps its connection)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) RPC URL: {url!r}")
        self._connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._host, self._port = parts.hostname, parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json"}
        if parts.username:  # https://user:secret@rpc.example/ (some providers)
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        self._timeout = timeout
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()  # every thread's, for close()
        self._lock = threading.Lock()

    def call(self, method: str, params: list[Any]) -> Any:
        """The call's `result`; RpcError when the node answers an error or cannot be reached."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}).encode()
        status, data = self._post(method, body)
        if status != 200:
            raise RpcError(f"{method}: HTTP {status}: {data[:200].decode('utf-8', 'replace')}")
        answer = json.loads(data)
        if "error" in answer:
            error = answer["error"]
            if isinstance(error, dict):
                raise RpcError(f"{method}: {error.get('message', error)}", error.get("code"), error.get("data"))
            raise RpcError(f"{method}: {error}")
        return answer["result"]

    def _post(self, method: str, body: bytes) -> tuple[int, bytes]:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        reused = connection is not None
        if connection is None:
            connection = self._local.connection = self._connection_class(self._host, self._port, timeout=self._timeout)
            with self._lock:
                self._open.add(connection)
        try:
            connection.request("POST", self._path, body, self._headers)
            response = connection.getresponse()
            return response.status, response.read()
        except TimeoutError as exc:
            self.close_thread_connection()
            raise RpcError(f"{method}: no answer in {self._timeout:g} s") from exc
        except (http.client.HTTPException, OSError) as exc:
            self.close_thread_connection()
            if reused:  # the node closed an idle keep-alive connection: once more on a new one
                return self._post(method, body)
            raise RpcError(f"{method}: {exc!r}") from exc

    def close_thread_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._lock:
                self._open.discard(connection)
            connection.close()

    def close(self) -> None:
        """Close every thread's connection (a thread calling again opens a new one)."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()
