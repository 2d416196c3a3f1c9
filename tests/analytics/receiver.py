"""A webhook receiver on a real port (Starlette under uvicorn, in a thread) that answers as told: fail
(HTTP 500), hang (longer than the sender's timeout), or ok; it records every request it got."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: str  # ok, fail, hang


@dataclass
class Receiver:
    behaviour: Callable[[int], str] = lambda n: "ok"  # request number (0-based) -> ok, fail or hang
    hang_seconds: float = 2.0
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: Request) -> Response:
        answer = self.behaviour(len(self.requests))
        self.requests.append(Received({k.lower(): v for k, v in request.headers.items()}, await request.body(), answer))
        if answer == "hang":
            await asyncio.sleep(self.hang_seconds)
        return Response(status_code=200 if answer == "ok" else 500)

    def delivered(self) -> list[Received]:
        return [r for r in self.requests if r.answered == "ok"]


def run_receiver(receiver: Receiver) -> Iterator[Receiver]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
    app = Starlette(routes=[Route("/hooks", receiver.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
