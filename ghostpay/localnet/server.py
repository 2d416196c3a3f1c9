"""The localnet server: HTTP JSON-RPC and websocket pub-sub on one asyncio loop.

Everything (LiteSVM, the ledger, subscriptions) lives on the loop's thread, so
requests are handled one at a time, in order, without locks. The HTTP side is a
small HTTP/1.1 server (keep-alive, pipelining, Content-Length or chunked bodies,
CORS, `GET /health`; getProgramAccounts in the kept encoding answered in chunks as
it is encoded); the websocket side is `websockets`' server. The loop is
uvloop's: the same asyncio API with less overhead per request.
"""

from __future__ import annotations

import asyncio
import fcntl
import re
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

from solders.pubkey import Pubkey
from websockets.asyncio.server import serve

from ghostpay.localnet.chain import SLOT_SECONDS, Chain
from ghostpay.localnet.cheats import Cheats
from ghostpay.localnet.ledger import LEDGER_FILE, LOCK_FILE, Ledger, LedgerBusy
from ghostpay.localnet.pubsub import PubSub
from ghostpay.localnet.rpc import ItemStream, Piece, Rpc, encode_pieces, written_whole
from ghostpay.paths import data_dir

MAX_BODY = 64 * 1024 * 1024
MAX_HEAD = 64 * 1024
# A header line of a request head (after the request line): its name and value, surrounding blanks dropped.
# Greedy runs that end on a non-blank: half the steps of lazy ones, which tried the line's end at every character.
HEADER_LINE = re.compile(r"\r\n[ \t]*([^:\r\n]*[^:\r\n \t]|)[ \t]*:[ \t]*((?:[^\r\n]*[^\r\n \t])?)[ \t]*(?=\r\n|\Z)")
CORS = (
    b"Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: POST, GET, OPTIONS\r\n"
    b"Access-Control-Allow-Headers: *\r\n"
)


def default_ledger() -> Path:
    return data_dir() / "localnet" / "ledger"


@dataclass
class LocalnetConfig:
    """How to run a localnet."""

    host: str = "127.0.0.1"
    rpc_port: int = 8899
    ws_port: int = 8900
    ledger: Path | None = None
    reset: bool = False
    program_so: Path | None = None
    quiet: bool = False

    @property
    def ledger_dir(self) -> Path:
        return self.ledger if self.ledger is not None else default_ledger()


class LocalnetError(Exception):
    """A user error that stops the localnet from starting (one line for the terminal)."""


def reset_ledger(directory: Path) -> None:
    """Delete the ledger database (and its WAL files) in `directory`; refused (`LocalnetError`) while a
    localnet holds the ledger: deleting it under a running node would lose confirmed transactions."""
    if not directory.is_dir():
        return
    with open(directory / LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the lock a running Ledger holds
        except BlockingIOError:
            raise LocalnetError(
                f"the ledger {directory} is in use by a running localnet; stop it first ('ghost localnet stop')"
            ) from None
        for suffix in ("", "-wal", "-shm"):  # under the lock: no localnet can open it meanwhile
            (directory / (LEDGER_FILE + suffix)).unlink(missing_ok=True)


class GroupCommit:
    """One ledger commit per event-loop pass, shared by every request answered in that pass.

    A request's writes are queued in the ledger while it is handled; its answer is then held until a commit
    scheduled with `call_soon`, which runs after every request that was read in the same pass. So N concurrent
    sendTransactions cost one SQLite commit instead of N, and no answer or notification that could show a
    transaction (its status, its effects, even another request's) leaves before that transaction is committed.
    A sendTransaction's answer says only "processed" (its signature): when nothing is held for its connection it
    leaves at once, and the ledger's inserts and commit follow in the same pass, while the client reads it and
    asks for the status. Held answers and messages leave in the order they were made, and nothing overtakes one
    held for its connection, so each connection's stay in order.
    A `ChunkedAnswer` is held the same way: its first chunk leaves after the commit, and what it sends
    later shows the chain as it was when its call was handled (`ItemStream`).
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        # what leaves after the next commit, in order, with the connection to drop if that commit fails
        self._held: list[tuple[asyncio.BaseTransport, Callable[[], object]]] = []
        self._holding: set[asyncio.BaseTransport] = set()  # the connections of `_held`
        self._scheduled = False

    def answer(self, transport: asyncio.Transport, response: Answer, close: bool, processed_only: bool) -> None:
        """Send `response` (its pieces, then close if `close`; or a chunked answer, which closes the connection
        itself) once everything written so far is committed, or at once if it says only "processed"
        (`processed_only`) and nothing is held for its connection."""
        if transport not in self._holding and (processed_only or not self.ledger.dirty):
            self._send(transport, response, close)
        else:
            self._hold(transport, partial(self._send, transport, response, close))
        self._schedule()

    def after_commit(self, transport: asyncio.BaseTransport, deliver: Callable[[], object]) -> None:
        """Run `deliver` (a websocket message's, for the connection of `transport`) once everything written so
        far is committed."""
        if transport not in self._holding and not self.ledger.dirty:
            deliver()
            return
        self._hold(transport, deliver)
        self._schedule()

    def _hold(self, transport: asyncio.BaseTransport, deliver: Callable[[], object]) -> None:
        self._held.append((transport, deliver))
        self._holding.add(transport)

    def _schedule(self) -> None:
        if not self._scheduled and (self._held or self.ledger.dirty):
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        self._scheduled = False
        held, self._held = self._held, []
        self._holding.clear()
        try:
            self.ledger.commit()
        except Exception:  # not durable: nobody hears "confirmed"; the connections drop instead
            for transport, _ in held:
                transport.abort()  # type: ignore[attr-defined]  # every connection's transport is a full Transport
            raise
        for _, deliver in held:
            deliver()

    @staticmethod
    def _send(transport: asyncio.Transport, response: Answer, close: bool) -> None:
        if isinstance(response, ChunkedAnswer):
            response.start()
        elif not transport.is_closing():
            transport.writelines(response)
            if close:
                transport.close()


class ChunkedAnswer:
    """An answer sent in HTTP/1.1 chunks as its streamed pieces (`ItemStream`) are produced: one chunk per pass
    of the event loop, and none while the transport's buffer is past its high-water mark (`pause_writing`), so
    the client parses while the localnet encodes, other connections are served between chunks, and the server
    holds little more than the chunk being written. `done` runs after the last chunk (or when the connection
    goes away first)."""

    def __init__(
        self, transport: asyncio.Transport, head: bytes, pieces: list[Piece], paused: bool, done: Callable[[], None]
    ) -> None:
        self.transport = transport
        self.pieces = deque(pieces)
        self.done = done
        self.paused = paused  # the transport's buffer is past its high-water mark
        self._head: bytes | None = head
        self._scheduled = False
        self._finished = False

    def start(self) -> None:
        self._step()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._schedule()

    def abandon(self) -> None:
        """The connection went away: nothing more is produced."""
        for piece in self.pieces:
            if isinstance(piece, ItemStream):
                piece.close()
        self.pieces.clear()
        self._finish()

    def _schedule(self) -> None:
        if not self._scheduled and not self._finished:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._step)

    def _step(self) -> None:
        self._scheduled = False
        while not self.paused and not self._finished:
            if self.transport.is_closing():
                self.abandon()
                return
            if self._head is not None:
                self.transport.write(self._head)
                self._head = None
            elif not self.pieces:
                self.transport.write(b"0\r\n\r\n")
                self._finish()
            elif isinstance(piece := self.pieces[0], bytes):
                self.pieces.popleft()
                self._write_chunk(piece)
            elif (chunk := self._next_chunk(piece)) is None:
                self.pieces.popleft()
            else:
                self._write_chunk(chunk)
                self._schedule()  # the next slice in the next pass: the socket drains, other requests are served
                return

    def _next_chunk(self, stream: ItemStream) -> bytes | None:
        """The stream's next chunk; if encoding it fails, the connection is dropped (the client sees that, never
        a short answer that parses) and the error reported as the loop reports its callbacks' (raising would
        stop the group commit's other answers)."""
        try:
            return stream.next_chunk()
        except Exception as exc:  # noqa: BLE001 - reported below, whatever it is
            self.transport.abort()
            message = "a streamed getProgramAccounts answer failed"
            asyncio.get_running_loop().call_exception_handler({"message": message, "exception": exc})
            return None

    def _write_chunk(self, data: bytes) -> None:
        if data:  # an empty chunk would end the body
            self.transport.writelines([b"%x\r\n" % len(data), data, b"\r\n"])

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self.done()


Answer = list[bytes] | ChunkedAnswer


class PayloadTooLarge(Exception):
    """A request body past MAX_BODY."""


@dataclass
class HttpRequest:
    """A request line and headers read off a connection; the body follows."""

    method: str
    path: str
    headers: dict[str, str]  # names and values lower-cased (every value read is compared as such)
    keep_alive: bool
    body_start: int  # offset of the body in the connection's buffer
    chunked_answer: bool  # the client reads chunked answers (HTTP/1.1)
    continued: bool = False  # "100 Continue" sent


class HttpRpcProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 front for `Rpc`: keep-alive, pipelining, Content-Length or chunked bodies.

    A protocol rather than streams: requests are parsed and handled straight from `data_received`,
    with no task or stream reader per request (the answers wait only for the group commit).
    An answer with an `ItemStream` (getProgramAccounts in the kept encoding) is sent chunked while it is
    produced (`ChunkedAnswer`); the connection's next request is read after its last chunk.
    """

    def __init__(self, rpc: Rpc, group_commit: GroupCommit) -> None:
        self.rpc = rpc
        self.group_commit = group_commit
        self.buffer = bytearray()
        self.request: HttpRequest | None = None
        self.transport: asyncio.Transport  # set by connection_made, before any data_received
        self.streaming: ChunkedAnswer | None = None
        self.writing_paused = False  # the transport's buffer is past its high-water mark

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream server's connection: a full Transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.streaming is not None:
            self.streaming.abandon()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.streaming is not None:
            self.streaming.pause()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.streaming is not None:
            self.streaming.resume()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            while self.streaming is None and not self.transport.is_closing() and self._serve_one():
                pass
        except ValueError:  # a malformed request line, header or chunk size: drop the connection
            self.transport.close()

    def _serve_one(self) -> bool:
        """Serve the first complete request in the buffer; False when it holds none."""
        if self.request is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise ValueError("request head too large")
                return False
            self.request = self._head(bytes(self.buffer[:end]).decode("latin-1"), end + 4)
            if self.request is None:
                self.transport.close()
                return False
        request = self.request
        try:
            body = self._body(request)
        except PayloadTooLarge:
            self.request = None
            self._answer(413, b"payload too large", "text/plain", keep_alive=False)
            return False
        if body is None:
            if request.headers.get("expect", "") == "100-continue" and not request.continued:
                request.continued = True
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return False
        self.request = None
        if request.method == "OPTIONS":
            self._answer(204, b"", "text/plain", request.keep_alive)
        elif request.method == "GET" and request.path.split("?")[0] == "/health":
            self._answer(200, b"ok", "text/plain", request.keep_alive)
        elif request.method == "POST":
            response, processed_only = self.rpc.handle_body(body)
            pieces = encode_pieces(response)
            if request.chunked_answer and any(isinstance(piece, ItemStream) for piece in pieces):
                self._stream(pieces, request.keep_alive)
                return False  # the next request waits for this answer's last chunk
            self._answer(200, written_whole(pieces), "application/json", request.keep_alive, processed_only)
        else:
            self._answer(
                405, b"Used HTTP Method is not allowed. POST or OPTIONS is required", "text/plain", request.keep_alive
            )
        return request.keep_alive

    @staticmethod
    def _head(text: str, body_start: int) -> HttpRequest | None:
        request_line, _, _ = text.partition("\r\n")
        if not request_line.strip():
            return None
        method, _, rest = request_line.partition(" ")
        path, _, version = rest.strip().partition(" ")
        headers = dict(HEADER_LINE.findall(text.lower()))  # one regex pass: a Python loop per line cost ~3x
        keep_alive = headers.get("connection", "") != "close" and version != "HTTP/1.0"
        return HttpRequest(method, path, headers, keep_alive, body_start, chunked_answer=version == "HTTP/1.1")

    def _body(self, request: HttpRequest) -> bytes | None:
        """The request's whole body, consumed from the buffer with its head; None while incomplete;
        `PayloadTooLarge` past MAX_BODY."""
        buffer, position = self.buffer, request.body_start
        if "chunked" in request.headers.get("transfer-encoding", ""):
            chunks = []
            total = 0
            while True:
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None
                size = int(bytes(buffer[position:line_end]).split(b";")[0].strip() or b"0", 16)
                position = line_end + 2
                if size == 0:
                    break
                total += size
                if total > MAX_BODY:
                    raise PayloadTooLarge
                if len(buffer) < position + size + 2:
                    return None
                chunks.append(bytes(buffer[position : position + size]))
                position += size + 2
            while True:  # trailers, up to the empty line
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None
                position, empty = line_end + 2, line_end == position
                if empty:
                    break
            del buffer[:position]
            return b"".join(chunks)
        length = int(request.headers.get("content-length", "0") or 0)
        if length > MAX_BODY:
            raise PayloadTooLarge
        if len(buffer) < position + length:
            return None
        body = bytes(buffer[position : position + length])
        del buffer[: position + length]
        return body

    def _answer(
        self,
        status: int,
        body: bytes | list[bytes],
        content_type: str,
        keep_alive: bool,
        processed_only: bool = False,
    ) -> None:
        """Answer with `body` (or its pieces: written one after another, never joined); see `GroupCommit.answer`."""
        pieces = [body] if isinstance(body, bytes) else body
        head = self._head_of(status, content_type, f"Content-Length: {sum(map(len, pieces))}", keep_alive)
        self.group_commit.answer(self.transport, [head, *pieces], not keep_alive, processed_only)

    def _stream(self, pieces: list[Piece], keep_alive: bool) -> None:
        """A 200 JSON answer in chunks, produced as it is sent (`ChunkedAnswer`); reading waits for its end."""
        head = self._head_of(200, "application/json", "Transfer-Encoding: chunked", keep_alive)
        self.streaming = ChunkedAnswer(
            self.transport, head, pieces, self.writing_paused, lambda: self._streamed(keep_alive)
        )
        self.transport.pause_reading()
        self.group_commit.answer(self.transport, self.streaming, not keep_alive, processed_only=False)

    def _streamed(self, keep_alive: bool) -> None:
        """After a chunked answer's last chunk: on to the connection's next request."""
        self.streaming = None
        if self.transport.is_closing():
            return
        if not keep_alive:
            self.transport.close()
            return
        self.transport.resume_reading()
        self.data_received(b"")

    @staticmethod
    def _head_of(status: int, content_type: str, framing: str, keep_alive: bool) -> bytes:
        reason = {200: "OK", 204: "No Content", 405: "Method Not Allowed", 413: "Payload Too Large"}[status]
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n{framing}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        ).encode()
        return head + CORS + b"\r\n"


class Localnet:
    """A running localnet: the chain, its ledger and both servers."""

    def __init__(self, config: LocalnetConfig, program_so: bytes, program_id: Pubkey) -> None:
        self.config = config
        ledger_dir = config.ledger_dir
        try:
            self.ledger = Ledger(ledger_dir)
        except LedgerBusy as exc:
            raise LocalnetError(str(exc)) from None
        if config.reset:
            self.ledger.close()
            reset_ledger(ledger_dir)
            self.ledger = Ledger(ledger_dir)
        try:
            self.chain = Chain(self.ledger, program_so, program_id, cache_dir=data_dir() / "localnet" / "programs")
        except Exception:
            self.ledger.close()
            raise
        self.rpc = Rpc(self.chain)
        Cheats(self.rpc)
        self.group_commit = GroupCommit(self.ledger)
        self.pubsub = PubSub(self.rpc, self.group_commit.after_commit)
        self.stopping = asyncio.Event()

    async def _tick(self) -> None:
        """A slot every ~400 ms, on the wall clock."""
        next_slot = time.monotonic() + SLOT_SECONDS
        while True:
            await asyncio.sleep(max(0.0, next_slot - time.monotonic()))
            next_slot += SLOT_SECONDS
            self.chain.advance_slot()
            self.ledger.commit()

    async def run(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        try:
            http = await loop.create_server(
                lambda: HttpRpcProtocol(self.rpc, self.group_commit), cfg.host, cfg.rpc_port, reuse_address=True
            )
        except OSError as exc:
            raise LocalnetError(f"cannot listen on {cfg.host}:{cfg.rpc_port} for RPC: {exc.strerror}") from None
        try:
            ws = await serve(self.pubsub.serve, cfg.host, cfg.ws_port, max_size=MAX_BODY, compression=None)
        except OSError as exc:
            http.close()
            raise LocalnetError(f"cannot listen on {cfg.host}:{cfg.ws_port} for pub-sub: {exc.strerror}") from None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        ticker = asyncio.create_task(self._tick())
        if not cfg.quiet:
            print(
                "GhostPay localnet ready\n"
                f"  JSON-RPC:  http://{cfg.host}:{cfg.rpc_port}\n"
                f"  WebSocket: ws://{cfg.host}:{cfg.ws_port}\n"
                f"  ledger:    {cfg.ledger_dir}\n"
                f"  program:   {self.chain.program_id}\n"
                f"  slot:      {self.chain.slot}",
                flush=True,
            )
        await self.stopping.wait()
        ticker.cancel()
        http.close()
        ws.close()
        await ws.wait_closed()
        self.ledger.close()
        if not cfg.quiet:
            print("GhostPay localnet stopped; ledger saved.", flush=True)


def load_program(path: Path | None) -> bytes:
    if path is None:
        from ghostpay.artifacts import program_bytes

        return program_bytes()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LocalnetError(f"cannot read the program {path}: {exc.strerror}") from None


def run(config: LocalnetConfig) -> None:
    """Start the localnet and serve until SIGINT / SIGTERM. Raises `LocalnetError` for user errors."""
    import uvloop  # here, not at the top: the commands that only import this module skip its ~30 ms

    from ghostpay.localnet.chain import ProgramLoadError
    from ghostpay.program_id import PROGRAM_ID

    try:
        localnet = Localnet(config, load_program(config.program_so), PROGRAM_ID)
    except ProgramLoadError as exc:
        raise LocalnetError(f"{config.program_so}: {exc}") from None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(localnet.run())
