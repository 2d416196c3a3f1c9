"""A fault-injecting HTTP proxy in front of a localnet's JSON-RPC: it forwards every request, and on
the next `sendTransaction` injects one fault *after* the node has the transaction (or, for
`drop-before`, instead of forwarding it):

- `drop`: close the connection without an answer;
- `500`: answer HTTP 500;
- `delay`: answer only after `delay` seconds (past the client's timeout);
- `drop-before`: close the connection without forwarding (the transaction never left).

`outage` seconds after the fault, every request is dropped (the RPC "does not answer again" yet).
`throttle(every, status, retry_after)` answers every n-th request with that HTTP status instead, and
`fail_between(first, last)` answers 503 to the requests numbered first..last (1-based).
`before_send(action)` runs `action()` once, before the next `sendTransaction` is forwarded without its
preflight (another party's transaction landing after the RPC node's preflight passed and before the
leader executes this one).

    with FaultProxy(net.http_url) as proxy:
        proxy.arm("drop", outage=1.0)
        ... GhostPayClient(proxy.url) ...
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

FAULTS = ("drop", "500", "delay", "drop-before")


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fault: str | None = None
        self.delay = 0.0
        self.outage = 0.0
        self.outage_until = 0.0
        self.sent = 0  # sendTransaction requests that reached the node
        self.requests = 0
        self.methods: list[str] = []  # the JSON-RPC method of each request forwarded or refused, in order
        self.refused = 0  # requests answered with an injected HTTP error
        self.throttle_every = 0
        self.throttle_status = 429
        self.retry_after: float | None = None
        self.failing: tuple[int, int] | None = None
        self.faults_fired = 0
        self._before_send: Callable[[], Any] | None = None
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, fault: str, *, outage: float = 0.0, delay: float = 0.0) -> None:
        """Inject `fault` at the next sendTransaction, then drop everything for `outage` seconds."""
        assert fault in FAULTS, fault
        self.fault, self.outage, self.delay = fault, outage, delay

    def throttle(self, every: int, status: int = 429, retry_after: float | None = None) -> None:
        self.throttle_every, self.throttle_status, self.retry_after = every, status, retry_after

    def fail_between(self, first: int, last: int) -> None:
        self.failing = (first, last)

    def before_send(self, action: Callable[[], Any]) -> None:
        self._before_send = action

    def heal(self) -> None:
        """End the outage now."""
        self.outage_until = 0.0

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._client = httpx.AsyncClient(timeout=30)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if not (await reader.readline()).strip():
            return False
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        if time.monotonic() < self.outage_until:
            return False  # the node is unreachable: drop the connection
        self.requests += 1
        self.methods += _methods(body)
        failing = self.failing is not None and self.failing[0] <= self.requests <= self.failing[1]
        if failing or self.throttle_every and self.requests % self.throttle_every == 0:
            self.refused += 1
            extra = {} if failing or self.retry_after is None else {"Retry-After": f"{self.retry_after:g}"}
            await _reply(writer, 503 if failing else self.throttle_status, b"{}", extra)
            return True
        fault = self.fault if _is_send(body) else None
        if _is_send(body) and self._before_send is not None:
            action, self._before_send = self._before_send, None
            await asyncio.to_thread(action)
            body = _without_preflight(body)
        if fault == "drop-before":
            self._fired()
            return False
        answer = await self._client.post(self.upstream, content=body, headers={"content-type": "application/json"})
        if _is_send(body):
            self.sent += 1
        if fault is None:
            await _reply(writer, answer.status_code, answer.content)
            return True
        self._fired()
        if fault == "drop":
            return False
        if fault == "500":
            await _reply(writer, 500, b"Internal Server Error")
            return True
        await asyncio.sleep(self.delay)
        await _reply(writer, answer.status_code, answer.content)
        return True

    def _fired(self) -> None:
        self.fault = None
        self.faults_fired += 1
        self.outage_until = time.monotonic() + self.outage


def _methods(body: bytes) -> list[str]:
    try:
        request: Any = json.loads(body)
    except ValueError:
        return []
    return [r.get("method", "") for r in (request if isinstance(request, list) else [request]) if isinstance(r, dict)]


def _is_send(body: bytes) -> bool:
    try:
        request: Any = json.loads(body)
    except ValueError:
        return False
    return isinstance(request, dict) and request.get("method") == "sendTransaction"


def _without_preflight(body: bytes) -> bytes:
    request = json.loads(body)
    options = request["params"][1] if len(request["params"]) > 1 else {}
    request["params"] = [request["params"][0], {**options, "skipPreflight": True}]
    return json.dumps(request).encode()


async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}.get(
        status, "Status"
    )
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: keep-alive\r\n\r\n".encode()
        + body
    )
    await writer.drain()
