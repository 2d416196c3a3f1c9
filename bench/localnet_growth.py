"""Grow a localnet ledger in-process: real transfers through the localnet's own chain and ledger writer, no HTTP.

    python -m bench.localnet_growth LEDGER_DIR COUNT [REPORT_AT]

bench/localnet.py runs this in a child process when a million transactions over HTTP would take too long (about
three times as long as this). It is what the server does for a `sendTransaction` with preflight (`Chain.process`:
checks, execution, account index, status cache, the ledger rows) and for `surfnet_timeTravel`, without the HTTP
framing: every transfer is distinct, signed and executed, its result checked; the ledger is committed every
IN_FLIGHT transactions (the server's group commit at that many in flight) and the clock moves SLOTS_PER_BATCH
slots on every BATCH transactions, as the HTTP growth does. After REPORT_AT and after COUNT transactions it prints
a JSON line: the transactions so far and this process's RSS (MiB), so the localnet's own memory growth is seen.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction

from ghostpay.artifacts import program_bytes
from ghostpay.localnet.chain import Chain
from ghostpay.localnet.ledger import Ledger
from ghostpay.paths import data_dir
from ghostpay.program_id import PROGRAM_ID

PAYERS = 20
PAYER_LAMPORTS = 1000 * 10**9
IN_FLIGHT = 16  # transactions per ledger commit here; connections that grow the ledger over HTTP
BATCH = 1000  # transactions per blockhash
SLOTS_PER_BATCH = 10


def signed_transfer(payer: Keypair, receiver: Pubkey, lamports: int, blockhash: Hash) -> Transaction:
    message = Message.new_with_blockhash(
        [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=receiver, lamports=lamports))],
        payer.pubkey(),
        blockhash,
    )
    return Transaction([payer], message, blockhash)


def transfers(payers: list[Keypair], blockhash: Hash, count: int, first: int = 0) -> list[Transaction]:
    """`count` distinct system transfers (amounts from 1000 + `first` lamports), round-robin over `payers`."""
    receiver = Pubkey.new_unique()
    return [
        signed_transfer(payers[i % len(payers)], receiver, 1000 + i, blockhash) for i in range(first, first + count)
    ]


def rss_mib() -> float:
    """This process's resident set (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def append(chain: Chain, payers: list[Keypair], first: int, count: int) -> None:
    """Transfers `first` .. `first + count` (amounts tell them apart), a new blockhash every BATCH."""
    for start in range(first, first + count, BATCH):
        batch = transfers(payers, Hash.from_string(chain.blockhash), min(BATCH, first + count - start), start)
        for done, tx in enumerate(batch, 1):
            outcome = chain.process(VersionedTransaction.from_legacy(tx))
            if outcome.err is not None:
                raise RuntimeError(f"transfer {start + done} failed: {outcome.err}")
            if done % IN_FLIGHT == 0:
                chain.ledger.commit()
        chain.move_clock(slot=chain.slot + SLOTS_PER_BATCH)
        chain.ledger.commit()


def grow(folder: Path, count: int, report_at: int) -> None:
    """`count` transfers appended to the ledger in `folder`; a report after `report_at` of them and after all."""
    ledger = Ledger(folder)
    try:
        chain = Chain(ledger, program_bytes(), PROGRAM_ID, cache_dir=data_dir() / "localnet" / "programs")
        payers = [Keypair() for _ in range(PAYERS)]
        for payer in payers:
            chain.airdrop(payer.pubkey(), PAYER_LAMPORTS)
        ledger.commit()
        start = chain.transaction_count
        for first, end in ((0, report_at), (report_at, count)):
            append(chain, payers, first, end - first)
            print(json.dumps({"transactions": chain.transaction_count - start, "rss_mib": rss_mib()}), flush=True)
    finally:
        ledger.close()


if __name__ == "__main__":
    count = int(sys.argv[2])
    grow(Path(sys.argv[1]), count, int(sys.argv[3]) if len(sys.argv) > 3 else count)
