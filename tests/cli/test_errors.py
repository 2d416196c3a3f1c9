"""Every failure is one `error:` line on stderr with the right exit status and no traceback:
2 for a malformed command line (checked before anything is sent), 1 for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import ghost, mint_to

X402 = ["--price", "0.01", "--endpoint", "https://e.example"]


@pytest.fixture(scope="module")
def owned(wallets, usdc) -> tuple[Path, str]:
    """A keypair file and the address of an agent it owns."""
    key, _ = wallets.new()
    address = ghost(
        "agent", "register", "mine", "--name", "Mine", "--tokens", str(usdc), *X402, "--yes", keypair=key
    ).data["agent"]
    return key, address


@pytest.mark.parametrize("output", ["json", None])
def test_malformed_public_key(owned, output) -> None:
    key, _ = owned
    line = ghost("agent", "list", "--owner", "not-a-key", keypair=key, output=output).one_line_error(2)
    assert "'not-a-key' is not a valid owner" in line
    line = ghost(
        "payment", "send", "--agent", "7TEwzMaWGGR4yJg2F4eG186xu1uGAsS6mb178CB9dp0", keypair=key, output=output
    ).one_line_error(2)  # 0 is not base58: an agent_id too long to be one
    assert "agent_id" in line or "public key" in line


@pytest.mark.parametrize(
    "price, message",
    [
        ("-1", "--price must be positive, not -1"),
        ("abc", "--price must be a decimal number of tokens"),
        ("0", "--price must be positive"),
    ],
)
def test_negative_or_non_numeric_price(owned, usdc, price, message) -> None:
    key, address = owned
    assert message in ghost("agent", "set-price", "-a", address, "--price", price, keypair=key).one_line_error(2)
    assert message in ghost(
        "agent",
        "register",
        "x",
        "--name",
        "X",
        "--tokens",
        str(usdc),
        "--price",
        price,
        "--endpoint",
        "https://e.example",
        "--yes",
        keypair=key,
    ).one_line_error(2)


def test_eleven_tokens(owned, usdc) -> None:
    key, address = owned
    tokens = ",".join([str(usdc)] * 11)
    line = ghost("agent", "set-tokens", "-a", address, "--tokens", tokens, keypair=key).one_line_error(2)
    assert "at most 10 accepted tokens, got 11" in line
    line = ghost("agent", "configure-x402", "-a", address, "--tokens", tokens, *X402, keypair=key).one_line_error(2)
    assert "got 11" in line


def test_over_long_name(owned) -> None:
    key, address = owned
    line = ghost("agent", "register", "long", "--name", "n" * 65, "--yes", keypair=key).one_line_error(2)
    assert "the name is at most 64 bytes, got 65" in line
    assert "at most 64 bytes" in ghost(
        "agent", "update", "-a", address, "--name", "é" * 33, keypair=key
    ).one_line_error(2)


def test_missing_keypair_file(tmp_path) -> None:
    missing = tmp_path / "nope.json"
    line = ghost("agent", "register", "a", "--name", "A", "--yes", keypair=missing).one_line_error(1)
    assert line == (
        f"error: keypair file {missing} not found; create it with 'ghost keygen --outfile {missing}', "
        "or pass -k/--keypair FILE or set GHOST_KEYPAIR"
    )
    # no -k and no ~/.config/solana/id.json: the default path is named
    assert "id.json not found; create it with 'ghost keygen', or" in ghost("agent", "list").one_line_error(1)


@pytest.mark.parametrize("output", ["json", None])
def test_unreachable_rpc(owned, output) -> None:
    key, address = owned
    line = ghost("-u", "http://127.0.0.1:9", "agent", "show", address, output=output).one_line_error(1)
    assert line.startswith("error: cannot reach the Solana RPC at http://127.0.0.1:9 (")
    assert line.endswith("start one with 'ghost localnet start --detach' or pass -u/--url")
    assert "cannot reach the Solana RPC" in ghost("-u", "http://127.0.0.1:9", "airdrop", keypair=key).one_line_error(1)


def test_another_owners_agent(owned, wallets) -> None:
    _, address = owned
    intruder, who = wallets.new()
    line = ghost("agent", "set-price", "-a", address, "--price", "1", keypair=intruder).one_line_error(1)
    assert f"agent {address} belongs to" in line and f"not to your wallet {who.pubkey()}" in line
    assert "belongs to" in ghost("agent", "close", "-a", address, "--yes", keypair=intruder).one_line_error(1)


def test_unknown_agent(owned, wallets) -> None:
    key, _ = owned
    stranger = str(wallets.new()[1].pubkey())  # a wallet, not an agent
    line = ghost("agent", "show", stranger).one_line_error(1)
    assert line.startswith(f"error: agent {stranger} not found; check the address")
    assert "not found" in ghost("payment", "send", "-a", stranger, keypair=key).one_line_error(1)


def test_another_wallets_agent_id_is_named_as_typed(owned, wallets) -> None:
    """`mine` is the owner's agent_id; another wallet typing it means its own agent 'mine', which does not exist:
    the error names what was typed and the wallet, not an address derived behind the user's back."""
    _, address = owned
    other_key, other = wallets.new()
    for command in (["payment", "send", "-a", "mine"], ["agent", "show", "mine"]):
        line = ghost(*command, keypair=other_key).one_line_error(1)
        assert line == (
            f"error: no agent 'mine' among the agents of {other.pubkey()} (an agent_id names one of your "
            "own agents); to reach another wallet's agent, pass its address; list yours with "
            "'ghost agent list'"
        ), command
        assert address not in line


def test_program_errors_by_name_and_number(owned, wallets, usdc, net) -> None:
    key, address = owned
    line = ghost("agent", "register", "mine", "--name", "Again", "--yes", keypair=key).one_line_error(1)
    assert "AgentAlreadyRegistered (error 6017)" in line or "already in use" in line
    line = ghost("agent", "set-price", "-a", address, "--price", "1000001", keypair=key).one_line_error(2)  # > 10^12
    assert line == "error: the price must be between 0.000001 USDC and 1,000,000.00 USDC, not 1000001"  # in tokens
    buyer, who = wallets.new()
    line = ghost("payment", "send", "-a", address, keypair=buyer).one_line_error(1)  # no USDC account
    assert line.startswith("error: the transaction failed: instruction 2 failed: ")
    mint_to(net, who.pubkey(), usdc, 1_000_000)
    assert "PaymentBelowPrice (error 6024)" in ghost(
        "payment", "send", "-a", address, "--amount", "0.001", keypair=buyer
    ).one_line_error(1)


def test_closing_a_paid_agent_says_when_it_can_close(wallets, usdc, net) -> None:
    key, _ = wallets.new()
    address = ghost(
        "agent", "register", "paid", "--name", "Paid", "--tokens", str(usdc), *X402, "--yes", keypair=key
    ).data["agent"]
    buyer, who = wallets.new()
    mint_to(net, who.pubkey(), usdc, 1_000_000)
    assert ghost("payment", "send", "-a", address, keypair=buyer).data
    line = ghost("agent", "close", "-a", address, "--yes", keypair=key).one_line_error(1)
    assert "FeedbackWindowOpen (error 6074)" in line and "close it 30 days after that payment" in line
    assert ghost("agent", "show", address).data  # still there


def test_usage_errors_exit_2(owned) -> None:
    key, _ = owned
    line = ghost("agent", "set-price", keypair=key).one_line_error(2)
    assert "Missing option '--agent'" in line and "(see 'ghost agent set-price --help')" in line
    assert "No such command" in ghost("agent", "fly").one_line_error(2)
    assert "output must be one of text, json" in ghost("--output", "yaml", "version", output=None).one_line_error(2)
    assert "--sort must be one of" in ghost("agent", "search", "--sort", "vibes").one_line_error(2)


def test_verbose_shows_the_traceback(owned) -> None:
    _, address = owned
    run = ghost("-u", "http://127.0.0.1:9", "--verbose", "agent", "show", address)
    assert run.code == 1 and "Traceback" in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: cannot reach the Solana RPC")


def test_a_remote_cluster_that_does_not_answer_is_not_told_to_start_a_localnet() -> None:
    from ghostpay.cli.context import unreachable

    remote = unreachable("https://api.devnet.solana.com", "ConnectError: Name or service not known")
    assert "check the network connection and the URL (-u/--url)" in remote
    assert unreachable("http://127.0.0.2:8899", "x").endswith(
        "start one with 'ghost localnet start --detach' or pass -u/--url"
    )  # any loopback address is local


def test_a_seller_that_does_not_answer_is_named_not_an_internal_error(owned) -> None:
    key, _ = owned
    for command in ("quote", "call"):
        line = ghost("x402", command, "http://127.0.0.1:9/translate", keypair=key).one_line_error(1)
        assert line.startswith("error: cannot reach http://127.0.0.1:9/translate: nothing accepts connections there")
        assert line.endswith("check the URL and that the server runs") and "internal error" not in line


def test_localnet_status_on_another_port_says_how_to_start_one_there() -> None:
    run = ghost("localnet", "status", "--rpc-port", "9", output=None)
    assert run.code == 1
    assert run.stdout.strip().startswith(
        "no localnet answers at http://127.0.0.1:9; start one there with 'ghost localnet start --detach --rpc-port 9'"
    )


def test_too_many_decimals_in_plain_notation(owned, usdc) -> None:
    key, _ = owned
    line = ghost(
        "agent",
        "register",
        "tiny",
        "--name",
        "Tiny",
        "--tokens",
        f"{usdc}=0.0000001",
        "--endpoint",
        "https://e.example",
        "--yes",
        keypair=key,
    ).one_line_error(1)
    assert "0.0000001 USDC has more than 6 decimals (the token's smallest unit is 0.000001)" in line  # plain, by label
    assert "E-" not in line
