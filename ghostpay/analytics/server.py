"""Running the API under uvicorn, alone (`ghost indexer serve`) or beside the indexer in one process
(`ghost indexer run --serve`); SIGINT / SIGTERM stop both gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from ghostpay.analytics.api import ApiSettings, create_app
from ghostpay.indexer.service import Indexer, IndexerConfig


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (it re-raises the signal after shutdown); ours stops both."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


async def serve(
    settings: ApiSettings,
    sock: socket.socket,
    indexer_config: IndexerConfig | None = None,
    on_ready: Callable[[str], None] | None = None,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Serve the API on `sock` (and run an indexer with `indexer_config`) until SIGINT / SIGTERM (in the
    main thread), `stop_event` is set, or an error."""
    stopping = stop_event or asyncio.Event()
    indexer = Indexer(indexer_config) if indexer_config is not None else None

    def indexer_counters() -> dict[str, float]:
        assert indexer is not None
        return {"reconnects": indexer.totals.reconnects, "transactions_applied": indexer.totals.stats.transactions}

    app = create_app(settings, indexer_counters if indexer is not None else None)
    server = _Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, lifespan="on"))

    def stop() -> None:
        server.should_exit = True
        if indexer is not None:
            indexer.stop()

    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if threading.current_thread() is threading.main_thread() else ()
    for sig in signals:
        loop.add_signal_handler(sig, stopping.set)
    watcher = asyncio.create_task(stopping.wait())
    watcher.add_done_callback(lambda _: stop())
    try:
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(server.serve(sockets=[sock]))]
        if indexer is not None:
            tasks.append(asyncio.create_task(indexer.run()))
        while not server.started and not tasks[0].done():
            await asyncio.sleep(0.02)
        if server.started and on_ready is not None:
            on_ready(base_url(sock))
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop()  # one ended (a signal, or the indexer failed): end the other
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # the first failure, if any
    finally:
        watcher.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
