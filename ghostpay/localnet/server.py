"""The localnet server: HTTP JSON-RPC and websocket pub-sub on one asyncio loop.

Everything (LiteSVM, the ledger, subscriptions) lives on the loop's thread, so
requests are handled one at a time, in order, without locks. The HTTP side is a
small HTTP/1.1 server (keep-alive, Content-Length or chunked bodies, CORS,
`GET /health`); the websocket side is `websockets`' server.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from solders.pubkey import Pubkey
from websockets.asyncio.server import serve

from ghostpay.localnet.chain import SLOT_SECONDS, Chain
from ghostpay.localnet.cheats import Cheats
from ghostpay.localnet.ledger import LEDGER_FILE, LOCK_FILE, Ledger, LedgerBusy
from ghostpay.localnet.pubsub import PubSub
from ghostpay.localnet.rpc import Rpc
from ghostpay.paths import data_dir

MAX_BODY = 64 * 1024 * 1024
CORS = (b"Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: POST, GET, OPTIONS\r\n"
        b"Access-Control-Allow-Headers: *\r\n")


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
            raise LocalnetError(f"the ledger {directory} is in use by a running localnet; stop it first "
                                "('ghost localnet stop')") from None
        for suffix in ("", "-wal", "-shm"):  # under the lock: no localnet can open it meanwhile
            (directory / (LEDGER_FILE + suffix)).unlink(missing_ok=True)


class GroupCommit:
    """One ledger commit per event-loop pass, shared by every request answered in that pass.

    A request's writes happen synchronously while it is handled; `durable()` then waits for a
    commit scheduled with `call_soon`, which runs after every handler that was ready in the same
    pass. So N concurrent sendTransactions cost one SQLite commit instead of N, and no answer
    (even a read that could reveal another request's uncommitted transaction) leaves before the
    data it may show is committed.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._pending: asyncio.Future[None] | None = None

    async def durable(self) -> None:
        if self._pending is None:
            if not self.ledger.dirty:
                return
            loop = asyncio.get_running_loop()
            self._pending = loop.create_future()
            loop.call_soon(self._commit)
        await asyncio.shield(self._pending)

    def _commit(self) -> None:
        pending, self._pending = self._pending, None
        assert pending is not None
        try:
            self.ledger.commit()
        except Exception as exc:  # noqa: BLE001 - every waiter hears it
            pending.set_exception(exc)
        else:
            pending.set_result(None)


class HttpRpcServer:
    """A minimal HTTP/1.1 front for `Rpc`."""

    def __init__(self, rpc: Rpc, group_commit: GroupCommit) -> None:
        self.rpc = rpc
        self.group_commit = group_commit

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection should close."""
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")  # request line + headers
        if not lines[0].strip():
            return False
        method, _, rest = lines[0].partition(" ")
        path, _, version = rest.strip().partition(" ")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        keep_alive = headers.get("connection", "").lower() != "close" and version != "HTTP/1.0"
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await self._body(reader, headers)
        if body is None:
            await self._send(writer, 413, b"payload too large", "text/plain", keep_alive=False)
            return False
        if method == "OPTIONS":
            await self._send(writer, 204, b"", "text/plain", keep_alive)
        elif method == "GET" and path.split("?")[0] == "/health":
            await self._send(writer, 200, b"ok", "text/plain", keep_alive)
        elif method == "POST":
            response = self.rpc.handle_body(body)
            await self.group_commit.durable()  # durable before the client hears "confirmed"
            await self._send(writer, 200, json.dumps(response, separators=(",", ":")).encode(),
                             "application/json", keep_alive)
        else:
            await self._send(writer, 405, b"Used HTTP Method is not allowed. POST or OPTIONS is required",
                             "text/plain", keep_alive)
        return keep_alive

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes | None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            total = 0
            while (size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16)) > 0:
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(await reader.readexactly(size))
                await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY:
            return None
        return await reader.readexactly(length) if length else b""

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str,
                    keep_alive: bool) -> None:
        reason = {200: "OK", 204: "No Content", 405: "Method Not Allowed", 413: "Payload Too Large"}[status]
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n").encode()
        writer.write(head + CORS + b"\r\n" + body)
        await writer.drain()


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
        self.pubsub = PubSub(self.rpc)
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
        try:
            http = await asyncio.start_server(HttpRpcServer(self.rpc, GroupCommit(self.ledger)).handle, cfg.host, cfg.rpc_port,
                                              reuse_address=True)
        except OSError as exc:
            raise LocalnetError(f"cannot listen on {cfg.host}:{cfg.rpc_port} for RPC: {exc.strerror}") from None
        try:
            ws = await serve(self.pubsub.serve, cfg.host, cfg.ws_port, max_size=MAX_BODY, compression=None)
        except OSError as exc:
            http.close()
            raise LocalnetError(f"cannot listen on {cfg.host}:{cfg.ws_port} for pub-sub: {exc.strerror}") from None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        ticker = asyncio.create_task(self._tick())
        if not cfg.quiet:
            print("GhostPay localnet ready\n"
                  f"  JSON-RPC:  http://{cfg.host}:{cfg.rpc_port}\n"
                  f"  WebSocket: ws://{cfg.host}:{cfg.ws_port}\n"
                  f"  ledger:    {cfg.ledger_dir}\n"
                  f"  program:   {self.chain.program_id}\n"
                  f"  slot:      {self.chain.slot}", flush=True)
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
    from ghostpay.localnet.chain import ProgramLoadError
    from ghostpay.program_id import PROGRAM_ID

    try:
        localnet = Localnet(config, load_program(config.program_so), PROGRAM_ID)
    except ProgramLoadError as exc:
        raise LocalnetError(f"{config.program_so}: {exc}") from None
    asyncio.run(localnet.run())

