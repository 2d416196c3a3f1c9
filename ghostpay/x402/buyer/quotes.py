"""Reading a 402: the requirements (v2 `PAYMENT-REQUIRED` header, else the v1 body, leniently for legacy
sellers that miss fields the spec requires), decoded into `Quote`s with the mint's decimals and label."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx
from solders.pubkey import Pubkey
from x402 import x402ClientSync
from x402.http import x402HTTPClientSync
from x402.mechanisms.svm.default_assets import get_default_asset
from x402.schemas import PaymentRequired, PaymentRequirements
from x402.schemas.v1 import PaymentRequiredV1, PaymentRequirementsV1

from ghostpay.exceptions import GhostPayError, PaymentRequirementsInvalid
from ghostpay.x402.buyer.models import Quote

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient

Required = PaymentRequired | PaymentRequiredV1
LEGACY_TIMEOUT_SECONDS = 60  # for a v1 requirement that names no maxTimeoutSeconds

HTTP_CODEC = x402HTTPClientSync(x402ClientSync())  # header codecs only: no scheme registered


def read_payment_required(response: httpx.Response, url: str) -> tuple[Required, dict[int, tuple[str, ...]]]:
    """The requirements of a 402 (v2 header, v1 body), and per accepts index the fields a lenient v1 read
    assumed. PaymentRequirementsInvalid, naming what is missing, when nothing can be paid from it."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    try:
        return HTTP_CODEC.get_payment_required_response(response.headers.get, body), {}
    except Exception as exc:  # noqa: BLE001 - the package raises ValueError or pydantic errors
        if response.headers.get("payment-required"):
            raise PaymentRequirementsInvalid(f"the seller's PAYMENT-REQUIRED header cannot be read: {exc}") from None
        if isinstance(body, dict) and body.get("x402Version", 1) == 1 and "accepts" in body:
            return lenient_v1(body, url)
        raise PaymentRequirementsInvalid(
            "the seller answered 402 without x402 requirements (no PAYMENT-REQUIRED header, no v1 body with accepts)"
        ) from None


def lenient_v1(body: dict[str, Any], url: str) -> tuple[PaymentRequiredV1, dict[int, tuple[str, ...]]]:
    """A legacy v1 body the spec's parser refuses (e.g. an integer `maxAmountRequired`, no `resource`,
    no `asset`), filled in where the payment stays unambiguous: the resource is the URL called, the
    timeout 60 s, the asset the network's default stablecoin (USDC). No payTo, amount or fee payer
    cannot be guessed: PaymentRequirementsInvalid names them."""
    accepts = body.get("accepts")
    if not isinstance(accepts, list) or not accepts:
        raise PaymentRequirementsInvalid("the seller's v1 402 body has no accepts list")
    fixed: list[PaymentRequirementsV1] = []
    assumed: dict[int, tuple[str, ...]] = {}
    problems: list[str] = []
    for given in accepts:
        if not isinstance(given, dict):
            problems.append("an accepts entry is not an object")
            continue
        req: dict[str, Any] = dict(given)
        filled: list[str] = []
        missing: list[str] = []
        amount = req.get("maxAmountRequired")
        if isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0:
            req["maxAmountRequired"] = str(amount)
        elif not (isinstance(amount, str) and amount.isdigit()):
            missing.append("maxAmountRequired (atomic units)")
        for name in ("scheme", "network", "payTo"):
            if not isinstance(req.get(name), str) or not req[name]:
                missing.append(name)
        extra: dict[str, Any] = req["extra"] if isinstance(req.get("extra"), dict) else {}
        if not extra.get("feePayer"):
            missing.append("extra.feePayer (the facilitator paying the fees)")
        if not req.get("resource"):
            req["resource"] = url
            filled.append("resource")
        if not isinstance(req.get("maxTimeoutSeconds"), int):
            req["maxTimeoutSeconds"] = LEGACY_TIMEOUT_SECONDS
            filled.append("maxTimeoutSeconds")
        if not req.get("asset") and isinstance(req.get("network"), str):
            try:
                req["asset"] = get_default_asset(req["network"])["asset"]
                filled.append("asset")
            except ValueError:
                missing.append("asset")
        if missing:
            problems.append(f"{given.get('payTo', 'a requirement')} misses {', '.join(missing)}")
            continue
        assumed[len(fixed)] = tuple(filled)
        fixed.append(PaymentRequirementsV1.model_validate(req))
    if not fixed:
        raise PaymentRequirementsInvalid("the seller's 402 cannot be paid: " + "; ".join(problems))
    return PaymentRequiredV1(x402_version=1, error=body.get("error"), accepts=fixed), assumed


async def decode_quotes(
    gp: GhostPayClient, required: Required, url: str, assumed: dict[int, tuple[str, ...]] | None = None
) -> list[Quote]:
    """Every requirement of a 402 decoded, with the mint's decimals where it can be read, and its label."""
    out = []
    try:
        labels = (await gp.labels()).by_mint
    except GhostPayError:  # the node cannot say which cluster it is: no labels
        labels = {}
    accepts: Sequence[PaymentRequirements | PaymentRequirementsV1] = required.accepts
    page = required.resource if isinstance(required, PaymentRequired) else None  # v2 names it once, v1 per entry
    for i, req in enumerate(accepts):
        decimals = None
        with contextlib.suppress(GhostPayError, ValueError):
            decimals = (await gp.get_mint(Pubkey.from_string(req.asset))).decimals
        resource = getattr(req, "resource", None) or (page.url if page else url)
        extra = dict(req.extra or {})
        out.append(
            Quote(
                required.x402_version,
                req.scheme,
                str(req.network),
                req.asset,
                int(req.get_amount()),
                req.pay_to,
                extra.get("feePayer"),
                resource,
                req.max_timeout_seconds,
                extra,
                decimals,
                (assumed or {}).get(i, ()),
                labels.get(req.asset),
            )
        )
    return out


async def fetch_quotes(gp: GhostPayClient, method: str, url: str, **request: Any) -> tuple[int, list[Quote]]:
    """Call `url` without paying: its HTTP status and, for a 402, its requirements decoded."""
    async with httpx.AsyncClient(timeout=30) as plain:
        response = await plain.request(method, url, **request)
    if response.status_code != 402:
        return response.status_code, []
    required, assumed = read_payment_required(response, url)
    return 402, await decode_quotes(gp, required, url, assumed)
