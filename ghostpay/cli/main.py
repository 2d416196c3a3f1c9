"""`ghost`: register, price, pay and hire AI agents on Solana."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from ghostpay import __version__
from ghostpay.accounts import Agent
from ghostpay.agent_instructions import AgentProfile, build_register_agent
from ghostpay.cli.localnet import app as localnet_app
from ghostpay.pda import agent_address
from ghostpay.paths import data_dir
from ghostpay.svm import InProcessChain
from ghostpay.types import X402Config

app = typer.Typer(
    help="GhostPay: register, price, pay and hire AI agents on Solana.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(localnet_app, name="localnet")
console = Console()


@app.command()
def version() -> None:
    """Print the GhostPay version."""
    console.print(f"ghostpay {__version__}")


@app.command()
def path() -> None:
    """Print the folder where GhostPay keeps local state (set GHOSTPAY_HOME to move it)."""
    console.print(str(data_dir()))


def agent_table(address: str, agent: Agent) -> Table:
    table = Table(title=f"Agent {address}", show_header=False)
    table.add_column("field", style="bold cyan")
    table.add_column("value")
    for name, value in agent.to_json().items():
        table.add_row(name, json.dumps(value) if isinstance(value, list) else str(value))
    return table


@app.command()
def demo(
    json_output: bool = typer.Option(False, "--json", help="Print the agent as JSON instead of a table."),
) -> None:
    """Register an agent priced for x402 on a local in-process chain and print it.

    Runs the real program in LiteSVM: creates a test USDC-like mint, registers
    an agent with its x402 price in one transaction, and reads the account back.
    """
    chain = InProcessChain()
    owner = chain.funded_keypair()
    usdc = chain.create_mint(decimals=6)
    profile = AgentProfile(
        agent_id="translator",
        name="Translator",
        agent_type=1,
        description="Translates text between English and French",
        metadata_uri="https://agents.example.com/translator.json",
        capabilities=["translate", "summarize"],
    )
    x402 = X402Config(
        payment_address=owner.pubkey(),
        price_per_call=10_000,  # 0.01 of a 6-decimal token
        accepted_tokens=[usdc],
        service_endpoint="https://agents.example.com/translate",
    )
    result = chain.send([build_register_agent(owner.pubkey(), profile, x402)], [owner])
    if not result.ok:
        console.print(f"[red]error:[/red] register_agent failed: {result.error}")
        raise typer.Exit(1)
    address, _ = agent_address(owner.pubkey(), profile.agent_id)
    agent = Agent.decode(chain.account(address).data)
    if json_output:
        print(json.dumps({"address": str(address), "compute_units": result.compute_units, "agent": agent.to_json()}))
        return
    console.print(agent_table(str(address), agent))
    event = result.event("AgentRegistered")
    console.print(
        f"register_agent with x402 pricing: [bold]{result.compute_units:,}[/bold] compute units; "
        f"event AgentRegistered(agent_id={event.agent_id!r}, price={event.x402_price_per_call})"
    )


if __name__ == "__main__":
    app()
