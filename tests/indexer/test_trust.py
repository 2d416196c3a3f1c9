"""Issue 30: trusted mints, the evidence the index keeps per agent (SQLite and PostgreSQL), and the trust score's
ranking of sybil farms, on a small economy from `bench.trust` applied through the indexer's own write path."""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from bench import trust as bench
from ghostpay.analytics.api import ApiSettings
from ghostpay.indexer import evidence as ev, trust
from ghostpay.indexer.models import PaymentEdge, connect, table_of
from ghostpay.token_labels import DEVNET_GENESIS, MAINNET_GENESIS
from ghostpay.trusted_mints import TrustedMint, default_trusted_mints, effective_trusted_mints
from tests.analytics.conftest import ServedApi

MAINNET_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
MAINNET_USDT = "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB"
MAINNET_PYUSD = "2b1kV6DkPAnxd5ixfnxCpjxmKwqjjaYmCZfHsFu24GXo"
DEVNET_USDC = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"


def test_trusted_mints_per_network(tmp_path: Path) -> None:
    """Mainnet trusts USDC, USDT and PYUSD at their real addresses, devnet its USDC, a localnet the test mints
    labelled on it (and nothing else), an unknown chain nothing; the index's settings add and remove."""
    labels = tmp_path / "labels.json"
    assert {(m.label, m.mint, m.decimals) for m in default_trusted_mints(MAINNET_GENESIS, labels)} == {
        ("USDC", MAINNET_USDC, 6),
        ("USDT", MAINNET_USDT, 6),
        ("PYUSD", MAINNET_PYUSD, 6),
    }
    assert [(m.label, m.mint) for m in default_trusted_mints(DEVNET_GENESIS, labels)] == [("USDC", DEVNET_USDC)]
    localnet, test_usdc, user_mint = "Loca1net1111111111111111111111111111111111111", bench.key(), bench.key()
    labels.write_text(
        json.dumps(
            {
                "version": 1,
                "clusters": {
                    localnet: {
                        "labels": {
                            "USDC": {"mint": test_usdc, "test_mint": True},
                            "MINE": {"mint": user_mint, "test_mint": False},
                        }
                    }
                },
            }
        )
    )
    assert [(m.label, m.mint) for m in default_trusted_mints(localnet, labels)] == [("USDC", test_usdc)]
    assert default_trusted_mints(None, labels) == []
    extra = bench.key()
    effective = effective_trusted_mints(
        default_trusted_mints(MAINNET_GENESIS, labels), [TrustedMint(extra, "EXTRA", 9)], [MAINNET_USDT]
    )
    assert set(effective) == {MAINNET_USDC, MAINNET_PYUSD, extra} and effective[extra].decimals == 9


# evidence ----------------------------------------------------------------------------------------------------------


def expected_edges(eco: bench.Economy) -> dict[tuple[str, str, str, str], tuple[int, int]]:
    """(payer, agent, mint, kind) -> (calls, amount), from the economy's payments."""
    out: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for p in eco.payments:
        row = out[(p.payer, p.agent, p.mint, "escrow" if p.escrow else "x402")]
        row[0] += 1
        row[1] += p.amount
    return {k: (calls, amount) for k, (calls, amount) in out.items()}


def stored_edges(engine: Engine) -> dict[tuple[str, str, str, str], tuple[int, int]]:
    edges = table_of(PaymentEdge)
    with engine.connect() as c:
        rows = c.execute(
            select(edges.c.payer, edges.c.agent, edges.c.mint, edges.c.kind, edges.c.calls, edges.c.amount)
        )
        return {(p, a, m, k): (int(n), int(v)) for p, a, m, k, n, v in rows}


def test_evidence_is_indexed_once_per_payment_and_read_per_mint(db_url: str) -> None:
    """Every payment and escrow release lands in the payment graph exactly once (applying the whole history a
    second time changes nothing); an agent's evidence counts its paid calls, volume and distinct payers per mint,
    over the trusted mints only, and its escrow releases apart; the trust score is stored per agent."""
    eco = bench.build_economy(buyers=60, sellers=12)
    engine = connect(db_url)
    bench.index_economy(engine, eco)
    bench.index_economy(engine, eco)  # a replay: every transaction is already applied
    assert stored_edges(engine) == expected_edges(eco)
    bench.configure(engine, eco, seeds=[])
    assert trust.recompute(engine) > 0

    busiest = max(eco.paid_honest_agents(), key=lambda a: sum(p.agent == a for p in eco.payments))
    farm = eco.farms["junk"][0]
    with engine.connect() as c:

        def run(sql: str, params: dict[str, object]) -> list[tuple[object, ...]]:
            return [tuple(r) for r in c.execute(text(sql), params)]

        trusted = ev.trusted_mints(run)
        assert set(trusted) == {eco.usdc}
        found = ev.evidence(run, [busiest, farm], trusted)
    paid = [p for p in eco.payments if p.agent == busiest and not p.escrow]
    released = [p for p in eco.payments if p.agent == busiest and p.escrow]
    e = found[busiest]
    assert e.x402.by_mint == [
        ev.MintEvidence(eco.usdc, len(paid), sum(p.amount for p in paid), len({p.payer for p in paid}))
    ]
    assert (e.x402.trusted_calls, e.x402.trusted_payers) == (len(paid), len({p.payer for p in paid}))
    assert e.x402.trusted_volume == {eco.usdc: sum(p.amount for p in paid)}
    assert e.escrow.trusted_calls == len(released)
    assert e.escrow.trusted_volume == ({eco.usdc: sum(p.amount for p in released)} if released else {})
    assert e.trusted_payers == len({p.payer for p in paid + released})
    assert e.first_at == min(p.timestamp for p in paid + released) and 1 <= e.days <= bench.DAYS
    assert e.trust is not None and e.trust > 0
    junk = found[farm]  # paid in a mint of its own: evidence per mint, none of it trusted, no trust
    assert junk.x402.by_mint[0].mint == eco.junk and junk.x402.calls == bench.FARM_WALLETS * bench.FARM_CALLS
    assert (junk.trusted_payers, junk.x402.trusted_calls, junk.trust) == (0, 0, 0.0)


def test_search_filters_on_trusted_payers_and_volume(tmp_path: Path) -> None:
    """`min_payers` counts distinct payers in trusted mints only (the junk farm's 20 wallets do not count);
    `min_volume` is per mint, in atomic units."""
    eco = bench.build_economy(buyers=60, sellers=12)
    engine = connect(f"sqlite:///{tmp_path / 'index.db'}")
    bench.index_economy(engine, eco)
    bench.configure(engine, eco, seeds=[])
    with engine.connect() as c:

        def run(sql: str, params: dict[str, object]) -> list[tuple[object, ...]]:
            return [tuple(r) for r in c.execute(text(sql), params)]

        trusted = ev.trusted_mints(run)
        clause, args = ev.min_payers_clause(bench.FARM_WALLETS, trusted, "agents.address")
        many = {a for (a,) in run(f"SELECT address FROM agents WHERE {clause}", args)}
        clause, args = ev.min_volume_clause({eco.junk: 1}, "agents.address")
        in_junk = {a for (a,) in run(f"SELECT address FROM agents WHERE {clause}", args)}
    payers: dict[str, set[str]] = defaultdict(set)
    for p in eco.payments:
        if p.mint == eco.usdc:
            payers[p.agent].add(p.payer)
    assert many == {a for a, s in payers.items() if len(s) >= bench.FARM_WALLETS}
    assert set(eco.farms["junk"]).isdisjoint(many) and set(eco.farms["ring"]) <= many
    assert in_junk == set(eco.farms["junk"])


# ranking -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranked(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[bench.Economy, dict[str, dict[str, float]], dict[str, int]]:
    """A small economy (300 buyers, 50 sellers, the three farms) indexed once, scored in every setting."""
    eco = bench.build_economy(buyers=300, sellers=50)
    engine = connect(f"sqlite:///{tmp_path_factory.mktemp('trust') / 'index.db'}")
    bench.index_economy(engine, eco)
    shares = {}
    onchain: dict[str, int] = {}
    for setting in bench.SETTINGS:
        onchain, shares[setting] = bench.evaluate(engine, eco, setting)
    return eco, shares, onchain


def test_the_on_chain_score_ranks_every_farm_at_the_top(
    ranked: tuple[bench.Economy, dict[str, dict[str, float]], dict[str, int]],
) -> None:
    """The raw evidence the trust score corrects: self-rated farms, even in a junk mint, outrank the honest."""
    eco, _, onchain = ranked
    best_honest = max(onchain[a] for a in eco.paid_honest_agents())
    for farm in eco.farms.values():
        assert all(onchain[a] >= best_honest for a in farm)


def test_a_junk_mint_farm_ranks_last_without_seeds(
    ranked: tuple[bench.Economy, dict[str, dict[str, float]], dict[str, int]],
) -> None:
    """No seeds (the default): the junk-mint farm has no trust at all, below every honest agent with a trusted
    payment (precision 1 on the k lowest, AUC 1); the rings keep only the jumps that land on their own wallets:
    no farm agent holds more than its wallets' share of the jumps."""
    eco, shares, _ = ranked
    uniform = shares["uniform"]
    figures = {f.shape: f for f in bench.shape_figures(eco, "uniform", {}, uniform)}
    assert figures["junk"].precision_trust == 1.0 and figures["junk"].auc_trust == 1.0
    assert figures["junk"].strong_not_above == 0
    payers = len({p.payer for p in eco.payments if p.mint == eco.usdc})
    for shape in ("ring", "connected"):
        wallets = len(eco.farm_wallets[shape]) + (shape == "connected")  # the connected farm's owner paid too
        jumps = wallets / payers
        assert sum(uniform.get(a, 0.0) for a in eco.farms[shape]) <= jumps


def test_with_seeds_every_farm_ranks_below_every_honest_agent_with_5_payers(
    ranked: tuple[bench.Economy, dict[str, dict[str, float]], dict[str, int]],
) -> None:
    """Seeds (5 % of the honest buyers), SybilRank in the index: the junk farm has no trusted payment and no trust;
    the ring, which the seeds do not reach, only the prior over its 200 USDC of unexplained payment, below every
    honest agent with a payment (the isolated ones included: they were tied with it at 0 before the prior); the
    connected farm only what its owner's one call lets through. Every farm agent ranks strictly below every honest
    agent a seed paid and every honest agent with 5 or more distinct honest payers, and the k lowest are the
    farm's (precision@k 1, no honest agent tied at the cut). Seeded EigenTrust (the score before SybilRank, still
    in `bench.trust`'s comparison) leaves every farm at 0."""
    eco, shares, _ = ranked
    seeded = shares["seeded"]
    assert all(seeded.get(a, 0.0) == 0.0 for a in eco.farms["junk"])
    honest = eco.paid_honest_agents()
    lowest_honest = min(seeded[a] for a in honest)
    for shape in ("ring", "connected"):
        assert all(0.0 < seeded[a] < lowest_honest for a in eco.farms[shape])
    best_farm = max(seeded.get(a, 0.0) for farm in eco.farms.values() for a in farm)
    seeds = set(bench.seeds_of(eco))
    reached = {p.agent for p in eco.payments if p.payer in seeds}
    assert reached and all(seeded[a] > best_farm for a in reached)
    strong = [a for a, n in eco.honest_payers().items() if n >= bench.MIN_HONEST_PAYERS and a in eco.honest_agents]
    assert strong and all(seeded.get(a, 0.0) > best_farm for a in strong)
    figures = {f.shape: f for f in bench.shape_figures(eco, "seeded", {}, seeded)}
    assert all(f.strong_not_above == 0 for f in figures.values())
    for shape in ("ring", "junk", "connected"):
        assert figures[shape].precision_trust >= 0.9 and figures[shape].auc_trust == 1.0
        assert figures[shape].tied_at_cut_trust == len(eco.farms[shape])  # the farm's own agents, alike
    eigentrust = shares["seeded-eigentrust"]
    assert all(eigentrust.get(a, 0.0) == 0.0 for farm in eco.farms.values() for a in farm)
    assert all(eigentrust[a] > 0 for a in strong)


def test_agents_the_seeds_do_not_reach_rank_lower_the_more_unexplained_payment(
    ranked: tuple[bench.Economy, dict[str, dict[str, float]], dict[str, int]],
) -> None:
    """An honest agent the seeds' walk does not reach holds only the prior (PRIOR / n), divided by its degree (what
    it was paid, plus `EDGE_FLOOR` per payer, plus its owner edge): among them, the one with more payment ranks
    strictly lower, and each ranks above the ring, whose 20 wallets paid it 200 USDC. Before the prior they all
    scored 0, tied with the farms."""
    eco, shares, _ = ranked
    seeded = shares["seeded"]
    graph = bench.economy_graph(eco, [], eco.owners)
    walked, degree = trust.seed_walk(graph, bench.seeds_of(eco))
    where = {name: i for i, name in enumerate(graph.nodes)}
    alone = sorted(
        (degree[where[a]], seeded[a]) for a in eco.paid_honest_agents() if walked[where[a]] == 0
    )  # by degree, ascending
    assert len(alone) >= 3
    for d, value in alone:
        assert value == pytest.approx(trust.PRIOR / len(graph.nodes) / d, rel=1e-9)
    assert all(later[1] < earlier[1] for earlier, later in pairwise(alone) if later[0] > earlier[0])
    assert min(value for _, value in alone) > max(seeded[a] for a in eco.farms["ring"])


def test_a_star_with_more_payers_ranks_below_an_isolated_honest_agent_with_fewer(
    ranked: tuple[bench.Economy, dict[str, dict[str, float]], dict[str, int]],
) -> None:
    """A star of fresh wallets paying one agent (in the graph, an honest seller whose customers pay no one else) with
    more payers than an isolated honest agent, each buying as many calls at its price as that agent's payers did on
    average, ranks below it. What the prior cannot do: a star keeping its evidence smaller than that agent's (fewer
    payers, one atomic unit each) ranks above it, as an honest agent with that little evidence would."""
    eco, _, _ = ranked
    seeds = bench.seeds_of(eco)
    graph = bench.economy_graph(eco, [], eco.owners)
    walked = trust.seed_walk(graph, seeds)[0]
    where = {name: i for i, name in enumerate(graph.nodes)}
    payers = eco.honest_payers()
    alone = [a for a in eco.paid_honest_agents() if walked[where[a]] == 0 and payers.get(a, 0) >= 2]
    agent = max(alone, key=lambda a: (payers[a], a))
    calls = sum(p.agent == agent and not p.escrow for p in eco.payments)
    each = -(-calls // payers[agent])  # calls per payer, rounded up
    star, owners = "star-agent", {**eco.owners, "star-agent": "star-owner"}
    bigger = [(f"s{i}", star, eco.usdc, eco.prices[agent] * each) for i in range(payers[agent] + 1)]
    scores = bench.trust_of(eco, bigger, owners, seeds, "seeded")
    assert scores[star] < scores[agent]
    smaller = [(f"s{i}", star, eco.usdc, bench.TINY_PRICE) for i in range(payers[agent] - 1)]
    assert bench.trust_of(eco, smaller, owners, seeds, "seeded")[star] > scores[agent]


def test_buying_from_honest_agents_buys_no_trust(
    ranked: tuple[bench.Economy, dict[str, dict[str, float]], dict[str, int]],
) -> None:
    """Without seeds (EigenTrust) a ring whose wallets buy ever more calls from honest agents never gains (it loses
    a little to them). With seeds, SybilRank (the index's): the ring starts at the prior and the calls it buys let in a
    trust that stays below the median honest agent's; seeded EigenTrust (the comparison) instead counts each
    wallet that bought one call as a customer of the market, up to that wallet's share of the jumps. Honest buyers
    paying the ring raise it in every setting: that is selling. The curves `bench.trust` reports."""
    eco, _, _ = ranked
    uniform = bench.captured_curve(eco, "uniform", [])
    bought = [c.farm_trust_share for c in uniform if c.direction == "bought"]
    assert all(later <= bought[0] * (1 + 1e-9) for later in bought), bought
    seeds = bench.seeds_of(eco)
    sybilrank = bench.captured_curve(eco, "seeded", seeds)
    bought_sr = [c for c in sybilrank if c.direction == "bought"]
    assert bought_sr[-1].farm_trust_share > bought_sr[0].farm_trust_share > 0  # from the prior alone
    assert all(c.farm_over_median_honest < 1 for c in bought_sr), bought_sr
    eigentrust = bench.captured_curve(eco, "seeded-eigentrust", seeds)
    bought_et = [c for c in eigentrust if c.direction == "bought"]
    assert bought_et[0].farm_trust_share == 0.0 and bought_et[-1].farm_trust_share > 0
    payers = len({p.payer for p in eco.payments if p.mint == eco.usdc})
    for c in bought_et:  # at most its wallets that bought, out of every wallet that counts
        assert c.farm_trust_share <= min(c.honest_edges, bench.FARM_WALLETS) / (payers / 10)
    for curve in (uniform, sybilrank, eigentrust):
        sold = [c.farm_trust_share for c in curve if c.direction == "sold"]
        assert sold[-1] > sold[0]


def test_with_seeds_no_farm_buys_its_way_into_the_top_10_percent(
    ranked: tuple[bench.Economy, dict[str, dict[str, float]], dict[str, int]],
) -> None:
    """SybilRank from the seeds: neither 2,000 wallets each paying the farm and buying a call from the market's
    most trusted agent, nor one wallet buying 1,000,000 USDC of calls from the ten most popular, lift the farm's
    agent into the top 10 %; seeded EigenTrust (what SybilRank replaced) is reached by fewer than 100 wallets."""
    eco, _, _ = ranked
    seeds = bench.seeds_of(eco)
    assert bench.wallets_price(eco, "seeded", seeds, 1.0, limit=2_000).wallets is None
    assert bench.buying_price(eco, "seeded", seeds, 1.0, limit_usdc=1_000_000.0).wallets is None
    reached = bench.wallets_price(eco, "seeded-eigentrust", seeds, 1.0, limit=2_000).wallets
    assert reached is not None and reached < 100


# the Bazaar --------------------------------------------------------------------------------------------------------


def test_bazaar_items_carry_the_trust_score_and_trusted_evidence(tmp_path: Path) -> None:
    """The indexer API's Bazaar items hold, in `extensions.ghostpay`, the agent's evidence in trusted mints (paid
    calls, distinct payers, volume per trusted mint) and, once computed, its trust score: an honest agent's as the
    index has it, the junk-mint farm's none of its 200 calls and a trust of 0."""
    eco = bench.build_economy(buyers=60, sellers=12)
    db_url = f"sqlite:///{tmp_path / 'index.db'}"
    engine = connect(db_url)
    bench.index_economy(engine, eco)
    bench.configure(engine, eco, seeds=[])
    busiest = max(eco.paid_honest_agents(), key=lambda a: sum(p.agent == a for p in eco.payments))
    farm = eco.farms["junk"][0]

    def items(api: ServedApi) -> dict[str, dict[str, Any]]:
        answer = api.get("/discovery/resources", params={"limit": 100})
        assert answer.status_code == 200, answer.text
        found = [item["extensions"]["ghostpay"] for item in answer.json()["items"]]
        return {e["agent"]: e for e in found}

    with ServedApi(ApiSettings(db_url, webhooks=False)) as api:
        before = items(api)
        assert "trust" not in before[busiest]  # not computed yet: no score, the evidence already
        trust.recompute(engine)
        after = items(api)
    paid = [p for p in eco.payments if p.agent == busiest and not p.escrow]
    released = [p for p in eco.payments if p.agent == busiest and p.escrow]
    shown = after[busiest]["trustedEvidence"]
    assert before[busiest]["trustedEvidence"] == shown
    assert (shown["paidCalls"], shown["escrowReleases"]) == (len(paid), len(released))
    assert shown["payers"] == len({p.payer for p in paid + released})
    assert shown["volume"] == {eco.usdc: str(sum(p.amount for p in paid))}
    assert shown["text"].startswith(f"{len(paid)} paid calls from ")
    _, shares = bench.stored_scores(engine)
    assert after[busiest]["trust"]["share"] == pytest.approx(shares[busiest]) and shares[busiest] > 0
    junk = after[farm]
    assert junk["verifiedPaidCalls"] == bench.FARM_WALLETS * bench.FARM_CALLS  # on chain: every call counted
    assert (junk["trustedEvidence"]["paidCalls"], junk["trustedEvidence"]["payers"]) == (0, 0)
    assert junk["trustedEvidence"]["volume"] == {} and junk["trust"] == {"score": 0, "share": 0.0}
