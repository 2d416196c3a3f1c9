"""Agents through the SDK client: register with x402 in one transaction, every update, get/list/search."""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import pytest
from solders.keypair import Keypair

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.exceptions import AccountNotFound, InvalidArgument
from ghostpay.pda import agent_address
from ghostpay.tokens import Atomic
from tests.sdk.conftest import create_mint, fund


async def test_register_with_x402_in_one_transaction_and_manage(client: GhostPayClient, net, usdc) -> None:
    other = create_mint(net, 9)
    result = await client.register_agent(
        "translator",
        "Translator",
        agent_type=2,
        description="EN<->FR",
        capabilities=["translate", "summarize"],
        x402=X402Settings({usdc: Decimal("0.015")}, "https://t.example/api"),
    )
    assert result.address == agent_address(client.wallet, "translator")[0]
    assert result.compute_units and result.compute_units > 0
    registered = result.event("AgentRegistered")
    assert registered.x402_enabled and registered.registration == 1

    info = await client.get_agent("translator")
    assert (info.name, info.agent_type, info.capabilities) == ("Translator", 2, ["translate", "summarize"])
    assert info.x402_enabled and info.is_active and info.prices == {usdc: Decimal("0.015")} and info.registration == 1
    assert info.accepted_tokens == [usdc] and info.payment_address == client.wallet

    await client.update_agent("translator", name="Translator Pro", capabilities=["translate"])
    await client.set_price("translator", {usdc: Decimal("0.02")})
    await client.set_tokens("translator", {usdc: Decimal("0.02"), other: Decimal("0.0003")})
    await client.set_endpoint("translator", "https://t.example/v2")
    info = await client.get_agent(result.address)
    assert (info.name, info.capabilities) == ("Translator Pro", ["translate"])
    assert info.prices == {usdc: Decimal("0.02"), other: Decimal("0.0003")}  # whole tokens of each mint
    assert info.prices_atomic == {usdc: 20_000, other: 300_000}  # each in its own mint's decimals
    assert info.accepted_tokens == [usdc, other] and info.endpoint == "https://t.example/v2"
    configured = (await client.set_price("translator", {other: Decimal("0.0005")})).event("X402Configured")
    assert [(t.mint, t.price) for t in configured.accepted_tokens] == [(usdc, 20_000), (other, 500_000)]

    pricing = await client.get_agent_pricing("translator")
    assert [(t.mint, t.price, t.price_atomic, t.decimals) for t in pricing.tokens] == [
        (usdc, Decimal("0.02"), 20_000, 6),
        (other, Decimal("0.0005"), 500_000, 9),
    ]
    assert isinstance(pricing.price_in(other).price, Decimal)
    with pytest.raises(InvalidArgument):
        pricing.price_in(Keypair().pubkey())

    disabled = await client.disable_x402("translator")
    assert disabled.event("X402Disabled").agent == result.address
    assert not (await client.get_agent("translator")).x402_enabled
    await client.configure_x402("translator", X402Settings({other: Decimal(1)}, "https://t.example/v3"))
    info = await client.get_agent("translator")
    assert info.x402_enabled and info.prices_atomic == {other: 10**9} and info.accepted_tokens == [other]

    await client.deactivate("translator")
    assert not (await client.get_agent("translator")).is_active
    await client.activate("translator")
    assert (await client.get_agent("translator")).is_active

    closed = await client.close_agent("translator")
    assert closed.event("AgentClosed").owner == client.wallet
    with pytest.raises(AccountNotFound):
        await client.get_agent("translator")


async def test_price_with_too_many_decimals_is_refused_before_sending(client: GhostPayClient, usdc) -> None:
    with pytest.raises(InvalidArgument):
        await client.register_agent("x", "X", x402=X402Settings({usdc: Decimal("0.0000001")}, "https://x.example"))
    with pytest.raises(InvalidArgument):
        await client.register_agent("x", "X", x402=X402Settings({usdc: 0.5}, "https://x.example"))  # type: ignore[dict-item]


async def test_list_and_search(net, usdc) -> None:
    eurc = create_mint(net, 2)
    async with GhostPayClient(net.http_url, fund(net)) as a, GhostPayClient(net.http_url, fund(net)) as b:
        await a.register_agent(
            "cheap",
            "Cheap",
            capabilities=["search-test", "ocr"],
            x402=X402Settings({usdc: Decimal("0.001")}, "https://c.example"),
        )
        await a.register_agent(
            "dear",
            "Dear",
            capabilities=["search-test"],  # eurc has 2 decimals
            x402=X402Settings({usdc: Decimal("5"), eurc: Decimal("10.00")}, "https://d.example"),
        )
        await a.register_agent("free", "Free", capabilities=["search-test"])
        await b.register_agent(
            "sleepy",
            "Sleepy",
            capabilities=["search-test", "ocr"],
            x402=X402Settings({usdc: Decimal("0.002")}, "https://s.example"),
        )
        await b.deactivate("sleepy")

        assert [i.agent_id for i in await a.list_agents()] == ["cheap", "dear", "free"]
        assert [i.agent_id for i in await a.list_agents(b.wallet)] == ["sleepy"]

        async def ids(**filters) -> set[str]:
            return {i.agent_id for i in await a.search_agents(capability="search-test", **filters)}

        assert await ids() == {"cheap", "dear", "free"}  # inactive agents are hidden by default
        assert await ids(active=None) == {"cheap", "dear", "free", "sleepy"}
        assert await ids(active=False) == {"sleepy"}
        assert await ids(x402_enabled=True) == {"cheap", "dear"}
        assert await ids(x402_enabled=False) == {"free"}
        assert await ids(token=eurc) == {"dear"}
        assert await ids(token=usdc, max_price=Decimal("0.01")) == {"cheap"}
        assert await ids(token=usdc, max_price=Atomic(5_000_000)) == {"cheap", "dear"}
        assert await ids(token=eurc, max_price=Decimal("10")) == {"dear"}  # 10.00 of eurc, not 5 USDC's units
        assert await ids(token=eurc, max_price=Decimal("9.99")) == set()
        assert {i.agent_id for i in await a.search_agents(capability="OCR", active=None)} == {"cheap", "sleepy"}
        assert await ids(min_reputation=1) == set()  # no payments yet: every score is 0
        assert [
            i.agent_id for i in await a.search_agents(capability="search-test", x402_enabled=True, sort="price")
        ] == ["cheap", "dear"]
        assert [i.agent_id for i in await a.search_agents(capability="search-test", sort="name", limit=2)] == [
            "Cheap".lower(),
            "dear",
        ]
        with pytest.raises(InvalidArgument):
            await a.search_agents(max_price=Decimal(1))  # each mint has its own price: name one
        with pytest.raises(InvalidArgument):
            await a.search_agents(max_price=Atomic(1))

        # memcmp does the head-of-account filters on the node
        with mock.patch.object(a, "_stream_program_accounts", wraps=a._stream_program_accounts) as gpa:
            await a.search_agents(x402_enabled=True, owner=b.wallet, capability="ocr")
        filters = gpa.call_args.args[0]
        memcmps = {f["memcmp"]["offset"]: f["memcmp"]["bytes"] for f in filters if "memcmp" in f}
        assert len(filters) == 4 and memcmps[8] == str(b.wallet) and memcmps[40] == "2" and memcmps[41] == "2"
        assert 0 in memcmps


async def test_read_only_client_reads(net, client: GhostPayClient) -> None:
    await client.register_agent("ro", "Read only")
    async with GhostPayClient(net.http_url, Keypair()) as reader:
        assert (await reader.get_agent(client.agent_address("ro"))).name == "Read only"
