"""The official x402 stack served over real HTTP on the localnet, for the buyer's interop tests.

- `official_facilitator_app`: the package's facilitator logic (`x402Facilitator` + the exact SVM
  scheme) behind `GET /supported`, `POST /verify`, `POST /settle`: the package ships no server.
- `official_seller_app`: a FastAPI app with the package's payment middleware, unchanged, pricing
  `GET /paid` in a mint; `price` may be a callable to change the price between calls.
- `v1_seller_app`: a legacy v1 seller (402 body, `X-PAYMENT`), which the package has no server for;
  `body` shapes the 402 (e.g. seeds/003's, which misses fields the spec requires).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from solders.keypair import Keypair
from x402 import x402Facilitator, x402ResourceServer
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.middleware.fastapi import payment_middleware
from x402.http.types import PaymentOption, RouteConfig
from x402.mechanisms.svm.exact.register import register_exact_svm_facilitator, register_exact_svm_server
from x402.mechanisms.svm.signers import FacilitatorKeypairSigner
from x402.schemas import AssetAmount
from x402.schemas.helpers import parse_payment_payload, parse_payment_requirements

from ghostpay.x402.networks import DEVNET, MAINNET


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def official_facilitator_app(
    fee_payer: Keypair, rpc_url: str, networks: tuple[str, ...] = (DEVNET.caip2, MAINNET.caip2)
) -> FastAPI:
    """The official facilitator logic over HTTP, paying fees with `fee_payer` on `rpc_url` (for every
    network: a seller whose network no facilitator supports makes the official middleware exit)."""
    facilitator = x402Facilitator()
    register_exact_svm_facilitator(facilitator, FacilitatorKeypairSigner(fee_payer, rpc_url), list(networks))
    app = FastAPI()

    def parse(body: dict[str, Any]) -> tuple[Any, Any]:
        payload = parse_payment_payload(body["paymentPayload"])
        return payload, parse_payment_requirements(payload.x402_version, body["paymentRequirements"])

    @app.get("/supported")
    async def supported() -> dict[str, Any]:
        return _dump(facilitator.get_supported())

    @app.post("/verify")
    async def verify(request: Request) -> dict[str, Any]:
        return _dump(await facilitator.verify(*parse(await request.json())))

    @app.post("/settle")
    async def settle(request: Request) -> dict[str, Any]:
        return _dump(await facilitator.settle(*parse(await request.json())))

    return app


Price = Callable[[], int]


def official_seller_app(
    facilitator_url: str,
    pay_to: str,
    mint: str,
    price: int | Price,
    *,
    status: int = 200,
    network: str = DEVNET.caip2,
    accepts: list[tuple[str, int]] | None = None,
    create_headers: Callable[[], dict[str, dict[str, str]]] | None = None,
) -> FastAPI:
    """`GET /paid` behind the official payment middleware, unchanged: `price` atomic units of `mint`
    (or more mints by `accepts`=[(mint, price)]) paid to `pay_to`; the handler answers `status`. The
    package's `create_headers` adds headers (e.g. a bearer key) to its facilitator requests."""
    config: Any = (
        {"url": facilitator_url, "create_headers": create_headers}
        if create_headers
        else FacilitatorConfig(url=facilitator_url)
    )
    server = x402ResourceServer(HTTPFacilitatorClient(config))
    register_exact_svm_server(server, network)

    def option(asset: str, amount: int | Price) -> PaymentOption:
        def priced(_context: Any) -> AssetAmount:
            return AssetAmount(amount=str(amount() if callable(amount) else amount), asset=asset)

        return PaymentOption(scheme="exact", pay_to=pay_to, price=priced, network=network)

    options = [option(m, p) for m, p in (accepts or [(mint, price)])]
    routes = {"GET /paid": RouteConfig(accepts=options, description="a paid answer")}
    app = FastAPI()
    middleware = payment_middleware(routes, server)

    @app.middleware("http")
    async def x402(request: Request, call_next: Any) -> Response:
        return await middleware(request, call_next)

    @app.get("/paid")
    async def paid() -> JSONResponse:
        return JSONResponse({"answer": 42}, status_code=status)

    @app.get("/free")
    async def free() -> dict[str, str]:
        return {"free": "yes"}

    return app


def v1_requirement(pay_to: str, mint: str, amount: int, fee_payer: str, resource: str) -> dict[str, Any]:
    """A complete v1 requirement as the spec has it."""
    return {
        "scheme": "exact",
        "network": DEVNET.v1_name,
        "maxAmountRequired": str(amount),
        "resource": resource,
        "payTo": pay_to,
        "maxTimeoutSeconds": 60,
        "asset": mint,
        "extra": {"feePayer": fee_payer},
    }


def v1_seller_app(
    facilitator_url: str,
    requirement: dict[str, Any],
    *,
    body: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    status: int = 200,
) -> FastAPI:
    """A legacy v1 seller of `POST /x402/interact`: 402 with `{x402Version: 1, accepts: [requirement]}`
    (or `body(requirement)`), then `X-PAYMENT` verified and settled through the facilitator's HTTP API
    against the complete `requirement`; it answers `status` after settling (500: it broke after being paid)."""
    app = FastAPI()

    @app.post("/x402/interact")
    async def interact(request: Request) -> Response:
        header = request.headers.get("x-payment")
        if not header:
            shown = (
                body(requirement) if body else {"x402Version": 1, "error": "payment required", "accepts": [requirement]}
            )
            return JSONResponse(shown, status_code=402)
        payload = json.loads(base64.b64decode(header))
        request_body = {"x402Version": 1, "paymentPayload": payload, "paymentRequirements": requirement}
        async with httpx.AsyncClient(base_url=facilitator_url, timeout=60) as facilitator:
            verified = (await facilitator.post("/verify", json=request_body)).json()
            if not verified.get("isValid"):
                return JSONResponse(
                    {"x402Version": 1, "error": verified.get("invalidReason"), "accepts": [requirement]},
                    status_code=402,
                )
            settled = (await facilitator.post("/settle", json=request_body)).json()
        if not settled.get("success"):
            return JSONResponse(
                {"x402Version": 1, "error": settled.get("errorReason"), "accepts": [requirement]}, status_code=402
            )
        receipt = base64.b64encode(json.dumps(settled).encode()).decode()
        return JSONResponse(
            {
                "success": status < 400,
                "response": "pong" if status < 400 else "",
                "transactionSignature": settled["transaction"],
            },
            status_code=status,
            headers={"X-PAYMENT-RESPONSE": receipt},
        )

    return app
