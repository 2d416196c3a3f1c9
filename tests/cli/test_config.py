"""Settings: option over GHOST_* variable over `ghost config set` over the default; airdrop and test-mint."""

from __future__ import annotations

import json

from ghostpay.cli.config_file import config_path
from tests.cli.conftest import ghost


def test_config_set_get_unset_and_precedence(tmp_path, monkeypatch, net) -> None:
    monkeypatch.setenv("GHOST_CONFIG", str(tmp_path / "ghost.toml"))
    assert (
        ghost("config", "path").data == {"path": str(tmp_path / "ghost.toml")}
        and config_path() == tmp_path / "ghost.toml"
    )
    assert ghost("config", "get", "commitment").data == {"commitment": "confirmed", "source": "default"}
    ghost("config", "set", "commitment", "finalized").data
    ghost("config", "set", "output", "json", output=None)
    assert ghost("config", "get", "commitment").data == {"commitment": "finalized", "source": "config"}
    # output=json from the config file: no --output needed for a JSON document
    assert ghost("config", "get", "output", output=None).data == {"output": "json", "source": "config"}
    monkeypatch.setenv("GHOST_COMMITMENT", "processed")
    assert ghost("config", "get", "commitment").data == {"commitment": "processed", "source": "env"}
    assert ghost("--commitment", "confirmed", "config", "get", "commitment").data["source"] == "option"
    everything = ghost("config", "get").data
    assert everything["settings"]["url"] == {"value": net.http_url, "source": "env", "env": "GHOST_URL"}
    ghost("config", "unset", "output").data
    text = ghost("config", "get", output=None).stdout
    assert "GHOST_KEYPAIR" in text and "commitment" in text and "processed" in text
    assert "settings are: url, keypair" in ghost("config", "set", "colour", "red").one_line_error(2)
    assert "commitment must be one of" in ghost("config", "set", "commitment", "maybe").one_line_error(2)
    (tmp_path / "ghost.toml").write_text("url = [broken")
    assert "cannot read the config file" in ghost("config", "get").one_line_error(1)


def test_moniker_url_and_version(net) -> None:
    run = ghost("-u", "l", "localnet", "status")  # nothing on 8899 in the tests: "not running", exit 1
    assert run.code == 1 and json.loads(run.stdout) == {"running": False, "rpc_url": "http://127.0.0.1:8899"}
    assert ghost("-u", net.http_url, "localnet", "status").data["slot"] >= 0
    assert ghost("version").data["version"]
    assert ghost("version", output=None).stdout.startswith("ghostpay ")


def test_airdrop_and_test_mint_fund_wallets(wallets, net) -> None:
    key, owner = wallets.new(sol=0)
    dropped = ghost("airdrop", "2.5", keypair=key).data
    assert dropped["recipient"] == str(owner.pubkey()) and dropped["balance_sol"] == "2.500000000"
    other = wallets.new(sol=0)[1].pubkey()
    assert "✔ airdrop" in ghost("airdrop", "1", "--to", str(other), output=None).stdout
    minted = ghost(
        "test-mint", "--symbol", "TUSD", "--fund", f"{owner.pubkey()},{other}", "--amount", "12.5", keypair=key
    ).data
    assert (minted["decimals"], minted["amount_atomic"], minted["funded"]) == (
        6,
        12_500_000,
        [str(owner.pubkey()), str(other)],
    )
    supply = net.rpc("getTokenAccountsByOwner", str(other), {"mint": minted["mint"]}, {"encoding": "jsonParsed"})
    assert supply["result"]["value"][0]["account"]["data"]["parsed"]["info"]["tokenAmount"]["uiAmountString"] == "12.5"
    # the label works wherever a token is expected
    assert ghost("agent", "search", "--token", "TUSD").data["filters"]["token"] == minted["mint"]
