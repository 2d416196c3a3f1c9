"""`ghost escrow`: every work-order command against the localnet, on the SDK's work-order methods."""

from __future__ import annotations

import time

from tests.cli.conftest import ghost, mint_to
from tests.sdk.conftest import cheat


def test_every_escrow_path(wallets, usdc, net, tmp_path) -> None:
    provider_key, provider = wallets.new()
    client_key, client = wallets.new()
    arbiter_key, arbiter = wallets.new()
    mint_to(net, client.pubkey(), usdc, 100_000_000)
    agent = ghost(
        "agent",
        "register",
        "worker",
        "--name",
        "Worker",
        "--price",
        "0.01",
        "--tokens",
        "USDC",
        "--endpoint",
        "https://w.example",
        "--yes",
        keypair=provider_key,
    ).data["agent"]

    def create(title: str, amount: str = "10", deadline: str = "7d", review: str = "60s") -> str:
        made = ghost(
            "escrow",
            "create",
            "-a",
            agent,
            "--amount",
            amount,
            "--title",
            title,
            "--arbiter",
            str(arbiter.pubkey()),
            "--deadline",
            deadline,
            "--review-period",
            review,
            "-r",
            "in French",
            keypair=client_key,
        ).data
        assert made["amount"] == f"{amount}.000000" and made["token_symbol"] == "USDC"
        return made["work_order"]

    # happy path with a milestone: create, accept, deliver, reject, deliver again, release part, release rest
    order = create("Translate the manual")
    shown = ghost("escrow", "show", order).data
    assert (shown["status"], shown["title"], shown["requirements"], shown["remaining"]) == (
        "Created",
        "Translate the manual",
        ["in French"],
        "10.000000",
    )
    # the provider names the arbiter it agrees to: another one is refused, and nothing changes
    stranger = str(client.pubkey())
    refused = ghost("escrow", "accept", order, "--arbiter", stranger, keypair=provider_key).one_line_error(1)
    assert "ArbiterNotAgreed" in refused and ghost("escrow", "show", order).data["status"] == "Created"
    accepted = ghost("escrow", "accept", order, "--arbiter", str(arbiter.pubkey()), keypair=provider_key).data
    assert accepted["status"] == "Accepted" and accepted["arbiter"] == str(arbiter.pubkey())
    deliverable = tmp_path / "manual.txt"
    deliverable.write_text("bonjour")
    delivered = ghost(
        "escrow", "deliver", order, "--uri", "https://w.example/out/1", "--file", str(deliverable), keypair=provider_key
    ).data
    assert delivered["status"] == "Submitted" and len(delivered["content_hash"]) == 64
    assert (
        ghost("escrow", "reject", order, "--reason", "missing chapter 2", keypair=client_key).data["status"]
        == "Rejected"
    )
    rejected = ghost("escrow", "show", order)
    text = ghost("escrow", "show", order, output=None).stdout
    assert rejected.data["rejected_at"] > 0 and "grace period ends" in text
    assert "1 min " in text and "60 s" not in text and rejected.data["review_period_seconds"] == 60  # as people say it
    ghost(
        "escrow", "deliver", order, "--uri", "https://w.example/out/2", "--hash", "ab" * 32, keypair=provider_key
    ).data
    assert ghost("escrow", "release", order, "--amount", "4", keypair=client_key).data["status"] == "Submitted"
    assert ghost("escrow", "show", order).data["released"] == "4.000000"
    listed = ghost("escrow", "list", "--mine", keypair=client_key).data["work_orders"]
    assert [o["address"] for o in listed] == [order]
    text = ghost("escrow", "list", "--agent", agent, output=None).stdout
    assert "1 open work order(s)" in text and "6.00 USDC" in text
    done = ghost("escrow", "release", order, keypair=client_key).data
    assert done["status"] == "closed"
    assert "work order" in ghost("escrow", "show", order).one_line_error(1)
    assert ghost("agent", "show", agent).data["total_calls"] == 0

    # cancel before acceptance
    order = create("Never accepted")
    assert ghost("escrow", "cancel", order, keypair=client_key, output=None).code == 0

    # the provider declines an order it never accepted: the client gets all of it back
    order = create("Unwanted", amount="3")
    before = token_balance(net, client.pubkey(), usdc)
    assert "NotWorkOrderProvider" in ghost("escrow", "decline", order, keypair=client_key).one_line_error(1)
    declined = ghost("escrow", "decline", order, keypair=provider_key).data
    assert declined["action"] == "work order declined" and declined["status"] == "closed"
    assert token_balance(net, client.pubkey(), usdc) == before + 3_000_000

    # dispute, resolved by the arbiter 30/70
    order = create("Disputed job")
    ghost("escrow", "accept", order, keypair=provider_key).data  # by default: the order's arbiter
    assert ghost("escrow", "dispute", order, "--reason", "late", keypair=client_key).data["status"] == "Disputed"
    line = ghost("escrow", "resolve", order, "--client-share", "30%", keypair=client_key).one_line_error(1)
    assert "NotWorkOrderArbiter" in line
    resolved = ghost("escrow", "resolve", order, "--client-share", "30%", keypair=arbiter_key).data
    assert resolved["status"] == "closed" and resolved["client_share_bps"] == 3000

    # a dispute the arbiter leaves unruled: its ruling is due 14 days on; before that nobody settles by default
    unruled = create("Unruled", amount="2")
    ghost("escrow", "accept", unruled, keypair=provider_key).data
    ghost("escrow", "dispute", unruled, "--reason", "late", keypair=provider_key).data
    shown = ghost("escrow", "show", unruled).data
    assert shown["ruling_due"] == shown["disputed_at"] + 14 * 86_400
    assert "ruling due" in ghost("escrow", "show", unruled, output=None).stdout
    assert "RulingPeriodActive" in ghost("escrow", "settle", unruled, keypair=client_key).one_line_error(1)
    assert ghost("escrow", "show", unruled).data["status"] == "Disputed"

    # claim after the review period; refund after a missed deadline
    claimable = create("Claimable", review="60s")
    ghost("escrow", "accept", claimable, keypair=provider_key).data
    ghost(
        "escrow", "deliver", claimable, "--uri", "https://w.example/c", "--hash", "cd" * 32, keypair=provider_key
    ).data
    assert "ReviewPeriodActive" in ghost("escrow", "claim", claimable, keypair=provider_key).one_line_error(1)
    late = create("Late", deadline="2m")
    ghost("escrow", "accept", late, keypair=provider_key).data
    abandoned = create("Abandoned", amount="5", deadline="2m")  # the client will never claim its refund
    ghost("escrow", "accept", abandoned, keypair=provider_key).data
    assert "DeadlineNotReached" in ghost("escrow", "settle", abandoned, keypair=provider_key).one_line_error(1)
    now_ms = int(time.time() * 1000)
    cheat(net, "surfnet_timeTravel", {"absoluteTimestamp": now_ms + 3_600_000})
    assert ghost("escrow", "claim", claimable, keypair=provider_key).data["status"] == "closed"
    assert ghost("escrow", "refund", late, keypair=client_key).data["status"] == "closed"
    before = token_balance(net, client.pubkey(), usdc)
    settled = ghost("escrow", "settle", abandoned, keypair=provider_key).data
    assert (settled["action"], settled["status"]) == ("settled by default", "closed")
    assert token_balance(net, client.pubkey(), usdc) == before + 5_000_000
    assert token_balance(net, provider.pubkey(), usdc) == 27_000_000  # 10 + 7 (70% of 10) + 10


def token_balance(net, owner, mint) -> int:
    account = net.rpc("getTokenAccountsByOwner", str(owner), {"mint": str(mint)}, {"encoding": "jsonParsed"})["result"][
        "value"
    ][0]["account"]["data"]["parsed"]["info"]
    return int(account["tokenAmount"]["amount"])


def test_escrow_usage_errors(wallets, usdc) -> None:
    key, _ = wallets.new()
    assert "not a valid work order address" in ghost("escrow", "accept", "nope", keypair=key).one_line_error(2)
    assert "--deadline is a duration" in ghost(
        "escrow",
        "create",
        "-a",
        str(usdc),
        "--amount",
        "1",
        "--title",
        "t",
        "--arbiter",
        str(usdc),
        "--deadline",
        "soon",
        keypair=key,
    ).one_line_error(2)
    assert "exactly one of --hash" in ghost(
        "escrow", "deliver", str(usdc), "--uri", "https://x", keypair=key
    ).one_line_error(2)
    assert "0 to 10,000" in ghost("escrow", "resolve", str(usdc), "--client-share", "101%", keypair=key).one_line_error(
        2
    )
