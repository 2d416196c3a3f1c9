"""The struct-based borsh decoders (`ghostpay.borsh_layout`) beside the generated construct layouts they twin.

    python -m bench.decoders        # print the table, write bench/results/decoders.json   (make bench-decoders)

Microseconds per value, best of several rounds, same bytes for both: an Agent account (every IDL field
filled with random values, as tests/test_borsh_layout.py builds them), an event body (the mean over every
IDL event), and a transaction's logs with three events (the events module's decoder against anchorpy's
`EventParser`, which interprets the construct layouts). The twin is kept because of the ratio.
"""

from __future__ import annotations

import base64
import random
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass

from anchorpy import EventParser
from anchorpy.coder.coder import Coder
from rich.console import Console
from rich.table import Table

from bench.report import report
from ghostpay import accounts, artifacts, types
from ghostpay.borsh_layout import decode_account, decode_fields
from ghostpay.events import decode_logs, event_types
from ghostpay.program_id import PROGRAM_ID
from tests.test_borsh_layout import IDL_TYPES, fields

SAMPLES = 50  # random values of each type
ROUNDS = 5


@dataclass
class Row:
    value: str
    construct_us: float
    struct_us: float
    speedup: float


def per_call_us(work: Callable[[], object], calls: int) -> float:
    """Best of ROUNDS of `work` (which makes `calls` decodes), in µs per decode."""
    return min(timeit.repeat(work, number=1, repeat=ROUNDS)) / calls * 1e6


def row(value: str, construct_us: float, struct_us: float) -> Row:
    return Row(value, round(construct_us, 1), round(struct_us, 1), round(construct_us / struct_us, 1))


def measure() -> list[Row]:
    rng = random.Random(1)
    agents = [
        accounts.Agent.discriminator + accounts.Agent.layout.build(fields(IDL_TYPES["Agent"], rng)) + bytes(200)
        for _ in range(SAMPLES)
    ]
    assert all(decode_account("Agent", a) == accounts.Agent.decode(a) for a in agents)
    rows = [
        row(
            "Agent account",
            per_call_us(lambda: [accounts.Agent.decode(a) for a in agents], SAMPLES),
            per_call_us(lambda: [decode_account("Agent", a) for a in agents], SAMPLES),
        )
    ]

    discriminators = {name: d for d, (name, _) in event_types().items()}
    bodies = [
        (name, getattr(types, name), getattr(types, name).layout.build(fields(IDL_TYPES[name], rng)))
        for name in discriminators
        for _ in range(SAMPLES // 10)
    ]
    rows.append(
        row(
            f"event body (mean of {len(discriminators)} events)",
            per_call_us(lambda: [cls.layout.parse(body) for _, cls, body in bodies], len(bodies)),
            per_call_us(lambda: [decode_fields(name, body, exact=True) for name, _, body in bodies], len(bodies)),
        )
    )

    logs = [f"Program {PROGRAM_ID} invoke [1]", "Program log: Instruction: RecordX402Payment"]
    logs += ["Program data: " + base64.b64encode(discriminators[name] + body).decode() for name, _, body in bodies[:3]]
    logs += [f"Program {PROGRAM_ID} consumed 9000 of 200000 compute units", f"Program {PROGRAM_ID} success"]
    parser = EventParser(PROGRAM_ID, Coder(artifacts.idl()))
    parsed: list[object] = []
    parser.parse_logs(logs, parsed.append)
    assert len(parsed) == len(decode_logs(logs).events) == 3

    def with_anchorpy() -> None:
        for _ in range(SAMPLES):
            parser.parse_logs(logs, lambda _: None)

    rows.append(
        row(
            "a transaction's logs, 3 events (anchorpy EventParser vs ghostpay.events)",
            per_call_us(with_anchorpy, SAMPLES),
            per_call_us(lambda: [decode_logs(logs) for _ in range(SAMPLES)], SAMPLES),
        )
    )
    return rows


def main() -> int:
    console = Console(stderr=True)
    rows = measure()
    table = Table(title="borsh decoding, µs per value (best of 5)")
    for column in ("value", "construct µs", "struct µs", "speed-up"):
        table.add_column(column, justify="left" if column == "value" else "right")
    for r in rows:
        table.add_row(r.value, f"{r.construct_us:,.1f}", f"{r.struct_us:,.1f}", f"{r.speedup:.1f}×")
    report(table, rows, "decoders", console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
