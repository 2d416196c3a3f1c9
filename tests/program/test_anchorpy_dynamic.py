"""A client that knows nothing but idl/ghostpay.json: anchorpy's dynamic `Program` builds
every instruction, LiteSVM runs them, and anchorpy's coders decode the Agent account and
every event. This is what a third-party Anchor client sees, without our generated bindings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anchorpy import Context, EventParser, Idl, Program, Provider, Wallet
from solana.rpc.async_api import AsyncClient
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.sysvar import INSTRUCTIONS
from spl.token.constants import TOKEN_PROGRAM_ID

from ghostpay import instructions as generated
from ghostpay.pda import reputation_address
from ghostpay.types import TokenPrice, X402Config
from tests.program.svm import TOKEN_2022_PROGRAM_ID, InProcessChain as Chain

IDL_PATH = Path(__file__).resolve().parents[2] / "idl" / "ghostpay.json"
SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")
AGENT_SPACE = 2808


@pytest.fixture(scope="module")
def program() -> Program:
    idl_json = IDL_PATH.read_text()
    address = Pubkey.from_string(json.loads(idl_json)["address"])
    # An RPC client that is never used: instructions are only built, then sent through LiteSVM.
    provider = Provider(AsyncClient("http://127.0.0.1:1"), Wallet(Keypair()))
    return Program(Idl.from_json(idl_json), address, provider)


class Client:
    """Sends anchorpy-built instructions through LiteSVM and decodes with anchorpy alone."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.chain = Chain(program_id=program.program_id)
        self.parser = EventParser(program.program_id, program.coder)
        self.payer = self.chain.funded_keypair()

    def ix(self, name: str, *args: Any, accounts: dict[str, Pubkey], mints: list[Pubkey] = ()) -> Instruction:
        remaining = [AccountMeta(m, is_signer=False, is_writable=False) for m in mints]
        return self.program.instruction[name](*args, ctx=Context(accounts=accounts, remaining_accounts=remaining))

    def send(self, ix: Instruction, *signers: Keypair):
        return self.chain.send([ix], [self.payer, *signers])

    def events(self, logs: list[str]) -> list[Any]:
        events: list[Any] = []
        self.parser.parse_logs(logs, events.append)
        return events

    def agent(self, address: Pubkey) -> Any:
        account = self.chain.account(address)
        assert account is not None and account.owner == self.program.program_id
        return self.program.coder.accounts.decode(bytes(account.data))

    def agent_address(self, owner: Pubkey, agent_id: str) -> Pubkey:
        return Pubkey.find_program_address([b"agent", bytes(owner), agent_id.encode()], self.program.program_id)[0]


def only_event(client: Client, result, name: str) -> Any:
    assert result.ok, (result.error, result.logs)
    events = client.events(result.logs)
    assert [e.name for e in events] == [name]
    return events[0].data


def prices(tokens: list[Pubkey], price: int) -> list[dict[str, Any]]:
    """TokenPrice entries as dicts (see `x402`)."""
    return [{"mint": mint, "price": price} for mint in tokens]


def pairs(tokens: Any) -> list[tuple[Pubkey, int]]:
    """(mint, price) of decoded TokenPrice entries, whatever class the decoder made them."""
    return [(t.mint, t.price) for t in tokens]


def x402(payment: Pubkey, price: int, tokens: list[Pubkey], endpoint: str) -> dict[str, Any]:
    """X402Config as a dict: anchorpy encodes a dataclass with dataclasses.asdict, which deep-copies
    and so cannot handle solders Pubkeys; a plain dict is encoded as is."""
    return {"payment_address": payment, "accepted_tokens": prices(tokens, price), "service_endpoint": endpoint}


def test_idl_describes_every_instruction(program: Program) -> None:
    assert list(program.instruction) == [
        "register_agent",
        "update_agent",
        "configure_x402",
        "set_x402_price",
        "set_x402_tokens",
        "set_x402_endpoint",
        "disable_x402",
        "set_agent_active",
        "close_agent",
        "record_x402_payment",
        "submit_feedback",
        "close_receipt",
        "close_payer_stats",
        "refresh_reputation",
        "create_work_order",
        "accept_work_order",
        "submit_work_delivery",
        "reject_delivery",
        "release_payment",
        "claim_payment",
        "open_dispute",
        "resolve_dispute",
        "cancel_work_order",
        "decline_work_order",
        "claim_refund",
        "settle_by_default",
    ]
    assert program.program_id == Chain().program_id


def test_agent_lifecycle_with_the_dynamic_client(program: Program) -> None:
    client = Client(program)
    chain = client.chain
    owner = chain.funded_keypair()
    mint_a, mint_b = chain.create_mint(), chain.create_mint(token_program=TOKEN_2022_PROGRAM_ID)
    agent = client.agent_address(owner.pubkey(), "dyn")
    accts = {"agent": agent, "owner": owner.pubkey()}
    register_accts = {**accts, "reputation": reputation_address(agent)[0]}
    t0 = chain.svm.get_clock().unix_timestamp

    # register_agent, without x402 (system_program comes from the IDL's fixed address)
    result = client.send(
        client.ix(
            "register_agent",
            "dyn",
            4,
            "Dynamic",
            "made by anchorpy",
            "https://m.example",
            ["a", "b"],
            None,
            accounts={**register_accts, "system_program": SYSTEM_PROGRAM_ID},
        ),
        owner,
    )
    event = only_event(client, result, "AgentRegistered")
    assert (
        event.agent,
        event.owner,
        event.agent_id,
        event.name,
        event.agent_type,
        event.x402_enabled,
        event.registration,
        event.timestamp,
    ) == (agent, owner.pubkey(), "dyn", "Dynamic", 4, False, 1, t0)
    state = client.agent(agent)
    assert (state.owner, state.agent_id, state.name, state.description, state.metadata_uri, state.capabilities) == (
        owner.pubkey(),
        "dyn",
        "Dynamic",
        "made by anchorpy",
        "https://m.example",
        ["a", "b"],
    )
    assert state.is_active and not state.x402_enabled and state.created_at == state.updated_at == t0
    assert state.open_work_orders == 0 and state.reputation_score == 0

    # update_agent: Some / None
    chain.set_unix_timestamp(t1 := t0 + 10)
    result = client.send(client.ix("update_agent", 5, None, "new description", None, ["c"], accounts=accts), owner)
    event = only_event(client, result, "AgentUpdated")
    assert (event.agent, event.owner, event.agent_type, event.name, event.timestamp) == (
        agent,
        owner.pubkey(),
        5,
        "Dynamic",
        t1,
    )
    state = client.agent(agent)
    assert (state.agent_type, state.name, state.description, state.metadata_uri, state.capabilities) == (
        5,
        "Dynamic",
        "new description",
        "https://m.example",
        ["c"],
    )
    assert state.updated_at == t1 and state.created_at == t0

    # configure_x402 (struct argument, mints as remaining accounts)
    chain.set_unix_timestamp(t2 := t0 + 20)
    config = x402(owner.pubkey(), 2_000, [mint_a, mint_b], "https://dyn.example/call")
    result = client.send(client.ix("configure_x402", config, accounts=accts, mints=[mint_a, mint_b]), owner)
    event = only_event(client, result, "X402Configured")
    assert (
        event.agent,
        event.payment_address,
        pairs(event.accepted_tokens),
        event.service_endpoint,
        event.timestamp,
    ) == (agent, owner.pubkey(), [(mint_a, 2_000), (mint_b, 2_000)], "https://dyn.example/call", t2)
    state = client.agent(agent)
    assert state.x402_enabled and (
        state.x402_payment_address,
        pairs(state.x402_accepted_tokens),
        state.x402_service_endpoint,
    ) == (owner.pubkey(), [(mint_a, 2_000), (mint_b, 2_000)], "https://dyn.example/call")

    # set_x402_price: one mint repriced
    result = client.send(client.ix("set_x402_price", prices([mint_b], 3_000), accounts=accts), owner)
    event = only_event(client, result, "X402Configured")
    assert pairs(event.accepted_tokens) == [(mint_a, 2_000), (mint_b, 3_000)]
    assert pairs(client.agent(agent).x402_accepted_tokens) == [(mint_a, 2_000), (mint_b, 3_000)]

    # set_x402_tokens
    result = client.send(client.ix("set_x402_tokens", prices([mint_b], 3_000), accounts=accts, mints=[mint_b]), owner)
    event = only_event(client, result, "X402Configured")
    assert pairs(event.accepted_tokens) == [(mint_b, 3_000)]
    assert pairs(client.agent(agent).x402_accepted_tokens) == [(mint_b, 3_000)]

    # set_x402_endpoint
    result = client.send(client.ix("set_x402_endpoint", "http://other.example", accounts=accts), owner)
    event = only_event(client, result, "X402Configured")
    assert (event.service_endpoint, pairs(event.accepted_tokens), event.payment_address) == (
        "http://other.example",
        [(mint_b, 3_000)],
        owner.pubkey(),
    )
    assert client.agent(agent).x402_service_endpoint == "http://other.example"

    # disable_x402
    chain.set_unix_timestamp(t3 := t0 + 30)
    result = client.send(client.ix("disable_x402", accounts=accts), owner)
    event = only_event(client, result, "X402Disabled")
    assert (event.agent, event.timestamp) == (agent, t3)
    assert not client.agent(agent).x402_enabled

    # set_agent_active
    chain.set_unix_timestamp(t4 := t0 + 40)
    result = client.send(client.ix("set_agent_active", False, accounts=accts), owner)
    event = only_event(client, result, "AgentStatusChanged")
    assert (event.agent, event.is_active, event.timestamp) == (agent, False, t4)
    state = client.agent(agent)
    assert not state.is_active and state.updated_at == t4 and state.name == "Dynamic"

    # close_agent: the agent's rent back; its ReputationMetrics stays for a later registration
    rent = chain.account(agent).lamports
    owner_before = chain.balance(owner.pubkey())
    chain.set_unix_timestamp(t5 := t0 + 50)
    result = client.send(client.ix("close_agent", accounts=accts), owner)
    event = only_event(client, result, "AgentClosed")
    assert (event.agent, event.owner, event.refunded_lamports, event.timestamp) == (agent, owner.pubkey(), rent, t5)
    assert rent == chain.svm.minimum_balance_for_rent_exemption(AGENT_SPACE)
    assert chain.account(register_accts["reputation"]) is not None
    assert chain.balance(owner.pubkey()) == owner_before + rent
    closed = chain.account(agent)
    assert closed is None or closed.lamports == 0


def test_register_with_x402_struct(program: Program) -> None:
    client = Client(program)
    owner = client.chain.funded_keypair()
    mint = client.chain.create_mint()
    agent = client.agent_address(owner.pubkey(), "paid")
    config = x402(owner.pubkey(), 1_000_000_000_000, [mint], "https://paid.example")
    ix = client.ix(
        "register_agent",
        "paid",
        0,
        "Paid",
        "",
        "",
        [],
        config,
        accounts={
            "agent": agent,
            "owner": owner.pubkey(),
            "system_program": SYSTEM_PROGRAM_ID,
            "reputation": reputation_address(agent)[0],
        },
        mints=[mint],
    )
    event = only_event(client, client.send(ix, owner), "AgentRegistered")
    assert event.x402_enabled and event.registration == 1
    state = client.agent(agent)
    assert (pairs(state.x402_accepted_tokens), state.x402_service_endpoint, state.x402_payment_address) == (
        [(mint, 1_000_000_000_000)],
        "https://paid.example",
        owner.pubkey(),
    )


def test_dynamic_instructions_match_the_generated_bindings(program: Program) -> None:
    """Same IDL, two encoders: anchorpy's dynamic Program and our generated client must agree byte for byte."""
    client = Client(program)
    owner, agent, mint = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    accts = {"agent": agent, "owner": owner, "reputation": reputation_address(agent)[0]}
    config = X402Config(owner, [TokenPrice(mint, 5_000)], "https://x.example")
    config_dict = x402(owner, 5_000, [mint], "https://x.example")
    mints = [AccountMeta(mint, is_signer=False, is_writable=False)]
    payment_accts = {
        **accts,
        "payer_stats": Pubkey.new_unique(),
        "receipt": Pubkey.new_unique(),
        "payer": owner,
        "rent_payer": Pubkey.new_unique(),
        "payee_token_account": Pubkey.new_unique(),
        "source_token_account": Pubkey.new_unique(),
        "mint": mint,
        "instructions_sysvar": INSTRUCTIONS,
        "system_program": SYSTEM_PROGRAM_ID,
        "authority": owner,
    }
    pairs = [
        (
            client.ix(
                "register_agent",
                "id",
                1,
                "N",
                "d",
                "u",
                ["c"],
                config_dict,
                accounts={**accts, "system_program": SYSTEM_PROGRAM_ID},
                mints=[mint],
            ),
            generated.register_agent(
                dict(
                    agent_id="id",
                    agent_type=1,
                    name="N",
                    description="d",
                    metadata_uri="u",
                    capabilities=["c"],
                    x402=config,
                ),
                accts,
                remaining_accounts=mints,
            ),
        ),
        (
            client.ix("update_agent", None, "N", None, "u", [], accounts=accts),
            generated.update_agent(
                dict(agent_type=None, name="N", description=None, metadata_uri="u", capabilities=[]), accts
            ),
        ),
        (
            client.ix("configure_x402", config_dict, accounts=accts, mints=[mint]),
            generated.configure_x402({"config": config}, accts, remaining_accounts=mints),
        ),
        (
            client.ix("set_x402_price", prices([mint], 7_777), accounts=accts),
            generated.set_x402_price({"prices": [TokenPrice(mint, 7_777)]}, accts),
        ),
        (
            client.ix("set_x402_tokens", prices([mint], 7_777), accounts=accts, mints=[mint]),
            generated.set_x402_tokens({"accepted_tokens": [TokenPrice(mint, 7_777)]}, accts, remaining_accounts=mints),
        ),
        (
            client.ix("set_x402_endpoint", "https://e", accounts=accts),
            generated.set_x402_endpoint({"service_endpoint": "https://e"}, accts),
        ),
        (client.ix("disable_x402", accounts=accts), generated.disable_x402(accts)),
        (client.ix("set_agent_active", True, accounts=accts), generated.set_agent_active({"is_active": True}, accts)),
        (client.ix("close_agent", accounts=accts), generated.close_agent(accts)),
        (
            client.ix("record_x402_payment", 10_000, list(range(32)), accounts=payment_accts),
            generated.record_x402_payment({"amount": 10_000, "reference": list(range(32))}, payment_accts),
        ),
        (
            client.ix("submit_feedback", list(range(32)), True, 250, 5, accounts=payment_accts),
            generated.submit_feedback(
                {"reference": list(range(32)), "success": True, "response_time_ms": 250, "rating": 5}, payment_accts
            ),
        ),
        (client.ix("close_receipt", accounts=payment_accts), generated.close_receipt(payment_accts)),
        (client.ix("close_payer_stats", accounts=payment_accts), generated.close_payer_stats(payment_accts)),
        (client.ix("refresh_reputation", accounts=accts), generated.refresh_reputation(accts)),
    ]
    wo = {
        name: Pubkey.new_unique()
        for name in (
            "work_order",
            "vault",
            "client",
            "client_token_account",
            "provider_token_account",
            "provider",
            "arbiter",
            "party",
        )
    }
    wo |= {
        "agent": agent,
        "reputation": accts["reputation"],
        "mint": mint,
        "token_program": TOKEN_PROGRAM_ID,
        "system_program": SYSTEM_PROGRAM_ID,
    }
    terms = dict(
        order_id=7,
        amount=5_000_000,
        deadline=1_900_000_000,
        review_period_seconds=3_600,
        arbiter=wo["arbiter"],
        title="T",
        description="D",
        requirements=["r1", "r2"],
    )
    pairs += [
        (client.ix("create_work_order", *terms.values(), accounts=wo), generated.create_work_order(terms, wo)),
        (
            client.ix("accept_work_order", wo["arbiter"], accounts=wo),
            generated.accept_work_order({"arbiter": wo["arbiter"]}, wo),
        ),
        (
            client.ix("submit_work_delivery", "ipfs://x", list(range(32)), accounts=wo),
            generated.submit_work_delivery({"deliverable_uri": "ipfs://x", "content_hash": list(range(32))}, wo),
        ),
        (client.ix("reject_delivery", "no", accounts=wo), generated.reject_delivery({"reason": "no"}, wo)),
        (client.ix("release_payment", 5, accounts=wo), generated.release_payment({"amount": 5}, wo)),
        (client.ix("claim_payment", accounts=wo), generated.claim_payment(wo)),
        (client.ix("open_dispute", "late", accounts=wo), generated.open_dispute({"reason": "late"}, wo)),
        (client.ix("resolve_dispute", 2_500, accounts=wo), generated.resolve_dispute({"client_share_bps": 2_500}, wo)),
        (client.ix("cancel_work_order", accounts=wo), generated.cancel_work_order(wo)),
        (client.ix("decline_work_order", accounts=wo), generated.decline_work_order(wo)),
        (client.ix("claim_refund", accounts=wo), generated.claim_refund(wo)),
        (client.ix("settle_by_default", accounts=wo), generated.settle_by_default(wo)),
    ]
    assert len(pairs) == len(program.instruction)
    for dynamic, static in pairs:
        assert dynamic.program_id == static.program_id == program.program_id
        assert bytes(dynamic.data) == bytes(static.data)
        assert list(dynamic.accounts) == list(static.accounts)


def test_program_errors_are_named_in_the_idl(program: Program) -> None:
    """A refusal seen by the dynamic client: its custom code maps to the IDL's error name."""
    client = Client(program)
    chain = client.chain
    owner, intruder = chain.funded_keypair(), chain.funded_keypair()
    agent = client.agent_address(owner.pubkey(), "mine")
    assert client.send(
        client.ix(
            "register_agent",
            "mine",
            0,
            "Mine",
            "",
            "",
            [],
            None,
            accounts={
                "agent": agent,
                "owner": owner.pubkey(),
                "reputation": reputation_address(agent)[0],
                "system_program": SYSTEM_PROGRAM_ID,
            },
        ),
        owner,
    ).ok
    before = chain.account(agent)

    result = client.send(
        client.ix("set_agent_active", False, accounts={"agent": agent, "owner": intruder.pubkey()}), intruder
    )

    assert result.error == "Unauthorized" and not client.events(result.logs)
    codes = {e.name: e.code for e in program.idl.errors}
    assert any(f"Error Number: {codes['Unauthorized']}." in line for line in result.logs)
    assert chain.account(agent) == before and client.agent(agent).is_active
