"""`ghost x402 proxy` as a process in front of a plain HTTP service, paid by the official client."""

from __future__ import annotations

import asyncio
import base64
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from solders.keypair import Keypair
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)

from ghostpay.localnet.process import free_port_pair
from tests.x402.conftest import (
    GHOST,
    PRICE_ATOMIC,
    Agent,
    Process,
    buyer,
    keypair_file,
    official_client,
    official_http,
    proxy_process,
    register_agent,
    sol_balance,
    token_balance,
)

AGENT_ID = "proxied"
PROXY_ARGS = (
    "--route",
    "POST /translate",
    "--route",
    "GET /translate",
    "--route",
    "GET /stream",
    "--route",
    "GET /slow",
    "--stats-route",
    "/_x402/stats",
)


def test_announce(proxy: Process, agent: Agent, upstream: Any) -> None:
    assert proxy.announce["agent"] == str(agent.address) and proxy.announce["upstream"] == upstream[1].url
    assert proxy.announce["prices"] == [{"mint": str(agent.mint), "amount": PRICE_ATOMIC, "decimals": 6}]


def test_the_402_says_what_is_sold(
    net: Any, proxy: Process, agent: Agent, upstream: Any, tmp_path: Path, facilitator: Process
) -> None:
    """The resource's description (default: the agent's on-chain one) and media type, as the official
    middleware sends them (they went out empty); --description and --mime-type set them."""
    required = decode_payment_required_header(httpx.get(f"{proxy.url}/translate").headers["payment-required"])
    assert (required.resource.description, required.resource.mime_type) == ("Proxied", "application/json")
    v1 = httpx.get(f"{proxy.url}/translate").json()["accepts"][0]
    assert (v1["description"], v1["mimeType"]) == ("Proxied", "application/json")
    told = proxy_process(
        net,
        agent,
        upstream[1].url,
        facilitator.url,
        tmp_path,
        "--description",
        "Spanish translations, per request",
        "--mime-type",
        "text/plain",
    ).start()
    try:
        required = decode_payment_required_header(httpx.get(f"{told.url}/any").headers["payment-required"])
        assert (required.resource.description, required.resource.mime_type) == (
            "Spanish translations, per request",
            "text/plain",
        )
    finally:
        told.stop()


def test_official_client_pays_through_the_proxy(net: Any, proxy: Process, agent: Agent, upstream: Any) -> None:
    service, _ = upstream
    payer = buyer(net, agent.mint)
    calls = len(service.calls)
    assert httpx.post(f"{proxy.url}/translate", content=b"hello").status_code == 402
    assert len(service.calls) == calls  # never called unpaid

    async def call() -> httpx.Response:
        async with official_http(net, payer) as client:
            return await client.post(f"{proxy.url}/translate?lang=es", content=b"hello", headers={"X-Custom": "kept"})

    answer = asyncio.run(call())
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"echo": "hello", "payer": str(payer.pubkey())}
    settled = decode_payment_response_header(answer.headers["payment-response"])
    assert settled.success and settled.payer == str(payer.pubkey())
    seen = service.calls[-1]
    assert len(service.calls) == calls + 1 and seen["body"] == b"hello"
    assert seen["headers"]["x-custom"] == "kept" and seen["headers"]["x-ghostpay-amount"] == str(PRICE_ATOMIC)
    assert seen["headers"]["x-ghostpay-mint"] == str(agent.mint) and seen["headers"]["x-ghostpay-verified"] == "false"
    assert "payment-signature" not in seen["headers"]
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC


def test_upstream_status_is_kept_and_errors_are_not_charged(net: Any, proxy: Process, agent: Agent) -> None:
    payer = buyer(net, agent.mint)

    async def call(status: int) -> httpx.Response:
        async with official_http(net, payer) as client:
            return await client.get(f"{proxy.url}/translate?status={status}")

    created = asyncio.run(call(201))
    assert created.status_code == 201 and "payment-response" in created.headers
    failed = asyncio.run(call(503))
    assert failed.status_code == 503 and "payment-response" not in failed.headers
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC  # charged once


def test_streamed_body_and_free_routes(net: Any, proxy: Process, agent: Agent) -> None:
    payer = buyer(net, agent.mint)

    async def call() -> tuple[list[bytes], httpx.Headers]:
        async with official_http(net, payer) as client, client.stream("GET", f"{proxy.url}/stream") as answer:
            return [chunk async for chunk in answer.aiter_bytes()], answer.headers

    chunks, headers = asyncio.run(call())
    assert b"".join(chunks) == b"".join(f"chunk {i}\n".encode() for i in range(5))
    assert decode_payment_response_header(headers["payment-response"]).success
    free = httpx.get(f"{proxy.url}/free")  # not a priced route: passes through, unpaid
    assert free.status_code == 200 and free.json()["payer"] is None


def test_the_proxy_adds_nothing_of_its_own(proxy: Process, upstream: Any) -> None:
    """No cookie jar (an upstream's cookie for one client never reaches another's request) and no default
    headers (no Accept-Encoding the client did not send: the body passes through as the upstream sent it)."""
    service, _ = upstream
    answer = httpx.get(f"{proxy.url}/cookie")
    assert answer.headers["set-cookie"].startswith("session=first-buyer")
    names = [name.lower() for name, _ in answer.headers.raw]
    assert names.count(b"date") == 1 and names.count(b"server") == 1  # the upstream's are not a second pair
    with httpx.Client() as bare:
        bare.headers.clear()
        assert bare.get(f"{proxy.url}/free").status_code == 200
    seen = service.calls[-1]["headers"]
    assert "cookie" not in seen and "accept-encoding" not in seen and "user-agent" not in seen


def test_unreachable_upstream_is_502_and_not_charged(
    net: Any, agent: Agent, facilitator: Process, tmp_path: Path
) -> None:
    proc = proxy_process(net, agent, f"http://127.0.0.1:{free_port_pair()[0]}", facilitator.url, tmp_path).start()
    try:
        payer = buyer(net, agent.mint)

        async def call() -> httpx.Response:
            async with official_http(net, payer) as client:
                return await client.post(f"{proc.url}/translate", content=b"x")

        answer = asyncio.run(call())
        assert answer.status_code == 502 and answer.json()["error"] == "upstream_unavailable"
        assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
    finally:
        proc.stop()


def test_start_errors(net: Any, agent: Agent, facilitator: Process, tmp_path: Path) -> None:
    bare = register_agent(net, "nopayee", payee_account=False)
    run = subprocess.run(
        [
            GHOST,
            "-u",
            net.http_url,
            "-k",
            str(keypair_file(tmp_path, bare.owner)),
            "x402",
            "proxy",
            "--agent",
            str(bare.address),
            "--upstream",
            "http://127.0.0.1:9",
            "--facilitator",
            facilitator.url,
            "--port",
            str(free_port_pair()[0]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stderr
    short = f"{str(bare.mint)[:4]}…{str(bare.mint)[-4:]}"  # an unlabelled mint: its short form, then its address
    assert run.stderr == (
        f"error: the payment address {bare.owner.pubkey()} has no token account for {short} "
        f"({bare.mint}), so buyers' payments would fail; pass --create-payee-accounts to create it "
        "(paid by -k), or create it yourself\n"
    )  # the CLI's flag, not the SDK's parameter
    usage = subprocess.run(
        [GHOST, "x402", "proxy", "--agent", "x" * 40, "--upstream", "http://u"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 2 and "agent_id" in usage.stderr


def test_stats_route(net: Any, proxy: Process, agent: Agent, upstream: Any) -> None:
    payer = buyer(net, agent.mint)

    async def call() -> httpx.Response:
        async with official_http(net, payer) as client:
            return await client.get(f"{proxy.url}/translate?status=404")

    answer = asyncio.run(call())
    assert answer.status_code == 404, answer.text  # a paid call the upstream failed: recorded, not settled
    stats = httpx.get(f"{proxy.url}/_x402/stats").json()
    assert stats["agent"] == str(agent.address) and stats["stats"]["byStatus"]["404"] >= 1
    last = stats["calls"][-1]
    assert (last["route"], last["status"], last["settled"], last["payer"]) == (
        "GET /translate",
        404,
        False,
        str(payer.pubkey()),
    )
    assert last["total_ms"] > 0 and stats["stats"]["p50Ms"] > 0
    assert all(c["path"] != "/_x402/stats" for c in upstream[0].calls)


def server_side_open(server_port: int, client_port: int) -> bool:
    """Whether the server still holds its end of the TCP connection from `client_port` (Linux /proc)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return True
    return False


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def settled_rows(facilitator: Process, payer: Keypair) -> int:
    with sqlite3.connect(facilitator.args[facilitator.args.index("--db") + 1]) as db:
        return db.execute("SELECT COUNT(*) FROM settled WHERE payer = ?", (str(payer.pubkey()),)).fetchone()[0]


def test_a_buyer_gone_before_the_answer_is_not_charged(
    net: Any, proxy: Process, agent: Agent, upstream: Any, facilitator: Process, fee_payer: Keypair
) -> None:
    """The buyer sends a paid request and hangs up while the upstream works: the proxy does not settle."""
    service, _ = upstream
    payer = buyer(net, agent.mint)
    required = decode_payment_required_header(httpx.get(f"{proxy.url}/slow").headers["payment-required"])
    paid = encode_payment_signature_header(asyncio.run(official_client(net, payer).create_payment_payload(required)))
    payee_before, fee_payer_sol = (
        token_balance(net, agent.owner.pubkey(), agent.mint),
        sol_balance(net, fee_payer.pubkey()),
    )
    settled_before = httpx.get(f"{facilitator.url}/health").json()["settled"]
    service.reached.clear()
    service.release.clear()
    port = int(proxy.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as client:
        client_port = client.getsockname()[1]
        client.sendall(f"GET /slow HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nPAYMENT-SIGNATURE: {paid}\r\n\r\n".encode())
        assert service.reached.wait(30)  # verified, and the upstream is working on it
    wait_for(lambda: not server_side_open(port, client_port), "the proxy to see the buyer hang up")
    service.release.set()
    wait_for(
        lambda: any(c["payer"] == str(payer.pubkey()) for c in httpx.get(f"{proxy.url}/_x402/stats").json()["calls"]),
        "the call to be recorded",
    )

    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == payee_before
    assert sol_balance(net, fee_payer.pubkey()) == fee_payer_sol
    assert settled_rows(facilitator, payer) == 0
    assert httpx.get(f"{facilitator.url}/health").json()["settled"] == settled_before
    stats = httpx.get(f"{proxy.url}/_x402/stats").json()
    call = next(c for c in stats["calls"] if c["payer"] == str(payer.pubkey()))
    assert (call["route"], call["status"], call["settled"], call["abandoned"], call["error"], call["transaction"]) == (
        "GET /slow",
        499,
        False,
        True,
        "client_disconnected",
        "",
    )
    assert stats["stats"]["abandoned"] >= 1 and stats["stats"]["byStatus"]["499"] >= 1

    async def pay_again() -> httpx.Response:  # the same payment, by a buyer who waits: served and charged once
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.get(f"{proxy.url}/slow", headers={"PAYMENT-SIGNATURE": paid})

    answer = asyncio.run(pay_again())
    assert answer.status_code == 200 and decode_payment_response_header(answer.headers["payment-response"]).success
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == payee_before + PRICE_ATOMIC
    assert settled_rows(facilitator, payer) == 1


def test_a_hostile_payment_header_is_a_402_by_name(net: Any, proxy: Process, agent: Agent, upstream: Any) -> None:
    """2,500 nested arrays in PAYMENT-SIGNATURE (a 500 before): refused as the official server refuses an
    undecodable payment, with a 402, and named; the upstream is never called."""
    service, _ = upstream
    calls = len(service.calls)
    deep = base64.b64encode(b"[" * 2_500 + b"]" * 2_500).decode()
    answer = httpx.post(f"{proxy.url}/translate", content=b"x", headers={"PAYMENT-SIGNATURE": deep})
    assert answer.status_code == 402 and "payment-required" in answer.headers
    assert (answer.json()["error"], answer.json()["reason"]) == ("invalid_payment", "json_too_deep")
    assert len(service.calls) == calls
