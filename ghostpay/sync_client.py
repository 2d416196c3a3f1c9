"""GhostPay: a synchronous facade over GhostPayClient, for scripts and notebooks.

The async client lives on a private event loop in a daemon thread; each method call is run
there and waited for. This works where `asyncio.run` cannot (inside Jupyter's running loop)
and keeps the HTTP connection pool on one loop for the client's whole life.

    with GhostPay("localnet", keypair="~/.config/solana/id.json") as gp:
        print(gp.get_agent_pricing("translator").price)
        order = gp.create_work_order(agent, Decimal("25"), deadline=timedelta(days=7), arbiter=arbiter, title="Job")
        print(gp.get_work_order(order.address).status)   # "Created"

The examples/ folder uses this facade throughout.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from ghostpay.client import GhostPayClient
from ghostpay.events import ProgramEvent

T = TypeVar("T")


class GhostPay:
    """Every coroutine method of `GhostPayClient`, blocking; same arguments, same results and exceptions.

    The methods are made from the async client's at import time, with their signatures and docstrings,
    so `help(GhostPay)`, `dir()` and IDE completion show them; other attributes (`wallet`, `cluster`,
    `agent_address`, ...) are the client's own. Type checkers read sync_client.pyi, written from the
    client by `python -m tools.sync_stub` (tests/sdk/test_sync_stub.py keeps it fresh).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ghostpay-sync", daemon=True)
        self._thread.start()
        try:
            self._client: GhostPayClient = self.run(self._open(*args, **kwargs))
        except BaseException:
            self._stop()
            raise

    @staticmethod
    async def _open(*args: Any, **kwargs: Any) -> GhostPayClient:
        return GhostPayClient(*args, **kwargs)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of `client` on this facade's loop and wait for its result (what every blocking
        method does; `ghostpay.x402.x402_http(gp)` runs its HTTP client's this way)."""
        if not self._thread.is_alive():
            coro.close()
            raise RuntimeError("this GhostPay client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def client(self) -> GhostPayClient:
        """The underlying async client (its coroutines must run on this facade's loop)."""
        return self._client

    def __getattr__(self, name: str) -> Any:  # the client's plain attributes and methods
        return getattr(self._client, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {n for n in dir(self._client) if not n.startswith("_")})

    def events(self, names: Any = None, timeout: float | None = None) -> Iterator[ProgramEvent]:
        """Live events, blocking; stops after `timeout` seconds without an event (None: never)."""
        stream = self._client.events(names)
        try:
            while True:
                yield self.run(asyncio.wait_for(stream.__anext__(), timeout))
        except TimeoutError:
            return
        finally:
            self.run(stream.aclose())

    def close(self) -> None:
        """Close the client and stop its loop thread."""
        if self._thread.is_alive():
            try:
                self.run(self._client.close())
            finally:
                self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> GhostPay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _blocking(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)  # name, docstring and signature (through __wrapped__) of the async method
    def call(self: GhostPay, *args: Any, **kwargs: Any) -> Any:
        return self.run(getattr(self._client, name)(*args, **kwargs))

    return call


for _name, _method in inspect.getmembers(GhostPayClient, inspect.iscoroutinefunction):
    if not _name.startswith("_") and _name not in vars(GhostPay):
        setattr(GhostPay, _name, _blocking(_name, _method))

__all__ = ["GhostPay"]
