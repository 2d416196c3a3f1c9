"""`ghost tokens add|list|remove`: token labels, names that stand for mints on one cluster (by genesis hash).

The labels live in `token-labels.json` in the data folder (`ghostpay.token_labels`), beside the built-in
well-known mints of mainnet-beta and devnet; `ghost test-mint --symbol` labels its mint on the localnet
it made it on (`ghostpay.cli.labels` moves the labels config.toml once held to their cluster).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from ghostpay.cli import params
from ghostpay.cli.context import CliError, State, state
from ghostpay.cli.labels import is_mint_account, token_store
from ghostpay.cli.output import emit, table

if TYPE_CHECKING:
    from ghostpay.token_labels import ClusterLabels

SOURCES = {"well-known": "well-known", "user": "yours", "test-mint": "test mint (ghost test-mint)"}

app = typer.Typer(
    help="Token labels: names that stand for mints (USDC), wherever a token is expected. A label "
    "belongs to one cluster: well-known mints are built in for mainnet-beta and devnet, 'ghost "
    "test-mint --symbol' labels its mint on its localnet, 'ghost tokens add' labels any mint.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def cluster_json(labels: ClusterLabels) -> dict[str, Any]:
    return {"name": labels.name, "genesis_hash": labels.genesis_hash, "url": labels.url}


def check_label_free(st: State, labels: ClusterLabels, label: str, mint: str, yes: bool) -> None:
    """A label names one mint: moving it to another asks first (or needs --yes off a terminal); a well-known
    label is never moved."""
    taken = labels.find(label)
    if taken is None or taken.mint == mint:
        return
    if taken.source == "well-known":
        raise CliError(
            f"{taken.label} on {labels.name} is the well-known mint {taken.mint} (built in); choose another label", 2
        )
    if yes:
        return
    if st.json or not sys.stdin.isatty():
        raise CliError(
            f"the label {taken.label} already names the mint {taken.mint} on {labels.name}; pass --yes "
            "to move it to this mint, or choose another label",
            2,
        )
    if not typer.confirm(f"The label {taken.label} already names {taken.mint}; move it to {mint}?", default=False):
        raise typer.Abort()


def label_mint(st: State, label: str, mint: str, *, test_mint: bool) -> None:
    """Record `label` for `mint` on this cluster (the caller checked it is free)."""
    token_store().add(st.genesis_hash(), label, mint, test_mint=test_mint, url=st.rpc_url, replace=True)
    st.forget_labels()


def label_arg(value: str) -> str:
    from ghostpay.token_labels import is_label

    if not is_label(value.strip()):
        raise typer.BadParameter(f"a token label is 1 to 16 letters, digits, '-' or '_' (like USDC), not {value!r}")
    return value.strip()


@app.command("add")
def add(
    ctx: typer.Context,
    label: str = typer.Argument(..., help="The name, e.g. USDC (1 to 16 letters, digits, '-', '_')."),
    mint: str = typer.Argument(..., help="The mint's address on this cluster (-u)."),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Move the label if it names another mint here, without asking."
    ),
) -> None:
    """Label a mint of this cluster (-u), so --token LABEL stands for it here (and only here).

    Example: ghost -u devnet tokens add EURC HzwqbKZw8HxMN6bF2yFZNrht3c2iXXzpKcFu7uBEDKtr
    """
    st = state(ctx)
    name, address = label_arg(label), str(params.pubkey(mint, "token mint"))
    labels = st.labels()
    account = st.jsonrpc("getAccountInfo", address, {"encoding": "jsonParsed"})["value"]
    if not is_mint_account(account):
        kind = "no account" if account is None else "an account that is no token mint"
        raise CliError(f"{address} is {kind} on {labels.name}; give a mint of this cluster (check -u)")
    check_label_free(st, labels, name, address, yes)
    label_mint(st, name, address, test_mint=False)
    labels = st.labels()
    emit(
        st,
        {"label": name, "mint": address, "cluster": cluster_json(labels)},
        lambda out: out.print(f"{name} = {address} on {labels.name}"),
    )


@app.command("list")
def list_labels(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Same as ghost --output json tokens list."),
) -> None:
    """The token labels of this cluster (-u): well-known mints, yours, and test mints.

    Example: ghost -u devnet tokens list --json
    """
    st = state(ctx)
    labels = st.labels()
    rows = [{"label": t.label, "mint": t.mint, "source": t.source} for t in labels.labels]
    data = {"cluster": cluster_json(labels), "tokens": rows}
    if json_output or st.json:
        import json

        print(json.dumps(data, indent=2))
        return
    emit(
        st,
        data,
        lambda out: out.print(
            table(
                ["label", "mint", "from"],
                [(r["label"], r["mint"], SOURCES[r["source"]]) for r in rows],
                title=f"{len(rows)} token label(s) on {labels.name}",
            )
        ),
    )


@app.command("remove")
def remove(ctx: typer.Context, label: str = typer.Argument(..., help="The label to forget on this cluster.")) -> None:
    """Forget a label of this cluster (-u); the mint itself is untouched.

    Example: ghost tokens remove USDC
    """
    st = state(ctx)
    labels = st.labels()
    try:
        removed = token_store().remove(labels.genesis_hash, label)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    st.forget_labels()
    emit(
        st,
        {"removed": removed.label, "mints": [removed.mint], "cluster": cluster_json(labels)},
        lambda out: out.print(f"removed the label {removed.label} ({removed.mint}) on {labels.name}"),
    )


__all__ = ["app", "check_label_free", "label_arg", "label_mint"]
