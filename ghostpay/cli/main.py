"""`ghost`: register, price, pay and hire AI agents on Solana."""

from __future__ import annotations

import contextlib
import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ghostpay import __version__
from ghostpay.cli.indexer import app as indexer_app
from ghostpay.cli.localnet import app as localnet_app
from ghostpay.demo import DemoError, DemoResult, run_demo, temporary_localnet
from ghostpay.paths import data_dir
from ghostpay.reputation import ReputationInputs, reputation_score, tier

app = typer.Typer(
    help="GhostPay: register, price, pay and hire AI agents on Solana.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(localnet_app, name="localnet")
app.add_typer(indexer_app, name="indexer")
console = Console()


@app.command()
def version() -> None:
    """Print the GhostPay version."""
    console.print(f"ghostpay {__version__}")


@app.command()
def path() -> None:
    """Print the folder where GhostPay keeps local state (set GHOSTPAY_HOME to move it)."""
    console.print(str(data_dir()))


def demo_table(result: DemoResult) -> Table:
    state = result.state
    score = reputation_score(ReputationInputs.from_account(result.metrics))
    table = Table(title=f"Agent {result.agent}", show_header=False)
    table.add_column("field", style="bold cyan")
    table.add_column("value")
    rows = [
        ("name", f"{state.name} ({state.agent_id})"),
        ("x402 price per call", f"{state.x402_price_per_call:,} atomic units"),
        ("accepted tokens", ", ".join(str(t) for t in state.x402_accepted_tokens)),
        ("endpoint", state.x402_service_endpoint),
        ("paid calls", str(state.x402_total_calls)),
        ("total paid", f"{state.x402_total_payments:,}"),
        ("reputation", f"{state.reputation_score:,} bps ({tier(state.reputation_score, True).value})"),
        ("components", f"success {score.payment_success:,} · quality {score.service_quality:,} · "
                       f"response {score.response_time:,} · volume {score.volume_consistency:,}"),
    ]
    rows += [(name, signature) for name, signature in result.signatures.items()]
    for name, value in rows:
        table.add_row(name, value)
    return table


@app.command()
def demo(
    url: Optional[str] = typer.Option(None, "--url", "-u",
                                      help="RPC URL of a running localnet [default: start a throwaway one]."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON instead of a table."),
) -> None:
    """Register an agent priced for x402, pay it for one call and rate it, on a localnet.

    Starts a throwaway localnet (the real Solana runtime behind JSON-RPC) unless
    --url points at one, then: register_agent with its price in one transaction,
    one x402 payment (TransferChecked + record_x402_payment, fees paid by a
    facilitator), submit_feedback, and prints the agent with its reputation.
    """
    err = Console(stderr=True, soft_wrap=True)
    try:
        with err.status("starting") as status, contextlib.ExitStack() as stack:
            rpc_url = url or stack.enter_context(temporary_localnet())
            result = run_demo(rpc_url, lambda step: status.update(step))
    except DemoError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if json_output:
        print(json.dumps(result.to_json()))
        return
    console.print(demo_table(result))


if __name__ == "__main__":
    app()
