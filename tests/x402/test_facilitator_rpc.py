"""The facilitator's JSON-RPC link (`JsonRpc`): real node, real HTTP, connections dropped under it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ghostpay.localnet.process import LocalnetProcess, free_port_pair
from ghostpay.x402.facilitator.rpc import JsonRpc, RpcError


class DroppingNode:
    """A JSON-RPC server answering getSlot that closes each connection after one answer without saying
    so (no `Connection: close`), as a node does to an idle keep-alive connection; or answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        node = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                node.connections += 1

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                node.requests.append({"body": request, "authorization": self.headers.get("Authorization")})
                body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": 7}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dropping() -> Iterator[DroppingNode]:
    node = DroppingNode()
    yield node
    node.close()


def test_calls_a_real_node_from_many_threads(net: LocalnetProcess) -> None:
    rpc = JsonRpc(net.http_url)
    try:
        with ThreadPoolExecutor(4) as pool:
            slots = list(pool.map(lambda _: rpc.call("getSlot", [{"commitment": "confirmed"}]), range(40)))
        assert all(isinstance(slot, int) and slot >= 0 for slot in slots)
        assert rpc.call("getHealth", []) == "ok"
        with pytest.raises(RpcError, match="^getBalance: ") as refused:  # the node's own error message
            rpc.call("getBalance", ["not-a-pubkey"])
        assert "nvalid" in str(refused.value)
    finally:
        rpc.close()


def test_a_dropped_keep_alive_connection_is_replaced(dropping: DroppingNode) -> None:
    rpc = JsonRpc(dropping.url)
    assert [rpc.call("getSlot", []) for _ in range(3)] == [7, 7, 7]
    assert len(dropping.requests) == 3 and dropping.connections == 3  # each call after a drop: a new connection
    rpc.close()


def test_unreachable_node_and_http_errors_are_rpc_errors() -> None:
    with pytest.raises(RpcError, match="^simulateTransaction: ConnectionRefusedError"):
        JsonRpc(f"http://127.0.0.1:{free_port_pair()[0]}").call("simulateTransaction", [])
    failing = DroppingNode(status=503)
    try:
        with pytest.raises(RpcError, match="^sendTransaction: HTTP 503"):
            JsonRpc(failing.url).call("sendTransaction", [])
        assert len(failing.requests) == 1  # an answer, even an error, is not sent again
    finally:
        failing.close()


def test_credentials_in_the_url_become_basic_auth(dropping: DroppingNode) -> None:
    host = dropping.url.removeprefix("http://")
    assert JsonRpc(f"http://user:s%40cret@{host}/?api-key=k").call("getSlot", []) == 7
    assert dropping.requests[0]["authorization"] == "Basic dXNlcjpzQGNyZXQ="  # user:s@cret
    with pytest.raises(ValueError, match="not an http"):
        JsonRpc("ws://127.0.0.1:8900")


def test_a_failed_send_or_a_timeout_leaves_no_subscription_open(net: LocalnetProcess) -> None:
    """The settle subscribes to the signature before sending; a send that fails (here the RPC is
    unreachable, the websocket is not) and a wait that times out both drop that subscription."""
    import base64

    from solders.hash import Hash
    from solders.keypair import Keypair
    from solders.message import Message
    from solders.system_program import TransferParams, transfer
    from solders.transaction import Transaction

    from ghostpay.x402.facilitator import SubscribingSigner

    payer = Keypair()
    move = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1))
    tx = Transaction([payer], Message.new_with_blockhash([move], payer.pubkey(), Hash.default()), Hash.default())
    unreachable = f"http://127.0.0.1:{free_port_pair()[0]}"
    signer = SubscribingSigner(Keypair(), unreachable, net.ws_url, confirm_timeout=0.3)
    try:
        with pytest.raises(RpcError, match="^sendTransaction: "):
            signer.send_transaction(base64.b64encode(bytes(tx)).decode(), "solana:localnet")
        assert signer._watcher.pending == 0
        watch = signer._watcher.watch(str(Keypair().sign_message(b"never sent")))  # a signature that never lands
        signer._watches["never"] = watch
        with pytest.raises(RuntimeError, match="confirmation timeout"):
            signer.confirm_transaction("never", "solana:localnet")
        assert signer._watcher.pending == 0 and watch.cancelled()
    finally:
        signer.close()


class CannedNode:
    """A node answering each request with the next of `answers` (raw bytes as written, and whether it then
    closes the connection), on connections it keeps open otherwise."""

    def __init__(self, answers: list[tuple[bytes, bool]]) -> None:
        self.answers = answers
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            connection, _ = self.listener.accept()
            self.connections += 1
            with connection, connection.makefile("rb") as requests:
                while self.answers:
                    length = 0
                    while (line := requests.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    if not line:
                        break
                    requests.read(length)
                    raw, close = self.answers.pop(0)
                    connection.sendall(raw)
                    if close:
                        break

    def close(self) -> None:
        self.listener.close()


def answer(body: bytes, *headers: str, status: str = "200 OK", version: str = "HTTP/1.1") -> bytes:
    return "\r\n".join([f"{version} {status}", *headers, "", ""]).encode() + body


def test_plain_http_answers_are_read_as_http_client_reads_them() -> None:
    """Chunked (with an extension and a trailer), length-less (ending with the connection), `Connection:
    close`, HTTP/1.0 and error answers; a malformed one is an RpcError, never a wrong result."""
    result = json.dumps({"jsonrpc": "2.0", "id": 1, "result": 7}).encode()
    half = len(result) // 2
    chunked = f"{half:x};ext=1\r\n".encode() + result[:half] + f"\r\n{len(result) - half:x}\r\n".encode()
    length = f"Content-Length: {len(result)}"
    node = CannedNode(
        [
            (answer(chunked + result[half:] + b"\r\n0\r\nX-Trailer: 1\r\n\r\n", "Transfer-Encoding: chunked"), False),
            (answer(result, length, "Connection: keep-alive, Upgrade"), False),
            (answer(result, length, "Connection: close"), True),
            (answer(result, length, version="HTTP/1.0"), True),
            (answer(result), True),  # no length: the body ends with the connection
            (answer(b"busy", "Content-Length: 4", status="429 Too Many Requests"), False),
            # on a kept-alive connection, then on the new one a malformed answer is retried on, once
            (answer(b"", "Content-Length: 0", status="2x0 What"), True),
            (answer(b"", "Content-Length: 0", status="2x0 What"), True),
        ]
    )
    rpc = JsonRpc(node.url)
    try:
        assert [rpc.call("getSlot", []) for _ in range(5)] == [7] * 5
        assert node.connections == 3  # the first three on one connection: closed after `Connection: close`
        with pytest.raises(RpcError, match="^getSlot: HTTP 429: busy$"):
            rpc.call("getSlot", [])
        with pytest.raises(RpcError, match="^getSlot: BadStatusLine"):
            rpc.call("getSlot", [])
        assert node.connections == 5 and not node.answers
    finally:
        rpc.close()
        node.close()
