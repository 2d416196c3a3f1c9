"""Program events: decoded from a transaction's logs, or live over the websocket.

>>> decode_events(["Program log: nothing here"])
[]
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from anchorpy import EventParser
from anchorpy.coder.coder import Coder
from solana.rpc.commitment import Commitment, Confirmed
from solana.rpc.websocket_api import connect
from solders.pubkey import Pubkey
from solders.rpc.config import RpcTransactionLogsFilterMentions
from solders.rpc.responses import LogsNotification, SubscriptionResult
from solders.signature import Signature

from ghostpay import artifacts
from ghostpay.program_id import PROGRAM_ID

log = logging.getLogger(__name__)

EVENT_NAMES: tuple[str, ...] = tuple(e["name"] for e in artifacts.idl_dict().get("events", []))


@dataclass(frozen=True)
class ProgramEvent:
    """One event: its IDL `name`, decoded `data` (attribute access to the fields), and where it came from."""

    name: str
    data: Any
    signature: Signature | None = None
    slot: int | None = None

    def __getattr__(self, field: str) -> Any:  # event.agent == event.data.agent
        if field.startswith("__"):
            raise AttributeError(field)
        return getattr(self.data, field)


@lru_cache(maxsize=8)
def _parser(program_id: Pubkey) -> EventParser:
    return EventParser(program_id, Coder(artifacts.idl()))


def decode_events(
    logs: Sequence[str], program_id: Pubkey = PROGRAM_ID, signature: Signature | None = None, slot: int | None = None
) -> list[ProgramEvent]:
    """Every GhostPay event in a transaction's log messages, in order."""
    if not logs:
        return []
    found: list[ProgramEvent] = []
    try:
        _parser(program_id).parse_logs(
            list(logs), lambda e: found.append(ProgramEvent(e.name, e.data, signature, slot))
        )
    except Exception as exc:  # anchorpy raises bare exceptions on truncated or foreign logs
        log.debug("could not decode all events of %s: %s", signature, exc)
    return found


async def live_events(
    ws_url: str,
    program_id: Pubkey = PROGRAM_ID,
    commitment: Commitment = Confirmed,
    *,
    names: Collection[str] | None = None,
    include_failed: bool = False,
    reconnect_delay: float = 0.25,
    max_reconnect_delay: float = 8.0,
    ready: asyncio.Event | None = None,
) -> AsyncIterator[ProgramEvent]:
    """Events of the program as transactions land (`logsSubscribe` mentioning the program).

    Reconnects with exponential backoff when the websocket drops or cannot be reached; events
    of transactions that landed while disconnected are not replayed. `ready` is set each time
    the subscription is confirmed.

        async for event in live_events("ws://127.0.0.1:8900"):
            print(event.name, event.agent)
    """
    delay = reconnect_delay
    while True:
        try:
            async with connect(ws_url) as ws:
                await ws.logs_subscribe(RpcTransactionLogsFilterMentions(program_id), commitment)
                while True:
                    for message in await ws.recv():
                        if isinstance(message, SubscriptionResult):
                            delay = reconnect_delay
                            if ready is not None:
                                ready.set()
                        elif isinstance(message, LogsNotification):
                            value = message.result.value
                            if value.err is not None and not include_failed:
                                continue
                            for event in decode_events(
                                value.logs, program_id, value.signature, message.result.context.slot
                            ):
                                if names is None or event.name in names:
                                    yield event
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # websockets' ConnectionClosed, OSError, handshake and parse errors
            log.info("event stream to %s dropped (%s); reconnecting in %.2fs", ws_url, exc, delay)
            if ready is not None:
                ready.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_reconnect_delay)
