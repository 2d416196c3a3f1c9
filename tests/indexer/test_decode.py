"""The decoder: events placed by (instruction, event index) from the invoke stack; foreign,
malformed and unknown `Program data:` lines counted and skipped; junk websocket messages too."""

from __future__ import annotations

import base64
import json

from solders.pubkey import Pubkey

from ghostpay.events import decode_logs, event_types
from ghostpay.indexer.source import ChainTransaction, LogStream
from ghostpay.program_id import PROGRAM_ID
from ghostpay.types import AgentStatusChanged, X402Disabled

OURS = str(PROGRAM_ID)
OTHER = "TokenkegQfeZyiNwAJbNbGCMb5hoc3q1hQd7LPjkm2bvD"  # another program that could log data
AGENT = Pubkey.new_unique()


def data_line(name: str, body: bytes) -> str:
    discriminator = next(d for d, (n, _) in event_types().items() if n == name)
    return "Program data: " + base64.b64encode(discriminator + body).decode()


def status_changed(active: bool, timestamp: int = 7) -> str:
    return data_line(
        "AgentStatusChanged",
        AgentStatusChanged.layout.build({"agent": AGENT, "is_active": active, "timestamp": timestamp}),
    )


def disabled(timestamp: int = 9) -> str:
    return data_line("X402Disabled", X402Disabled.layout.build({"agent": AGENT, "timestamp": timestamp}))


def invoke(program: str, depth: int) -> str:
    return f"Program {program} invoke [{depth}]"


def test_events_are_placed_by_top_level_instruction_and_order_within_it() -> None:
    logs = [
        invoke("ComputeBudget111111111111111111111111111111", 1),
        "Program ComputeBudget111111111111111111111111111111 success",
        invoke(OURS, 1),
        status_changed(False),
        disabled(),
        f"Program {OURS} consumed 900 of 200000 compute units",
        f"Program {OURS} success",
        invoke(OTHER, 1),
        invoke(OURS, 2),
        status_changed(True),
        f"Program {OURS} success",
        f"Program {OTHER} success",
    ]
    decoded = decode_logs(logs)
    assert [(e.name, e.instruction_index, e.event_index) for e in decoded.events] == [
        ("AgentStatusChanged", 1, 0),
        ("X402Disabled", 1, 1),
        ("AgentStatusChanged", 2, 0),
    ]
    assert decoded.events[0].data.is_active is False and decoded.events[2].data.is_active is True
    assert json.loads(decoded.events[1].to_json()) == {"agent": str(AGENT), "timestamp": 9}
    assert decoded.skipped.total == 0


def test_foreign_malformed_and_unknown_lines_are_counted_and_skipped() -> None:
    truncated = status_changed(True)[:-8]
    trailing = data_line("X402Disabled", X402Disabled.layout.build({"agent": AGENT, "timestamp": 1}) + b"\0")
    unknown = "Program data: " + base64.b64encode(b"\xff" * 8 + b"payload").decode()
    logs = [
        invoke(OTHER, 1),
        status_changed(True),
        f"Program {OTHER} success",  # an event-shaped line of another program
        "Program data: nothing here",
        invoke(OURS, 1),
        "Program data: !!!not base64",
        "Program data: AAEC",
        truncated,
        trailing,
        unknown,
        disabled(),
        invoke(OTHER, 2),
        disabled(),
        f"Program {OTHER} failed: boom",
        disabled(),
        f"Program {OURS} success",
    ]
    decoded = decode_logs(logs)
    # before any invoke and inside OTHER (top level or CPI): foreign
    assert (decoded.skipped.foreign, decoded.skipped.malformed, decoded.skipped.unknown) == (3, 4, 1)
    # every line of ours takes a position, decodable or not, so positions are stable
    assert [(e.name, e.instruction_index, e.event_index) for e in decoded.events] == [
        ("X402Disabled", 1, 5),
        ("X402Disabled", 1, 6),
    ]


def test_the_log_stream_skips_unparsable_notifications() -> None:
    stream = LogStream("ws://unused")
    assert stream.parse("not json") is None
    assert stream.parse(json.dumps({"jsonrpc": "2.0", "method": "logsNotification", "params": {}})) is None
    good = {
        "params": {
            "result": {"context": {"slot": 5}, "value": {"signature": "sig", "err": None, "logs": ["x"]}},
            "subscription": 1,
        }
    }
    assert stream.parse(json.dumps(good)) == ChainTransaction("sig", 5, ["x"], False)
    assert stream.unparsable == 2
