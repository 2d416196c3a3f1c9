"""The a2a-x402 extension (v0.2) on the A2A JSON-RPC binding: its names, and reading and writing the binding
with the official `a2a-sdk`'s own types.

A2A 1.0 names the methods `SendMessage`/`GetTask` and writes protobuf JSON (`TASK_STATE_INPUT_REQUIRED`);
A2A 0.3, which the a2a-x402 spec's examples use, names them `message/send`/`tasks/get` and writes
`{"kind": "task", "state": "input-required"}`. Both are read into the SDK's 1.0 types (0.3 through its
`a2a.compat.v0_3` conversions) and answered in the version they came in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from a2a.compat.v0_3 import conversions, types as types_v03
from a2a.types.a2a_pb2 import GetTaskRequest, SendMessageRequest, SendMessageResponse, Task
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, VERSION_HEADER
from a2a.utils.errors import (
    JSON_RPC_ERROR_CODE_MAP,
    A2AError,
    ExtensionSupportRequiredError,
    InvalidParamsError,
    InvalidRequestError,
    MethodNotFoundError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from pydantic import ValidationError

EXTENSION_URI = "https://github.com/google-agentic-commerce/a2a-x402/blob/main/spec/v0.2"
EXTENSION_HEADERS = ("a2a-extensions", "x-a2a-extensions")  # A2A 1.0's name, and 0.3's
A2A_HEADERS = (*EXTENSION_HEADERS, VERSION_HEADER.lower())  # any of them makes a POST an A2A call
PROTOCOL_VERSIONS = (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)

# message metadata keys (spec section 7)
STATUS_KEY = "x402.payment.status"
REQUIRED_KEY = "x402.payment.required"
PAYLOAD_KEY = "x402.payment.payload"
RECEIPTS_KEY = "x402.payment.receipts"
ERROR_KEY = "x402.payment.error"

# x402.payment.status values
PAYMENT_REQUIRED = "payment-required"
PAYMENT_SUBMITTED = "payment-submitted"
PAYMENT_REJECTED = "payment-rejected"
PAYMENT_COMPLETED = "payment-completed"
PAYMENT_FAILED = "payment-failed"

# the spec's error codes (section 9.1) for the x402 reasons that have one; any other reason is sent as it is
INVALID_AMOUNT = "INVALID_AMOUNT"
NETWORK_MISMATCH = "NETWORK_MISMATCH"
DUPLICATE_NONCE = "DUPLICATE_NONCE"
INVALID_SIGNATURE = "INVALID_SIGNATURE"
SETTLEMENT_FAILED = "SETTLEMENT_FAILED"
SPEC_CODES = {
    "invalid_exact_svm_payload_amount_insufficient": INVALID_AMOUNT,
    "payment_mismatch": INVALID_AMOUNT,  # not this route's current price, token, payee or network
    "network_mismatch": NETWORK_MISMATCH,
    "duplicate_settlement": DUPLICATE_NONCE,
    "invalid_exact_svm_payload_transaction_could_not_be_decoded": INVALID_SIGNATURE,
    "transaction_simulation_failed": SETTLEMENT_FAILED,
    "transaction_failed": SETTLEMENT_FAILED,
}

SEND = {"SendMessage": PROTOCOL_VERSION_1_0, "message/send": PROTOCOL_VERSION_0_3}
GET = {"GetTask": PROTOCOL_VERSION_1_0, "tasks/get": PROTOCOL_VERSION_0_3}


def spec_code(reason: str) -> str:
    """`x402.payment.error` for an x402 refusal reason: the spec's code where it has one, else the reason."""
    return SPEC_CODES.get(reason, reason)


def activated(headers: dict[str, str]) -> bool:
    """Whether the request activates the a2a-x402 extension (`A2A-Extensions` or `X-A2A-Extensions`)."""
    return any(EXTENSION_URI in (u.strip() for u in headers.get(name, "").split(",")) for name in EXTENSION_HEADERS)


class RpcFault(Exception):
    """A JSON-RPC error answer: the A2A error's code (from the SDK's table) and a message."""

    def __init__(self, error: type[A2AError], message: str) -> None:
        super().__init__(message)
        self.code = JSON_RPC_ERROR_CODE_MAP.get(error, -32603)


def not_activated() -> RpcFault:
    return RpcFault(
        ExtensionSupportRequiredError,
        f"this agent's calls are paid: activate the a2a-x402 extension (A2A-Extensions: {EXTENSION_URI})",
    )


def task_not_found(task_id: str) -> RpcFault:
    return RpcFault(TaskNotFoundError, f"no task {task_id!r} here (unknown, or expired)")


def unsupported(message: str) -> RpcFault:
    return RpcFault(UnsupportedOperationError, message)


@dataclass(frozen=True)
class Call:
    """One JSON-RPC call read into the SDK's 1.0 types, and the protocol version to answer in."""

    id: str | int | None
    version: str
    send: SendMessageRequest | None = None
    get: GetTaskRequest | None = None


def read_call(body: Any) -> Call:
    """The JSON-RPC request `body` (decoded JSON) as a `Call`; RpcFault for anything else."""
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str):
        raise RpcFault(InvalidRequestError, "not a JSON-RPC 2.0 request")
    method, rpc_id, params = body["method"], body.get("id"), body.get("params") or {}
    version = SEND.get(method) or GET.get(method)
    if version is None:
        raise RpcFault(MethodNotFoundError, f"method {method!r} is not served here (SendMessage, GetTask)")
    try:
        if version == PROTOCOL_VERSION_1_0:
            if method in SEND:
                return Call(rpc_id, version, send=ParseDict(params, SendMessageRequest(), ignore_unknown_fields=True))
            return Call(rpc_id, version, get=ParseDict(params, GetTaskRequest(), ignore_unknown_fields=True))
        if method in SEND:
            legacy = types_v03.SendMessageRequest.model_validate(body)
            return Call(rpc_id, version, send=conversions.to_core_send_message_request(legacy))
        return Call(
            rpc_id, version, get=conversions.to_core_get_task_request(types_v03.GetTaskRequest.model_validate(body))
        )
    except (ParseError, ValidationError, ValueError, TypeError) as exc:
        raise RpcFault(InvalidParamsError, f"{method}: {str(exc)[:300]}") from None


def integral(value: Any) -> Any:
    """`value` with the whole numbers a protobuf Struct holds as doubles (`"x402Version": 2.0`) written as
    integers, as JavaScript writes them: x402 readers expect integers there."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def result(call: Call, task: Task) -> dict[str, Any]:
    """The JSON-RPC answer carrying `task`, in the call's protocol version."""
    if call.version == PROTOCOL_VERSION_1_0:
        payload = SendMessageResponse(task=task) if call.send is not None else task
        return {"jsonrpc": "2.0", "id": call.id, "result": integral(MessageToDict(payload))}
    if call.send is not None:
        answer = conversions.to_compat_send_message_response(SendMessageResponse(task=task), call.id)
        return integral(answer.model_dump(mode="json", by_alias=True, exclude_none=True))
    legacy = conversions.to_compat_task(task).model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"jsonrpc": "2.0", "id": call.id, "result": integral(legacy)}


def fault(rpc_id: str | int | None, error: RpcFault) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": error.code, "message": str(error)}}
