"""The facilitator's JSON-RPC calls on a paid call's path: one keep-alive stdlib connection per thread.

Each paid call costs the facilitator two RPC calls (simulateTransaction at verify,
sendTransaction at settle), made from worker threads. Through solana-py's `Client` each one spends
about 1 ms of CPU in httpx (pool bookkeeping, cookie jar, URL parsing): most of what the
facilitator does per payment. `http.client` on a connection kept per thread does the same POST for
a small fraction of that. On a plain-http node (a local or private one) `PlainHttpConnection` reads the
answer itself: `http.client` parses its headers through the email package, a third of its CPU per call.

    rpc = JsonRpc("http://127.0.0.1:8899")
    rpc.call("getSlot", [])
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import socket
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


MAX_HEADER_LINES = 100  # as http.client: an answer with more is not from an RPC node
MAX_LINE_BYTES = 65_536


class PlainHttpConnection:
    """A keep-alive HTTP/1.1 connection to a plain-http node, with the part of `http.client.HTTPConnection`
    JsonRpc uses: `request` then `getresponse()`, whose `status` and `read()` are the answer's. It reads the
    status line, the headers it needs (length, chunked, close) and the body; anything else malformed raises
    `http.client.HTTPException`, a connection the node closed `RemoteDisconnected`, as `http.client` does."""

    def __init__(self, host: str, port: int | None, timeout: float) -> None:
        self._address = (host, port or http.client.HTTP_PORT)
        bracketed = f"[{host}]" if ":" in host else host  # an IPv6 address
        self._host_header = bracketed if port is None else f"{bracketed}:{port}"
        self._timeout = timeout
        self._socket: socket.socket | None = None
        self._file: Any = None
        self.status = 0
        self._body = b""

    def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        if self._socket is None:
            self._socket = socket.create_connection(self._address, self._timeout)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._file = self._socket.makefile("rb")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host_header}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def getresponse(self) -> PlainHttpConnection:
        """The answer, read whole (`status`, `read()`); the connection is closed after it when the node says so."""
        status_line = self._line()
        if not status_line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise http.client.BadStatusLine(status_line.decode("latin-1", "replace"))
        length, chunked, close = None, False, version == b"HTTP/1.0"
        for _ in range(MAX_HEADER_LINES + 1):
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length" and value.isdigit():
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.endswith(b"chunked")
            elif name == b"connection":
                tokens = {token.strip() for token in value.split(b",")}
                close = b"close" in tokens or (close and b"keep-alive" not in tokens)
        else:
            raise http.client.HTTPException(f"got more than {MAX_HEADER_LINES} headers")
        if chunked:
            self._body = self._chunked()
        elif length is not None:
            self._body = self._exactly(length)
        else:  # no length: the body ends with the connection
            self._body, close = self._file.read(), True
        self.status = int(code)
        if close:
            self.close()
        return self

    def read(self) -> bytes:
        return self._body

    def _line(self) -> bytes:
        line: bytes = self._file.readline(MAX_LINE_BYTES + 1)
        if len(line) > MAX_LINE_BYTES:
            raise http.client.LineTooLong("header line")
        return line

    def _exactly(self, size: int) -> bytes:
        data: bytes = self._file.read(size)
        if len(data) < size:
            raise http.client.IncompleteRead(data, size - len(data))
        return data

    def _chunked(self) -> bytes:
        chunks = []
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise http.client.HTTPException(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                break
            chunks.append(self._exactly(size))
            self._exactly(2)  # the chunk's CRLF
        while self._line() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(chunks)

    def close(self) -> None:
        if self._socket is not None:
            self._file.close()
            self._socket.close()
            self._socket = self._file = None


class JsonRpc:
    """Blocking JSON-RPC 2.0 over HTTP(S); safe to share between threads (each keeps its connection)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) RPC URL: {url!r}")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json"}
        if parts.username:  # https://user:secret@rpc.example/ (some providers)
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        self._timeout = timeout
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._open: set[http.client.HTTPSConnection | PlainHttpConnection] = set()  # every thread's, for close()
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
        connection: http.client.HTTPSConnection | PlainHttpConnection | None = getattr(self._local, "connection", None)
        reused = connection is not None
        if connection is None:
            connection = self._local.connection = (
                http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout)
                if self._https
                else PlainHttpConnection(self._host, self._port, self._timeout)
            )
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
