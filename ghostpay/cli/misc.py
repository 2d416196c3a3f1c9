"""Local-demo helpers: `ghost airdrop`, `ghost test-mint`, and `ghost demo` (the README's main job)."""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import typer

from ghostpay.cli import params
from ghostpay.cli.context import CliError, State, state
from ghostpay.cli.output import emit, explorer_url, format_amount, key_value_table

if TYPE_CHECKING:
    from solders.pubkey import Pubkey

LAMPORTS_PER_SOL = 1_000_000_000
CHEAT_HINT = " (test-mint needs a GhostPay localnet: its surfnet_* cheat codes; on devnet use spl-token)"


def wait_confirmed(st: State, signature: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = st.jsonrpc("getSignatureStatuses", [signature])["value"][0]
        if status is not None:
            if status.get("err") is not None:
                raise CliError(f"the airdrop failed: {status['err']}")
            return
        time.sleep(0.05)
    raise CliError(f"the airdrop {signature} was not confirmed in {timeout:.0f}s; check it later")


def airdrop(
    ctx: typer.Context,
    amount: str = typer.Argument("1", help="SOL to request."),
    to: str | None = typer.Option(None, "--to", help="Recipient (default: your wallet)."),
) -> None:
    """Request SOL from the cluster's faucet (localnet, devnet).

    Example: ghost airdrop 2 --to 7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU
    """
    st = state(ctx)
    sol = params.amount(amount, "the amount")
    lamports = sol * LAMPORTS_PER_SOL
    if lamports != lamports.to_integral_value():
        raise typer.BadParameter("the amount has more than 9 decimals")
    recipient = params.pubkey(to, "recipient") if to else st.wallet_address(", or --to ADDRESS")
    with st.spinner(f"Airdropping {sol} SOL…"):
        signature = st.jsonrpc("requestAirdrop", str(recipient), int(lamports))
        wait_confirmed(st, signature)
        balance = st.jsonrpc("getBalance", str(recipient))["value"]
    data = {
        "recipient": str(recipient),
        "amount_sol": sol,
        "lamports": int(lamports),
        "signature": signature,
        "balance_sol": Decimal(balance).scaleb(-9),
        "explorer": explorer_url("tx", signature, st.rpc_url),
    }
    emit(
        st,
        data,
        lambda out: out.print(
            key_value_table(
                [
                    ("recipient", str(recipient)),
                    ("amount", f"{sol} SOL"),
                    ("balance", f"{data['balance_sol']} SOL"),
                    ("signature", signature),
                    ("explorer", data["explorer"]),
                ],
                title="[green]✔[/green] airdrop",
            )
        ),
    )


def test_mint(
    ctx: typer.Context,
    decimals: int = typer.Option(6, "--decimals", min=0, max=18, help="Decimals of a new mint."),
    symbol: str | None = typer.Option(
        None,
        "--symbol",
        help="A token label for the mint on this localnet "
        "only, usable wherever a token is expected "
        "(default for a new mint: USDC).",
    ),
    mint: str | None = typer.Option(None, "--mint", help="Fund this existing mint instead of creating one."),
    fund: list[str] | None = typer.Option(
        None, "--fund", "-f", help="Wallets to fund (repeatable, comma-separated) (default: yours)."
    ),
    amount: str = typer.Option("1000", "--amount", help="Tokens to add to each wallet's balance (whole tokens)."),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Move a --symbol label already given to another mint without asking."
    ),
) -> None:
    """Create a USDC-like test mint on a localnet and add to wallets' balances (cheat codes: no signatures).
    Its --symbol labels it on this localnet only: on another cluster the label means that cluster's mint
    (USDC on mainnet-beta is real USDC), or nothing.

    Example: ghost test-mint --symbol USDC --fund WALLET1,WALLET2 --amount 100
    """
    from ghostpay.cli.tokens import check_label_free, label_arg, label_mint
    from ghostpay.tokens import to_atomic

    st = state(ctx)
    value = params.amount(amount, "--amount", allow_zero=True)
    wallets = [params.pubkey(w, "wallet") for item in (fund or []) for w in item.split(",") if w.strip()] or [
        st.wallet_address(", or --fund ADDRESS")
    ]
    if mint is None:
        symbol = label_arg(symbol or "USDC")
        check_label_free(st, st.labels(), symbol, "", yes)
    elif symbol is not None:
        symbol = label_arg(symbol)
    if mint is None:
        spec: dict[str, Any] = {"decimals": decimals}
        path = st.keypair_path()
        if path.exists():
            spec["mintAuthority"] = str(st.wallet_address())
        mint_key = params.pubkey(st.jsonrpc("surfnet_createMint", spec, hint=CHEAT_HINT)["value"], "mint")
        created = True
    else:
        mint_key = params.token(st, mint, "--mint")
        decimals = int(st.jsonrpc("getTokenSupply", str(mint_key))["value"]["decimals"])
        created = False
        if symbol:
            check_label_free(st, st.labels(), symbol, str(mint_key), yes)
    atomic = to_atomic(value, decimals)
    progress = progress_bar(st, len(wallets))
    with progress:
        task = progress.add_task("Funding wallets", total=len(wallets))
        for owner in wallets:  # adds to what the wallet holds (the cheat code sets a balance)
            held = token_balance(st, owner, mint_key)
            st.jsonrpc("surfnet_setTokenAccount", str(owner), str(mint_key), {"amount": held + atomic}, hint=CHEAT_HINT)
            progress.advance(task)
    if symbol:  # one mint per label, one label per mint, on this localnet only
        label_mint(st, symbol, str(mint_key), test_mint=True)
    data = {
        "mint": str(mint_key),
        "created": created,
        "decimals": decimals,
        "symbol": symbol,
        "funded": [str(w) for w in wallets],
        "amount": value,
        "amount_atomic": atomic,
        "explorer": explorer_url("address", mint_key, st.rpc_url),
    }
    label = symbol or ""
    emit(
        st,
        data,
        lambda out: out.print(
            key_value_table(
                [
                    ("mint", str(mint_key)),
                    ("decimals", str(decimals)),
                    ("symbol", label or "—"),
                    ("explorer", data["explorer"]),
                ]
                + [("funded", f"{w}: {format_amount(value, label)}") for w in wallets],
                title=f"[green]✔[/green] test mint {'created' if created else 'funded'}",
            )
        ),
    )


def token_balance(st: State, owner: Pubkey, mint: Pubkey) -> int:
    """Atomic units `owner` holds of `mint` in its token accounts (0 without one)."""
    found = st.jsonrpc("getTokenAccountsByOwner", str(owner), {"mint": str(mint)}, {"encoding": "jsonParsed"})
    return sum(int(a["account"]["data"]["parsed"]["info"]["tokenAmount"]["amount"]) for a in found["value"])


def progress_bar(st: State, total: int) -> Any:
    """A rich progress bar on stderr for long work (text mode on a terminal; silent otherwise)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    quiet = st.json or not sys.stderr.isatty() or total < 2
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True, quiet=quiet),
        transient=True,
    )


def demo(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Same as ghost --output json demo."),
    dashboard: bool = typer.Option(
        False, "--dashboard", help="Then keep indexing and serve the dashboard on the session's index until Ctrl-C."
    ),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="The dashboard's port (0: any free)."),
) -> None:
    """The main job, as a scripted session of ghost commands on a throwaway localnet.

    Two providers register with x402 pricing, a buyer finds them with 'agent search --x402-enabled',
    pays and rates calls, hires one through escrow to completion, and the indexer shows the payment
    history and the reputation table. Without -u (or GHOST_URL) the localnet is started and stopped
    here; the session's keypairs, config and index live in a temporary folder. Ctrl-C stops it cleanly.

    Example: ghost demo --dashboard   (then open the printed URL; Ctrl-C ends it), or
    ghost -u http://127.0.0.1:8899 demo   (on a localnet started with 'ghost localnet start --detach')
    """
    import json

    from ghostpay.cli.demo import DemoError, run_demo
    from ghostpay.cli.output import console

    st = state(ctx)
    as_json = json_output or st.json
    url = st.rpc_url if st.settings.sources.get("url") in ("option", "env") else None
    if dashboard and as_json:
        raise typer.BadParameter("--dashboard keeps serving; it does not go with JSON output")
    if dashboard:  # bound before the session: a busy port is said at once, not after the whole session
        from ghostpay.cli.serve import DEFAULT_HOST, bind_or_fail

        dashboard_socket = bind_or_fail(DEFAULT_HOST, port)

    def serve_dashboard(rpc_url: str, index_url: str) -> None:
        from ghostpay.cli.indexing import indexer_config
        from ghostpay.cli.serve import DEFAULT_HOST, run_server

        console.print("\n[dim]# the dashboard over this session's index, following the chain live[/dim]")
        run_server(indexer_config(rpc_url, None, index_url), DEFAULT_HOST, port, True, True, False, dashboard_socket)

    def show(note: str, command: str) -> None:
        console.print(f"\n[dim]# {note}[/dim]\n[bold green]$[/bold green] [bold]{command}[/bold]", highlight=False)

    if not as_json:
        console.print(
            "[bold]GhostPay main job[/bold]: "
            + (f"on {url}" if url else "starting a throwaway localnet (the Solana runtime behind JSON-RPC)…")
        )
    try:
        result = run_demo(ctx.find_root().command, url, as_json, show, serve_dashboard if dashboard else None)
    except DemoError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        raise CliError(
            "interrupted; the demo stopped" + ("" if url else " and its throwaway localnet with it"), 130
        ) from None
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console.print(f"\n[green]✔[/green] main job done; {'stopped the throwaway localnet' if url is None else url}")
    if not dashboard:
        console.print(
            "See it on the dashboard: [bold]ghost demo --dashboard[/bold] (or [bold]ghost --db INDEX "
            "indexer serve[/bold] over your own index)",
            highlight=False,
        )


def confirm(
    ctx: typer.Context, signature: str = typer.Argument(..., help="The transaction signature (base58).")
) -> None:
    """Did a transaction land? Its status, slot and error, like 'solana confirm' (exit 1 if it failed or the
    node does not know it).

    Example: ghost confirm 5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW
    """
    from solders.signature import Signature

    st = state(ctx)
    try:
        sig = Signature.from_string(signature.strip())
    except ValueError:
        raise typer.BadParameter(f"{signature!r} is not a transaction signature (base58, 64 bytes)") from None
    found = st.run(lambda gp: gp.get_signature_status(sig), signer=False)
    explorer = explorer_url("tx", sig, st.rpc_url)
    if found is None:
        emit(
            st,
            {"signature": str(sig), "found": False},
            lambda out: out.print(f"not found: {sig} has not landed (or the node no longer keeps it)"),
        )
        raise typer.Exit(1)
    level = str(found.confirmation_status).rsplit(".", 1)[-1].lower() if found.confirmation_status else "finalized"
    data = {
        "signature": str(sig),
        "found": True,
        "slot": found.slot,
        "confirmation": level,
        "succeeded": found.err is None,
        "error": None if found.err is None else str(found.err),
        "explorer": explorer,
    }
    emit(
        st,
        data,
        lambda out: out.print(
            key_value_table(
                [
                    ("signature", str(sig)),
                    ("slot", f"{found.slot:,}"),
                    ("confirmation", level),
                    ("result", "succeeded" if found.err is None else f"failed: {found.err}"),
                    ("explorer", explorer),
                ],
                title="[green]✔[/green] landed" if found.err is None else "[red]✘[/red] landed, failed",
            )
        ),
    )
    if found.err is not None:
        raise typer.Exit(1)
