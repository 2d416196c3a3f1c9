"""The payment journal: each payment (and escrow creation) the CLI is about to send is written to
`<ghost path>/journal/` before it leaves, with its reference (or order id), every signature sent and
the last one's signed bytes, and removed once its outcome is known. Running the same command again
(same chain, wallet, agent, amount and token) while an entry is still open resumes it: if one of its
transactions landed, that is the outcome; else the last one's very bytes are sent again while its
blockhash is valid (one signature lands at most once); only once none can land any more is a new
transaction signed, with the same reference. So a retry can never pay twice.

The chain is named by its genesis hash, not the RPC URL: a retry through another endpoint of the same
cluster (the natural move after an RPC failure) is still a retry. While a command runs it holds its
entry's lock, so an identical command started meanwhile is refused instead of paying again or
mistaking the running one for an earlier run.

`ghost x402 call` journals the payment identifier of its call the same way (same chain, wallet, method, URL
and body): a run whose connection failed leaves it open, and the same command again sends that identifier,
so a seller that declares payment identifiers answers from its cache instead of charging again.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ghostpay.cli.errors import CliError
from ghostpay.paths import data_dir, private_file


def journal_dir() -> Path:
    return data_dir() / "journal"


@dataclass
class Entry:
    """One payment or work order whose outcome is not known yet."""

    kind: str  # "payment", "work_order" or "x402_call"
    key: str
    command: dict[str, Any]  # what identifies the command: cluster, wallet, agent, amount, token
    reference: str | None = None  # payments: 64 hex digits
    order_id: int | None = None  # work orders
    signatures: list[str] = field(default_factory=list)
    last_valid_block_height: int | None = None
    transaction: str | None = None  # base64 of the last transaction's signed bytes
    created_at: float = field(default_factory=time.time)
    idempotency_key: str | None = None  # x402 calls: the payment identifier a rerun sends again

    @property
    def path(self) -> Path:
        return journal_dir() / f"{self.kind}-{self.key}.json"

    def save(self) -> None:
        """Write atomically (a crash leaves the old entry or the new one, never half of one)."""
        scratch = private_file(self.path.with_suffix(".tmp"))
        scratch.write_text(json.dumps(asdict(self), indent=1))
        os.replace(scratch, self.path)

    def sent(self, signature: object, last_valid_block_height: int | None, transaction: bytes) -> None:
        """Record a transaction before it leaves (the same one sent again is recorded once)."""
        if str(signature) not in self.signatures:
            self.signatures.append(str(signature))
        self.last_valid_block_height = last_valid_block_height
        self.transaction = base64.b64encode(transaction).decode()
        self.save()

    def signed_transaction(self) -> bytes | None:
        """The last transaction's signed bytes (None in an entry written before they were kept)."""
        return base64.b64decode(self.transaction) if self.transaction else None

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


@contextmanager
def running(kind: str, command: dict[str, Any]) -> Iterator[None]:
    """Hold this command's lock while it looks up, sends and closes its entry; a CliError naming the other
    process if it holds it. The lock is the kernel's (flock): a killed command releases it."""
    path = journal_dir() / f"{kind}-{command_key(kind, command)}.lock"
    while True:
        lock = open(private_file(path), "r+")  # noqa: SIM115 - closed below, or held until the command ends
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock.read().strip()
            lock.close()
            what = {"payment": "payment", "x402_call": "paid call"}.get(kind, "work order")
            raise CliError(
                f"the same {what} is being sent right now by another ghost command"
                f"{f' (pid {holder})' if holder else ''}; wait for it to finish (run this again "
                "afterwards to see its outcome: it cannot pay twice)"
            ) from None
        try:
            if os.path.samestat(os.fstat(lock.fileno()), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        lock.close()  # its holder removed this file as we opened it: lock the one now there
    try:
        lock.write(str(os.getpid()))
        lock.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # still locked: a command opening it now finds it gone and retries
        lock.close()


def open_entry(kind: str, command: dict[str, Any], **fields: Any) -> Entry:
    entry = Entry(kind, command_key(kind, command), command, **fields)
    entry.save()
    return entry
