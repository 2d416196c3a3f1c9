"""Serve an ASGI app with uvicorn until Ctrl-C, saying so once it listens (the announce line tests wait for)."""

from __future__ import annotations

from typing import Any, Callable

from ghostpay.cli.context import CliError


def serve_app(app: Any, host: str, port: int, announce: Callable[[], None], what: str) -> None:
    """Run `app` on host:port; `announce()` runs once the socket listens; CliError when it cannot listen."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                            ws="none")
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets: object = None) -> None:
        await original_startup(sockets)  # type: ignore[arg-type]
        if server.started:
            announce()

    server.startup = startup  # type: ignore[method-assign]
    server.run()
    if not server.started:
        raise CliError(f"{what} could not listen on {host}:{port} (is the port in use?)")
