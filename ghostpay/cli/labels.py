"""The token labels of the CLI's cluster (`State.labels`), with the one-time move of the old global labels.

Labels were once one global `[tokens]` table in config.toml (written by `ghost test-mint`): `cluster_labels`
moves each of them, on first use of a cluster, to the cluster where its mint exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ghostpay.cli.config_file import read_config, write_config

if TYPE_CHECKING:
    from ghostpay.cli.context import State
    from ghostpay.token_labels import ClusterLabels, TokenLabels

LEGACY_TABLE = "tokens"  # the old global labels in config.toml: mint -> label
TOKEN_PROGRAMS = ("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")


def token_store() -> TokenLabels:
    from ghostpay.token_labels import TokenLabels

    return TokenLabels()


def cluster_labels(st: State) -> ClusterLabels:
    """The labels of `st`'s cluster, after moving the old global labels that belong to it."""
    store = token_store()
    genesis = st.genesis_hash()
    legacy = read_config().get(LEGACY_TABLE)
    if isinstance(legacy, dict) and legacy and not store.legacy_checked(genesis):
        migrate_legacy(st, store, genesis, {str(m): str(label) for m, label in legacy.items()})
    return store.cluster(genesis, st.rpc_url)


def migrate_legacy(st: State, store: TokenLabels, genesis: str, legacy: dict[str, str]) -> None:
    """Move the old global labels whose mint is a mint on this cluster here (as test mints on a localnet:
    `ghost test-mint` wrote them all), and drop them from config.toml; the others stay there for the cluster
    where their mint is. A label this cluster already has stays as it is."""
    from ghostpay.token_labels import NETWORKS, is_address

    mints = [mint for mint in legacy if is_address(mint)]  # anything else names no mint anywhere
    accounts = st.jsonrpc("getMultipleAccounts", mints, {"encoding": "jsonParsed"})["value"] if mints else []
    moved = []
    for mint, account in zip(mints, accounts, strict=True):
        label = legacy[mint]
        if not is_mint_account(account):
            continue
        current = store.cluster(genesis).find(label)
        try:
            if current is None:
                store.add(genesis, label, mint, test_mint=genesis not in NETWORKS, url=st.rpc_url)
        except ValueError:  # not a valid label any more: it stays in the old table, unused
            continue
        if current is None or current.mint == mint:
            moved.append(mint)
    store.mark_legacy_checked(genesis, st.rpc_url)
    if moved:
        config = read_config()
        left = {m: label for m, label in config.get(LEGACY_TABLE, {}).items() if m not in moved}
        if left:
            config[LEGACY_TABLE] = left
        else:
            config.pop(LEGACY_TABLE, None)
        write_config(config)


def is_mint_account(account: Any) -> bool:
    """Whether a jsonParsed account is an SPL Token or Token-2022 mint."""
    return (
        isinstance(account, dict)
        and account.get("owner") in TOKEN_PROGRAMS
        and isinstance(account.get("data"), dict)
        and account["data"].get("parsed", {}).get("type") == "mint"
    )
