"""Exact token amounts: `Decimal` whole-token amounts <-> atomic units with a mint's decimals.

>>> to_atomic(Decimal("1.5"), 6), to_atomic("0.000001", 6), to_atomic(Atomic(42), 6)
(1500000, 1, 42)
>>> from_atomic(1_500_000, 6)
Decimal('1.500000')
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from ghostpay.exceptions import InvalidArgument, program_error_class

MINT_DECIMALS_OFFSET = 44
MINT_MIN_LEN = 82
TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
U64_MAX = 2**64 - 1


@dataclass(frozen=True)
class Atomic:
    """An amount already in atomic units (the mint's smallest unit)."""

    value: int


Amount = Decimal | int | str | Atomic
"""Whole tokens as `Decimal`, `int` or a decimal string; or `Atomic(n)` for atomic units. Never float."""


@dataclass(frozen=True)
class MintInfo:
    """A mint's address, decimals and owning token program."""

    address: Pubkey
    decimals: int
    token_program: Pubkey


def to_atomic(amount: Amount, decimals: int, token: str = "") -> int:
    """Atomic units of `amount` (of `token`, named in errors); refuses floats, negatives, more digits than
    `decimals`, > u64."""
    if isinstance(amount, Atomic):
        atomic = amount.value
    else:
        if isinstance(amount, (float, bool)) or not isinstance(amount, (Decimal, int, str)):
            raise InvalidArgument(f"token amounts are Decimal, int, str or Atomic, not {type(amount).__name__}")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise InvalidArgument(f"not a decimal amount: {amount!r}") from None
        if not value.is_finite():
            raise InvalidArgument(f"not a finite amount: {amount!r}")
        scaled = value.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise InvalidArgument(
                f"{value:f}{f' {token}' if token else ''} has more than {decimals} decimals (the "
                f"token's smallest unit is {Decimal(1).scaleb(-decimals):f})"
            )
        atomic = int(scaled)
    if not isinstance(atomic, int) or not 0 <= atomic <= U64_MAX:
        raise InvalidArgument(f"amount {amount!r} is not a u64 number of atomic units")
    return atomic


def from_atomic(atomic: int, decimals: int) -> Decimal:
    """The whole-token `Decimal` of `atomic` units, exact, with the mint's `decimals` places."""
    return Decimal(atomic).scaleb(-decimals)


def parse_mint(address: Pubkey, owner: Pubkey, data: bytes) -> MintInfo:
    """MintInfo from a mint account's owner and data; the program's `NotAMint` if it is none."""
    if owner not in TOKEN_PROGRAMS or len(data) < MINT_MIN_LEN:
        raise program_error_class("NotAMint")()
    return MintInfo(address, struct.unpack_from("<B", data, MINT_DECIMALS_OFFSET)[0], owner)
