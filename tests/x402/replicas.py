"""Facilitator replicas on one PostgreSQL, as a test and the scale-out benchmark run them: N `ghost facilitator
start --db postgresql://…` processes with one fee payer, M `ghost x402 proxy` processes each spreading its calls
over all of them (`--facilitator URL1,URL2,…`), and buyers paying with the official x402 client, each payment
retried as it was (the same PAYMENT-SIGNATURE) until it is served or `attempts` run out."""

from __future__ import annotations

import asyncio
import base64
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.transaction import VersionedTransaction
from x402.http.utils import decode_payment_required_header, encode_payment_signature_header

from ghostpay.localnet.process import free_port_pair
from ghostpay.x402.facilitator.settle import fee_lamports
from tests.localnet.conftest import LocalnetProcess
from tests.x402.conftest import Agent, Process, facilitator_process, official_client, proxy_process

PAID_ROUTE = "/translate"
RETRY_PAUSE_SECONDS = 0.2
STATUS_BATCH = 256  # signatures per getSignatureStatuses


def made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def facilitator_replica(net: LocalnetProcess, folder: Path, fee_payer: Keypair, db_url: str, port: int) -> Process:
    """`ghost facilitator start` on `db_url`, on a port of its own that a restart keeps (the proxies list it)."""
    return facilitator_process(
        net,
        made(folder),
        fee_payer,
        "--rate-limit",
        "1000000",  # per payer and process: the buyers here pay hundreds of times a minute
        "--sweep-interval",
        "0",
        "--discovery-refresh",
        "0",
        port=port,
        db=db_url,
    )


class Fleet:
    """The facilitators and proxies of one run; `chaos()` SIGKILLs and restarts facilitators, one at a time."""

    def __init__(
        self,
        net: LocalnetProcess,
        folder: Path,
        db_url: str,
        fee_payer: Keypair,
        agent: Agent,
        upstream: str,
        *,
        facilitators: int,
        proxies: int,
    ) -> None:
        self.facilitators = [
            facilitator_replica(net, folder / f"facilitator-{i}", fee_payer, db_url, free_port_pair()[0])
            for i in range(facilitators)
        ]
        self.urls = [f"http://127.0.0.1:{f.args[f.args.index('--port') + 1]}" for f in self.facilitators]
        self.proxies = [
            proxy_process(net, agent, upstream, ",".join(self.urls), made(folder / f"proxy-{i}"))
            for i in range(proxies)
        ]
        self.kills = 0
        self._stop = threading.Event()
        self._chaos: threading.Thread | None = None

    def __enter__(self) -> Fleet:
        for process in self.facilitators:
            process.start(timeout=60)
        for process in self.proxies:
            process.start(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._chaos is not None:
            self._chaos.join(timeout=120)
        for process in [*self.proxies, *self.facilitators]:
            process.stop()

    def chaos(self, seed: int, pause: tuple[float, float] = (0.3, 1.5)) -> None:
        """From now until the fleet stops: a random facilitator SIGKILLed every `pause` seconds (random) and
        started again at once (its port kept), the next kill only once it serves again."""
        rng = random.Random(seed)

        def run() -> None:
            while not self._stop.wait(rng.uniform(*pause)):
                victim = rng.choice(self.facilitators)
                assert victim.proc is not None
                victim.proc.kill()
                victim.proc.wait()
                self.kills += 1
                victim.stop()
                victim.start(timeout=60)

        self._chaos = threading.Thread(target=run, name="facilitator-chaos", daemon=True)
        self._chaos.start()

    def calm(self) -> None:
        """No more kills; returns once the last restart is done."""
        self._stop.set()
        if self._chaos is not None:
            self._chaos.join(timeout=120)


@dataclass
class Paid:
    """One paid call: its buyer, the fee payer's signature of its transaction (the transaction's id on chain), its
    fee, and how it ended (served with a 200, or the last refusal after every attempt)."""

    buyer: Keypair
    signature: str
    fee: int
    served: bool = False
    attempts: int = 0
    last: str = ""
    latency: float = 0.0
    reasons: list[str] = field(default_factory=list)


def fee_payer_signature(fee_payer: Keypair, header_payload: Any) -> tuple[str, int]:
    """The transaction's signature once the facilitator signs it (ed25519 signs deterministically), and its fee."""
    tx = VersionedTransaction.from_bytes(base64.b64decode(header_payload.payload["transaction"]))
    return str(fee_payer.sign_message(to_bytes_versioned(tx.message))), fee_lamports(tx.message)


async def pay_all(
    net: LocalnetProcess,
    proxies: list[str],
    fee_payer: Keypair,
    buyers: list[Keypair],
    calls: int,
    concurrency: int,
    attempts: int,
) -> list[Paid]:
    """`calls` paid calls spread over the buyers and the proxies, `concurrency` at a time; each payment sent again
    as it was after anything but a 200."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency * 2)) as http:
        required = decode_payment_required_header((await http.get(proxies[0] + PAID_ROUTE)).headers["payment-required"])
        clients = [official_client(net, keypair) for keypair in buyers]
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> Paid:
            async with gate:
                started = time.monotonic()
                owner = index % len(buyers)
                payload = await clients[owner].create_payment_payload(required)
                signature, fee = fee_payer_signature(fee_payer, payload)
                paid = Paid(buyers[owner], signature, fee)
                header = {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)}
                for attempt in range(attempts):
                    paid.attempts = attempt + 1
                    url = proxies[(index + attempt) % len(proxies)] + PAID_ROUTE
                    try:
                        answer = await http.get(url, headers=header)
                    except httpx.HTTPError as exc:
                        paid.last = f"http: {exc!r}"
                    else:
                        if answer.status_code == 200:
                            paid.served = True
                            break
                        paid.last = f"{answer.status_code} {answer.text[:200]}"
                    paid.reasons.append(paid.last[:80])
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
                paid.latency = time.monotonic() - started
                return paid

        return list(await asyncio.gather(*(one(i) for i in range(calls))))


def landed(net: LocalnetProcess, signatures: list[str]) -> dict[str, Any]:
    """The signatures found on chain, with their status."""
    found: dict[str, Any] = {}
    for start in range(0, len(signatures), STATUS_BATCH):
        batch = signatures[start : start + STATUS_BATCH]
        answer = net.rpc("getSignatureStatuses", batch, {"searchTransactionHistory": True})
        for signature, status in zip(batch, answer["result"]["value"], strict=True):
            if status is not None:
                found[signature] = status
    return found
