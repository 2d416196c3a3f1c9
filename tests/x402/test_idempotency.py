"""Payment identifiers (idempotent paid calls) through `ghost x402 proxy` and `ghost facilitator start` as
processes: a dropped answer retried and paid once, an identifier reused for another request refused, the
official client's own identifier helpers, and a payer who did not sign getting nothing from the cache."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import sqlite3
import threading
import time
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from x402.extensions.payment_identifier import (
    PAYMENT_IDENTIFIER,
    append_payment_identifier_to_extensions,
    declare_payment_identifier_extension,
    extract_payment_identifier,
)
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_required_header,
    encode_payment_response_header,
    encode_payment_signature_header,
)
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, SettleResponse

from ghostpay.client import GhostPayClient
from ghostpay.spending import GuardedWallet, SpendingGuards
from ghostpay.x402 import x402_http
from ghostpay.x402.buyer import payment_record
from ghostpay.x402.buyer.payer import RESENDS
from ghostpay.x402.idempotency import (
    REASON_IDENTIFIER_CONFLICT,
    REPLAY_HEADER,
    STATUS_NOT_KEPT,
    Answer,
    AnswerCache,
    IdempotencySettings,
)
from ghostpay.x402.networks import DEVNET
from ghostpay.x402.proxy import ProxySettings, create_proxy_app
from ghostpay.x402.seller import SellerSettings
from ghostpay.x402.sessions import SessionSettings
from tests.cli.conftest import ghost
from tests.x402.conftest import (
    PRICE_ATOMIC,
    Agent,
    Process,
    ServerThread,
    buyer,
    keypair_file,
    official_client,
    proxy_process,
    sol_balance,
    token_balance,
)
from tests.x402.test_proxy import settled_rows

FUNDED = 1_000_000  # what `buyer` gives each payer
AGENT_ID = "idempotent"
# `ghost x402 proxy` with its defaults: payment identifiers on, the cache in its `ghost path`
PROXY_ARGS = ("--route", "POST /translate", "--route", "GET /translate", "--route", "GET /slow")


class DroppingProxy:
    """TCP between buyer and seller. Armed (`armed` times), it closes the connection that carries a paid
    request (PAYMENT-SIGNATURE) as soon as the seller's answer starts — the seller starts it after its
    settle — so the buyer reads nothing of it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.armed = 0
        self.dropped = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        assert self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        paid = False

        async def to_seller() -> None:
            nonlocal paid
            while data := await reader.read(65536):
                paid = paid or b"payment-signature" in data.lower()
                up_writer.write(data)
                await up_writer.drain()

        async def to_buyer() -> None:
            while data := await up_reader.read(65536):
                if paid and self.armed:
                    self.armed -= 1
                    self.dropped += 1
                    writer.transport.abort()
                    up_writer.transport.abort()
                    return
                writer.write(data)
                await writer.drain()

        await asyncio.gather(to_seller(), to_buyer(), return_exceptions=True)
        writer.close()
        up_writer.close()


@pytest.fixture(scope="module")
def dropping(proxy: Process) -> DroppingProxy:
    return DroppingProxy(int(proxy.url.rsplit(":", 1)[1]))


def gp_call(net: Any, payer: Keypair, ledger: Path, url: str, body: bytes, key: str | None = None) -> httpx.Response:
    """One `x402_http` POST by `payer` under a daily budget kept in `ledger`."""

    async def call() -> httpx.Response:
        async with GhostPayClient(net.http_url, payer, ws_url=net.ws_url) as gp:
            guards = GuardedWallet(SpendingGuards(daily=Decimal("1")), ledger)
            async with x402_http(gp, guards=guards, max_price=Decimal("0.05"), idempotency_key=key) as http:
                return await http.post(url, content=body)

    return asyncio.run(call())


def ledger_rows(ledger: Path, payer: Keypair) -> list[tuple[str, int]]:
    """The payer's spend-ledger rows, oldest first: (state, amount)."""
    rows = GuardedWallet(None, ledger).ledger.entries(str(payer.pubkey()), limit=100)
    return [(row["state"], row["amount"]) for row in reversed(list(rows))]


def ledger_day(ledger: Path, payer: Keypair, agent: Agent) -> int:
    return GuardedWallet(None, ledger).ledger.usage(str(payer.pubkey()), str(agent.mint), 6).day


def upstream_calls(upstream: Any, payer: Keypair) -> list[bytes]:
    return [c["body"] for c in upstream[0].calls if c["headers"].get("x-ghostpay-payer") == str(payer.pubkey())]


def test_the_402_declares_payment_identifiers(proxy: Process) -> None:
    required = decode_payment_required_header(httpx.get(f"{proxy.url}/translate").headers["payment-required"])
    assert required.extensions == {PAYMENT_IDENTIFIER: declare_payment_identifier_extension()}


def test_a_dropped_answer_is_answered_again_and_paid_once(
    net: Any,
    agent: Agent,
    upstream: Any,
    facilitator: Process,
    fee_payer: Keypair,
    dropping: DroppingProxy,
    tmp_path: Path,
) -> None:
    """The connection drops after the settle, before the buyer reads the answer: the buyer sends the same
    payment again (same identifier), the proxy answers from its cache; one payment on chain, budget once."""
    payer = buyer(net, agent.mint)
    ledger = tmp_path / "spending.sqlite3"
    payee_before = token_balance(net, agent.owner.pubkey(), agent.mint)
    dropping.armed, dropping.dropped = 1, 0

    answer = gp_call(net, payer, ledger, f"{dropping.url}/translate", b"hello")

    assert dropping.dropped == 1
    record = payment_record(answer)
    assert record is not None and record.settled and record.signature
    assert answer.status_code == 200 and answer.json() == {"echo": "hello", "payer": str(payer.pubkey())}
    assert answer.headers[REPLAY_HEADER] == record.signature  # the cache answered the resent payment
    assert decode_payment_response_header(answer.headers["payment-response"]).transaction == record.signature
    assert record.idempotency_key and record.idempotency_key.startswith("pay_")
    assert token_balance(net, payer.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == payee_before + PRICE_ATOMIC
    assert settled_rows(facilitator, payer) == 1
    assert upstream_calls(upstream, payer) == [b"hello"]  # the upstream ran once
    assert ledger_rows(ledger, payer) == [("settled", PRICE_ATOMIC)]
    assert ledger_day(ledger, payer, agent) == PRICE_ATOMIC


def test_one_identifier_is_one_request(
    net: Any, proxy: Process, agent: Agent, upstream: Any, facilitator: Process, fee_payer: Keypair, tmp_path: Path
) -> None:
    """The same key again (a new run, a new transaction) for the same request is answered from the cache and
    not charged; for another body it is refused by name and nothing is paid."""
    payer = buyer(net, agent.mint)
    ledger = tmp_path / "spending.sqlite3"
    key = "order-2026-12-05-0001"
    first = gp_call(net, payer, ledger, f"{proxy.url}/translate", b"one", key)
    assert first.status_code == 200 and payment_record(first).settled  # type: ignore[union-attr]
    paid = payment_record(first).signature  # type: ignore[union-attr]
    after_first = (
        token_balance(net, payer.pubkey(), agent.mint),
        token_balance(net, agent.owner.pubkey(), agent.mint),
        sol_balance(net, payer.pubkey()),
        sol_balance(net, fee_payer.pubkey()),
    )
    assert after_first[0] == FUNDED - PRICE_ATOMIC

    other = gp_call(net, payer, ledger, f"{proxy.url}/translate", b"two", key)
    assert other.status_code == 402
    assert other.json()["reason"] == REASON_IDENTIFIER_CONFLICT
    assert other.json()["error"] == REASON_IDENTIFIER_CONFLICT

    again = gp_call(net, payer, ledger, f"{proxy.url}/translate", b"one", key)
    record = payment_record(again)
    assert again.status_code == 200 and again.json() == first.json()
    assert record is not None and record.replayed and record.signature == paid and again.headers[REPLAY_HEADER] == paid

    assert (
        token_balance(net, payer.pubkey(), agent.mint),
        token_balance(net, agent.owner.pubkey(), agent.mint),
        sol_balance(net, payer.pubkey()),
        sol_balance(net, fee_payer.pubkey()),
    ) == after_first
    assert settled_rows(facilitator, payer) == 1
    assert upstream_calls(upstream, payer) == [b"one"]
    # the refused payment and the replayed one were released: the budget counts the one payment
    assert ledger_rows(ledger, payer) == [
        ("settled", PRICE_ATOMIC),
        ("released", PRICE_ATOMIC),
        ("released", PRICE_ATOMIC),
    ]
    assert ledger_day(ledger, payer, agent) == PRICE_ATOMIC


async def official_paid(
    net: Any, payer: Keypair, url: str, identifier: str, body: bytes = b"", pay_to: str | None = None
) -> str:
    """A PAYMENT-SIGNATURE header by the official client, with the package's own identifier helper
    (`pay_to`: its transaction pays that wallet instead, though it claims the seller's requirement)."""
    async with httpx.AsyncClient() as http:
        required = decode_payment_required_header((await http.post(url, content=body)).headers["payment-required"])
    extensions = append_payment_identifier_to_extensions(dict(required.extensions or {}), identifier)
    asked = required.accepts[0]
    if pay_to is not None:
        required = required.model_copy(update={"accepts": [asked.model_copy(update={"pay_to": pay_to})]})
    payload = await official_client(net, payer).create_payment_payload(required, None, extensions)
    return encode_payment_signature_header(payload.model_copy(update={"accepted": asked}))


def post(url: str, header: str, body: bytes = b"") -> httpx.Response:
    return httpx.post(url, content=body, headers={"PAYMENT-SIGNATURE": header}, timeout=60)


def test_the_official_client_and_an_attacker(
    net: Any, proxy: Process, agent: Agent, upstream: Any, facilitator: Process, fee_payer: Keypair
) -> None:
    """The unchanged official client pays once for two payments with one identifier. Another payer with the
    same identifier is served (and charged) on its own; a payment claiming the first payer without its
    signature is refused by the facilitator and gets nothing from the cache."""
    victim, attacker = buyer(net, agent.mint), buyer(net, agent.mint)
    url, identifier = f"{proxy.url}/translate", "shared-identifier-0001"
    payee_before = token_balance(net, agent.owner.pubkey(), agent.mint)

    first = post(url, asyncio.run(official_paid(net, victim, url, identifier, b"secret")), b"secret")
    assert first.status_code == 200 and first.json() == {"echo": "secret", "payer": str(victim.pubkey())}
    second = post(url, asyncio.run(official_paid(net, victim, url, identifier, b"secret")), b"secret")
    assert second.status_code == 200 and second.json() == first.json()
    settled = decode_payment_response_header(first.headers["payment-response"]).transaction
    assert second.headers[REPLAY_HEADER] == settled
    assert token_balance(net, victim.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC

    theirs = post(url, asyncio.run(official_paid(net, attacker, url, identifier, b"secret")), b"secret")
    assert theirs.status_code == 200 and theirs.json() == {"echo": "secret", "payer": str(attacker.pubkey())}
    assert REPLAY_HEADER not in theirs.headers
    assert token_balance(net, attacker.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC

    # the victim's transaction with its signature replaced: it claims the victim, the victim never signed it
    header = asyncio.run(official_paid(net, victim, url, identifier, b"secret"))
    payload = decode_payment_signature(header)
    tx = VersionedTransaction.from_bytes(base64.b64decode(payload["payload"]["transaction"]))
    forged = VersionedTransaction.populate(tx.message, [tx.signatures[0], Signature.from_bytes(bytes(64))])
    payload["payload"]["transaction"] = base64.b64encode(bytes(forged)).decode()
    refused = post(url, base64.b64encode(json.dumps(payload).encode()).decode(), b"secret")
    assert refused.status_code == 402 and b"secret" not in refused.content
    assert REPLAY_HEADER not in refused.headers

    # a transaction the victim signed for another seller (seen there), sent here with the victim's identifier
    elsewhere = asyncio.run(official_paid(net, victim, url, identifier, b"secret", pay_to=str(attacker.pubkey())))
    refused = post(url, elsewhere, b"secret")
    assert refused.status_code == 402 and b"secret" not in refused.content
    assert REPLAY_HEADER not in refused.headers

    assert token_balance(net, victim.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC
    assert token_balance(net, attacker.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == payee_before + 2 * PRICE_ATOMIC
    assert settled_rows(facilitator, victim) == 1 and settled_rows(facilitator, attacker) == 1
    assert upstream_calls(upstream, victim) == [b"secret"] and upstream_calls(upstream, attacker) == [b"secret"]


def decode_payment_signature(header: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(header))


def test_an_answer_too_large_to_keep_names_its_settlement(net: Any, proxy: Process, agent: Agent) -> None:
    payer = buyer(net, agent.mint)
    url, identifier, body = f"{proxy.url}/translate", "large-answer-00001", b"x" * (70 * 1024)
    first = post(url, asyncio.run(official_paid(net, payer, url, identifier, body)), body)
    assert first.status_code == 200 and len(first.json()["echo"]) == len(body)
    again = post(url, asyncio.run(official_paid(net, payer, url, identifier, body)), body)
    settled = decode_payment_response_header(first.headers["payment-response"]).transaction
    assert again.status_code == STATUS_NOT_KEPT
    assert again.json()["transaction"] == settled and again.json()["status"] == 200
    assert decode_payment_response_header(again.headers["payment-response"]).transaction == settled
    assert token_balance(net, payer.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC


def test_the_cache_is_bounded() -> None:
    """Per payer, in all, and in age; a payer filling its share evicts only its own entries."""
    cache = AnswerCache(IdempotencySettings(":memory:", max_entries=5, max_entries_per_payer=2, max_age_seconds=100))
    answer = Answer(200, [(b"content-type", b"text/plain")], b"ok", "sig", "solana:x", 2)
    cache.put("victim", "victim-call-00001", "fp", answer, now=1000)
    for n in range(10):
        cache.put("flooder", f"flooder-call-{n:05}", "fp", answer, now=1001 + n)
    assert cache.get("victim", "victim-call-00001", now=1011) is not None
    assert cache.count("flooder") == 2 and cache.count() == 3
    for n in range(6):
        cache.put(f"payer-{n}", "call-000000000001", "fp", answer, now=1020 + n)
    assert cache.count() == 5  # the oldest entries went first
    assert cache.get("victim", "victim-call-00001", now=1030) is None
    assert cache.get("payer-5", "call-000000000001", now=1030) is not None
    assert cache.get("payer-5", "call-000000000001", now=1026 + 101) is None  # expired

    small = AnswerCache(IdempotencySettings(":memory:", max_bytes=3 * 1024))
    big = Answer(200, [], b"x" * 1024, "sig", "solana:x", 1024)
    for n in range(5):
        small.put(f"payer-{n}", "call-000000000001", "fp", big, now=2000 + n)
    assert small.count() == 2  # 2 KiB of bodies and their headers under 3 KiB; a third would not fit


def test_ghost_x402_call_reruns_with_its_journalled_identifier(
    net: Any, agent: Agent, upstream: Any, facilitator: Process, dropping: DroppingProxy, tmp_path: Path
) -> None:
    """Every send of the paid request loses its answer: the command fails naming its identifier and keeps it
    in its journal; the same command again sends it, and the proxy answers from its cache: paid once."""
    payer = buyer(net, agent.mint)
    key = keypair_file(tmp_path, payer)
    env = {"GHOSTPAY_HOME": str(tmp_path / "home"), "GHOST_URL": net.http_url, "GHOST_CONFIG": ""}
    ghost("config", "set", "x402.daily_budget", "1", env=env)
    url = f"{dropping.url}/translate"
    call = ("-k", key, "x402", "call", url, "-X", "POST", "--data", "journalled", "--max-price", "0.05")
    dropping.armed, dropping.dropped = RESENDS + 1, 0

    failed = ghost(*call, env=env).one_line_error(1)

    assert dropping.dropped == RESENDS + 1
    assert "it closed the connection without an answer" in failed and "run the same command again" in failed
    [journalled] = (tmp_path / "home" / "journal").glob("x402_call-*.json")
    entry = json.loads(journalled.read_text())
    identifier = entry["idempotency_key"]
    assert identifier in failed
    assert token_balance(net, payer.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC  # it was paid, once

    again = ghost(*call, env=env).data
    assert again["status"] == 200 and again["body"] == {"echo": "journalled", "payer": str(payer.pubkey())}
    assert again["payment"]["replayed"] and again["payment"]["idempotency_key"] == identifier
    assert token_balance(net, payer.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC
    assert settled_rows(facilitator, payer) == 1
    assert upstream_calls(upstream, payer) == [b"journalled"]
    assert not list((tmp_path / "home" / "journal").glob("x402_call-*.json"))  # the outcome is known
    spent = ghost("-k", key, "x402", "spending", env=env).data
    assert [e["state"] for e in spent["recent"]] == ["released", "sent"]  # the rerun's payment was not taken
    assert spent["mints"][0]["day"]["spent"] == "0.010000"

    # a connection that fails before any payment is sent leaves nothing to resume
    nobody = ghost("-k", key, "x402", "call", "http://127.0.0.1:9/translate", "--max-price", "0.05", env=env)
    assert "run the same command again" not in nobody.one_line_error(1)
    assert not list((tmp_path / "home" / "journal").glob("x402_call-*.json"))


async def test_a_seller_claiming_a_replay_does_not_lower_the_budget(
    net: Any, mint: Any, seller: Any, gp_buyer: GhostPayClient, ledger_path: Path
) -> None:
    """A seller that answers a payment "from its cache" (naming no payment of this wallet, or for a key the
    buyer just made) keeps it counting: otherwise it could take each payment after the budget let it go."""
    requirement = PaymentRequirements(
        scheme="exact",
        network=DEVNET.caip2,
        asset=str(mint),
        amount=str(PRICE_ATOMIC),
        pay_to=str(seller.wallet),
        max_timeout_seconds=60,
        extra={"feePayer": str(Keypair().pubkey())},
    )
    required = PaymentRequired(
        accepts=[requirement], extensions={PAYMENT_IDENTIFIER: declare_payment_identifier_extension()}
    )
    identifiers: list[str | None] = []

    async def paid(request: Request) -> Response:
        header = request.headers.get("payment-signature")
        if header is None:
            return Response(status_code=402, headers={"PAYMENT-REQUIRED": encode_payment_required_header(required)})
        identifiers.append(extract_payment_identifier(PaymentPayload.model_validate(decode_payment_signature(header))))
        settled = SettleResponse(success=True, transaction=str(Signature.new_unique()), network=DEVNET.caip2)
        return Response(
            b"{}",
            headers={"PAYMENT-RESPONSE": encode_payment_response_header(settled), REPLAY_HEADER: settled.transaction},
        )

    async def call(key: str | None) -> httpx.Response:
        guards = GuardedWallet(SpendingGuards(daily=Decimal("1")), ledger_path)
        async with x402_http(gp_buyer, guards=guards, max_price=Decimal("0.05"), idempotency_key=key) as http:
            return await http.get(f"{server.url}/paid")

    with ServerThread(Starlette(routes=[Route("/paid", paid)])) as server:
        fresh = await call(None)
        given = await call("a-key-given-by-the-user")

    assert identifiers[0] and identifiers[0].startswith("pay_") and identifiers[1] == "a-key-given-by-the-user"
    for answer in (fresh, given):
        record = payment_record(answer)
        assert record is not None and record.settled and not record.replayed
    rows = GuardedWallet(None, ledger_path).ledger.entries(str(gp_buyer.wallet))
    assert [row["state"] for row in rows] == ["settled", "settled"]


def test_a_retry_while_the_call_runs_waits_for_its_answer(
    net: Any, proxy: Process, agent: Agent, upstream: Any, facilitator: Process
) -> None:
    """The same payment sent again while the upstream still works on the first: it waits, then gets the
    first call's answer from the cache; the upstream runs once, one settlement."""
    service, _ = upstream
    payer = buyer(net, agent.mint)
    url = f"{proxy.url}/slow"

    async def paid_header() -> str:
        async with httpx.AsyncClient() as http:
            required = decode_payment_required_header((await http.get(url)).headers["payment-required"])
        extensions = append_payment_identifier_to_extensions(dict(required.extensions or {}), "slow-call-00000001")
        return encode_payment_signature_header(
            await official_client(net, payer).create_payment_payload(required, None, extensions)
        )

    header = asyncio.run(paid_header())
    service.reached.clear()
    service.release.clear()
    answers: dict[str, httpx.Response] = {}

    def get(name: str) -> None:
        answers[name] = httpx.get(url, headers={"PAYMENT-SIGNATURE": header}, timeout=60)

    first = threading.Thread(target=get, args=("first",))
    first.start()
    assert service.reached.wait(30)  # verified, the upstream works on it
    port = int(proxy.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as second:  # on the wire before the release
        second.sendall(
            b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + f"PAYMENT-SIGNATURE: {header}\r\n\r\n".encode()
        )
        service.release.set()
        first.join(60)
        raw = b"".join(iter(lambda: second.recv(65536), b""))
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}

    assert answers["first"].status_code == 200 and lines[0].split()[1] == "200"
    assert json.loads(body) == answers["first"].json() == {"slow": True}
    settled = decode_payment_response_header(answers["first"].headers["payment-response"]).transaction
    assert headers[REPLAY_HEADER] == settled
    assert token_balance(net, payer.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC
    assert settled_rows(facilitator, payer) == 1
    assert sum(c["headers"].get("x-ghostpay-payer") == str(payer.pubkey()) for c in service.calls) == 1


class FaultyUpstream:
    """POST /work answers `{"done": <body>}`, streamed. Its next answer can be cut after its first chunk (the
    seller settled on its headers by then): `fault = "raise"` fails it at once, `"hang"` holds it until
    `release` (the test kills the seller meanwhile); the answers after it are whole."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.fault: str | None = None
        self.reached, self.release = threading.Event(), threading.Event()

        async def work(request: Request) -> StreamingResponse:
            body = await request.body()
            self.calls.append(body)
            fault, self.fault = self.fault, None

            async def chunks() -> Any:
                yield b'{"done": '
                if fault == "hang":
                    self.reached.set()
                    await asyncio.to_thread(self.release.wait, 60)
                if fault is not None:
                    raise RuntimeError("the upstream fails in the middle of its answer")
                yield json.dumps(body.decode()).encode() + b"}"

            return StreamingResponse(chunks(), media_type="application/json")

        self.app = Starlette(routes=[Route("/work", work, methods=["POST"])])


def work_proxy(net: Any, agent: Agent, upstream: ServerThread, facilitator: Process, home: Path) -> Process:
    """`ghost x402 proxy` selling POST /work, its answer cache in `home`'s data folder."""
    return proxy_process(net, agent, upstream.url, facilitator.url, home, "--route", "POST /work")


def balances(net: Any, agent: Agent, payer: Keypair, fee_payer: Keypair) -> tuple[int, int, int, int]:
    """Tokens of the payer and the payee, SOL of the payer and the facilitator's fee payer."""
    return (
        token_balance(net, payer.pubkey(), agent.mint),
        token_balance(net, agent.owner.pubkey(), agent.mint),
        sol_balance(net, payer.pubkey()),
        sol_balance(net, fee_payer.pubkey()),
    )


def test_a_seller_killed_after_the_settle_serves_the_retry_without_charging_again(
    net: Any, agent: Agent, facilitator: Process, fee_payer: Keypair, tmp_path: Path
) -> None:
    """The proxy settles, starts the answer and is SIGKILLed before it kept the answer. A new proxy on the same
    cache gets the very same payment again: it finds the settlement kept ahead of the answer, runs the upstream
    again and answers, naming that settlement; nothing is verified or settled again."""
    upstream = FaultyUpstream()
    payer = buyer(net, agent.mint)
    home = tmp_path / "seller"
    home.mkdir()
    before = balances(net, agent, payer, fee_payer)
    with ServerThread(upstream.app) as served:
        first_proxy = work_proxy(net, agent, served, facilitator, home).start()
        url = f"{first_proxy.url}/work"
        header = asyncio.run(official_paid(net, payer, url, "crash-call-000001", b"hola"))
        upstream.fault = "hang"
        cut: list[BaseException] = []

        def first_call() -> None:
            try:
                post(url, header, b"hola")
            except httpx.TransportError as exc:
                cut.append(exc)

        caller = threading.Thread(target=first_call)
        caller.start()
        assert upstream.reached.wait(30)  # the answer started: the proxy settled before passing it on
        paid = balances(net, agent, payer, fee_payer)
        assert paid[:2] == (before[0] - PRICE_ATOMIC, before[1] + PRICE_ATOMIC)
        assert first_proxy.proc is not None
        first_proxy.proc.kill()
        first_proxy.stop()
        caller.join(30)
        upstream.release.set()
        assert len(cut) == 1  # the buyer got no whole answer
        [cache_file] = (home / "x402-idempotency").glob("*.sqlite3")
        kept = AnswerCache(IdempotencySettings(cache_file)).get(str(payer.pubkey()), "crash-call-000001")
        assert kept is not None and not kept[1].answered and kept[1].body is None  # the settlement, no answer

        second_proxy = work_proxy(net, agent, served, facilitator, home).start()
        try:
            retry = post(f"{second_proxy.url}/work", header, b"hola")
            again = post(f"{second_proxy.url}/work", header, b"hola")
        finally:
            second_proxy.stop()

    settled = kept[1].transaction
    assert retry.status_code == 200 and retry.json() == {"done": "hola"}
    assert retry.headers[REPLAY_HEADER] == settled
    assert decode_payment_response_header(retry.headers["payment-response"]).transaction == settled
    assert again.status_code == 200 and again.json() == {"done": "hola"} and again.headers[REPLAY_HEADER] == settled
    assert upstream.calls == [b"hola", b"hola"]  # run again once, then answered from the cache
    assert balances(net, agent, payer, fee_payer) == paid  # not charged again, no fee spent
    assert settled_rows(facilitator, payer) == 1


def test_an_answer_cut_after_the_settle_is_resent_and_paid_once(
    net: Any, agent: Agent, facilitator: Process, fee_payer: Keypair, tmp_path: Path
) -> None:
    """The upstream fails in the middle of the answer, after the settle: GhostPay's buyer sends the same payment
    again (same identifier), the proxy runs the upstream again and answers; one payment on chain, the budget
    charged once."""
    upstream = FaultyUpstream()
    payer = buyer(net, agent.mint)
    ledger = tmp_path / "spending.sqlite3"
    before = balances(net, agent, payer, fee_payer)
    with ServerThread(upstream.app) as served:
        proc = work_proxy(net, agent, served, facilitator, tmp_path).start()
        try:
            upstream.fault = "raise"
            answer = gp_call(net, payer, ledger, f"{proc.url}/work", b"adios", "cut-answer-000001")
        finally:
            proc.stop()

    record = payment_record(answer)
    assert answer.status_code == 200 and answer.json() == {"done": "adios"}
    assert record is not None and record.settled and record.replayed and record.signature
    assert answer.headers[REPLAY_HEADER] == record.signature
    assert upstream.calls == [b"adios", b"adios"]
    after = balances(net, agent, payer, fee_payer)
    assert after[:3] == (before[0] - PRICE_ATOMIC, before[1] + PRICE_ATOMIC, before[2])  # the payer paid no fee
    assert settled_rows(facilitator, payer) == 1
    assert ledger_rows(ledger, payer) == [("settled", PRICE_ATOMIC)]
    assert ledger_day(ledger, payer, agent) == PRICE_ATOMIC


FIRST_SCHEMA = """CREATE TABLE answers (payer TEXT NOT NULL, identifier TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL, headers TEXT NOT NULL, body BLOB, body_bytes INTEGER NOT NULL, transaction_ TEXT NOT NULL,
    payee TEXT NOT NULL, network TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (payer, identifier))"""


def test_a_cache_from_before_keeps_its_answers(tmp_path: Path) -> None:
    """A cache file written before settlements were kept ahead of their answers (no `answered` column) opens;
    its entries are answers, and new entries go in beside them."""
    path = tmp_path / "first.sqlite3"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(FIRST_SCHEMA)
        db.execute(
            "INSERT INTO answers VALUES ('P', 'old-call-0000001', 'fp', 200, '[]', x'6f6b', 2, 'sig', 'payee', 'n', ?)",
            (time.time(),),
        )
    cache = AnswerCache(IdempotencySettings(path))
    kept = cache.get("P", "old-call-0000001")
    assert kept is not None and kept[1].answered and kept[1].body == b"ok"
    cache.put("P", "new-call-0000001", "fp", Answer(200, [], None, "sig2", "n", 0, "payee", answered=False))
    pending = cache.get("P", "new-call-0000001")
    assert pending is not None and not pending[1].answered
    cache.close()


def test_the_proxy_app_closes_its_stores_when_it_stops(
    net: Any, agent: Agent, facilitator: Process, tmp_path: Path
) -> None:
    """The answer cache and the session store `ghost x402 proxy` opens are closed by its app's lifespan shutdown
    (no connection left on their files)."""
    settings = SellerSettings(
        agent.address,
        net.http_url,
        facilitator.url,
        ws_url=net.ws_url,
        idempotency=IdempotencySettings(tmp_path / "answers.sqlite3"),
        session=SessionSettings(3600, tmp_path / "sessions.sqlite3"),
    )
    app = create_proxy_app(ProxySettings("http://127.0.0.1:9", settings))
    seller = app.seller

    def databases() -> list[sqlite3.Connection]:
        assert seller.idempotency is not None and seller.sessions is not None
        return [seller.idempotency.cache._db, seller.sessions.store._db]

    async def lifespan() -> list[str]:
        messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for kind in ("lifespan.startup", "lifespan.shutdown"):
            messages.put_nowait({"type": kind})
        sent: list[str] = []

        async def send(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                for db in databases():
                    db.execute("SELECT 1")  # open while the app runs
            sent.append(message["type"])

        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, messages.get, send)
        return sent

    assert asyncio.run(lifespan()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    for db in databases():
        with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
            db.execute("SELECT 1")
