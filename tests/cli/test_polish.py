"""The CLI as a new user meets it: agent references, --yes off a terminal, values instead of constant names,
usage errors (exit 2), -v with the program logs, one-line HTTP errors, --help that teaches, global options after
the subcommand, keygen, token labels, and payment addresses that must be wallets."""

from __future__ import annotations

import json
import re
import stat

import typer
from solders.keypair import Keypair

from ghostpay.cli.context import URL_MONIKERS, with_values
from ghostpay.cli.main import app
from ghostpay.cluster import MONIKERS
from tests.cli.conftest import ghost, mint_to, register_in_a_pty
from tests.fault_proxy import FaultProxy
from tests.sdk.conftest import create_mint

X402 = ["--price", "0.01", "--tokens", "USDC", "--endpoint", "https://e.example"]


def register(key, agent_id: str) -> str:
    return ghost("agent", "register", agent_id, "--name", agent_id, *X402, "--yes", keypair=key).data["agent"]


def test_agent_references(wallets, usdc, tmp_path) -> None:
    key, owner = wallets.new()
    agent = register(key, "refs")
    assert ghost("agent", "show", "refs", keypair=key).data["address"] == agent  # an agent_id of the wallet
    assert ghost("agent", "show", agent).data["agent_id"] == "refs"  # an address, no wallet needed
    malformed = agent[:-1] + "0"  # 0 is not base58: meant as an address, malformed
    line = ghost("agent", "show", malformed, keypair=key).one_line_error(2)
    assert f"'{malformed}' is not a valid agent address" in line
    wallet = str(owner.pubkey())  # a valid address, but no agent
    assert f"agent {wallet} not found" in ghost("agent", "payment-history", wallet).one_line_error(1)
    assert f"agent {wallet} not found" in ghost("escrow", "list", "--agent", wallet).one_line_error(1)
    db = tmp_path / "refs.db"
    assert ghost("--db", str(db), "indexer", "run", "--once", output=None).code == 0
    indexed = ghost("--db", str(db), "agent", "payment-history", wallet).one_line_error(1)
    assert f"{wallet} is not an agent in the index" in indexed
    assert ghost("--db", str(db), "agent", "payment-history", agent).data["payments"] == []


def test_irreversible_commands_need_yes_off_a_terminal(wallets, usdc, tmp_path) -> None:
    key, _ = wallets.new()
    agent = register(key, "keepme")
    line = ghost("agent", "close", "-a", agent, keypair=key).one_line_error(2)
    assert "'ghost agent close' cannot be undone: pass --yes" in line
    assert ghost("agent", "show", agent).data["name"] == "keepme"  # nothing was sent
    line = ghost("localnet", "reset", "--ledger", str(tmp_path)).one_line_error(2)
    assert "'ghost localnet reset' cannot be undone" in line


def test_prompts_check_each_answer_and_ask_again(wallets, usdc) -> None:
    key, _ = wallets.new()
    register_in_a_pty(
        key,
        [
            ("Agent id", "x" * 40),
            ("at most 32 bytes", None),
            ("Agent id", "asked-again"),
            ("Name", ""),
            ("Description", ""),
            ("Capabilities", "a, " + "c" * 40),
            ("at most 32 bytes", None),
            ("Capabilities", "ok"),
            (r"Price calls with x402\?", "y"),
            ("Accepted tokens and their price", "USDC=-3"),
            ("must be positive", None),
            ("Accepted tokens and their price", "not-a-mint=0.01"),
            ("is not a token label", None),
            ("Accepted tokens and their price", "USDC=0.01"),
            ("Service endpoint", "ftp://x"),
            ("http:// or https://", None),
            ("Service endpoint", "https://asked.example"),
            ("Register 'asked-again'", "y"),
        ],
    )
    shown = ghost("agent", "show", "asked-again", keypair=key).data
    assert (shown["capabilities"], shown["endpoint"]) == (["ok"], "https://asked.example")


def test_messages_give_values_and_usage_errors_exit_2(wallets, usdc, net) -> None:
    assert (
        with_values("The amount must be between MIN_WORK_ORDER_AMOUNT and MAX_WORK_ORDER_AMOUNT")
        == "The amount must be between 1,000 atomic units and 1,000,000,000,000 atomic units"
    )
    assert (
        with_values("The review period must be between MIN and MAX_REVIEW_PERIOD_SECONDS")
        == "The review period must be between 60 s and 2,592,000 s"
    )
    key, who = wallets.new()
    agent = register(key, "ranges")
    mint_to(net, who.pubkey(), usdc, 10_000_000)
    create = ["escrow", "create", "--agent", agent, "--title", "T", "--arbiter", str(wallets.new()[1].pubkey())]
    line = ghost(*create, "--amount", "0.0001", keypair=key).one_line_error(2)
    assert line == "error: --amount must be between 0.001 USDC and 1,000,000.00 USDC, not 0.0001"
    line = ghost(*create, "--amount", "1", "--review-period", "10s", keypair=key).one_line_error(2)
    assert "--review-period must be between 60 s (1 minute) and 2,592,000 s (30 days), not 10s" in line
    assert "--order-id" in ghost(*create, "--amount", "1", "--order-id", str(2**64), keypair=key).one_line_error(2)
    assert "program_id must be a base58 public key" in ghost("--program-id", "xyz", "agent", "list").one_line_error(2)
    assert "url must be an http(s):// URL or a moniker" in ghost("config", "set", "url", "notaurl").one_line_error(2)
    assert ghost("localnet", "start", "--rpc-port", "99999").code == 2
    assert set(URL_MONIKERS) == set(MONIKERS)  # the CLI checks monikers without importing the SDK


def test_verbose_shows_the_program_logs_and_http_errors_fit_one_line(wallets, usdc, net) -> None:
    seller, _ = wallets.new()
    agent = register(seller, "logs")
    buyer, _ = wallets.new()  # holds no USDC: the payment fails on chain
    failed = ghost("-v", "payment", "send", "--agent", agent, keypair=buyer)
    assert failed.code == 1 and "program logs:" in failed.stderr and "Program log: " in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("error: ")
    with FaultProxy(net.http_url) as proxy:
        proxy.fail_between(1, 10**9)
        line = ghost("-u", proxy.url, "agent", "show", agent).one_line_error(1)
        assert "503" in line and "cannot reach the Solana RPC" in line


def test_help_teaches(tmp_path) -> None:
    root = typer.main.get_command(app)
    commands = []

    def walk(command, path) -> None:  # through get_command: the root imports its sub-commands when asked
        for name in command.list_commands(None) if hasattr(command, "commands") else []:
            walk(command.get_command(None, name), path + [name])
        if not hasattr(command, "commands"):
            commands.append(path)

    walk(root, [])
    assert len(commands) > 45
    for path in commands:
        run = ghost(*path, "--help", output=None, env={"COLUMNS": "80"})
        assert run.code == 0, path
        assert re.search(r"Example:\s+ghost ", run.stdout), path
        assert "<bool>" not in run.stdout and "{" not in run.stdout.splitlines()[0], path
        command = root
        for name in path:
            command = command.get_command(None, name)
        for param in command.params:  # every option name shown whole, however narrow the terminal
            assert all(opt in run.stdout for opt in param.opts if opt.startswith("--")), (path, param.opts)
    register_help = ghost("agent", "register", "--help", output=None, env={"COLUMNS": "60"}).stdout
    assert "--payment-address" in register_help and "-y, --yes " in register_help
    assert "Usage: ghost escrow accept [OPTIONS] ORDER" in ghost("escrow", "accept", "--help", output=None).stdout


def test_global_options_after_the_subcommand(wallets, usdc, net) -> None:
    key, owner = wallets.new()
    register(key, "after")
    run = ghost("agent", "list", "--owner", str(owner.pubkey()), "-u", net.http_url, "-o", "json", output=None)
    assert run.code == 0 and json.loads(run.stdout)["agents"][0]["agent_id"] == "after"
    assert ghost("version", "--output", "json", output=None).data["version"]


def test_keygen(tmp_path) -> None:
    target = tmp_path / "wallets" / "new.json"
    made = ghost("keygen", "--outfile", str(target)).data
    assert len(json.loads(target.read_text())) == 64 and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "already exists; pass --force" in ghost("keygen", "--outfile", str(target)).one_line_error(1)
    again = ghost("keygen", "--outfile", str(target), "--force").data
    assert again["pubkey"] != made["pubkey"] and again["path"] == str(target)


def test_address_and_balance_as_the_solana_cli_shows_them(wallets, usdc, net, tmp_path) -> None:
    key, who = wallets.new(sol=3)
    assert ghost("address", keypair=key).data == {"address": str(who.pubkey())}
    assert ghost("address", keypair=key, output=None).stdout.strip() == str(who.pubkey())
    mint_to(net, who.pubkey(), usdc, 1_250_000)
    other = create_mint(net, 2)
    mint_to(net, who.pubkey(), other, 7)
    shown = ghost("balance", keypair=key).data
    assert shown["address"] == str(who.pubkey()) and shown["sol"] == "3.000000000" and shown["lamports"] == 3 * 10**9
    by_mint = {t["mint"]: t for t in shown["tokens"]}
    assert (by_mint[str(usdc)]["token"], by_mint[str(usdc)]["amount"]) == ("USDC", "1.250000")  # by label
    assert by_mint[str(other)]["amount"] == "0.07" and by_mint[str(other)]["amount_atomic"] == 7
    text = ghost("balance", str(who.pubkey()), output=None).stdout  # anyone's wallet, no keypair needed
    assert "3.00 SOL" in text and "USDC" in text and "1.25 " in text
    assert ghost("balance", Keypair().pubkey(), output="json").data["tokens"] == []
    missing = tmp_path / "none.json"
    assert f"create it with 'ghost keygen --outfile {missing}'" in ghost("balance", keypair=missing).one_line_error(1)


def test_token_labels_and_test_mint_adds(wallets, usdc, net) -> None:
    key, who = wallets.new()
    first = ghost("test-mint", "--symbol", "LBL", "--amount", "5", keypair=key).data
    topped = ghost("test-mint", "--mint", "LBL", "--amount", "2.5", keypair=key).data  # adds, not overwrites
    assert topped["mint"] == first["mint"]
    held = net.rpc("getTokenAccountsByOwner", str(who.pubkey()), {"mint": first["mint"]}, {"encoding": "jsonParsed"})
    assert held["result"]["value"][0]["account"]["data"]["parsed"]["info"]["tokenAmount"]["uiAmountString"] == "7.5"
    line = ghost("test-mint", "--symbol", "LBL", keypair=key).one_line_error(2)  # a new mint under a used label
    assert f"the label LBL already names the mint {first['mint']} on the cluster at {net.http_url}" in line
    assert "pass --yes" in line
    moved = ghost("test-mint", "--symbol", "LBL", "--yes", keypair=key).data
    listed = {t["label"]: t for t in ghost("tokens", "list").data["tokens"]}
    assert listed["LBL"] == {"label": "LBL", "mint": moved["mint"], "source": "test-mint"}
    assert listed["USDC"] == {"label": "USDC", "mint": str(usdc), "source": "test-mint"}
    assert [t["label"] for t in ghost("tokens", "list").data["tokens"]].count("LBL") == 1
    assert ghost("tokens", "remove", "LBL").data["mints"] == [moved["mint"]]
    assert "no token label 'LBL' of yours" in ghost("tokens", "remove", "LBL").one_line_error(1)
    assert "LBL" not in {t["label"] for t in ghost("tokens", "list").data["tokens"]}


def test_payment_address_must_be_a_wallet(wallets, usdc, net) -> None:
    key, who = wallets.new()
    mint_to(net, who.pubkey(), usdc, 1)
    token_account = net.rpc("getTokenAccountsByOwner", str(who.pubkey()), {"mint": str(usdc)}, {"encoding": "base64"})[
        "result"
    ]["value"][0]["pubkey"]
    for address, kind in ((str(usdc), "a token mint"), (token_account, "a token account")):
        line = ghost(
            "agent", "register", "paid-to", "--name", "P", *X402, "--payment-address", address, "--yes", keypair=key
        ).one_line_error(1)
        assert f"the payment address {address} is {kind}, not a wallet" in line


def test_a_long_backfill_draws_a_progress_bar_on_a_terminal() -> None:
    import sys

    import pexpect

    script = (
        "import time\nfrom ghostpay.cli.indexer import backfill_progress\n"
        "with backfill_progress() as hook:\n"
        "    for done in (0, 400, 800, 1200):\n        hook(done, 1200)\n        time.sleep(0.3)\n"
        "print('finished')\n"
    )
    child = pexpect.spawn(sys.executable, ["-c", script], encoding="utf-8", timeout=30, dimensions=(24, 120))
    child.expect("back-fill")
    child.expect(r" 400/1200\S* transactions")  # (colours between the count and the word)
    child.expect("finished")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_counts_say_what_they_count(wallets, usdc) -> None:
    """The search's count is paid x402 calls; the reputation's also counts settled work orders: each is
    labelled, so "2" beside "3" for one agent is no puzzle."""
    key, _ = wallets.new()
    agent = ghost("agent", "register", "counted", "--name", "Counted", *X402, "--yes", keypair=key).data["agent"]
    listing = ghost("agent", "search", "--x402-enabled", "--sort", "newest", "--limit", "1", output=None).stdout
    assert "Counted" in listing and "paid calls" in listing
    shown = ghost("agent", "reputation", agent, output=None).stdout
    assert "payments scored" in shown and "(paid x402 calls and settled work orders)" in shown


def test_dollar_amounts_for_usd_stablecoins(wallets, usdc, net) -> None:
    key, _ = wallets.new()
    agent = ghost(
        "agent",
        "register",
        "dollars",
        "--name",
        "Dollars",
        "--tokens",
        "USDC=$0.01",
        "--endpoint",
        "https://d.example",
        "--yes",
        keypair=key,
    ).data
    [price] = ghost("agent", "show", agent["agent"]).data["prices"]
    assert (price["token"], price["price_atomic"]) == (str(usdc), 10_000)  # $0.01 = 0.01 USDC
    ghost("test-mint", "--symbol", "EURD", "--decimals", "2", keypair=key).data
    refused = ghost(
        "agent",
        "configure-x402",
        "--agent",
        "dollars",
        "--tokens",
        "EURD=$1",
        "--endpoint",
        "https://d.example",
        keypair=key,
    ).one_line_error(2)
    assert "is for USD stablecoins (USDC, USDT, PYUSD), not EURD: give it in whole EURD tokens" in refused
    assert "needs the token it is paid in" in ghost(
        "payment", "send", "-a", agent["agent"], "--amount", "$0.01", keypair=key
    ).one_line_error(2)
