"""The merchant side of a2a-x402 (standalone flow) in front of a priced route, and the Agent Card.

A POST to a priced route that carries an A2A header (`A2A-Version`, `A2A-Extensions`, `X-A2A-Extensions`) is
an A2A JSON-RPC call. A new message opens a task in `input-required` whose status message carries
`x402.payment.status: payment-required` and `x402.payment.required` (the route's current v2 requirements, as
its 402 has them). The client's `message/send` on that task with `payment-submitted` and
`x402.payment.payload` is paid exactly as a paid HTTP request is (verify, the route's handler or upstream
called with the first message's content, settle only if it answered below 400, GhostPay's record when the
payment carries it): the task completes with `payment-completed`, `x402.payment.receipts` and the answer as
an artifact. A refused payment leaves the task in `input-required` with `payment-failed`, the named x402
error in `x402.payment.error` (the spec's code where it has one) and the refusal among the receipts, and
nothing was moved. A task completes only through a settled payment.

Tasks live in memory, bounded: at most MAX_TASKS (the oldest go first), each holding the first message's
content (at most MAX_BODY_BYTES) until it is paid, and at most MAX_ATTEMPTS receipts; the answer is sent
once, with the payment's result, and not kept.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from a2a.types.a2a_pb2 import Artifact, Message, Part, Role, Task, TaskState, TaskStatus
from a2a.utils.errors import InvalidRequestError
from google.protobuf.json_format import MessageToDict, ParseDict
from starlette.types import Message as AsgiMessage, Receive, Scope, Send
from x402.http.constants import PAYMENT_RESPONSE_HEADER, X_PAYMENT_RESPONSE_HEADER
from x402.http.utils import decode_payment_response_header
from x402.schemas import PaymentPayload, SettleResponse
from x402.schemas.v1 import PaymentPayloadV1

from ghostpay.x402.a2a.card import build_card, card_json
from ghostpay.x402.a2a.protocol import (
    A2A_HEADERS,
    ERROR_KEY,
    EXTENSION_URI,
    PAYLOAD_KEY,
    PAYMENT_COMPLETED,
    PAYMENT_FAILED,
    PAYMENT_REJECTED,
    PAYMENT_REQUIRED,
    PAYMENT_SUBMITTED,
    RECEIPTS_KEY,
    REQUIRED_KEY,
    STATUS_KEY,
    Call,
    RpcFault,
    activated,
    fault,
    not_activated,
    read_call,
    result,
    spec_code,
    task_not_found,
    unsupported,
)

if TYPE_CHECKING:
    from ghostpay.x402.seller import X402Seller

MAX_TASKS = 1024  # tasks remembered; the oldest is forgotten first
MAX_BODY_BYTES = 64 * 1024  # a JSON-RPC request (and so the service request a task keeps)
MAX_ATTEMPTS = 3  # payments tried on one task before it fails
TERMINAL = {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED}
ERR_INVALID_PAYLOAD = "invalid_payload"  # x402.payment.payload is not an x402 PaymentPayload
ERR_TOO_MANY_ATTEMPTS = "too_many_attempts"
PAYMENT_RESPONSE_HEADERS = (PAYMENT_RESPONSE_HEADER.lower().encode(), X_PAYMENT_RESPONSE_HEADER.lower().encode())

# pay(scope, receive, send, route, payload): the paywall's paid request (verify, handler, settle) on a request
PayFn = Callable[[Scope, Receive, Send, str, PaymentPayload | PaymentPayloadV1], Awaitable[None]]


def is_a2a_call(scope: Scope) -> bool:
    return scope["method"] == "POST" and any(k.decode("latin-1") in A2A_HEADERS for k, _ in scope["headers"])


def a2a_paths(routes: Sequence[str]) -> list[str]:
    """The paths of the priced routes that take A2A calls (POST or any method): a glob's literal prefix.

    >>> a2a_paths(["POST /translate", "GET /weather/*", "/api/*", "*"])
    ['/translate', '/api/', '/']
    """
    paths: list[str] = []
    for pattern in routes:
        method, _, path = pattern.strip().rpartition(" ")
        if method.upper() not in ("", "POST"):
            continue
        literal = path.split("*", 1)[0] if path != "*" else "/"
        if literal.startswith("/") and literal not in paths:
            paths.append(literal)
    return paths


@dataclass
class ServiceRequest:
    """What the route's handler receives for a task: the first message's content as an HTTP request."""

    method: str
    content_type: str
    body: bytes

    @classmethod
    def of(cls, message: Message, method: str) -> ServiceRequest:
        """A data part is sent as JSON, text parts as text."""
        for part in message.parts:
            if part.HasField("data"):
                return cls(method, "application/json", json.dumps(MessageToDict(part.data)).encode())
        text = "\n".join(part.text for part in message.parts if part.HasField("text"))
        return cls(method, "text/plain; charset=utf-8", text.encode())


@dataclass
class TaskEntry:
    task: Task
    request: ServiceRequest | None  # dropped once the task is terminal
    receipts: list[dict[str, Any]] = field(default_factory=list)
    paying: bool = False


class Collected:
    """An ASGI `send` keeping the paid request's answer: status, headers, body."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()

    async def send(self, message: AsgiMessage) -> None:
        if message["type"] == "http.response.start":
            self.status, self.headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def header(self, names: Sequence[bytes]) -> str | None:
        return next((v.decode("latin-1") for k, v in self.headers if k.lower() in names), None)

    def json(self) -> Any:
        try:
            return json.loads(bytes(self.body))
        except ValueError:
            return None


def agent_message(text: str, metadata: dict[str, Any], task: Task) -> Message:
    message = Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_AGENT,
        task_id=task.id,
        context_id=task.context_id,
        parts=[Part(text=text)],
    )
    message.metadata.update(metadata)
    return message


def answer_artifact(collected: Collected) -> Artifact:
    part = Part(media_type=collected.header((b"content-type",)) or "application/octet-stream")
    data = collected.json()
    if data is not None:
        ParseDict(data, part.data)
    else:
        part.text = bytes(collected.body).decode("utf-8", "replace")
    return Artifact(artifact_id=str(uuid.uuid4()), name="answer", parts=[part])


def read_payload(value: Any) -> PaymentPayload | PaymentPayloadV1:
    """The x402 PaymentPayload (v2, or v1 by its x402Version) of `x402.payment.payload`; ValueError if not one."""
    if not isinstance(value, dict):
        raise ValueError(f"{PAYLOAD_KEY} is not an object")
    if value.get("x402Version") == 1:
        return PaymentPayloadV1.model_validate(value)
    return PaymentPayload.model_validate(value)


class A2AMerchant:
    """The A2A face of one paywall: the Agent Card and the a2a-x402 tasks of its priced routes."""

    def __init__(self, seller: X402Seller, pay: PayFn) -> None:
        self.seller = seller
        self.pay = pay
        self.tasks: OrderedDict[str, TaskEntry] = OrderedDict()
        self.paths = a2a_paths(seller.settings.routes)
        self._cards: dict[str, tuple[Any, dict[str, Any]]] = {}  # base URL -> (offer, card JSON)

    # the card ------------------------------------------------------------------------------------------

    def card(self, base_url: str) -> dict[str, Any] | None:
        """The Agent Card of the agent now (rebuilt whenever the watched offer changes), or None while the agent
        is not loaded; ValueError when the account cannot make a valid card."""
        offer = self.seller.watch.offer
        if offer is None:
            return None
        known = self._cards.get(base_url)
        if known is not None and known[0] is offer:
            return known[1]
        card = build_card(
            offer,
            [base_url + path for path in self.paths],
            self.seller.network.caip2,
            str(self.seller.settings.program_id),
            description=self.seller.settings.description,
            output_mode=self.seller.settings.mime_type,
        )
        if len(self._cards) >= MAX_TASKS:  # base URLs come from the Host header: bounded
            self._cards.clear()
        self._cards[base_url] = (offer, card_json(card))
        return self._cards[base_url][1]

    # the JSON-RPC calls --------------------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, send: Send, route: str) -> None:
        body = await read_body(receive)
        rpc_id = None
        try:
            if body is None:
                raise RpcFault(InvalidRequestError, f"the request is over {MAX_BODY_BYTES} bytes")
            try:
                decoded = json.loads(body)
            except ValueError:
                await send_json(
                    send, 200, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "not JSON"}}
                )
                return
            rpc_id = decoded.get("id") if isinstance(decoded, dict) else None
            call = read_call(decoded)
            if not activated(headers_of(scope)):
                raise not_activated()
            task = await self.dispatch(call, scope, receive, route)
            answer = result(call, task)
        except RpcFault as exc:
            answer = fault(rpc_id, exc)
        await send_json(send, 200, answer, {"A2A-Extensions": EXTENSION_URI})

    async def dispatch(self, call: Call, scope: Scope, receive: Receive, route: str) -> Task:
        if call.get is not None:
            entry = self.tasks.get(call.get.id)
            if entry is None:
                raise task_not_found(call.get.id)
            return entry.task
        assert call.send is not None
        message = call.send.message
        if not message.task_id:
            return self.open_task(message, scope, route)
        entry = self.tasks.get(message.task_id)
        if entry is None:
            raise task_not_found(message.task_id)
        if entry.task.status.state in TERMINAL:
            raise unsupported(f"task {entry.task.id} is {TaskState.Name(entry.task.status.state)}: open a new one")
        status = MessageToDict(message.metadata).get(STATUS_KEY) if message.HasField("metadata") else None
        if status == PAYMENT_REJECTED:
            self.finish(entry, TaskState.TASK_STATE_CANCELED, "Payment rejected.", {STATUS_KEY: PAYMENT_REJECTED})
            return entry.task
        if status != PAYMENT_SUBMITTED:  # anything but a payment leaves the task waiting for one
            return entry.task
        if entry.paying:
            raise unsupported(f"a payment for task {entry.task.id} is being settled")
        entry.paying = True
        try:
            await self.settle(entry, MessageToDict(message.metadata).get(PAYLOAD_KEY), scope, receive, route)
        finally:
            entry.paying = False
        answered = Task()
        answered.CopyFrom(entry.task)
        del entry.task.artifacts[:]  # the answer goes to the payer once; the task keeps its status and receipts
        return answered

    def open_task(self, message: Message, scope: Scope, route: str) -> Task:
        offer = self.seller.watch.offer
        if offer is None or offer.unavailable:
            raise unsupported(f"{offer.unavailable if offer else 'the agent is not loaded'}; it takes no payments now")
        method = route.strip().rpartition(" ")[0].upper() or "POST"
        task = Task(id=str(uuid.uuid4()), context_id=message.context_id or str(uuid.uuid4()))
        entry = TaskEntry(task, ServiceRequest.of(message, method))
        self.require(entry, scope, "Payment is required.", {STATUS_KEY: PAYMENT_REQUIRED})
        while len(self.tasks) >= MAX_TASKS:
            self.tasks.popitem(last=False)
        self.tasks[task.id] = entry
        return task

    def require(self, entry: TaskEntry, scope: Scope, text: str, metadata: dict[str, Any]) -> None:
        """The task waits for a payment: input-required, with the route's current requirements."""
        required = self.seller.required(resource_url(scope), "payment required", "POST", self.seller.requirements())
        metadata = {**metadata, REQUIRED_KEY: required.model_dump(mode="json", by_alias=True, exclude_none=True)}
        entry.task.status.CopyFrom(
            TaskStatus(state=TaskState.TASK_STATE_INPUT_REQUIRED, message=agent_message(text, metadata, entry.task))
        )
        entry.task.status.timestamp.GetCurrentTime()

    def finish(self, entry: TaskEntry, state: int, text: str, metadata: dict[str, Any]) -> None:
        entry.task.status.CopyFrom(TaskStatus(state=state, message=agent_message(text, metadata, entry.task)))  # type: ignore[arg-type]
        entry.task.status.timestamp.GetCurrentTime()
        entry.request = None

    async def settle(self, entry: TaskEntry, value: Any, scope: Scope, receive: Receive, route: str) -> None:
        """Pay the task with the submitted payload through the paywall, and record the outcome in the task."""
        network = self.seller.network.caip2
        try:
            payload = read_payload(value)
        except ValueError as exc:
            return self.refused(entry, scope, ERR_INVALID_PAYLOAD, str(exc)[:300], network)
        assert entry.request is not None
        collected = Collected()
        await self.pay(
            service_scope(scope, entry.request), replay(entry.request.body, receive), collected.send, route, payload
        )
        header = collected.header(PAYMENT_RESPONSE_HEADERS)
        if collected.status < 400 and header:
            settled = decode_payment_response_header(header)
            entry.receipts.append(receipt(settled))
            self.finish(
                entry,
                TaskState.TASK_STATE_COMPLETED,
                "Payment successful.",
                {STATUS_KEY: PAYMENT_COMPLETED, RECEIPTS_KEY: list(entry.receipts)},
            )
            entry.task.artifacts.append(answer_artifact(collected))
            return None
        answer = collected.json() if isinstance(collected.json(), dict) else {}
        reason = str(answer.get("error") or f"http_{collected.status}")
        return self.refused(entry, scope, reason, str(answer.get("message") or "")[:300], network)

    def refused(self, entry: TaskEntry, scope: Scope, reason: str, message: str, network: str) -> None:
        """A payment that moved nothing: the refusal joins the receipts, and the task waits for another payment
        (or fails after MAX_ATTEMPTS)."""
        entry.receipts.append(
            receipt(
                SettleResponse(
                    success=False, error_reason=reason, error_message=message or None, transaction="", network=network
                )
            )
        )
        metadata = {STATUS_KEY: PAYMENT_FAILED, ERROR_KEY: spec_code(reason), RECEIPTS_KEY: list(entry.receipts)}
        text = f"Payment failed: {reason}" + (f" ({message})" if message else "")
        if len(entry.receipts) >= MAX_ATTEMPTS:
            self.finish(entry, TaskState.TASK_STATE_FAILED, f"{text}; {ERR_TOO_MANY_ATTEMPTS}", metadata)
        else:
            self.require(entry, scope, text, metadata)


def receipt(settled: SettleResponse) -> dict[str, Any]:
    return settled.model_dump(mode="json", by_alias=True, exclude_none=True)


def headers_of(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def resource_url(scope: Scope) -> str:
    host = headers_of(scope).get("host", "localhost")
    return f"{scope.get('scheme', 'http')}://{host}{scope['path']}"


def base_url(scope: Scope) -> str:
    return f"{scope.get('scheme', 'http')}://{headers_of(scope).get('host', 'localhost')}"


def service_scope(scope: Scope, request: ServiceRequest) -> Scope:
    """The A2A call's scope turned into the service request: its method, content type and length."""
    dropped = {b"content-type", b"content-length", b"transfer-encoding", *(h.encode() for h in A2A_HEADERS)}
    headers = [(k, v) for k, v in scope["headers"] if k.lower() not in dropped]
    headers += [(b"content-type", request.content_type.encode()), (b"content-length", str(len(request.body)).encode())]
    return {**scope, "method": request.method, "headers": headers, "state": {}}


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` giving `body` first, then the client's own (which tells when it disconnects)."""
    given = False

    async def receive_body() -> AsgiMessage:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_body


async def read_body(receive: Receive) -> bytes | None:
    """The request body, or None when it is over MAX_BODY_BYTES."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return bytes(body)


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def serve_card(merchant: A2AMerchant, scope: Scope, send: Send) -> None:
    try:
        card, why = merchant.card(base_url(scope)), "the agent is not loaded"
    except ValueError as exc:  # e.g. a closed account: no name, no description
        card, why = None, str(exc)
    if card is None:
        await send_json(send, 503, {"error": "agent_card_unavailable", "message": why})
        return
    await send_json(send, 200, card, {"cache-control": "no-cache"})
