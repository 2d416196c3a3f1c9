"""Events: every work-order event decoded from transactions and streamed live; the live stream
survives its websocket being cut and delivers what comes after."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ghostpay.client import GhostPayClient, TxResult
from ghostpay.events import EVENT_NAMES, ProgramEvent
from tests.sdk.conftest import escrow, fund, time_travel

WORK_ORDER_EVENTS = {
    "WorkOrderCreated",
    "WorkOrderAccepted",
    "WorkDelivered",
    "DeliveryRejected",
    "PaymentReleased",
    "DisputeOpened",
    "DisputeResolved",
    "WorkOrderCancelled",
    "WorkOrderRefunded",
}


async def test_every_work_order_event_decoded_and_live(net, usdc) -> None:
    assert set(EVENT_NAMES) >= WORK_ORDER_EVENTS
    async with await escrow(net, usdc, "eventful") as e:
        ready = asyncio.Event()
        stream = e.client.events(WORK_ORDER_EVENTS, ready=ready)
        live: list[ProgramEvent] = []

        async def collect() -> None:
            async for event in stream:
                live.append(event)

        collector = asyncio.ensure_future(collect())
        await asyncio.wait_for(ready.wait(), 10)

        results: list[TxResult] = []
        terms = {"deadline": timedelta(hours=1), "arbiter": e.arbiter.wallet, "title": "events"}
        done = await e.client.create_work_order(e.agent, 2, **terms)
        results += [
            done.result,
            await e.provider.accept_work_order(done.address),
            await e.provider.submit_delivery(done.address, "https://files.example/e", bytes(32)),
            await e.client.reject_delivery(done.address, "again"),
            await e.client.release_payment(done.address),
        ]
        disputed = await e.client.create_work_order(e.agent, 2, **terms)
        results += [
            disputed.result,
            await e.provider.accept_work_order(disputed.address),
            await e.provider.open_dispute(disputed.address, "unpaid overtime"),
            await e.arbiter.resolve_dispute(disputed.address, 5_000),
        ]
        cancelled = await e.client.create_work_order(e.agent, 2, **terms)
        results += [cancelled.result, await e.client.cancel_work_order(cancelled.address)]
        late = await e.client.create_work_order(e.agent, 2, **{**terms, "deadline": timedelta(seconds=20)})
        time_travel(net, 30)
        results += [late.result, await e.client.claim_refund(late.address)]

        from_results = [event.name for r in results for event in r.events if event.name in WORK_ORDER_EVENTS]
        assert set(from_results) == WORK_ORDER_EVENTS  # settlements also emit ReputationUpdated
        fetched = [
            event.name
            for r in results
            for event in await e.client.get_transaction_events(r.signature)
            if event.name in WORK_ORDER_EVENTS
        ]
        assert fetched == from_results

        ours = {done.address, disputed.address, cancelled.address, late.address}

        async def caught_up() -> None:  # the live stream may run behind the confirmations
            while len([x for x in live if x.work_order in ours]) < len(from_results):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(caught_up(), 20)
        assert [x.name for x in live if x.work_order in ours] == from_results
        collector.cancel()


class CuttableProxy:
    """A TCP relay to the localnet's websocket port whose connections the test can cut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65_536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def cut(self) -> None:
        """Drop every open connection at once, as a node restarting or a network failure would."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        self.server.close()
        await self.server.wait_closed()


async def test_live_events_resume_after_the_websocket_is_cut(net) -> None:
    proxy = CuttableProxy(int(net.ws_url.rsplit(":", 1)[1]))
    port = await proxy.start()
    async with GhostPayClient(net.http_url, fund(net), ws_url=f"ws://127.0.0.1:{port}") as gp:
        ready = asyncio.Event()
        stream = gp.events({"AgentRegistered"}, ready=ready)
        before = asyncio.ensure_future(stream.__anext__())
        await asyncio.wait_for(ready.wait(), 10)
        await gp.register_agent("before-cut", "Before")
        assert (await asyncio.wait_for(before, 10)).agent_id == "before-cut"

        after = asyncio.ensure_future(stream.__anext__())  # waiting on the socket when it is cut
        accepted = proxy.accepted  # the stream's connection and the send path's (its confirmations)
        proxy.cut()

        async def resubscribed() -> None:  # only the stream connects again before the next send
            while not (proxy.accepted > accepted and ready.is_set()):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(resubscribed(), 20)
        await gp.register_agent("after-cut", "After")
        assert (await asyncio.wait_for(after, 10)).agent_id == "after-cut"
        await stream.aclose()
    await proxy.close()
