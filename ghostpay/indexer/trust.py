"""The trust score: EigenTrust (Kamvar et al. 2003) / personalised PageRank over the payment graph.

Nodes are wallets and agents. A payer's payments to agents in trusted mints are its local trust in them, weighted by
the value paid (whole tokens); an agent passes all of its trust to its owner, who passes it on through what it pays
in turn. Each node's out-links are normalised, and the trust vector is the fixed point of

    t ← (1 − a)·Cᵀt + a·p

where p, the random jump, lands uniformly on every wallet that paid in a trusted mint; the trust of a node that pays
nobody jumps by p too. An agent's trust is its share of the total. Trust flows only from payer to payee: being paid
by trusted wallets raises an agent, paying does not, so buying calls from honest agents raises them, not the farm;
a farm paid in a mint of its own gets nothing (no link), and a cluster that only pays itself keeps just the jumps
that land on its own wallets.

With pre-trusted seeds (`trust_seeds`: wallets the operator knows) the score is SybilRank (Cao et al. 2012) instead:
the same payments as an undirected graph (payer — agent weighted by value, agent — owner), the seeds' trust spread
by a short lazy random walk (2·⌈log₂ n⌉ half-speed steps: stopped long before it mixes, so trust that crossed few
cheap edges into a farm stays small however large the farm), and each node ranked by its trust over its weighted
degree, each payment edge weighing its value plus `EDGE_FLOOR` (a cheap call's worth, so that a payer counts however
little it paid). Trust reaches a farm only over edges to the market the seeds reach, in proportion to their value: a
farm buying calls gets what its purchases weigh against the seller's other customers, spread over every payment
inside the farm. An honest agent in no component with a seed (its customers paid nobody else) gets none either: it
is, in the graph, a star of wallets like a farm. So every node also holds a prior, `PRIOR` of an even spread
(PRIOR/n), added before the division by degree: among the nodes the seeds do not reach (or barely), the one with
MORE payment unexplained by the seeds ranks LOWER, and a farm ties with an isolated honest agent only by keeping its
evidence (payers and volume) as small as that agent's, and then it ranks no higher. (`eigentrust` also takes seeds:
its first pass jumps to them, the second to them and the customers of what it reached; `bench/trust.py` compares
both.)

What this cannot tell apart: without seeds, a farm of new wallets that each pay the farm's agent in a trusted mint
looks like as many new honest customers (the jumps land on every payer), so its trust grows with its number of
wallets, at the price of their fees and rent; no reputation function that treats every wallet alike can avoid that
(Cheng and Friedman, "Sybilproof reputation mechanisms", 2005). `bench/trust.py` measures both settings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Connection, Engine

from ghostpay.indexer.evidence import trusted_mints
from ghostpay.indexer.guard import indexed_chain
from ghostpay.indexer.models import Agent, AgentTrust, PaymentEdge, TrustedMintSetting, TrustSeed, table_of
from ghostpay.trusted_mints import STABLECOIN_DECIMALS, TrustedMint

log = logging.getLogger(__name__)

JUMP = 0.15  # a: the probability of a random jump to the seeds (PageRank's 1 - damping)
TOLERANCE = 1e-10  # L1 change between iterations at which the power iteration stops
MAX_ITERATIONS = 200
STAY = 0.5  # SybilRank's walk stays put half of each step: payers pay agents, so a plain walk would oscillate
STEPS_PER_LOG2_N = 2  # the lazy walk moves half as fast: 2·⌈log₂ n⌉ of its steps are SybilRank's ⌈log₂ n⌉
PRIOR = 0.01  # SybilRank: each node's prior trust, a share of an even spread (1/n); see `sybilrank`
EDGE_FLOOR = 0.01  # SybilRank: whole tokens added to each payment edge's weight, so that every payer counts
SCORE_SCALE = 10_000  # an agent's score: basis points of the most trusted agent's trust
WRITE_CHUNK = 10_000


@dataclass(frozen=True)
class Graph:
    """The payment graph as arrays: node names, and edges src → dst with their weights (not normalised)."""

    nodes: list[str]
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    agents: np.ndarray  # node indices of the agents
    payers: np.ndarray  # node indices of the wallets that paid in a trusted mint


def build_graph(
    edges: Iterable[tuple[str, str, str, int]],
    owners: dict[str, str],
    trusted: dict[str, TrustedMint],
) -> Graph:
    """`edges`: (payer, agent, mint, atomic amount) of every payment kind; those in untrusted mints are dropped.
    `owners`: agent -> owner wallet (the agent's trust goes to its owner)."""
    index: dict[str, int] = {}

    def node(name: str) -> int:
        found = index.get(name)
        if found is None:
            found = index[name] = len(index)
        return found

    scale = {m: 10.0 ** -(t.decimals if t.decimals is not None else STABLECOIN_DECIMALS) for m, t in trusted.items()}
    pairs: dict[tuple[int, int], float] = {}
    payers: set[int] = set()
    paid: set[str] = set()
    for payer, agent, mint, amount in edges:
        factor = scale.get(mint)
        if factor is None or amount <= 0:
            continue
        p, a = node(payer), node(agent)
        payers.add(p)
        paid.add(agent)
        pairs[(p, a)] = pairs.get((p, a), 0.0) + amount * factor
    for agent in paid:
        owner = owners.get(agent)
        if owner:
            pairs[(index[agent], node(owner))] = 1.0  # its only link: all of its trust
    keys = list(pairs)
    return Graph(
        list(index),
        np.fromiter((k[0] for k in keys), dtype=np.int64, count=len(keys)),
        np.fromiter((k[1] for k in keys), dtype=np.int64, count=len(keys)),
        np.fromiter(pairs.values(), dtype=np.float64, count=len(keys)),
        np.array(sorted(index[a] for a in paid), dtype=np.int64),
        np.array(sorted(payers), dtype=np.int64),
    )


def power_iteration(graph: Graph, p: np.ndarray, jump: float = JUMP) -> np.ndarray:
    """The fixed point of t ← (1 − a)·Cᵀt + a·p (C row-normalised; the trust of nodes without out-links jumps by p)."""
    n = len(graph.nodes)
    out = np.bincount(graph.src, weights=graph.weight, minlength=n)
    share = graph.weight / out[graph.src]  # C's entries
    dangling = out == 0
    t = p.copy()
    for _ in range(MAX_ITERATIONS):
        flowed = np.bincount(graph.dst, weights=share * t[graph.src], minlength=n)
        new = (1 - jump) * flowed + ((1 - jump) * t[dangling].sum() + jump) * p
        change = np.abs(new - t).sum()
        t = new
        if change < TOLERANCE:
            break
    return t


def uniform_on(n: int, nodes: np.ndarray) -> np.ndarray:
    p = np.zeros(n)
    p[nodes] = 1.0
    return p / p.sum() if p.any() else p


def eigentrust(graph: Graph, seeds: Sequence[str] = (), jump: float = JUMP) -> np.ndarray:
    """The trust of every node (sums to 1, or 0 everywhere without a jump target).

    Without seeds the jumps land uniformly on every payer. With seeds, a first pass jumps to the seeds only; then
    the jumps land uniformly on the seeds and on every wallet that paid an agent the first pass reached (a
    customer of an agent the seeds' trust reaches), and the second pass is the trust."""
    n = len(graph.nodes)
    where = {name: i for i, name in enumerate(graph.nodes)}
    seeded = np.array(sorted({where[s] for s in seeds if s in where}), dtype=np.int64)
    if not len(seeds):
        return power_iteration(graph, uniform_on(n, graph.payers), jump) if n else np.zeros(0)
    if not len(seeded):
        return np.zeros(n)
    first = power_iteration(graph, uniform_on(n, seeded), jump)
    is_agent = np.zeros(n, dtype=bool)
    is_agent[graph.agents] = True
    customers = graph.src[is_agent[graph.dst] & (first[graph.dst] > 0)]
    return power_iteration(graph, uniform_on(n, np.union1d(seeded, customers)), jump)


def seed_walk(graph: Graph, seeds: Sequence[str], steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The seeds' trust after `steps` (default 2·⌈log₂ n⌉) steps of a lazy walk over the undirected weighted graph
    (0 where none arrived; all 0 without a seed in the graph), and each node's weighted degree. A payment edge
    weighs its value plus `EDGE_FLOOR` (an agent's edge to its owner stays 1)."""
    n = len(graph.nodes)
    where = {name: i for i, name in enumerate(graph.nodes)}
    seeded = sorted({where[s] for s in seeds if s in where})
    ends = np.concatenate([graph.src, graph.dst]), np.concatenate([graph.dst, graph.src])
    is_agent = np.zeros(n, dtype=bool)
    is_agent[graph.agents] = True
    paid = graph.weight + np.where(is_agent[graph.src], 0.0, EDGE_FLOOR)
    weight = np.concatenate([paid, paid])
    degree = np.bincount(ends[0], weights=weight, minlength=n)
    t = np.zeros(n)
    if not seeded:
        return t, degree
    share = weight / degree[ends[0]]
    t[seeded] = 1.0 / len(seeded)
    for _ in range(steps if steps is not None else STEPS_PER_LOG2_N * math.ceil(math.log2(n))):
        t = STAY * t + (1 - STAY) * np.bincount(ends[1], weights=share * t[ends[0]], minlength=n)
    return t, degree


def sybilrank(graph: Graph, seeds: Sequence[str], steps: int | None = None, prior: float = PRIOR) -> np.ndarray:
    """Each node's SybilRank: (the seeds' walked trust + the prior, `prior`/n) over its weighted degree (all 0
    without a seed in the graph).

    Without the prior, every node the seeds do not reach scores 0 whatever its degree, and an isolated honest
    agent ties with every farm. With it, such a node scores prior/n over its degree: the more payment the seeds do
    not explain (value, and `EDGE_FLOOR` per payer), the lower. It is small against what the seeds bring (at 1/100
    of an even spread, one call from a customer the seeds reach brings a median 26 to 40 times it in
    `bench/trust.py`'s economies) and large against what crosses one cheap edge into a farm and is spread over the
    farm's own payments (a farm whose owner bought one call ranks below every isolated honest agent with 5 payers
    there from 0.006 to 0.01 of an even spread)."""
    t, degree = seed_walk(graph, seeds, steps)
    if not t.any():
        return t
    return np.divide(t + prior / len(graph.nodes), degree, out=np.zeros(len(t)), where=degree > 0)


def trust_vector(graph: Graph, seeds: Sequence[str]) -> np.ndarray:
    """The index's trust: EigenTrust with uniform jumps without seeds, SybilRank from the seeds with them."""
    return sybilrank(graph, seeds) if seeds else eigentrust(graph)


def agent_scores(graph: Graph, trust: np.ndarray) -> dict[str, tuple[float, int]]:
    """agent -> (its trust: a share of the total, or SybilRank's trust per unit of degree; basis points of the most
    trusted agent's)."""
    if not len(graph.agents):
        return {}
    values = trust[graph.agents]
    top = float(values.max()) or 1.0
    return {
        graph.nodes[i]: (float(v), round(SCORE_SCALE * float(v) / top))
        for i, v in zip(graph.agents, values, strict=True)
    }


# the index ---------------------------------------------------------------------------------------------------------


def _settings(connection: Connection, labels_path: str | None, genesis: str | None) -> dict[str, TrustedMint]:
    def run(sql: str, params: dict[str, object]) -> Sequence[Sequence[object]]:
        return connection.execute(text(sql), params).all()

    return trusted_mints(run, labels_path, genesis)


def undecided_mints(engine: Engine, labels_path: str | None = None) -> list[str]:
    """The trusted mints whose decimals the settings do not give (the indexer asks the RPC)."""
    genesis = indexed_chain(engine)
    with engine.connect() as connection:
        return [m for m, t in _settings(connection, labels_path, genesis).items() if t.decimals is None]


def recompute(engine: Engine, labels_path: str | None = None, decimals: dict[str, int] | None = None) -> int:
    """Rebuild `agent_trust` from the index's payment graph, its trusted mints and seeds, in one transaction;
    returns the number of agents with some trust. `decimals`: of trusted mints the settings lack (from the RPC)."""
    started = time.perf_counter()
    genesis = indexed_chain(engine)
    with engine.begin() as connection:
        trusted = _settings(connection, labels_path, genesis)
        for mint, places in (decimals or {}).items():
            if mint in trusted and trusted[mint].decimals is None:
                trusted[mint] = TrustedMint(mint, trusted[mint].label, places)
        edge = table_of(PaymentEdge)
        rows = connection.execute(
            select(edge.c.payer, edge.c.agent, edge.c.mint, edge.c.amount)
            .where(edge.c.mint.in_(list(trusted)))
            .order_by(edge.c.payer, edge.c.agent, edge.c.mint, edge.c.kind)  # the same sums in any database
        ).all()
        agent = table_of(Agent)
        everyone = connection.execute(select(agent.c.address, agent.c.owner).order_by(agent.c.address)).all()
        owners = {a: o for a, o in everyone if o}
        seeds = list(connection.execute(select(table_of(TrustSeed).c.address)).scalars())
        graph = build_graph(((p, a, m, int(v)) for p, a, m, v in rows), owners, trusted)
        scores = agent_scores(graph, trust_vector(graph, seeds))
        now = time.time()
        table = table_of(AgentTrust)
        connection.execute(delete(table))
        unpaid = {a: (0.0, 0) for a, _ in everyone}  # indexed agents without a trusted payment: no trust
        items = [{"agent": a, "trust": t, "score": s, "computed_at": now} for a, (t, s) in (unpaid | scores).items()]
        for i in range(0, len(items), WRITE_CHUNK):
            connection.execute(table.insert(), items[i : i + WRITE_CHUNK])
    log.info(
        "trust: %d agents scored over %d payment edges in %.2fs", len(scores), len(rows), time.perf_counter() - started
    )
    return sum(1 for t, _ in scores.values() if t > 0)


# settings ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustSettings:
    """What the trust score counts: the trusted mints (the chain's defaults with the index's additions and
    removals), the mints removed, the seeds, and when the scores were last computed (None: never)."""

    trusted: dict[str, TrustedMint]
    removed: list[str]
    seeds: list[str]
    computed_at: float | None
    agents_with_trust: int


def read_settings(engine: Engine, labels_path: str | None = None) -> TrustSettings:
    genesis = indexed_chain(engine)
    with engine.connect() as connection:
        trusted = _settings(connection, labels_path, genesis)
        settings = table_of(TrustedMintSetting)
        removed = list(connection.execute(select(settings.c.mint).where(settings.c.trusted.is_(False))).scalars())
        seeds = list(connection.execute(select(table_of(TrustSeed).c.address)).scalars())
        scores = table_of(AgentTrust)
        computed = connection.execute(select(func.max(scores.c.computed_at))).scalar()
        with_trust = connection.execute(select(func.count()).where(scores.c.trust > 0)).scalar() or 0
    return TrustSettings(trusted, removed, seeds, computed, int(with_trust))


def set_mint(engine: Engine, mint: str, trusted: bool, label: str | None = None, decimals: int | None = None) -> None:
    """Add a mint to the trusted ones (`trusted`), or remove it (a default one too), in the index's settings."""
    table = table_of(TrustedMintSetting)
    with engine.begin() as connection:
        connection.execute(delete(table).where(table.c.mint == mint))
        connection.execute(table.insert().values(mint=mint, trusted=trusted, label=label, decimals=decimals))


def forget_mint(engine: Engine, mint: str) -> bool:
    """Drop the index's setting for `mint` (it is trusted again exactly when it is a default); False if none."""
    table = table_of(TrustedMintSetting)
    with engine.begin() as connection:
        return bool(connection.execute(delete(table).where(table.c.mint == mint)).rowcount)


def set_seed(engine: Engine, address: str, seeded: bool) -> None:
    """Make `address` (a wallet) a pre-trusted seed, or no longer one."""
    table = table_of(TrustSeed)
    with engine.begin() as connection:
        connection.execute(delete(table).where(table.c.address == address))
        if seeded:
            connection.execute(table.insert().values(address=address))
