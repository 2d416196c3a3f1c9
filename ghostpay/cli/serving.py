"""Serve an ASGI app with uvicorn until Ctrl-C on a socket bound here, saying so once it listens (the announce
line tests wait for)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from ghostpay.cli.errors import CliError

# Idle keep-alive connections stay open longer than clients keep them (httpx: 5 s), so a client never
# sends a request on a connection the server is closing at that moment.
KEEP_ALIVE_SECONDS = 75


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound here so a port in use is one line of error, not uvicorn's log."""
    from ghostpay.sockets import listening_socket as bind

    try:
        return bind(host, port)
    except OSError as exc:
        raise CliError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another port with --port"
        ) from None


def serve_app(app: Any, host: str, port: int, announce: Callable[[], None], what: str) -> None:
    """Run `app` on host:port; `announce()` runs once the socket listens; CliError when it cannot listen."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="none",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                announce()

    server = AnnouncingServer(config)
    server.run(sockets=[listening_socket(host, port)])
    if not server.started:
        raise CliError(f"{what} could not listen on {host}:{port} (is the port in use?)")
