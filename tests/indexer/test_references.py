"""Payments without an account per payment, indexed: a reference is not unique on chain (a payer may pay
twice with one), so payments are rows of their own keyed by the recording instruction; a rating sets the
outcome of the newest unrated payment of its payer with the reference it names (none if it names another
payer's); PayerStats events are applied once. The same in SQLite and PostgreSQL, in one batch or in batches
of one transaction, and a replay changes nothing."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.indexer.models import Feedback, Payment, RawEvent, Reputation
from tests.indexer.conftest import backfill, dump_tables, open_db, run_verify
from tests.localnet.conftest import LocalnetProcess
from tests.sdk.conftest import create_mint, fund, mint_to

REFERENCE = bytes([7]) * 32


async def pay_and_rate(net: LocalnetProcess) -> dict[str, Any]:
    """Payer A pays twice with REFERENCE, payer B once with its own; B rates naming A's reference; A rates
    naming it twice; A closes its PayerStats. Returns the signatures and keys to check."""
    mint = create_mint(net, 6)
    owner, a, b = fund(net), fund(net), fund(net)
    for payer in (a, b):
        mint_to(net, payer.pubkey(), mint, 1_000_000)
    async with (
        GhostPayClient(net.http_url, owner) as seller,
        GhostPayClient(net.http_url, a) as gp_a,
        GhostPayClient(net.http_url, b) as gp_b,
    ):
        agent = (
            await seller.register_agent(
                "reused", "Reused", x402=X402Settings({mint: Decimal("0.01")}, "https://reused.example")
            )
        ).address
        first = await gp_a.pay_agent(agent, reference=REFERENCE)
        second = await gp_a.pay_agent(agent, reference=REFERENCE)  # the same reference: a second, real payment
        own = await gp_b.pay_agent(agent)
        await gp_b.submit_feedback(agent, REFERENCE, success=False, rating=1)  # names A's payment: counted, unattached
        await gp_a.submit_feedback(agent, REFERENCE, success=True, rating=5, response_time_ms=300)
        await gp_a.submit_feedback(agent, REFERENCE, success=False, rating=2)
        await gp_a.close_payer_stats(agent)
    return {
        "agent": str(agent),
        "first": str(first.signature),
        "second": str(second.signature),
        "own": str(own.signature),
        "a": str(a.pubkey()),
        "b": str(b.pubkey()),
    }


def outcomes(url: str, agent: str) -> dict[str, tuple[str, int | None]]:
    with Session(open_db(url)) as s:
        return {p.signature: (p.outcome, p.rating) for p in s.exec(select(Payment).where(Payment.agent == agent))}


def test_a_reused_reference_is_two_payments_and_each_rating_finds_its_own(
    chain: LocalnetProcess, db_url: str, tmp_path: Any
) -> None:
    paid = asyncio.run(pay_and_rate(chain))
    backfill(chain, db_url)
    assert outcomes(db_url, paid["agent"]) == {
        paid["second"]: ("success", 5),  # the newest unrated one of A's with the reference, rated first
        paid["first"]: ("failed", 2),
        paid["own"]: ("recorded", None),  # B rated naming A's reference: B's own payment keeps no outcome
    }
    with Session(open_db(db_url)) as s:
        feedback = s.exec(select(Feedback).order_by(Feedback.slot)).all()
        assert [(f.payer, f.reference, f.rating) for f in feedback] == [
            (paid["b"], REFERENCE.hex(), 1),
            (paid["a"], REFERENCE.hex(), 5),
            (paid["a"], REFERENCE.hex(), 2),
        ]
        names = [e.name for e in s.exec(select(RawEvent).where(RawEvent.agent == paid["agent"]).order_by(RawEvent.id))]
        assert names.count("PayerStatsOpened") == 2 and names.count("PayerStatsClosed") == 1
        rep = s.get(Reputation, paid["agent"])
        assert (rep.successful_payments, rep.failed_payments, rep.rating_count) == (1, 2, 3)  # B's rating counted
    assert run_verify(chain, db_url).differences == []
    before = dump_tables(open_db(db_url))
    backfill(chain, db_url)  # a replay applies nothing twice
    assert dump_tables(open_db(db_url)) == before

    # the same chain in batches of one transaction: the same rows
    one_by_one = f"sqlite:///{tmp_path / 'one-by-one.db'}"
    backfill(chain, one_by_one, batch_size=1)
    assert dump_tables(open_db(one_by_one)) == before
