"""Facilitator replicas on one PostgreSQL (`ghost facilitator start --db postgresql://…`): a payment is claimed
once across processes, and what a SIGKILLed replica left pending is finished by another, or by itself restarted.

The size of the fleet test: GHOSTPAY_REPLICA_CALLS (default 2,000, the issue's size; fewer for a quick run),
GHOSTPAY_REPLICA_BUYERS (16) and GHOSTPAY_REPLICA_CONCURRENCY (32)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest
from solders.keypair import Keypair
from x402.mechanisms.svm.utils import transaction_message_hash

from ghostpay.x402.facilitator.keys import (
    ERR_AUTH_REPLAYED,
    ERR_AUTH_REVOKED,
    Authenticator,
    AuthRefused,
    KeyStore,
    bearer_headers,
    sign_request,
)
from ghostpay.x402.facilitator.policy import ERR_SETTLE_QUOTA, QuotaStore
from ghostpay.x402.facilitator.store import LANDED, PENDING, SettledLog
from ghostpay.x402.networks import DEVNET
from tests.indexer.postgres import PostgresCluster, postgres  # noqa: F401 - the session fixture
from tests.sdk.conftest import fund
from tests.x402.conftest import PRICE_ATOMIC, ServerThread, Upstream, buyer, register_agent, sol_balance, token_balance
from tests.x402.craft import latest_blockhash, payment
from tests.x402.replicas import Fleet, landed, pay_all
from tests.x402.test_facilitator_crash import requirements_for, signed_by

CALLS = int(os.environ.get("GHOSTPAY_REPLICA_CALLS", "2000"))
BUYERS = int(os.environ.get("GHOSTPAY_REPLICA_BUYERS", "16"))
CONCURRENCY = int(os.environ.get("GHOSTPAY_REPLICA_CONCURRENCY", "32"))
ATTEMPTS = 60  # sends of one payment (0.2 s apart, and each a request) before its buyer gives up


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def db_url(postgres: PostgresCluster) -> str:  # noqa: F811 - the fixture imported above
    return postgres.create_database()


def test_one_claim_across_processes_and_a_dead_holder_is_taken_over(net: Any, db_url: str, tmp_path: Path) -> None:
    """Two logs on one PostgreSQL (two replicas): one claim of a payment wins; while its holder's session lives,
    the other replica cannot take the row; once that session ends (as a SIGKILL ends it), it can, once."""
    fee_payer, mint = fund(net), Keypair().pubkey()
    paid = payment(requirements_for(fee_payer.pubkey(), mint, Keypair().pubkey()), Keypair(), latest_blockhash(net))
    tx = signed_by(fee_payer, paid)
    key, claim = (
        transaction_message_hash(tx),
        {
            "payer": "P",
            "network": DEVNET.caip2,
            "signature": str(tx.signatures[0]),
            "blockhash": str(tx.message.recent_blockhash),
        },
    )
    first, second, third = SettledLog(db_url), SettledLog(db_url), SettledLog(db_url)
    try:
        assert [first.claim(key, **claim), second.claim(key, **claim)] == [True, False]
        row = second.get(key)
        assert row is not None and (row.status, row.holder) == (PENDING, first.session)
        assert not second.take(row) and second.pending() == []  # its holder runs: not reconciled by others either
        first.close()  # the replica dies: PostgreSQL ends its session (its server process exits a moment later)
        wait_until(lambda: second.free(row))
        assert [second.take(row), third.take(row)] == [True, False]
        assert (second.get(key).holder, third.pending()) == (second.session, [])  # type: ignore[union-attr]
        second.mark_landed(key)
        landed_row = third.get(key)
        assert landed_row is not None and landed_row.status == LANDED and not third.take(landed_row)
        second.close()  # died before its success answer was delivered: the next replica answers it
        wait_until(lambda: third.free(landed_row))
        assert third.take(landed_row)
    finally:
        for log in (second, third):
            log.close()


def test_a_buyers_accounts_are_held_by_one_replicas_settle_at_a_time(db_url: str) -> None:
    """Two replicas settling payments of one buyer: the second waits for the first's outcome (its simulation then
    sees the first's transfer, as within one process), and a replica that died holding them holds them no more."""
    first, second = SettledLog(db_url), SettledLog(db_url)
    order: list[str] = []
    try:
        with first.spending(["source", "authority"]):
            waiting = threading.Thread(target=lambda: hold(second, ["authority", "other"], order))
            waiting.start()
            time.sleep(0.3)
            order.append("first done")
        waiting.join(timeout=30)
        assert order == ["first done", "second held"]
        holder = SettledLog(db_url)
        ExitStack().enter_context(holder.spending(["source"]))  # held, never let go: the replica dies
        holder.close()
        hold(second, ["source"], order)
        assert order[-1] == "second held"
    finally:
        first.close()
        second.close()


def hold(log: SettledLog, accounts: list[str], order: list[str]) -> None:
    with log.spending(accounts):
        order.append("second held")


def test_keys_nonces_and_quotas_are_shared_by_replicas(db_url: str) -> None:
    """Two key stores on one PostgreSQL (two replicas): a key added by one is known to the other at once, and its
    revocation too; an HMAC signature used at one replica is refused at the other (ghostpay_auth_replayed); a
    seller's settles-per-minute quota counts the settles admitted by both (ghostpay_settle_quota_exceeded)."""
    first, second = KeyStore(db_url), KeyStore(db_url)
    try:
        seller, key = first.add("alice", settles_per_minute=3)
        assert Authenticator(second).identify("settle", bearer_headers(key)).key.name == "alice"
        signed = sign_request(key, "settle", b"{}")
        assert Authenticator(first).identify("settle", signed).check(b"{}").name == "alice"
        with pytest.raises(AuthRefused) as replayed:
            Authenticator(second).identify("settle", signed).check(b"{}")
        assert replayed.value.reason == ERR_AUTH_REPLAYED
        quotas = [QuotaStore(first.database), QuotaStore(second.database)]
        admitted = [quotas[i % 2].admit(seller, 10_000, 0, None, reserve=True) for i in range(4)]
        assert all(isinstance(a, int) for a in admitted[:3]) and admitted[3] is not None
        assert isinstance(admitted[3], tuple) and admitted[3][0] == ERR_SETTLE_QUOTA
        assert quotas[1].usage(seller.key_id).settles_last_minute == 3
        first.revoke("alice")
        with pytest.raises(AuthRefused) as revoked:
            Authenticator(second).identify("settle", bearer_headers(key))
        assert revoked.value.reason == ERR_AUTH_REVOKED
    finally:
        first.close()
        second.close()


def test_replicas_under_sigkill_settle_each_payment_once(
    net: Any,
    db_url: str,
    tmp_path: Path,
    postgres: PostgresCluster,  # noqa: F811
) -> None:
    """3 facilitator processes (one fee payer) and 2 proxies on one PostgreSQL, CALLS paid calls at CONCURRENCY
    from BUYERS buyers while facilitators are SIGKILLed at random and restarted. Each payment is sent again as it
    was until served. On chain: each payment landed at most once, never failed (the fee payer paid exactly the
    fees of the landed transactions); every payment whose tokens moved was served; the tokens that moved are
    the landed payments' and nobody else's; the shared log names exactly the landed signatures as settled."""
    fee_payer = fund(net, sol=100)
    agent = register_agent(net, "replicated")
    per_buyer = -(-CALLS // BUYERS)
    buyers = [buyer(net, agent.mint, per_buyer * PRICE_ATOMIC + PRICE_ATOMIC) for _ in range(BUYERS)]
    sol_before = sol_balance(net, fee_payer.pubkey())
    payee_before = token_balance(net, agent.owner.pubkey(), agent.mint)
    tokens_before = {str(b.pubkey()): token_balance(net, b.pubkey(), agent.mint) for b in buyers}
    service = Upstream()
    with (
        ServerThread(service.app) as upstream,
        Fleet(net, tmp_path, db_url, fee_payer, agent, upstream.url, facilitators=3, proxies=2) as fleet,
    ):
        fleet.chaos(seed=32)
        paid = asyncio.run(
            pay_all(net, [p.url for p in fleet.proxies], fee_payer, buyers, CALLS, CONCURRENCY, ATTEMPTS)
        )
        fleet.calm()
        taken_over = sum(f.log.count("took over the") for f in fleet.facilitators)  # by the replicas running now
    on_chain = landed(net, [p.signature for p in paid])
    served = {p.signature for p in paid if p.served}
    not_served = Counter(p.last[:60] for p in paid if not p.served)
    print(
        f"{len(paid)} paid calls, {fleet.kills} facilitator SIGKILLs, {taken_over}+ settles taken over: "
        f"{len(on_chain)} landed, {len(served)} served, "
        f"{sum(p.attempts > 1 for p in paid)} sent more than once (max {max(p.attempts for p in paid)}); "
        f"not served: {dict(not_served)}"
    )
    assert fleet.kills >= 1
    assert all(status["err"] is None for status in on_chain.values())  # no failed transaction: no fee wasted
    assert set(on_chain) <= served  # every payment whose tokens moved was served (retrying the same payment)
    assert served <= set(on_chain)  # a success is only ever answered for a landed transaction
    assert len({p.signature for p in paid}) == len(paid)
    fees = sum(p.fee for p in paid if p.signature in on_chain)
    assert sol_balance(net, fee_payer.pubkey()) == sol_before - fees
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == payee_before + len(on_chain) * PRICE_ATOMIC
    moved = Counter(str(p.buyer.pubkey()) for p in paid if p.signature in on_chain)
    for b in buyers:
        assert (
            token_balance(net, b.pubkey(), agent.mint)
            == tokens_before[str(b.pubkey())] - moved[str(b.pubkey())] * PRICE_ATOMIC
        )
    with psycopg.connect(db_url) as db:
        logged = {row[0] for row in db.execute("SELECT signature FROM settled WHERE status IN ('settled', 'landed')")}
    assert logged == set(on_chain)
