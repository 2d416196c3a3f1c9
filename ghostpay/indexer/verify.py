"""`ghost indexer verify`: the indexed agents and reputation against the chain, field by field.

The indexer rebuilds every counter from events and recomputes every score itself, so an equal
result is an independent check of the program's bookkeeping (and of the indexer's).
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import based58
from solders.pubkey import Pubkey
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ghostpay.accounts import Agent as AgentAccount, ReputationMetrics
from ghostpay.earnings import earnings_by_mint
from ghostpay.indexer.models import Agent, AgentEarning, Reputation
from ghostpay.indexer.process import metrics_inputs
from ghostpay.indexer.queries import agent_capabilities, agent_prices
from ghostpay.indexer.source import RpcSource, decode_agent_account
from ghostpay.pda import reputation_address
from ghostpay.reputation import reputation_score

# indexed column → Agent account field, compared as they are
AGENT_FIELDS = {
    "owner": "owner",
    "agent_id": "agent_id",
    "name": "name",
    "agent_type": "agent_type",
    "description": "description",
    "metadata_uri": "metadata_uri",
    "is_active": "is_active",
    "x402_enabled": "x402_enabled",
    "registration": "registration",
    "payment_address": "x402_payment_address",
    "endpoint": "x402_service_endpoint",
    "reputation_score": "reputation_score",
    "total_jobs_completed": "total_jobs_completed",
    "x402_total_calls": "x402_total_calls",
    "last_payment_at": "last_payment_at",
    "open_work_orders": "open_work_orders",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
METRIC_FIELDS = (
    "successful_payments",
    "failed_payments",
    "total_response_time_ms",
    "response_time_count",
    "total_rating",
    "rating_count",
    "total_disputes",
    "disputes_resolved",
    "history_day",
)


@dataclass(frozen=True)
class Difference:
    agent: str
    field: str
    indexed: Any
    chain: Any


@dataclass
class VerifyReport:
    agents: int = 0  # compared
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {"agents": self.agents, "ok": self.ok, "differences": [asdict(d) for d in self.differences]}


def _plain(value: Any) -> Any:
    """Pubkeys as base58, lists and dicts element-wise, the rest as it is."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (bool, int, str, type(None))) else str(value)


async def chain_agents(rpc: RpcSource) -> dict[str, AgentAccount]:
    """Every Agent account of the program (getProgramAccounts on the discriminator)."""
    found = await rpc.call(
        "getProgramAccounts",
        str(rpc.program_id),
        {
            "encoding": "base64",
            "commitment": rpc.commitment,
            "filters": [{"memcmp": {"offset": 0, "bytes": based58.b58encode(AgentAccount.discriminator).decode()}}],
        },
    )
    out: dict[str, AgentAccount] = {}
    for keyed in found:
        account = keyed["account"]
        decoded = decode_agent_account((account["owner"], base64.b64decode(account["data"][0])), rpc.program_id)
        if decoded is not None:
            out[keyed["pubkey"]] = decoded
    return out


async def verify(engine: Engine, rpc: RpcSource) -> VerifyReport:
    """Every indexed agent and its reputation against the accounts on chain, and chain agents not indexed."""
    report = VerifyReport()
    on_chain = await chain_agents(rpc)
    with Session(engine) as session:
        indexed = {a.address: a for a in session.exec(select(Agent)).all()}
        reputations = {r.agent: r for r in session.exec(select(Reputation)).all()}
        prices = {a: agent_prices(session, a) for a in indexed}
        capabilities = {a: agent_capabilities(session, a) for a in indexed}
        earnings: dict[str, dict[str, list[int]]] = {}
        for e in session.exec(select(AgentEarning)).all():
            if e.agent in indexed and e.registration == indexed[e.agent].registration:
                earnings.setdefault(e.agent, {})[e.mint] = [e.x402_payments, e.escrow_earnings]
    for address in sorted(set(on_chain) - {a for a, row in indexed.items() if not row.closed}):
        report.differences.append(Difference(address, "agent", "closed" if address in indexed else None, "exists"))
    live = sorted(a for a, row in indexed.items() if not row.closed)
    metric_addresses = {a: str(reputation_address(Pubkey.from_string(a), rpc.program_id)[0]) for a in live}
    metric_accounts = await rpc.accounts(list(metric_addresses.values()))
    for address in live:
        account = on_chain.get(address)
        if account is None:
            report.differences.append(Difference(address, "agent", "exists", None))
            continue
        report.agents += 1
        row = indexed[address]
        for column, name in AGENT_FIELDS.items():
            _compare(report, address, column, getattr(row, column), getattr(account, name))
        _compare(
            report,
            address,
            "accepted_tokens",
            [[m, p] for m, p in prices[address].items()],
            [[t.mint, t.price] for t in account.x402_accepted_tokens],
        )
        _compare(report, address, "capabilities", capabilities[address], sorted(set(account.capabilities)))
        # a slot a refunded work order reserved holds zeros; the index has no row for it
        _compare(
            report,
            address,
            "earnings",
            {m: v for m, v in earnings.get(address, {}).items() if any(v)},
            {
                m: [s.x402_payments, s.escrow_earnings]
                for m, s in earnings_by_mint(account).items()
                if s.x402_payments or s.escrow_earnings
            },
        )
        raw = metric_accounts.get(metric_addresses[address])
        _compare_metrics(report, address, reputations.get(address), raw, account.reputation_score)
    return report


def _compare(report: VerifyReport, agent: str, name: str, indexed: Any, chain: Any) -> None:
    indexed, chain = _plain(indexed), _plain(chain)
    if indexed != chain:
        report.differences.append(Difference(agent, name, indexed, chain))


def _compare_metrics(
    report: VerifyReport, agent: str, rep: Reputation | None, raw: tuple[str, bytes] | None, chain_score: int
) -> None:
    if raw is None or rep is None:
        report.differences.append(Difference(agent, "reputation", rep is not None, raw is not None))
        return
    metrics = ReputationMetrics.decode(raw[1])
    for name in METRIC_FIELDS:
        _compare(report, agent, f"reputation.{name}", getattr(rep, name), getattr(metrics, name))
    _compare(report, agent, "reputation.payment_history_7d", json.loads(rep.history), list(metrics.payment_history_7d))
    # the score recomputed from our own counters must equal the one the program stored
    recomputed = reputation_score(metrics_inputs(rep))
    _compare(report, agent, "reputation.score", recomputed.score, chain_score)
    _compare(
        report,
        agent,
        "reputation.components",
        [rep.payment_success, rep.service_quality, rep.response_time, rep.volume_consistency],
        [
            recomputed.payment_success,
            recomputed.service_quality,
            recomputed.response_time,
            recomputed.volume_consistency,
        ],
    )
