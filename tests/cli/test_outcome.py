"""`ghost payment send` through a fault-injecting proxy: when the outcome is unknown the error names the
signature and the reference, the journal keeps the payment, and running the command again never pays
twice (whether or not the first transaction landed); Ctrl-C while confirming says the same."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.cli.conftest import GHOST, ghost, mint_to
from tests.fault_proxy import FaultProxy

QUICK = {"GHOST_CONFIRM_TIMEOUT": "2"}


def balance(net, owner, mint) -> int:
    found = net.rpc("getTokenAccountsByOwner", str(owner), {"mint": str(mint)}, {"encoding": "jsonParsed"})
    accounts = found["result"]["value"]
    return int(accounts[0]["account"]["data"]["parsed"]["info"]["tokenAmount"]["amount"]) if accounts else 0


def seller_agent(wallets, agent_id: str) -> tuple[str, object, object]:
    """A new agent priced 0.01 USDC: its address, its owner's wallet and keypair file."""
    seller, who = wallets.new()
    agent = ghost(
        "agent",
        "register",
        agent_id,
        "--name",
        agent_id,
        "--price",
        "0.01",
        "--tokens",
        "USDC",
        "--endpoint",
        "https://t.example",
        "--yes",
        keypair=seller,
    ).data["agent"]
    return agent, who.pubkey(), seller


@pytest.mark.parametrize("fault,landed", [("drop", True), ("drop-before", False)])
def test_a_retry_after_an_unknown_outcome_never_pays_twice(net, wallets, usdc, home, fault, landed) -> None:
    agent, payee, _ = seller_agent(wallets, f"journal-{fault}")
    buyer, who = wallets.new()
    mint_to(net, who.pubkey(), usdc, 1_000_000)
    with FaultProxy(net.http_url) as proxy:
        url = ["-u", proxy.url]
        proxy.arm(fault, outage=60)
        first = ghost(*url, "payment", "send", "--agent", agent, keypair=buyer, env=QUICK)
        line = first.one_line_error(1)
        assert "OutcomeUnknown" in line and "ghost confirm " in line and "cannot pay twice" in line
        reference = line.split("reference ")[1].split(":")[0]
        assert len(reference) == 64 and len(list((home / "journal").glob("payment-*.json"))) == 1
        assert balance(net, payee, usdc) == (10_000 if landed else 0)

        # The retry goes straight to the node, not through the failed endpoint: the same chain (genesis hash),
        # so the same journal entry (keyed by the RPC URL it paid twice).
        second = ghost("-u", net.http_url, "payment", "send", "--agent", agent, keypair=buyer, env=QUICK)
        assert second.data["reference"] == reference and second.data["action"] == ("already paid" if landed else "paid")
        proxy.heal()
        assert balance(net, payee, usdc) == 10_000  # paid once, either way
        assert not list((home / "journal").glob("payment-*.json"))

        third = ghost(*url, "payment", "send", "--agent", agent, keypair=buyer)  # a new payment: no entry open
        assert third.data["reference"] != reference and balance(net, payee, usdc) == 20_000


def test_interrupted_while_confirming_names_the_signature_and_the_retry_is_safe(net, wallets, usdc, home) -> None:
    agent, payee, _ = seller_agent(wallets, "interrupted")
    buyer, who = wallets.new()
    mint_to(net, who.pubkey(), usdc, 1_000_000)
    with FaultProxy(net.http_url) as proxy:
        proxy.arm("delay", delay=8)
        env = {**os.environ, "GHOST_URL": proxy.url}
        child = subprocess.Popen(
            [GHOST, "-k", str(buyer), "payment", "send", "--agent", agent],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while proxy.sent == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        assert child.returncode == 130, stderr
        assert "interrupted after sending transaction" in stderr and "ghost confirm" in stderr
        assert "cannot pay twice" in stderr and "Traceback" not in stderr
        signature = stderr.split("transaction ")[1].split(";")[0]
        confirmed = ghost("confirm", signature)
        assert confirmed.data["succeeded"] is True and confirmed.data["slot"] > 0
        again = ghost("-u", proxy.url, "payment", "send", "--agent", agent, keypair=buyer)
        assert again.data["action"] == "already paid" and again.data["signature"] == signature
    assert balance(net, payee, usdc) == 10_000


def test_confirm_of_an_unknown_or_malformed_signature(net) -> None:
    missing = ghost("confirm", "1" * 64, output=None)
    assert missing.code == 1 and "not found" in missing.stdout
    assert "not a transaction signature" in ghost("confirm", "xyz").one_line_error(2)


def test_escrow_create_retried_after_an_unknown_outcome_creates_one_order(net, wallets, usdc, home) -> None:
    agent, _, _ = seller_agent(wallets, "escrowed")
    client, who = wallets.new()
    _, arbiter = wallets.new()
    mint_to(net, who.pubkey(), usdc, 10_000_000)
    create = (
        "escrow",
        "create",
        "--agent",
        agent,
        "--amount",
        "4",
        "--title",
        "Job",
        "--arbiter",
        str(arbiter.pubkey()),
    )
    with FaultProxy(net.http_url) as proxy:
        proxy.arm("500", outage=60)
        line = ghost("-u", proxy.url, *create, keypair=client, env=QUICK).one_line_error(1)
        assert "OutcomeUnknown" in line and "order id" in line
        proxy.heal()
        again = ghost("-u", proxy.url, *create, keypair=client, env=QUICK)
        assert again.data["action"] == "already created" and again.data["amount"] == "4.000000"
    assert balance(net, who.pubkey(), usdc) == 6_000_000
    assert len(ghost("escrow", "list", "--mine", keypair=client).data) == 1


def test_every_sending_command_names_its_signature_when_the_outcome_is_unknown(net, wallets, usdc) -> None:
    agent, _, provider = seller_agent(wallets, "accepting")
    client, who = wallets.new()
    _, arbiter = wallets.new()
    mint_to(net, who.pubkey(), usdc, 10_000_000)
    order = ghost(
        "escrow",
        "create",
        "--agent",
        agent,
        "--amount",
        "2",
        "--title",
        "Job",
        "--arbiter",
        str(arbiter.pubkey()),
        keypair=client,
    ).data["work_order"]
    with FaultProxy(net.http_url) as proxy:
        proxy.arm("drop", outage=60)
        line = ghost("-u", proxy.url, "escrow", "accept", order, keypair=provider, env=QUICK).one_line_error(1)
    assert "OutcomeUnknown: transaction " in line and "ghost confirm " in line
    signature = line.split("transaction ")[1].split(" ")[0]
    assert ghost("confirm", signature).data["succeeded"] is True  # it had landed
    assert ghost("escrow", "show", order).data["status"] == "Accepted"


def test_an_identical_command_while_one_runs_is_refused_and_pays_nothing(net, wallets, usdc, home) -> None:
    """While a `ghost payment send` runs (holding its journal lock, as this test does for it), identical ones
    are refused, naming it; they used to pay again, or report the running one as "already paid by an
    earlier run"."""
    from ghostpay.cli import journal

    agent, payee, _ = seller_agent(wallets, "journal-concurrent")
    buyer, who = wallets.new()
    mint_to(net, who.pubkey(), usdc, 1_000_000)
    genesis = net.rpc("getGenesisHash")["result"]
    command = {"chain": genesis, "wallet": str(who.pubkey()), "agent": agent, "amount": None, "token": None}
    env = {**os.environ, "GHOST_URL": net.http_url}
    argv = [GHOST, "-k", str(buyer), "--output", "json", "payment", "send", "--agent", agent]
    with journal.running("payment", command):
        runs = [subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120) for _ in range(2)]
    for run in runs:
        assert run.returncode == 1 and run.stdout == ""
        assert run.stderr.strip() == (
            f"error: the same payment is being sent right now by another ghost command "
            f"(pid {os.getpid()}); wait for it to finish (run this again afterwards to see "
            "its outcome: it cannot pay twice)"
        )
    assert balance(net, payee, usdc) == 0
    after = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert after.returncode == 0 and json.loads(after.stdout)["action"] == "paid", after.stderr
    assert balance(net, payee, usdc) == 10_000
    assert not list((home / "journal").glob("payment-*"))  # entry and lock gone


def test_a_retry_after_the_earlier_transaction_expired_unsent_pays_once(net, wallets, usdc, home) -> None:
    """The journal holds a payment that was signed and never reached the node, and its blockhash has expired:
    running the command again finds that it never landed and never can, and pays once, with its reference."""
    import asyncio

    from ghostpay.cli import journal
    from ghostpay.client import GhostPayClient

    agent, payee, _ = seller_agent(wallets, "journal-expired")
    buyer, who = wallets.new()
    mint_to(net, who.pubkey(), usdc, 1_000_000)

    async def sign_without_sending() -> object:
        async with GhostPayClient(net.http_url, who) as gp:
            prepared = await gp.prepare_payment(agent, who.pubkey())
        prepared.transaction.partial_sign([who], prepared.transaction.message.recent_blockhash)
        return prepared

    prepared = asyncio.run(sign_without_sending())
    genesis = net.rpc("getGenesisHash")["result"]
    command = {"chain": genesis, "wallet": str(who.pubkey()), "agent": agent, "amount": None, "token": None}
    entry = journal.open_entry("payment", command, reference=prepared.reference.hex())
    entry.sent(prepared.transaction.signatures[0], prepared.last_valid_block_height, bytes(prepared.transaction))
    net.rpc("surfnet_timeTravel", {"absoluteSlot": net.rpc("getSlot")["result"] + 200})  # its blockhash expires

    retried = ghost("payment", "send", "--agent", agent, keypair=buyer)
    assert retried.data["action"] == "paid" and retried.data["reference"] == prepared.reference.hex()
    assert any("never landed" in note for note in retried.data["notes"])
    assert retried.data["signature"] != str(prepared.transaction.signatures[0])
    assert balance(net, payee, usdc) == 10_000  # once
    assert not list((home / "journal").glob("payment-*.json"))
