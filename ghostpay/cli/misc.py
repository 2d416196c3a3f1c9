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
         url: Optional[str] = typer.Option(None, "--url", "-u",
                                           help="RPC URL of a running localnet (default: start a throwaway one)."),
         json_output: bool = typer.Option(False, "--json", help="Print the result as JSON instead of a table.")
         ) -> None:
    """Register an agent priced for x402, pay it for one call and rate it, on a localnet.

    Starts a throwaway localnet (the real Solana runtime behind JSON-RPC) unless --url points at one.
    """
    import contextlib
    import json

    from rich.console import Console

    from ghostpay.demo import DemoError, run_demo, temporary_localnet

    err = Console(stderr=True, soft_wrap=True)
    try:
        with err.status("starting") as status, contextlib.ExitStack() as stack:
            rpc_url = url or stack.enter_context(temporary_localnet())
            result = run_demo(rpc_url, lambda step: status.update(step))
    except DemoError as exc:
        raise CliError(str(exc)) from None
    if json_output or state(ctx).json:
        print(json.dumps(result.to_json()))
        return
    from ghostpay.cli.output import console

    console.print(demo_table(result))


def demo_table(result: Any) -> Any:
    from ghostpay.reputation import ReputationInputs, reputation_score, tier

    st, score = result.state, reputation_score(ReputationInputs.from_account(result.metrics))
    rows = [("name", f"{st.name} ({st.agent_id})"), ("x402 price per call", f"{st.x402_price_per_call:,} atomic units"),
            ("accepted tokens", ", ".join(str(t) for t in st.x402_accepted_tokens)),
            ("endpoint", st.x402_service_endpoint), ("paid calls", str(st.x402_total_calls)),
            ("total paid", f"{st.x402_total_payments:,}"),
            ("reputation", f"{st.reputation_score:,} bps ({tier(st.reputation_score, True).value})"),
            ("components", f"success {score.payment_success:,} · quality {score.service_quality:,} · "
                           f"response {score.response_time:,} · volume {score.volume_consistency:,}")]
    return key_value_table(rows + list(result.signatures.items()), title=f"Agent {result.agent}")


def register(app: typer.Typer) -> None:
    app.command()(airdrop)
    app.command("test-mint")(test_mint)
    app.command()(demo)
