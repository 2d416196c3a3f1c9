"""Reading x402 input from strangers: every malformed input is a `MalformedInput` with a named reason.

The facilitator's request bodies and the seller's payment headers pass through here before anything
parses them deeper: JSON is strict UTF-8 without NaN/Infinity, its nesting is bounded by a cheap scan
before it is parsed (a few thousand nested arrays would exhaust the recursion of `json` and pydantic),
amounts are u64 integer strings, and addresses base58 32-byte keys.

    >>> check_amount("amount", "10000"), json_too_deep("[" * 60_000), json_too_deep('["[[[[[[", {}]', limit=2)
    (10000, True, False)
    >>> try:
    ...     check_amount("amount", "NaN")
    ... except MalformedInput as exc:
    ...     print(exc.reason)
    invalid_amount
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, NoReturn

from pydantic import ValidationError
from solders.pubkey import Pubkey
from x402.schemas import PaymentPayload, PaymentRequirements
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequirementsV1

from ghostpay.exceptions import X402Error

# Named reasons (the facilitator's 400 bodies, the seller's 402 bodies).
REASON_BODY_TOO_LARGE = "body_too_large"
REASON_INVALID_JSON = "invalid_json"
REASON_JSON_TOO_DEEP = "json_too_deep"
REASON_INVALID_REQUEST = "invalid_request"
REASON_INVALID_VERSION = "invalid_x402_version"
REASON_INVALID_PAYLOAD = "invalid_payment_payload"
REASON_INVALID_REQUIREMENTS = "invalid_payment_requirements"
REASON_INVALID_AMOUNT = "invalid_amount"
REASON_INVALID_ADDRESS = "invalid_address"
REASON_UNSUPPORTED = "unsupported_scheme_or_network"
REASON_HEADER_TOO_LARGE = "payment_header_too_large"
REASON_NOT_BASE64 = "payment_header_not_base64"
REASON_V1_IN_V2_HEADER = "v1_payment_in_v2_header"
REASON_V2_IN_V1_HEADER = "v2_payment_in_v1_header"

# The deepest legitimate x402 JSON is about 6 levels (request > payload > accepted > extra > ghostpay);
# extensions may carry small JSON schemas. Python's json and pydantic recurse about 1,000 levels deep.
MAX_JSON_DEPTH = 64
U64_MAX = 2**64 - 1
_AMOUNT = re.compile(r"[0-9]{1,20}")  # ASCII digits only: int() would also take "+1", " 1", "1_0" and "١"
# A JSON string, escapes included; possessive and with an optional closing quote, so an unterminated
# string ends the scan instead of making the regex backtrack (JSON strings hold no raw quote).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"?', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class MalformedInput(X402Error, ValueError):
    """Input that is not an x402 message at all; `reason` names what is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `text` nests arrays/objects more than `limit` deep (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for char in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if char in "[{" else -1
        if depth > limit:
            return True
    return False


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def load_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, at most MAX_JSON_DEPTH deep, no NaN or Infinity."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput(REASON_INVALID_JSON, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    if json_too_deep(text):
        raise MalformedInput(REASON_JSON_TOO_DEEP, f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError, NaN, an integer of over 4,300 digits
        raise MalformedInput(REASON_INVALID_JSON, f"not JSON: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def check_amount(field: str, value: Any) -> int:
    """`value` as an amount of atomic units: a string of ASCII digits within u64."""
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value) or int(value) > U64_MAX:
        raise MalformedInput(
            REASON_INVALID_AMOUNT, f"{field} must be a non-negative integer string below 2^64, not {str(value)[:40]!r}"
        )
    return int(value)


def check_address(field: str, value: Any) -> None:
    """`value` must be a base58 32-byte key."""
    try:
        if isinstance(value, str):
            Pubkey.from_string(value)
            return
    except ValueError:
        pass
    raise MalformedInput(REASON_INVALID_ADDRESS, f"{field} must be a base58 32-byte address, not {str(value)[:60]!r}")


def check_requirements(requirements: PaymentRequirements | PaymentRequirementsV1, where: str) -> None:
    """The fields of a requirement the exact-SVM scheme reads as numbers or keys."""
    check_amount(
        f"{where}.{'amount' if isinstance(requirements, PaymentRequirements) else 'maxAmountRequired'}",
        requirements.get_amount(),
    )
    check_address(f"{where}.asset", requirements.asset)
    check_address(f"{where}.payTo", requirements.pay_to)
    extra = requirements.extra or {}
    if "feePayer" in extra:
        check_address(f"{where}.extra.feePayer", extra["feePayer"])


def _check_base64(field: str, value: Any) -> None:
    """The scheme judges the transaction's bytes (by a named invalidReason); its encoding is judged here."""
    try:
        if isinstance(value, str):
            base64.b64decode(value, validate=True)
            return
    except (ValueError, binascii.Error):
        pass
    raise MalformedInput(REASON_INVALID_PAYLOAD, f"{field} must be a base64 string")


def _version(value: Any) -> int:
    if type(value) is not int or value not in (1, 2):  # True == 1, 2.0 == 2: neither is a version
        raise MalformedInput(REASON_INVALID_VERSION, f"x402Version must be 1 or 2, not {str(value)[:20]!r}")
    return value


def _validated(model: Any, data: Any, reason: str, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise MalformedInput(reason, f"{what}{'.' + location if location else ''}: {first['msg']}") from None


def payment_payload(data: Any) -> PaymentPayload | PaymentPayloadV1:
    """A parsed payment payload (v1 or v2 by its x402Version), with its transaction a string."""
    if not isinstance(data, dict):
        raise MalformedInput(REASON_INVALID_PAYLOAD, "the payment payload must be a JSON object")
    version = _version(data.get("x402Version"))
    payload = _validated(
        PaymentPayload if version == 2 else PaymentPayloadV1, data, REASON_INVALID_PAYLOAD, "paymentPayload"
    )
    _check_base64("paymentPayload.payload.transaction", payload.payload.get("transaction"))
    if isinstance(payload, PaymentPayload):
        check_requirements(payload.accepted, "paymentPayload.accepted")
    return payload


def facilitator_request(
    body: bytes,
) -> tuple[PaymentPayload | PaymentPayloadV1, PaymentRequirements | PaymentRequirementsV1]:
    """The (payload, requirements) of a /verify or /settle body."""
    data = load_json(body)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("paymentPayload"), dict)
        or not isinstance(data.get("paymentRequirements"), dict)
    ):
        raise MalformedInput(
            REASON_INVALID_REQUEST,
            "the body must be a JSON object with the objects paymentPayload and paymentRequirements",
        )
    payload_data = data["paymentPayload"]
    if "x402Version" not in payload_data and "x402Version" in data:  # the version may be given once, outside
        payload_data = {**payload_data, "x402Version": data["x402Version"]}
    payload = payment_payload(payload_data)
    if _version(data.get("x402Version", payload.x402_version)) != payload.x402_version:
        raise MalformedInput(REASON_INVALID_VERSION, "x402Version differs from paymentPayload.x402Version")
    requirements = _validated(
        PaymentRequirements if payload.x402_version == 2 else PaymentRequirementsV1,
        data["paymentRequirements"],
        REASON_INVALID_REQUIREMENTS,
        "paymentRequirements",
    )
    check_requirements(requirements, "paymentRequirements")
    return payload, requirements


def payment_header(value: str, max_bytes: int) -> PaymentPayload | PaymentPayloadV1:
    """The payment in a PAYMENT-SIGNATURE or X-PAYMENT header: base64 of a payload's JSON."""
    if len(value) > max_bytes:
        raise MalformedInput(REASON_HEADER_TOO_LARGE, f"payment header over {max_bytes} bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as exc:  # binascii.Error for padding, ValueError for non-ASCII
        raise MalformedInput(REASON_NOT_BASE64, f"the payment header is not base64: {_first_line(exc)}") from None
    return payment_payload(load_json(raw))
