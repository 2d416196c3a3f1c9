"""An agent's evidence from the payment graph (`payment_edges`): verified paid calls, volume and distinct payers per
mint, the same over the trusted mints only, and the same for escrow releases; and the search filters on it.

Plain SQL with named parameters (`:name`), so the CLI's sqlite3 read path (`sqlite_read`) and SQLAlchemy
(`text()`, SQLite and PostgreSQL) run the same statements: `run(sql, params)` is either's executor, returning rows
as tuples. Standard library only.

A recorded payment is verified: the program records it only in the instruction after the transfer that moved
the tokens, in a mint the agent accepts. What it does not say is whether the payer is anyone but the agent's
owner under another key: that is what the trusted mints (money that costs to move) and the trust score are for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ghostpay.trusted_mints import TrustedMint, default_trusted_mints, effective_trusted_mints

Run = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]
"""Executes one statement with named parameters and returns its rows."""

KINDS = ("x402", "escrow")
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class MintEvidence:
    """One kind of payment (x402 calls, or escrow releases) to an agent in one mint."""

    mint: str
    calls: int
    volume: int  # atomic units of the mint
    payers: int  # distinct


@dataclass(frozen=True)
class KindEvidence:
    """x402 calls or escrow releases: per mint, and over the trusted mints (distinct payers across them)."""

    by_mint: list[MintEvidence] = field(default_factory=list)
    trusted_calls: int = 0
    trusted_payers: int = 0
    trusted_volume: dict[str, int] = field(default_factory=dict)  # trusted mint -> atomic units

    @property
    def calls(self) -> int:
        return sum(m.calls for m in self.by_mint)


@dataclass(frozen=True)
class Evidence:
    """What an index can say about who paid an agent, and how much, in which money."""

    agent: str
    x402: KindEvidence
    escrow: KindEvidence
    trusted_payers: int  # distinct payers in trusted mints, x402 and escrow together
    first_at: int  # the first and last trusted payment (0: none)
    last_at: int
    trust: float | None = None  # the trust score's share of the agent (None: not computed)
    trust_score: int | None = None  # basis points of the most trusted agent's share

    @property
    def days(self) -> int:
        """Days from the first trusted payment to the last (at least 1 once there is one)."""
        return 0 if not self.first_at else max(1, -(-(self.last_at - self.first_at) // SECONDS_PER_DAY))

    def span(self) -> dict[str, int]:
        """The figures every rendering shows as they are: trusted payers and the time span."""
        return {
            "trusted_payers": self.trusted_payers,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "days": self.days,
        }


def _marks(prefix: str, values: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """`:p0, :p1, …` and their parameters (a list for `IN`, bound one by one)."""
    names = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{n}" for n in names) or "NULL", names


# trusted mints -----------------------------------------------------------------------------------------------------


def indexed_genesis(run: Run) -> str | None:
    """The genesis hash the index recorded (None before the indexer's first run; schema v6 creates the table)."""
    rows = run("SELECT genesis_hash FROM indexed_chain", {})
    return str(rows[0][0]) if rows else None


def trusted_mints(run: Run, labels_path: str | None = None, genesis: str | None = None) -> dict[str, TrustedMint]:
    """mint -> TrustedMint: the indexed chain's defaults (`ghostpay.trusted_mints`) with the index's settings."""
    defaults = default_trusted_mints(genesis or indexed_genesis(run), labels_path)
    rows = run("SELECT mint, trusted, label, decimals FROM trusted_mint_settings", {})
    added = [TrustedMint(m, label, decimals) for m, trusted, label, decimals in rows if trusted]
    return effective_trusted_mints(defaults, added, [m for m, trusted, _, _ in rows if not trusted])


# evidence ----------------------------------------------------------------------------------------------------------


def evidence(run: Run, agents: Sequence[str], trusted: Iterable[str]) -> dict[str, Evidence]:
    """Each agent's evidence (agents without any payment get empty evidence)."""
    trusted = sorted(set(trusted))
    out_mints: dict[tuple[str, str], list[MintEvidence]] = {}
    who, args = _marks("a", list(agents))
    for agent, kind, mint, calls, volume, payers in run(
        "SELECT agent, kind, mint, SUM(calls), SUM(amount), COUNT(DISTINCT payer) FROM payment_edges "
        f"WHERE agent IN ({who}) GROUP BY agent, kind, mint ORDER BY agent, kind, SUM(amount) DESC, mint",
        args,
    ):
        out_mints.setdefault((agent, kind), []).append(MintEvidence(mint, int(calls), int(volume), int(payers)))
    money, money_args = _marks("m", trusted)
    payers_by: dict[tuple[str, str], int] = {}
    span: dict[str, tuple[int, int]] = {}
    for agent, kind, payers, first, last in run(
        "SELECT agent, kind, COUNT(DISTINCT payer), MIN(first_at), MAX(last_at) FROM payment_edges "
        f"WHERE agent IN ({who}) AND mint IN ({money}) GROUP BY agent, kind",
        {**args, **money_args},
    ):
        payers_by[(agent, kind)] = int(payers)
        low, high = span.get(agent, (int(first), int(last)))
        span[agent] = (min(low, int(first)), max(high, int(last)))
    both = {
        agent: int(n)
        for agent, n in run(
            f"SELECT agent, COUNT(DISTINCT payer) FROM payment_edges WHERE agent IN ({who}) AND mint IN ({money}) "
            "GROUP BY agent",
            {**args, **money_args},
        )
    }
    trust = {
        agent: (float(t), int(s))
        for agent, t, s in run(f"SELECT agent, trust, score FROM agent_trust WHERE agent IN ({who})", args)
    }
    result = {}
    for agent in agents:
        kinds = {}
        for kind in KINDS:
            mints = out_mints.get((agent, kind), [])
            in_trusted = [m for m in mints if m.mint in trusted]
            kinds[kind] = KindEvidence(
                mints,
                sum(m.calls for m in in_trusted),
                payers_by.get((agent, kind), 0),
                {m.mint: m.volume for m in in_trusted},
            )
        first, last = span.get(agent, (0, 0))
        score = trust.get(agent)
        result[agent] = Evidence(
            agent,
            kinds["x402"],
            kinds["escrow"],
            both.get(agent, 0),
            first,
            last,
            score[0] if score else None,
            score[1] if score else None,
        )
    return result


def describe(e: Evidence, amount: Callable[[str, int], str]) -> str:
    """`412 paid calls from 97 payers, 41.20 USDC, 30 days` (trusted mints), then escrow releases and what was paid
    in other mints; `amount(mint, atomic)` writes an amount."""
    x402, escrow = e.x402, e.escrow
    volumes = ", ".join(amount(m, v) for m, v in x402.trusted_volume.items())
    calls, payers = x402.trusted_calls, x402.trusted_payers
    parts = [f"{calls:,} paid call{'s' * (calls != 1)} from {payers:,} payer{'s' * (payers != 1)}"]
    parts += [volumes] if volumes else []
    if escrow.trusted_calls:
        released = ", ".join(amount(m, v) for m, v in escrow.trusted_volume.items())
        parts.append(f"{escrow.trusted_calls:,} escrow release(s) from {escrow.trusted_payers:,} client(s), {released}")
    if e.days:
        parts.append(f"{e.days} day{'s' * (e.days != 1)}")
    untrusted = x402.calls + escrow.calls - x402.trusted_calls - escrow.trusted_calls
    if untrusted:
        parts.append(f"(+{untrusted:,} in untrusted mints)")
    return ", ".join(parts)


# search filters ----------------------------------------------------------------------------------------------------


def min_payers_clause(min_payers: int, trusted: Iterable[str], column: str = "address") -> tuple[str, dict[str, Any]]:
    """A WHERE clause: at least `min_payers` distinct payers in trusted mints (x402 and escrow)."""
    money, args = _marks("tp", sorted(set(trusted)))
    return (
        f"(SELECT COUNT(DISTINCT e.payer) FROM payment_edges e WHERE e.agent = {column} AND e.mint IN ({money})) "
        ">= :min_payers",
        {**args, "min_payers": min_payers},
    )


def min_volume_clause(minimums: dict[str, int], column: str = "address") -> tuple[str, dict[str, Any]]:
    """A WHERE clause: at least `minimums[mint]` atomic units paid (x402 and escrow) in each of its mints."""
    parts: list[str] = []
    args: dict[str, Any] = {}
    for i, (mint, atomic) in enumerate(sorted(minimums.items())):
        parts.append(
            f"(SELECT COALESCE(SUM(e.amount), 0) FROM payment_edges e WHERE e.agent = {column} AND e.mint = :vm{i}) "
            f">= :va{i}"
        )
        args |= {f"vm{i}": mint, f"va{i}": atomic}
    return " AND ".join(parts) or "1 = 1", args


def to_qmark(clause: str, named: dict[str, Any]) -> tuple[str, list[Any]]:
    """`clause` with `?` for its `:name` parameters and their values in order (for a statement bound by position)."""
    values: list[Any] = []

    def one(found: re.Match[str]) -> str:
        values.append(named[found.group(1)])
        return "?"

    return re.sub(r":(\w+)", one, clause), values
