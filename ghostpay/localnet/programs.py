"""The programs a localnet preloads besides GhostPay.

LiteSVM's `with_spl_programs` (on by default) loads SPL Token, Token-2022 and
both Memo programs. solders 0.26 embeds the Associated Token Account program too
but does not register it, so we take its ELF out of solders' native library
(once, cached next to the ledgers) and add it ourselves.
"""

from __future__ import annotations

import struct
from pathlib import Path

from solders.pubkey import Pubkey
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from ghostpay.pda import associated_token_address

__all__ = ["ASSOCIATED_TOKEN_PROGRAM_ID", "TOKEN_2022_PROGRAM_ID", "TOKEN_PROGRAM_ID", "associated_token_address"]

MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
MEMO_V1_PROGRAM_ID = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")
SYSVAR_OWNER = Pubkey.from_string("Sysvar1111111111111111111111111111111111111")
TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)

ATA_FILE = "spl_associated_token_account.so"
_ELF_MAGIC = b"\x7fELF\x02\x01\x01"
_EM_BPF = 247


def _embedded_elves(blob: bytes) -> list[bytes]:
    """The 64-bit little-endian BPF ELF files stored inside `blob`."""
    elves = []
    start = blob.find(_ELF_MAGIC, 1)
    while start != -1:
        if struct.unpack_from("<H", blob, start + 18)[0] == _EM_BPF:
            section_offset = struct.unpack_from("<Q", blob, start + 0x28)[0]
            entry_size, entries = struct.unpack_from("<HH", blob, start + 0x3A)
            elves.append(blob[start : start + section_offset + entry_size * entries])
        start = blob.find(_ELF_MAGIC, start + 1)
    return elves


def associated_token_program(cache_dir: Path) -> bytes | None:
    """The ATA program's ELF: from `cache_dir`, else out of solders (then cached). None if not found."""
    cached = cache_dir / ATA_FILE
    if cached.is_file():
        return cached.read_bytes()
    import solders.solders as native  # the compiled extension module

    for elf in _embedded_elves(Path(native.__file__).read_bytes()):
        if b"CreateIdempotent" in elf:
            cache_dir.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(elf)
            return elf
    return None
