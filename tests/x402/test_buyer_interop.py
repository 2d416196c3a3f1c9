"""The GhostPay buyer against official and legacy sellers over real HTTP on the localnet.

The seller and facilitator here are the official package's (middleware unchanged, facilitator logic
served over HTTP) or a legacy v1 seller; each test asserts what moved on chain, not only the status.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from x402.mechanisms.svm.constants import COMPUTE_BUDGET_PROGRAM_ADDRESS, MEMO_PROGRAM_ADDRESS, USDC_DEVNET_ADDRESS

from ghostpay.exceptions import NoPayableRequirement, PaymentRequirementsInvalid, PriceAboveMaximum
from ghostpay.spending import SpendLedger
from ghostpay.sync_client import GhostPay
from ghostpay.x402 import x402_http
from ghostpay.x402.buyer import payment_record, rating_for
from tests.sdk.conftest import cheat, create_mint, fund, mint_to
from tests.x402.conftest import PRICE_ATOMIC, ServerThread, guarded, new_seller
from tests.x402.official_stack import official_facilitator_app, official_seller_app, v1_requirement, v1_seller_app

MAINNET = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"


class Tap:
    """An ASGI wrapper remembering the payment headers a seller received (to look at the transaction)."""

    def __init__(self, app) -> None:
        self.app, self.payments = app, []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            for name in ("payment-signature", "x-payment"):
                if name in headers:
                    self.payments.append(json.loads(base64.b64decode(headers[name])))
        await self.app(scope, receive, send)


def transaction_of(payment: dict) -> VersionedTransaction:
    return VersionedTransaction.from_bytes(base64.b64decode(payment["payload"]["transaction"]))


async def test_official_seller_and_facilitator_pay_200_tokens_moved(
    net, official_facilitator, seller, gp_buyer, mint, ledger_path
) -> None:
    tap = Tap(official_seller_app(official_facilitator.url, str(seller.wallet), str(mint), PRICE_ATOMIC))
    with ServerThread(tap) as shop:
        async with x402_http(gp_buyer, guards=guarded(ledger_path, daily=Decimal("1"))) as http:
            free = await http.get(shop.url + "/free")
            response = await http.get(shop.url + "/paid")
    assert free.status_code == 200 and payment_record(free) is None
    assert response.status_code == 200 and response.json() == {"answer": 42}
    record = payment_record(response)
    assert record is not None and http.payments == [record]
    assert (record.amount, record.amount_atomic, record.mint, record.seller) == (
        Decimal("0.010000"),
        PRICE_ATOMIC,
        str(mint),
        str(seller.wallet),
    )
    assert record.payer == str(gp_buyer.wallet) and record.settled and record.signature and record.x402_version == 2
    assert not record.verified and record.status == 200 and record.latency_ms > 0
    assert await gp_buyer.get_token_balance(seller.wallet, mint) == Decimal("0.01")
    assert await gp_buyer.get_token_balance(gp_buyer.wallet, mint) == Decimal("0.99")
    # exactly what the official client sends: compute limit, compute price, TransferChecked, Memo
    message = transaction_of(tap.payments[0]).message
    programs = [str(message.account_keys[ix.program_id_index]) for ix in message.instructions]
    assert programs[:2] == [COMPUTE_BUDGET_PROGRAM_ADDRESS] * 2 and programs[3] == MEMO_PROGRAM_ADDRESS
    assert len(programs) == 4 and message.instructions[2].data[0] == 12  # TransferChecked
    # the ledger holds it settled, with the settled signature
    [row] = list(SpendLedger(ledger_path).entries(str(gp_buyer.wallet)))
    assert (row["state"], row["signature"], row["amount"]) == ("settled", record.signature, PRICE_ATOMIC)


async def test_picks_the_accepted_mint_the_wallet_holds(
    net, official_facilitator, gp_buyer, buyer_keypair, mint
) -> None:
    other = create_mint(net, 9)  # listed first, but the buyer holds none of it
    seller = new_seller(net, mint)
    mint_to(net, seller.wallet, other, 0)
    app = official_seller_app(
        official_facilitator.url,
        str(seller.wallet),
        str(mint),
        PRICE_ATOMIC,
        accepts=[(str(other), 5), (str(mint), PRICE_ATOMIC)],
    )
    with ServerThread(app) as shop:
        async with x402_http(gp_buyer) as http:
            response = await http.get(shop.url + "/paid")
            assert response.status_code == 200 and payment_record(response).mint == str(mint)
            # asked to pay with the other mint only: nothing it holds is acceptable
            async with x402_http(gp_buyer, tokens=[other]) as picky:
                with pytest.raises(NoPayableRequirement, match="holds 0"):
                    await picky.get(shop.url + "/paid")
    assert await gp_buyer.get_token_balance(gp_buyer.wallet, mint) == Decimal("0.99")


async def test_max_price_refuses_before_signing(net, official_facilitator, seller, gp_buyer, mint) -> None:
    tap = Tap(official_seller_app(official_facilitator.url, str(seller.wallet), str(mint), PRICE_ATOMIC))
    with ServerThread(tap) as shop:
        async with x402_http(gp_buyer, max_price=Decimal("0.005")) as http:
            with pytest.raises(PriceAboveMaximum, match="0.010000 is over the per-call maximum 0.005"):
                await http.get(shop.url + "/paid")
    assert tap.payments == [] and await gp_buyer.get_token_balance(gp_buyer.wallet, mint) == Decimal("1")


async def test_seller_raises_its_price_between_402_and_pay(
    net, official_facilitator, seller, gp_buyer, mint, ledger_path
) -> None:
    prices = iter([PRICE_ATOMIC, 20_000, 20_000, 20_000])  # 402 at 0.01; the paid retry is checked against 0.02
    app = official_seller_app(official_facilitator.url, str(seller.wallet), str(mint), lambda: next(prices))
    with ServerThread(app) as shop:
        async with x402_http(gp_buyer, max_price=Decimal("0.015")) as capped:
            with pytest.raises(PriceAboveMaximum, match="0.020000"):
                await capped.get(shop.url + "/paid")
        assert await gp_buyer.get_token_balance(seller.wallet, mint) == 0  # the 0.01 payment was refused, not settled
        prices = iter([PRICE_ATOMIC, 20_000, 20_000, 20_000])
        async with x402_http(gp_buyer, max_price=Decimal("0.05")) as http:
            response = await http.get(shop.url + "/paid")  # re-quoted: pays the new price once
    assert response.status_code == 200 and payment_record(response).amount == Decimal("0.02")
    assert await gp_buyer.get_token_balance(seller.wallet, mint) == Decimal("0.02")


async def test_wrong_network_is_refused_naming_both(net, official_facilitator, seller, gp_buyer, mint) -> None:
    app = official_seller_app(official_facilitator.url, str(seller.wallet), str(mint), PRICE_ATOMIC, network=MAINNET)
    with ServerThread(app) as shop:
        async with x402_http(gp_buyer) as http:
            with pytest.raises(NoPayableRequirement, match=f"wants network {MAINNET}; this wallet is on solana:EtW"):
                await http.get(shop.url + "/paid")


async def test_unreachable_facilitator_returns_the_failure_unsettled(net, seller, gp_buyer, mint, ledger_path) -> None:
    with ServerThread(official_facilitator_app(fund(net), net.http_url)) as facilitator:
        app = official_seller_app(facilitator.url, str(seller.wallet), str(mint), PRICE_ATOMIC)  # reads /supported now
    with ServerThread(app) as shop:  # ... and the facilitator is gone when the paid retry comes
        async with x402_http(gp_buyer, guards=guarded(ledger_path, daily=Decimal("1"))) as http:
            response = await http.get(shop.url + "/paid")
    record = payment_record(response)
    # the official middleware answers a failed verification with a new 402 carrying the reason
    assert response.status_code == 402 and record is not None and not record.settled and record.signature is None
    assert "connection" in record.error.lower() and len(http.payments) == 1  # same terms: not paid again
    assert await gp_buyer.get_token_balance(gp_buyer.wallet, mint) == Decimal("1")
    # refused with a new 402 and no transaction named: released, it no longer counts against the budget
    [row] = list(SpendLedger(ledger_path).entries(str(gp_buyer.wallet)))
    assert row["state"] == "released"


def fee_payer_of(facilitator: ServerThread) -> str:
    import httpx

    return httpx.get(facilitator.url + "/supported").json()["kinds"][0]["extra"]["feePayer"]


async def test_v1_seller_x_payment_200(net, official_facilitator, seller, gp_buyer, mint) -> None:
    url_path = "/x402/interact"
    requirement = v1_requirement(str(seller.wallet), str(mint), PRICE_ATOMIC, fee_payer_of(official_facilitator), "")
    tap = Tap(v1_seller_app(official_facilitator.url, requirement))
    with ServerThread(tap) as shop:
        requirement["resource"] = shop.url + url_path
        async with x402_http(gp_buyer) as http:
            response = await http.post(shop.url + url_path, json={"agentId": "memeputer", "message": "/ping"})
    assert response.status_code == 200 and response.json()["response"] == "pong"
    record = payment_record(response)
    assert record.x402_version == 1 and record.settled and record.signature == response.json()["transactionSignature"]
    assert tap.payments[-1]["x402Version"] == 1 and tap.payments[-1]["network"] == "solana-devnet"
    assert await gp_buyer.get_token_balance(seller.wallet, mint) == Decimal("0.01")


def seeds_003_body(requirement: dict) -> dict:
    """memeputer's 402 (seeds/003): integer maxAmountRequired, no resource, asset or maxTimeoutSeconds."""
    shown = {
        "payTo": requirement["payTo"],
        "maxAmountRequired": int(requirement["maxAmountRequired"]),
        "scheme": "exact",
        "network": requirement["network"],
        "extra": {"agentId": "memeputer", "agentName": "Memeputer", **requirement["extra"]},
    }
    return {"accepts": [shown], "x402Version": 1}


async def test_lenient_v1_pays_seeds_003_shape_with_the_default_usdc(net, official_facilitator, gp_buyer) -> None:
    usdc = Pubkey.from_string(USDC_DEVNET_ADDRESS)  # the network's default asset, here on the localnet
    if await gp_buyer._account_data(usdc) is None:
        cheat(net, "surfnet_createMint", {"decimals": 6, "address": USDC_DEVNET_ADDRESS})
    mint_to(net, gp_buyer.wallet, usdc, 50_000)
    seller = new_seller(net, usdc)
    requirement = v1_requirement(
        str(seller.wallet), USDC_DEVNET_ADDRESS, PRICE_ATOMIC, fee_payer_of(official_facilitator), ""
    )
    with ServerThread(v1_seller_app(official_facilitator.url, requirement, body=seeds_003_body)) as shop:
        requirement["resource"] = shop.url + "/x402/interact"
        async with x402_http(gp_buyer) as http:
            quotes = await http.quote(shop.url + "/x402/interact", "POST")
            response = await http.post(shop.url + "/x402/interact", json={"message": "/ping"})
    assert [(q.mint, q.amount, q.assumed) for q in quotes] == [
        (USDC_DEVNET_ADDRESS, Decimal("0.010000"), ("resource", "maxTimeoutSeconds", "asset"))
    ]
    record = payment_record(response)
    assert (
        response.status_code == 200 and record.settled and record.assumed == ("resource", "maxTimeoutSeconds", "asset")
    )
    assert await gp_buyer.get_token_balance(seller.wallet, usdc) == Decimal("0.01")


@pytest.mark.parametrize(
    "drop, named", [("feePayer", "extra.feePayer"), ("payTo", "payTo"), ("maxAmountRequired", "maxAmountRequired")]
)
async def test_lenient_v1_names_what_is_missing(net, official_facilitator, seller, gp_buyer, mint, drop, named) -> None:
    requirement = v1_requirement(str(seller.wallet), str(mint), PRICE_ATOMIC, fee_payer_of(official_facilitator), "")

    def body(req: dict) -> dict:
        shown = seeds_003_body(req)
        shown["accepts"][0]["extra"].pop(drop, None)
        shown["accepts"][0].pop(drop, None)
        return shown

    tap = Tap(v1_seller_app(official_facilitator.url, requirement, body=body))
    with ServerThread(tap) as shop:
        async with x402_http(gp_buyer) as http:
            with pytest.raises(PaymentRequirementsInvalid, match=f"misses {named}"):
                await http.post(shop.url + "/x402/interact", json={})
    assert tap.payments == [] and await gp_buyer.get_token_balance(gp_buyer.wallet, mint) == Decimal("1")


async def test_seeds_003_as_is_cannot_be_paid_and_says_why(net, gp_buyer) -> None:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/x402/interact")
    async def interact() -> JSONResponse:
        return JSONResponse(
            {
                "accepts": [
                    {
                        "payTo": str(gp_buyer.wallet),
                        "maxAmountRequired": 10000,
                        "scheme": "exact",
                        "network": "solana",
                        "extra": {"agentId": "memeputer"},
                    }
                ],
                "x402Version": 1,
            },
            status_code=402,
        )

    with ServerThread(app) as shop:
        async with x402_http(gp_buyer) as http:
            with pytest.raises(PaymentRequirementsInvalid, match=r"misses extra.feePayer \(the facilitator"):
                await http.post(shop.url + "/x402/interact", json={})


async def test_seller_500_after_settlement_keeps_the_record(
    net, official_facilitator, seller, gp_buyer, mint, ledger_path
) -> None:
    requirement = v1_requirement(str(seller.wallet), str(mint), PRICE_ATOMIC, fee_payer_of(official_facilitator), "")
    with ServerThread(v1_seller_app(official_facilitator.url, requirement, status=500)) as shop:
        requirement["resource"] = shop.url + "/x402/interact"
        async with x402_http(gp_buyer, guards=guarded(ledger_path, total=Decimal("1"))) as http:
            response = await http.post(shop.url + "/x402/interact", json={})
    record = payment_record(response)
    assert response.status_code == 500 and record.settled and record.signature and record.status == 500
    assert rating_for(record.status, record.latency_ms) == (False, 1)  # what feedback="auto" would submit
    assert await gp_buyer.get_token_balance(seller.wallet, mint) == Decimal("0.01")
    [row] = list(SpendLedger(ledger_path).entries(str(gp_buyer.wallet)))
    assert (row["state"], row["signature"]) == ("settled", record.signature)


def test_sync_facade_pays(net, official_facilitator, seller, buyer_keypair, mint) -> None:
    with (
        ServerThread(
            official_seller_app(official_facilitator.url, str(seller.wallet), str(mint), PRICE_ATOMIC)
        ) as shop,
        GhostPay(net.http_url, buyer_keypair, ws_url=net.ws_url) as gp,
    ):
        with x402_http(gp, max_price="0.01") as http:
            response = http.get(shop.url + "/paid")
            assert http.payments == [payment_record(response)]
        assert gp.get_token_balance(seller.wallet, mint) == Decimal("0.01")
    assert response.json() == {"answer": 42}
