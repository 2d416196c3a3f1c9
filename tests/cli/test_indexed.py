"""`agent search`, `agent payment-history` and `payment verify` from the indexer's database (--db / GHOST_DB)."""

from __future__ import annotations

from solders.pubkey import Pubkey

from ghostpay.indexer import paging, sqlite_read
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
    assert (found["total"], found["total_capped"]) == (2, False)
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
    with monkeypatch.context() as patched:  # an index counts its matches up to paging.TOTAL_CAP (10,000)
        for module in (paging, sqlite_read):
            patched.setattr(module, "TOTAL_CAP", 1)
        over = ghost("agent", "search", "-c", "index-test").data
        assert (over["total"], over["total_capped"], len(over["agents"])) == (1, True, 2)
        assert (
            "1+ agent(s) found (from the indexer)" in ghost("agent", "search", "-c", "index-test", output=None).stdout
        )

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


def test_evidence_trust_and_their_filters_from_the_index(wallets, usdc, net, tmp_path) -> None:
    """`agent show` and `agent search` with --db show each agent's evidence in trusted mints beside its score; a
    test mint is trusted on a localnet until `indexer trust --remove`; `--min-payers`, `--min-volume` and
    `--sort trust` filter and sort on it, and need --db."""
    seller, _ = wallets.new()
    buyers = [wallets.new() for _ in range(2)]
    for _, who in buyers:
        mint_to(net, who.pubkey(), usdc, 5_000_000)
    other = ghost("test-mint", "--symbol", "EVI", "--decimals", "2", "--amount", "0", "--yes", keypair=seller)
    evi = other.data["mint"]
    mint_to(net, buyers[0][1].pubkey(), Pubkey.from_string(evi), 1_000)
    agent = ghost(
        "agent",
        "register",
        "evidence",
        "--name",
        "Evidence",
        "-c",
        "evidence-test",
        "--tokens",
        "USDC=0.01,EVI=0.5",
        "--endpoint",
        "https://e.example",
        "--yes",
        keypair=seller,
    ).data["agent"]
    for keypair, token in (
        (buyers[0][0], "USDC"),
        (buyers[0][0], "USDC"),
        (buyers[1][0], "USDC"),
        (buyers[0][0], "EVI"),
    ):
        ghost("payment", "send", "-a", agent, "--token", token, keypair=keypair).data
    db = str(tmp_path / "index.db")
    assert ghost("--db", db, "indexer", "run", "--once", output=None).code == 0

    shown = ghost("--db", db, "agent", "show", agent).data["evidence"]
    assert shown["x402"]["trusted"]["calls"] == 4 and shown["trusted_payers"] == 2  # EVI: a test mint, trusted
    assert {(m["symbol"], m["calls"], m["payers"]) for m in shown["x402"]["by_mint"]} == {("USDC", 3, 2), ("EVI", 1, 1)}
    assert shown["trust_score"] is not None

    trust = ghost("--db", db, "indexer", "trust", "--remove", "EVI", "--recompute").data
    assert evi in trust["removed"] and str(usdc) in [m["mint"] for m in trust["trusted_mints"]]
    shown = ghost("--db", db, "agent", "show", agent).data["evidence"]
    assert (shown["x402"]["trusted"]["calls"], shown["x402"]["trusted"]["payers"]) == (3, 2)
    assert (
        shown["text"].startswith("3 paid calls from 2 payers, 0.03 USDC") and "(+1 in untrusted mints)" in shown["text"]
    )
    text = ghost("--db", db, "agent", "show", agent, output=None).stdout
    assert "evidence (trusted)" in text and "3 paid calls from 2 payers" in text

    def found(*options: str) -> list[str]:
        data = ghost("--db", db, "agent", "search", "-c", "evidence-test", *options).data
        return [a["address"] for a in data["agents"]]

    assert found("--min-payers", "2") == [agent] and found("--min-payers", "3") == []
    assert found("--min-volume", "USDC=0.03") == [agent] and found("--min-volume", "USDC=0.031") == []
    assert found("--sort", "trust", "--min-volume", "EVI=0.5") == [agent]
    ranked = ghost("--db", db, "agent", "search", "-c", "evidence-test", "--sort", "trust", "--limit", "1").data
    assert (ranked["total"], ranked["total_capped"]) == (1, False)
    assert ranked["agents"][0]["evidence"]["text"] == shown["text"]  # the keyset page keeps each row's evidence
    text = ghost("--db", db, "agent", "search", "-c", "evidence-test", "--sort", "trust", output=None).stdout
    assert "1 agent(s) found (from the indexer)" in text and "evidence in trusted mints" in text
    refused = ghost("agent", "search", "--sort", "trust")
    assert refused.code == 2 and "give --db" in refused.stderr
