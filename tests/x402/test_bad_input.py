"""Bad payments at the seller: each gets a 402/4xx/502 with a clear JSON body and, for a malformed payment
header, a named reason; the handler never runs unpaid, nothing settles twice. Malformed bodies at the
facilitator: each a 400 with a named reason, never a 500, and nothing moves."""

from __future__ import annotations

import asyncio
import base64
import copy
import doctest
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from x402.http.utils import decode_payment_required_header, encode_payment_signature_header
from x402.schemas import PaymentRequirements
from x402.schemas.v1 import PaymentRequiredV1

from ghostpay.x402 import wire
from ghostpay.x402.networks import DEVNET
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
    sol_balance,
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
    return {
        "PAYMENT-SIGNATURE": encode_payment_signature_header(
            asyncio.run(official_client(net, keypair).create_payment_payload(required))
        )
    }


def refused(answer: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error, body
    return body


def b64(raw: bytes | str) -> str:
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


DEEP_ARRAYS = "[" * 2_500 + "]" * 2_500


@pytest.mark.parametrize(
    "value, message, reason",
    [
        ("%%% not base64 %%%", "not base64 JSON of an x402 payment", "payment_header_not_base64"),
        (b64("not json"), "not base64 JSON of an x402 payment", "invalid_json"),
        (b64('{"x402Version": 2, "payload": {}}'), "not base64 JSON of an x402 payment", "invalid_payment_payload"),
        ("A" * 9000, "payment header over 8192 bytes", "payment_header_too_large"),
        (b64(DEEP_ARRAYS), "nested more than 64 levels deep", "json_too_deep"),  # a 500 before
        (
            b64('{"x402Version": 2, "payload": {"transaction": ' + DEEP_ARRAYS + "}}"),
            "nested more than 64 levels",
            "json_too_deep",
        ),
        (b64("[]"), "must be a JSON object", "invalid_payment_payload"),  # a 500 before (AttributeError)
        (b64('"x402Version"'), "must be a JSON object", "invalid_payment_payload"),
        (b64('{"x402Version": 3}'), "x402Version must be 1 or 2", "invalid_x402_version"),
        (b64('{"x402Version": true}'), "x402Version must be 1 or 2", "invalid_x402_version"),
        (b64('{"x402Version": 2, "payload": {"transaction": NaN}}'), "NaN is not JSON", "invalid_json"),
        (b64(b"\xff\xfe{}"), "not UTF-8", "invalid_json"),
    ],
)
def test_garbage_or_oversized_headers(shop: Shop, value: str, message: str, reason: str) -> None:
    handled = len(shop.handled)
    for name in ("PAYMENT-SIGNATURE", "X-PAYMENT"):
        body = refused(httpx.get(f"{shop.url}/paid", headers={name: value}), 402, "invalid_payment")
        assert message in body["message"] and body["reason"] == reason and body["accepts"]
    assert len(shop.handled) == handled


def test_v2_payment_in_the_v1_header(net: Any, shop: Shop, agent: Agent) -> None:
    payer = buyer(net, agent.mint)
    v2 = signed_header(net, payer, shop)["PAYMENT-SIGNATURE"]
    body = refused(httpx.get(f"{shop.url}/paid", headers={"X-PAYMENT": v2}), 402, "invalid_payment")
    assert "PAYMENT-SIGNATURE" in body["message"] and body["reason"] == "v2_payment_in_v1_header"
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000


def test_v1_payment_in_the_v2_header(net: Any, shop: Shop, agent: Agent) -> None:
    """The mirror image: a v1 payload (a valid, signed one) in PAYMENT-SIGNATURE is refused by name."""
    payer = buyer(net, agent.mint)
    required = PaymentRequiredV1.model_validate(httpx.get(f"{shop.url}/paid").json())
    v1 = b64(
        asyncio.run(official_client(net, payer).create_payment_payload(required)).model_dump_json(
            by_alias=True, exclude_none=True
        )
    )
    handled, payee = len(shop.handled), token_balance(net, agent.owner.pubkey(), agent.mint)
    body = refused(httpx.get(f"{shop.url}/paid", headers={"PAYMENT-SIGNATURE": v1}), 402, "invalid_payment")
    assert "X-PAYMENT" in body["message"] and body["reason"] == "v1_payment_in_v2_header"
    assert len(shop.handled) == handled
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == payee


def test_payment_for_another_price_or_route(net: Any, shop: Shop, agent: Agent, own_facilitator: Process) -> None:
    payer = buyer(net, agent.mint)
    cheap = requirements(shop).model_copy(update={"amount": str(PRICE_ATOMIC - 1)})
    body = refused(
        httpx.get(f"{shop.url}/paid", headers=header(payment(cheap, payer, latest_blockhash(net)))),
        402,
        "payment_mismatch",
    )
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
    refused(
        httpx.get(f"{shop.url}/paid", headers=signed_header(net, broke, shop)), 402, "transaction_simulation_failed"
    )
    assert token_balance(net, broke.pubkey(), agent.mint) == PRICE_ATOMIC - 1
    assert all(c.payer != broke.pubkey() for c in shop.handled)


def test_replay_after_a_facilitator_restart_is_refused(
    net: Any, shop: Shop, agent: Agent, own_facilitator: Process
) -> None:
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
        body = refused(
            httpx.get(f"{shop.url}/paid", headers=signed_header(net, payer, shop)), 502, "facilitator_unavailable"
        )
        assert body["message"]
        assert shop.handled == []
        assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000


# The facilitator's /verify and /settle: every malformed body is a 400 naming its reason ----------------------

Mutation = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Mutation:
    """A mutation putting `value` at `path` ("paymentRequirements.amount") of a valid request."""

    def mutate(request: dict[str, Any]) -> dict[str, Any]:
        *parents, last = path.split(".")
        node = request
        for key in parents:
            node = node[key]
        node[last] = value
        return request

    return mutate


def _deep_at(path: str, depth: int = 2_500) -> Mutation:
    """`depth` nested arrays at `path` of a valid request (as JSON text: Python could not even dump them)."""
    put = _set(path, "<deep>")
    return lambda request: json.dumps(put(request)).replace('"<deep>"', "[" * depth + "]" * depth).encode()


def _raw(body: bytes | str) -> Mutation:
    return lambda request: body.encode() if isinstance(body, str) else body


def _truncated_transaction(request: dict[str, Any]) -> dict[str, Any]:
    payload = request["paymentPayload"]["payload"]
    payload["transaction"] = payload["transaction"][:101]  # 101 characters: not whole base64
    return request


HOSTILE_BODIES: dict[str, tuple[Mutation, str]] = {
    # what gave 500 before
    "60,000 nested arrays": (_raw("[" * 60_000), "json_too_deep"),
    "3,000 nested objects": (_raw('{"a":' * 3_000 + "1" + "}" * 3_000), "json_too_deep"),
    "nesting inside the payload": (_deep_at("paymentPayload.payload.extra"), "json_too_deep"),
    "nesting inside the requirements": (_deep_at("paymentRequirements.extra.deep"), "json_too_deep"),
    "amount NaN": (_set("paymentRequirements.amount", "NaN"), "invalid_amount"),
    "payTo xyz": (_set("paymentRequirements.payTo", "xyz"), "invalid_address"),
    # truncated base64
    "truncated transaction": (_truncated_transaction, "invalid_payment_payload"),
    # wrong types
    "body an array": (_raw("[]"), "invalid_request"),
    "no paymentRequirements": (_set("paymentRequirements", None), "invalid_request"),
    "paymentPayload a string": (_set("paymentPayload", "x"), "invalid_request"),
    "x402Version a string": (_set("paymentPayload.x402Version", "2"), "invalid_x402_version"),
    "x402Version true": (_set("paymentPayload.x402Version", True), "invalid_x402_version"),
    "versions differ": (_set("x402Version", 1), "invalid_x402_version"),
    "amount a number": (_set("paymentRequirements.amount", 10_000), "invalid_payment_requirements"),
    "payTo a number": (_set("paymentRequirements.payTo", 7), "invalid_payment_requirements"),
    "extra a list": (_set("paymentRequirements.extra", []), "invalid_payment_requirements"),
    "transaction a number": (_set("paymentPayload.payload.transaction", 5), "invalid_payment_payload"),
    "transaction missing": (_set("paymentPayload.payload", {}), "invalid_payment_payload"),
    "accepted missing": (_set("paymentPayload.accepted", None), "invalid_payment_payload"),
    "feePayer not a key": (_set("paymentRequirements.extra.feePayer", ["x"]), "invalid_address"),
    "accepted amount NaN": (_set("paymentPayload.accepted.amount", "NaN"), "invalid_amount"),
    # huge numbers
    "amount 2^64": (_set("paymentRequirements.amount", str(2**64)), "invalid_amount"),
    "amount of 30 digits": (_set("paymentRequirements.amount", "1" + "0" * 30), "invalid_amount"),
    "amount negative": (_set("paymentRequirements.amount", "-1"), "invalid_amount"),
    "amount with exponent": (_set("paymentRequirements.amount", "1e4"), "invalid_amount"),
    "timeout infinite": (
        _raw(
            '{"x402Version": 2, "paymentPayload": {"x402Version": 2, "payload": {}, '
            '"accepted": {"maxTimeoutSeconds": Infinity}}, "paymentRequirements": {}}'
        ),
        "invalid_json",
    ),
    "timeout a fraction": (_set("paymentRequirements.maxTimeoutSeconds", 60.5), "invalid_payment_requirements"),
    "version of 5,000 digits": (_raw('{"x402Version": ' + "9" * 5_000 + "}"), "invalid_json"),
    # unicode
    "amount in Arabic-Indic digits": (_set("paymentRequirements.amount", "١٠٠٠٠"), "invalid_amount"),
    "amount a lone surrogate": (_set("paymentRequirements.amount", "\ud800"), "invalid_amount"),
    "payTo with a Cyrillic letter": (_set("paymentRequirements.payTo", "Аgent" + "1" * 39), "invalid_address"),
    "asset in mathematical digits": (_set("paymentRequirements.asset", "𝟙" * 32), "invalid_address"),
    "body in Latin-1": (_raw(b'{"x402Version": 2, "a": "\xe9"}'), "invalid_json"),
    "body in UTF-16": (_raw('{"x402Version": 2}'.encode("utf-16")), "invalid_json"),
}


@pytest.fixture(scope="module")
def facilitator_request(net: Any, agent: Agent, own_facilitator: Process) -> tuple[Keypair, dict[str, Any]]:
    """A buyer and a valid /verify body of its payment, which the mutations break."""
    payer = buyer(net, agent.mint)
    wanted = PaymentRequirements(
        scheme="exact",
        network=DEVNET.caip2,
        asset=str(agent.mint),
        amount=str(PRICE_ATOMIC),
        pay_to=str(agent.owner.pubkey()),
        max_timeout_seconds=60,
        extra={"feePayer": own_facilitator.announce["feePayer"]},
    )
    paid = payment(wanted, payer, latest_blockhash(net))
    return payer, {
        "x402Version": 2,
        "paymentPayload": paid.model_dump(by_alias=True, exclude_none=True),
        "paymentRequirements": wanted.model_dump(by_alias=True, exclude_none=True),
    }


def test_the_valid_request_verifies(own_facilitator: Process, facilitator_request: Any) -> None:
    """The control: unchanged, the request the mutations start from is a valid payment."""
    answer = httpx.post(f"{own_facilitator.url}/verify", json=facilitator_request[1], timeout=30)
    assert answer.status_code == 200 and answer.json()["isValid"] is True, answer.text


@pytest.mark.parametrize("case", list(HOSTILE_BODIES))
def test_hostile_facilitator_bodies_are_400_by_name(
    net: Any, agent: Agent, own_facilitator: Process, facilitator_request: Any, case: str
) -> None:
    payer, valid = facilitator_request
    mutate, reason = HOSTILE_BODIES[case]
    body = mutate(copy.deepcopy(valid))
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    fee_payer = Pubkey.from_string(own_facilitator.announce["feePayer"])
    sol_before, settled_before = (
        sol_balance(net, fee_payer),
        httpx.get(f"{own_facilitator.url}/health").json()["settled"],
    )
    for method in ("verify", "settle"):
        answer = httpx.post(
            f"{own_facilitator.url}/{method}", content=content, headers={"content-type": "application/json"}, timeout=30
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["reason"] == reason and answer.json()["error"].startswith("not a verify/settle request")
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
    assert sol_balance(net, fee_payer) == sol_before
    assert httpx.get(f"{own_facilitator.url}/health").json()["settled"] == settled_before


def test_wire_doctests() -> None:
    assert doctest.testmod(wire).failed == 0
