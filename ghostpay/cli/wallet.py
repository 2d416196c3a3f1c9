"""The wallet: `ghost keygen` (a new keypair file, since `solana-keygen` is not installed by setup), `ghost
address` and `ghost balance` (as `solana address`, `solana balance` and `spl-token accounts`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from ghostpay.cli import params
from ghostpay.cli.context import CliError, state
from ghostpay.cli.labels import TOKEN_PROGRAMS  # both token programs: a wallet's accounts of either are its tokens
from ghostpay.cli.output import emit, format_amount, key_value_table, mint_symbol, table


def keygen(
    ctx: typer.Context,
    outfile: Path | None = typer.Option(
        None, "--outfile", help="Where to write it (default: the Solana CLI default, ~/.config/solana/id.json)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Create a keypair file in the Solana CLI's format (a JSON array of 64 bytes, readable by you only).

    Example: ghost keygen --outfile ~/wallets/buyer.json
    """
    from solders.keypair import Keypair

    from ghostpay.keypairs import default_keypair_path

    st = state(ctx)
    path = Path(os.path.expanduser(str(outfile))) if outfile else default_keypair_path()
    if path.exists() and not force:
        raise CliError(f"{path} already exists; pass --force to overwrite it (its funds would be lost to you)")
    keypair = Keypair()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(json.dumps(list(bytes(keypair))))
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_TRUNC
    emit(
        st,
        {"pubkey": str(keypair.pubkey()), "path": str(path)},
        lambda out: out.print(f"Wrote a new keypair to {path}\npubkey: {keypair.pubkey()}"),
    )


def address(ctx: typer.Context) -> None:
    """Print the -k wallet's address (its public key).

    Example: ghost -k ~/wallets/buyer.json address
    """
    st = state(ctx)
    wallet = st.wallet_address()
    emit(st, {"address": str(wallet)}, lambda out: out.print(str(wallet)))


def balance(
    ctx: typer.Context, owner: str | None = typer.Argument(None, help="The wallet to look at (default: the -k wallet).")
) -> None:
    """SOL and every token account of a wallet (both token programs), tokens by label.

    Example: ghost balance   (or: ghost balance 7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU)
    """
    from decimal import Decimal

    st = state(ctx)
    wallet = params.pubkey(owner, "the wallet") if owner else st.wallet_address()
    lamports = st.jsonrpc("getBalance", str(wallet))["value"]
    tokens = []
    for program in TOKEN_PROGRAMS:
        found = st.jsonrpc("getTokenAccountsByOwner", str(wallet), {"programId": program}, {"encoding": "jsonParsed"})[
            "value"
        ]
        for keyed in found:
            info = keyed["account"]["data"]["parsed"]["info"]
            amount = info["tokenAmount"]
            tokens.append(
                {
                    "token": mint_symbol(st, info["mint"]),
                    "mint": info["mint"],
                    "account": keyed["pubkey"],
                    "amount": Decimal(amount["amount"]).scaleb(-amount["decimals"]),
                    "amount_atomic": int(amount["amount"]),
                    "decimals": amount["decimals"],
                    "state": info.get("state", "initialized"),
                }
            )
    tokens.sort(key=lambda t: (t["token"], t["account"]))
    sol = Decimal(lamports).scaleb(-9)
    data = {"address": str(wallet), "sol": sol, "lamports": lamports, "tokens": tokens}

    def render(out: Any) -> None:
        out.print(key_value_table([("address", str(wallet)), ("SOL", format_amount(sol, "SOL"))]))
        if tokens:
            out.print(
                table(
                    ["token", "amount", "mint", "account"],
                    [
                        (
                            t["token"],
                            format_amount(t["amount"]) + ("" if t["state"] == "initialized" else f" ({t['state']})"),
                            t["mint"],
                            t["account"],
                        )
                        for t in tokens
                    ],
                    title=f"{len(tokens)} token account(s)",
                )
            )
        else:
            out.print("no token accounts")

    emit(st, data, render)
