"""GhostPay's verified record over x402, at a seller that settles the buyer's transaction itself (as fee
payer) and can then answer anything, a 500 included, which `ghost facilitator`'s sellers cannot (they
settle only answers below 400). The buyer's transaction, [limit, price, TransferChecked, Memo, record],
must be accepted by the program as it is; `feedback="auto"` rates what happened.
(Through `ghost facilitator`: tests/x402/test_buyer_ghostpay.py.)
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from solders.keypair import Keypair
from solders.transaction import VersionedTransaction
from x402.http.utils import encode_payment_required_header
from x402.mechanisms.svm.constants import (
    COMPUTE_BUDGET_PROGRAM_ADDRESS,
    ERR_UNKNOWN_FIFTH_INSTRUCTION,
    MEMO_PROGRAM_ADDRESS,
    TOKEN_PROGRAM_ADDRESS,
)
from x402.schemas import PaymentRequired, PaymentRequirements

from ghostpay.client import GhostPayClient
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402 import x402_http
from ghostpay.x402.buyer import payment_record
from ghostpay.x402.networks import DEVNET
from tests.localnet.conftest import LocalnetProcess
from tests.sdk.conftest import fund
from tests.x402.conftest import PRICE_ATOMIC, Agent, ServerThread, buyer, register_agent, token_balance

COUNTER = itertools.count()


def recording_requirement(agent: Agent, fee_payer: Keypair) -> PaymentRequirements:
    """The agent's price, asking a GhostPay buyer for the record after the Memo."""
    return PaymentRequirements(
        scheme="exact",
        network=DEVNET.caip2,
        asset=str(agent.mint),
        amount=str(PRICE_ATOMIC),
        pay_to=str(agent.owner.pubkey()),
        max_timeout_seconds=60,
        extra={
            "feePayer": str(fee_payer.pubkey()),
            "ghostpay": {"agent": str(agent.address), "programId": str(PROGRAM_ID), "recordAfterMemo": True},
        },
    )


def self_settling_seller(net: LocalnetProcess, agent: Agent, fee_payer: Keypair, *, status: int = 200) -> FastAPI:
    requirement = recording_requirement(agent, fee_payer)
    app = FastAPI()
    app.state.transactions = []

    @app.get("/paid")
    async def paid(request: Request) -> Response:
        header = request.headers.get("payment-signature")
        if not header:
            return JSONResponse(
                {},
                status_code=402,
                headers={"PAYMENT-REQUIRED": encode_payment_required_header(PaymentRequired(accepts=[requirement]))},
            )
        tx = VersionedTransaction.from_bytes(
            base64.b64decode(json.loads(base64.b64decode(header))["payload"]["transaction"])
        )
        app.state.transactions.append(tx)
        signed = VersionedTransaction.populate(
            tx.message, [fee_payer.sign_message(bytes([0x80]) + bytes(tx.message)), *tx.signatures[1:]]
        )
        async with GhostPayClient(net.http_url, fee_payer, ws_url=net.ws_url) as gp:
            signature = (await gp.rpc.send_raw_transaction(bytes(signed))).value
            await gp._confirm(signature, None)
        settled = {
            "success": True,
            "transaction": str(signature),
            "network": DEVNET.caip2,
            "payer": str(tx.message.account_keys[1]),
        }
        return JSONResponse(
            {"answer": 42},
            status_code=status,
            headers={"PAYMENT-RESPONSE": base64.b64encode(json.dumps(settled).encode()).decode()},
        )

    return app


@pytest.fixture
def agent(net: Any) -> Agent:
    """A fresh agent priced at 0.01 (registered outside the test's event loop)."""
    return register_agent(net, f"recorded-{next(COUNTER)}")


async def test_record_after_the_memo_verified_and_rated(net: Any, agent: Agent) -> None:
    keypair = buyer(net, agent.mint)
    app = self_settling_seller(net, agent, fund(net))
    with ServerThread(app) as shop:
        async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
            before = await gp.get_reputation(agent.address)
            async with x402_http(gp, feedback="auto") as http:
                response = await http.get(shop.url + "/paid")
            record = payment_record(response)
            assert response.status_code == 200 and record.settled and record.verified and record.feedback
            receipt = await gp.get_receipt(agent.address, record.reference)
            assert receipt is not None and receipt.payer == keypair.pubkey() and receipt.amount_atomic == PRICE_ATOMIC
            assert str(receipt.signature) == record.signature
            stats = await gp.get_payer_stats(agent.address)
            assert str(stats.address) == record.payer_stats and (stats.paid_calls, stats.rated_calls) == (1, 1)
            after = await gp.get_reputation(agent.address)
    assert after.metrics.successful_payments == before.metrics.successful_payments + 1
    assert after.metrics.rating_count == before.metrics.rating_count + 1 and after.metrics.total_rating >= 4
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == PRICE_ATOMIC
    # the official layout with the record after the Memo
    message = app.state.transactions[0].message
    programs = [str(message.account_keys[ix.program_id_index]) for ix in message.instructions]
    assert programs == [COMPUTE_BUDGET_PROGRAM_ADDRESS] * 2 + [
        TOKEN_PROGRAM_ADDRESS,
        MEMO_PROGRAM_ADDRESS,
        str(PROGRAM_ID),
    ]


async def test_auto_feedback_rates_a_500_after_settlement_as_failed(net: Any, agent: Agent) -> None:
    keypair = buyer(net, agent.mint)
    with ServerThread(self_settling_seller(net, agent, fund(net), status=500)) as shop:
        async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
            async with x402_http(gp, feedback="auto") as http:
                response = await http.get(shop.url + "/paid")
            record = payment_record(response)
            assert response.status_code == 500 and record.verified and record.feedback
            metrics = (await gp.get_reputation(agent.address)).metrics
    assert metrics.rating_count == 1 and metrics.total_rating == 1  # rated 1: failed


def record_refusing_seller(net: LocalnetProcess, agent: Agent, fee_payer: Keypair) -> FastAPI:
    """A seller advertising recordAfterMemo whose facilitator refuses a fifth instruction (as every unchanged
    official facilitator does): it answers such a payment with a new 402 naming the official reason, and
    settles a plain one itself."""
    app = self_settling_seller(net, agent, fee_payer)
    plain = app.router.routes[-1].endpoint  # the settling handler
    requirement = recording_requirement(agent, fee_payer)
    refusing = FastAPI()
    refusing.state.transactions = app.state.transactions

    @refusing.get("/paid")
    async def paid(request: Request) -> Response:
        header = request.headers.get("payment-signature")
        if header:
            tx = VersionedTransaction.from_bytes(
                base64.b64decode(json.loads(base64.b64decode(header))["payload"]["transaction"])
            )
            if len(tx.message.instructions) > 4:
                refusing.state.transactions.append(tx)
                return JSONResponse(
                    {},
                    status_code=402,
                    headers={
                        "PAYMENT-REQUIRED": encode_payment_required_header(
                            PaymentRequired(error=ERR_UNKNOWN_FIFTH_INSTRUCTION, accepts=[requirement])
                        )
                    },
                )
        return await plain(request)

    return refusing


async def test_a_refused_record_falls_back_to_the_plain_payment_and_the_budget_counts_one(
    net: Any, agent: Agent
) -> None:
    """The facilitator refuses the record instruction: the buyer pays once more without it (served, tokens
    moved once), and the refused attempt leaves the budget: a daily budget of exactly one price still pays."""
    from decimal import Decimal

    from ghostpay.spending import SpendingGuards

    keypair = buyer(net, agent.mint)
    app = record_refusing_seller(net, agent, fund(net))
    guards = SpendingGuards(daily=Decimal("0.01"))
    with ServerThread(app) as shop:
        async with (
            GhostPayClient(net.http_url, keypair, ws_url=net.ws_url, guards=guards) as gp,
            x402_http(gp) as http,
        ):
            response = await http.get(shop.url + "/paid")
    record = payment_record(response)
    assert response.status_code == 200 and record.settled and not record.verified  # paid, not recorded
    assert [len(tx.message.instructions) for tx in app.state.transactions] == [5, 4]  # record, then plain
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == PRICE_ATOMIC  # paid once
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC


def claiming_seller(agent: Agent, fee_payer: Keypair, claimed: str) -> FastAPI:
    """A seller that sends nothing and answers every payment as settled by `claimed`, another transaction."""
    requirement = recording_requirement(agent, fee_payer)
    app = FastAPI()

    @app.get("/paid")
    async def paid(request: Request) -> Response:
        if not request.headers.get("payment-signature"):
            return JSONResponse(
                {},
                status_code=402,
                headers={"PAYMENT-REQUIRED": encode_payment_required_header(PaymentRequired(accepts=[requirement]))},
            )
        settled = {"success": True, "transaction": claimed, "network": DEVNET.caip2}
        return JSONResponse(
            {"answer": 42}, headers={"PAYMENT-RESPONSE": base64.b64encode(json.dumps(settled).encode()).decode()}
        )

    return app


async def test_a_settlement_naming_another_transaction_is_not_verified(net: Any, agent: Agent) -> None:
    """A seller claims a payment settled by the transaction of the wallet's earlier recorded payment (landed, with a
    record of this agent), or by a signature that names nothing: the record is not verified, and the claimed
    payment moved nothing."""
    keypair, fee_payer = buyer(net, agent.mint), fund(net)
    with ServerThread(self_settling_seller(net, agent, fee_payer)) as shop:
        async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp, x402_http(gp) as http:
            earlier = payment_record(await http.get(shop.url + "/paid"))
    assert earlier.settled and earlier.verified
    for claimed in (earlier.signature, str(Keypair().sign_message(b"nothing"))):
        with ServerThread(claiming_seller(agent, fee_payer, claimed)) as liar:
            async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp, x402_http(gp) as http:
                response = await http.get(liar.url + "/paid")
        record = payment_record(response)
        assert response.status_code == 200 and record.settled and record.signature == claimed
        assert not record.verified
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == PRICE_ATOMIC  # the earlier payment only
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC
