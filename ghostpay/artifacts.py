"""Files shipped inside the package: the built program and its IDL."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anchorpy import Idl

PROGRAM_SO = files("ghostpay") / "program" / "ghostpay.so"
IDL_JSON = files("ghostpay") / "idl.json"


def program_bytes() -> bytes:
    """The SBPFv0 program, ready for LiteSVM or `solana program deploy`."""
    return PROGRAM_SO.read_bytes()


@lru_cache(maxsize=1)
def idl_dict() -> dict[str, Any]:
    """The Anchor IDL as plain JSON."""
    idl: dict[str, Any] = json.loads(IDL_JSON.read_text())
    return idl


def idl_constant(name: str) -> int:
    """An integer constant of the IDL (a limit, a size, a period)."""
    return int(next(c["value"] for c in idl_dict()["constants"] if c["name"] == name))


@lru_cache(maxsize=1)
def idl() -> Idl:
    """The Anchor IDL parsed by anchorpy (for Program, Coder and EventParser)."""
    from anchorpy import Idl  # imported here so the artifacts need no dependencies

    return Idl.from_json(IDL_JSON.read_text())
