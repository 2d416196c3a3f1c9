"""`ghost agent registration-file` and `ghost agent search --url`: ERC-8004 and A2A documents, ours and others'."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from ghostpay.cli import params
from ghostpay.cli.context import CliError, State, state
from ghostpay.cli.output import emit, key_value_table

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient
    from ghostpay.erc8004 import RegistrationFile


def registration_file(
    ctx: typer.Context,
    agent: str = typer.Argument(..., help="Address, or the agent_id of yours."),
    mcp: str | None = typer.Option(
        None, "--mcp", help="The agent's MCP endpoint (https://…), listed as its MCP service."
    ),
    image: str = typer.Option("", "--image", help="An image URL for the agent (shown by ERC-721 apps)."),
) -> None:
    """Print the agent's ERC-8004 registration file (registration-v1 JSON) from its account.

    Its services: the A2A Agent Card at the endpoint's origin (/.well-known/agent-card.json), the MCP
    endpoint with --mcp, and the endpoint itself (web); x402Support is whether it takes x402 payments;
    registrations names it by its address in solana:<genesis hash, 32 characters>:<program id>. `ghost x402
    proxy` serves the same file at /.well-known/agent-registration.json.

    Example: ghost agent registration-file translator > registration.json
    """
    st = state(ctx)
    ref = params.agent_ref(agent)
    if mcp is not None:
        params.endpoint(mcp)

    async def work(gp: GhostPayClient) -> RegistrationFile:
        from ghostpay.erc8004 import registration_of

        return await registration_of(gp, ref, image=image, mcp=mcp)

    document = st.run(work, signer=isinstance(ref, str)).to_json()
    print(json.dumps(document, indent=2))


def search_url(st: State, url: str, allow_private: bool) -> None:
    """`ghost agent search --url URL`: the foreign agent's registration file and Agent Card, summarized."""
    import asyncio

    from ghostpay.foreign_agents import ForeignAgentError, read_foreign_agent

    try:
        with st.spinner(f"Reading {url}…"):
            found = asyncio.run(read_foreign_agent(url, allow_private=allow_private))
    except ForeignAgentError as exc:
        raise CliError(str(exc)) from None
    summary = found.summary()
    emit(st, summary, lambda out: out.print(key_value_table(summary_rows(summary), title=f"Agent {summary['name']}")))


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, object]]:
    offers, accepts = summary["offers"], summary["accepts"]
    rows: list[tuple[str, object]] = [
        ("Description", summary["description"] or ""),
        ("Registration file", summary["registration_url"] or "none"),
        ("Agent Card", summary["card_url"] or "none"),
        ("Services", [f"{s['name']} {s['endpoint']}" for s in offers["services"]]),
        ("Skills", [s["name"] or s["id"] for s in offers["skills"]]),
        ("Interfaces", [f"{i.get('protocolBinding') or '?'} {i['url']}" for i in offers["interfaces"]]),
        ("x402 payments", "yes" if accepts["x402"] else "no"),
        ("Payment extensions", [e.get("uri", "") for e in accepts["payment_extensions"]]),
        ("Input modes", accepts["input_modes"]),
        ("Registrations", [f"{r['agentId']} in {r['agentRegistry']}" for r in summary["registrations"]]),
        ("Trust", summary["supported_trust"]),
    ]
    rows += [("Not read", p) for p in summary["problems"]]
    return rows


def metadata_uri_for(given: str, endpoint: str | None) -> str:
    """`register --registration-file`: the registration file's URL at the endpoint's origin."""
    if given:
        raise typer.BadParameter("--registration-file sets the metadata URI: give it or --metadata-uri, not both")
    if endpoint is None:
        raise typer.BadParameter("--registration-file needs --endpoint: the file is served at its origin")
    from ghostpay.erc8004 import registration_url

    return registration_url(endpoint)
