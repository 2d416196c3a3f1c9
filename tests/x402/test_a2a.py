"""A2A and a2a-x402 against `ghost x402 proxy` on a localnet: the Agent Card built from the chain and checked
with the official `a2a-sdk`, and the a2a-x402 standalone flow driven by the SDK's own client, unchanged."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.card_resolver import parse_agent_card
from a2a.client.client import ClientCallContext
from a2a.client.service_parameters import ServiceParametersFactory, with_a2a_extensions
from a2a.compat.v0_3 import types as types_v03
from a2a.types.a2a_pb2 import AgentCard, GetTaskRequest, Message, SendMessageRequest, Task, TaskState
from a2a.utils.proto_utils import validate_proto_required_fields
from google.protobuf.json_format import MessageToDict
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from x402.schemas import PaymentRequired

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.exceptions import PriceAboveMaximum
from ghostpay.x402.a2a.buyer import A2ABuyer, A2APaymentFailed, user_message as a2a_message
from ghostpay.x402.a2a.protocol import EXTENSION_URI
from ghostpay.x402.a2a.seller import MAX_ATTEMPTS, MAX_BODY_BYTES, MAX_TASKS, A2AMerchant
from ghostpay.x402.buyer import X402Buyer
from ghostpay.x402.buyer.quotes import decode_quotes
from ghostpay.x402.seller import SellerSettings, X402Paywall, paid_call
from tests.cli.conftest import ghost
from tests.sdk.conftest import create_mint, fund
from tests.x402.conftest import (
    GHOST,
    PRICE_ATOMIC,
    Agent,
    Process,
    ServerThread,
    buyer,
    guarded,
    keypair_file,
    proxy_process,
    register_agent,
    sol_balance,
    token_balance,
)

ACTIVATED = ClientCallContext(
    service_parameters=ServiceParametersFactory.create([with_a2a_extensions([EXTENSION_URI])])
)


AGENT_ID = "a2a-translator"
PROXY_ARGS = (
    "--route",
    "POST /translate",
    "--route",
    "POST /free",  # the upstream answers it 405 (GET only): a paid call it fails
)


def validated(card_json: dict[str, Any]) -> AgentCard:
    """The card as the SDK's client reads it, checked against the REQUIRED fields of the A2A 1.0 schema and
    against the SDK's A2A 0.3 model (the fields older clients read)."""
    card = parse_agent_card(json.loads(json.dumps(card_json)))
    validate_proto_required_fields(card)
    types_v03.AgentCard.model_validate(card_json)
    return card


def x402_params(card: AgentCard) -> dict[str, Any]:
    (extension,) = [e for e in card.capabilities.extensions if e.uri == EXTENSION_URI]
    assert extension.required
    return MessageToDict(extension.params)


def user_message(content: dict[str, Any] | str, task: Task | None = None, **metadata: Any) -> Message:
    message = a2a_message(content, task)
    message.metadata.update(metadata)
    return message


async def send(client: Any, message: Message) -> Task:
    async for event in client.send_message(SendMessageRequest(message=message), context=ACTIVATED):
        return event.task  # type: ignore[no-any-return]
    raise AssertionError("no answer")


def meta(task: Task) -> dict[str, Any]:
    return MessageToDict(task.status.message.metadata)


async def signed_payload(gp: GhostPayClient, required: PaymentRequired, url: str, amount: int | None = None) -> Any:
    """GhostPay's buyer signing the task's requirement (the record added): (payload, its RecordedPayment);
    `amount`: only the payload of a transfer of that instead, still naming the offered requirement as accepted."""
    payer = X402Buyer(gp)
    (quote,) = await decode_quotes(gp, required, url)
    if amount is None:
        return await payer.sign(required, 0, quote)
    lowered = required.model_copy(update={"accepts": [required.accepts[0].model_copy(update={"amount": str(amount)})]})
    payload, _ = await payer.sign(lowered, 0, quote)
    return payload.model_copy(update={"accepted": required.accepts[0]})


def dumped(payload: Any) -> Any:
    return payload.model_dump(mode="json", by_alias=True, exclude_none=True)


# the card -------------------------------------------------------------------------------------------------


def test_the_proxy_serves_the_card_of_its_agent(proxy: Process, agent: Agent) -> None:
    card = validated(httpx.get(f"{proxy.url}/.well-known/agent-card.json").json())
    assert (card.name, card.description) == ("A2A-Translator", "A2A-Translator")
    assert [(i.url, i.protocol_binding, i.protocol_version) for i in card.supported_interfaces] == [
        (f"{proxy.url}/translate", "JSONRPC", "1.0"),
        (f"{proxy.url}/translate", "JSONRPC", "0.3"),
        (f"{proxy.url}/free", "JSONRPC", "1.0"),
        (f"{proxy.url}/free", "JSONRPC", "0.3"),
    ]
    assert [(s.id, list(s.tags)[:1]) for s in card.skills] == [("test", ["test"])]
    params = x402_params(card)
    assert params["accepts"] == [{"asset": str(agent.mint), "amount": str(PRICE_ATOMIC), "decimals": 6}]
    served = httpx.get(f"{proxy.url}/.well-known/agent-card.json").json()
    assert type(served["capabilities"]["extensions"][0]["params"]["x402Version"]) is int  # 2, not Struct's 2.0
    assert (params["payTo"], params["agent"]) == (str(agent.owner.pubkey()), str(agent.address))


def test_the_card_of_an_agent_with_ten_tokens(net: Any, tmp_path: Path) -> None:
    """`ghost agent card`: ten accepted mints (the program's maximum), each with its price, in a valid card."""
    owner = fund(net)
    mints = [create_mint(net, 6) for _ in range(10)]
    prices = {mint: Decimal(i + 1) / 100 for i, mint in enumerate(mints)}

    async def register() -> Pubkey:
        async with GhostPayClient(net.http_url, owner, ws_url=net.ws_url) as gp:
            settings = X402Settings(prices, "http://127.0.0.1/ten")  # type: ignore[arg-type]
            return (await gp.register_agent("ten", "Ten", capabilities=["a", "b"], x402=settings)).address

    address = asyncio.run(register())
    out = subprocess.run(
        [GHOST, "-u", net.http_url, "agent", "card", str(address)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    card = validated(json.loads(out.stdout))
    assert [i.url for i in card.supported_interfaces] == ["http://127.0.0.1/ten"] * 2
    assert [s.id for s in card.skills] == ["a", "b"]
    accepts = x402_params(card)["accepts"]
    assert [(a["asset"], a["amount"]) for a in accepts] == [
        (str(m), str((i + 1) * 10_000)) for i, m in enumerate(mints)
    ]
    missing = subprocess.run(
        [GHOST, "-u", net.http_url, "agent", "card", str(Keypair().pubkey())], capture_output=True, text=True
    )
    assert missing.returncode == 1 and missing.stderr.startswith("error:"), missing.stderr


def test_a_price_change_reaches_the_card(net: Any, upstream: Any, facilitator: Process, tmp_path: Path) -> None:
    """The card follows the account as the 402 does: a new price, description or capabilities are served without
    a restart (polled); a closed account's card is no longer served."""
    agent = register_agent(net, "a2a-repriced")
    proc = proxy_process(net, agent, upstream[1].url, facilitator.url, tmp_path, "--route", "POST /x").start()
    try:
        url = f"{proc.url}/.well-known/agent-card.json"
        assert x402_params(validated(httpx.get(url).json()))["accepts"][0]["amount"] == str(PRICE_ATOMIC)
        agent.run("set_price", {agent.mint: Decimal("0.025")})
        deadline = time.monotonic() + 30
        while x402_params(validated(httpx.get(url).json()))["accepts"][0]["amount"] != "25000":
            assert time.monotonic() < deadline, "the new price never reached the card"
            time.sleep(0.05)
        # the descriptive fields too (the offer used to follow only the flags, payee and prices)
        agent.run("update_agent", description="Spanish, fast", capabilities=["translate", "detect"])
        while [s["id"] for s in httpx.get(url).json()["skills"]] != ["translate", "detect"]:
            assert time.monotonic() < deadline + 30, "the new capabilities never reached the card"
            time.sleep(0.05)
        assert validated(httpx.get(url).json()).description == "Spanish, fast"
        agent.run("close_agent")  # no account, no card (nothing to describe), and no stale one
        while (closed := httpx.get(url)).status_code != 503:
            assert time.monotonic() < deadline + 60, "the closed agent's card is still served"
            time.sleep(0.05)
        assert closed.json()["error"] == "agent_card_unavailable"
    finally:
        proc.stop()


# the a2a-x402 standalone flow -------------------------------------------------------------------------------


async def test_the_sdk_client_pays_through_the_proxy(net: Any, proxy: Process, agent: Agent, upstream: Any) -> None:
    """message/send → input-required with the requirements → payment-submitted on the same task → settled
    through the facilitator with GhostPay's record → completed, receipts, the upstream's answer."""
    service, _ = upstream
    keypair = buyer(net, agent.mint)
    calls, payee = len(service.calls), token_balance(net, agent.owner.pubkey(), agent.mint)
    client = await create_client(proxy.url, ClientConfig(streaming=False))
    async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
        task = await send(client, user_message({"text": "hola"}))
        assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED and meta(task)["x402.payment.status"] == (
            "payment-required"
        )
        required = PaymentRequired.model_validate(meta(task)["x402.payment.required"])
        assert [(r.asset, r.amount, r.pay_to) for r in required.accepts] == [
            (str(agent.mint), str(PRICE_ATOMIC), str(agent.owner.pubkey()))
        ]
        assert len(service.calls) == calls  # nothing served before the payment
        payload, recorded = await signed_payload(gp, required, f"{proxy.url}/translate")
        done = await send(
            client,
            user_message(
                "Here is the payment authorization.",
                task,
                **{"x402.payment.status": "payment-submitted", "x402.payment.payload": dumped(payload)},
            ),
        )
        assert done.id == task.id and done.status.state == TaskState.TASK_STATE_COMPLETED, meta(done)
        assert meta(done)["x402.payment.status"] == "payment-completed"
        (receipt,) = meta(done)["x402.payment.receipts"]
        assert receipt["success"] and receipt["payer"] == str(keypair.pubkey())
        on_chain = await gp.get_receipt(agent.address, recorded.reference)  # GhostPay's record of this payment
    assert on_chain is not None and str(on_chain.signature) == receipt["transaction"]
    assert on_chain.payer == keypair.pubkey() and on_chain.amount_atomic == PRICE_ATOMIC
    kept = await client.get_task(GetTaskRequest(id=task.id), context=ACTIVATED)
    assert kept.status.state == TaskState.TASK_STATE_COMPLETED and not kept.artifacts  # the answer is not kept
    assert meta(kept)["x402.payment.receipts"] == meta(done)["x402.payment.receipts"]
    answer = MessageToDict(done.artifacts[0].parts[0].data)
    assert json.loads(answer["echo"]) == {"text": "hola"} and answer["payer"] == str(keypair.pubkey())
    assert len(service.calls) == calls + 1 and service.calls[-1]["path"] == "/translate"
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == payee + PRICE_ATOMIC
    await client.close()


def rpc(url: str, method: str, params: dict[str, Any], header: str = "X-A2A-Extensions") -> dict[str, Any]:
    """A2A 0.3's JSON-RPC, as the a2a-x402 spec writes it, with the extension in the legacy header."""
    body = {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": method, "params": params}
    answer = httpx.post(url, json=body, headers={header: EXTENSION_URI} if header else {}, timeout=60)
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


def legacy_message(task_id: str | None = None, **metadata: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "kind": "message",
        "messageId": str(uuid.uuid4()),
        "role": "user",
        "parts": [{"kind": "text", "text": "hola"}],
    }
    if task_id:
        message["taskId"] = task_id
    if metadata:
        message["metadata"] = metadata
    return {"message": message}


async def test_a_bad_payload_gets_the_named_error_and_moves_nothing(
    net: Any, proxy: Process, agent: Agent, upstream: Any, fee_payer: Keypair
) -> None:
    """A transfer below the price (naming the offered requirement): the facilitator's named refusal comes back
    in x402.payment.error (the spec's INVALID_AMOUNT) and the receipts; no token or lamport moved, the
    upstream was not called, and the task still waits for a payment."""
    service, _ = upstream
    keypair = buyer(net, agent.mint)
    url = f"{proxy.url}/translate"
    opened = rpc(url, "message/send", legacy_message())["result"]
    assert (opened["kind"], opened["status"]["state"]) == ("task", "input-required")
    required_json = opened["status"]["message"]["metadata"]["x402.payment.required"]
    assert type(required_json["x402Version"]) is int and type(required_json["accepts"][0]["maxTimeoutSeconds"]) is int
    required = PaymentRequired.model_validate(required_json)
    calls = len(service.calls)
    before = [
        token_balance(net, keypair.pubkey(), agent.mint),
        token_balance(net, agent.owner.pubkey(), agent.mint),
        sol_balance(net, keypair.pubkey()),
        sol_balance(net, fee_payer.pubkey()),
    ]
    async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
        payload = await signed_payload(gp, required, url, amount=PRICE_ATOMIC - 1)
    submitted = {"x402.payment.status": "payment-submitted", "x402.payment.payload": dumped(payload)}
    task = rpc(url, "message/send", legacy_message(opened["id"], **submitted), header="A2A-Extensions")["result"]
    metadata = task["status"]["message"]["metadata"]
    assert task["status"]["state"] == "input-required" and metadata["x402.payment.status"] == "payment-failed"
    assert metadata["x402.payment.error"] == "INVALID_AMOUNT"
    assert metadata["x402.payment.receipts"][-1]["errorReason"] == "invalid_exact_svm_payload_amount_insufficient"
    assert not metadata["x402.payment.receipts"][-1]["success"]
    garbage = {"x402.payment.status": "payment-submitted", "x402.payment.payload": {"x402Version": 2}}
    task = rpc(url, "message/send", legacy_message(opened["id"], **garbage))["result"]
    assert task["status"]["message"]["metadata"]["x402.payment.error"] == "invalid_payload"
    after = [
        token_balance(net, keypair.pubkey(), agent.mint),
        token_balance(net, agent.owner.pubkey(), agent.mint),
        sol_balance(net, keypair.pubkey()),
        sol_balance(net, fee_payer.pubkey()),
    ]
    assert after == before and len(service.calls) == calls


def test_the_task_never_completes_unpaid(proxy: Process, upstream: Any) -> None:
    """Without the extension: refused. A follow-up without payment, a payment-submitted without payload, a
    get: the task stays input-required and the upstream is never called; after MAX_ATTEMPTS refusals the
    task fails, and a payment for a finished task is refused."""
    service, _ = upstream
    url = f"{proxy.url}/translate"
    calls = len(service.calls)
    refused = rpc(url, "message/send", legacy_message(), header="A2A-Version")
    assert refused["error"]["code"] == -32008 and EXTENSION_URI in refused["error"]["message"]
    task_id = rpc(url, "message/send", legacy_message())["result"]["id"]
    again = rpc(url, "message/send", legacy_message(task_id))["result"]
    assert again["status"]["state"] == "input-required"
    assert again["status"]["message"]["metadata"]["x402.payment.status"] == "payment-required"
    for _ in range(MAX_ATTEMPTS):
        empty = rpc(url, "message/send", legacy_message(task_id, **{"x402.payment.status": "payment-submitted"}))
    assert empty["result"]["status"]["state"] == "failed"
    assert rpc(url, "tasks/get", {"id": task_id})["result"]["status"]["state"] == "failed"
    late = rpc(url, "message/send", legacy_message(task_id, **{"x402.payment.status": "payment-submitted"}))
    assert late["error"]["code"] == -32004
    assert rpc(url, "tasks/get", {"id": "nope"})["error"]["code"] == -32001
    assert len(service.calls) == calls


# the GhostPay A2A buyer -------------------------------------------------------------------------------------


async def test_the_a2a_buyer_pays_under_its_guards(
    net: Any, proxy: Process, agent: Agent, upstream: Any, tmp_path: Path
) -> None:
    """A2ABuyer: the card read, the task paid within the guards, the record verified, the spend in the ledger;
    with a max price below the agent's, refused before anything is signed."""
    keypair = buyer(net, agent.mint)
    wallet = guarded(tmp_path / "ledger.sqlite3", daily=Decimal("1"))
    async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
        async with A2ABuyer(gp, guards=wallet) as a2a:
            paid = await a2a.call(f"{proxy.url}/translate", {"text": "hi"})
        async with A2ABuyer(gp, guards=wallet, max_price=Decimal("0.001")) as cheap:
            with pytest.raises(PriceAboveMaximum):
                await cheap.call(proxy.url, "hi")
    assert paid.task.status.state == TaskState.TASK_STATE_COMPLETED and paid.payment is not None
    assert paid.payment.settled and paid.payment.verified and json.loads(paid.answer["echo"]) == {"text": "hi"}
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC
    [row] = list(wallet.ledger.entries(str(keypair.pubkey())))
    assert row["state"] == "settled" and row["signature"] == paid.payment.signature


async def test_the_a2a_buyer_reports_a_refused_payment(
    net: Any, proxy: Process, agent: Agent, upstream: Any, tmp_path: Path
) -> None:
    """The agent does not settle the payment (its upstream fails the call: 405): A2APaymentFailed with the
    agent's x402.payment.error, the reservation released, nothing moved."""
    keypair = buyer(net, agent.mint)
    wallet = guarded(tmp_path / "ledger.sqlite3", daily=Decimal("1"))
    async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp, A2ABuyer(gp, guards=wallet) as a2a:
        with pytest.raises(A2APaymentFailed) as failed:
            await a2a.call(f"{proxy.url}/free", "hi")
    assert failed.value.code == "http_405" and failed.value.task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    [row] = list(wallet.ledger.entries(str(keypair.pubkey())))
    assert row["state"] == "released" and token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000


def test_cli_call_a2a(net: Any, proxy: Process, agent: Agent, tmp_path: Path) -> None:
    """`ghost x402 call --a2a`: asks before paying (refused without a terminal), pays within --max-price, prints
    the artifact and the verified payment; a message needs --json or --data."""
    keypair = buyer(net, agent.mint)
    key = keypair_file(tmp_path, keypair)
    env = {"GHOSTPAY_HOME": str(tmp_path / "home"), "GHOST_URL": net.http_url, "GHOST_CONFIG": ""}
    url = f"{proxy.url}/translate"
    refused = ghost("-k", key, "x402", "call", "--a2a", url, "--json", '{"text": "cli"}', env=env)
    assert "needs your confirmation" in refused.one_line_error(1)
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000
    paid = ghost("-k", key, "x402", "call", "--a2a", url, "--json", '{"text": "cli"}', "--max-price", "0.01", env=env)
    assert paid.code == 0, paid.stderr
    assert paid.data["payment"]["settled"] and paid.data["payment"]["verified"]
    assert json.loads(paid.data["answer"]["echo"]) == {"text": "cli"}
    assert paid.data["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    text = ghost("-k", key, "x402", "call", "--a2a", url, "--data", "hola", "--yes", env=env, output=None)
    assert text.code == 0 and json.loads(text.stdout)["echo"] == "hola", text.stderr
    assert "recorded on chain" in text.stderr
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000 - 2 * PRICE_ATOMIC
    assert ghost("-k", key, "x402", "call", "--a2a", url, "--yes", env=env).code == 2


# the seller middleware --------------------------------------------------------------------------------------


async def test_the_middleware_serves_the_card_and_takes_a2a_calls(net: Any, agent: Agent, facilitator: Process) -> None:
    """`X402Paywall` in an app: the same card at /.well-known/agent-card.json, and a paid A2A 1.0 call reaches
    the handler with its `paid_call` (verified on chain); the free route stays free."""
    handled: list[Any] = []

    async def summarize(request: Request) -> JSONResponse:
        call = paid_call(request)
        handled.append(call)
        return JSONResponse({"summary": (await request.json())["text"][:5], "verified": call.verified_on_chain})

    app = Starlette(routes=[Route("/summarize", summarize, methods=["POST"])])
    app.add_middleware(
        X402Paywall,
        settings=SellerSettings(
            agent.address, net.http_url, facilitator.url, routes=("POST /summarize",), ws_url=net.ws_url
        ),
    )
    keypair = buyer(net, agent.mint)
    with ServerThread(app) as served:
        card = validated(httpx.get(f"{served.url}/.well-known/agent-card.json").json())
        async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp, A2ABuyer(gp) as a2a:
            paid = await a2a.call(served.url, {"text": "a long text"})
    assert [i.url for i in card.supported_interfaces] == [f"{served.url}/summarize"] * 2
    assert paid.answer == {"summary": "a lon", "verified": True} and paid.payment and paid.payment.verified
    assert [(c.payer, c.amount) for c in handled] == [(keypair.pubkey(), PRICE_ATOMIC)]


def test_an_app_without_a2a_routes_keeps_its_own_card(net: Any, agent: Agent, facilitator: Process) -> None:
    """Priced routes that take no POST have no A2A interface: the app's own /.well-known/agent-card.json passes."""

    async def own_card(request: Request) -> JSONResponse:
        return JSONResponse({"name": "the app's own"})

    app = Starlette(routes=[Route("/.well-known/agent-card.json", own_card)])
    settings = SellerSettings(agent.address, net.http_url, facilitator.url, routes=("GET /x",), ws_url=net.ws_url)
    app.add_middleware(X402Paywall, settings=settings)
    with ServerThread(app) as served:
        assert httpx.get(f"{served.url}/.well-known/agent-card.json").json() == {"name": "the app's own"}


def test_the_task_state_is_bounded(proxy: Process) -> None:
    """At most MAX_TASKS tasks are kept (the oldest forgotten first), and a request over MAX_BODY_BYTES is refused
    before anything is kept."""
    offer = SimpleNamespace(unavailable=None)
    seller = SimpleNamespace(
        settings=SimpleNamespace(routes=("POST /x",)),
        watch=SimpleNamespace(offer=offer),
        requirements=list,
        required=lambda *args: PaymentRequired(accepts=[]),
    )
    merchant = A2AMerchant(seller, pay=None)  # type: ignore[arg-type]
    scope = {"path": "/x", "headers": [(b"host", b"seller")]}
    opened = [merchant.open_task(user_message("x"), scope, "POST /x").id for _ in range(MAX_TASKS + 3)]
    assert len(merchant.tasks) == MAX_TASKS and list(merchant.tasks) == opened[3:]
    big = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {"text": "x" * MAX_BODY_BYTES}}}
    answer = httpx.post(f"{proxy.url}/translate", json=big, headers={"A2A-Extensions": EXTENSION_URI}).json()
    assert answer["error"]["code"] == -32600 and str(MAX_BODY_BYTES) in answer["error"]["message"]
