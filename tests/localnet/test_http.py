"""The localnet's HTTP/1.1 framing over a raw socket: what clients other than httpx may send."""

from __future__ import annotations

import json
import socket

from ghostpay.localnet.server import HttpRpcProtocol
from tests.localnet.conftest import LocalnetProcess


def connect(localnet: LocalnetProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", localnet.rpc_port), timeout=10)


def call_body(method: str, request_id: int = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": []}).encode()


def post(body: bytes, *headers: str) -> bytes:
    head = "".join(
        f"{h}\r\n" for h in ("POST / HTTP/1.1", "Host: localnet", "Content-Type: application/json", *headers)
    )
    return head.encode() + b"\r\n" + body


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response off `sock` (bytes past it stay in `buffer`)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response"
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(buffer) < end + 4 + length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response"
        buffer += chunk
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return int(lines[0].split()[1]), headers, body


def closed(sock: socket.socket, buffer: bytearray) -> bool:
    return not buffer and sock.recv(1) == b""


def test_pipelined_requests_are_answered_in_order(localnet: LocalnetProcess) -> None:
    with connect(localnet) as sock:
        sock.sendall(
            b"".join(
                post(call_body(method, i), f"Content-Length: {len(call_body(method, i))}")
                for i, method in enumerate(["getHealth", "getSlot", "nope", "getHealth"])
            )
        )
        buffer = bytearray()
        replies = [json.loads(read_response(sock, buffer)[2]) for _ in range(4)]
    assert [r["id"] for r in replies] == [0, 1, 2, 3]
    assert replies[0]["result"] == "ok" and isinstance(replies[1]["result"], int)
    assert replies[2]["error"]["code"] == -32601 and replies[3]["result"] == "ok"


def test_chunked_body_split_across_writes(localnet: LocalnetProcess) -> None:
    body = call_body("getHealth")
    chunked = b"%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
    with connect(localnet) as sock:
        raw = post(chunked, "Transfer-Encoding: chunked")
        for i in range(0, len(raw), 7):  # the server must wait for the rest, not answer a partial body
            sock.sendall(raw[i : i + 7])
        buffer = bytearray()
        status, _, reply = read_response(sock, buffer)
        assert status == 200 and json.loads(reply)["result"] == "ok"
        sock.sendall(post(body, f"Content-Length: {len(body)}"))  # the connection is still usable
        assert json.loads(read_response(sock, buffer)[2])["result"] == "ok"


def test_expect_100_continue_then_body(localnet: LocalnetProcess) -> None:
    body = call_body("getHealth")
    with connect(localnet) as sock:
        sock.sendall(post(b"", f"Content-Length: {len(body)}", "Expect: 100-continue"))
        buffer = bytearray()
        assert read_response(sock, buffer)[0] == 100
        sock.sendall(body)
        status, _, reply = read_response(sock, buffer)
    assert status == 200 and json.loads(reply)["result"] == "ok"


def test_too_large_body_is_413_and_closes(localnet: LocalnetProcess) -> None:
    with connect(localnet) as sock:
        sock.sendall(post(b"", f"Content-Length: {64 * 1024 * 1024 + 1}"))
        buffer = bytearray()
        status, headers, _ = read_response(sock, buffer)
        assert (status, headers["connection"]) == (413, "close")
        assert closed(sock, buffer)


def test_connection_close_options_health_and_other_methods(localnet: LocalnetProcess) -> None:
    with connect(localnet) as sock:
        buffer = bytearray()
        sock.sendall(b"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(sock, buffer)
        assert status == 204 and headers["access-control-allow-origin"] == "*"
        sock.sendall(b"GET /health?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock, buffer)[::2] == (200, b"ok")
        sock.sendall(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        status, headers, _ = read_response(sock, buffer)
        assert (status, headers["connection"]) == (405, "close")
        assert closed(sock, buffer)


def test_malformed_framing_drops_only_that_connection(localnet: LocalnetProcess) -> None:
    with connect(localnet) as sock:
        sock.sendall(post(b"zz\r\n", "Transfer-Encoding: chunked"))  # not a hex chunk size
        assert closed(sock, bytearray())
    assert localnet.rpc("getHealth")["result"] == "ok"


def test_fast_json_paths_answer_every_body_as_before(localnet: LocalnetProcess) -> None:
    """The request fast path (UTF-8 decoded directly) and orjson's answers keep every case the standard library
    handled: a UTF-16 body and a BOM body still parse; an id past 64 bits (which orjson refuses) is echoed;
    non-ASCII text comes back as the same value; headers in odd case and spacing are read."""
    big_id = 2**70
    utf16 = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "getHealth"}).encode("utf-16")  # with its BOM
    bom = b"\xef\xbb\xbf" + call_body("getHealth", 8)
    unknown = json.dumps({"jsonrpc": "2.0", "id": "é-☃", "method": "nö"}, ensure_ascii=False).encode()
    with connect(localnet) as sock:
        buffer = bytearray()
        for body in (call_body("getHealth", big_id), utf16, bom, unknown):
            sock.sendall(post(body, f"cOnTeNt-LeNgTh :  {len(body)} "))
        answers = [json.loads(read_response(sock, buffer)[2]) for _ in range(4)]
    assert answers[:3] == [
        {"jsonrpc": "2.0", "result": "ok", "id": big_id},
        {"jsonrpc": "2.0", "result": "ok", "id": 7},
        {"jsonrpc": "2.0", "result": "ok", "id": 8},
    ]
    assert answers[3] == {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "é-☃"}


def test_header_lines_are_read_with_their_blanks_dropped() -> None:
    """The one-pass header parse (greedy runs, no per-character look-ahead): names and values lose the blanks
    around them, keep the ones inside, an empty name or value stays empty, a line without a colon is no header,
    and a value may hold colons."""
    head = (
        "POST / HTTP/1.1\r\n  cOnTeNt-LeNgTh :  12 \r\nX:\r\n:empty\r\nA b: b c \t\r\nB:\t\r\nweird\r\n"
        "C : v:w \r\nTransfer-Encoding:chunked"
    )
    request = HttpRpcProtocol._head(head, len(head) + 4)
    assert request is not None
    assert request.headers == {
        "content-length": "12",
        "x": "",
        "": "empty",
        "a b": "b c",
        "b": "",
        "c": "v:w",
        "transfer-encoding": "chunked",
    }
