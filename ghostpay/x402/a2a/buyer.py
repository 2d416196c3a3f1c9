"""The client side of a2a-x402 (standalone flow): pay an A2A agent under the buyer's spending guards.

    async with A2ABuyer(gp, max_price=Decimal("0.05")) as a2a:
        paid = await a2a.call("https://agent.example", {"text": "hola"})
        paid.answer, paid.payment          # the artifact's content, and the PaymentRecord (signature, verified...)

It reads the agent's card (the official `a2a-sdk`'s resolver), refuses an agent that does not declare the
a2a-x402 extension, and talks to it with the SDK's own client (JSON-RPC, the extension activated). A task in
`input-required` with `payment-required` is paid as an HTTP 402 is (`X402Buyer`): the same choice of
requirement, guards, reservation and signing, GhostPay's record included when the seller offers it; the
payment goes back on the same task with `payment-submitted`, and the receipts say whether it settled.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.client.client import ClientCallContext
from a2a.client.service_parameters import ServiceParametersFactory, with_a2a_extensions
from a2a.types.a2a_pb2 import AgentCard, Message, Part, Role, SendMessageRequest, Task, TaskState
from google.protobuf.json_format import MessageToDict, ParseDict
from x402.schemas import PaymentRequired, SettleResponse
from x402.schemas.v1 import PaymentRequiredV1

from ghostpay.exceptions import PaymentRequirementsInvalid, X402Error
from ghostpay.x402.a2a.protocol import (
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
)
from ghostpay.x402.buyer.models import PaymentRecord, Quote, ms, settled_record
from ghostpay.x402.buyer.payer import X402Buyer
from ghostpay.x402.buyer.quotes import Required

if TYPE_CHECKING:
    from pydantic import JsonValue

    from ghostpay.client import GhostPayClient
    from ghostpay.spending import GuardedWallet, Reservation, SpendingGuards

PAYMENT_TEXT = "Here is the payment authorization."


class A2APaymentFailed(X402Error):
    """The agent refused or failed to settle the payment: `code` is its x402.payment.error."""

    def __init__(self, message: str, code: str, task: Task) -> None:
        super().__init__(message)
        self.code = code
        self.task = task


@dataclass
class A2ACall:
    """A paid A2A call: the final task, its answer (the first artifact's data or text) and the payment."""

    task: Task
    answer: Any
    payment: PaymentRecord | None

    def to_json(self) -> dict[str, Any]:
        return {
            "task": MessageToDict(self.task),
            "answer": self.answer,
            "payment": self.payment.to_json() if self.payment else None,
        }


def metadata(message: Message) -> dict[str, Any]:
    return MessageToDict(message.metadata) if message.HasField("metadata") else {}


def last_receipt(meta: dict[str, Any]) -> SettleResponse | None:
    """The merchant's latest settlement receipt in a task's payment metadata, or None."""
    receipts = meta.get(RECEIPTS_KEY) or []
    return SettleResponse.model_validate(receipts[-1]) if receipts else None


def payment_required(task: Task) -> Required | None:
    """The standalone flow's x402PaymentRequiredResponse of a task waiting for payment, or None."""
    meta = metadata(task.status.message)
    if task.status.state != TaskState.TASK_STATE_INPUT_REQUIRED or meta.get(STATUS_KEY) != PAYMENT_REQUIRED:
        return None
    required = meta.get(REQUIRED_KEY)
    if not isinstance(required, dict):
        raise PaymentRequirementsInvalid("the task asks for payment without x402.payment.required (embedded flow)")
    try:
        if int(required.get("x402Version", 1)) == 1:
            return PaymentRequiredV1.model_validate(required)
        return PaymentRequired.model_validate(required)
    except ValueError as exc:
        raise PaymentRequirementsInvalid(f"x402.payment.required cannot be read: {exc}") from None


def answer_of(task: Task) -> Any:
    for artifact in task.artifacts:
        for part in artifact.parts:
            if part.HasField("data"):
                return MessageToDict(part.data)
            if part.HasField("text"):
                return part.text
    return None


def user_message(content: str | dict[str, Any], task: Task | None = None) -> Message:
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER)
    if task is not None:
        message.task_id, message.context_id = task.id, task.context_id
    part = Part()
    if isinstance(content, str):
        part.text = content
    else:
        ParseDict(content, part.data)
    message.parts.append(part)
    return message


def endpoint_card(card: AgentCard, url: str) -> AgentCard:
    """The card with only the interfaces at `url`, when it has some (the caller named one endpoint)."""
    chosen = [i for i in card.supported_interfaces if i.url.rstrip("/") == url.rstrip("/")]
    if not chosen:
        return card
    pinned = AgentCard()
    pinned.CopyFrom(card)
    del pinned.supported_interfaces[:]
    pinned.supported_interfaces.extend(chosen)
    return pinned


class A2ABuyer:
    """Pays a2a-x402 agents from one wallet (a GhostPayClient's) under spending guards."""

    def __init__(
        self,
        gp: GhostPayClient,
        *,
        guards: SpendingGuards | GuardedWallet | None = None,
        max_price: Decimal | None = None,
        tokens: Sequence[Any] = (),
        timeout: float = 60.0,
    ) -> None:
        self.payer = X402Buyer(
            gp, guards=guards if guards is not None else gp.guards, max_price=max_price, tokens=tokens
        )
        self.http = httpx.AsyncClient(timeout=timeout)  # a payment answer waits for the facilitator's settlement
        self.context = ClientCallContext(
            service_parameters=ServiceParametersFactory.create([with_a2a_extensions([EXTENSION_URI])])
        )

    async def __aenter__(self) -> A2ABuyer:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.http.aclose()

    async def card(self, url: str) -> AgentCard:
        """The agent's card, from the origin of `url` (`/.well-known/agent-card.json`)."""
        parts = urlsplit(url)
        card = await A2ACardResolver(self.http, f"{parts.scheme}://{parts.netloc}").get_agent_card()
        if not any(e.uri == EXTENSION_URI for e in card.capabilities.extensions):
            raise X402Error(f"{url}: the agent's card does not declare the a2a-x402 extension ({EXTENSION_URI})")
        return endpoint_card(card, url)

    async def call(self, url: str, content: str | dict[str, Any]) -> A2ACall:
        """Send `content` (text, or a JSON object as a data part) to the agent at `url` and pay what it asks."""
        card = await self.card(url)
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=self.http)).create(card)
        task = await self.send(client, user_message(content))
        required = payment_required(task)
        if required is None:
            return A2ACall(task, answer_of(task), None)
        return await self.pay(client, task, required, url)

    async def send(self, client: Any, message: Message) -> Task:
        async for event in client.send_message(SendMessageRequest(message=message), context=self.context):
            if event.HasField("task"):
                return event.task
        raise X402Error("the agent answered with a message, not a task")

    async def pay(self, client: Any, task: Task, required: Required, url: str) -> A2ACall:
        policy = self.payer.policy
        asked = time.perf_counter()
        index, quote = await policy.choose(required, url, {})
        reservation = await policy.authorize(await policy.spend(quote, url))
        try:
            payload, recorded = await self.payer.sign(required, index, quote)
        except BaseException:
            if reservation is not None:
                await reservation.release()
            raise
        submit = user_message(PAYMENT_TEXT, task)
        dumped: JsonValue = payload.model_dump(mode="json", by_alias=True, exclude_none=True)
        submit.metadata.update({STATUS_KEY: PAYMENT_SUBMITTED, PAYLOAD_KEY: dumped})
        if reservation is not None:
            await reservation.sent(self.payer.proof(payload))
        started = time.perf_counter()
        final = await self.send(client, submit)
        record = self.record(quote, url, final, ms(time.perf_counter() - started))
        record.quote_ms, record.sign_ms = ms(started - asked), 0
        if recorded is not None:
            record.reference, record.payer_stats = recorded.reference.hex(), str(recorded.payer_stats)
            record.verified = record.settled and await self.payer._recorded(quote, recorded, record.signature)
        await self.account(reservation, final)
        if not record.settled:
            meta = metadata(final.status.message)
            code = str(meta.get(ERROR_KEY) or record.error or "payment_failed")
            raise A2APaymentFailed(f"{url}: the agent did not settle the payment: {code} ({record.error})", code, final)
        return A2ACall(final, answer_of(final), record)

    @staticmethod
    async def account(reservation: Reservation | None, task: Task) -> None:
        """Count what the merchant's receipt says moved, whatever became of the task: a successful receipt settles
        the reservation (a failed task does not give the money back); a refusal without one (payment-rejected,
        payment-failed) releases it; an answer that says neither leaves it sent, for the ledger's reconcile to
        look up on chain."""
        if reservation is None:
            return
        meta = metadata(task.status.message)
        settle = last_receipt(meta)
        if settle is not None and settle.success and settle.transaction:
            await reservation.settled(settle.transaction)
        elif meta.get(STATUS_KEY) in (PAYMENT_REJECTED, PAYMENT_FAILED):
            await reservation.release()

    def record(self, quote: Quote, url: str, task: Task, latency_ms: int) -> PaymentRecord:
        """Settled only when the task completed with payment-completed and a successful receipt; the error is
        the receipt's, else the task's x402.payment.error."""
        meta = metadata(task.status.message)
        settle = last_receipt(meta)
        settled = bool(
            meta.get(STATUS_KEY) == PAYMENT_COMPLETED
            and task.status.state == TaskState.TASK_STATE_COMPLETED
            and settle is not None
            and settle.success
        )
        error = None if settled else (settle.error_reason if settle is not None else meta.get(ERROR_KEY))
        wallet = str(self.payer.wallet)
        status = 200 if settled else 402
        return settled_record(quote, url, settle, wallet, status, latency_ms, judged=(settled, error))
