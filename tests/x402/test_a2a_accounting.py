"""What the A2A buyer's budget counts once the merchant answers a paid task: the money the receipt says moved,
whatever became of the task (a merchant must not be able to take a payment and have the buyer forget it)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from a2a.types.a2a_pb2 import Task, TaskState
from google.protobuf.json_format import ParseDict
from x402.schemas import SettleResponse

from ghostpay.spending import GuardedWallet, Spend, SpendingGuards
from ghostpay.x402.a2a.buyer import A2ABuyer
from ghostpay.x402.a2a.protocol import (
    PAYMENT_COMPLETED,
    PAYMENT_FAILED,
    PAYMENT_REJECTED,
    RECEIPTS_KEY,
    STATUS_KEY,
)

WALLET, USDC = "Wallet1", "Usdc1111111111111111111111111111111111111111"
NETWORK = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
SIGNATURE = "5" * 87


def answered(state: int, status: str, receipt: SettleResponse | None) -> Task:
    task = Task(id="task-1", context_id="context-1")
    task.status.state = state  # type: ignore[assignment]
    meta: dict[str, Any] = {STATUS_KEY: status}
    if receipt is not None:
        meta[RECEIPTS_KEY] = [receipt.model_dump(mode="json", by_alias=True, exclude_none=True)]
    ParseDict(meta, task.status.message.metadata)
    return task


async def spent_after(tmp_path: Path, task: Task) -> dict[str, int]:
    wallet = GuardedWallet(SpendingGuards(daily=Decimal(1)), tmp_path / "ledger.db")
    reservation = await wallet.authorize(Spend(WALLET, USDC, 6, 10_000, "Seller1", None, "http://shop/a2a"))
    await reservation.sent()
    await A2ABuyer.account(reservation, task)
    return wallet.ledger.counts(WALLET)


SETTLED = SettleResponse(success=True, transaction=SIGNATURE, network=NETWORK, payer=WALLET)
REFUSED = SettleResponse(success=False, error_reason="insufficient_funds", network=NETWORK, transaction="")


@pytest.mark.parametrize(
    ("state", "status", "receipt", "counted_as"),
    [
        (TaskState.TASK_STATE_COMPLETED, PAYMENT_COMPLETED, SETTLED, "settled"),
        # the money moved and the work failed: the payment still counts against the budget
        (TaskState.TASK_STATE_FAILED, PAYMENT_COMPLETED, SETTLED, "settled"),
        (TaskState.TASK_STATE_FAILED, PAYMENT_FAILED, SETTLED, "settled"),
        # a refusal with no successful receipt: nothing moved
        (TaskState.TASK_STATE_FAILED, PAYMENT_FAILED, REFUSED, "released"),
        (TaskState.TASK_STATE_INPUT_REQUIRED, PAYMENT_REJECTED, None, "released"),
        # completed, but no receipt: whether it moved is unknown, so it keeps counting (sent) for reconcile
        (TaskState.TASK_STATE_COMPLETED, PAYMENT_COMPLETED, None, "sent"),
    ],
)
async def test_the_budget_counts_what_the_receipt_says_moved(
    tmp_path: Path, state: int, status: str, receipt: SettleResponse | None, counted_as: str
) -> None:
    assert await spent_after(tmp_path, answered(state, status, receipt)) == {counted_as: 1}
