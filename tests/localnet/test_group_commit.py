"""The group commit's order of answers and commits, on the server's own pieces in-process (no timing).

A sendTransaction's answer says only "processed": it leaves before the ledger is committed. Every other answer,
and every websocket message (notifications included), leaves only once what was written before it is committed;
answers on one connection stay in order. tests/localnet/test_lifecycle.py kills a real localnet to show the
guarantee this gives: a transaction reported confirmed survives a SIGKILL.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any, cast

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.artifacts import program_bytes
from ghostpay.localnet.ledger import Ledger
from ghostpay.localnet.pubsub import Client
from ghostpay.localnet.server import HttpRpcProtocol, Localnet, LocalnetConfig
from ghostpay.program_id import PROGRAM_ID
from tests.localnet.helpers import transfer_tx

PAYER_LAMPORTS = 10**12
AMOUNTS = (1111, 2222)


class RecordingTransport:
    """A connection's transport that keeps what is written, each with whether the ledger was still uncommitted."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.sent: list[tuple[dict[str, Any], bool]] = []

    def writelines(self, pieces: list[bytes]) -> None:
        body = b"".join(pieces).split(b"\r\n\r\n", 1)[1]
        self.sent.append((json.loads(body), self.ledger.dirty))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        raise AssertionError("keep-alive connections stay open")

    def abort(self) -> None:
        raise AssertionError("no commit fails here")


class WebsocketConnection:
    """What pub-sub's `Client` uses of a websockets connection here: its transport."""

    def __init__(self, transport: RecordingTransport) -> None:
        self.transport = transport


def post(method: str, *params: Any) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": method, "method": method, "params": list(params)}).encode()
    return b"POST / HTTP/1.1\r\nHost: localnet\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@pytest.fixture
def localnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Localnet:
    monkeypatch.setenv("GHOSTPAY_HOME", str(tmp_path / "home"))
    net = Localnet(LocalnetConfig(ledger=tmp_path / "ledger", quiet=True), program_bytes(), PROGRAM_ID)
    yield net
    net.ledger.close()


async def test_a_send_answer_leaves_before_the_commit_every_other_answer_and_notification_after(
    localnet: Localnet,
) -> None:
    payer, receiver = Keypair(), Pubkey.new_unique()
    localnet.chain.airdrop(payer.pubkey(), PAYER_LAMPORTS)
    localnet.ledger.commit()
    blockhash = Hash.from_string(localnet.chain.blockhash)
    first, second = (transfer_tx(payer, receiver, amount, blockhash) for amount in AMOUNTS)
    wires = [base64.b64encode(bytes(tx)).decode() for tx in (first, second)]
    signatures = [str(tx.signatures[0]) for tx in (first, second)]

    transport = RecordingTransport(localnet.ledger)
    http = HttpRpcProtocol(localnet.rpc, localnet.group_commit)
    http.connection_made(cast(asyncio.Transport, transport))
    client = Client(
        cast(Any, WebsocketConnection(RecordingTransport(localnet.ledger))), localnet.group_commit.after_commit
    )
    localnet.pubsub.subscribe(client, "signature", [signatures[0]])
    localnet.pubsub.subscribe(client, "logs", ["all"])

    # pipelined on one connection: a send, the status of what it sent, a second send
    http.data_received(
        post("sendTransaction", wires[0], {"encoding": "base64"})
        + post("getSignatureStatuses", [signatures[0]])
        + post("sendTransaction", wires[1], {"encoding": "base64"})
    )
    # the first send's answer ("processed") has left with its transaction not yet committed; the status and the
    # second send wait behind it (in order), and so do the notifications
    assert transport.sent == [({"jsonrpc": "2.0", "result": signatures[0], "id": "sendTransaction"}, True)]
    assert localnet.ledger.dirty and client.queue.empty()

    await asyncio.sleep(0)  # the commit pass scheduled in that pass of the loop

    assert not localnet.ledger.dirty
    status, second_send = transport.sent[1:]
    assert status[1] is False and second_send[1] is False  # written once committed
    assert status[0]["result"]["value"][0]["confirmationStatus"] == "finalized"
    assert status[0]["result"]["value"][0]["err"] is None
    assert second_send[0]["result"] == signatures[1]
    notifications = [json.loads(client.queue.get_nowait()) for _ in range(client.queue.qsize())]
    assert [(n["method"], n["params"]["result"]["value"].get("signature")) for n in notifications] == [
        ("signatureNotification", None),  # the subscriptions' order
        ("logsNotification", signatures[0]),
        ("logsNotification", signatures[1]),
    ]
    assert localnet.ledger.status(bytes(first.signatures[0])) is not None
    assert localnet.chain.svm.get_balance(receiver) == sum(AMOUNTS)


async def test_a_read_answer_waits_for_the_commit_and_a_send_behind_it_waits_too(localnet: Localnet) -> None:
    payer, receiver = Keypair(), Pubkey.new_unique()
    localnet.chain.airdrop(payer.pubkey(), PAYER_LAMPORTS)  # written, not committed yet
    blockhash = Hash.from_string(localnet.chain.blockhash)
    wire = base64.b64encode(bytes(transfer_tx(payer, receiver, AMOUNTS[0], blockhash))).decode()

    transport = RecordingTransport(localnet.ledger)
    http = HttpRpcProtocol(localnet.rpc, localnet.group_commit)
    http.connection_made(cast(asyncio.Transport, transport))
    http.data_received(post("getBalance", str(payer.pubkey())) + post("sendTransaction", wire, {"encoding": "base64"}))
    assert transport.sent == []  # the balance shows the uncommitted airdrop: held, and the send behind it

    await asyncio.sleep(0)

    assert [(answer["id"], dirty) for answer, dirty in transport.sent] == [
        ("getBalance", False),
        ("sendTransaction", False),
    ]
    assert transport.sent[0][0]["result"]["value"] == PAYER_LAMPORTS
