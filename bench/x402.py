"""Paid x402 calls on a localnet: GhostPay's proxy and facilitator next to the official stack alone.

    python -m bench.x402        # print the table, write bench/results/x402.json   (make bench-x402)

Every server is its own process, on one throwaway localnet, in the same run:
- the upstream: a plain HTTP service (uvicorn + Starlette) answering GET /translate;
- GhostPay: `ghost x402 proxy` in front of it, priced from an agent's account, settling through
  `ghost facilitator start`;
- the official stack: the package's FastAPI middleware and its facilitator logic in-process
  (`x402Facilitator` + `FacilitatorKeypairSigner`), answering the same route at the same price.

Rows: unpaid calls to the upstream and to a free route through the proxy; paid calls through the
official stack and through the proxy with the official client unchanged; paid calls through the
proxy with `record_x402_payment` after the Memo (a GhostPay buyer's transaction: a verified,
reputation-bearing payment, the buyer's one-time PayerStats rent fronted by the facilitator); each at
concurrency 1 and 8 (one buyer per worker). A paid call is the whole exchange a buyer sees: the 402, building and
signing the payment (with a `getLatestBlockhash`), the paid retry, verify, the upstream, settle and
confirmation. Beside the bench-only recording buyer, the product's buyer (`ghostpay.x402.x402_http` on a
`GhostPayClient`, spending guards and their ledger on) pays the same proxy. The cold rows time what a user
waits from typing the command: `ghost x402 proxy` started (the facilitator running) until the first paid call
through it is answered, and `ghost facilitator start` then `ghost x402 proxy` (each started once the one before
announced it listens) until that call is answered: process start, imports and start-up included (median of 3).

The checks each side runs on a paid call (every one on, in both stacks):
- official stack: verify = the exact scheme's checks + a simulation; settle = the checks again + a
  simulation, its 120 s in-memory duplicate check, send, confirmation by polling;
- GhostPay: every request to the facilitator signed by the proxy with its seller key (HMAC over the body,
  checked with its age and nonce); verify = the fee-payer guard, the fee and compute-unit caps, the asset
  allow-list and minimum, the key's quotas (and rent cap on the recorded rows), the settled-payment log,
  the per-payer rate limit, the SOL floor, the exact scheme's checks (and the record instruction's, on the
  recorded rows) + a simulation; settle = the log, the guards, the checks again, the floor's reservation,
  the log row with the signature written before the send, the send with its preflight (the node's simulation against the
  current state, atomic with the send: verify's simulation is not reused; only a resend of a payment left pending
  is simulated first, with `simulateTransaction`, then sent without preflight), confirmation by `signatureSubscribe`,
  the row marked landed, then settled once the answer is handed over.

GHOSTPAY_BENCH_X402_KEYLESS=1 runs GhostPay's side without a seller key (the facilitator serving its loopback
clients as their operator: no authentication, quotas or rent cap), writing bench/results/x402_keyless.json.
GHOSTPAY_BENCH_X402_CALLS (default 200) sets the calls per row, measured in 5 rounds that interleave
the rows (a load spike elsewhere on the machine then hits every row alike).

Each row also gives the CPU time per call (from /proc on Linux) of the servers of its stack (the proxy,
the facilitator and the upstream; or the official stack's one process), of the localnet, and of the
buyers (this process): on a shared or small machine, calls/s at concurrency 8 is bounded by the CPU
every process spends on a call, and these columns say where it goes, whatever the load.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from x402.mechanisms.svm.constants import DEFAULT_COMPUTE_UNIT_LIMIT

from bench import x402_buyer
from bench.report import report, size
from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.localnet.process import LocalnetProcess, free_port_pair
from ghostpay.x402.record import RECORD_COMPUTE_UNITS

GHOST = str(Path(sys.executable).with_name("ghost"))
CALLS = int(os.environ.get("GHOSTPAY_BENCH_X402_CALLS", size(200, 2)))
KEYLESS = os.environ.get("GHOSTPAY_BENCH_X402_KEYLESS") == "1"  # no seller key: results in x402_keyless.json
ROUNDS = size(5, 1)
CONCURRENCY = (1, 8)
PRICE = Decimal("0.01")
COLD_RUNS = size(3, 1)
COLD_PROXY = "paid, cold: `ghost x402 proxy` started → first paid call answered (facilitator running)"
COLD_BOTH = "paid, cold: `ghost facilitator start`, then `ghost x402 proxy` → first paid call answered"
# What each stack simulates per paid call (read from the package and ghostpay/x402/facilitator/scheme.py, settle.py).
OFFICIAL_SIMULATIONS = "2: verify's, settle's (simulateTransaction each), then sent without preflight"
SIMULATIONS = (
    "2, none reused: verify's simulateTransaction; settle re-runs the checks and sends with preflight on "
    "(the node's simulation on the current state, atomic with the send)"
)
SOL = 1_000_000_000


@dataclass
class Row:
    scenario: str
    concurrency: int
    calls: int
    p50_ms: float
    p99_ms: float
    calls_per_s: float
    p50_vs_official: float | None = None
    server_cpu_ms: float | None = None  # per call, the servers of the scenario's stack together
    localnet_cpu_ms: float | None = None
    client_cpu_ms: float | None = None
    simulations: str | None = None  # per paid call, and whether settle reuses verify's


# servers run as `python -m bench.x402 SERVE ...` ---------------------------------------------------------


def serve_upstream(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def translate(request: Request) -> JSONResponse:
        return JSONResponse({"text": "hola"})

    app = Starlette(routes=[Route("/translate", translate), Route("/free", translate)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, ws="none")


def serve_official(port: int, rpc_url: str, keypair_file: str, mint: str, pay_to: str, amount: str) -> None:
    """The official stack: FastAPI, the package's payment middleware, its facilitator logic in-process."""
    import uvicorn
    from fastapi import FastAPI
    from x402 import x402Facilitator, x402ResourceServer
    from x402.http import PaymentOption, RouteConfig
    from x402.http.middleware.fastapi import payment_middleware
    from x402.mechanisms.svm.exact.register import register_exact_svm_facilitator, register_exact_svm_server
    from x402.mechanisms.svm.signers import FacilitatorKeypairSigner
    from x402.schemas import AssetAmount

    from ghostpay.keypairs import load_keypair
    from ghostpay.x402.networks import DEVNET

    facilitator = register_exact_svm_facilitator(
        x402Facilitator(), FacilitatorKeypairSigner(load_keypair(keypair_file), rpc_url), [DEVNET.caip2]
    )
    server = register_exact_svm_server(x402ResourceServer(facilitator), [DEVNET.caip2])
    routes = {
        "GET /translate": RouteConfig(
            accepts=PaymentOption(
                scheme="exact", pay_to=pay_to, price=AssetAmount(amount=amount, asset=mint), network=DEVNET.caip2
            )
        )
    }
    app = FastAPI()
    middleware = payment_middleware(routes, server)

    @app.middleware("http")
    async def x402(request: Any, call_next: Any) -> Any:
        return await middleware(request, call_next)

    @app.get("/translate")
    async def translate() -> dict[str, str]:
        return {"text": "hola"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, ws="none")


# the run ---------------------------------------------------------------------------------------------------


class Chain:
    """The localnet and its cheat codes."""

    def __init__(self, folder: Path) -> None:
        self.node = LocalnetProcess(folder / "ledger", home=folder / "home").start()

    def call(self, method: str, *params: Any) -> Any:
        answer = httpx.post(
            self.node.http_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=30
        ).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def funded(self, sol: int = 10) -> Keypair:
        keypair = Keypair()
        self.call("surfnet_setAccount", str(keypair.pubkey()), {"lamports": sol * SOL})
        return keypair

    def tokens(self, owner: Pubkey, mint: Pubkey, atomic: int) -> None:
        self.call("surfnet_setTokenAccount", str(owner), str(mint), {"amount": atomic})


def keypair_file(folder: Path, keypair: Keypair) -> str:
    path = folder / f"{keypair.pubkey()}.json"
    path.write_text(json.dumps(list(bytes(keypair))))
    return str(path)


def wait_http(url: str, proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited: {proc.stderr.read() if proc.stderr else ''}")  # args: a list
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def ghost(folder: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A `ghost` server in the background, once it printed its JSON announce line."""
    proc = subprocess.Popen(
        [GHOST, "--output", "json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GHOSTPAY_HOME": str(folder), **(env or {})},
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        raise RuntimeError(f"ghost {' '.join(args[:6])}: {proc.stderr.read() if proc.stderr else ''}")
    return proc, json.loads(line)


def official_client(rpc_url: str, keypair: Keypair) -> Any:
    from x402 import x402Client
    from x402.http.clients import x402HttpxClient
    from x402.mechanisms.svm.exact.register import register_exact_svm_client
    from x402.mechanisms.svm.signers import KeypairSigner

    client = x402Client()
    register_exact_svm_client(client, KeypairSigner(keypair), rpc_url=rpc_url)
    client.set_spend_controls({"allowed_assets": True})
    return x402HttpxClient(client, timeout=60)


class RecordingBuyer:
    """A GhostPay buyer's paid call: the official layout plus `record_x402_payment` after the Memo,
    built with the SDK's builder from the 402's `extra.ghostpay` hints."""

    def __init__(self, rpc_url: str, keypair: Keypair) -> None:
        self.rpc_url = rpc_url
        self.keypair = keypair
        self.http = httpx.AsyncClient(timeout=60)

    async def get(self, url: str) -> httpx.Response:
        from x402.http.utils import decode_payment_required_header, encode_payment_signature_header
        from x402.schemas import PaymentPayload, PaymentRequired, ResourceInfo

        from ghostpay.payments import build_x402_payment

        required = decode_payment_required_header((await self.http.get(url)).headers["payment-required"])
        assert isinstance(required, PaymentRequired)  # the proxy's header is v2
        accept = required.accepts[0]
        hints = accept.extra["ghostpay"]
        fee_payer = Pubkey.from_string(accept.extra["feePayer"])
        instructions = build_x402_payment(
            self.keypair.pubkey(),
            Pubkey.from_string(hints["agent"]),
            Pubkey.from_string(accept.pay_to),
            Pubkey.from_string(accept.asset),
            6,
            int(accept.amount),
            os.urandom(32),
            fee_payer=fee_payer,
            rent_payer=Pubkey.from_string(hints["rentPayer"]),
            memo=os.urandom(16).hex(),
            compute_unit_limit=DEFAULT_COMPUTE_UNIT_LIMIT + RECORD_COMPUTE_UNITS,
            compute_unit_price=1,
        )
        blockhash = (
            await self.http.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getLatestBlockhash"})
        ).json()
        message = MessageV0.try_compile(
            fee_payer, instructions, [], Hash.from_string(blockhash["result"]["value"]["blockhash"])
        )
        tx = VersionedTransaction.populate(
            message, [Signature.default(), self.keypair.sign_message(bytes([0x80]) + bytes(message))]
        )
        payload = PaymentPayload(
            x402_version=2,
            payload={"transaction": base64.b64encode(bytes(tx)).decode()},
            accepted=accept,
            resource=ResourceInfo(url=url),
        )
        return await self.http.get(url, headers={"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)})

    async def aclose(self) -> None:
        await self.http.aclose()


class ProductBuyer:
    """The product's buyer as a user runs it: `ghostpay.x402.x402_http` on a `GhostPayClient`, its spending guards
    on (a per-call cap, a daily budget) with their ledger (a SQLite file per buyer), paying with
    `record_x402_payment` when the 402 offers GhostPay's extension, as the proxy's does."""

    def __init__(self, rpc_url: str, ws_url: str, keypair: Keypair, ledger: Path) -> None:
        from ghostpay.spending import GuardedWallet, SpendingGuards

        self.gp = GhostPayClient(rpc_url, keypair, ws_url=ws_url)
        self.guards = GuardedWallet(SpendingGuards(per_call=PRICE * 2, daily=PRICE * 10**6), ledger)
        self.http: Any = None

    async def get(self, url: str) -> httpx.Response:
        from ghostpay.x402 import x402_http
        from ghostpay.x402.buyer import payment_record

        if self.http is None:
            await self.gp.__aenter__()
            self.http = await x402_http(self.gp, guards=self.guards).__aenter__()
        answer: httpx.Response = await self.http.get(url)
        paid = payment_record(answer)
        if answer.status_code == 200 and (paid is None or not paid.settled):
            raise RuntimeError(f"{url}: served without a settled payment: {paid}")
        return answer

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.__aexit__(None, None, None)
            await self.gp.__aexit__(None, None, None)


Client = Callable[[int], Any]  # worker index -> an object with async get(url) and aclose()
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads) so far; None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU seconds of the scenario's servers, of the localnet and of this process (the buyers)."""

    servers: list[int]
    localnet: int

    def read(self) -> tuple[float | None, float | None, float]:
        servers = [cpu_seconds(pid) for pid in self.servers]
        return (
            None if None in servers else sum(s for s in servers if s is not None),
            cpu_seconds(self.localnet),
            time.process_time(),
        )


async def measure(
    url: str, make_client: Client, concurrency: int, calls: int, meter: CpuMeter
) -> tuple[list[float], float, list[float | None]]:
    """Latencies (ms) of `calls` GETs of `url` by `concurrency` workers, each with its own client; wall
    seconds; CPU seconds of the servers, the localnet and the buyers in that time (warm-up excluded)."""
    clients = [make_client(i) for i in range(concurrency)]
    latencies: list[float] = []
    remaining = calls

    async def worker(client: Any) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            answer = await client.get(url)
            if answer.status_code != 200:
                raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:300]}")
            latencies.append((time.perf_counter() - started) * 1000)

    try:
        for client in clients:  # warm-up: one call each, not counted
            await client.get(url)
        before = meter.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        wall = time.perf_counter() - started
        spent = [None if b is None or a is None else a - b for b, a in zip(before, meter.read(), strict=True)]
        return latencies, wall, spent
    finally:
        for client in clients:
            await client.aclose()


def row(scenario: str, concurrency: int, latencies: list[float], wall: float, cpu: list[float | None]) -> Row:
    ordered = sorted(latencies)
    per_call = [None if seconds is None else round(seconds * 1000 / len(ordered), 2) for seconds in cpu]
    return Row(
        scenario,
        concurrency,
        len(ordered),
        round(statistics.median(ordered), 1),
        round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        round(len(ordered) / wall, 1),
        server_cpu_ms=per_call[0],
        localnet_cpu_ms=per_call[1],
        client_cpu_ms=per_call[2],
    )


async def cold_call(
    folder: Path, rpc_url: str, starts: list[tuple[list[str], dict[str, str]]], buyer: Keypair, warm_on: str
) -> float:
    """Milliseconds from starting `ghost` servers as a user does (each `ghost ARGS` in turn, the next once the
    one before announced it listens; a "{facilitator}" argument is the URL of the facilitator started before)
    to the first paid call's answer through the last (the proxy); the buyer's client warmed on another server."""
    async with official_client(rpc_url, buyer) as client:
        await client.get(warm_on)
        procs: list[subprocess.Popen[str]] = []
        try:
            started = time.perf_counter()
            announce: dict[str, Any] = {}
            for args, env in starts:
                proc, announce = ghost(
                    folder, *(a.replace("{facilitator}", announce.get("url", "")) for a in args), env=env
                )
                procs.append(proc)
            answer = await client.get(f"{announce['url']}/translate")
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise RuntimeError(answer.text)
            return elapsed
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=15)


def seller_key(folder: Path, db: Path) -> dict[str, str]:
    """The environment of a proxy holding a new seller key of the facilitator database `db` (quotas that a
    benchmark does not reach, rent fronted)."""
    if KEYLESS:
        return {}
    added = subprocess.run(
        [
            GHOST,
            "--output",
            "json",
            "facilitator",
            "keys",
            "add",
            "bench",
            "--front-rent",
            "--max-rent-outstanding",
            "1000",
            "--settles-per-minute",
            "1000000",
            "--fee-lamports-per-day",
            str(10**15),
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GHOSTPAY_HOME": str(folder)},
    )
    return {"GHOSTPAY_FACILITATOR_KEY": json.loads(added.stdout)["key"]}


def main() -> None:
    console = Console(stderr=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-x402-"))
    chain = Chain(folder)
    rpc = chain.node.http_url
    procs: list[subprocess.Popen[Any]] = []
    try:
        mint = Pubkey.from_string(chain.call("surfnet_createMint", {"decimals": 6})["value"])
        owner = chain.funded()

        async def register() -> Pubkey:
            async with GhostPayClient(rpc, owner, ws_url=chain.node.ws_url) as gp:
                registered = await gp.register_agent(
                    "bench",
                    "Bench",
                    capabilities=["translate"],
                    x402=X402Settings({mint: PRICE}, "http://127.0.0.1/translate"),
                )
                assert registered.address is not None  # the agent it created
                return registered.address

        agent = asyncio.run(register())
        chain.tokens(owner.pubkey(), mint, 0)
        buyers = [chain.funded() for _ in range(max(CONCURRENCY))]
        for b in buyers:
            chain.tokens(b.pubkey(), mint, 10**12)
        upstream_port, official_port = free_port_pair()[0], free_port_pair()[0]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.x402", "upstream", str(upstream_port)], stderr=subprocess.PIPE, text=True
            )
        )
        upstream = f"http://127.0.0.1:{upstream_port}"
        official_fee_payer = keypair_file(folder, chain.funded(100))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.x402",
                    "official",
                    str(official_port),
                    rpc,
                    official_fee_payer,
                    str(mint),
                    str(owner.pubkey()),
                    "10000",
                ],
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        official = f"http://127.0.0.1:{official_port}"
        # A seller key: the facilitator then authenticates every verify and settle (the proxy signs each with an
        # HMAC) and runs the key's quotas and rent cap, as a facilitator serving other sellers must
        # (GHOSTPAY_BENCH_X402_KEYLESS=1: none, the facilitator serves its loopback clients as their operator).
        key_env = seller_key(folder, folder / "f.db")
        fee_payer_file = keypair_file(folder, chain.funded(1000))

        def facilitator_args(db: Path) -> list[str]:
            return [
                *("-u", rpc, "-k", fee_payer_file, "facilitator", "start", "--port", str(free_port_pair()[0])),
                *("--db", str(db), "--rate-limit", "1000000", "--sweep-interval", "0", "--asset", str(mint)),
            ]

        facilitator, fac = ghost(folder, *facilitator_args(folder / "f.db"))
        procs.append(facilitator)
        proxy_args = [
            "-u",
            rpc,
            "-k",
            keypair_file(folder, owner),
            "x402",
            "proxy",
            "--agent",
            str(agent),
            "--upstream",
            upstream,
            "--facilitator",
            "{facilitator}",
            "--route",
            "GET /translate",
        ]

        def proxy_on(facilitator_url: str) -> list[str]:
            port = str(free_port_pair()[0])
            return [*(a.replace("{facilitator}", facilitator_url) for a in proxy_args), "--port", port]

        proxy, prx = ghost(folder, *proxy_on(fac["url"]), env=key_env)
        procs.append(proxy)
        wait_http(f"{upstream}/free", procs[0])
        wait_http(f"{official}/translate", procs[1])

        assert chain.node.proc is not None
        ghostpay_stack = [proxy.pid, facilitator.pid, procs[0].pid]
        scenarios: list[tuple[str, str, Client, CpuMeter]] = [
            (
                "unpaid: upstream direct",
                f"{upstream}/translate",
                lambda i: httpx.AsyncClient(timeout=60),
                CpuMeter([procs[0].pid], chain.node.proc.pid),
            ),
            (
                "unpaid: free route through the proxy",
                f"{prx['url']}/free",
                lambda i: httpx.AsyncClient(timeout=60),
                CpuMeter([proxy.pid, procs[0].pid], chain.node.proc.pid),
            ),
            (
                "paid: official stack (middleware + facilitator logic)",
                f"{official}/translate",
                lambda i: official_client(rpc, buyers[i]),
                CpuMeter([procs[1].pid], chain.node.proc.pid),
            ),
            (
                "paid: GhostPay proxy + facilitator, official client",
                f"{prx['url']}/translate",
                lambda i: official_client(rpc, buyers[i]),
                CpuMeter(ghostpay_stack, chain.node.proc.pid),
            ),
            (
                "paid: GhostPay proxy + facilitator, recorded payment (bench-only buyer)",
                f"{prx['url']}/translate",
                lambda i: RecordingBuyer(rpc, buyers[i]),
                CpuMeter(ghostpay_stack, chain.node.proc.pid),
            ),
            (
                "paid: GhostPay proxy + facilitator, product buyer (x402_http, guards + ledger on, recorded)",
                f"{prx['url']}/translate",
                lambda i: ProductBuyer(rpc, chain.node.ws_url, buyers[i], folder / f"buyer-ledger-{i}.sqlite3"),
                CpuMeter(ghostpay_stack, chain.node.proc.pid),
            ),
        ]
        # Rounds interleave the scenarios, so a load spike from elsewhere on the machine hits them all alike.
        samples: dict[tuple[str, int], tuple[list[float], float, list[float | None]]] = {}
        for round_ in range(ROUNDS):
            console.print(
                f"round {round_ + 1}/{ROUNDS}: {len(scenarios) * len(CONCURRENCY)} rows of {CALLS // ROUNDS} calls…"
            )
            for name, url, make, meter in scenarios:
                for concurrency in CONCURRENCY:
                    latencies, wall, cpu = asyncio.run(measure(url, make, concurrency, CALLS // ROUNDS, meter))
                    sofar = samples.get((name, concurrency), ([], 0.0, [0.0, 0.0, 0.0]))
                    samples[(name, concurrency)] = (
                        sofar[0] + latencies,
                        sofar[1] + wall,
                        [None if a is None or b is None else a + b for a, b in zip(sofar[2], cpu, strict=True)],
                    )
        rows = [row(name, concurrency, *sample) for (name, concurrency), sample in samples.items()]
        official_p50 = {r.concurrency: r.p50_ms for r in rows if r.scenario.startswith("paid: official")}
        for r in rows:
            if r.scenario.startswith("paid:"):
                r.p50_vs_official = round(r.p50_ms / official_p50[r.concurrency], 2)
                r.simulations = OFFICIAL_SIMULATIONS if r.scenario.startswith("paid: official") else SIMULATIONS
        colds: dict[str, list[float]] = {COLD_PROXY: [], COLD_BOTH: []}
        for run in range(COLD_RUNS):
            db = folder / f"cold-{run}.db"
            both = [(facilitator_args(db), {}), (proxy_on("{facilitator}"), seller_key(folder, db))]
            for name, starts in ((COLD_PROXY, [(proxy_on(fac["url"]), key_env)]), (COLD_BOTH, both)):
                colds[name].append(asyncio.run(cold_call(folder, rpc, starts, buyers[0], f"{official}/translate")))
        for name, times in colds.items():
            rows.append(
                Row(
                    name,
                    1,
                    len(times),
                    round(statistics.median(times), 1),
                    round(max(times), 1),
                    round(1000 / statistics.median(times), 2),
                    simulations=SIMULATIONS,
                )
            )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        chain.node.stop()

    table = Table(
        title=f"x402 paid calls on a localnet ({CALLS} calls a row, one buyer per worker)",
        caption=f"simulations per paid call: official stack {OFFICIAL_SIMULATIONS}; GhostPay {SIMULATIONS}. "
        "GhostPay also logs each settle before its send (see the module docstring)",
    )
    for column in (
        "scenario",
        "concurrency",
        "p50 ms",
        "p99 ms",
        "calls/s",
        "p50 ÷ official",
        "CPU ms/call: servers",
        "localnet",
        "buyers",
    ):
        table.add_column(column, justify="left" if column == "scenario" else "right")

    def cell(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    for r in rows:
        table.add_row(
            r.scenario,
            str(r.concurrency),
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.calls_per_s:.1f}",
            cell(r.p50_vs_official, 2),
            cell(r.server_cpu_ms, 2),
            cell(r.localnet_cpu_ms, 2),
            cell(r.client_cpu_ms, 2),
        )
    report(table, rows, "x402_keyless" if KEYLESS else "x402", console, width=180)
    # The buyer's side of a paid call, phase by phase: quote, sign, verify + settle (bench/x402_buyer.py).
    x402_buyer.main()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "upstream":
        serve_upstream(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "official":
        serve_official(int(sys.argv[2]), *sys.argv[3:8])
    else:
        main()
