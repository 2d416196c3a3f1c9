"""The seller middleware through `ghost facilitator start`, paid by the official x402 client unchanged."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from spl.token.instructions import get_associated_token_address
from starlette.requests import Request
from x402 import x402Client, x402Facilitator
from x402.http.clients import x402HttpxClient
from x402.http.utils import decode_payment_required_header, decode_payment_response_header
from x402.mechanisms.svm.exact.register import register_exact_svm_client, register_exact_svm_facilitator
from x402.mechanisms.svm.signers import FacilitatorKeypairSigner, KeypairSigner
from x402.schemas.v1 import PaymentRequiredV1

from ghostpay.x402.networks import DEVNET
from ghostpay.x402.seller import SellerSettings, X402Paywall, X402Seller, paid_call
from ghostpay.x402.seller_offer import PaywallError
from tests.sdk.conftest import create_mint, fund
from tests.x402.conftest import (
    PRICE_ATOMIC,
    Agent,
    Process,
    ServerThread,
    Shop,
    buyer,
    official_client,
    pay,
    register_agent,
    token_balance,
)


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:
    return register_agent(net, "seller")


@pytest.fixture(scope="module")
def shop(agent: Agent, facilitator: Process) -> Iterator[Shop]:
    with Shop(agent, facilitator.url) as running:
        yield running


def test_unpaid_request_gets_both_wire_formats(shop: Shop, agent: Agent, facilitator: Process) -> None:
    answer = httpx.get(f"{shop.url}/paid")
    assert answer.status_code == 402
    required = decode_payment_required_header(answer.headers["payment-required"])
    assert required.x402_version == 2
    [accept] = required.accepts
    assert (accept.scheme, accept.network, accept.asset, accept.amount, accept.pay_to) == (
        "exact",
        DEVNET.caip2,
        str(agent.mint),
        str(PRICE_ATOMIC),
        str(agent.owner.pubkey()),
    )
    assert accept.extra["feePayer"] == facilitator.announce["feePayer"]
    assert accept.extra["ghostpay"] == {
        "agent": str(agent.address),
        "programId": str(shop.seller.settings.program_id),
        "recordAfterMemo": True,
        "rentPayer": facilitator.announce["feePayer"],
    }
    legacy = PaymentRequiredV1.model_validate(answer.json())
    assert legacy.accepts[0].network == "solana-devnet" and legacy.accepts[0].max_amount_required == str(PRICE_ATOMIC)
    assert legacy.accepts[0].resource == f"{shop.url}/paid"
    assert httpx.get(f"{shop.url}/free").text == "free"


def test_official_client_pays_and_the_handler_sees_who_paid(shop: Shop, agent: Agent, net: Any) -> None:
    payer = buyer(net, agent.mint)
    before = token_balance(net, agent.owner.pubkey(), agent.mint)
    answer = pay(net, payer, f"{shop.url}/paid")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "payer": str(payer.pubkey()),
        "amount": PRICE_ATOMIC,
        "mint": str(agent.mint),
        "verified": False,
    }
    settled = decode_payment_response_header(answer.headers["payment-response"])
    assert settled.success and settled.payer == str(payer.pubkey()) and settled.network == DEVNET.caip2
    status = net.rpc("getSignatureStatuses", [settled.transaction])["result"]["value"][0]
    assert status["err"] is None and status["confirmationStatus"] in ("confirmed", "finalized")
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == before + PRICE_ATOMIC
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC
    record = shop.seller.calls[-1]
    assert (record.route, record.status, record.settled, record.transaction) == (
        "GET /paid",
        200,
        True,
        settled.transaction,
    )
    assert record.settle_ms > 0 and record.total_ms >= record.handler_ms + record.settle_ms  # verify, handler, settle
    assert shop.seller.stats()["byStatus"]["200"] >= 1


def test_v1_client_pays_with_x_payment(shop: Shop, agent: Agent, net: Any) -> None:
    """A v1 client reads the body and pays with X-PAYMENT; the answer carries X-PAYMENT-RESPONSE."""
    payer = buyer(net, agent.mint)
    required = PaymentRequiredV1.model_validate(httpx.get(f"{shop.url}/paid").json())
    payload = asyncio.run(official_client(net, payer).create_payment_payload(required))
    assert payload.x402_version == 1
    header = base64.b64encode(payload.model_dump_json(by_alias=True, exclude_none=True).encode()).decode()
    answer = httpx.get(f"{shop.url}/paid", headers={"X-PAYMENT": header}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert decode_payment_response_header(answer.headers["x-payment-response"]).success
    assert "payment-response" not in answer.headers
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC


def test_a_failing_handler_is_not_charged(shop: Shop, agent: Agent, net: Any) -> None:
    payer = buyer(net, agent.mint)
    answer = pay(net, payer, f"{shop.url}/fails")
    assert answer.status_code == 500 and answer.text == "broken"
    assert "payment-response" not in answer.headers
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
    assert shop.seller.calls[-1].status == 500 and not shop.seller.calls[-1].settled


def current_price(url: str) -> str | None:
    answer = httpx.get(url)
    if answer.status_code != 402:
        return None
    return decode_payment_required_header(answer.headers["payment-required"]).accepts[0].amount


def test_price_change_on_chain_reaches_the_402_within_a_second(net: Any, facilitator: Process) -> None:
    agent = register_agent(net, "repriced")
    with Shop(agent, facilitator.url) as shop:
        assert current_price(f"{shop.url}/paid") == str(PRICE_ATOMIC)
        agent.run("set_price", {agent.mint: Decimal("0.025")})
        changed = time.monotonic()  # set_price returns once the transaction is confirmed
        while current_price(f"{shop.url}/paid") != "25000":
            assert time.monotonic() - changed < 1.0, "the new price did not reach the 402 within a second"
            time.sleep(0.01)
        payer = buyer(net, agent.mint)
        answer = pay(net, payer, f"{shop.url}/paid")  # the client reads the new price: it pays 25,000
        assert answer.status_code == 200
        assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - 25_000


def test_inactive_or_disabled_agent_answers_503(net: Any, facilitator: Process) -> None:
    agent = register_agent(net, "closing")
    with Shop(agent, facilitator.url) as shop:
        agent.run("deactivate")
        deadline = time.monotonic() + 5
        while (answer := httpx.get(f"{shop.url}/paid")).status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert answer.json()["error"] == "agent_unavailable" and "inactive" in answer.json()["message"]
        payer = buyer(net, agent.mint)
        assert pay(net, payer, f"{shop.url}/paid").status_code == 503
        assert shop.handled == [] and token_balance(net, payer.pubkey(), agent.mint) == 1_000_000
        agent.run("activate")
        agent.run("disable_x402")
        deadline = time.monotonic() + 5
        while "disabled" not in httpx.get(f"{shop.url}/paid").text:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert httpx.get(f"{shop.url}/paid").status_code == 503
        assert httpx.get(f"{shop.url}/free").text == "free"


def test_missing_payee_token_account_refuses_to_start_or_is_created(net: Any, facilitator: Process) -> None:
    agent = register_agent(net, "unready", payee_account=False)

    async def start(**settings: Any) -> None:
        seller = X402Seller(SellerSettings(agent.address, net.http_url, facilitator.url, ws_url=net.ws_url, **settings))
        try:
            await seller.start()
        finally:
            await seller.stop()

    with pytest.raises(
        PaywallError, match=f"payment address {agent.owner.pubkey()} has no token account for {agent.mint}"
    ):
        asyncio.run(start())
    asyncio.run(start(payee_accounts="create", keypair=agent.owner))
    payee = get_associated_token_address(agent.owner.pubkey(), agent.mint)
    assert net.rpc("getAccountInfo", str(payee), {"encoding": "base64"})["result"]["value"] is not None
    with Shop(agent, facilitator.url) as shop:  # the first buyer now succeeds
        assert pay(net, buyer(net, agent.mint), f"{shop.url}/paid").status_code == 200


def test_unknown_agent_and_unreachable_facilitator_refuse_to_start(net: Any, facilitator: Process) -> None:
    from solders.pubkey import Pubkey

    async def start(agent: Pubkey, url: str) -> None:
        seller = X402Seller(SellerSettings(agent, net.http_url, url, ws_url=net.ws_url))
        try:
            await seller.start()
        finally:
            await seller.stop()

    with pytest.raises(PaywallError, match="no GhostPay agent at"):
        asyncio.run(start(Pubkey.new_unique(), facilitator.url))
    with pytest.raises(PaywallError, match="facilitator http://127.0.0.1:9"):
        asyncio.run(start(Pubkey.new_unique(), "http://127.0.0.1:9"))


def test_paid_call_json_is_decodable(shop: Shop) -> None:
    """The 402's v2 header is base64 JSON in camelCase, as every official client expects."""
    raw = json.loads(base64.b64decode(httpx.get(f"{shop.url}/paid").headers["payment-required"]))
    assert raw["x402Version"] == 2 and raw["accepts"][0]["payTo"] and raw["resource"]["url"].endswith("/paid")


def test_official_facilitator_logic_in_process_behind_fastapi(net: Any) -> None:
    """The same paid call with the package's own facilitator logic in-process instead of ours, in a FastAPI app."""
    agent = register_agent(net, "officially")
    official = register_exact_svm_facilitator(
        x402Facilitator(), FacilitatorKeypairSigner(fund(net), net.http_url), [DEVNET.caip2]
    )
    app = FastAPI()

    @app.get("/weather")
    async def weather(request: Request) -> dict[str, str]:
        return {"payer": str(paid_call(request).payer)}

    app.add_middleware(
        X402Paywall,
        settings=SellerSettings(agent.address, net.http_url, official, routes=("GET /weather",), ws_url=net.ws_url),
    )
    payer = buyer(net, agent.mint)
    with ServerThread(app) as server:
        answer = pay(net, payer, f"{server.url}/weather")
    assert answer.status_code == 200 and answer.json() == {"payer": str(payer.pubkey())}
    assert decode_payment_response_header(answer.headers["payment-response"]).success
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC


def test_a_mint_added_on_chain_is_priced_and_gets_its_payee_account(net: Any, facilitator: Process) -> None:
    agent = register_agent(net, "growing")
    second = create_mint(net)
    with Shop(agent, facilitator.url, payee_accounts="create", keypair=agent.owner) as shop:
        agent.run("set_tokens", {agent.mint: Decimal("0.01"), second: Decimal("0.02")})
        payee = get_associated_token_address(agent.owner.pubkey(), second)
        deadline = time.monotonic() + 5
        while net.rpc("getAccountInfo", str(payee), {"encoding": "base64"})["result"]["value"] is None:
            assert time.monotonic() < deadline, "the new mint's payee account was not created"
            time.sleep(0.05)
        accepts = decode_payment_required_header(httpx.get(f"{shop.url}/paid").headers["payment-required"]).accepts
        assert [(a.asset, a.amount) for a in accepts] == [(str(agent.mint), "10000"), (str(second), "20000")]
        payer = buyer(net, second)
        client = x402Client(lambda version, options: next(o for o in options if o.asset == str(second)))
        register_exact_svm_client(client, KeypairSigner(payer), rpc_url=net.http_url)
        client.set_spend_controls({"allowed_assets": True})

        async def call() -> httpx.Response:
            async with x402HttpxClient(client, timeout=30) as http:
                return await http.get(f"{shop.url}/paid")

        answer = asyncio.run(call())
        assert answer.status_code == 200 and answer.json()["mint"] == str(second) and answer.json()["amount"] == 20_000
        assert token_balance(net, payer.pubkey(), second) == 1_000_000 - 20_000


def test_settings_take_what_a_user_types(agent: Agent, facilitator: Process, net: Any, tmp_path: Any) -> None:
    """The README's middleware as a user writes it: the agent as text (its address, or its agent_id with the
    owner's keypair file), a moniker or URL for the RPC. Before, a text agent started and then answered every
    request 500; now the settings hold the agent's address, and a value that cannot work is refused at once."""
    from tests.x402.conftest import keypair_file

    owner_file = str(keypair_file(tmp_path, agent.owner))
    by_address = SellerSettings(agent=str(agent.address), rpc_url=net.http_url, facilitator=facilitator.url)
    by_id = SellerSettings(agent="seller", keypair=owner_file, rpc_url=net.http_url, facilitator=facilitator.url)
    assert by_address.agent == by_id.agent == agent.address and by_id.keypair.pubkey() == agent.owner.pubkey()
    assert SellerSettings(agent=agent.address, rpc_url="localnet").rpc_url == "http://127.0.0.1:8899"
    with pytest.raises(PaywallError, match="'seller' is an agent_id: pass its owner's keypair= too"):
        SellerSettings(agent="seller", rpc_url=net.http_url)
    with pytest.raises(PaywallError, match="is not a valid agent address"):
        SellerSettings(agent="x" * 40, rpc_url=net.http_url)

    app = FastAPI()

    @app.get("/paid")
    async def paid(request: Request) -> dict[str, str]:
        return {"payer": str(paid_call(request).payer)}

    app.add_middleware(
        X402Paywall,
        settings=SellerSettings(
            agent="seller",
            keypair=owner_file,
            rpc_url=net.http_url,
            facilitator=facilitator.url,
            routes=["GET /paid"],
            ws_url=net.ws_url,
        ),
    )
    payer = buyer(net, agent.mint)
    before = token_balance(net, agent.owner.pubkey(), agent.mint)
    with ServerThread(app) as server:
        unpaid = httpx.get(f"{server.url}/paid")
        assert unpaid.status_code == 402
        [accept] = decode_payment_required_header(unpaid.headers["payment-required"]).accepts
        assert accept.extra["ghostpay"]["agent"] == str(agent.address)
        answer = pay(net, payer, f"{server.url}/paid")
        assert answer.status_code == 200 and answer.json() == {"payer": str(payer.pubkey())}
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == before + PRICE_ATOMIC
    assert token_balance(net, payer.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC
