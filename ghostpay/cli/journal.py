"""The payment journal: each payment (and escrow creation) the CLI is about to send is written to
`<ghost path>/journal/` before it leaves, with its reference (or order id) and every signature sent,
and removed once its outcome is known. Running the same command again (same cluster, wallet, agent,
amount and token) while an entry is still open reuses that reference: if the earlier transaction
landed the program refuses the retry (`PaymentAlreadyRecorded`), so a retry can never pay twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ghostpay.paths import data_dir, private_file


def journal_dir() -> Path:
    return data_dir() / "journal"


@dataclass
class Entry:
    """One payment or work order whose outcome is not known yet."""

    kind: str  # "payment" or "work_order"
    key: str
    command: dict[str, Any]  # what identifies the command: cluster, wallet, agent, amount, token
    reference: str | None = None  # payments: 64 hex digits
    order_id: int | None = None  # work orders
    signatures: list[str] = field(default_factory=list)
    last_valid_block_height: int | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        return journal_dir() / f"{self.kind}-{self.key}.json"

    def save(self) -> None:
        """Write atomically (a crash leaves the old entry or the new one, never half of one)."""
        scratch = private_file(self.path.with_suffix(".tmp"))
        scratch.write_text(json.dumps(asdict(self), indent=1))
        os.replace(scratch, self.path)

    def sent(self, signature: object, last_valid_block_height: int | None) -> None:
        """Record a signature before its transaction leaves."""
        self.signatures.append(str(signature))
        self.last_valid_block_height = last_valid_block_height
        self.save()

    def close(self) -> None:
        """The outcome is known: forget the entry."""
        self.path.unlink(missing_ok=True)


def command_key(kind: str, command: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([kind, command], sort_keys=True).encode()).hexdigest()[:32]


def pending(kind: str, command: dict[str, Any]) -> Entry | None:
    """The open entry of this exact command, if a previous run left one."""
    path = journal_dir() / f"{kind}-{command_key(kind, command)}.json"
    try:
        return Entry(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):  # edited by hand into something else: start afresh
        return None


def open_entry(kind: str, command: dict[str, Any], **fields: Any) -> Entry:
    entry = Entry(kind, command_key(kind, command), command, **fields)
    entry.save()
    return entry
