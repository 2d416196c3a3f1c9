"""`agent search`, `agent payment-history` and `payment verify` from the indexer's database (--db / GHOST_DB)."""

from __future__ import annotations

from tests.cli.conftest import ghost, mint_to


def test_search_and_history_from_the_index(wallets, usdc, net, tmp_path, monkeypatch) -> None:
    seller, _ = wallets.new()
    buyer, who = wallets.new()
    mint_to(net, who.pubkey(), usdc, 5_000_000)
    cheap = ghost(
        "agent",
        "register",
        "idx-cheap",
        "--name",
        "Idx Cheap",
        "-c",
        "index-test",
        "--price",
        "0.01",
        "--tokens",
        "USDC",
        "--endpoint",
        "https://i.example",
        "--yes",
        keypair=seller,
    ).data["agent"]
    eurc = ghost("test-mint", "--symbol", "EURC", "--amount", "0", "--yes", keypair=seller).data["mint"]
    dear = ghost(
        "agent",
        "register",
        "idx-dear",
        "--name",
        "Idx Dear",
        "-c",
        "index-test",
        "--tokens",
        "USDC=1,EURC=0.005",
        "--endpoint",
        "https://i.example",
        "--yes",
        keypair=seller,
    ).data["agent"]
    refs = [
        ghost("payment", "send", "-a", cheap, "--amount", amount, keypair=buyer).data["reference"]
        for amount in ("0.01", "0.3")
    ]
    ghost("payment", "feedback", "-a", cheap, "-r", refs[0], "--rating", "5", keypair=buyer).data

    db = tmp_path / "index.db"
    indexed = ghost("--db", str(db), "indexer", "run", "--once", output=None)
    assert indexed.code == 0, indexed.stderr
    status = ghost("--db", str(db), "indexer", "status").data  # --output json reaches the indexer's --json
    assert status["rows"]["agents"] >= 2 and status["rows"]["payments"] >= 2

    found = ghost("--db", str(db), "agent", "search", "-c", "index-test", "--sort", "price").data
    assert found["source"] == "indexer" and [a["address"] for a in found["agents"]] == [cheap, dear]
    assert found["agents"][0]["price"] == "0.010000" and found["agents"][0]["capabilities"] == ["index-test"]
    capped = ghost("--db", str(db), "agent", "search", "-c", "index-test", "--token", "USDC", "--max-price", "0.5")
    assert [a["address"] for a in capped.data["agents"]] == [cheap]
    monkeypatch.setenv("GHOST_DB", str(db))
    in_eurc = ghost("agent", "search", "-c", "index-test", "--token", eurc, "--max-price", "0.005").data["agents"]
    assert [a["address"] for a in in_eurc] == [dear]  # its EURC price, not its 1 USDC
    assert [(p["symbol"], p["price"]) for p in in_eurc[0]["prices"]] == [("USDC", "1.000000"), ("EURC", "0.005000")]
    assert ghost("agent", "search", "-c", "index-test", "--token", eurc, "--max-price", "0.004").data["agents"] == []
    text = ghost("agent", "search", "-c", "index-test", "--x402-enabled", output=None).stdout
    assert "2 agent(s) found (from the indexer)" in text and "1.00 USDC, 0.005 EURC" in text

    history = ghost("agent", "payment-history", cheap, "--sort-by", "amount").data
    assert history["source"] == "indexer"
    assert [(p["reference"], p["amount"]) for p in history["payments"]] == [
        (refs[1], "0.300000"),
        (refs[0], "0.010000"),
    ]
    assert history["payments"][1]["rating"] == 5
    assert {p["rent_payer"] for p in history["payments"]} == {str(who.pubkey())}  # the records' rent payer
    verified = ghost("payment", "verify", "-a", cheap, "-r", refs[0]).data  # the index answers, by reference
    assert (verified["paid"], verified["source"], verified["rated"], verified["payer"]) == (
        True,
        "indexer",
        True,
        str(who.pubkey()),
    )
    assert ghost("payment", "verify", "-a", cheap, "-r", refs[1]).data["rated"] is False
    assert ghost("payment", "verify", "-a", cheap, "-r", "44" * 32).code == 1
    text = ghost("agent", "payment-history", cheap, output=None).stdout
    assert "2 payment(s) (from the indexer)" in text and "0.30 USDC" in text
    bad = ghost("--db", "postgresql://nobody@127.0.0.1:9/none", "agent", "search").one_line_error(1)
    assert "cannot open the indexer database" in bad


def test_db_forms_and_a_missing_or_corrupt_database(net, tmp_path) -> None:
    db = tmp_path / "forms.db"
    assert ghost("indexer", "run", "--once", "--db", str(db), output=None).code == 0  # a plain path
    for form in (str(db), f"sqlite:///{db}"):  # the same forms as the global --db
        assert ghost("indexer", "status", "--db", form).data["schema_version"] >= 1
        assert ghost("--db", form, "indexer", "status").data["schema_version"] >= 1

    missing = tmp_path / "missing.db"
    for argv in (
        ("indexer", "status", "--db", str(missing)),
        ("--db", str(missing), "agent", "search"),
        ("indexer", "verify", "--db", str(missing)),
    ):
        run = ghost(*argv, output=None)
        assert run.code == 1 and f"no indexer database at {missing}" in run.stderr, run.stderr
    assert not missing.exists()  # a read never creates an empty index

    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    for argv in (("indexer", "status", "--db", str(corrupt)), ("--db", str(corrupt), "agent", "search")):
        run = ghost(*argv, output=None)
        assert run.code == 1 and "file is not a database" in run.stderr and "Traceback" not in run.stderr
