"""Borsh decoders compiled from the IDL with `struct`: the hot-path twin of the generated construct layouts.

Kept beside construct because it pays: construct interprets its layout tree for every value. On a loaded
2-core machine an Agent account decodes here in ≈ 40 µs against construct's 420-1,150 µs (10-28×), an event
body in 3.8 µs against 18 µs (4.7×), and a transaction's logs with three events (ghostpay.events) in 31 µs
against anchorpy's EventParser's 120-360 µs. The indexer decodes every event through it, and an agent search
from the chain decodes every Agent. Re-measure with `make bench-decoders` (bench/results/decoders.json);
tests/test_borsh_layout.py proves both decode every event and the Agent alike.

Here each IDL type is compiled once, at first use, into steps: every run of fixed-size fields
becomes one `struct.Struct`, strings, vecs, options and nested types are read around them. The
values are the generated classes' own (Pubkey, int, bool, str, list, nested generated classes),
so `decode_account("Agent", data)` equals `Agent.decode(data)`. Layouts and offsets follow the
IDL, so a change there (issue 14's per-token prices) flows through without editing this file.

    >>> from ghostpay.accounts import Agent
    >>> head = head_layout("Agent")
    >>> head.offsets["is_active"], head.size >= 144
    (41, True)
"""

from __future__ import annotations

import importlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from solders.pubkey import Pubkey

from ghostpay import artifacts

DISCRIMINATOR_LEN = 8
_DEFAULT_KEY, _ZEROS = Pubkey.default(), bytes(32)


def _pubkey(raw: bytes) -> Pubkey:
    """A Pubkey from 32 bytes; the default key (an empty slot's, most often) is one shared immutable value."""
    return _DEFAULT_KEY if raw == _ZEROS else Pubkey(raw)


# IDL primitive → (struct code, size, converter or None)
_PRIMITIVES: dict[str, tuple[str, int, Callable[[Any], Any] | None]] = {
    "bool": ("?", 1, None),
    "u8": ("B", 1, None),
    "i8": ("b", 1, None),
    "u16": ("H", 2, None),
    "i16": ("h", 2, None),
    "u32": ("I", 4, None),
    "i32": ("i", 4, None),
    "u64": ("Q", 8, None),
    "i64": ("q", 8, None),
    "pubkey": ("32s", 32, _pubkey),
    "u128": ("16s", 16, lambda b: int.from_bytes(b, "little")),
    "i128": ("16s", 16, lambda b: int.from_bytes(b, "little", signed=True)),
}
_U32 = struct.Struct("<I")

Reader = Callable[[bytes, int], tuple[Any, int]]
"""(buffer, offset) → (value, offset after it); raises DecodeError, struct.error or UnicodeDecodeError."""


class DecodeError(ValueError):
    """The bytes are not a valid borsh value of the type (truncated, bad tag, bad UTF-8)."""


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@lru_cache(maxsize=1)
def _types() -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in artifacts.idl_dict()["types"]}


def _fixed(idl_type: Any) -> tuple[str, int, Callable[[Any], Any] | None] | None:
    """The struct code, size and converter of a type that is one fixed-size field, else None."""
    if isinstance(idl_type, str):
        return _PRIMITIVES.get(idl_type)
    if isinstance(idl_type, dict) and "array" in idl_type and idl_type["array"][0] == "u8":
        count = idl_type["array"][1]
        return f"{count}s", count, list  # the generated classes hold u8 arrays as lists of ints
    return None


def _string(buf: bytes, offset: int) -> tuple[str, int]:
    (length,) = _U32.unpack_from(buf, offset)
    start = offset + 4
    end = start + length
    if end > len(buf):
        raise DecodeError("string runs past the end")
    return buf[start:end].decode("utf-8"), end


def _pubkeys(buf: bytes, offset: int) -> tuple[list[Pubkey], int]:
    (count,) = _U32.unpack_from(buf, offset)
    start = offset + 4
    end = start + 32 * count
    if end > len(buf):
        raise DecodeError("vec runs past the end")
    return [Pubkey(buf[i : i + 32]) for i in range(start, end, 32)], end


def _read_items(read: Reader, count: int, buf: bytes, offset: int) -> tuple[list[Any], int]:
    """`count` consecutive values read by `read` (a vec's after its length, an array's)."""
    values = []
    for _ in range(count):
        value, offset = read(buf, offset)
        values.append(value)
    return values, offset


def _reader(idl_type: Any) -> Reader:
    """A reader for any IDL type."""
    fixed = _fixed(idl_type)
    if fixed is not None:
        code, size, convert = fixed
        unpack = struct.Struct("<" + code).unpack_from

        def read_fixed(buf: bytes, offset: int) -> tuple[Any, int]:
            (value,) = unpack(buf, offset)
            return (convert(value) if convert else value), offset + size

        return read_fixed
    if idl_type == "string":
        return _string
    if isinstance(idl_type, dict) and "vec" in idl_type:
        if idl_type["vec"] == "pubkey":
            return _pubkeys
        item = _reader(idl_type["vec"])

        def read_vec(buf: bytes, offset: int) -> tuple[list[Any], int]:
            (count,) = _U32.unpack_from(buf, offset)
            if count > len(buf):  # every item takes at least a byte
                raise DecodeError("vec longer than the data")
            return _read_items(item, count, buf, offset + 4)

        return read_vec
    if isinstance(idl_type, dict) and "array" in idl_type:
        inner, count = idl_type["array"]
        if isinstance(inner, dict) and "defined" in inner:
            packed = _fixed_struct_array_reader(inner["defined"]["name"], count)
            if packed is not None:
                return packed
        element = _reader(inner)
        return lambda buf, offset: _read_items(element, count, buf, offset)
    if isinstance(idl_type, dict) and "option" in idl_type:
        some = _reader(idl_type["option"])

        def read_option(buf: bytes, offset: int) -> tuple[Any, int]:
            tag = buf[offset]
            if tag == 0:
                return None, offset + 1
            if tag != 1:
                raise DecodeError("bad option tag")
            return some(buf, offset + 1)

        return read_option
    if isinstance(idl_type, dict) and "defined" in idl_type:
        return _defined_reader(idl_type["defined"]["name"])
    raise NotImplementedError(f"no borsh reader for the IDL type {idl_type!r}")


def _fixed_struct_array_reader(name: str, count: int) -> Reader | None:
    """An array of a struct of fixed-size fields (the Agent's earnings table) as one `struct` unpack and a
    positional construction per element; None for any other element type."""
    definition = _types()[name]["type"]
    if definition["kind"] != "struct":
        return None
    maybe_fixed = [_fixed(f["type"]) for f in definition["fields"]]
    specs = [spec for spec in maybe_fixed if spec is not None]
    if len(specs) != len(maybe_fixed):
        return None
    layout = struct.Struct("<" + "".join(spec[0] for spec in specs) * count)
    width = len(specs)
    converted = [
        (element * width + i, spec[2])
        for element in range(count)
        for i, spec in enumerate(specs)
        if spec[2] is not None
    ]
    starts = range(0, width * count, width)
    cls = getattr(importlib.import_module(f"ghostpay.types.{_snake(name)}"), name)

    def read_struct_array(buf: bytes, offset: int) -> tuple[list[Any], int]:
        values = list(layout.unpack_from(buf, offset))
        for position, convert in converted:
            values[position] = convert(values[position])
        return [cls(*values[i : i + width]) for i in starts], offset + layout.size

    return read_struct_array


@cache
def _defined_reader(name: str) -> Reader:
    definition = _types()[name]["type"]
    module = importlib.import_module(f"ghostpay.types.{_snake(name)}")
    if definition["kind"] == "struct":
        fields = fields_reader(definition["fields"])
        cls = getattr(module, name)

        def read_struct(buf: bytes, offset: int) -> tuple[Any, int]:
            values, offset = fields(buf, offset)
            return cls(**values), offset

        return read_struct
    if any(v.get("fields") for v in definition["variants"]):
        raise NotImplementedError(f"{name}: enums with fields are read by construct")
    variants = [getattr(module, v["name"]) for v in definition["variants"]]

    def read_enum(buf: bytes, offset: int) -> tuple[Any, int]:
        index = buf[offset]
        if index >= len(variants):
            raise DecodeError(f"{name}: no variant {index}")
        return variants[index](), offset + 1

    return read_enum


def fields_reader(fields: list[dict[str, Any]]) -> Callable[[bytes, int], tuple[dict[str, Any], int]]:
    """A reader of consecutive fields into a {name: value} dict; runs of fixed fields are one struct."""
    steps: list[Callable[[bytes, int, dict[str, Any]], int]] = []
    run: list[tuple[str, str, int, Callable[[Any], Any] | None]] = []

    def close_run() -> None:
        if not run:
            return
        layout = struct.Struct("<" + "".join(code for _, code, _, _ in run))
        names = tuple(name for name, _, _, _ in run)
        converted = tuple((i, convert) for i, (_, _, _, convert) in enumerate(run) if convert is not None)
        run.clear()

        def read_run(buf: bytes, offset: int, out: dict[str, Any]) -> int:
            values = list(layout.unpack_from(buf, offset))
            for i, convert in converted:
                values[i] = convert(values[i])
            out.update(zip(names, values, strict=True))
            return offset + layout.size

        steps.append(read_run)

    for f in fields:
        fixed = _fixed(f["type"])
        if fixed is not None:
            run.append((f["name"], *fixed))
            continue
        close_run()
        name, read = f["name"], _reader(f["type"])

        def read_field(buf: bytes, offset: int, out: dict[str, Any], name: str = name, read: Reader = read) -> int:
            out[name], offset = read(buf, offset)
            return offset

        steps.append(read_field)
    close_run()

    def read_fields(buf: bytes, offset: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        for step in steps:
            offset = step(buf, offset, out)
        return out, offset

    return read_fields


@cache
def struct_reader(name: str) -> Callable[[bytes, int], tuple[dict[str, Any], int]]:
    """The fields reader of the IDL type `name` (an event's or an account's), compiled once."""
    return fields_reader(_types()[name]["type"]["fields"])


def decode_fields(name: str, body: bytes, exact: bool = False) -> dict[str, Any]:
    """The fields of `name` from its borsh body (no discriminator); `exact`: no trailing bytes allowed."""
    try:
        values, end = struct_reader(name)(body, 0)
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise DecodeError(f"{name}: {exc}") from None
    if exact and end != len(body):
        raise DecodeError(f"{name}: {len(body) - end} trailing bytes")
    return values


@cache
def _account_class(name: str) -> Any:
    return getattr(importlib.import_module("ghostpay.accounts"), name)


def decode_account(name: str, data: bytes) -> Any:
    """A generated account class (ghostpay.accounts) from account data, discriminator checked."""
    cls = _account_class(name)
    if data[:DISCRIMINATOR_LEN] != cls.discriminator:
        raise DecodeError(f"not a {name} account")
    try:
        values, _ = struct_reader(name)(data, DISCRIMINATOR_LEN)  # read in place: no copy of the body
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise DecodeError(f"{name}: {exc}") from None
    return cls(**values)


@dataclass(frozen=True)
class HeadLayout:
    """An account's fixed-size head (the fields before the first variable-size one) as one struct."""

    names: tuple[str, ...]
    offsets: dict[str, int]  # from the start of the account data (discriminator included)
    struct: struct.Struct  # unpack_from(data, DISCRIMINATOR_LEN); pubkeys come out as 32 bytes
    size: int  # bytes of the account the head spans, discriminator included

    def unpack(self, data: bytes) -> dict[str, Any]:
        return dict(zip(self.names, self.struct.unpack_from(data, DISCRIMINATOR_LEN), strict=True))


@cache
def head_layout(name: str) -> HeadLayout:
    """The head's scalar fields are unpacked; a fixed-size composite in it (an array of structs) is skipped
    over, so the fields after it keep their offsets and values."""
    names, codes, offsets, offset = [], [], {}, DISCRIMINATOR_LEN
    for f in _types()[name]["type"]["fields"]:
        offsets[f["name"]] = offset
        fixed = _fixed(f["type"]) or _unit_enum(f["type"])
        if fixed is not None:
            names.append(f["name"])
            codes.append(fixed[0])
            offset += fixed[1]
            continue
        size = _fixed_size(f["type"])
        if size is None:
            break
        codes.append(f"{size}x")
        offset += size
    return HeadLayout(tuple(names), offsets, struct.Struct("<" + "".join(codes)), offset)


def _fixed_size(idl_type: Any) -> int | None:
    """The borsh size of a type whose size never varies (arrays and structs of such types), else None."""
    fixed = _fixed(idl_type) or _unit_enum(idl_type)
    if fixed is not None:
        return fixed[1]
    if isinstance(idl_type, dict) and "array" in idl_type:
        inner, count = idl_type["array"]
        size = _fixed_size(inner)
        return None if size is None else size * count
    if isinstance(idl_type, dict) and "defined" in idl_type:
        definition = _types()[idl_type["defined"]["name"]]["type"]
        if definition["kind"] != "struct":
            return None
        sizes = [_fixed_size(f["type"]) for f in definition["fields"]]
        known = [size for size in sizes if size is not None]
        return sum(known) if len(known) == len(sizes) else None
    return None


def _unit_enum(idl_type: Any) -> tuple[str, int, None] | None:
    """A borsh enum of unit variants is its variant index: one byte."""
    if isinstance(idl_type, dict) and "defined" in idl_type:
        definition = _types()[idl_type["defined"]["name"]]["type"]
        if definition["kind"] == "enum" and not any(v.get("fields") for v in definition["variants"]):
            return "B", 1, None
    return None
