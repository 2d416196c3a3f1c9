"""Program events: decoded from a transaction's logs, or live over the websocket.

Each event is placed by (top-level instruction index, event index within that instruction),
derived by walking the `Program <id> invoke [n]` / `success` / `failed` lines: a `Program data:`
line belongs to the program on top of the invoke stack. Only lines emitted by our program are
decoded; the rest are counted, never raised, so one odd transaction cannot stop a reader. The
bodies are read by the struct-based decoder compiled from the IDL (ghostpay.borsh_layout) into the
generated event classes. One decoder serves the SDK (`decode_events`, `live_events`) and the
indexer (`decode_logs`, positioned).

>>> decode_events(["Program log: nothing here"])
[]
>>> decoded = decode_logs(["Program 11111111111111111111111111111111 invoke [1]",
...                        "Program data: AAAA", "Program 11111111111111111111111111111111 success"])
>>> decoded.events, decoded.skipped.foreign
([], 1)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from solana.rpc.commitment import Commitment, Confirmed
from solana.rpc.websocket_api import connect
from solders.pubkey import Pubkey
from solders.rpc.config import RpcTransactionLogsFilterMentions
from solders.rpc.responses import LogsNotification, SubscriptionResult
from solders.signature import Signature

from ghostpay import artifacts, types
from ghostpay.borsh_layout import DecodeError, decode_fields
from ghostpay.program_id import PROGRAM_ID

log = logging.getLogger(__name__)

EVENT_NAMES: tuple[str, ...] = tuple(e["name"] for e in artifacts.idl_dict().get("events", []))
DATA_PREFIX = "Program data: "
DISCRIMINATOR_LEN = 8


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


@dataclass
class Skipped:
    """`Program data:` lines that were not decoded, by reason."""

    malformed: int = 0  # ours, but not base64 or not a valid event body
    unknown: int = 0  # ours, with a discriminator the IDL does not define
    foreign: int = 0  # emitted by another program

    def add(self, other: Skipped) -> None:
        self.malformed += other.malformed
        self.unknown += other.unknown
        self.foreign += other.foreign

    @property
    def total(self) -> int:
        return self.malformed + self.unknown + self.foreign


@dataclass(frozen=True)
class IndexedEvent:
    """One decoded event and its unique position in the chain."""

    event: ProgramEvent
    instruction_index: int
    event_index: int

    @property
    def name(self) -> str:
        return self.event.name

    @property
    def data(self) -> Any:
        return self.event.data

    def to_json(self) -> str:
        """The event's fields as JSON (pubkeys base58, byte arrays as lists), keys sorted."""
        return json.dumps(self.event.data.to_json(), sort_keys=True, separators=(",", ":"))


@dataclass
class DecodedLogs:
    events: list[IndexedEvent] = field(default_factory=list)
    skipped: Skipped = field(default_factory=Skipped)


@lru_cache(maxsize=1)
def event_types() -> dict[bytes, tuple[str, Any]]:
    """Discriminator → (event name, generated type in ghostpay.types), from the IDL."""
    found = {}
    for entry in artifacts.idl_dict().get("events", []):
        if entry["name"] in EVENT_NAMES:
            found[bytes(entry["discriminator"])] = (entry["name"], getattr(types, entry["name"]))
    return found


def decode_event(payload: str) -> tuple[str, Any] | str:
    """The (name, decoded event) of one base64 `Program data:` payload, or the reason it is skipped:
    "malformed" or "unknown". The body is read by the struct-based decoder compiled from the IDL
    (ghostpay.borsh_layout), into the generated event class."""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return "malformed"
    if len(raw) < DISCRIMINATOR_LEN:
        return "malformed"
    known = event_types().get(raw[:DISCRIMINATOR_LEN])
    if known is None:
        return "unknown"
    name, cls = known
    try:
        # an event longer than its layout is not ours to trust: exact
        return name, cls(**decode_fields(name, raw[DISCRIMINATOR_LEN:], exact=True))
    except DecodeError:
        return "malformed"


def _invoked_program(line: str) -> tuple[str, int] | None:
    """("<program id>", depth) of a `Program <id> invoke [<depth>]` line."""
    parts = line.split(" ")
    if len(parts) == 4 and parts[0] == "Program" and parts[2] == "invoke" and parts[3].startswith("["):
        try:
            return parts[1], int(parts[3].strip("[]"))
        except ValueError:
            return None
    return None


def _is_exit(line: str) -> bool:
    """`Program <id> success` or `Program <id> failed: ...` ends the innermost invocation."""
    parts = line.split(" ", 3)
    return len(parts) >= 3 and parts[0] == "Program" and (parts[2] == "success" or parts[2].startswith("failed"))


def decode_logs(
    logs: Sequence[str], program_id: Pubkey = PROGRAM_ID, *, signature: Any = None, slot: int | None = None
) -> DecodedLogs:
    """Every event our program emitted in these logs, positioned, plus the count of lines skipped."""
    ours = str(program_id)
    out = DecodedLogs()
    stack: list[str] = []
    instruction = -1
    event_index = 0
    for line in logs:
        invoked = _invoked_program(line)
        if invoked is not None:
            program, depth = invoked
            if depth == 1:
                instruction += 1
                event_index = 0
                stack = []
            stack.append(program)
        elif _is_exit(line):
            if stack:
                stack.pop()
        elif line.startswith(DATA_PREFIX):
            if not stack or stack[-1] != ours:
                out.skipped.foreign += 1
                continue
            # every line of ours takes an index, decodable or not, so positions never shift
            position = event_index
            event_index += 1
            decoded = decode_event(line[len(DATA_PREFIX) :].strip())
            if isinstance(decoded, tuple):
                name, data = decoded
                out.events.append(IndexedEvent(ProgramEvent(name, data, signature, slot), instruction, position))
            elif decoded == "malformed":
                out.skipped.malformed += 1
            else:
                out.skipped.unknown += 1
    return out


def decode_events(
    logs: Sequence[str], program_id: Pubkey = PROGRAM_ID, signature: Signature | None = None, slot: int | None = None
) -> list[ProgramEvent]:
    """Every GhostPay event in a transaction's log messages, in order (lines that do not decode are skipped)."""
    return [e.event for e in decode_logs(logs, program_id, signature=signature, slot=slot).events]


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
        except Exception as exc:  # noqa: BLE001 - websockets' ConnectionClosed, OSError, handshake and parse errors
            log.info("event stream to %s dropped (%s); reconnecting in %.2fs", ws_url, exc, delay)
            if ready is not None:
                ready.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_reconnect_delay)
