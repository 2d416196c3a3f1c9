"""Bad payments at the seller: each gets a 402/4xx/502 with a clear JSON body, the handler never runs
unpaid, nothing settles twice."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from solders.hash import Hash
from x402.http.utils import decode_payment_required_header, encode_payment_signature_header

from tests.sdk.conftest import fund
from tests.x402.conftest import (
    PRICE_ATOMIC,
    Agent,
    Process,
    Shop,
    buyer,
    facilitator_process,
    official_client,
    register_agent,
    token_balance,
)
from tests.x402.craft import header, latest_blockhash, payment


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad-input")


@pytest.fixture(scope="module")
def own_facilitator(net: Any, folder: Path) -> Iterator[Process]:
    """A facilitator of this module's own: one test restarts it."""
    proc = facilitator_process(net, folder, fund(net, sol=100)).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:
    return register_agent(net, "guarded")


@pytest.fixture(scope="module")
def shop(agent: Agent, own_facilitator: Process) -> Iterator[Shop]:
    with Shop(agent, own_facilitator.url) as running:
        yield running


def requirements(shop: Shop) -> Any:
    return decode_payment_required_header(httpx.get(f"{shop.url}/paid").headers["payment-required"]).accepts[0]


def signed_header(net: Any, keypair: Any, shop: Shop) -> dict[str, str]:
    """The header the official client sends, built by the official client."""
    required = decode_payment_required_header(httpx.get(f"{shop.url}/paid").headers["payment-required"])
    return {"PAYMENT-SIGNATURE": encode_payment_signature_header(
        asyncio.run(official_client(net, keypair).create_payment_payload(required)))}


def refused(answer: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error, body
    return body


@pytest.mark.parametrize("value, message", [
    ("%%% not base64 %%%", "not base64 JSON of an x402 payment"),
    (base64.b64encode(b"not json").decode(), "not base64 JSON of an x402 payment"),
    (base64.b64encode(b'{"x402Version": 2, "payload": {}}').decode(), "not base64 JSON of an x402 payment"),
    ("A" * 9000, "payment header over 8192 bytes"),
])
def test_garbage_or_oversized_headers(shop: Shop, value: str, message: str) -> None:
    handled = len(shop.handled)
    for name in ("PAYMENT-SIGNATURE", "X-PAYMENT"):
        body = refused(httpx.get(f"{shop.url}/paid", headers={name: value}), 402, "invalid_payment")
        assert message in body["message"] and body["accepts"]
    assert len(shop.handled) == handled


def test_v2_payment_in_the_v1_header(net: Any, shop: Shop, agent: Agent) -> None:
    payer = buyer(net, agent.mint)
    v2 = signed_header(net, payer, shop)["PAYMENT-SIGNATURE"]
    body = refused(httpx.get(f"{shop.url}/paid", headers={"X-PAYMENT": v2}), 402, "invalid_payment")
    assert "PAYMENT-SIGNATURE" in body["message"]
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000


def test_payment_for_another_price_or_route(net: Any, shop: Shop, agent: Agent, own_facilitator: Process) -> None:
    payer = buyer(net, agent.mint)
    cheap = requirements(shop).model_copy(update={"amount": str(PRICE_ATOMIC - 1)})
    body = refused(httpx.get(f"{shop.url}/paid", headers=header(payment(cheap, payer, latest_blockhash(net)))),
                   402, "payment_mismatch")
    assert "this route's current price" in body["message"]
    other = register_agent(net, "elsewhere", agent.mint)  # same mint, another payee: another route's price
    with Shop(other, own_facilitator.url) as elsewhere:
        paid_elsewhere = signed_header(net, payer, elsewhere)
    refused(httpx.get(f"{shop.url}/paid", headers=paid_elsewhere), 402, "payment_mismatch")
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
    assert shop.handled == [] or all(c.payer != payer.pubkey() for c in shop.handled)


def test_expired_blockhash(net: Any, shop: Shop, agent: Agent) -> None:
    payer = buyer(net, agent.mint)
    stale = payment(requirements(shop), payer, Hash.new_unique())  # a blockhash the cluster does not know
    body = refused(httpx.get(f"{shop.url}/paid", headers=header(stale)), 402, "transaction_simulation_failed")
    assert "Blockhash" in body["message"]
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000


def test_payer_without_funds(net: Any, shop: Shop, agent: Agent) -> None:
    broke = buyer(net, agent.mint, atomic=PRICE_ATOMIC - 1)
    refused(httpx.get(f"{shop.url}/paid", headers=signed_header(net, broke, shop)), 402,
            "transaction_simulation_failed")
    assert token_balance(net, broke.pubkey(), agent.mint) == PRICE_ATOMIC - 1
    assert all(c.payer != broke.pubkey() for c in shop.handled)


def test_replay_after_a_facilitator_restart_is_refused(net: Any, shop: Shop, agent: Agent,
                                                       own_facilitator: Process) -> None:
    payer = buyer(net, agent.mint)
    paid = signed_header(net, payer, shop)
    first = httpx.get(f"{shop.url}/paid", headers=paid, timeout=30)
    assert first.status_code == 200
    handled = len(shop.handled)
    own_facilitator.stop()
    own_facilitator.start()  # same port, same settled-payment log; its memory is gone
    replay = refused(httpx.get(f"{shop.url}/paid", headers=paid, timeout=30), 402, "duplicate_settlement")
    assert replay["message"] == "this payment was already settled"
    assert len(shop.handled) == handled  # the handler did not run for the replay
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC


def test_unreachable_facilitator_answers_502(net: Any, agent: Agent, folder: Path) -> None:
    (folder / "short-lived").mkdir()
    proc = facilitator_process(net, folder / "short-lived", fund(net, sol=100)).start()
    with Shop(agent, proc.url) as shop:
        proc.stop()
        payer = buyer(net, agent.mint)
        body = refused(httpx.get(f"{shop.url}/paid", headers=signed_header(net, payer, shop)), 502,
                       "facilitator_unavailable")
        assert body["message"]
        assert shop.handled == []
        assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
