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
from typing import TYPE_CHECKING, Any, Coroutine, Iterator, TypeVar

from ghostpay.client import GhostPayClient
from ghostpay.events import ProgramEvent

if TYPE_CHECKING:
    from ghostpay.x402.buyer import X402HttpSync

T = TypeVar("T")


class GhostPay:
    """Every coroutine method of `GhostPayClient`, blocking; same arguments, same results and exceptions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ghostpay-sync", daemon=True)
        self._thread.start()
        try:
            self._client: GhostPayClient = self._run(self._open(*args, **kwargs))
        except BaseException:
            self._stop()
            raise

    @staticmethod
    async def _open(*args: Any, **kwargs: Any) -> GhostPayClient:
        return GhostPayClient(*args, **kwargs)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            coro.close()
            raise RuntimeError("this GhostPay client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def client(self) -> GhostPayClient:
        """The underlying async client (its coroutines must run on this facade's loop)."""
        return self._client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        @functools.wraps(attr)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._run(attr(*args, **kwargs))
        return blocking

    def x402_http(self, **options: Any) -> "X402HttpSync":
        """`GhostPayClient.x402_http`, blocking: `with gp.x402_http(max_price=...) as http: http.get(url)`."""
        from ghostpay.x402.buyer import X402HttpSync

        return X402HttpSync(self._client.x402_http(**options), self._run)

    def events(self, names: Any = None, timeout: float | None = None) -> Iterator[ProgramEvent]:
        """Live events, blocking; stops after `timeout` seconds without an event (None: never)."""
        stream = self._client.events(names)
        try:
            while True:
                yield self._run(asyncio.wait_for(stream.__anext__(), timeout))
        except asyncio.TimeoutError:
            return
        finally:
            self._run(stream.aclose())

    def close(self) -> None:
        """Close the client and stop its loop thread."""
        if self._thread.is_alive():
            try:
                self._run(self._client.close())
            finally:
                self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> "GhostPay":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["GhostPay"]
