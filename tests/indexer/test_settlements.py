"""Issue 24 items 11 and 12 as the indexer sees them, on a fresh localnet: earnings slots the owner's
configuration retires (MintEarningsRetired), a dispute its arbiter never rules on settled by default
(DisputeSettledByDefault) and a refund the provider settles for a client who never claims it. The index must
agree with the chain field by field (`verify`), earnings per mint included."""

from __future__ import annotations

import asyncio
import json

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlmodel import Session, select

from ghostpay import instructions as ix
from ghostpay.agent_instructions import AgentProfile, build_register_agent, mint_accounts
from ghostpay.artifacts import idl_constant
from ghostpay.indexer.models import Agent, AgentEarning, RawEvent, Reputation, WorkOrder
from ghostpay.payments import build_x402_payment
from ghostpay.pda import agent_address
from ghostpay.types import TokenPrice, X402Config
from ghostpay.work_orders import (
    WorkOrderRef,
    WorkOrderTerms,
    build_accept_work_order,
    build_create_work_order,
    build_open_dispute,
    build_settle_by_default,
)
from tests.indexer.conftest import backfill, open_db, run_verify
from tests.indexer.history import DAY, Chain
from tests.localnet.conftest import LocalnetProcess

PRICE = 10_000
AMOUNT = 50_000
EARNING_MINTS = idl_constant("MAX_EARNING_MINTS")
RULING = idl_constant("DISPUTE_RULING_SECONDS")


async def settle_and_retire(url: str) -> tuple[Pubkey, list[Pubkey]]:
    """The agent's owner accepts 16 mints four at a time, a payer pays once in each, then four new mints
    retire the four oldest slots; two orders in a new mint end by default. Returns the agent and its mints."""
    chain = Chain(url)
    try:
        owner, payer, client, arbiter = Keypair(), Keypair(), Keypair(), Keypair()
        for k in (owner, payer, client, arbiter):
            await chain.fund(k)
        pool = []
        for _ in range(EARNING_MINTS + 4):
            mint = Pubkey.from_string((await chain.rpc("surfnet_createMint", {"decimals": 6}))["value"])
            for who, amount in ((payer, 10**12), (client, 10**12), (owner, 0)):
                await chain.mint_to(who.pubkey(), mint, amount)
            pool.append(mint)
        agent = agent_address(owner.pubkey(), "retiring")[0]
        config = X402Config(owner.pubkey(), [TokenPrice(m, PRICE) for m in pool[:4]], "https://agent.example/x")
        await chain.send([build_register_agent(owner.pubkey(), AgentProfile("retiring", "Retiring"), config)], [owner])
        for start in range(0, EARNING_MINTS + 4, 4):
            group = pool[start : start + 4]
            if start:
                await chain.send(
                    [
                        ix.set_x402_tokens(
                            {"accepted_tokens": [TokenPrice(m, PRICE) for m in group]},
                            {"agent": agent, "owner": owner.pubkey()},
                            remaining_accounts=mint_accounts(group),
                        )
                    ],
                    [owner],
                )
            for mint in group:
                await chain.send(
                    build_x402_payment(
                        payer.pubkey(), agent, owner.pubkey(), mint, 6, PRICE, bytes(Keypair().pubkey())
                    ),
                    [payer],
                )

        now, orders = await chain.now(), []
        for order_id, deadline in ((1, now + 30 * DAY), (2, now + 3_600)):
            vault = Keypair()
            terms = WorkOrderTerms(AMOUNT, deadline, arbiter.pubkey(), f"job {order_id}")
            await chain.send(
                [build_create_work_order(client.pubkey(), agent, pool[-1], order_id, terms, vault.pubkey())],
                [client, vault],
            )
            order = WorkOrderRef.derive(
                client.pubkey(), order_id, agent, owner.pubkey(), arbiter.pubkey(), pool[-1], vault.pubkey()
            )
            await chain.send([build_accept_work_order(order, arbiter.pubkey())], [owner])
            orders.append(order)
        await chain.send([build_open_dispute(orders[0], client.pubkey(), "late")], [client])
        await chain.time_travel(RULING)  # the arbiter stays silent; order 2's deadline passes unclaimed
        for order in orders:
            await chain.send([build_settle_by_default(order, owner.pubkey())], [owner])
        return agent, pool
    finally:
        await chain.close()


def test_retired_slots_and_default_settlements_are_indexed_as_the_chain_keeps_them(
    chain: LocalnetProcess, db_url: str
) -> None:
    agent, pool = asyncio.run(settle_and_retire(chain.http_url))
    backfill(chain, db_url)
    report = run_verify(chain, db_url)
    assert report.differences == [] and report.agents == 1
    address = str(agent)
    with Session(open_db(db_url)) as s:
        retired = [
            json.loads(e.data) for e in s.exec(select(RawEvent).where(RawEvent.name == "MintEarningsRetired")).all()
        ]
        assert sorted((e["mint"], e["x402_payments"]) for e in retired) == sorted((str(m), PRICE) for m in pool[:4])
        earnings = {
            e.mint: (e.x402_payments, e.escrow_earnings)
            for e in s.exec(select(AgentEarning).where(AgentEarning.agent == address)).all()
        }
        assert all(earnings[str(m)] == (0, 0) for m in pool[:4])  # the chain's table starts them over
        assert all(earnings[str(m)] == (PRICE, 0) for m in pool[4:])
        statuses = sorted(o.status for o in s.exec(select(WorkOrder)).all())
        assert statuses == ["Refunded", "Refunded"]
        assert all(o.refunded == AMOUNT for o in s.exec(select(WorkOrder)).all())
        rep = s.get(Reputation, address)
        assert rep is not None
        assert (rep.total_disputes, rep.disputes_resolved, rep.failed_payments) == (1, 1, 2)
        row = s.get(Agent, address)
        assert row is not None and row.open_work_orders == 0
