"""The localnet's memory stays bounded: it keeps the statuses of the last 150 slots (as a validator's status
cache, what duplicate detection needs), answers older ones from the ledger on disk (getSignatureStatuses with
searchTransactionHistory, getTransaction) and reads none at start-up: the statuses of the slots before a restart
are read from the ledger while those slots are recent, so start-up does not grow with the traffic before it."""

from __future__ import annotations

import signal
from base64 import b64encode
from pathlib import Path

from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from ghostpay.artifacts import program_bytes
from ghostpay.localnet.chain import MAX_PROCESSING_AGE, Chain
from ghostpay.localnet.ledger import Ledger
from ghostpay.program_id import PROGRAM_ID
from tests.localnet.conftest import LocalnetProcess
from tests.localnet.helpers import transfer_tx

SOL = 10**9
HISTORY = {"searchTransactionHistory": True}


def send(net: LocalnetProcess, payer: Keypair, to: Pubkey, lamports: int) -> tuple[Signature, str]:
    """A transfer signed with the latest blockhash, sent with preflight: (its signature, its wire bytes)."""
    blockhash = Hash.from_string(net.rpc("getLatestBlockhash")["result"]["value"]["blockhash"])
    tx = transfer_tx(payer, to, lamports, blockhash)
    wire = b64encode(bytes(tx)).decode()
    answer = net.rpc("sendTransaction", wire, {"encoding": "base64"})
    assert answer.get("result") == str(tx.signatures[0]), answer
    return tx.signatures[0], wire


def status(net: LocalnetProcess, signature: Signature, *config: object) -> dict | None:
    return net.rpc("getSignatureStatuses", [str(signature)], *config)["result"]["value"][0]


def resend_error(net: LocalnetProcess, wire: str) -> str:
    return net.rpc("sendTransaction", wire, {"encoding": "base64"})["error"]["message"]


def test_old_statuses_come_from_the_ledger_and_recent_duplicates_are_refused_across_a_restart(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    payer, receiver = Keypair(), Keypair().pubkey()
    net = LocalnetProcess(ledger).start()
    try:
        net.rpc("surfnet_setAccount", str(payer.pubkey()), {"lamports": 10 * SOL})
        old, old_wire = send(net, payer, receiver, 1_000_000)
        old_slot = status(net, old)["slot"]
        net.rpc("surfnet_timeTravel", {"absoluteSlot": old_slot + MAX_PROCESSING_AGE + 50})
        recent, recent_wire = send(net, payer, receiver, 2_000_000)

        assert status(net, old) is None  # out of the recent statuses, as a validator's RPC answers
        assert status(net, old, HISTORY)["slot"] == old_slot and status(net, old, HISTORY)["err"] is None
        assert net.rpc("getTransaction", str(old), "json")["result"]["slot"] == old_slot
        assert status(net, recent)["err"] is None
        assert "already been processed" in resend_error(net, recent_wire)  # AlreadyProcessed
        assert "Blockhash not found" in resend_error(net, old_wire)  # its blockhash expired: never twice
    finally:
        net.stop(signal.SIGKILL)  # what was confirmed is on disk

    net = LocalnetProcess(ledger).start()
    try:
        assert status(net, old) is None and status(net, old, HISTORY)["slot"] == old_slot
        assert net.rpc("getTransaction", str(old), "json")["result"]["meta"]["err"] is None
        assert status(net, recent)["err"] is None  # recent: landed before this start, answered from the ledger
        assert "already been processed" in resend_error(net, recent_wire)
        assert net.rpc("getBalance", str(receiver))["result"]["value"] == 3_000_000  # each transfer once
        assert net.rpc("getTransactionCount")["result"] == 2
    finally:
        net.stop(signal.SIGTERM)

    ledger_db = Ledger(ledger)  # what a start-up reads per transaction: nothing
    try:
        chain = Chain(ledger_db, program_bytes(), PROGRAM_ID, cache_dir=tmp_path / "programs")
        assert not chain.recent and chain.transaction_count == 2
        status_of_recent = chain.status(recent, search_history=False)
        assert status_of_recent is not None and status_of_recent[1] is None
        assert chain.status(old, search_history=False) is None
        recent_slot = status_of_recent[0]
        chain.advance_slot(recent_slot + MAX_PROCESSING_AGE + 1)  # the slots before the start are old now
        assert chain.status(recent, search_history=False) is None
        assert chain.status(recent, search_history=True) == (recent_slot, None)
    finally:
        ledger_db.close()
