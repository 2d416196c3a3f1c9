"""Token labels belong to one cluster (by genesis hash): well-known mints per network, `ghost tokens add / list /
remove`, test mints labelled on their localnet only, budget keys resolved on the cluster paid on (or refused),
and the old global `[tokens]` table moved to the cluster where its mints are. A second localnet (another
genesis) stands for "another cluster" without reaching mainnet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from solders.keypair import Keypair

from ghostpay import token_labels
from ghostpay.cli.config_file import read_config, write_config
from ghostpay.exceptions import UnknownTokenLabel
from ghostpay.spending import Limits, SpendingGuards
from ghostpay.token_labels import DEVNET_GENESIS, MAINNET_GENESIS, TokenLabels
from ghostpay.x402.networks import DEVNET_CAIP2, MAINNET_CAIP2
from tests.cli.conftest import Run, ghost, ghost as run_ghost
from tests.localnet.conftest import LocalnetProcess
from tests.sdk.conftest import create_mint, fund

REAL_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
X402 = ["--endpoint", "https://labels.example"]


@pytest.fixture
def other(tmp_path: Path) -> Iterator[LocalnetProcess]:
    """A second localnet: another chain (its own genesis hash) on other ports."""
    node = LocalnetProcess(tmp_path / "other-ledger").start()
    yield node
    node.stop()


def genesis(net: LocalnetProcess) -> str:
    return str(net.rpc("getGenesisHash")["result"])


def key_on(net: LocalnetProcess, folder: Path, name: str, sol: int = 10) -> tuple[Path, Keypair]:
    keypair = fund(net, Keypair(), sol)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(list(bytes(keypair))))
    return path, keypair


def balance(net: LocalnetProcess, owner: Keypair, mint: str) -> int:
    found = net.rpc("getTokenAccountsByOwner", str(owner.pubkey()), {"mint": mint}, {"encoding": "jsonParsed"})
    return sum(int(a["account"]["data"]["parsed"]["info"]["tokenAmount"]["amount"]) for a in found["result"]["value"])


def test_well_known_mints_per_network(tmp_path: Path) -> None:
    store = TokenLabels(tmp_path / "labels.json")
    mainnet, devnet = store.cluster(MAINNET_GENESIS), store.cluster(DEVNET_GENESIS)
    assert {t.label: t.mint for t in mainnet.labels} == {
        "USDC": REAL_USDC,
        "USDT": "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB",
        "PYUSD": "2b1kV6DkPAnxd5ixfnxCpjxmKwqjjaYmCZfHsFu24GXo",
    }
    assert devnet.mint("usdc") == "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"  # any case
    # the genesis hashes are the ones the x402 network ids (CAIP-2) are cut from
    assert "solana:" + MAINNET_GENESIS[:32] == MAINNET_CAIP2 and "solana:" + DEVNET_GENESIS[:32] == DEVNET_CAIP2
    with pytest.raises(
        UnknownTokenLabel,
        match=r"token USDT names a mint on mainnet-beta \(Es9v…wNYB\), not on "
        r"devnet; .*'ghost tokens add USDT MINT'",
    ) as refused:
        devnet.mint("USDT")
    assert (refused.value.label, refused.value.cluster, refused.value.elsewhere) == ("USDT", "devnet", ["mainnet-beta"])
    with pytest.raises(ValueError, match="built in"):
        store.remove(MAINNET_GENESIS, "USDC")
    with pytest.raises(ValueError, match="is the well-known mint"):
        store.add(MAINNET_GENESIS, "USDC", "So11111111111111111111111111111111111111112")


def test_a_localnet_label_never_stands_for_another_clusters_mint(tmp_path: Path) -> None:
    """The resolution the guards use: "USDC" labelled on a localnet is that localnet's mint there, real USDC on
    mainnet-beta, and nothing on a third chain, where a budget naming it refuses rather than guard nothing."""
    store = TokenLabels(tmp_path / "labels.json")
    test_usdc = str(Keypair().pubkey())
    store.add("LocalGenesisA111111111111111111111111111111", "USDC", test_usdc, test_mint=True)
    budget = SpendingGuards(mint_limits={"USDC": Limits(daily=Decimal(1))}, allowed_mints={"usdc"})
    on_localnet = budget.resolved(store.cluster("LocalGenesisA111111111111111111111111111111"))
    on_mainnet = budget.resolved(store.cluster(MAINNET_GENESIS))
    assert dict(on_localnet.mint_limits) == {test_usdc: Limits(daily=Decimal(1))}
    assert dict(on_mainnet.mint_limits) == {REAL_USDC: Limits(daily=Decimal(1))}
    assert on_mainnet.allowed_mints == {REAL_USDC}
    with pytest.raises(UnknownTokenLabel, match="the spending guards' token USDC names a mint on mainnet-beta"):
        budget.resolved(store.cluster("LocalGenesisB111111111111111111111111111111"))
    assert token_labels.test_mints("LocalGenesisA111111111111111111111111111111", tmp_path / "labels.json") == {
        "USDC": test_usdc
    }
    assert token_labels.test_mints(MAINNET_GENESIS, tmp_path / "labels.json") == {}


def test_a_budget_by_label_follows_the_cluster(net: LocalnetProcess, other: LocalnetProcess, tmp_path: Path) -> None:
    """`ghost test-mint --symbol USDC` and `x402.daily_budget.USDC 1` on one localnet, then a guarded command on
    another chain: before, "USDC" meant the first localnet's mint everywhere (the budget guarded nothing
    there); now it is refused, naming the key, until USDC is labelled there, and then guards that mint."""
    home = tmp_path / "home"  # a user of our own: config, labels and spend ledger

    def ghost(*args: object, **kwargs: object) -> Run:
        return run_ghost(*args, env={"GHOSTPAY_HOME": str(home)}, **kwargs)  # type: ignore[arg-type]

    key_a, _ = key_on(net, tmp_path, "a")
    made = ghost("test-mint", "--symbol", "USDC", "--amount", "0", keypair=key_a).data
    assert token_labels.test_mints(genesis(net), home / token_labels.LABELS_FILE) == {"USDC": made["mint"]}
    ghost("config", "set", "x402.daily_budget.USDC", "1").data
    b = ["-u", other.http_url]
    seller_key, seller = key_on(other, tmp_path, "seller")
    buyer_key, buyer = key_on(other, tmp_path, "buyer")
    eurc = ghost(
        *b, "test-mint", "--symbol", "EURC", "--fund", str(buyer.pubkey()), "--amount", "5", keypair=seller_key
    ).data["mint"]
    agent = ghost(
        *b, "agent", "register", "by-label", "--name", "L", "--tokens", "EURC=0.6", *X402, "--yes", keypair=seller_key
    ).data["agent"]
    line = ghost(*b, "payment", "send", "--agent", agent, "--token", "EURC", keypair=buyer_key).one_line_error(1)
    assert line.startswith(
        f"error: x402.daily_budget.USDC names the token USDC, which is not a label on the "
        f"cluster at {other.http_url} (genesis {genesis(other)[:8]}…) (it names a mint on "
        f"mainnet-beta, devnet, the cluster at {net.http_url} (genesis {genesis(net)[:8]}…))"
    )
    assert "'ghost tokens add USDC MINT'" in line and "'ghost config unset x402.daily_budget.USDC'" in line
    assert balance(other, buyer, eurc) == 5_000_000 and balance(other, seller, eurc) == 0  # nothing moved
    started = ghost(*b, "mcp", "--budget-daily", "5", keypair=buyer_key)
    assert "x402.daily_budget.USDC names the token USDC" in started.one_line_error(1)

    usdc_b = ghost(
        *b, "test-mint", "--symbol", "USDC", "--fund", str(buyer.pubkey()), "--amount", "5", keypair=seller_key
    ).data["mint"]
    assert usdc_b != made["mint"]
    ghost(*b, "agent", "set-tokens", "--agent", agent, "--tokens", "USDC=0.6", keypair=seller_key).data
    paid = ghost(*b, "payment", "send", "--agent", agent, "--token", "USDC", keypair=buyer_key).data
    assert (paid["token"], paid["token_symbol"], paid["amount"]) == (usdc_b, "USDC", "0.600000")
    refused = ghost(*b, "payment", "send", "--agent", agent, "--token", "USDC", keypair=buyer_key)
    assert "would exceed the daily budget of 1 USDC" in refused.one_line_error(1)
    assert balance(other, buyer, usdc_b) == 4_400_000 and balance(other, seller, usdc_b) == 600_000
    listed = ghost(*b, "tokens", "list", "--json", output=None).data
    assert listed["cluster"] == {
        "name": f"the cluster at {other.http_url} (genesis {genesis(other)[:8]}…)",
        "genesis_hash": genesis(other),
        "url": other.http_url,
    }
    assert {t["label"]: t["mint"] for t in listed["tokens"]} == {"EURC": eurc, "USDC": usdc_b}
    here = {t["label"]: t["mint"] for t in ghost("tokens", "list").data["tokens"]}
    assert here == {"USDC": made["mint"]}  # the first localnet keeps its own


def test_a_mainnet_label_on_a_localnet_is_one_clean_error(wallets, net: LocalnetProcess) -> None:
    key, _ = wallets.new()
    line = ghost(
        "agent", "register", "wants-usdt", "--name", "T", "--tokens", "USDT=0.01", *X402, "--yes", keypair=key
    ).one_line_error(2)
    assert (
        f"--tokens USDT names a mint on mainnet-beta (Es9v…wNYB), not on the cluster at {net.http_url} (genesis "
        f"{genesis(net)[:8]}…); give the mint's address, or label a mint here with 'ghost tokens add USDT MINT'"
    ) in line
    assert ghost("agent", "list", keypair=key).data["agents"] == []  # nothing was sent
    line = ghost("payment", "simulate", "--agent", "wants-usdt", "--token", "PYUSD", keypair=key).one_line_error(2)
    assert "--token PYUSD names a mint on mainnet-beta" in line
    assert "neither a mint address" in ghost(
        "payment", "send", "--agent", "x", "--token", "no way", keypair=key
    ).one_line_error(2)


def test_tokens_add_list_remove(wallets, net: LocalnetProcess) -> None:
    _, owner = wallets.new()
    mint = str(create_mint(net, 2))
    added = ghost("tokens", "add", "GOLD", mint).data
    assert (added["label"], added["mint"], added["cluster"]["genesis_hash"]) == ("GOLD", mint, genesis(net))
    listed = {t["label"]: t for t in ghost("tokens", "list").data["tokens"]}
    assert listed["GOLD"] == {"label": "GOLD", "mint": mint, "source": "user"}
    assert "GOLD" in ghost("tokens", "list", output=None).stdout
    other_mint = str(create_mint(net, 2))
    taken = ghost("tokens", "add", "gold", other_mint).one_line_error(2)  # labels are case-insensitive
    assert f"the label GOLD already names the mint {mint}" in taken and "pass --yes" in taken
    assert ghost("tokens", "add", "gold", other_mint, "--yes").data["mint"] == other_mint
    assert {t["label"]: t["mint"] for t in ghost("tokens", "list").data["tokens"]}.get("gold") == other_mint
    wallet = str(owner.pubkey())
    assert f"{wallet} is an account that is no token mint on the cluster at {net.http_url}" in ghost(
        "tokens", "add", "W", wallet
    ).one_line_error(1)
    nobody = str(Keypair().pubkey())
    assert f"{nobody} is no account on the cluster" in ghost("tokens", "add", "W", nobody).one_line_error(1)
    assert "a token label is 1 to 16 letters" in ghost("tokens", "add", "A.B", mint).one_line_error(2)
    assert ghost("tokens", "remove", "GOLD").data["mints"] == [other_mint]
    assert "GOLD" not in {t["label"] for t in ghost("tokens", "list").data["tokens"]}
    assert "x402.daily_budget.A.B: 'A.B' is neither" in ghost(
        "config", "set", "x402.daily_budget.A.B", "1"
    ).one_line_error(2)


def test_old_global_labels_move_to_the_cluster_of_their_mint(
    net: LocalnetProcess, other: LocalnetProcess, tmp_path: Path
) -> None:
    """Labels written by the old `ghost test-mint` (one global [tokens] table): each moves to the cluster where
    its mint is a mint, on that cluster's first use, and leaves config.toml; the others wait for theirs."""
    home = tmp_path / "home"

    def ghost(*args: object, **kwargs: object) -> Run:
        return run_ghost(*args, env={"GHOSTPAY_HOME": str(home)}, **kwargs)  # type: ignore[arg-type]

    here, there = str(create_mint(net, 6)), str(create_mint(other, 6))
    write_config(
        {"url": net.http_url, "tokens": {here: "OLDA", there: "OLDB", "not-a-key": "BAD"}}, home / "config.toml"
    )
    listed = {t["label"]: t for t in ghost("tokens", "list").data["tokens"]}
    assert listed["OLDA"] == {"label": "OLDA", "mint": here, "source": "test-mint"} and "OLDB" not in listed
    assert read_config(home / "config.toml")["tokens"] == {there: "OLDB", "not-a-key": "BAD"}
    on_other = {t["label"]: t["mint"] for t in ghost("-u", other.http_url, "tokens", "list").data["tokens"]}
    assert on_other == {"OLDB": there}
    assert read_config(home / "config.toml")["tokens"] == {"not-a-key": "BAD"}  # no cluster has that one
    assert f"--token OLDA names a mint on the cluster at {net.http_url}" in ghost(
        "-u", other.http_url, "agent", "search", "--token", "OLDA"
    ).one_line_error(2)
