"""`ghost analytics`: the x402 metrics of the dashboard as rich tables (or `--output json`), read from the
indexer's database (`--db`, else the default index); mint decimals come from the RPC (`-u`)."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

import typer

from ghostpay.cli import params
from ghostpay.cli.context import CliError, state
from ghostpay.cli.output import emit, key_value_table, mint_symbol, short, table


def analytics(
    ctx: typer.Context,
    period: str = typer.Option("24h", "--period", "-p", help="How far back: 1h, 24h, 7d, 30d or seconds."),
    agent: str | None = typer.Option(
        None, "--agent", help="Only this agent's payments: an address, or the agent_id of one of yours."
    ),
    top: int = typer.Option(10, "--top", min=1, max=100, help="How many top earners to show."),
) -> None:
    """x402 payments over a period: counts, success rate, volume by token, top earners, active agents.

    Example: ghost --db index.db analytics --period 7d
    """
    from sqlmodel import Session

    from ghostpay.analytics.metrics import window_for, x402_metrics
    from ghostpay.analytics.mints import MintDecimals
    from ghostpay.cli.indexed import open_index
    from ghostpay.indexer.models import Agent

    st = state(ctx)
    seconds = params.duration(period, "--period")
    if not 60 <= seconds <= 366 * 86_400:
        raise typer.BadParameter("--period must be between 1 minute and 366 days")
    address = None
    if agent is not None:
        ref = params.agent_ref(agent)
        if isinstance(ref, str):  # an agent_id of the wallet's
            from ghostpay.pda import agent_address

            ref = agent_address(st.wallet_address(), ref)[0]
        address = str(ref)
    with Session(open_index(st, read_only=True)) as session:
        found = x402_metrics(session, window_for(session, seconds), address, top)
        if address is not None and not found.by_outcome and session.get(Agent, address) is None:
            raise CliError(f"no indexed agent {address}; check the address and --db")
    labels = st.labels_if_known()
    data = found.to_json(asyncio.run(MintDecimals(st.rpc_url).get(found.mints)), labels.by_mint if labels else None)
    emit(st, data, lambda out: _render(out, st, data))


def _render(out: Any, st: Any, m: dict[str, Any]) -> None:
    from datetime import datetime

    def when(t: int) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")

    p, perf = m["payments"], m["performance"]
    rate = lambda v: "-" if v is None else f"{v}%"  # noqa: E731
    out.print(
        key_value_table(
            [
                ("period", f"{when(m['period']['start'])} → {when(m['period']['end'])}"),
                ("agent", m["agent"] or "all"),
                (
                    "payments",
                    f"{p['total']:,} ({p['successful']:,} successful, {p['failed']:,} failed, "
                    f"{p['pending']:,} not rated yet)",
                ),
                ("success rate", f"{rate(perf['success_rate'])} of {perf['rated']:,} rated calls"),
                ("error rate", rate(perf["error_rate"])),
                ("active agents", str(m["agents"]["active"])),
                (
                    "avg response time",
                    "-" if perf["average_response_ms"] is None else f"{perf['average_response_ms']} ms",
                ),
            ],
            title="x402 payments",
        )
    )
    unit = lambda v, a: v if v is not None else f"{a} atomic"  # noqa: E731
    if m["volume"]["by_token"]:
        out.print(
            table(
                ["token", "mint", "payments", "volume", "average per call"],
                [
                    (
                        mint_symbol(st, t["mint"]),
                        t["mint"],
                        f"{t['payments']:,}",
                        unit(t["total"], t["total_atomic"]),
                        unit(t["average"], t["average_atomic"]),
                    )
                    for t in m["volume"]["by_token"]
                ],
                title="Volume by token",
            )
        )
    if m["agents"]["top_earners"]:
        out.print(
            table(
                ["agent", "name", "calls", "earnings"],
                [
                    (
                        e["agent"],
                        e["name"] or short(e["agent"]),
                        f"{e['calls']:,}",
                        f"{unit(e['earnings'], e['earnings_atomic'])} {mint_symbol(st, e['mint'])}",
                    )
                    for e in m["agents"]["top_earners"]
                ],
                title="Top earners",
            )
        )
