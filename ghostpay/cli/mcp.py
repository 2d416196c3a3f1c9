"""`ghost mcp`: serve GhostPay's tools to an LLM agent over the Model Context Protocol (stdio or HTTP)."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from ghostpay.cli import params
from ghostpay.cli.context import CliError, describe, state

BUDGET_HELP = "whole tokens of each mint paid with, e.g. 5"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


TOKEN_ENV = "GHOST_MCP_TOKEN"


def _amount(value: str | None, flag: str) -> Decimal | None:
    return None if value is None else params.amount(value, flag, allow_zero=True)


def serve(
    ctx: typer.Context,
    transport: str = typer.Option(
        "stdio",
        "--transport",
        "-t",
        help="stdio (the client starts the server) or http (Streamable HTTP at http://HOST:PORT/mcp).",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (http)."),
    port: int = typer.Option(8765, help="Port to listen on (http)."),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="http: require 'Authorization: Bearer "
        "TOKEN' on every request, TOKEN being this file's first line (or "
        "$GHOST_MCP_TOKEN; never on the command line, where `ps` shows it). "
        "Needed to listen beyond this machine.",
    ),
    budget_hourly: str | None = typer.Option(
        None, "--budget-hourly", help=f"Spend at most this per rolling hour ({BUDGET_HELP})."
    ),
    budget_daily: str | None = typer.Option(
        None, "--budget-daily", help=f"Spend at most this per rolling day ({BUDGET_HELP})."
    ),
    budget_total: str | None = typer.Option(None, "--budget-total", help=f"Spend at most this in all ({BUDGET_HELP})."),
    max_per_call: str | None = typer.Option(None, "--max-per-call", help="The most one payment may cost."),
    calls_per_minute: int | None = typer.Option(
        None, "--calls-per-minute", min=1, help="Paid calls per minute, at most."
    ),
    allow_mint: list[str] | None = typer.Option(
        None, "--allow-mint", help="Pay only with this mint (address or label; repeat it)."
    ),
    allow_seller: list[str] | None = typer.Option(
        None, "--allow-seller", help="Pay only this wallet or agent (repeat it)."
    ),
    block_seller: list[str] | None = typer.Option(
        None, "--block-seller", help="Never pay this wallet or agent (repeat it)."
    ),
    tool_server: list[str] | None = typer.Option(
        None,
        "--tool-server",
        help="NAME=COMMAND: an MCP server over stdio that call_paid_tool may start by NAME (repeat it), e.g. "
        "weather='python examples/paid_mcp_tool.py AGENT'. A URL needs none.",
    ),
    indexer_url: str | None = typer.Option(
        None,
        "--indexer-url",
        help="A 'ghost indexer serve' API: search_agents and get_agent add each agent's evidence in trusted "
        "mints and trust score.",
    ),
) -> None:
    """Serve GhostPay to an LLM agent over MCP: find, pay, rate and hire agents with the -k wallet on -u.

    Tools: search_agents, get_agent, get_reputation, quote_url, call_paid_api, call_paid_tool, pay_agent,
    get_receipt, submit_feedback, create_work_order, get_work_order, release_payment, open_dispute, get_balance,
    get_spending. Every payment passes the spending guards: the flags here over the config file's
    x402.* settings ('ghost x402 spending'). A budget is mandatory: the server refuses to start
    without one. Budgets are shared with every ghost command of the wallet (the spend ledger), on every host
    with the same x402.ledger (or GHOST_X402_LEDGER) postgresql:// URL.

    Example:  ghost -u localnet -k agent.json mcp --budget-daily 5 --max-per-call 0.1
    """
    mode = params.choice(transport, ("stdio", "http"), "--transport")
    token = params.bearer_token(token_file, TOKEN_ENV)
    if mode == "http" and token is None and host not in LOOPBACK:
        raise CliError(
            f"listening on {host} lets anyone who reaches it spend the budget: set GHOST_MCP_TOKEN or "
            "pass --token-file FILE (clients send 'Authorization: Bearer TOKEN'), or listen on "
            "127.0.0.1",
            2,
        )
    st = state(ctx)
    from ghostpay.cli.guards import ledger_location, spending_guards

    # no terminal to confirm on (stdio carries the protocol): a payment over x402.confirm_above is declined
    guards = dataclasses.replace(spending_guards(st), confirm=None)
    flags: dict[str, Any] = {
        "hourly": _amount(budget_hourly, "--budget-hourly"),
        "daily": _amount(budget_daily, "--budget-daily"),
        "total": _amount(budget_total, "--budget-total"),
        "per_call": _amount(max_per_call, "--max-per-call"),
        "calls_per_minute": calls_per_minute,
        "allowed_mints": frozenset(str(params.token(st, m, "--allow-mint")) for m in allow_mint)
        if allow_mint
        else None,
        "allowed_sellers": frozenset(s.strip() for s in allow_seller) if allow_seller else None,
    }
    guards = dataclasses.replace(guards, **{k: v for k, v in flags.items() if v is not None})
    if block_seller:
        guards = dataclasses.replace(
            guards, blocked_sellers=frozenset(guards.blocked_sellers) | {s.strip() for s in block_seller}
        )
    from ghostpay.spending import has_budget

    if not has_budget(guards):
        raise CliError(
            "ghost mcp needs a spending budget: pass --budget-daily AMOUNT (or --budget-hourly, "
            "--budget-total), or set one with 'ghost config set x402.daily_budget 5'",
            2,
        )
    if guards.named_tokens():  # a token label this cluster does not have refuses the start, not each payment
        from ghostpay.cli.guards import resolve_labels

        resolve_labels(st, guards)
    path = st.keypair_path()
    if not path.exists():
        raise CliError(f"keypair file {path} not found; the MCP server pays with it (-k/--keypair FILE)")

    from ghostpay.keypairs import load_keypair
    from ghostpay.mcp.server import create_mcp_server, http_app
    from ghostpay.mcp.service import McpSettings, guard_limits

    keypair = load_keypair(path)
    settings = McpSettings(
        guards,
        st.settings.url,
        keypair,
        st.settings.commitment,
        st.settings.program_id,
        ledger=ledger_location(st),
        error_text=lambda exc: (describe(exc, st.rpc_url) or (None,))[0],
        tool_servers=_tool_servers(tool_server or []),
        indexer_url=indexer_url,
    )
    server = create_mcp_server(settings)
    limits = ", ".join(f"{k} {v}" for k, v in guard_limits(guards).items())
    if mode == "stdio":  # stdout carries the protocol: say hello on stderr
        print(
            f"GhostPay MCP server on stdio for wallet {keypair.pubkey()} on {st.rpc_url} ({limits})",
            file=sys.stderr,
            flush=True,
        )
        server.run("stdio")
        return
    _serve_http(
        http_app(server, host, token),
        st.json,
        host,
        port,
        {
            "wallet": str(keypair.pubkey()),
            "rpcUrl": st.rpc_url,
            "limits": guard_limits(guards),
            "token": token is not None,
        },
    )


def _tool_servers(given: list[str]) -> dict[str, list[str]]:
    """--tool-server NAME=COMMAND values: name -> the command split as a shell would."""
    servers = {}
    for value in given:
        name, _, command = value.partition("=")
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise CliError(f"--tool-server {value!r}: {exc}", 2) from None
        if not name.strip() or not argv:
            raise CliError(f"--tool-server takes NAME=COMMAND, not {value!r}", 2)
        servers[name.strip()] = argv
    return servers


def _serve_http(app: Any, as_json: bool, host: str, port: int, about: dict[str, Any]) -> None:
    from ghostpay.cli.serving import serve_app

    url = f"http://{host}:{port}/mcp"

    def say_listening() -> None:
        if as_json:
            print(json.dumps({"running": True, "url": url, **about}), flush=True)
        else:
            print(
                f"GhostPay MCP server on {url} for wallet {about['wallet']} on {about['rpcUrl']}; Ctrl-C stops it",
                flush=True,
            )

    serve_app(app, host, port, say_listening, "the MCP server")
