"""x402 tests on a real localnet: `ghost facilitator start` and `ghost x402 proxy` as processes, sellers
served by uvicorn over real HTTP, buyers with the official x402 client unchanged."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import select
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from x402 import x402Client
from x402.extensions.bazaar import BazaarExtendedClient, DiscoveryResource, with_bazaar
from x402.http import FacilitatorConfig
from x402.http.clients import x402HttpxClient
from x402.http.facilitator_client import HTTPFacilitatorClientSync
from x402.mechanisms.svm.exact.register import register_exact_svm_client
from x402.mechanisms.svm.signers import KeypairSigner

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.localnet.process import free_port_pair
from ghostpay.spending import GuardedWallet, SpendingGuards
from ghostpay.x402.seller import SellerSettings, X402Paywall, X402Seller, paid_call
from tests.localnet.conftest import LocalnetProcess
from tests.sdk.conftest import create_mint, fund, mint_to
from tests.x402.official_stack import official_facilitator_app

GHOST = str(Path(sys.executable).with_name("ghost"))
PRICE = Decimal("0.01")  # 10,000 atomic units of a 6-decimal mint
PRICE_ATOMIC = 10_000


@pytest.fixture(scope="session")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalnetProcess]:
    node = LocalnetProcess(tmp_path_factory.mktemp("x402-localnet") / "ledger").start()
    yield node
    node.stop()


def keypair_file(folder: Path, keypair: Keypair) -> Path:
    path = folder / f"{keypair.pubkey()}.json"
    path.write_text(json.dumps(list(bytes(keypair))))
    return path


def token_balance(net: LocalnetProcess, owner: Pubkey, mint: Pubkey) -> int:
    answer = net.rpc("getTokenAccountBalance", str(get_associated_token_address(owner, mint)))
    return int(answer["result"]["value"]["amount"]) if "result" in answer else 0


def sol_balance(net: LocalnetProcess, key: Pubkey) -> int:
    return int(net.rpc("getBalance", str(key))["result"]["value"])


class Process:
    """A `ghost` command serving in the background; `start` returns once it printed its JSON announce line.
    Its stderr is read as it comes (`log`), so a chatty process never blocks on a full pipe."""

    def __init__(self, *args: str, home: Path) -> None:
        self.args = [GHOST, "--output", "json", *args]
        self.env = {**os.environ, "GHOSTPAY_HOME": str(home)}
        self.proc: subprocess.Popen[str] | None = None
        self.announce: dict[str, Any] = {}
        self._stderr: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30) -> Process:
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._stderr = []
        self._reader = threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True)
        self._reader.start()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"{self.args[3:5]} did not start: {self.stop()}")
        self.announce = json.loads(line)
        return self

    def _read_stderr(self, proc: subprocess.Popen[str]) -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            self._stderr.append(line)

    @property
    def log(self) -> str:
        """What it wrote to stderr so far."""
        return "".join(self._stderr)

    def stop(self) -> str:
        """SIGTERM, wait; returns stderr."""
        assert self.proc is not None and self._reader is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        return self.log

    @property
    def url(self) -> str:
        return self.announce["url"]


def facilitator_process(
    net: LocalnetProcess,
    folder: Path,
    fee_payer: Keypair,
    *extra: str,
    assets: tuple[str, ...] = ("any",),
    port: int | None = None,
    db: str | None = None,
) -> Process:
    """`ghost facilitator start` on the localnet; it settles any mint unless `assets` says otherwise (the
    tests make their mints with the cheat code, not `ghost test-mint`; `()`: the default allow-list). Its
    database: `db` (a PostgreSQL URL), else facilitator.db in `folder`; its port: `port`, else a free one."""
    port = port or free_port_pair()[0]
    return Process(
        "-u",
        net.http_url,
        "-k",
        str(keypair_file(folder, fee_payer)),
        "facilitator",
        "start",
        "--port",
        str(port),
        "--db",
        db or str(folder / "facilitator.db"),
        *(arg for mint in assets for arg in ("--asset", mint)),
        *extra,
        home=folder,
    )


@pytest.fixture(scope="session")
def fee_payer(net: LocalnetProcess) -> Keypair:
    return fund(net, sol=100)


@pytest.fixture(scope="session")
def facilitator(
    net: LocalnetProcess, fee_payer: Keypair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    proc = facilitator_process(net, tmp_path_factory.mktemp("facilitator"), fee_payer).start()
    yield proc
    proc.stop()


class ServerThread:
    """An ASGI app served by uvicorn on a free port, in a thread with its own event loop."""

    def __init__(self, app: Any) -> None:
        self.port = free_port_pair()[0]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", ws="none", lifespan="on")
        )
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class Agent:
    """A registered agent priced at PRICE in `mint`, with its owner's client and keypair."""

    address: Pubkey
    owner: Keypair
    mint: Pubkey
    net: LocalnetProcess

    def client(self) -> GhostPayClient:
        return GhostPayClient(self.net.http_url, self.owner, ws_url=self.net.ws_url)

    def run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            async with self.client() as gp:
                return await getattr(gp, method)(self.address, *args, **kwargs)

        return asyncio.run(call())


def register_agent(
    net: LocalnetProcess, agent_id: str, mint: Pubkey | None = None, *, payee_account: bool = True
) -> Agent:
    owner = fund(net)
    mint = mint or create_mint(net)

    async def register() -> Pubkey:
        async with GhostPayClient(net.http_url, owner, ws_url=net.ws_url) as gp:
            return (
                await gp.register_agent(
                    agent_id,
                    agent_id.title(),
                    capabilities=["test"],
                    x402=X402Settings({mint: PRICE}, f"http://127.0.0.1/{agent_id}"),
                )
            ).address

    address = asyncio.run(register())
    if payee_account:
        mint_to(net, owner.pubkey(), mint, 0)  # the payee's token account, empty
    return Agent(address, owner, mint, net)


def buyer(net: LocalnetProcess, mint: Pubkey, atomic: int = 1_000_000) -> Keypair:
    keypair = fund(net)
    mint_to(net, keypair.pubkey(), mint, atomic)
    return keypair


def official_client(net: LocalnetProcess, keypair: Keypair) -> x402Client:
    """The official x402 client, unchanged: its exact-SVM scheme on the localnet's RPC, any mint allowed."""
    client = x402Client()
    register_exact_svm_client(client, KeypairSigner(keypair), rpc_url=net.http_url)
    client.set_spend_controls({"allowed_assets": True})
    return client


def official_http(net: LocalnetProcess, keypair: Keypair) -> x402HttpxClient:
    return x402HttpxClient(official_client(net, keypair), timeout=30)


class Upstream:
    """A plain HTTP service to sell: it counts its calls and shows what it received. GET /slow answers only
    once `release` is set (and sets `reached` when a request gets there)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.reached, self.release = threading.Event(), threading.Event()

        async def echo(request: Request) -> JSONResponse:
            body = await request.body()
            self.calls.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
            return JSONResponse(
                {"echo": body.decode(), "payer": request.headers.get("x-ghostpay-payer")},
                status_code=int(request.query_params.get("status", 200)),
            )

        async def stream(request: Request) -> StreamingResponse:
            self.calls.append({"path": request.url.path, "headers": dict(request.headers), "body": b""})

            async def chunks() -> Any:
                for i in range(5):
                    yield f"chunk {i}\n".encode()
                    await asyncio.sleep(0.01)

            return StreamingResponse(chunks(), media_type="text/plain")

        async def slow(request: Request) -> JSONResponse:
            self.calls.append({"path": request.url.path, "headers": dict(request.headers), "body": b""})
            self.reached.set()
            await asyncio.to_thread(self.release.wait, 60)
            return JSONResponse({"slow": True})

        async def cookie(request: Request) -> JSONResponse:
            answer = JSONResponse({"set": True})
            answer.set_cookie("session", "first-buyer")
            return answer

        self.app = Starlette(
            routes=[
                Route("/translate", echo, methods=["POST", "GET"]),
                Route("/free", echo, methods=["GET"]),
                Route("/cookie", cookie, methods=["GET"]),
                Route("/stream", stream, methods=["GET"]),
                Route("/slow", slow, methods=["GET"]),
            ]
        )


def proxy_process(
    net: Any, agent: Agent, upstream_url: str, facilitator_url: str, folder: Path, *extra: str
) -> Process:
    return Process(
        "-u",
        net.http_url,
        "-k",
        str(keypair_file(folder, agent.owner)),
        "x402",
        "proxy",
        "--agent",
        str(agent.address),
        "--upstream",
        upstream_url,
        "--facilitator",
        facilitator_url,
        "--port",
        str(free_port_pair()[0]),
        *extra,
        home=folder,
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, ServerThread]]:
    service = Upstream()
    with ServerThread(service.app) as server:
        yield service, server


@pytest.fixture(scope="module")
def agent(net: LocalnetProcess, request: pytest.FixtureRequest) -> Agent:
    """The module's agent, registered as its AGENT_ID."""
    return register_agent(net, request.module.AGENT_ID)


@pytest.fixture(scope="module")
def proxy(
    net: LocalnetProcess,
    agent: Agent,
    upstream: tuple[Upstream, ServerThread],
    facilitator: Process,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Process]:
    """`ghost x402 proxy` selling `upstream` at `agent`'s price, with the module's PROXY_ARGS (its routes...)."""
    proc = proxy_process(
        net, agent, upstream[1].url, facilitator.url, tmp_path_factory.mktemp("proxy"), *request.module.PROXY_ARGS
    ).start()
    yield proc
    proc.stop()


class Shop:
    """A seller app: GET /paid is priced, GET /free is not, GET /fails answers 500 (and is priced)."""

    def __init__(self, agent: Agent, facilitator: Any, **settings: Any) -> None:
        self.handled: list[Any] = []

        async def paid(request: Request) -> JSONResponse:
            call = paid_call(request)
            self.handled.append(call)
            return JSONResponse(
                {
                    "payer": str(call.payer),
                    "amount": call.amount,
                    "mint": str(call.mint),
                    "verified": call.verified_on_chain,
                }
            )

        async def free(request: Request) -> PlainTextResponse:
            return PlainTextResponse("free")

        async def fails(request: Request) -> PlainTextResponse:
            self.handled.append(paid_call(request))
            return PlainTextResponse("broken", status_code=500)

        app = Starlette(routes=[Route("/paid", paid), Route("/free", free), Route("/fails", fails)])
        self.seller = X402Seller(
            SellerSettings(
                agent.address,
                agent.net.http_url,
                facilitator,
                routes=("GET /paid", "GET /fails"),
                ws_url=agent.net.ws_url,
                **settings,
            )
        )
        app.add_middleware(X402Paywall, seller=self.seller)
        self.server = ServerThread(app)

    def __enter__(self) -> Shop:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__()

    @property
    def url(self) -> str:
        return self.server.url


def pay(net: Any, keypair: Any, url: str) -> httpx.Response:
    async def call() -> httpx.Response:
        async with official_http(net, keypair) as client:
            return await client.get(url)

    return asyncio.run(call())


# the buyer's tests: an official facilitator served over HTTP, a seller wallet, a funded buyer ------------


@pytest.fixture(scope="session")
def official_facilitator(net: LocalnetProcess) -> Iterator[ServerThread]:
    """The package's facilitator logic behind HTTP, its fee payer funded on the localnet."""
    with ServerThread(official_facilitator_app(fund(net), net.http_url)) as served:
        yield served


@dataclass
class Seller:
    """A wallet that sells: its token account for `mint` exists (the official client never creates it)."""

    wallet: Pubkey
    mint: Pubkey


def new_seller(net: LocalnetProcess, mint: Pubkey) -> Seller:
    wallet = fund(net, sol=1).pubkey()
    mint_to(net, wallet, mint, 0)
    return Seller(wallet, mint)


@pytest.fixture
def mint(net: LocalnetProcess) -> Pubkey:
    return create_mint(net, 6)


@pytest.fixture
def seller(net: LocalnetProcess, mint: Pubkey) -> Seller:
    return new_seller(net, mint)


@pytest.fixture
def buyer_keypair(net: LocalnetProcess, mint: Pubkey) -> Keypair:
    """A buyer holding 1 token of `mint`."""
    return buyer(net, mint)


@pytest.fixture
async def gp_buyer(net: LocalnetProcess, buyer_keypair: Keypair) -> AsyncIterator[GhostPayClient]:
    async with GhostPayClient(net.http_url, buyer_keypair, ws_url=net.ws_url) as gp:
        yield gp


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "spending.sqlite3"


def guarded(path: Path, **limits: Any) -> GuardedWallet:
    return GuardedWallet(SpendingGuards(**limits), path)


# the Bazaar (tests/x402/test_bazaar*.py) ---------------------------------------------------------

REFRESH_SECONDS = "0.2"
FOLLOW_DEADLINE_SECONDS = 60  # how long a change may take to show (a bound for a hung test, not a timing claim)


@pytest.fixture(scope="module")
def bazaar_facilitator(net: LocalnetProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = facilitator_process(
        net, tmp_path_factory.mktemp("bazaar"), fund(net, sol=10), "--discovery-refresh", REFRESH_SECONDS
    ).start()
    yield proc
    proc.stop()


@pytest.fixture
def bazaar(bazaar_facilitator: Process) -> Iterator[BazaarExtendedClient]:
    client = with_bazaar(HTTPFacilitatorClientSync(FacilitatorConfig(url=bazaar_facilitator.url)))  # type: ignore[arg-type]
    yield client
    client.close()


def register(
    net: LocalnetProcess, agent_id: str, prices: dict[Pubkey, Decimal], capabilities: list[str], description: str = ""
) -> tuple[Pubkey, Keypair]:
    owner = fund(net)

    async def go() -> Pubkey:
        async with GhostPayClient(net.http_url, owner, ws_url=net.ws_url) as gp:
            reg = await gp.register_agent(
                agent_id,
                agent_id.title(),
                description=description,
                capabilities=capabilities,
                x402=X402Settings(prices, f"https://{agent_id}.example/api"),
            )
            return reg.address

    address = asyncio.run(go())
    for mint in prices:
        mint_to(net, owner.pubkey(), mint, 0)  # the payee's token account
    return address, owner


def sdk(net: LocalnetProcess, keypair: Keypair, method: str, *args: Any, **kwargs: Any) -> Any:
    async def go() -> Any:
        async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
            return await getattr(gp, method)(*args, **kwargs)

    return asyncio.run(go())


def by_agent(resources: list[DiscoveryResource]) -> dict[str, DiscoveryResource]:
    return {r.extensions["ghostpay"]["agent"]: r for r in resources if r.extensions}


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + FOLLOW_DEADLINE_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def market(net: LocalnetProcess) -> dict[str, Any]:
    """Two agents sharing a capability unique to this run: a translator in two mints (paid twice, by two
    buyers) and a cheaper summarizer in one, never paid."""
    tag = f"bz{secrets.token_hex(4)}"
    usdc, eurc = create_mint(net, 6), create_mint(net, 2)
    translator, _ = register(
        net, f"{tag}-translator", {usdc: Decimal("0.05"), eurc: Decimal("0.04")}, [tag, "translate"], "Fast Spanish"
    )
    summarizer, _ = register(net, f"{tag}-summarizer", {usdc: Decimal("0.01")}, [tag, "summarize"])
    for _ in range(2):
        payer = buyer(net, usdc)
        sdk(net, payer, "pay_agent", translator, mint=usdc)
    return {"tag": tag, "usdc": usdc, "eurc": eurc, "translator": translator, "summarizer": summarizer}
