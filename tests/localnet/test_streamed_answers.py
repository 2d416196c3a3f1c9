"""getProgramAccounts in the kept encoding (base64+zstd) is sent in HTTP/1.1 chunks while it is encoded
(`ItemStream`, `ChunkedAnswer`): the same answers as written whole, read by solana-py, in order on their
connection, held for the group commit, bounded while the client does not read, and showing the chain as it was
when their call was handled whatever is written meanwhile."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import based58
import httpx
import pytest
import zstandard
from solana.rpc.async_api import AsyncClient
from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from websockets.sync.client import connect as ws_connect

from ghostpay.artifacts import program_bytes
from ghostpay.localnet import encoding as enc
from ghostpay.localnet.chain import Chain
from ghostpay.localnet.cheats import Cheats
from ghostpay.localnet.jsonwire import compact
from ghostpay.localnet.ledger import Ledger
from ghostpay.localnet.rpc import KEPT_SLICE, Rpc, encode_response
from ghostpay.localnet.server import ChunkedAnswer, GroupCommit, HttpRpcProtocol
from ghostpay.program_id import PROGRAM_ID
from tests.localnet.conftest import LocalnetProcess

ACCOUNTS = 2 * KEPT_SLICE + 44  # three slices, the last one short
SMALL, LARGE = 600, 1000  # account sizes, for `dataSize`
MARK_AT, TAIL_MARK_AT = 0, enc.FILTER_PREFIX + 2  # memcmp on a byte within the kept prefix, and one past it


def b58(data: bytes) -> str:
    return based58.b58encode(data).decode()


def account_data(index: int, rng: random.Random) -> bytes:
    """Bytes a filter can pick by `index` (mod 3 within the kept prefix, mod 5 past it), text, zero padding."""
    size = SMALL if index % 2 else LARGE
    data = bytearray(size)
    data[MARK_AT] = index % 3
    data[TAIL_MARK_AT] = index % 5
    text = rng.randbytes(rng.randint(20, 200))
    data[TAIL_MARK_AT + 1 : TAIL_MARK_AT + 1 + len(text)] = text
    return bytes(data)


def write_accounts(url: str, owner: Pubkey, seed: int) -> dict[str, bytes]:
    """`ACCOUNTS` accounts of `owner` written by cheat codes (a write drops the localnet's kept items): address →
    data. The same addresses for the same owner; the data changes with `seed`."""
    rng = random.Random(seed)
    keys = [Pubkey.create_with_seed(owner, str(i), owner) for i in range(ACCOUNTS)]
    datas = {str(key): account_data(i, rng) for i, key in enumerate(keys)}
    calls = [
        {
            "jsonrpc": "2.0",
            "id": i,
            "method": "surfnet_setAccount",
            "params": [key, {"data": [base64.b64encode(data).decode(), "base64"], "owner": str(owner)}],
        }
        for i, (key, data) in enumerate(datas.items())
    ]
    answers = httpx.post(url, json=calls, timeout=30).json()
    assert all("error" not in a for a in answers), answers[0]
    return datas


FILTERS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "memcmp within the kept prefix": [{"memcmp": {"offset": MARK_AT, "bytes": b58(b"\1")}}],
    "memcmp past the kept prefix": [{"memcmp": {"offset": TAIL_MARK_AT, "bytes": b58(b"\2")}}],
    "dataSize": [{"dataSize": SMALL}],
    "memcmp and dataSize": [{"memcmp": {"offset": MARK_AT, "bytes": b58(b"\2")}}, {"dataSize": LARGE}],
    "nothing matches": [{"memcmp": {"offset": MARK_AT, "bytes": b58(b"\7")}}],
}


def wanted(datas: dict[str, bytes], filters: list[dict[str, Any]]) -> dict[str, bytes]:
    """What `filters` keep of `datas`, checked here independently of the localnet."""

    def keeps(data: bytes) -> bool:
        for spec in filters:
            if "dataSize" in spec and len(data) != spec["dataSize"]:
                return False
            if "memcmp" in spec:
                offset, want = spec["memcmp"]["offset"], based58.b58decode(spec["memcmp"]["bytes"].encode())
                if data[offset : offset + len(want)] != want:
                    return False
        return True

    return {key: data for key, data in datas.items() if keeps(data)}


def gpa(owner: Pubkey, filters: list[dict[str, Any]], request_id: int = 1, context: bool = False) -> dict[str, Any]:
    cfg = {"encoding": "base64+zstd", "filters": filters} | ({"withContext": True} if context else {})
    return {"jsonrpc": "2.0", "id": request_id, "method": "getProgramAccounts", "params": [str(owner), cfg]}


@dataclass
class RawAnswer:
    headers: dict[str, str]
    body: bytes
    chunks: int  # 0 for a Content-Length answer


def read_answer(sock: socket.socket, buffer: bytearray) -> RawAnswer:
    """One HTTP answer off `sock`, Content-Length or chunked (bytes past it stay in `buffer`)."""

    def fill(size: int) -> None:
        while len(buffer) < size:
            data = sock.recv(1 << 16)
            assert data, "connection closed inside an answer"
            buffer.extend(data)

    def line() -> bytes:
        while b"\r\n" not in buffer:
            fill(len(buffer) + 1)
        end = buffer.index(b"\r\n")
        text = bytes(buffer[:end])
        del buffer[: end + 2]
        return text

    status = line()
    assert status.startswith(b"HTTP/1.1 200"), status
    headers = {}
    while header := line():
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.lower()] = value.strip()
    if headers.get("transfer-encoding") != "chunked":
        length = int(headers["content-length"])
        fill(length)
        body = bytes(buffer[:length])
        del buffer[:length]
        return RawAnswer(headers, body, 0)
    parts = []
    while size := int(line(), 16):
        fill(size + 2)
        parts.append(bytes(buffer[:size]))
        assert buffer[size : size + 2] == b"\r\n"
        del buffer[: size + 2]
    assert line() == b""  # no trailers
    return RawAnswer(headers, b"".join(parts), len(parts))


def post(port: int, body: Any, version: str = "HTTP/1.1") -> RawAnswer:
    """`body` as JSON in one request on a new connection, in `version` (HTTP/1.0 clients get no chunks)."""
    data = json.dumps(body).encode()
    head = f"POST / {version}\r\nHost: localnet\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n" + data)
        return read_answer(sock, bytearray())


def same_slot(body: bytes) -> bytes:
    """An answer with its context's slot left out (the clock moves between two requests)."""
    return re.sub(rb'"slot":\d+', b'"slot":0', body)


def items_of(result: Any) -> dict[str, bytes]:
    items = result["value"] if isinstance(result, dict) else result
    out = {}
    for item in items:
        text, encoding = item["account"]["data"]
        assert encoding == "base64+zstd"
        out[item["pubkey"]] = zstandard.ZstdDecompressor().decompress(base64.b64decode(text))
    return out


def test_kept_item_is_the_json_the_dict_path_writes() -> None:
    """`keyed_account_json`'s template writes the bytes `compact` wrote for the item's dict, for accounts at
    the edges of each field (no data, u64 maxima, executable)."""
    owner = Pubkey.new_unique()
    accounts = [
        Account(1, bytes(100) + b"agent" + bytes(2700), owner, False, 0),
        Account(0, b"", owner, True, 2**64 - 1),
        Account(2**64 - 1, random.Random(1).randbytes(300), owner, False, 361),
    ]
    for account in accounts:
        key = Pubkey.new_unique()
        item = enc.keyed_account_json(key, account, str(owner).encode())
        assert item.json == compact({"pubkey": str(key), "account": enc.encode_account(account, enc.KEPT_ENCODING)})
        text = json.loads(item.json)["account"]["data"][0]
        assert zstandard.ZstdDecompressor().decompress(base64.b64decode(text)) == account.data
        assert (item.prefix, item.size) == (account.data[: enc.FILTER_PREFIX], len(account.data))


@pytest.mark.parametrize("context", [False, True])
def test_streamed_answers_are_the_answers_written_whole(localnet: LocalnetProcess, context: bool) -> None:
    """For every filter the kept path serves, alone and two in a batch, with and without context: the chunked
    answer (HTTP/1.1) is byte for byte the answer written whole (HTTP/1.0, and over the websocket JSON-equal),
    whether it encodes the accounts or reads what the other kept, and its items are the accounts written."""
    owner = Keypair().pubkey()
    for seed, (name, filters) in enumerate(FILTERS.items()):
        other = FILTERS["memcmp past the kept prefix"]
        for batch in (False, True):
            body: Any = gpa(owner, filters, context=context)
            if batch:
                body = [{"jsonrpc": "2.0", "id": 0, "method": "getHealth"}, body, gpa(owner, other, 2, context)]
            datas = write_accounts(localnet.http_url, owner, seed)
            streamed = post(localnet.rpc_port, body)  # encodes every account
            whole = post(localnet.rpc_port, body, "HTTP/1.0")  # reads what the streamed one kept
            datas = write_accounts(localnet.http_url, owner, seed + 100)
            whole_first = post(localnet.rpc_port, body, "HTTP/1.0")
            streamed_after = post(localnet.rpc_port, body)
            assert streamed.headers["transfer-encoding"] == "chunked" and "content-length" not in streamed.headers
            assert whole.chunks == 0 and int(whole.headers["content-length"]) == len(whole.body)
            if name == "none":
                assert streamed.chunks >= 3, "one chunk per slice of accounts"
            assert same_slot(streamed.body) == same_slot(whole.body), name
            assert same_slot(streamed_after.body) == same_slot(whole_first.body), name
            answers = json.loads(streamed_after.body)
            results = [a["result"] for a in answers[1:]] if batch else [answers["result"]]
            assert items_of(results[0]) == wanted(datas, filters), name
            if batch:
                assert answers[0]["result"] == "ok" and items_of(results[1]) == wanted(datas, other)
        with ws_connect(localnet.ws_url) as ws:
            ws.send(json.dumps(gpa(owner, filters, context=context)))
            over_ws = json.loads(ws.recv(timeout=30))
        over_http = json.loads(post(localnet.rpc_port, gpa(owner, filters, context=context)).body)
        if context:
            over_ws["result"]["context"]["slot"] = over_http["result"]["context"]["slot"]
        assert over_ws == over_http, name


async def test_solana_py_reads_a_streamed_answer(localnet: LocalnetProcess) -> None:
    """solana-py's own client (httpx) reads a chunked getProgramAccounts answer into the accounts written."""
    owner = Keypair().pubkey()
    datas = write_accounts(localnet.http_url, owner, 7)
    async with AsyncClient(localnet.http_url, timeout=30) as client:
        found = (await client.get_program_accounts(owner, encoding="base64+zstd")).value
        got = {str(keyed.pubkey): bytes(keyed.account.data) for keyed in found}
        assert got == datas
        assert all(keyed.account.owner == owner for keyed in found)


def test_next_request_is_answered_after_the_last_chunk(localnet: LocalnetProcess) -> None:
    """Pipelined on one connection after a chunked answer, the next requests' answers follow its last chunk, in
    order."""
    owner = Keypair().pubkey()
    datas = write_accounts(localnet.http_url, owner, 3)
    calls = [gpa(owner, [], 1), {"jsonrpc": "2.0", "id": 2, "method": "getHealth"}, gpa(owner, [], 3)]
    requests = b""
    for call in calls:
        data = json.dumps(call).encode()
        requests += f"POST / HTTP/1.1\r\nHost: l\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
    with socket.create_connection(("127.0.0.1", localnet.rpc_port), timeout=30) as sock:
        sock.sendall(requests)
        buffer = bytearray()
        answers = [read_answer(sock, buffer) for _ in calls]
    assert [a.chunks > 0 for a in answers] == [True, False, True]
    replies = [json.loads(a.body) for a in answers]
    assert [r["id"] for r in replies] == [1, 2, 3]
    assert items_of(replies[0]["result"]) == items_of(replies[2]["result"]) == datas
    assert replies[1]["result"] == "ok"


def test_connection_close_closes_after_the_last_chunk(localnet: LocalnetProcess) -> None:
    """An HTTP/1.1 client that asks to close gets the whole chunked answer, then the server closes."""
    owner = Keypair().pubkey()
    datas = write_accounts(localnet.http_url, owner, 4)
    data = json.dumps(gpa(owner, [])).encode()
    head = f"POST / HTTP/1.1\r\nHost: l\r\nConnection: close\r\nContent-Length: {len(data)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", localnet.rpc_port), timeout=30) as sock:
        sock.sendall(head.encode() + data)
        buffer = bytearray()
        answer = read_answer(sock, buffer)
        assert not buffer and sock.recv(1) == b""
    assert answer.chunks > 0 and answer.headers["connection"] == "close"
    assert items_of(json.loads(answer.body)["result"]) == datas


# -- in-process: what the server holds and when it sends ------------------------------------------------------------


@dataclass
class Served:
    chain: Chain
    rpc: Rpc
    group_commit: GroupCommit
    port: int
    protocols: list[HttpRpcProtocol]  # every connection's, in accepting order


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """The localnet's HTTP server in this process (what it holds can be looked at), its ledger in `tmp_path`."""
    ledger = Ledger(tmp_path / "ledger")
    chain = Chain(ledger, program_bytes(), PROGRAM_ID, cache_dir=tmp_path / "programs")
    rpc = Rpc(chain)
    Cheats(rpc)
    group_commit = GroupCommit(ledger)
    protocols: list[HttpRpcProtocol] = []

    def accept() -> HttpRpcProtocol:
        protocols.append(HttpRpcProtocol(rpc, group_commit))
        return protocols[-1]

    server = await asyncio.get_running_loop().create_server(accept, "127.0.0.1", 0)
    try:
        yield Served(chain, rpc, group_commit, server.sockets[0].getsockname()[1], protocols)
    finally:
        server.close()
        await server.wait_closed()
        ledger.close()


def put_accounts(chain: Chain, owner: Pubkey, count: int, size: int) -> list[Pubkey]:
    """`count` accounts of `owner` written straight into the chain (as a cheat code does), committed."""
    rng = random.Random(count)
    keys = [Pubkey.create_with_seed(owner, str(i), owner) for i in range(count)]
    for key in keys:
        chain.set_account(key, Account(1_000_000, rng.randbytes(size // 2).ljust(size, b"\0"), owner, False, 0))
    chain.ledger.commit()
    return keys


async def open_client(port: int, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:  # before connecting: it bounds the window the server may fill
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def send_request(sock: socket.socket, call: Any) -> None:
    data = json.dumps(call).encode()
    head = f"POST / HTTP/1.1\r\nHost: l\r\nContent-Length: {len(data)}\r\n\r\n".encode()
    await asyncio.get_running_loop().sock_sendall(sock, head + data)


async def receive_until(sock: socket.socket, buffer: bytearray, done: Callable[[bytearray], bool]) -> None:
    while not done(buffer):
        data = await asyncio.get_running_loop().sock_recv(sock, 1 << 16)
        assert data, "connection closed"
        buffer.extend(data)


async def read_async(sock: socket.socket, buffer: bytearray) -> RawAnswer:
    """The answer in `buffer` once it is whole (read off `sock` as it comes)."""

    def whole(data: bytearray) -> bool:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(data[:end]).lower()
        if b"transfer-encoding: chunked" in head:
            return data.endswith(b"\r\n0\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        return len(data) >= end + 4 + length

    await receive_until(sock, buffer, whole)
    return read_answer(sock, buffer)  # all in `buffer`: nothing more is received


@dataclass
class Stalled:
    """A getProgramAccounts answer under way to a client that read its head and nothing more."""

    sock: socket.socket
    buffer: bytearray  # what the client read
    answer: ChunkedAnswer


async def stalled_search(served: Served, owner: Pubkey) -> Stalled:
    """getProgramAccounts of `owner` on a new first connection whose client then reads nothing past the head,
    once the server has stopped writing (both sockets' buffers small: the kernels hold little)."""
    sock = await open_client(served.port, receive_buffer=4096)
    while not served.protocols or not hasattr(served.protocols[0], "transport"):  # accepted, connection made
        await asyncio.sleep(0.001)
    protocol = served.protocols[0]
    protocol.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    await send_request(sock, gpa(owner, []))
    buffer = bytearray()
    await receive_until(sock, buffer, lambda data: b"\r\n\r\n" in data)
    answer = protocol.streaming
    assert answer is not None
    for _ in range(500):  # the loop's passes until the transport pauses it
        if answer.paused:
            break
        await asyncio.sleep(0.002)
    assert answer.paused, "the server never stopped writing to a client that does not read"
    return Stalled(sock, buffer, answer)


async def test_a_client_that_does_not_read_holds_back_the_encoding(served: Served) -> None:
    """While its client reads nothing, the server stops encoding a streamed answer once the socket's buffer is
    full: what it has encoded and what the transport holds stay a small part of the answer (never the answer
    built whole); read on, the client gets every account."""
    owner = Pubkey.new_unique()
    keys = put_accounts(served.chain, owner, 20 * KEPT_SLICE, 1500)
    stalled = await stalled_search(served, owner)
    with stalled.sock:
        for _ in range(20):  # more passes of the loop: nothing more is produced
            await asyncio.sleep(0.002)
        encoded = len(served.chain.encoded)
        assert encoded <= 4 * KEPT_SLICE < len(keys), encoded
        transport = served.protocols[0].transport
        high = transport.get_write_buffer_limits()[1]
        assert transport.get_write_buffer_size() <= high + 2 * KEPT_SLICE * 2100, "about a chunk past the mark"
        assert stalled.answer.paused
        answer = await read_async(stalled.sock, stalled.buffer)
    result = json.loads(answer.body)["result"]
    assert answer.chunks > 10 and len(result) == len(keys)
    assert {item["pubkey"] for item in result} == {str(key) for key in keys}


async def test_a_streamed_answer_shows_the_chain_as_it_was_when_asked(served: Served) -> None:
    """A read on another connection while an answer is under way (its client not reading) is answered and
    leaves it streaming; a write is answered at once too, and the rest of the streamed answer still shows the
    account as it was when its call was handled (the write settles it first); the next search sees the write."""
    owner = Pubkey.new_unique()
    keys = put_accounts(served.chain, owner, 20 * KEPT_SLICE, 1500)
    stalled = await stalled_search(served, owner)
    with stalled.sock:
        late = next(key for key in reversed(keys) if key not in served.chain.encoded)  # not encoded yet
        before = served.chain.account(late)
        assert before is not None and served.rpc.open_streams
        encoded = len(served.chain.encoded)
        reader = await open_client(served.port)
        with reader:  # reads are answered without settling it
            await send_request(
                reader,
                {"jsonrpc": "2.0", "id": 8, "method": "getAccountInfo", "params": [str(late), {"encoding": "base64"}]},
            )
            assert json.loads((await read_async(reader, bytearray())).body)["result"]["value"]["space"] == 1500
        assert served.rpc.open_streams and len(served.chain.encoded) == encoded
        new_data = b"written while the answer was under way".ljust(1500, b"\0")
        update = {"data": [base64.b64encode(new_data).decode(), "base64"], "owner": str(owner)}
        writer = await open_client(served.port)
        with writer:
            await send_request(
                writer, {"jsonrpc": "2.0", "id": 9, "method": "surfnet_setAccount", "params": [str(late), update]}
            )
            written = json.loads((await read_async(writer, bytearray())).body)
        assert "error" not in written and not served.rpc.open_streams
        assert stalled.answer.paused, "answered while the stream waits for its client"
        answer = await read_async(stalled.sock, stalled.buffer)
    assert items_of(json.loads(answer.body)["result"])[str(late)] == before.data != new_data
    after = json.loads(b"".join(encode_response(served.rpc.handle(gpa(owner, [])))))
    assert items_of(after["result"])[str(late)] == new_data


async def test_a_streamed_answer_leaves_after_the_commit(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """An account written and not yet committed when a search is handled: the chunked answer's first byte
    leaves after the group commit that makes it durable, and it shows the account."""
    owner = Pubkey.new_unique()
    put_accounts(served.chain, owner, KEPT_SLICE, 200)
    events: list[str] = []
    commit, start = served.chain.ledger.commit, ChunkedAnswer.start
    monkeypatch.setattr(served.chain.ledger, "commit", lambda: (events.append("commit"), commit())[1])
    monkeypatch.setattr(ChunkedAnswer, "start", lambda self: (events.append("first chunk"), start(self))[1])
    key = Pubkey.new_unique()
    served.chain.set_account(key, Account(5, b"uncommitted", owner, False, 0))  # as a transaction of this pass
    assert served.chain.ledger.dirty
    sock = await open_client(served.port)
    with sock:
        await send_request(sock, gpa(owner, []))
        answer = await read_async(sock, bytearray())
    assert events == ["commit", "first chunk"]
    assert items_of(json.loads(answer.body)["result"])[str(key)] == b"uncommitted"


async def test_an_answer_that_fails_midway_drops_its_connection(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding fails while another connection's call settles a streamed answer: that call is answered as
    usual, and the streamed answer's client sees its connection dropped, never a short array that parses."""
    owner = Pubkey.new_unique()
    put_accounts(served.chain, owner, 20 * KEPT_SLICE, 1500)
    stalled = await stalled_search(served, owner)
    encode = enc.keyed_account_json

    def failing(*args: Any) -> enc.KeyedAccountJson:
        if len(served.chain.encoded) >= 10 * KEPT_SLICE:
            raise MemoryError("encoding failed")
        return encode(*args)

    monkeypatch.setattr(enc, "keyed_account_json", failing)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        other = await open_client(served.port)
        with other:
            update = {"lamports": 5, "owner": str(Pubkey.new_unique())}  # a write: it settles the stream
            write = {"jsonrpc": "2.0", "id": 5, "method": "surfnet_setAccount", "params": [str(owner), update]}
            await send_request(other, write)
            assert "error" not in json.loads((await read_async(other, bytearray())).body)
            assert not served.rpc.open_streams
        with stalled.sock:
            while data := await loop.sock_recv(stalled.sock, 1 << 16):
                stalled.buffer.extend(data)
    finally:
        loop.set_exception_handler(None)
    assert not stalled.buffer.endswith(b"\r\n0\r\n\r\n"), "the answer's end was never sent"
    assert [type(context.get("exception")) for context in reported] == [MemoryError]
