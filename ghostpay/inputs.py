"""What the client's methods accept: addresses and agent references, mints (or token labels), payment
references, deadlines, and the x402 settings of an agent; with the converters that check them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from solders.pubkey import Pubkey

from ghostpay.exceptions import InvalidArgument
from ghostpay.pda import REFERENCE_LEN
from ghostpay.token_labels import is_address, is_label
from ghostpay.tokens import Amount

MAX_SEED_LEN = 32  # a PDA seed longer than this cannot be derived at all
AgentRef = Pubkey | str
"""An agent's address (a Pubkey or base58), or the agent_id of one of the client wallet's agents."""
PubkeyLike = Pubkey | str
"""A public key, or its base58 text."""
MintLike = Pubkey | str
"""A mint: a Pubkey, its base58 text, or a token label of the client's cluster ("USDC")."""
Prices = Mapping[Pubkey, Amount] | Mapping[str, Amount] | Mapping[MintLike, Amount]
"""A price per call in each mint (MintLike keys): a Mapping's key type is invariant, so a `dict[str, Decimal]`
or `dict[Pubkey, Decimal]` is spelled out beside the mixed one."""


def to_pubkey(value: PubkeyLike, what: str = "public key") -> Pubkey:
    """A Pubkey from a Pubkey or its base58 text (InvalidArgument naming `what` otherwise)."""
    if isinstance(value, Pubkey):
        return value
    if isinstance(value, str):
        try:
            return Pubkey.from_string(value.strip())
        except ValueError:
            pass
    raise InvalidArgument(f"{value!r} is not a valid {what} (base58, 32 bytes)")


def optional_pubkey(value: PubkeyLike | None, what: str) -> Pubkey | None:
    return None if value is None else to_pubkey(value, what)


def mint_key(value: MintLike) -> Pubkey | str:
    """A mint as a Pubkey, or a token label (text shaped like one, resolved later on a cluster)."""
    if isinstance(value, str) and not is_address(value):
        if not is_label(value.strip()):
            raise InvalidArgument(
                f"token {value!r} is neither a mint address (base58, 32 bytes) nor a token label (like USDC)"
            )
        return value.strip()
    return to_pubkey(value, "token mint")


def looks_like_address(text: str) -> bool:
    """Text that can only have been meant as an address: too long for an agent_id, base58-looking."""
    return len(text.encode()) > MAX_SEED_LEN and all(c.isascii() and c.isalnum() for c in text)


Deadline = int | datetime | timedelta
"""A unix timestamp, an aware datetime, or a timedelta from the cluster's clock now."""


def normalize_reference(reference: bytes | str | None) -> bytes:
    """A 32-byte payment reference from bytes or 64 hex digits; random when None."""
    if reference is None:
        return os.urandom(REFERENCE_LEN)
    if isinstance(reference, str):
        try:
            reference = bytes.fromhex(reference)
        except ValueError:
            raise InvalidArgument("a reference string is 64 hex digits") from None
    if not isinstance(reference, (bytes, bytearray)) or len(reference) != REFERENCE_LEN:
        raise InvalidArgument(f"a payment reference is {REFERENCE_LEN} bytes")
    return bytes(reference)


@dataclass(frozen=True)
class X402Settings:
    """x402 pricing: the price per call in each accepted mint, in whole units of that mint (Decimal,
    never float; each mint's own decimals convert it), the service endpoint, and the wallet paid
    (default: the owner). The first mint is the default a buyer pays in. A mint may be given by its
    token label, resolved on the cluster of the client that uses the settings.

        X402Settings({"USDC": Decimal("0.01"), "EURC": Decimal("0.0095")}, "https://t.example/api")
    """

    prices: Prices
    endpoint: str
    payment_address: PubkeyLike | None = None

    def __post_init__(self) -> None:  # base58 text is accepted wherever a key is, a label wherever a mint is
        object.__setattr__(self, "prices", {mint_key(m): p for m, p in self.prices.items()})
        object.__setattr__(self, "payment_address", optional_pubkey(self.payment_address, "payment address"))
