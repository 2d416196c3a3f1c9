"""Loading keypairs: a file, bytes, a JSON array, a base58 secret, or the Solana CLI default.

>>> from solders.keypair import Keypair
>>> kp = Keypair()
>>> load_keypair(bytes(kp)) == kp and load_keypair(list(bytes(kp))) == kp
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from solders.keypair import Keypair

from ghostpay.exceptions import InvalidArgument

KeypairSource = Keypair | str | Path | bytes | bytearray | Sequence[int] | None


def solana_config_dir() -> Path:
    return Path(os.path.expanduser("~")) / ".config" / "solana"


def default_keypair_path() -> Path:
    """`keypair_path` from ~/.config/solana/cli/config.yml, else ~/.config/solana/id.json."""
    config = solana_config_dir() / "cli" / "config.yml"
    if config.is_file():
        for line in config.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "keypair_path" and value.strip():
                return Path(os.path.expanduser(value.strip().strip("'\"")))
    return solana_config_dir() / "id.json"


SEED_LENGTH, KEYPAIR_LENGTH = 32, 64
SECRET_LENGTHS = (SEED_LENGTH, KEYPAIR_LENGTH)  # raw bytes; a JSON array of them is far longer


def _from_secret(secret: bytes | Sequence[int], origin: str) -> Keypair:
    try:
        data = bytes(secret)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{origin}: not a list of bytes") from None
    if len(data) == SEED_LENGTH:
        return Keypair.from_seed(data)
    if len(data) != KEYPAIR_LENGTH:
        raise InvalidArgument(f"{origin}: a keypair is 64 bytes (or a 32-byte seed), got {len(data)}")
    try:
        return Keypair.from_bytes(data)
    except ValueError as exc:
        raise InvalidArgument(f"{origin}: {exc}") from None


def _from_text(text: str, origin: str) -> Keypair:
    text = text.strip()
    if text.startswith("["):
        try:
            return _from_secret(json.loads(text), origin)
        except json.JSONDecodeError:
            raise InvalidArgument(f"{origin}: not a JSON array of bytes") from None
    try:
        return Keypair.from_base58_string(text)
    except Exception:  # noqa: BLE001 - solders raises a bare ValueError/PanicException for bad base58
        raise InvalidArgument(f"{origin}: neither a JSON byte array nor a base58 secret key") from None


def load_keypair(source: KeypairSource = None) -> Keypair:
    """A `Keypair` from any usual form; `None` is the Solana CLI default keypair.

    A `str` is a JSON array or base58 secret if it looks like one, else a file path.
    """
    if isinstance(source, Keypair):
        return source
    if source is None:
        source = default_keypair_path()
    if isinstance(source, (bytes, bytearray)):
        if source[:1] == b"[" and len(source) not in SECRET_LENGTHS:  # a raw secret may start with "[" (0x5B)
            return _from_text(source.decode(), "keypair bytes")
        return _from_secret(bytes(source), "keypair bytes")
    if isinstance(source, str) and (
        source.lstrip().startswith("[") or (len(source) in range(80, 90) and not os.path.exists(source))
    ):
        return _from_text(source, "keypair text")
    if isinstance(source, (str, Path)):
        path = Path(os.path.expanduser(str(source)))
        try:
            return _from_text(path.read_text(), str(path))
        except OSError as exc:
            raise InvalidArgument(f"cannot read keypair file {path}: {exc.strerror}") from None
    return _from_secret(source, "keypair")
