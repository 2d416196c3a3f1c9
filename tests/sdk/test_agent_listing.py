"""The chain search's lean reader (`discovery.read_listing`, `AgentQuery.top`) answers as the full decoder does.

Property tests over generated Agent accounts, bounded by count (GHOSTPAY_PROPERTY_COUNT raises it)."""

from __future__ import annotations

import json
import os
import random
from dataclasses import replace

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from bench.search_scale import account_data, realistic_agent
from ghostpay.accounts import Agent
from ghostpay.borsh_layout import DecodeError, decode_account
from ghostpay.discovery import HEAD, AgentListing, AgentQuery, JsonArrayStream, read_listing, read_tokens
from ghostpay.types.token_price import TokenPrice

COUNT = int(os.environ.get("GHOSTPAY_PROPERTY_COUNT", "300"))
MINTS = [Keypair().pubkey() for _ in range(10)]


def odd_agent(rng: random.Random, index: int) -> Agent:
    """A realistic agent, or one at an edge: no tokens or capabilities, every field at its longest, non-ASCII
    text, tied scores and prices."""
    agent = realistic_agent(rng, index, MINTS)
    agent = replace(agent, reputation_score=rng.choice((0, 5_000, 10_000)), name=rng.choice((agent.name, "Twin")))
    edge = rng.randrange(4)
    if edge == 0:
        return replace(agent, x402_accepted_tokens=[], capabilities=[], description="", x402_enabled=False)
    if edge == 1:
        return replace(
            agent,
            x402_accepted_tokens=[TokenPrice(m, rng.choice((1, 1_000))) for m in MINTS],
            agent_id="i" * 32,
            name="n" * 64,
            description="d" * 512,
            metadata_uri="u" * 200,
            x402_service_endpoint="e" * 256,
            capabilities=[f"{c}".ljust(32, "x") for c in "abcdefgh"],
        )
    if edge == 2:
        return replace(agent, name="Ägent 🤖 ünïcode", capabilities=["Übersetzen", "TRANSLATE"])
    return agent


def test_the_lean_listing_equals_the_full_decode_on_its_fields() -> None:
    rng = random.Random(31)
    for index in range(COUNT):
        data = account_data(odd_agent(rng, index))
        assert read_listing(data) == AgentListing.of(decode_account("Agent", data))


def test_a_truncated_or_foreign_account_is_refused_by_both_decoders_alike() -> None:
    rng = random.Random(32)
    for index in range(COUNT // 3):
        data = account_data(odd_agent(rng, index))
        cut = data[: rng.randrange(len(data.rstrip(b"\0")) + 1)]
        try:
            full = AgentListing.of(decode_account("Agent", cut))
        except DecodeError:
            with pytest.raises(DecodeError):
                read_listing(cut)
        else:
            assert read_listing(cut) == full
        try:  # a token filter reads the tokens first: what they refuse, the full listing refuses too
            read_tokens(cut)
        except DecodeError:
            with pytest.raises(DecodeError):
                read_listing(cut)
    with pytest.raises(DecodeError, match="not an Agent"):
        read_listing(bytes(8) + data[8:])


QUERIES = [
    AgentQuery(sort="reputation", limit=7),
    AgentQuery(sort="price", limit=5),
    AgentQuery(sort="price", token=MINTS[3], max_price=1_000_000, limit=9),
    AgentQuery(sort="name", capability="translate", limit=4),
    AgentQuery(sort="newest", x402_enabled=False, active=None),
    AgentQuery(sort="oldest", min_reputation=5_000, limit=3),
    AgentQuery(sort="calls", token=MINTS[0], limit=11),
    AgentQuery(active=False),
    AgentQuery(owner=None, capability="Übersetzen", sort="reputation", limit=2),
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.sort}-{q.limit}")
def test_the_lean_search_keeps_what_the_full_search_keeps(query: AgentQuery) -> None:
    """Same agents in the same order (ties by address), and the same count of matches, as decoding every
    account in full and sorting them all."""
    rng = random.Random(33)
    accounts = [(Keypair().pubkey(), account_data(odd_agent(rng, i))) for i in range(max(COUNT // 2, 60))]
    kept, total = query.top((bytes(address), data) for address, data in accounts)
    decoded = [(address, decode_account("Agent", data)) for address, data in accounts]
    expected = query.apply(decoded)
    assert [Pubkey(a) for a, _ in kept] == [a for a, _ in expected]
    assert total == len(replace(query, limit=None).apply(decoded))
    assert total > 0


def test_the_answer_is_parsed_as_it_arrives_whatever_the_chunks() -> None:
    """`JsonArrayStream` yields each account as soon as its JSON is complete, in any chunking; an answer
    without the array (an error) is kept to be read."""
    items = [{"pubkey": str(Keypair().pubkey()), "account": {"data": ["a]b,c{", "base64"], "n": i}} for i in range(40)]
    answer = json.dumps({"jsonrpc": "2.0", "result": items, "id": 1}, separators=(",", ":"))
    rng = random.Random(34)
    for _ in range(30):
        stream, got, position = JsonArrayStream("result"), [], 0
        while position < len(answer):
            step = rng.randint(1, 200)
            got += stream.feed(answer[position : position + step])
            position += step
        assert got == items and stream.done
    error = JsonArrayStream("result")
    assert error.feed('{"jsonrpc":"2.0","error":{"code":-32602,"message":"bad"},"id":1}') == []
    error.close()
    assert not error.done and json.loads(error.text)["error"]["message"] == "bad"


def test_a_head_only_search_leaves_out_an_account_corrupt_past_its_head() -> None:
    """Sorted by reputation, accounts are read by their head; the best one, whose tail does not decode, is left
    out when the kept ones are read in full, and the next best takes its place."""
    rng = random.Random(35)
    agents = [replace(realistic_agent(rng, i, MINTS), reputation_score=100 + i, is_active=True) for i in range(40)]
    accounts = [(bytes(Keypair().pubkey()), account_data(agent)) for agent in agents]
    best, tokens = accounts[-1][1], HEAD["Agent"]["x402_accepted_tokens"]
    corrupt = best[:tokens] + (10_000).to_bytes(4, "little") + best[tokens + 4 :]  # 10,000 tokens: past the end
    with pytest.raises(DecodeError):
        read_listing(corrupt)
    query = AgentQuery(sort="reputation", limit=3)
    assert query.reads_head_only()
    kept, _ = query.top([*accounts[:-1], (accounts[-1][0], corrupt)])
    assert [address for address, _ in kept] == [address for address, _ in accounts[-2:-5:-1]]
