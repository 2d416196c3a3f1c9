"""`ghost agent`: every command against the localnet, in JSON and text modes."""

from __future__ import annotations

from decimal import Decimal

from tests.cli.conftest import ghost, mint_to

X402 = ["--price", "0.01", "--endpoint", "https://translate.example/api"]


def test_register_with_x402_then_every_owner_command(wallets, usdc, net) -> None:
    key, owner = wallets.new()
    reg = ghost(
        "agent",
        "register",
        "translator",
        "--name",
        "Translator",
        "-c",
        "translate,summarize",
        "--tokens",
        str(usdc),
        *X402,
        "--yes",
        keypair=key,
    ).data
    assert reg["action"] == "registered" and reg["x402"] is True and reg["compute_units"] > 0
    assert reg["explorer"].endswith(f"?cluster=custom&customUrl=http%3A%2F%2F127.0.0.1%3A{net.rpc_port}")
    address = reg["agent"]

    shown = ghost("agent", "show", address).data  # read-only: no keypair needed for an address
    assert (shown["name"], shown["price"], shown["price_atomic"], shown["decimals"]) == (
        "Translator",
        "0.010000",
        10_000,
        6,
    )
    assert shown["capabilities"] == ["translate", "summarize"] and shown["accepted_tokens"] == [str(usdc)]
    assert shown["owner"] == str(owner.pubkey()) and shown["x402_enabled"] and shown["is_active"]

    # --price alone reprices a one-token agent
    assert (
        ghost("agent", "set-price", "--agent", "translator", "--price", "0.025", keypair=key)
        .data["prices"]
        .endswith("=0.025")
    )
    second = ghost("test-mint", "--decimals", "9", "--symbol", "WSOL", "--amount", "0", keypair=key).data["mint"]
    ghost("agent", "set-tokens", "-a", address, "--tokens", f"{usdc}=0.025,WSOL=0.0004", keypair=key).data
    ghost("agent", "update-endpoint", "-a", address, "--endpoint", "https://b.example/x", keypair=key).data
    ghost("agent", "update", "-a", address, "--name", "Translator Pro", "-c", "translate", keypair=key).data
    shown = ghost("agent", "show", "translator", keypair=key).data
    assert (shown["price"], shown["accepted_tokens"], shown["endpoint"], shown["name"], shown["capabilities"]) == (
        "0.025000",
        [str(usdc), second],
        "https://b.example/x",
        "Translator Pro",
        ["translate"],
    )
    assert [(p["token"], p["price"], p["price_atomic"], p["decimals"]) for p in shown["prices"]] == [
        (str(usdc), "0.025000", 25_000, 6),
        (second, "0.000400000", 400_000, 9),
    ]  # each in its own decimals
    # one mint repriced; the other keeps its price
    ghost("agent", "set-price", "-a", address, "--tokens", "WSOL=0.0007", keypair=key).data
    assert [p["price_atomic"] for p in ghost("agent", "show", address).data["prices"]] == [25_000, 700_000]
    ambiguous = ghost("agent", "set-price", "-a", address, "--price", "0.03", keypair=key)
    assert "accepts 2 tokens" in ambiguous.one_line_error(2)
    text = ghost("agent", "show", address, output=None).stdout
    assert "0.025" in text and "0.0007 WSOL" in text

    assert ghost("agent", "disable-x402", "-a", address, keypair=key).data["action"] == "x402 disabled"
    assert not ghost("agent", "show", address).data["x402_enabled"]
    ghost(
        "agent",
        "configure-x402",
        "-a",
        address,
        "--price",
        "0.5",
        "--tokens",
        str(usdc),
        "--endpoint",
        "https://c.example",
        "--payment-address",
        str(owner.pubkey()),
        keypair=key,
    ).data
    shown = ghost("agent", "show", address).data
    assert shown["x402_enabled"] and shown["price"] == "0.500000" and shown["accepted_tokens"] == [str(usdc)]
    assert shown["registration"] == 1

    ghost("agent", "deactivate", "-a", address, keypair=key).data
    assert not ghost("agent", "show", address).data["is_active"]
    ghost("agent", "activate", "-a", address, keypair=key).data

    listed = ghost("agent", "list", "--owner", str(owner.pubkey())).data["agents"]
    assert [a["address"] for a in listed] == [address]
    closed = ghost("agent", "close", "-a", address, "--yes", keypair=key).data
    assert closed["action"] == "agent closed"
    assert ghost("agent", "list", keypair=key).data["agents"] == []
    again = ghost("agent", "register", "translator", "--name", "Translator", "--yes", keypair=key).data
    assert again["agent"] == address and ghost("agent", "show", address).data["registration"] == 2


def test_token_price_options_are_checked_before_sending(wallets, usdc) -> None:
    key, _ = wallets.new()
    base = ["agent", "register", "bad", "--name", "Bad", "--endpoint", "https://x.example", "--yes"]
    ghost("test-mint", "--mint", str(usdc), "--symbol", "USDC", "--amount", "0", keypair=key).data
    for extra, message in (
        (["--tokens", f"USDC,{usdc}", "--price", "0.01"], "--price prices a single token"),
        (["--tokens", "USDC"], "no price for USDC"),
        (["--tokens", "USDC=0.01,USDC=0.02"], "distinct"),
        (["--tokens", "USDC=abc"], "the price of USDC must be a decimal number"),
        (["--price", "0.01"], "needs --tokens"),
    ):
        assert message in ghost(*base, *extra, keypair=key).one_line_error(2)
    too_fine = ghost(*base, "--tokens", "USDC=0.0000001", keypair=key)
    assert "more than 6 decimals" in too_fine.one_line_error(1)
    assert "--max-price needs --token" in ghost("agent", "search", "--max-price", "1").one_line_error(2)


def test_search_filters_and_sorts_on_chain(wallets, usdc, net) -> None:
    key, _ = wallets.new()
    other = ghost("test-mint", "--symbol", "EURC", "--amount", "0", "--yes", keypair=key).data["mint"]
    labelled = ghost("test-mint", "--mint", str(usdc), "--symbol", "USDC", "--amount", "0", keypair=key).data
    assert labelled["created"] is False and labelled["decimals"] == 6
    for agent_id, tokens, caps in [
        ("cheap", f"{usdc}=0.002", "ocr"),
        ("dear", f"{usdc}=2,EURC=0.001", "ocr"),
        ("euro", f"{other}=0.003", "ocr,vision"),
    ]:
        ghost(
            "agent",
            "register",
            agent_id,
            "--name",
            agent_id.title(),
            "-c",
            caps,
            "--tokens",
            tokens,
            "--endpoint",
            "https://x.example",
            "--yes",
            keypair=key,
        ).data
    ghost("agent", "register", "unpriced", "--name", "Unpriced", "-c", "ocr", "--yes", keypair=key).data

    found = ghost("agent", "search", "--capability", "ocr", "--x402-enabled", "--sort", "price").data
    assert found["source"] == "chain"
    names = [a["name"] for a in found["agents"]]
    assert names == ["Cheap", "Euro", "Dear"]  # by each agent's default token's price
    by_token = ghost("agent", "search", "--token", "EURC", "--capability", "ocr", "--sort", "price").data["agents"]
    assert [a["name"] for a in by_token] == ["Dear", "Euro"]  # 0.001 and 0.003 EURC
    cheap = ghost("agent", "search", "--capability", "ocr", "--token", "EURC", "--max-price", "0.0025").data
    assert [a["name"] for a in cheap["agents"]] == ["Dear"]  # its EURC price, not its 2 USDC
    usdc_cheap = ghost("agent", "search", "-c", "ocr", "--token", str(usdc), "--max-price", "1").data["agents"]
    assert [a["name"] for a in usdc_cheap] == ["Cheap"]
    assert ghost("agent", "search", "-c", "vision", "--min-reputation", "1%").data["agents"] == []
    assert [a["name"] for a in ghost("agent", "search", "-c", "ocr", "--x402-disabled").data["agents"]] == ["Unpriced"]

    text = ghost("agent", "search", "--capability", "ocr", "--x402-enabled", output=None)
    assert text.code == 0 and "3 agent(s) found (from the chain)" in text.stdout
    assert "0.002 USDC" in text.stdout and "0.003 EURC" in text.stdout and "2.00 USDC, 0.001 EURC" in text.stdout


def test_text_mode_show_list_and_transactions(wallets, usdc) -> None:
    key, owner = wallets.new()
    run = ghost(
        "agent", "register", "texty", "--name", "Texty", "--tokens", str(usdc), *X402, "--yes", keypair=key, output=None
    )
    assert run.code == 0 and "✔ registered" in run.stdout and "https://explorer.solana.com/tx/" in run.stdout
    shown = ghost("agent", "show", "texty", keypair=key, output=None).stdout
    assert "Agent Texty" in shown and "0.01 USDC" in shown
    assert str(owner.pubkey()) in shown and "price per call" in shown and "UNRATED" in shown
    listed = ghost("agent", "list", keypair=key, output=None).stdout
    assert "1 agent(s)" in listed and "Texty" in listed


def test_reputation_history_and_status_after_payments(wallets, usdc, net) -> None:
    seller_key, seller = wallets.new()
    buyer_key, buyer = wallets.new()
    mint_to(net, buyer.pubkey(), usdc, 10_000_000)
    address = ghost(
        "agent", "register", "rated", "--name", "Rated", "--tokens", str(usdc), *X402, "--yes", keypair=seller_key
    ).data["agent"]
    refs = []
    for amount in ("0.01", "0.05", "0.02"):
        refs.append(
            ghost("payment", "send", "--agent", address, "--amount", amount, keypair=buyer_key).data["reference"]
        )
    ghost(
        "payment",
        "feedback",
        "-a",
        address,
        "-r",
        refs[0],
        "--rating",
        "5",
        "--response-time",
        "500",
        keypair=buyer_key,
    ).data
    ghost("payment", "feedback", "-a", address, "-r", refs[1], "--rating", "2", "--failed", keypair=buyer_key).data

    rep = ghost("agent", "reputation", address, "--detailed", "--show-metrics").data
    assert rep["payments"] == 3 and rep["metrics"]["failed_payments"] == 1 and rep["tier"] != "UNRATED"
    assert set(rep["components"]) == {"payment_success", "service_quality", "response_time", "volume_consistency"}
    text = ghost("agent", "reputation", address, "--detailed", "--show-metrics", output=None).stdout
    assert "Components" in text and "weight" in text and "On-chain metrics" in text and rep["tier"] in text

    history = ghost("agent", "payment-history", address, "--sort-by", "amount").data
    assert history["source"] == "chain"
    assert [p["amount"] for p in history["payments"]] == ["0.050000", "0.020000", "0.010000"]
    assert {p["reference"] for p in history["payments"]} == set(refs)
    assert all(p["payer"] == str(buyer.pubkey()) for p in history["payments"])
    by_date = ghost("agent", "payment-history", address, "--limit", "2").data["payments"]
    assert [p["reference"] for p in by_date] == [refs[2], refs[1]]
    text = ghost("agent", "payment-history", address, output=None).stdout
    assert "3 payment(s) (from the chain)" in text and "0.05 USDC" in text

    status = ghost("agent", "payment-status", address).data
    assert (status["total_calls"], status["successful_payments"], status["failed_payments"]) == (3, 2, 1)
    assert status["earnings"] == [
        {
            "token": str(usdc),
            "symbol": status["balances"][0]["symbol"],
            "decimals": 6,
            "x402_payments": "0.080000",
            "x402_payments_atomic": 80_000,
            "escrow_earnings": "0.000000",
            "escrow_earnings_atomic": 0,
            "total": "0.080000",
        }
    ]
    assert status["balances"] == [
        {"token": str(usdc), "symbol": status["balances"][0]["symbol"], "balance": "0.080000"}
    ]
    assert [Decimal(p["price"]) for p in status["prices"]] == [Decimal("0.01")]
    assert "earned through x402" in ghost("agent", "payment-status", address, output=None).stdout
