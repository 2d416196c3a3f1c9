"""Processor: applies decoded transactions to the tables, exactly once.

A `Batch` is one database transaction. A chain transaction is applied only if its signature is
not in `transactions` yet; its effects, its raw events (unique on signature, instruction index,
event index) and the cursor commit together. So replaying any transaction (a back-fill that
overlaps the live stream, a restart after SIGKILL) changes nothing: at-least-once delivery,
exactly-once effect.

Reputation counters follow the program's rules (program/src/record_x402_payment.c, feedback.c,
work_order.h): every change that the program makes after rolling the 7-day window to the day of
its clock is mirrored here at the event's timestamp, and the score is recomputed with
`ghostpay.reputation.reputation_score`, the program's own integer function.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Type, TypeVar

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from ghostpay import accounts
from ghostpay.indexer.decode import ChainTransaction, IndexedEvent, Skipped, decode_logs
from ghostpay.indexer.models import (Agent, AgentCapability, AgentToken, Cursor, DailyVolume, Feedback,
                                     IndexedTransaction, Payment, RawEvent, Reputation, SkipCounter, WorkOrder,
                                     WorkOrderTransition)
from ghostpay.program_id import PROGRAM_ID
from ghostpay.reputation import (HISTORY_DAYS, ReputationInputs, day_of, reputation_score, roll_payment_history,
                                 tier)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=SQLModel)
FULL_CLIENT_SHARE_BPS = 10_000

# Event → the work-order status it leaves the order in.
WORK_ORDER_STATUS = {
    "WorkOrderCreated": "Created", "WorkOrderAccepted": "Accepted", "WorkDelivered": "Submitted",
    "DeliveryRejected": "Rejected", "DisputeOpened": "Disputed", "DisputeResolved": "Resolved",
    "WorkOrderCancelled": "Cancelled", "WorkOrderRefunded": "Refunded", "WorkOrderDeclined": "Declined",
}
# Events that change what `agents` shows but not everything it shows: the account fills the rest.


def metrics_inputs(rep: Reputation) -> ReputationInputs:
    return ReputationInputs(rep.successful_payments, rep.failed_payments, rep.total_response_time_ms,
                            rep.response_time_count, rep.total_rating, rep.rating_count, rep.total_disputes,
                            rep.disputes_resolved, tuple(json.loads(rep.history)))


@dataclass
class BatchStats:
    transactions: int = 0  # applied
    duplicates: int = 0  # already applied before
    failed: int = 0
    events: int = 0
    skipped: Skipped = field(default_factory=Skipped)


class Batch:
    """One database transaction's worth of chain transactions, applied in the order given."""

    def __init__(self, engine: Engine, program_id: Any = PROGRAM_ID) -> None:
        self.session = Session(engine, autoflush=False, expire_on_commit=False)
        self.program_id = program_id
        self.stats = BatchStats()
        self.cursor: Optional[tuple[int, str]] = None
        self.needs_account: set[str] = set()  # agents whose account the service must fetch (fill_agents)
        self.applied_signatures: list[str] = []
        self._rows: dict[tuple[type, Any], Any] = {}
        self._seen: set[str] = set()

    # rows ---------------------------------------------------------------------------------------------

    def _get(self, model: Type[M], key: Any) -> Optional[M]:
        cached = self._rows.get((model, key))
        if cached is None:
            cached = self.session.get(model, key)
            if cached is not None:
                self._rows[(model, key)] = cached
        return cached

    def _add(self, model: Type[M], key: Any, row: M) -> M:
        self.session.add(row)
        self._rows[(model, key)] = row
        return row

    def _get_or_add(self, model: Type[M], key: Any, make: Callable[[], M]) -> M:
        row = self._get(model, key)
        return row if row is not None else self._add(model, key, make())

    def _agent(self, address: str) -> Agent:
        """The agent row; a stub (filled from its account) for an agent whose registration we never saw."""
        row = self._get(Agent, address)
        if row is None:
            self.needs_account.add(address)
            row = self._add(Agent, address, Agent(address=address, owner=""))
        return row

    def _reputation(self, agent: str, timestamp: int) -> Reputation:
        return self._get_or_add(Reputation, agent, lambda: Reputation(
            agent=agent, history_day=day_of(timestamp), updated_at=timestamp))

    # transactions -------------------------------------------------------------------------------------

    def apply(self, tx: ChainTransaction) -> bool:
        """Apply one transaction unless it was applied before; False if skipped (failed or a duplicate)."""
        if tx.failed:  # ignored, but the cursor moves past it so the next back-fill does not list it again
            self.stats.failed += 1
            self._advance(tx)
            return False
        if tx.signature in self._seen or self.session.get(IndexedTransaction, tx.signature) is not None:
            self.stats.duplicates += 1
            return False
        self._seen.add(tx.signature)
        decoded = decode_logs(tx.logs, self.program_id, signature=tx.signature, slot=tx.slot)
        for indexed in decoded.events:
            self._apply_event(tx, indexed)
        # Checked per transaction: claim_refund logs ReputationUpdated before the event that changes
        # the counters, so mid-instruction the two may differ.
        for agent in {str(i.data.agent) for i in decoded.events if i.name == "ReputationUpdated"}:
            rep = self._get(Reputation, agent)
            if rep is not None and rep.score != rep.chain_score:
                log.warning("%s: recomputed score %d differs from the program's %s (%s)", agent, rep.score,
                            rep.chain_score, tx.signature)
        self.session.add(IndexedTransaction(signature=tx.signature, slot=tx.slot, events=len(decoded.events),
                                            skipped=decoded.skipped.total))
        self.stats.transactions += 1
        self.stats.events += len(decoded.events)
        self.stats.skipped.add(decoded.skipped)
        if decoded.skipped.total:
            log.warning("%s: skipped %d event lines (malformed %d, unknown %d, foreign %d)", tx.signature,
                        decoded.skipped.total, decoded.skipped.malformed, decoded.skipped.unknown,
                        decoded.skipped.foreign)
        self._advance(tx)
        self.applied_signatures.append(tx.signature)
        return True

    def _advance(self, tx: ChainTransaction) -> None:
        if self.cursor is None or tx.slot >= self.cursor[0]:
            self.cursor = (tx.slot, tx.signature)

    def _apply_event(self, tx: ChainTransaction, indexed: IndexedEvent) -> None:
        e = indexed.data
        agent = str(e.agent)
        self.session.add(RawEvent(signature=tx.signature, slot=tx.slot, instruction_index=indexed.instruction_index,
                                  event_index=indexed.event_index, name=indexed.name, agent=agent,
                                  timestamp=e.timestamp, data=indexed.to_json()))
        handler = getattr(self, "_on_" + indexed.name)
        handler(tx, indexed, e, agent)

    # agent lifecycle ------------------------------------------------------------------------------------

    def _on_AgentRegistered(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        # A closed agent's address can be registered again: the new account starts from zero, but its
        # ReputationMetrics stayed on chain and continue (the ReputationUpdated that follows rescores it).
        row = self._get(Agent, agent)
        fresh = Agent(address=agent, owner=str(e.owner), agent_id=e.agent_id, name=e.name, agent_type=e.agent_type,
                      x402_enabled=e.x402_enabled, registration=e.registration, created_at=e.timestamp,
                      updated_at=e.timestamp, slot=tx.slot)
        if row is None:
            self._add(Agent, agent, fresh)
        else:
            for name in Agent.model_fields:
                setattr(row, name, getattr(fresh, name))
        rep = self._reputation(agent, e.timestamp)
        if e.registration <= 1:  # a first registration creates the metrics (a stale row from a reset chain goes)
            for name, value in Reputation(agent=agent, history_day=day_of(e.timestamp),
                                          updated_at=e.timestamp).model_dump().items():
                setattr(rep, name, value)
        else:
            self._roll(rep, e.timestamp)
        self.needs_account.add(agent)

    def _on_AgentUpdated(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        row = self._agent(agent)
        row.name, row.agent_type, row.updated_at, row.slot = e.name, e.agent_type, e.timestamp, tx.slot
        self.needs_account.add(agent)

    def _on_X402Configured(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        row = self._agent(agent)
        row.x402_enabled = True
        row.payment_address, row.endpoint = str(e.payment_address), e.service_endpoint
        row.updated_at, row.slot = e.timestamp, tx.slot
        self._set_tokens(agent, [(str(t.mint), t.price) for t in e.accepted_tokens])

    def _on_X402Disabled(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        row = self._agent(agent)
        row.x402_enabled, row.updated_at, row.slot = False, e.timestamp, tx.slot

    def _on_AgentStatusChanged(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        row = self._agent(agent)
        row.is_active, row.updated_at, row.slot = e.is_active, e.timestamp, tx.slot

    def _on_AgentClosed(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        row = self._agent(agent)
        row.closed, row.closed_at, row.slot = True, e.timestamp, tx.slot
        # The fields only the account held are gone with it. Clearing them makes the row the same
        # whether the account was read before the close (live) or never (a later back-fill).
        row.description, row.metadata_uri, row.endpoint, row.payment_address = "", "", "", None
        self._set_tokens(agent, [])
        self._set_capabilities(agent, [])
        self.needs_account.discard(agent)

    def _set_tokens(self, agent: str, prices: list[tuple[str, int]]) -> None:
        """Replace the agent's accepted mints with these (mint, atomic price) pairs, in order."""
        self.session.flush()  # the delete below must see rows added earlier in this batch
        self.session.execute(delete(AgentToken).where(AgentToken.agent == agent))  # type: ignore[arg-type]
        for key in [k for k in self._rows if k[0] is AgentToken and k[1][0] == agent]:
            del self._rows[key]
        for position, (mint, price) in enumerate(dict(prices).items()):
            self._add(AgentToken, (agent, mint), AgentToken(agent=agent, mint=mint, position=position, price=price))

    def _set_capabilities(self, agent: str, capabilities: Iterable[str]) -> None:
        self.session.flush()
        self.session.execute(delete(AgentCapability).where(AgentCapability.agent == agent))  # type: ignore[arg-type]
        for key in [k for k in self._rows if k[0] is AgentCapability and k[1][0] == agent]:
            del self._rows[key]
        for capability in dict.fromkeys(capabilities):
            self._add(AgentCapability, (agent, capability), AgentCapability(agent=agent, capability=capability))

    def fill_agents(self, found: dict[str, Optional[accounts.Agent]]) -> None:
        """Copy the fields events do not carry from freshly fetched agent accounts (None: closed)."""
        for address, account in found.items():
            row = self._get(Agent, address)
            if row is None or account is None:
                continue
            row.owner, row.agent_id, row.name, row.agent_type = (str(account.owner), account.agent_id, account.name,
                                                                 account.agent_type)
            row.description, row.metadata_uri = account.description, account.metadata_uri
            row.endpoint = account.x402_service_endpoint
            row.payment_address = str(account.x402_payment_address)
            self._set_tokens(address, [(str(t.mint), t.price) for t in account.x402_accepted_tokens])
            self._set_capabilities(address, account.capabilities)
        self.needs_account.clear()

    # payments and reputation ----------------------------------------------------------------------------

    def _roll(self, rep: Reputation, timestamp: int) -> list[int]:
        history, rep.history_day = roll_payment_history(json.loads(rep.history), rep.history_day, day_of(timestamp))
        rep.history = json.dumps(history)
        rep.updated_at = timestamp
        return history

    def _count_successful(self, rep: Reputation, timestamp: int) -> None:
        history = self._roll(rep, timestamp)
        history[rep.history_day % HISTORY_DAYS] += 1
        rep.history = json.dumps(history)
        rep.successful_payments += 1

    def _count_failed(self, rep: Reputation, timestamp: int) -> None:
        self._roll(rep, timestamp)
        rep.failed_payments += 1

    def _rescore(self, agent: str, rep: Reputation) -> None:
        score = reputation_score(metrics_inputs(rep))
        rep.payment_success, rep.service_quality = score.payment_success, score.service_quality
        rep.response_time, rep.volume_consistency, rep.score = score.response_time, score.volume_consistency, score.score
        row = self._agent(agent)
        row.reputation_score = score.score
        row.tier = tier(score.score, rep.successful_payments + rep.failed_payments > 0).value

    def _on_X402PaymentRecorded(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        reference = bytes(e.reference).hex()
        mint = str(e.mint)
        payment = Payment(agent=agent, reference=reference, payer=str(e.payer), rent_payer=str(e.rent_payer),
                          mint=mint, amount=e.amount,
                          signature=tx.signature, instruction_index=indexed.instruction_index, slot=tx.slot,
                          timestamp=e.timestamp)
        existing = self._get(Payment, (agent, reference))
        if existing is None:  # else a receipt of a closed-and-reregistered agent reused its reference
            self._add(Payment, (agent, reference), payment)
        else:
            for name, value in payment.model_dump().items():
                setattr(existing, name, value)
        row = self._agent(agent)
        row.x402_total_calls += 1
        row.x402_total_payments += e.amount
        row.total_earnings += e.amount
        row.last_payment_at = e.timestamp
        day = day_of(e.timestamp)
        volume = self._get_or_add(DailyVolume, (day, agent, mint),
                                  lambda: DailyVolume(day=day, agent=agent, mint=mint))
        volume.payments += 1
        volume.amount += e.amount
        rep = self._reputation(agent, e.timestamp)
        self._count_successful(rep, e.timestamp)
        self._rescore(agent, rep)

    def _on_FeedbackSubmitted(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        reference = bytes(e.reference).hex()
        self._get_or_add(Feedback, (agent, reference), lambda: Feedback(
            agent=agent, reference=reference, payer=str(e.payer), success=e.success, rating=e.rating,
            response_time_ms=e.response_time_ms, signature=tx.signature, slot=tx.slot, timestamp=e.timestamp))
        payment = self._get(Payment, (agent, reference))
        if payment is not None:
            payment.outcome = "success" if e.success else "failed"
            payment.rating = e.rating or None
            payment.response_time_ms = e.response_time_ms or None
        rep = self._reputation(agent, e.timestamp)
        if not e.success:  # the program moves the payment from successful to failed
            rep.successful_payments = max(rep.successful_payments - 1, 0)
            rep.failed_payments += 1
        if e.rating:
            rep.total_rating += e.rating
            rep.rating_count += 1
        if e.response_time_ms:
            rep.total_response_time_ms += e.response_time_ms
            rep.response_time_count += 1
        self._roll(rep, e.timestamp)
        self._rescore(agent, rep)

    def _on_ReputationUpdated(self, tx: ChainTransaction, _: IndexedEvent, e: Any, agent: str) -> None:
        rep = self._reputation(agent, e.timestamp)
        self._roll(rep, e.timestamp)  # refresh_reputation's roll; a no-op after any other instruction's
        self._rescore(agent, rep)
        rep.chain_score = e.new_score

    # work orders --------------------------------------------------------------------------------------

    def _transition(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, amount: int = 0,
                    status: Optional[str] = None) -> Optional[WorkOrder]:
        """Record the order's state change (`status`, default the event's) and return the order."""
        address = str(e.work_order)
        order = self._get(WorkOrder, address)
        to_status = status or WORK_ORDER_STATUS.get(indexed.name) or (order.status if order else "Created")
        self.session.add(WorkOrderTransition(
            signature=tx.signature, instruction_index=indexed.instruction_index, event_index=indexed.event_index,
            work_order=address, event=indexed.name, from_status=order.status if order else None,
            to_status=to_status, amount=amount, slot=tx.slot, timestamp=e.timestamp))
        if order is not None:
            order.status, order.updated_at = to_status, e.timestamp
        return order

    def _close_order(self, agent: str) -> None:
        row = self._agent(agent)
        row.open_work_orders = max(row.open_work_orders - 1, 0)

    def _on_WorkOrderCreated(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        provider = self._agent(agent).owner or None
        address = str(e.work_order)
        self._transition(tx, indexed, e, e.amount)
        order = WorkOrder(address=address, agent=agent, client=str(e.client), provider=provider,
                          arbiter=str(e.arbiter), mint=str(e.mint), order_id=e.order_id, amount=e.amount,
                          deadline=e.deadline, review_period_seconds=e.review_period_seconds, status="Created",
                          created_at=e.timestamp, updated_at=e.timestamp, signature=tx.signature)
        existing = self._get(WorkOrder, address)
        if existing is None:
            self._add(WorkOrder, address, order)
        else:  # a closed order's address reused by a new order with the same id
            for name, value in order.model_dump().items():
                setattr(existing, name, value)
        self._agent(agent).open_work_orders += 1

    def _on_WorkOrderAccepted(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e)
        if order is not None:
            order.was_accepted, order.provider = True, str(e.provider)

    def _on_WorkDelivered(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e)
        if order is not None:
            order.deliverable_uri, order.content_hash = e.deliverable_uri, bytes(e.content_hash).hex()

    def _on_DeliveryRejected(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        self._transition(tx, indexed, e)

    def _escrow_earned(self, agent: str, mint: str, amount: int, timestamp: int) -> None:
        self._agent(agent).total_earnings += amount
        day = day_of(timestamp)
        volume = self._get_or_add(DailyVolume, (day, agent, mint), lambda: DailyVolume(day=day, agent=agent, mint=mint))
        volume.escrow_released += amount

    def _on_PaymentReleased(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        # a partial release leaves the order where it was; the one that empties the escrow completes it
        order = self._transition(tx, indexed, e, e.amount, "Completed" if e.completed else None)
        if order is not None:
            order.released = e.released
        self._escrow_earned(agent, str(e.mint), e.amount, e.timestamp)
        if e.completed:
            self._agent(agent).total_jobs_completed += 1
            rep = self._reputation(agent, e.timestamp)
            self._count_successful(rep, e.timestamp)
            self._rescore(agent, rep)
            self._close_order(agent)

    def _on_DisputeOpened(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        self._transition(tx, indexed, e)
        rep = self._reputation(agent, e.timestamp)
        self._roll(rep, e.timestamp)
        rep.total_disputes += 1
        self._rescore(agent, rep)

    def _on_DisputeResolved(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e, e.provider_amount)
        if order is not None:
            order.released += e.provider_amount
            order.refunded += e.client_amount
        self._escrow_earned(agent, order.mint if order else "", e.provider_amount, e.timestamp)
        rep = self._reputation(agent, e.timestamp)
        # program/src/work_order_settle.c resolve_dispute: a ruling wholly for the provider erases the
        # dispute and completes the job, as a release would; any other counts a resolved dispute.
        if e.client_share_bps == 0:
            rep.total_disputes = max(rep.total_disputes - 1, 0)
            self._agent(agent).total_jobs_completed += 1
            self._count_successful(rep, e.timestamp)
        else:
            rep.disputes_resolved += 1
            if e.client_share_bps == FULL_CLIENT_SHARE_BPS:
                self._count_failed(rep, e.timestamp)
            else:
                self._count_successful(rep, e.timestamp)
        self._rescore(agent, rep)
        self._close_order(agent)

    def _on_WorkOrderCancelled(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e, e.refunded)
        if order is not None:
            order.refunded += e.refunded
        self._close_order(agent)

    def _on_WorkOrderDeclined(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e, e.refunded)
        if order is not None:
            order.refunded += e.refunded
        self._close_order(agent)

    def _on_WorkOrderRefunded(self, tx: ChainTransaction, indexed: IndexedEvent, e: Any, agent: str) -> None:
        order = self._transition(tx, indexed, e, e.refunded)
        if order is not None:
            order.refunded += e.refunded
            if order.was_accepted:  # accepted, then no delivery standing at the deadline: a failed payment
                rep = self._reputation(agent, e.timestamp)
                self._count_failed(rep, e.timestamp)
                self._rescore(agent, rep)
        self._close_order(agent)

    # commit ---------------------------------------------------------------------------------------------

    def commit(self) -> None:
        """Write everything applied and the cursor in one database transaction."""
        if self.cursor is not None:
            slot, signature = self.cursor
            cursor = self.session.get(Cursor, 1)
            if cursor is None:
                self.session.add(Cursor(id=1, slot=slot, signature=signature, updated_at=time.time()))
            elif slot >= cursor.slot:
                cursor.slot, cursor.signature, cursor.updated_at = slot, signature, time.time()
        self._count_skips()
        self.session.commit()
        self.session.close()

    def _count_skips(self) -> None:
        s = self.stats
        for name, value in (("malformed", s.skipped.malformed), ("unknown", s.skipped.unknown),
                            ("foreign", s.skipped.foreign), ("failed_transactions", s.failed)):
            if value:
                counter = self.session.get(SkipCounter, name) or SkipCounter(name=name, count=0)
                counter.count += value
                self.session.add(counter)

    def rollback(self) -> None:
        self.session.rollback()
        self.session.close()
