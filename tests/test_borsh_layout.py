"""The struct-based decoders (ghostpay.borsh_layout) against the generated construct layouts: every
event and the Agent account, with random values for every IDL field, decode the same; truncated
and over-long bodies are refused. GHOSTPAY_BORSH_CASES raises the number of random cases."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from solders.pubkey import Pubkey

from ghostpay import accounts, artifacts, types
from ghostpay.borsh_layout import DecodeError, decode_account, decode_fields, head_layout

CASES = int(os.environ.get("GHOSTPAY_BORSH_CASES", "50"))
IDL_TYPES = {t["name"]: t for t in artifacts.idl_dict()["types"]}
RANGES = {
    "u8": (0, 2**8 - 1),
    "i8": (-(2**7), 2**7 - 1),
    "u16": (0, 2**16 - 1),
    "i16": (-(2**15), 2**15 - 1),
    "u32": (0, 2**32 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "u64": (0, 2**64 - 1),
    "i64": (-(2**63), 2**63 - 1),
    "u128": (0, 2**128 - 1),
    "i128": (-(2**127), 2**127 - 1),
}


def value(idl_type: Any, rng: random.Random) -> Any:
    """A random value of an IDL type, as construct's `build` takes it."""
    if isinstance(idl_type, str) and idl_type in RANGES:
        low, high = RANGES[idl_type]
        return rng.choice([low, high, rng.randint(low, high)])
    if idl_type == "bool":
        return rng.random() < 0.5
    if idl_type == "pubkey":  # the default key too: an empty earnings slot's, decoded as one shared value
        return Pubkey.default() if rng.random() < 0.2 else Pubkey(rng.randbytes(32))
    if idl_type == "string":
        return "".join(rng.choice("aZ09 é€🙂") for _ in range(rng.randint(0, 40)))
    if "vec" in idl_type:
        return [value(idl_type["vec"], rng) for _ in range(rng.randint(0, 10))]
    if "array" in idl_type:
        inner, count = idl_type["array"]
        return [value(inner, rng) for _ in range(count)]
    if "option" in idl_type:
        return None if rng.random() < 0.5 else value(idl_type["option"], rng)
    return fields(IDL_TYPES[idl_type["defined"]["name"]], rng)


def fields(definition: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {f["name"]: value(f["type"], rng) for f in definition["type"]["fields"]}


EVENTS = [e["name"] for e in artifacts.idl_dict()["events"]]


@pytest.mark.parametrize("name", EVENTS)
def test_every_event_decodes_as_construct_does(name: str) -> None:
    rng = random.Random(name)
    cls = getattr(types, name)
    for _ in range(CASES):
        body = cls.layout.build(fields(IDL_TYPES[name], rng))
        assert cls(**decode_fields(name, body, exact=True)) == cls.from_decoded(cls.layout.parse(body))
        with pytest.raises(DecodeError):
            decode_fields(name, body + b"\0", exact=True)
        with pytest.raises(DecodeError):
            decode_fields(name, body[: rng.randrange(len(body))])


def test_agent_accounts_decode_as_construct_does_and_the_head_matches_the_idl() -> None:
    rng = random.Random(7)
    head = head_layout("Agent")
    for _ in range(CASES):
        data = accounts.Agent.discriminator + accounts.Agent.layout.build(fields(IDL_TYPES["Agent"], rng))
        data += bytes(rng.randint(0, 300))  # accounts are allocated at their maximum size
        assert decode_account("Agent", data) == accounts.Agent.decode(data)
        unpacked = head.unpack(data)
        full = accounts.Agent.decode(data)
        for name in head.names:
            expected = getattr(full, name)
            assert unpacked[name] == (bytes(expected) if isinstance(expected, Pubkey) else expected)
    with pytest.raises(DecodeError):
        decode_account("Agent", b"\0" * 200)  # not an Agent's discriminator
