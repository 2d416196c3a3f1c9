"""The trust score against sybil farms (issue 30): an agent economy with farms of three shapes, indexed, ranked by the
on-chain reputation score and by the trust score.

    python -m bench.trust [--buyers 1000] [--sellers 200] [--scale-agents 100000 --scale-payments 1000000]
    → bench/results/trust.json

How the economy reaches the index: synthesized decoded events (AgentRegistered, X402Configured,
X402PaymentRecorded, FeedbackSubmitted, WorkOrderCreated, PaymentReleased: the program's own event types) applied
by the indexer's own write path (`ghostpay.indexer.process.Batch`, one chain transaction per payment) into SQLite,
not through the program in LiteSVM: the program would only add the transfers, which the events already stand for.
The on-chain score is the indexer's (the program's integer function over the counters the events move); the trust
score is `ghostpay.indexer.trust.recompute` over that index.

- Honest: `buyers` wallets and `sellers` agents (each owned by its own wallet); sellers' popularity is Zipf
  (exponent 1.1), a buyer's calls Pareto (α 1.2: most buy a few calls, a few buy hundreds) over 1-8 favourite
  sellers, prices log-normal around 0.01 USDC; a fifth of the sellers' owners buy from other sellers too (agents
  hiring agents); 5 % of the buyers hire a seller once through escrow, released; 30 % of calls are rated 3-5 stars.
- Farms (each its own owner, 2 agents, 20 wallets; every call rated 5 stars, fast):
  `ring` pays its agents in USDC (round-tripped: fees only), 10 calls a wallet and agent;
  `junk` does the same in a mint of its own; `connected` is a ring whose owner also buys one real call from the
  most popular honest agent.
- Three trust settings: `uniform` (EigenTrust without seeds: the jumps land on every payer; the index's default),
  `seeded` (SybilRank from 5 % of the honest buyers, drawn at random, as the pre-trusted seeds: the index's score
  with seeds) and `seeded-eigentrust` (EigenTrust from the same seeds: the index's score with seeds before SybilRank,
  for comparison, computed in memory).

Reported: each farm's best agent's rank by the on-chain score and by trust; AUC (the chance an honest agent ranks
above a farm's) and precision@k (the share of farm agents among the k lowest, k = the farm's agents) per shape
and setting; whether every farm agent ranks below every honest agent with ≥ 5 distinct honest payers; the money a
farm must spend to reach the top 10 % (cheapest of: more wallets paying its agent, or buying calls from honest
agents) against the on-chain score's price (one junk-mint payer rating its own agent); the trust a ring captures
against its number of calls bought from honest agents; and the recomputation's time at `scale_agents` agents and
`scale_payments` payments (in memory, and from a SQLite index).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from solders.pubkey import Pubkey
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.report import report, size
from ghostpay import types
from ghostpay.events import DecodedLogs, IndexedEvent, ProgramEvent
from ghostpay.indexer import trust
from ghostpay.indexer.models import Agent, AgentTrust, PaymentEdge, TrustedMintSetting, TrustSeed, connect, table_of
from ghostpay.indexer.process import Batch, new_row
from ghostpay.indexer.source import ChainTransaction
from ghostpay.reputation import HISTORY_DAYS, ReputationInputs, reputation_score
from ghostpay.trusted_mints import TrustedMint

USDC_DECIMALS = 6
ATOMIC = 10**USDC_DECIMALS
START = 1_760_000_000  # the economy's first second (unix time)
DAYS = 30
SECONDS_PER_DAY = 86_400
BATCH = 500  # chain transactions per database transaction
FARM_WALLETS, FARM_AGENTS, FARM_CALLS = 20, 2, 10
FARM_PRICE = 1 * ATOMIC  # the ring's price: it only moves its own money around
SEED_SHARE = 0.05
TOP_SHARE = 0.10
MIN_HONEST_PAYERS = 5
# A star: fresh wallets paying one agent a few calls each at an honest-looking price (the honest prices' median),
# in USDC: in the payment graph, an honest seller whose customers pay no one else.
STAR_AGENTS, STAR_CALLS, STAR_PRICE = 1, 3, ATOMIC // 100
STAR_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500)  # wallets of the stars `star_figures` places
TINY_PRICE = 1  # atomic units: a star keeping its evidence as small as it can
SHAPES = ("ring", "junk", "connected", "star")
SETTINGS = ("uniform", "seeded", "seeded-eigentrust")
INDEXED_SETTINGS = ("uniform", "seeded")  # what `trust.recompute` computes; the others in memory
EDGE_COUNTS = (0, 1, 2, 4, 8, 16, 32, 64)
VALUE_SEED_AGENTS = 3  # distinct agents a wallet must have paid to be a seed by value
VALUE_SEED_WALLETS = 50  # the most farm wallets the value-seeded price tries

# What a farm pays, from bench/results/economics.json (fees) and the rent of the accounts it needs.
LAMPORTS_PER_SOL = 1_000_000_000
FEE_PER_CALL_SOL = 1.0001e-05  # a recorded call's transaction fee, steady state
PAYER_STATS_RENT_SOL = 0.0018444  # the PayerStats each (agent, payer) pair's first payment creates
TOKEN_ACCOUNT_RENT_SOL = 0.00203928  # a wallet's token account (165 bytes)
MINT_RENT_SOL = 0.0014616  # a mint of its own (82 bytes)
FEEDBACK_FEE_SOL = 5_000 / LAMPORTS_PER_SOL
SOL_USD = 150.0  # the SOL price the costs are converted at (an assumption, stated in the results)


def key() -> str:
    return str(Pubkey.new_unique())


@dataclass
class Payment:
    payer: str
    agent: str
    mint: str
    amount: int
    timestamp: int
    rating: int = 0  # 0: not rated
    escrow: bool = False


@dataclass
class Economy:
    usdc: str
    junk: str
    owners: dict[str, str] = field(default_factory=dict)  # agent -> owner
    prices: dict[str, int] = field(default_factory=dict)  # agent -> price per call, atomic USDC
    honest_agents: list[str] = field(default_factory=list)
    honest_buyers: list[str] = field(default_factory=list)
    farms: dict[str, list[str]] = field(default_factory=dict)  # shape -> its agents
    farm_wallets: dict[str, list[str]] = field(default_factory=dict)
    payments: list[Payment] = field(default_factory=list)

    def paid_honest_agents(self) -> list[str]:
        """The honest agents with at least one payment (the others have no evidence to rank)."""
        paid = {p.agent for p in self.payments}
        return [a for a in self.honest_agents if a in paid]

    def honest_payers(self) -> dict[str, int]:
        """agent -> distinct honest payers (buyers and honest sellers' owners) in USDC."""
        honest = set(self.honest_buyers) | {self.owners[a] for a in self.honest_agents}
        payers: dict[str, set[str]] = {}
        for p in self.payments:
            if p.payer in honest and p.mint == self.usdc:
                payers.setdefault(p.agent, set()).add(p.payer)
        return {a: len(s) for a, s in payers.items()}


def zipf_weights(n: int, exponent: float) -> list[float]:
    return [1 / (rank + 1) ** exponent for rank in range(n)]


def pareto_calls(rng: random.Random, alpha: float = 1.2, cap: int = 400) -> int:
    return min(int(rng.paretovariate(alpha)), cap)


def build_economy(buyers: int, sellers: int, seed: int = 30) -> Economy:
    """The honest economy and the three farms (see the module's docstring)."""
    rng = random.Random(seed)
    eco = Economy(key(), key())
    for _ in range(sellers):
        agent = key()
        eco.owners[agent] = key()
        eco.prices[agent] = max(1_000, min(ATOMIC, int(rng.lognormvariate(np.log(0.01 * ATOMIC), 1.0))))
        eco.honest_agents.append(agent)
    popularity = zipf_weights(sellers, 1.1)
    eco.honest_buyers = [key() for _ in range(buyers)]

    def when() -> int:
        return START + rng.randrange(DAYS * SECONDS_PER_DAY)

    def buy(payer: str, calls: int, exclude: str | None = None) -> None:
        favourites = [
            a
            for a in rng.choices(eco.honest_agents, popularity, k=1 + min(7, int(rng.expovariate(0.6))))
            if a != exclude
        ]
        for _ in range(calls):
            if not favourites:
                return
            agent = rng.choice(favourites)
            rating = rng.choice((3, 4, 5, 5)) if rng.random() < 0.3 else 0
            eco.payments.append(Payment(payer, agent, eco.usdc, eco.prices[agent], when(), rating))

    for buyer in eco.honest_buyers:
        buy(buyer, pareto_calls(rng))
        if rng.random() < 0.05:
            agent = rng.choices(eco.honest_agents, popularity)[0]
            eco.payments.append(Payment(buyer, agent, eco.usdc, eco.prices[agent] * 50, when(), 0, escrow=True))
    selling = sorted({p.agent for p in eco.payments})  # agents with customers hire others
    for agent in rng.sample(selling, min(len(selling), sellers // 5)):
        buy(eco.owners[agent], pareto_calls(rng), exclude=agent)
    for shape in SHAPES:
        add_farm(eco, shape, rng)
    eco.payments.sort(key=lambda p: p.timestamp)
    return eco


def add_farm(eco: Economy, shape: str, rng: random.Random, wallets: int = FARM_WALLETS) -> None:
    owner = key()
    count, calls, price = (
        (STAR_AGENTS, STAR_CALLS, STAR_PRICE) if shape == "star" else (FARM_AGENTS, FARM_CALLS, FARM_PRICE)
    )
    agents = [key() for _ in range(count)]
    for agent in agents:
        eco.owners[agent], eco.prices[agent] = owner, price
    mint = eco.junk if shape == "junk" else eco.usdc
    eco.farms[shape] = agents
    eco.farm_wallets[shape] = [key() for _ in range(wallets)]
    for wallet in eco.farm_wallets[shape]:
        for agent in agents:
            for _ in range(calls):
                stamp = START + rng.randrange(DAYS * SECONDS_PER_DAY)
                eco.payments.append(Payment(wallet, agent, mint, price, stamp, 5))
    if shape == "connected":
        target = eco.honest_agents[0]  # the most popular
        eco.payments.append(Payment(owner, target, eco.usdc, eco.prices[target], START + DAYS * SECONDS_PER_DAY // 2))


# into the index ----------------------------------------------------------------------------------------------------


def _event(event: str, **fields: Any) -> ProgramEvent:
    return ProgramEvent(event, getattr(types, event)(**fields))


def _pk(value: str) -> Pubkey:
    return Pubkey.from_string(value)


def _transactions(eco: Economy) -> Iterator[tuple[ChainTransaction, DecodedLogs]]:
    """One chain transaction per registration, payment (with its rating) and escrow hire, oldest first."""
    slot = 0

    def tx(*events: ProgramEvent) -> tuple[ChainTransaction, DecodedLogs]:
        nonlocal slot
        slot += 1
        signature = f"bench-trust-{slot}"
        logs = DecodedLogs([IndexedEvent(e, 0, i) for i, e in enumerate(events)])
        return ChainTransaction(signature, slot, ()), logs

    for agent, owner in eco.owners.items():
        mint = eco.junk if agent in eco.farms.get("junk", ()) else eco.usdc
        yield tx(
            _event(
                "AgentRegistered",
                agent=_pk(agent),
                owner=_pk(owner),
                agent_id=agent[:8],
                name=agent[:8],
                agent_type=0,
                x402_enabled=True,
                registration=1,
                timestamp=START - 1,
            ),
            _event(
                "X402Configured",
                agent=_pk(agent),
                payment_address=_pk(owner),
                accepted_tokens=[types.TokenPrice(_pk(mint), eco.prices[agent])],
                service_endpoint="https://example.com",
                timestamp=START - 1,
            ),
        )
    calls: dict[str, int] = {}
    for n, p in enumerate(eco.payments):
        if p.escrow:
            order = _pk(key())
            common = {"work_order": order, "agent": _pk(p.agent), "mint": _pk(p.mint), "timestamp": p.timestamp}
            yield tx(
                _event(
                    "WorkOrderCreated",
                    client=_pk(p.payer),
                    arbiter=_pk(p.payer),
                    order_id=n,
                    amount=p.amount,
                    deadline=p.timestamp + SECONDS_PER_DAY,
                    review_period_seconds=SECONDS_PER_DAY,
                    **common,
                ),
                _event("PaymentReleased", amount=p.amount, released=p.amount, remaining=0, completed=True, **common),
            )
            continue
        calls[p.agent] = calls.get(p.agent, 0) + 1
        reference = list(n.to_bytes(32, "little"))
        events = [
            _event(
                "X402PaymentRecorded",
                agent=_pk(p.agent),
                payer=_pk(p.payer),
                rent_payer=_pk(p.payer),
                mint=_pk(p.mint),
                amount=p.amount,
                reference=reference,
                total_calls=calls[p.agent],
                timestamp=p.timestamp,
            )
        ]
        if p.rating:
            events.append(
                _event(
                    "FeedbackSubmitted",
                    agent=_pk(p.agent),
                    payer=_pk(p.payer),
                    reference=reference,
                    success=True,
                    response_time_ms=400,
                    rating=p.rating,
                    timestamp=p.timestamp,
                )
            )
        yield tx(*events)


def index_economy(engine: Engine, eco: Economy) -> int:
    """Apply the economy through the indexer's write path, `BATCH` transactions a commit; returns how many."""
    done = 0
    pending: list[tuple[ChainTransaction, DecodedLogs]] = []

    def flush() -> None:
        batch = Batch(engine)
        batch.apply_all([t for t, _ in pending], {t.signature: d for t, d in pending})
        batch.needs_account.clear()  # the events carry all the bench reads; no account to fetch
        batch.commit()
        pending.clear()

    for item in _transactions(eco):
        pending.append(item)
        done += 1
        if len(pending) == BATCH:
            flush()
    if pending:
        flush()
    return done


def configure(engine: Engine, eco: Economy, seeds: Sequence[str]) -> None:
    """USDC trusted (decimals 6), and the seeds."""
    with engine.begin() as connection:
        settings, seed_table = table_of(TrustedMintSetting), table_of(TrustSeed)
        connection.execute(settings.delete())
        connection.execute(settings.insert(), [{"mint": eco.usdc, "trusted": True, "label": "USDC", "decimals": 6}])
        connection.execute(seed_table.delete())
        if seeds:
            connection.execute(seed_table.insert(), [{"address": s} for s in seeds])


def stored_scores(engine: Engine) -> tuple[dict[str, int], dict[str, float]]:
    """agent -> on-chain score, agent -> trust share (from the index)."""
    with engine.connect() as connection:
        agents = table_of(Agent)
        onchain = dict(connection.execute(select(agents.c.address, agents.c.reputation_score)).all())
        trusts = table_of(AgentTrust)
        shares = dict(connection.execute(select(trusts.c.agent, trusts.c.trust)).all())
    return {a: int(s) for a, s in onchain.items()}, {a: float(t) for a, t in shares.items()}


# figures -----------------------------------------------------------------------------------------------------------


def auc(honest: Sequence[float], farm: Sequence[float]) -> float:
    """The chance a random honest agent scores above a random farm agent (ties count half)."""
    wins = sum((h > f) + 0.5 * (h == f) for h in honest for f in farm)
    return wins / (len(honest) * len(farm))


def precision_at_k(scores: dict[str, float], farm: Sequence[str]) -> float:
    """The share of farm agents among the k lowest scored (k = the farm's agents). Agents tied with the k-th lowest
    score share the slots left at the cut at random: the farm is credited their expected share (a tie with honest
    agents is only partly a detection); `tied_at_cut` says how many there were."""
    k = len(farm)
    farm_set = set(farm)
    cut = sorted(scores.values())[k - 1]
    below = [a for a, s in scores.items() if s < cut]
    tied = [a for a, s in scores.items() if s == cut]
    slots = k - len(below)
    found = sum(a in farm_set for a in below) + slots * sum(a in farm_set for a in tied) / len(tied)
    return round(found / k, 4)


def tied_at_cut(scores: dict[str, float], k: int) -> int:
    """How many agents score exactly the k-th lowest score (1: no tie at the cut)."""
    cut = sorted(scores.values())[k - 1]
    return sum(s == cut for s in scores.values())


def rank_of(scores: dict[str, float], agent: str) -> int:
    """1 = the highest score; ties share the better rank."""
    return 1 + sum(s > scores[agent] for s in scores.values())


@dataclass
class ShapeFigures:
    setting: str
    shape: str
    best_rank_onchain: int
    best_rank_trust: int
    agents_ranked: int
    auc_onchain: float
    auc_trust: float
    precision_onchain: float
    precision_trust: float
    tied_at_cut_trust: int  # agents scoring exactly the k-th lowest trust (1: precision needed no tie-break)
    strong_honest: int  # honest agents with >= 5 distinct honest payers
    strong_not_above: int  # of them, those not ranked strictly above every agent of the farm (0: the goal holds)


def shape_figures(eco: Economy, setting: str, onchain: dict[str, int], shares: dict[str, float]) -> list[ShapeFigures]:
    """Per farm shape, among the honest agents with a payment and the farm's agents."""
    out = []
    honest = eco.paid_honest_agents()
    strong = [a for a, n in eco.honest_payers().items() if n >= MIN_HONEST_PAYERS and a in eco.honest_agents]
    for shape, farm in eco.farms.items():
        agents = [*honest, *farm]
        by_chain = {a: float(onchain.get(a, 0)) for a in agents}
        by_trust = {a: shares.get(a, 0.0) for a in agents}
        best_farm = max(by_trust[a] for a in farm)
        out.append(
            ShapeFigures(
                setting,
                shape,
                min(rank_of(by_chain, a) for a in farm),
                min(rank_of(by_trust, a) for a in farm),
                len(agents),
                round(auc([by_chain[a] for a in honest], [by_chain[a] for a in farm]), 4),
                round(auc([by_trust[a] for a in honest], [by_trust[a] for a in farm]), 4),
                precision_at_k(by_chain, farm),
                precision_at_k(by_trust, farm),
                tied_at_cut(by_trust, len(farm)),
                len(strong),
                sum(by_trust[a] <= best_farm for a in strong),
            )
        )
    return out


def economy_edges(eco: Economy) -> list[tuple[str, str, str, int]]:
    return [(p.payer, p.agent, p.mint, p.amount) for p in eco.payments]


def economy_graph(eco: Economy, extra: Sequence[tuple[str, str, str, int]], owners: dict[str, str]) -> trust.Graph:
    """The payment graph of the economy's payments and `extra` ones, USDC trusted."""
    trusted = {eco.usdc: TrustedMint(eco.usdc, "USDC", USDC_DECIMALS)}
    return trust.build_graph([*economy_edges(eco), *extra], owners, trusted)


def trust_of(
    eco: Economy,
    extra: Sequence[tuple[str, str, str, int]],
    owners: dict[str, str],
    seeds: Sequence[str],
    setting: str = "uniform",
) -> dict[str, float]:
    """Agent -> trust over the economy's payments and `extra` ones, as the index computes it for `seeds`, or by
    seeded EigenTrust in the setting `seeded-eigentrust`."""
    graph = economy_graph(eco, extra, owners)
    vector = trust.eigentrust(graph, seeds) if setting == "seeded-eigentrust" else trust.trust_vector(graph, seeds)
    return {a: t for a, (t, _) in trust.agent_scores(graph, vector).items()}


def reached(scores: dict[str, float], agent: str, eco: Economy) -> bool:
    """Whether `agent` is in the top 10 % of the honest agents with evidence (a score of 0 is nowhere)."""
    score = scores.get(agent, 0.0)
    return score > 0 and score >= top_threshold(scores, eco.paid_honest_agents())


def top_threshold(scores: dict[str, float], agents: Sequence[str]) -> float:
    """The lowest score inside the top `TOP_SHARE` of `agents`."""
    ordered = sorted((scores.get(a, 0.0) for a in agents), reverse=True)
    return ordered[max(0, int(len(ordered) * TOP_SHARE) - 1)]


@dataclass
class Price:
    setting: str
    score: str
    strategy: str
    wallets: int | None
    usdc_lost: float | None
    sol: float | None
    usd: float | None  # SOL at SOL_USD plus USDC lost
    times_onchain: float | None
    times_top_earnings: float | None = None  # the USD against what a top-10 % honest agent earned in the economy


def onchain_price(eco: Economy, onchain: dict[str, int]) -> Price:
    """One agent, one payer wallet in a mint of its own, n self-rated fast calls spread over the week: the fewest n
    whose score reaches the top 10 % of the honest agents by on-chain score."""
    threshold = top_threshold({a: float(s) for a, s in onchain.items()}, eco.paid_honest_agents())
    for n in range(1, 10_000):
        history = tuple(n // HISTORY_DAYS + (day < n % HISTORY_DAYS) for day in range(HISTORY_DAYS))
        inputs = ReputationInputs(n, 0, 400 * n, n, 5 * n, n, 0, 0, history)
        if reputation_score(inputs).score >= threshold:
            sol = (
                MINT_RENT_SOL
                + 2 * TOKEN_ACCOUNT_RENT_SOL
                + PAYER_STATS_RENT_SOL
                + n * (FEE_PER_CALL_SOL + FEEDBACK_FEE_SOL)
            )
            return Price(
                "-", "on-chain", f"{n} junk-mint call(s), self-rated", 1, 0.0, sol, round(sol * SOL_USD, 4), 1.0
            )
    raise RuntimeError(f"the on-chain score's top 10 % ({threshold}) is out of reach")


def wallets_price(eco: Economy, setting: str, seeds: Sequence[str], base_usd: float, limit: int) -> Price:
    """More wallets each paying the farm's agent one call in USDC (round-tripped) and, with seeds, buying one call
    from the most trusted honest agent (what makes a wallet count): the fewest that reach the top."""
    farm_agent, owner = "farm-agent", "farm-owner"
    owners = {**eco.owners, farm_agent: owner}
    plain = trust_of(eco, [], owners, seeds, setting)
    market = max(eco.paid_honest_agents(), key=lambda a: plain.get(a, 0.0))
    bought = eco.prices[market] if seeds else 0

    def reaches(k: int) -> bool:
        extra = [(f"w{i}", farm_agent, eco.usdc, FARM_PRICE) for i in range(k)]
        extra += [(f"w{i}", market, eco.usdc, bought) for i in range(k)] if bought else []
        return reached(trust_of(eco, extra, owners, seeds, setting), farm_agent, eco)

    strategy = "wallets paying the farm" + (", each buying one call" if bought else "")
    if not reaches(limit):
        return Price(setting, "trust", f"{strategy} (not reached with {limit:,})", None, None, None, None, None)
    low, high = 1, limit
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle + 1, high)
    calls = 2 if bought else 1
    sol = low * (TOKEN_ACCOUNT_RENT_SOL + calls * (PAYER_STATS_RENT_SOL + FEE_PER_CALL_SOL))
    lost = low * bought / ATOMIC
    usd = sol * SOL_USD + lost
    return Price(
        setting, "trust", strategy, low, round(lost, 4), round(sol, 6), round(usd, 4), round(usd / base_usd, 1)
    )


def value_seeds(edges: Sequence[tuple[str, str, str, int]], usdc: str) -> list[str]:
    """Seeds no one configures: the `SEED_SHARE` of the paying wallets that spent the most USDC, among those that
    paid at least `VALUE_SEED_AGENTS` distinct agents."""
    spent: dict[str, int] = {}
    agents: dict[str, set[str]] = {}
    for payer, agent, mint, amount in edges:
        if mint == usdc:
            spent[payer] = spent.get(payer, 0) + amount
            agents.setdefault(payer, set()).add(agent)
    wide = sorted((p for p in spent if len(agents[p]) >= VALUE_SEED_AGENTS), key=lambda p: (-spent[p], p))
    return wide[: max(1, int(len(spent) * SEED_SHARE))]


def value_seeded_price(eco: Economy, base_usd: float, limit: int) -> Price:
    """SybilRank from `value_seeds`: the fewest farm wallets that, each paying `VALUE_SEED_AGENTS` farm agents
    (round-tripped USDC, just above the seeds' cut), become seeds and lift a farm agent into the top 10 %."""
    farm_agents = [f"farm-agent-{i}" for i in range(VALUE_SEED_AGENTS)]
    owners = {**eco.owners, **dict.fromkeys(farm_agents, "farm-owner")}
    trusted = {eco.usdc: TrustedMint(eco.usdc, "USDC", USDC_DECIMALS)}
    honest = economy_edges(eco)
    spent: dict[str, int] = {}
    for payer, _, mint, amount in honest:
        spent[payer] = spent.get(payer, 0) + amount * (mint == eco.usdc)
    each = min(spent[s] for s in value_seeds(honest, eco.usdc)) // VALUE_SEED_AGENTS + 1

    def reaches(k: int) -> bool:
        edges = [*honest, *((f"w{i}", a, eco.usdc, each) for i in range(k) for a in farm_agents)]
        graph = trust.build_graph(edges, owners, trusted)
        scores = {
            a: t
            for a, (t, _) in trust.agent_scores(graph, trust.sybilrank(graph, value_seeds(edges, eco.usdc))).items()
        }
        return any(reached(scores, a, eco) for a in farm_agents)

    strategy = f"wallets each paying {VALUE_SEED_AGENTS} farm agents just above the seeds' cut"
    low = next((k for k in range(1, limit + 1) if reaches(k)), None)
    if low is None:
        return Price("value-seeded", "trust", f"{strategy} (not reached with {limit})", None, None, None, None, None)
    sol = low * (TOKEN_ACCOUNT_RENT_SOL + VALUE_SEED_AGENTS * (PAYER_STATS_RENT_SOL + FEE_PER_CALL_SOL))
    usd = sol * SOL_USD
    return Price("value-seeded", "trust", strategy, low, 0.0, round(sol, 6), round(usd, 4), round(usd / base_usd, 1))


def buying_price(eco: Economy, setting: str, seeds: Sequence[str], base_usd: float, limit_usdc: float) -> Price:
    """The farm's wallet buys calls from the ten most popular honest agents (USDC lost to them) and pays the farm's
    agent: the least spent that reaches the top."""
    farm_agent, owner, wallet = "farm-agent", "farm-owner", "farm-wallet"
    owners = {**eco.owners, farm_agent: owner}
    targets = eco.honest_agents[:10]

    def reaches(usdc: float) -> bool:
        each = int(usdc * ATOMIC / len(targets))
        extra = [(wallet, farm_agent, eco.usdc, FARM_PRICE), *((wallet, t, eco.usdc, each) for t in targets)]
        scores = trust_of(eco, extra, owners, seeds, setting)
        return reached(scores, farm_agent, eco)

    if not reaches(limit_usdc):
        strategy = f"buying from honest agents (not reached with {limit_usdc:,.0f} USDC)"
        return Price(setting, "trust", strategy, None, None, None, None, None)
    low, high = 0.0, limit_usdc
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    calls = len(targets) + 1
    sol = TOKEN_ACCOUNT_RENT_SOL + calls * (PAYER_STATS_RENT_SOL + FEE_PER_CALL_SOL)
    usd = sol * SOL_USD + high
    return Price(
        setting,
        "trust",
        "buying from honest agents",
        1,
        round(high, 4),
        round(sol, 6),
        round(usd, 4),
        round(usd / base_usd, 1),
    )


@dataclass
class Captured:
    setting: str
    direction: str  # bought: the ring's wallets buy calls from honest agents; sold: honest buyers buy from the ring
    honest_edges: int
    farm_trust_share: float
    farm_over_median_honest: float
    usdc: float  # spent by the farm (bought), or paid to it (sold)


def captured_curve(eco: Economy, setting: str, seeds: Sequence[str]) -> list[Captured]:
    """A ring (20 wallets, 10 calls each to its agent) with `m` one-call links to the honest economy, both ways."""
    rng = random.Random(7)
    farm_agent, owner = "farm-agent", "farm-owner"
    owners = {**eco.owners, farm_agent: owner}
    ring = [(f"r{i}", farm_agent, eco.usdc, FARM_PRICE * FARM_CALLS) for i in range(FARM_WALLETS)]
    honest = eco.paid_honest_agents()
    out = []
    sellers = rng.choices(honest, k=max(EDGE_COUNTS))  # each count's links are the first of these: nested
    buyers = rng.sample(eco.honest_buyers, min(max(EDGE_COUNTS), len(eco.honest_buyers)))
    for direction in ("bought", "sold"):
        for m in EDGE_COUNTS:
            if direction == "bought":
                links = [(f"r{i % FARM_WALLETS}", a, eco.usdc, eco.prices[a]) for i, a in enumerate(sellers[:m])]
            else:
                links = [(b, farm_agent, eco.usdc, FARM_PRICE) for b in buyers[:m]]
            scores = trust_of(eco, ring + links, owners, seeds, setting)
            median = float(np.median([scores.get(a, 0.0) for a in honest]))
            share = scores.get(farm_agent, 0.0)
            usdc = sum(v for *_, v in links) / ATOMIC
            ratio = round(share / median, 4) if median else float("inf") if share else 0.0
            out.append(Captured(setting, direction, m, share, ratio, round(usdc, 6)))
    return out


# the star and the prior --------------------------------------------------------------------------------------------


@dataclass
class StarFigures:
    price_usdc: float
    wallets: int
    calls_per_wallet: int
    rank: int  # among the honest agents with a payment and the star's agent (1 = the highest trust)
    agents_ranked: int
    honest_below: int  # honest agents with a payment ranked strictly below the star
    strong_not_above: int  # honest agents with >= 5 distinct honest payers not ranked strictly above it


def star_figures(eco: Economy, seeds: Sequence[str]) -> list[StarFigures]:
    """SybilRank from the seeds: a star of `n` fresh wallets paying one agent `STAR_CALLS` calls each at the honest
    prices' median, and one paying `TINY_PRICE` once each (the least evidence a star can have), for each size."""
    honest = eco.paid_honest_agents()
    strong = [a for a, n in eco.honest_payers().items() if n >= MIN_HONEST_PAYERS and a in eco.honest_agents]
    star, owners = "star-agent", {**eco.owners, "star-agent": "star-owner"}
    out = []
    for price, calls in ((STAR_PRICE, STAR_CALLS), (TINY_PRICE, 1)):
        for n in STAR_SIZES:
            extra = [(f"s{i}", star, eco.usdc, price * calls) for i in range(n)]
            scores = trust_of(eco, extra, owners, seeds, "seeded")
            mine = scores[star]
            by_trust = {a: scores.get(a, 0.0) for a in [*honest, star]}
            out.append(
                StarFigures(
                    price / ATOMIC,
                    n,
                    calls,
                    rank_of(by_trust, star),
                    len(by_trust),
                    sum(scores.get(a, 0.0) < mine for a in honest),
                    sum(scores.get(a, 0.0) <= mine for a in strong),
                )
            )
    return out


PRIOR_GRID = tuple(10.0**e for e in np.arange(-4.0, 0.01, 0.25))  # priors tried, as shares of an even spread
ONE_EDGE_SAMPLE = 40  # agents the seeds do not reach, each given one call from a customer they reach


@dataclass
class PriorFigures:
    prior: float  # trust.PRIOR: each node's prior, a share of an even spread of the seeds' trust
    nodes: int
    epsilon: float  # prior / nodes, added to every node's walked trust
    honest_reached: int  # honest agents with a payment the seeds' walk reaches
    honest_reached_under_epsilon: int  # of them, those whose walked trust is below epsilon
    one_edge_median_over_epsilon: float  # the walked trust one call from a reached customer brings, over epsilon
    one_edge_p10_over_epsilon: float
    lowest_prior_farms_below: float | None  # the lowest prior on PRIOR_GRID putting ring, junk and connected
    highest_prior_farms_below: float | None  # below every honest agent with >= 5 honest payers, and the highest


def prior_figures(eco: Economy, seeds: Sequence[str]) -> PriorFigures:
    """How `trust.PRIOR` sits between what the seeds bring and what leaks into a farm (see `trust.sybilrank`)."""
    graph = economy_graph(eco, [], eco.owners)
    walked, degree = trust.seed_walk(graph, seeds)
    where = {name: i for i, name in enumerate(graph.nodes)}
    n = len(graph.nodes)
    epsilon = trust.PRIOR / n
    honest = [where[a] for a in eco.paid_honest_agents() if a in where]
    reached = [i for i in honest if walked[i] > 0]
    strong = [where[a] for a, k in eco.honest_payers().items() if k >= MIN_HONEST_PAYERS and a in eco.honest_agents]
    farms = [where[a] for s in ("ring", "junk", "connected") for a in eco.farms[s] if a in where]

    def farms_below(prior: float) -> bool:
        value = (walked + prior / n) / degree
        return not farms or value[strong].min() > value[farms].max()

    holding = [p for p in PRIOR_GRID if farms_below(p)]
    rng = random.Random(3)
    customers = [where[b] for b in eco.honest_buyers if b in where and walked[where[b]] > 0 and b not in set(seeds)]
    unreached = [a for a in eco.paid_honest_agents() if a in where and walked[where[a]] == 0][:ONE_EDGE_SAMPLE]
    gained = []
    for agent in unreached:
        call = (graph.nodes[rng.choice(customers)], agent, eco.usdc, eco.prices[agent])
        extended = economy_graph(eco, [call], eco.owners)
        gained.append(trust.seed_walk(extended, seeds)[0][extended.nodes.index(agent)])
    one_edge = np.array(gained) / epsilon if gained else np.zeros(1)
    return PriorFigures(
        trust.PRIOR,
        n,
        epsilon,
        len(reached),
        int(sum(walked[i] < epsilon for i in reached)),
        round(float(np.median(one_edge)), 2),
        round(float(np.quantile(one_edge, 0.1)), 2),
        round(holding[0], 5) if holding else None,
        round(holding[-1], 5) if holding else None,
    )


# scale -------------------------------------------------------------------------------------------------------------


@dataclass
class ScaleFigures:
    agents: int
    payers: int
    payments: int
    edges: int
    build_graph_s: float
    iterate_s: float
    sybilrank_s: float  # from 5 % of the payers as seeds
    recompute_from_sqlite_s: float | None


def scale_run(agents: int, payments: int, with_db: bool) -> ScaleFigures:
    """Synthetic edges (Zipf payees, twice as many payers as agents) timed through `build_graph` + `eigentrust`
    in memory, then `recompute` from a SQLite index holding those edges."""
    rng = np.random.default_rng(30)
    payers = 2 * agents
    payee = np.minimum(rng.zipf(1.3, payments) - 1, agents - 1)
    payer = rng.integers(0, payers, payments)
    amount = rng.integers(1_000, 100_000, payments)
    pairs: dict[tuple[int, int], int] = {}
    for p, a, v in zip(payer.tolist(), payee.tolist(), amount.tolist(), strict=True):
        pairs[(p, a)] = pairs.get((p, a), 0) + v
    usdc = key()
    edges = [(f"p{p}", f"a{a}", usdc, v) for (p, a), v in pairs.items()]
    owners = {f"a{a}": f"o{a}" for a in range(agents)}
    trusted = {usdc: TrustedMint(usdc, "USDC", USDC_DECIMALS)}
    started = time.perf_counter()
    graph = trust.build_graph(edges, owners, trusted)
    built = time.perf_counter()
    trust.eigentrust(graph)
    iterated = time.perf_counter()
    trust.sybilrank(graph, [f"p{p}" for p in range(0, payers, round(1 / SEED_SHARE))])
    ranked = time.perf_counter()
    from_db = None
    if with_db:
        with tempfile.TemporaryDirectory() as folder:
            engine = connect(f"sqlite:///{Path(folder) / 'scale.db'}")
            with engine.begin() as connection:
                connection.execute(
                    table_of(PaymentEdge).insert(),
                    [
                        {
                            "payer": p,
                            "agent": a,
                            "mint": m,
                            "kind": "x402",
                            "calls": 1,
                            "amount": v,
                            "first_at": 0,
                            "last_at": 0,
                        }
                        for p, a, m, v in edges
                    ],
                )
                connection.execute(
                    table_of(Agent).insert(), [new_row(Agent, address=a, owner=o).__dict__ for a, o in owners.items()]
                )
                connection.execute(
                    table_of(TrustedMintSetting).insert(), [{"mint": usdc, "trusted": True, "decimals": 6}]
                )
            began = time.perf_counter()
            trust.recompute(engine)
            from_db = round(time.perf_counter() - began, 2)
    return ScaleFigures(
        agents,
        payers,
        payments,
        len(edges),
        round(built - started, 2),
        round(iterated - built, 2),
        round(ranked - iterated, 2),
        from_db,
    )


# the run -----------------------------------------------------------------------------------------------------------


@dataclass
class Results:
    economy: dict[str, Any]
    shapes: list[ShapeFigures]
    prices: list[Price]
    captured: list[Captured]
    stars: list[StarFigures]
    prior: PriorFigures
    scale: ScaleFigures


def seeds_of(eco: Economy) -> list[str]:
    rng = random.Random(1)
    return rng.sample(eco.honest_buyers, max(1, int(len(eco.honest_buyers) * SEED_SHARE)))


def seeds_for(eco: Economy, setting: str) -> list[str]:
    return [] if setting == "uniform" else seeds_of(eco)


def evaluate(engine: Engine, eco: Economy, setting: str) -> tuple[dict[str, int], dict[str, float]]:
    """Configure the setting, recompute the index's trust score (or, for a setting the index does not compute,
    the setting's in memory), and read both scores back."""
    configure(engine, eco, seeds_for(eco, setting))
    trust.recompute(engine)
    onchain, shares = stored_scores(engine)
    if setting not in INDEXED_SETTINGS:
        shares = trust_of(eco, [], eco.owners, seeds_for(eco, setting), setting)
    return onchain, shares


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Each value's rank, ties sharing their mean rank."""
    array = np.asarray(values, dtype=np.float64)
    order = np.empty(len(array))
    order[array.argsort(kind="stable")] = np.arange(len(array))
    _, group, counts = np.unique(array, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=order) / counts)[group]


def rank_agreement(eco: Economy, shares: dict[str, float]) -> float:
    """Spearman's rank correlation, over the honest agents with a payment, of trust and distinct honest payers: how
    far a setting's order is popularity's (1: the same)."""
    honest, payers = eco.paid_honest_agents(), eco.honest_payers()
    trust_ranks = average_ranks([shares.get(a, 0.0) for a in honest])
    return float(np.corrcoef(trust_ranks, average_ranks([payers.get(a, 0) for a in honest]))[0, 1])


def top_earnings_usd(eco: Economy) -> float:
    """What the honest agent at the top 10 % cut (of those with a payment) earned in USDC over the economy's days."""
    earned: dict[str, int] = {}
    for p in eco.payments:
        if p.agent in eco.prices and p.mint == eco.usdc:
            earned[p.agent] = earned.get(p.agent, 0) + p.amount
    return top_threshold({a: float(v) for a, v in earned.items()}, eco.paid_honest_agents()) / ATOMIC


def run(buyers: int, sellers: int, scale_agents: int, scale_payments: int, folder: Path) -> Results:
    eco = build_economy(buyers, sellers)
    engine = connect(f"sqlite:///{folder / 'trust.db'}")
    started = time.perf_counter()
    transactions = index_economy(engine, eco)
    indexed_s = time.perf_counter() - started
    shapes, prices, captured = [], [], []
    onchain: dict[str, int] = {}
    agreement = {}
    for setting in SETTINGS:
        onchain, shares = evaluate(engine, eco, setting)
        shapes += shape_figures(eco, setting, onchain, shares)
        agreement[setting] = round(rank_agreement(eco, shares), 3)
    base = onchain_price(eco, onchain)
    prices.append(base)
    assert base.usd is not None
    for setting in SETTINGS:
        seeds = seeds_for(eco, setting)
        prices.append(wallets_price(eco, setting, seeds, base.usd, limit=size(100_000, 2_000)))
        prices.append(buying_price(eco, setting, seeds, base.usd, limit_usdc=1_000_000.0))
        captured += captured_curve(eco, setting, seeds)
    prices.append(value_seeded_price(eco, base.usd, limit=VALUE_SEED_WALLETS))
    earned = top_earnings_usd(eco)
    prices = [replace(p, times_top_earnings=None if p.usd is None else round(p.usd / earned, 1)) for p in prices]
    honest_payers = eco.honest_payers()
    description = {
        "honest_buyers": buyers,
        "honest_sellers": sellers,
        "sellers_with_5_honest_payers": sum(1 for a in eco.honest_agents if honest_payers.get(a, 0) >= 5),
        "farms": {
            s: {"agents": FARM_AGENTS, "wallets": FARM_WALLETS, "calls_per_wallet_and_agent": FARM_CALLS}
            for s in SHAPES
            if s != "star"
        }
        | {
            "star": {
                "agents": STAR_AGENTS,
                "wallets": FARM_WALLETS,
                "calls_per_wallet_and_agent": STAR_CALLS,
                "price_usdc": STAR_PRICE / ATOMIC,
            }
        },
        "payments": sum(1 for p in eco.payments if not p.escrow),
        "escrow_releases": sum(1 for p in eco.payments if p.escrow),
        "transactions_indexed": transactions,
        "indexed_seconds": round(indexed_s, 1),
        "seeds": len(seeds_of(eco)),
        "top_10_percent_earnings_usdc": round(top_earnings_usd(eco), 4),
        "rank_correlation_with_honest_payers": agreement,
        "sol_usd": SOL_USD,
        "how": "synthesized decoded events through the indexer's Batch (not the program in LiteSVM)",
    }
    stars = star_figures(eco, seeds_of(eco))
    prior = prior_figures(eco, seeds_of(eco))
    scale = scale_run(scale_agents, scale_payments, with_db=True)
    return Results(description, shapes, prices, captured, stars, prior, scale)


def tables(results: Results) -> list[Table]:
    shapes = Table(title="Where the farms rank (best farm agent's rank of N; AUC, precision@k of 'farm lowest')")
    for column in (
        "setting",
        "farm",
        "rank on-chain",
        "rank trust",
        "N",
        "AUC chain",
        "AUC trust",
        "P@k chain",
        "P@k trust",
        "tied at cut",
        "honest≥5 not above",
    ):
        shapes.add_column(column)
    for s in results.shapes:
        shapes.add_row(
            s.setting,
            s.shape,
            str(s.best_rank_onchain),
            str(s.best_rank_trust),
            str(s.agents_ranked),
            f"{s.auc_onchain:.3f}",
            f"{s.auc_trust:.3f}",
            f"{s.precision_onchain:.2f}",
            f"{s.precision_trust:.2f}",
            str(s.tied_at_cut_trust),
            f"{s.strong_not_above} of {s.strong_honest}",
        )
    prices = Table(title=f"The price of the top 10 % (SOL at ${SOL_USD:.0f})")
    columns = ("setting", "score", "cheapest way", "wallets", "USDC lost", "SOL", "USD", "× on-chain", "× top earnings")
    for column in columns:
        prices.add_column(column)
    for p in results.prices:
        prices.add_row(
            p.setting,
            p.score,
            p.strategy,
            *(
                "—" if v is None else f"{v:,}"
                for v in (p.wallets, p.usdc_lost, p.sol, p.usd, p.times_onchain, p.times_top_earnings)
            ),
        )
    captured = Table(title="Trust a ring captures against its one-call links with honest agents")
    for column in ("setting", "links", "count", "farm trust share", "× median honest", "USDC"):
        captured.add_column(column)
    for c in results.captured:
        captured.add_row(
            c.setting,
            c.direction,
            str(c.honest_edges),
            f"{c.farm_trust_share:.2e}",
            f"{c.farm_over_median_honest:.3f}",
            f"{c.usdc:.4f}",
        )
    stars = Table(title="Where a star (fresh wallets paying one agent) ranks with seeds, by its size")
    for column in ("price USDC", "wallets", "calls each", "rank", "N", "honest below it", "honest≥5 not above"):
        stars.add_column(column)
    for f in results.stars:
        stars.add_row(
            f"{f.price_usdc:g}",
            *(str(v) for v in (f.wallets, f.calls_per_wallet, f.rank, f.agents_ranked, f.honest_below)),
            str(f.strong_not_above),
        )
    chosen = results.prior
    prior = Table(title="SybilRank's prior: each node's share of an even spread, added before the degree division")
    for column in (
        "prior",
        "ε = prior / nodes",
        "honest reached with walked trust < ε",
        "one reached customer's call / ε (median, 10th pct)",
        "priors putting the 3 farms below every honest≥5",
    ):
        prior.add_column(column)
    window = (
        "none"
        if chosen.lowest_prior_farms_below is None
        else (f"{chosen.lowest_prior_farms_below:g} to {chosen.highest_prior_farms_below:g}")
    )
    prior.add_row(
        f"{chosen.prior:g}",
        f"{chosen.epsilon:.2e} ({chosen.nodes:,} nodes)",
        f"{chosen.honest_reached_under_epsilon} of {chosen.honest_reached}",
        f"{chosen.one_edge_median_over_epsilon:g}, {chosen.one_edge_p10_over_epsilon:g}",
        window,
    )
    sized = results.scale
    scale = Table(title="Recomputing the trust score")
    for column in (
        "agents",
        "payers",
        "payments",
        "edges",
        "build graph s",
        "iterate s",
        "SybilRank s",
        "recompute from SQLite s",
    ):
        scale.add_column(column)
    scale.add_row(
        *(
            f"{v:,}" if isinstance(v, int) else str(v)
            for v in (
                sized.agents,
                sized.payers,
                sized.payments,
                sized.edges,
                sized.build_graph_s,
                sized.iterate_s,
                sized.sybilrank_s,
                sized.recompute_from_sqlite_s,
            )
        )
    )
    return [shapes, prices, captured, stars, prior, scale]


@dataclass
class Row:
    section: str
    data: dict[str, Any]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=size(1_000, 120))
    parser.add_argument("--sellers", type=int, default=size(200, 30))
    parser.add_argument("--scale-agents", type=int, default=size(100_000, 500))
    parser.add_argument("--scale-payments", type=int, default=size(1_000_000, 5_000))
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as folder:
        results = run(args.buyers, args.sellers, args.scale_agents, args.scale_payments, Path(folder))
    for extra in tables(results)[:-1]:
        console.print(extra)
    from dataclasses import asdict

    rows = [
        Row("economy", results.economy),
        *(Row("shape", asdict(s)) for s in results.shapes),
        *(Row("price", asdict(p)) for p in results.prices),
        *(Row("captured", asdict(c)) for c in results.captured),
        *(Row("star", asdict(f)) for f in results.stars),
        Row("prior", asdict(results.prior)),
        Row("scale", asdict(results.scale)),
    ]
    report(tables(results)[-1], rows, "trust", console, width=160)


if __name__ == "__main__":
    main()
