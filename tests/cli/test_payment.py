"""`ghost payment` in text mode, `verify` of a missing payment, and the global --url moniker/JSON path."""

from __future__ import annotations

import json

from tests.cli.conftest import ghost, mint_to


def test_payment_commands_in_text_mode(wallets, usdc, net) -> None:
    seller, _ = wallets.new()
    buyer, who = wallets.new()
    mint_to(net, who.pubkey(), usdc, 1_000_000)
    agent = ghost(
        "agent",
        "register",
        "texter",
        "--name",
        "Texter",
        "--price",
        "0.01",
        "--tokens",
        "USDC",
        "--endpoint",
        "https://t.example",
        "--yes",
        keypair=seller,
    ).data["agent"]

    simulated = ghost("payment", "simulate", "--agent", agent, keypair=buyer, output=None)
    assert simulated.code == 0 and "would succeed" in simulated.stdout and "5,000 lamports" in simulated.stdout
    assert "0.01 USDC" in simulated.stdout and str(usdc) in simulated.stdout
    planned = ghost("payment", "simulate", "--agent", agent, "--amount", "0.25", keypair=buyer).data
    assert (planned["amount"], planned["amount_atomic"], planned["token"]) == ("0.250000", 250_000, str(usdc))
    failing = ghost("payment", "simulate", "--agent", agent, "--amount", "5", keypair=buyer)
    assert failing.code == 1 and json.loads(failing.stdout)["would_succeed"] is False
    error = json.loads(failing.stdout)["error"]
    assert (error["name"], error["code"]) == ("InsufficientFunds", 1)  # the token program's error, by name
    assert error["message"] == "the token program refused it: InsufficientFunds (error 1): insufficient funds"

    sent = ghost("payment", "send", "--agent", agent, "--reference", "11" * 32, keypair=buyer, output=None)
    assert sent.code == 0 and "✔ paid" in sent.stdout and "0.01 USDC" in sent.stdout and "11" * 32 in sent.stdout
    verified = ghost("payment", "verify", "--agent", agent, "--reference", "11" * 32, output=None)
    assert verified.code == 0 and "✔ paid" in verified.stdout and "chain" in verified.stdout
    found = ghost("payment", "verify", "--agent", agent, "--reference", "11" * 32).data
    assert (found["paid"], found["payer"], found["source"], found["amount_atomic"]) == (
        True,
        str(who.pubkey()),
        "chain",
        10_000,
    )
    assert found["signature"] and found["rated"] is None
    missing = ghost("payment", "verify", "--agent", agent, "--reference", "22" * 32)
    assert missing.code == 1 and json.loads(missing.stdout) == {"agent": agent, "reference": "22" * 32, "paid": False}
    rated = ghost(
        "payment", "feedback", "--agent", agent, "--reference", "11" * 32, "--rating", "4", keypair=buyer, output=None
    )
    assert rated.code == 0 and "★★★★" in rated.stdout and "new score" in rated.stdout
    again = ghost("payment", "feedback", "--agent", agent, "--reference", "11" * 32, "--rating", "3", keypair=buyer)
    assert "NothingToRate" in again.one_line_error(1)  # one call paid, one rated
    assert "no payment with reference" in ghost(
        "payment", "feedback", "--agent", agent, "--reference", "33" * 32, keypair=buyer
    ).one_line_error(1)
    assert "64 hex digits" in ghost("payment", "verify", "--agent", agent, "--reference", "xyz").one_line_error(2)


def test_close_stats_returns_the_rent_and_ends_the_ratings(wallets, usdc, net) -> None:
    seller, _ = wallets.new()
    buyer, who = wallets.new()
    mint_to(net, who.pubkey(), usdc, 1_000_000)
    agent = ghost(
        "agent",
        "register",
        "closer",
        "--name",
        "Closer",
        "--price",
        "0.01",
        "--tokens",
        "USDC",
        "--endpoint",
        "https://t.example",
        "--yes",
        keypair=seller,
    ).data["agent"]
    paid = ghost("payment", "send", "--agent", agent, keypair=buyer).data
    sol = int(net.rpc("getBalance", str(who.pubkey()))["result"]["value"])
    stats = net.rpc("getAccountInfo", paid["payer_stats"], {"encoding": "base64"})["result"]["value"]
    closed = ghost("payment", "close-stats", "--agent", agent, keypair=buyer).data
    assert closed["action"] == "closed" and closed["payer_stats"] == paid["payer_stats"]
    assert int(net.rpc("getBalance", str(who.pubkey()))["result"]["value"]) == sol + stats["lamports"] - 5_000
    rated = ghost(
        "payment", "feedback", "--agent", agent, "--reference", paid["reference"], "--rating", "5", keypair=buyer
    )
    line = rated.one_line_error(1)  # the call it had not rated is forfeited, said by name
    assert "NothingToRate" in line and "AccountOwnedByWrongProgram" not in line
    assert "not found" in ghost("payment", "close-stats", "--agent", agent, keypair=buyer).one_line_error(1)
