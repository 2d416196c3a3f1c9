"""Local-demo helpers: `ghost airdrop`, `ghost test-mint`, and `ghost demo` (the README's main job)."""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from ghostpay.cli import params
from ghostpay.cli.context import CliError, State, read_config, state, write_config
from ghostpay.cli.output import emit, explorer_url, format_amount, key_value_table

if TYPE_CHECKING:
    from solders.pubkey import Pubkey

LAMPORTS_PER_SOL = 1_000_000_000
CHEAT_HINT = " (test-mint needs a GhostPay localnet: its surfnet_* cheat codes; on devnet use spl-token)"


def wallet(st: State) -> "Pubkey":
    from ghostpay.keypairs import load_keypair

    path = st.keypair_path()
    if not path.exists():
        raise CliError(f"keypair file {path} not found; pass -k/--keypair FILE, or --to ADDRESS")
    try:
        return load_keypair(str(path)).pubkey()
    except ValueError as exc:
        raise CliError(str(exc)) from None


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


def airdrop(ctx: typer.Context,
            amount: str = typer.Argument("1", help="SOL to request."),
            to: Optional[str] = typer.Option(None, "--to", help="Recipient (default: your wallet).")) -> None:
    """Request SOL from the cluster's faucet (localnet, devnet)."""
    st = state(ctx)
    sol = params.amount(amount, "the amount")
    lamports = sol * LAMPORTS_PER_SOL
    if lamports != lamports.to_integral_value():
        raise typer.BadParameter("the amount has more than 9 decimals")
    recipient = params.pubkey(to, "recipient") if to else wallet(st)
    with st.spinner(f"Airdropping {sol} SOL…"):
        signature = st.jsonrpc("requestAirdrop", str(recipient), int(lamports))
        wait_confirmed(st, signature)
        balance = st.jsonrpc("getBalance", str(recipient))["value"]
    data = {"recipient": str(recipient), "amount_sol": sol, "lamports": int(lamports), "signature": signature,
            "balance_sol": Decimal(balance).scaleb(-9), "explorer": explorer_url("tx", signature, st.rpc_url)}
    emit(st, data, lambda out: out.print(key_value_table(
        [("recipient", str(recipient)), ("amount", f"{sol} SOL"), ("balance", f"{data['balance_sol']} SOL"),
         ("signature", signature), ("explorer", data["explorer"])], title="[green]✔[/green] airdrop")))


def test_mint(
    ctx: typer.Context,
    decimals: int = typer.Option(6, "--decimals", min=0, max=18, help="Decimals of a new mint."),
    symbol: Optional[str] = typer.Option(None, "--symbol", help="Label saved in the config's [tokens] table, "
                                                                 "usable wherever a token is expected "
                                                                 "(default for a new mint: USDC)."),
    mint: Optional[str] = typer.Option(None, "--mint", help="Fund this existing mint instead of creating one."),
    fund: Optional[List[str]] = typer.Option(None, "--fund", "-f", help="Wallets to fund (repeatable, "
                                                                        "comma-separated) (default: yours)."),
    amount: str = typer.Option("1000", "--amount", help="Token balance to give each wallet (whole tokens)."),
) -> None:
    """Create a USDC-like test mint on a localnet and set wallets' balances (cheat codes: no signatures)."""
    from ghostpay.tokens import to_atomic

    st = state(ctx)
    value = params.amount(amount, "--amount", allow_zero=True)
    wallets = [params.pubkey(w, "wallet") for item in (fund or []) for w in item.split(",") if w.strip()] \
        or [wallet(st)]
    if mint is None:
        spec: dict[str, Any] = {"decimals": decimals}
        path = st.keypair_path()
        if path.exists():
            spec["mintAuthority"] = str(wallet(st))
        mint_key = params.pubkey(st.jsonrpc("surfnet_createMint", spec, hint=CHEAT_HINT)["value"], "mint")
        created, symbol = True, symbol or "USDC"
    else:
        mint_key = params.token(st, mint)
        decimals = int(st.jsonrpc("getTokenSupply", str(mint_key))["value"]["decimals"])
        created = False
    atomic = to_atomic(value, decimals)
    progress = progress_bar(st, len(wallets))
    with progress:
        task = progress.add_task("Funding wallets", total=len(wallets))
        for owner in wallets:
            st.jsonrpc("surfnet_setTokenAccount", str(owner), str(mint_key), {"amount": atomic}, hint=CHEAT_HINT)
            progress.advance(task)
    if symbol:
        config = read_config()
        labels = dict(config.get("tokens", {}))
        labels.pop(str(mint_key), None)
        labels[str(mint_key)] = symbol
        config["tokens"] = labels
        write_config(config)
    data = {"mint": str(mint_key), "created": created, "decimals": decimals, "symbol": symbol,
            "funded": [str(w) for w in wallets], "amount": value, "amount_atomic": atomic,
            "explorer": explorer_url("address", mint_key, st.rpc_url)}
    label = symbol or ""
    emit(st, data, lambda out: out.print(key_value_table(
        [("mint", str(mint_key)), ("decimals", str(decimals)), ("symbol", label or "—"),
         ("explorer", data["explorer"])] + [("funded", f"{w}: {format_amount(value, label)}") for w in wallets],
        title=f"[green]✔[/green] test mint {'created' if created else 'funded'}")))


def progress_bar(st: State, total: int) -> Any:
    """A rich progress bar on stderr for long work (text mode on a terminal; silent otherwise)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    quiet = st.json or not sys.stderr.isatty() or total < 2
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True, quiet=quiet), transient=True)


def demo(ctx: typer.Context,
         url: Optional[str] = typer.Option(None, "--url", "-u", help="RPC URL of a running GhostPay localnet "
                                                                     "(default: start a throwaway one)."),
         json_output: bool = typer.Option(False, "--json", help="Same as ghost --output json demo."),
         dashboard: bool = typer.Option(False, "--dashboard", help="Then keep indexing and serve the dashboard "
                                                                   "on the session's index until Ctrl-C."),
         port: int = typer.Option(8080, "--port", min=0, max=65535, help="The dashboard's port (0: any free)."),
         ) -> None:
    """The main job, as a scripted session of ghost commands on a throwaway localnet.

    Two providers register with x402 pricing, a buyer finds them with 'agent search --x402-enabled',
    pays and rates calls, hires one through escrow to completion, and the indexer shows the payment
    history and the reputation table. The localnet (unless --url) is started and stopped here; the
    session's keypairs, config and index live in a temporary folder.

    Example: ghost demo --dashboard   (then open the printed URL; Ctrl-C ends it)
    """
    import json

    from ghostpay.cli.output import console
    from ghostpay.demo import DemoError, run_demo

    st = state(ctx)
    as_json = json_output or st.json
    if dashboard and as_json:
        raise typer.BadParameter("--dashboard keeps serving; it does not go with JSON output")

    def serve_dashboard(rpc_url: str, index_url: str) -> None:
        from ghostpay.cli.indexer import _config
        from ghostpay.cli.serve import DEFAULT_HOST, run_server

        console.print("\n[dim]# the dashboard over this session's index, following the chain live[/dim]")
        run_server(_config(rpc_url, None, index_url), DEFAULT_HOST, port, True, True, False)

    def show(note: str, command: str) -> None:
        console.print(f"\n[dim]# {note}[/dim]\n[bold green]$[/bold green] [bold]{command}[/bold]", highlight=False)

    if not as_json:
        console.print("[bold]GhostPay main job[/bold]: " + (f"on {url}" if url else
                      "starting a throwaway localnet (the Solana runtime behind JSON-RPC)…"))
    try:
        result = run_demo(url, as_json, show, serve_dashboard if dashboard else None)
    except DemoError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console.print(f"\n[green]✔[/green] main job done; {'stopped the throwaway localnet' if url is None else url}")
    if not dashboard:
        console.print("See it on the dashboard: [bold]ghost demo --dashboard[/bold] (or [bold]ghost --db INDEX "
                      "indexer serve[/bold] over your own index)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(airdrop)
    app.command("test-mint")(test_mint)
    app.command()(demo)
