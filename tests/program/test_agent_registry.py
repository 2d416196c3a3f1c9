"""The agent registry after registration, end to end through LiteSVM: update_agent,
configure_x402 and its setters, disable_x402, set_agent_active and close_agent, plus
register_agent's x402 validation.

Every refused transaction is checked twice: the error NAME (IDL / Anchor) and that nothing
moved. A separate keypair pays the fees (5000 lamports per signature, charged even on
failure) so the owner's and the agent's lamports and data must be exactly unchanged.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from ghostpay.accounts import Agent
from ghostpay.agent_instructions import AgentProfile, build_register_agent, mint_accounts
from ghostpay.discovery import head_offsets
from ghostpay.instructions import (
    close_agent,
    configure_x402,
    disable_x402,
    register_agent,
    set_agent_active,
    set_x402_endpoint,
    set_x402_price,
    set_x402_tokens,
    update_agent,
)
from ghostpay.pda import agent_address, reputation_address
from ghostpay.types import TokenPrice, X402Config
from tests.program.conftest import ENDPOINT, FEE, PROFILE, World, assert_refused, registry_world, snapshot
from tests.program.svm import (
    MINT_LEN,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    InProcessChain as Chain,
    transfer_fee_config,
)

PACKET_DATA_SIZE = 1232  # the largest transaction a validator accepts
AGENT_SPACE = 2808
REPUTATION_METRICS_SPACE = 185
OPEN_WORK_ORDERS_OFFSET = head_offsets("Agent")["open_work_orders"]
UPDATED_AT_OFFSET = head_offsets("Agent")["updated_at"]
SYSTEM_PROGRAM_ID = Pubkey.default()


def priced(mints: list[Pubkey], price: int = 10_000) -> list[TokenPrice]:
    """Each mint at the same atomic price."""
    return [TokenPrice(mint, price) for mint in mints]


def x402_config(payment: Pubkey, price: int, mints: list[Pubkey], endpoint: str) -> X402Config:
    return X402Config(payment, priced(mints, price), endpoint)


def pairs(tokens) -> list[tuple[Pubkey, int]]:
    """(mint, price) of TokenPrice entries from an account or an event (events decode to their own classes)."""
    return [(token.mint, token.price) for token in tokens]


def mints_of(agent: Agent) -> list[Pubkey]:
    return [token.mint for token in agent.x402_accepted_tokens]


def price_of(agent: Agent) -> int:
    """The price in the agent's first accepted mint."""
    return agent.x402_accepted_tokens[0].price


OWNER_ONLY = [
    "update_agent",
    "configure_x402",
    "set_x402_price",
    "set_x402_tokens",
    "set_x402_endpoint",
    "disable_x402",
    "set_agent_active",
    "close_agent",
]
WITH_ARGS = [name for name in OWNER_ONLY if name not in ("disable_x402", "close_agent")]


# ---- world ------------------------------------------------------------------------------


def register(
    chain: Chain, payer: Keypair, owner: Keypair, profile: AgentProfile = PROFILE, x402: X402Config | None = None
) -> Pubkey:
    result = chain.send([build_register_agent(owner.pubkey(), profile, x402)], [payer, owner])
    assert result.ok, result.logs
    return agent_address(owner.pubkey(), profile.agent_id)[0]


@pytest.fixture
def world() -> World:
    """An agent registered with x402 enabled (price 10_000, one SPL Token mint)."""
    return registry_world(x402=True)


@pytest.fixture
def plain_world() -> World:
    """An agent registered without x402."""
    return registry_world(x402=False)


def accounts(agent: Pubkey, owner: Pubkey) -> dict[str, Pubkey]:
    """Accounts of the owner-only instructions."""
    return {"agent": agent, "owner": owner}


def valid_ix(name: str, agent: Pubkey, owner: Pubkey, mint: Pubkey) -> Instruction:
    """A request that succeeds on the `world` agent, so a failure is down to the one thing a test changes."""
    accts = accounts(agent, owner)
    if name == "update_agent":
        return update_agent(
            dict(agent_type=2, name="Renamed", description=None, metadata_uri=None, capabilities=None), accts
        )
    if name == "configure_x402":
        return configure_x402(
            {"config": x402_config(owner, 20_000, [mint], "https://new.example.com")},
            accts,
            remaining_accounts=mint_accounts([mint]),
        )
    if name == "set_x402_price":
        return set_x402_price({"prices": priced([mint], 20_000)}, accts)
    if name == "set_x402_tokens":
        return set_x402_tokens({"accepted_tokens": priced([mint])}, accts, remaining_accounts=mint_accounts([mint]))
    if name == "set_x402_endpoint":
        return set_x402_endpoint({"service_endpoint": "https://new.example.com"}, accts)
    if name == "disable_x402":
        return disable_x402(accts)
    if name == "set_agent_active":
        return set_agent_active({"is_active": False}, accts)
    if name == "close_agent":
        return close_agent(accts)
    raise AssertionError(name)


def world_ix(world: World, name: str) -> Instruction:
    return valid_ix(name, world.agent, world.owner.pubkey(), world.usdc)


def with_metas(ix: Instruction, metas: list[AccountMeta]) -> Instruction:
    return Instruction(ix.program_id, ix.data, metas)


def packet_size(instructions: list[Instruction], signers: list[Keypair]) -> int:
    message = Message.new_with_blockhash(instructions, signers[0].pubkey(), Hash.default())
    return len(bytes(Transaction(signers, message, Hash.default())))


def ok(world: World, instructions: list[Instruction], *signers: Keypair):
    """Send and expect success; the transaction must also fit a real packet (LiteSVM does not check)."""
    signers = signers or (world.owner,)
    assert packet_size(instructions, [world.facilitator, *signers]) <= PACKET_DATA_SIZE
    result = world.send(instructions, *signers)
    assert result.ok, (result.error, result.logs)
    return result


# ---- shared cases ---------------------------------------------------------------------------

# name -> (builder of (accepted_tokens, mint accounts passed) on a chain, expected error)
TokenCase = Callable[[Chain], tuple[list[Pubkey], list[Pubkey]]]


def _same(keys: list[Pubkey]) -> tuple[list[Pubkey], list[Pubkey]]:
    return keys, keys


def _raw_account(chain: Chain, data: bytes, owner: Pubkey) -> Pubkey:
    key = Keypair().pubkey()
    chain.set_account(key, data, owner=owner)
    return key


def _mint_data(size: int = MINT_LEN, initialized: bool = True, account_type: int | None = None) -> bytes:
    data = bytearray(size)
    data[44] = 6
    data[45] = int(initialized)
    if account_type is not None:
        data[165] = account_type
    return bytes(data)


def _truncated_extension_mint(chain: Chain) -> Pubkey:
    """A neutral extension whose declared length runs past the end of the account."""
    mint = chain.create_token_2022_mint([(3, bytes(32))])
    data = bytes(chain.account(mint).data)
    chain.set_account(mint, data[:-8], owner=TOKEN_2022_PROGRAM_ID)
    return mint


def _two_mints(chain: Chain) -> tuple[Pubkey, Pubkey]:
    return chain.create_mint(), chain.create_mint()


BAD_TOKENS: dict[str, tuple[TokenCase, str]] = {
    "no tokens": (lambda c: ([], []), "NoAcceptedTokens"),
    "11 tokens": (lambda c: _same([c.create_mint() for _ in range(11)]), "TooManyAcceptedTokens"),
    "duplicate": (lambda c: (lambda m: ([m, m], [m, m]))(c.create_mint()), "DuplicateToken"),
    "duplicate later": (lambda c: (lambda a, b: ([a, b, a], [a, b, a]))(*_two_mints(c)), "DuplicateToken"),
    "default pubkey": (lambda c: _same([SYSTEM_PROGRAM_ID]), "DefaultTokenNotAllowed"),
    "funded wallet": (lambda c: _same([c.funded_keypair().pubkey()]), "NotAMint"),
    "82 bytes of a random program": (lambda c: _same([_raw_account(c, _mint_data(), Pubkey.new_unique())]), "NotAMint"),
    "uninitialized mint": (
        lambda c: _same([_raw_account(c, _mint_data(initialized=False), TOKEN_PROGRAM_ID)]),
        "NotAMint",
    ),
    "SPL token account": (lambda c: _same([_raw_account(c, _mint_data(165), TOKEN_PROGRAM_ID)]), "NotAMint"),
    "Token-2022 token account": (
        lambda c: _same([_raw_account(c, _mint_data(200, account_type=2), TOKEN_2022_PROGRAM_ID)]),
        "NotAMint",
    ),
    "second token not a mint": (lambda c: _same([c.create_mint(), c.funded_keypair().pubkey()]), "NotAMint"),
    "other mint passed": (lambda c: (lambda a, b: ([a], [b]))(*_two_mints(c)), "MintAccountMismatch"),
    "mint account missing": (lambda c: ([c.create_mint()], []), "MintAccountMismatch"),
    "one of two missing": (lambda c: (lambda a, b: ([a, b], [a]))(*_two_mints(c)), "MintAccountMismatch"),
    "mints out of order": (lambda c: (lambda a, b: ([a, b], [b, a]))(*_two_mints(c)), "MintAccountMismatch"),
    "extra mint account": (lambda c: (lambda a, b: ([a], [a, b]))(*_two_mints(c)), "MintAccountMismatch"),
    # Token-2022 extensions an x402 receipt cannot account for (the escrow's policy): the payee would
    # receive less than the receipt says, or the payment could be taken back or never arrive.
    "transfer fee": (
        lambda c: _same([c.create_token_2022_mint([(1, transfer_fee_config(5_000))])]),
        "MintHasTransferFee",
    ),
    "100% transfer fee": (
        lambda c: _same([c.create_token_2022_mint([(1, transfer_fee_config(10_000))])]),
        "MintHasTransferFee",
    ),
    "transfer hook": (lambda c: _same([c.create_token_2022_mint([(14, bytes(64))])]), "MintHasTransferHook"),
    "permanent delegate": (lambda c: _same([c.create_token_2022_mint([(12, bytes(32))])]), "MintExtensionNotSupported"),
    "non-transferable": (lambda c: _same([c.create_token_2022_mint([(9, b"")])]), "MintExtensionNotSupported"),
    "default-frozen accounts": (
        lambda c: _same([c.create_token_2022_mint([(6, bytes([2]))])]),
        "MintExtensionNotSupported",
    ),
    "pausable (an unknown extension)": (
        lambda c: _same([c.create_token_2022_mint([(26, bytes(33))])]),
        "MintExtensionNotSupported",
    ),
    "extension running past the account": (
        lambda c: _same([_truncated_extension_mint(c)]),
        "MintExtensionNotSupported",
    ),
    "fee mint after a good one": (
        lambda c: _same([c.create_mint(), c.create_token_2022_mint([(1, transfer_fee_config(1))])]),
        "MintHasTransferFee",
    ),
    # Accounts whose bytes look like a mint's to a careless check.
    "Token-2022 multisig shaped like a mint": (
        lambda c: _same([_raw_account(c, _mint_data(355, account_type=1), TOKEN_2022_PROGRAM_ID)]),
        "NotAMint",
    ),
    "SPL multisig shaped like a mint": (
        lambda c: _same([_raw_account(c, _mint_data(355, account_type=1), TOKEN_PROGRAM_ID)]),
        "NotAMint",
    ),
    "Token-2022 token account with the mint flag byte": (
        lambda c: _same([_raw_account(c, _mint_data(165, account_type=None), TOKEN_2022_PROGRAM_ID)]),
        "NotAMint",
    ),
}

GOOD_TOKENS: dict[str, TokenCase] = {
    "SPL Token mint": lambda c: _same([c.create_mint()]),
    "Token-2022 mint": lambda c: _same([c.create_mint(token_program=TOKEN_2022_PROGRAM_ID)]),
    "Token-2022 mint with extensions": lambda c: _same(
        [_raw_account(c, _mint_data(234, account_type=1), TOKEN_2022_PROGRAM_ID)]
    ),
    "Token-2022 mint with neutral extensions": lambda c: _same(
        [c.create_token_2022_mint([(3, bytes(32)), (6, bytes([1])), (18, bytes(64))])]
    ),  # close authority, default Initialized, metadata ptr
    "10 mints of both programs": lambda c: _same(
        [c.create_mint(token_program=(TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)[i % 2]) for i in range(10)]
    ),
}

BAD_ENDPOINTS = {
    "257 bytes": ("https://" + "a" * 249, "EndpointTooLong"),
    "ftp": ("ftp://x", "InvalidEndpoint"),
    "scheme only": ("https://", "InvalidEndpoint"),
    "http scheme only": ("http://", "InvalidEndpoint"),
    "space": ("https://a b", "InvalidEndpoint"),
    "newline": ("https://a\nb", "InvalidEndpoint"),
    "DEL": ("https://a\x7f", "InvalidEndpoint"),
    "empty": ("", "InvalidEndpoint"),
    "no scheme": ("agent.example.com", "InvalidEndpoint"),
    "tab inside an 8-byte word": ("https://aaaaaaa\tbbbbbbbb", "InvalidEndpoint"),
    "non-ASCII (IRIs are percent-encoded)": ("https://ex\u00e4mple.com", "InvalidEndpoint"),
    "upper-case scheme": ("HTTPS://x", "InvalidEndpoint"),
    "one slash": ("https:/x", "InvalidEndpoint"),
}
GOOD_ENDPOINTS = [
    "https://" + "a" * 248,
    "http://x",
    "http://127.0.0.1:8080/call?x=1",
    "https://x",
    "https://ex%C3%A4mple.com/~a!$&'()*+,;=:@",
]

BAD_PRICES = [0, 1_000_000_000_001, 2**64 - 1]
GOOD_PRICES = [1, 1_000_000_000_000]

# update_agent / register_agent profile fields -> expected error
BAD_PROFILE = {
    "name 65 bytes": ({"name": "n" * 65}, "NameInvalid"),
    "name 33 two-byte chars": ({"name": "é" * 33}, "NameInvalid"),
    "empty name": ({"name": ""}, "NameInvalid"),
    "description 513 bytes": ({"description": "d" * 513}, "DescriptionTooLong"),
    "metadata_uri 201 bytes": ({"metadata_uri": "u" * 201}, "MetadataUriTooLong"),
    "9 capabilities": ({"capabilities": [f"c{i}" for i in range(9)]}, "TooManyCapabilities"),
    "capability 33 bytes": ({"capabilities": ["ok", "c" * 33]}, "CapabilityInvalid"),
    "empty capability": ({"capabilities": [""]}, "CapabilityInvalid"),
}
MAX_PROFILE = dict(
    name="é" * 32, description="d" * 512, metadata_uri="u" * 200, capabilities=[f"{i}".ljust(32, "c") for i in range(8)]
)


# ---- every owner-only instruction: the happy control and the account checks -------------------


@pytest.mark.parametrize("name", OWNER_ONLY)
def test_valid_request_succeeds(world: World, name: str) -> None:
    """The control for the refusals below: the unmodified request goes through."""
    ok(world, [world_ix(world, name)])


@pytest.mark.parametrize("name", OWNER_ONLY)
def test_owner_not_signing_is_account_not_signer(world: World, name: str) -> None:
    ix = world_ix(world, name)
    metas = [
        AccountMeta(m.pubkey, False, m.is_writable) if m.pubkey == world.owner.pubkey() else m for m in ix.accounts
    ]
    result = assert_refused(world, [with_metas(ix, metas)], [], "AccountNotSigner")
    assert any("AnchorError caused by account: owner. Error Code: AccountNotSigner" in line for line in result.logs)


@pytest.mark.parametrize("name", OWNER_ONLY)
def test_other_signer_is_unauthorized(world: World, name: str) -> None:
    intruder = world.chain.funded_keypair()
    ix = valid_ix(name, world.agent, intruder.pubkey(), world.usdc)
    assert_refused(world, [ix], [intruder], "Unauthorized", watch=[intruder.pubkey()])


@pytest.mark.parametrize("name", OWNER_ONLY)
def test_owner_of_another_agent_is_unauthorized(world: World, name: str) -> None:
    """Owning an agent gives no rights over someone else's."""
    other = world.chain.funded_keypair()
    other_agent = register(world.chain, world.facilitator, other)
    ix = valid_ix(name, world.agent, other.pubkey(), world.usdc)
    assert_refused(world, [ix], [other], "Unauthorized", watch=[other.pubkey(), other_agent])


@pytest.mark.parametrize("name", OWNER_ONLY)
@pytest.mark.parametrize("foreign_owner", ["system program", "random program"])
def test_forged_agent_owned_by_another_program(world: World, name: str, foreign_owner: str) -> None:
    """A byte-for-byte copy of the real agent, same size, but not owned by GhostPay."""
    forged = Keypair().pubkey()
    owner = SYSTEM_PROGRAM_ID if foreign_owner == "system program" else Pubkey.new_unique()
    world.chain.set_account(forged, bytes(world.chain.account(world.agent).data), owner=owner)
    ix = valid_ix(name, forged, world.owner.pubkey(), world.usdc)
    result = assert_refused(world, [ix], [world.owner], "AccountOwnedByWrongProgram", watch=[forged])
    assert any(
        "AnchorError caused by account: agent. Error Code: AccountOwnedByWrongProgram" in line for line in result.logs
    )


@pytest.mark.parametrize("name", OWNER_ONLY)
def test_wrong_discriminator_is_account_discriminator_mismatch(world: World, name: str) -> None:
    forged = Keypair().pubkey()
    data = bytearray(world.chain.account(world.agent).data)
    data[0] ^= 0xFF
    world.chain.set_account(forged, bytes(data), owner=world.chain.program_id)
    ix = valid_ix(name, forged, world.owner.pubkey(), world.usdc)
    assert_refused(world, [ix], [world.owner], "AccountDiscriminatorMismatch", watch=[forged])


@pytest.mark.parametrize("name", OWNER_ONLY)
def test_short_program_account_is_account_did_not_deserialize(world: World, name: str) -> None:
    """Right owner and discriminator, but too small to be an Agent."""
    forged = Keypair().pubkey()
    world.chain.set_account(forged, bytes(world.chain.account(world.agent).data[:1000]), owner=world.chain.program_id)
    ix = valid_ix(name, forged, world.owner.pubkey(), world.usdc)
    assert_refused(world, [ix], [world.owner], "AccountDidNotDeserialize", watch=[forged])


@pytest.mark.parametrize("name", OWNER_ONLY)
def test_same_key_as_agent_and_owner_is_refused(world: World, name: str) -> None:
    ix = valid_ix(name, world.owner.pubkey(), world.owner.pubkey(), world.usdc)
    assert_refused(world, [ix], [world.owner], "AccountOwnedByWrongProgram")


@pytest.mark.parametrize("name", OWNER_ONLY)
def test_read_only_agent_is_constraint_mut(world: World, name: str) -> None:
    ix = world_ix(world, name)
    metas = [AccountMeta(m.pubkey, m.is_signer, False) if m.pubkey == world.agent else m for m in ix.accounts]
    assert_refused(world, [with_metas(ix, metas)], [world.owner], "ConstraintMut")


def test_close_agent_with_read_only_owner_is_constraint_mut(world: World) -> None:
    ix = world_ix(world, "close_agent")
    metas = [ix.accounts[0], AccountMeta(world.owner.pubkey(), True, False)]
    assert_refused(world, [with_metas(ix, metas)], [world.owner], "ConstraintMut")


@pytest.mark.parametrize("name", OWNER_ONLY)
def test_missing_accounts_is_account_not_enough_keys(world: World, name: str) -> None:
    ix = world_ix(world, name)
    assert_refused(world, [with_metas(ix, list(ix.accounts[:1]))], [], "AccountNotEnoughKeys")


@pytest.mark.parametrize("name", WITH_ARGS)
@pytest.mark.parametrize("keep", ["all but the last byte", "the discriminator only"])
def test_truncated_arguments_are_instruction_did_not_deserialize(world: World, name: str, keep: str) -> None:
    ix = world_ix(world, name)
    data = ix.data[:-1] if keep == "all but the last byte" else ix.data[:8]
    assert_refused(
        world, [Instruction(ix.program_id, data, ix.accounts)], [world.owner], "InstructionDidNotDeserialize"
    )


@pytest.mark.parametrize("name", OWNER_ONLY)
def test_trailing_bytes_are_instruction_did_not_deserialize(world: World, name: str) -> None:
    """As register_agent: arguments must be consumed exactly."""
    ix = world_ix(world, name)
    assert_refused(
        world,
        [Instruction(ix.program_id, ix.data + b"\x00", ix.accounts)],
        [world.owner],
        "InstructionDidNotDeserialize",
    )


@pytest.mark.parametrize(
    "name, data",
    [
        ("set_agent_active", b"\x02"),  # a bool is 0 or 1
        ("update_agent", b"\x02" + b"\x00" * 4),  # an Option tag is 0 or 1
        ("update_agent", b"\x00\x01" + struct.pack("<I", 1000) + b"x"),  # string longer than the data
        ("set_x402_tokens", struct.pack("<I", 2) + bytes(32)),  # vec shorter than its length
    ],
)
def test_malformed_arguments_are_instruction_did_not_deserialize(world: World, name: str, data: bytes) -> None:
    ix = world_ix(world, name)
    assert_refused(
        world,
        [Instruction(ix.program_id, ix.data[:8] + data, ix.accounts)],
        [world.owner],
        "InstructionDidNotDeserialize",
    )


# ---- update_agent ----------------------------------------------------------------------------


def test_update_agent_sets_every_field_and_emits_agent_updated(world: World) -> None:
    before = world.agent_state()
    now = world.warp(100)
    ix = update_agent(
        dict(
            agent_type=7,
            name="Traductrice",
            description="FR<->EN",
            metadata_uri="ipfs://meta",
            capabilities=["translate", "proofread", "ocr"],
        ),
        accounts(world.agent, world.owner.pubkey()),
    )

    result = ok(world, [ix])

    agent = world.agent_state()
    assert (agent.agent_type, agent.name, agent.description, agent.metadata_uri, agent.capabilities) == (
        7,
        "Traductrice",
        "FR<->EN",
        "ipfs://meta",
        ["translate", "proofread", "ocr"],
    )
    assert agent.updated_at == now and agent.created_at == before.created_at < now
    # nothing else moved
    assert (agent.agent_id, agent.owner, agent.bump, agent.is_active, agent.x402_enabled) == (
        before.agent_id,
        before.owner,
        before.bump,
        before.is_active,
        before.x402_enabled,
    )
    assert (price_of(agent), mints_of(agent), agent.x402_service_endpoint, agent.x402_payment_address) == (
        price_of(before),
        mints_of(before),
        before.x402_service_endpoint,
        before.x402_payment_address,
    )
    assert world.chain.account(world.agent).lamports == world.chain.svm.minimum_balance_for_rent_exemption(AGENT_SPACE)
    event = result.event("AgentUpdated")
    assert (event.agent, event.owner, event.agent_type, event.name, event.timestamp) == (
        world.agent,
        world.owner.pubkey(),
        7,
        "Traductrice",
        now,
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("agent_type", 9),
        ("name", "Only the name"),
        ("description", ""),
        ("description", "longer " * 50),
        ("metadata_uri", ""),
        ("metadata_uri", "ar://x"),
        ("capabilities", []),
        ("capabilities", ["a", "b", "c"]),
    ],
)
def test_update_agent_none_keeps_the_other_fields(world: World, field: str, value) -> None:
    before = world.agent_state()
    args = dict(agent_type=None, name=None, description=None, metadata_uri=None, capabilities=None)
    args[field] = value
    result = ok(world, [update_agent(args, accounts(world.agent, world.owner.pubkey()))])

    after = world.agent_state()
    expected = {**{f: getattr(before, f) for f in args}, field: value}
    assert {f: getattr(after, f) for f in args} == expected
    assert after.agent_id == before.agent_id and after.x402_service_endpoint == before.x402_service_endpoint
    assert mints_of(after) == mints_of(before)
    event = result.event("AgentUpdated")
    assert (event.agent_type, event.name) == (after.agent_type, after.name)


def test_update_agent_with_nothing_only_touches_updated_at(world: World) -> None:
    before_data = bytes(world.chain.account(world.agent).data)
    now = world.warp(60)
    args = dict(agent_type=None, name=None, description=None, metadata_uri=None, capabilities=None)
    result = ok(world, [update_agent(args, accounts(world.agent, world.owner.pubkey()))])
    after_data = bytes(world.chain.account(world.agent).data)
    assert after_data[:UPDATED_AT_OFFSET] == before_data[:UPDATED_AT_OFFSET]
    assert after_data[UPDATED_AT_OFFSET + 8 :] == before_data[UPDATED_AT_OFFSET + 8 :]
    assert world.agent_state().updated_at == now
    event = result.event("AgentUpdated")
    assert (event.name, event.agent_type, event.timestamp) == ("Translator", 1, now)


def test_update_agent_to_maximum_sizes_and_back(world: World) -> None:
    accts = accounts(world.agent, world.owner.pubkey())
    # two transactions: all maxima at once would not fit in a packet
    ok(
        world,
        [
            update_agent(
                dict(
                    agent_type=255,
                    name=MAX_PROFILE["name"],
                    description=MAX_PROFILE["description"],
                    metadata_uri=None,
                    capabilities=None,
                ),
                accts,
            )
        ],
    )
    ok(
        world,
        [
            update_agent(
                dict(
                    agent_type=None,
                    name=None,
                    description=None,
                    metadata_uri=MAX_PROFILE["metadata_uri"],
                    capabilities=MAX_PROFILE["capabilities"],
                ),
                accts,
            )
        ],
    )
    agent = world.agent_state()
    assert (agent.name, agent.description, agent.metadata_uri, agent.capabilities) == (
        MAX_PROFILE["name"],
        MAX_PROFILE["description"],
        MAX_PROFILE["metadata_uri"],
        MAX_PROFILE["capabilities"],
    )
    assert agent.agent_type == 255 and agent.x402_service_endpoint == ENDPOINT and agent.agent_id == "translator"

    ok(
        world,
        [update_agent(dict(agent_type=None, name="x", description="", metadata_uri="", capabilities=["y"]), accts)],
    )
    agent = world.agent_state()
    assert (agent.name, agent.description, agent.metadata_uri, agent.capabilities) == ("x", "", "", ["y"])
    assert agent.x402_service_endpoint == ENDPOINT and mints_of(agent) == [world.usdc]


def test_random_updates_keep_the_account_exactly_serialized(world: World) -> None:
    """Updates splice fields in place (growing and shrinking the tail); after each one the
    account must decode to the expected profile and hold zeros after the serialized tail."""
    import random

    rng = random.Random(402)
    accts = accounts(world.agent, world.owner.pubkey())
    mints = [world.usdc] + [world.chain.create_mint() for _ in range(3)]
    expected = dict(
        name=PROFILE.name,
        description=PROFILE.description,
        metadata_uri=PROFILE.metadata_uri,
        capabilities=PROFILE.capabilities,
        x402_accepted_tokens=priced([world.usdc]),
        x402_service_endpoint=ENDPOINT,
    )

    def text(limit: int, minimum: int = 0) -> str:
        return "".join(rng.choice("ab\u00e9") for _ in range(rng.randint(minimum, limit // 2)))

    for step in range(40):
        kind = rng.choice(["profile", "tokens", "endpoint", "configure"])
        if kind == "profile":
            changes = {
                field: rng.choice([None, value])
                for field, value in (
                    ("name", text(64, 1)),
                    ("description", text(200)),
                    ("metadata_uri", text(100)),
                    ("capabilities", [text(32, 1) for _ in range(rng.randint(0, 8))]),
                )
            }
            instruction = update_agent(dict(agent_type=None, **changes), accts)
            expected.update({k: v for k, v in changes.items() if v is not None})
        elif kind == "tokens":
            tokens = rng.sample(mints, rng.randint(1, len(mints)))
            instruction = set_x402_tokens(
                {"accepted_tokens": priced(tokens)}, accts, remaining_accounts=mint_accounts(tokens)
            )
            expected["x402_accepted_tokens"] = priced(tokens)
        elif kind == "endpoint":
            endpoint = "https://" + "e" * rng.randint(1, 120)
            instruction = set_x402_endpoint({"service_endpoint": endpoint}, accts)
            expected["x402_service_endpoint"] = endpoint
        else:
            tokens = rng.sample(mints, rng.randint(1, len(mints)))
            endpoint = "http://" + "c" * rng.randint(1, 120)
            instruction = configure_x402(
                {"config": x402_config(world.owner.pubkey(), 5_000, tokens, endpoint)},
                accts,
                remaining_accounts=mint_accounts(tokens),
            )
            expected.update(x402_accepted_tokens=priced(tokens, 5_000), x402_service_endpoint=endpoint)
        ok(world, [instruction])

        data = bytes(world.chain.account(world.agent).data)
        agent = Agent.decode(data)
        assert {field: getattr(agent, field) for field in expected} == expected, f"step {step} ({kind})"
        serialized_len = 8 + len(Agent.layout.build(Agent.layout.parse(data[8:])))
        assert data[serialized_len:] == bytes(AGENT_SPACE - serialized_len), f"step {step} ({kind}) left bytes behind"


def test_agent_at_full_capacity_can_be_updated(world: World) -> None:
    """Every variable field at its maximum fills the 1848 bytes exactly; rewriting must still fit.
    Built up over several transactions, each within the packet limit."""
    chain = world.chain
    mints = [chain.create_mint() for _ in range(10)]
    endpoint = "https://" + "e" * 248
    profile = AgentProfile("i" * 32, MAX_PROFILE["name"], agent_type=3)
    agent = register(
        chain, world.facilitator, world.owner, profile, x402_config(world.owner.pubkey(), 1_000, mints[:1], endpoint)
    )
    accts = accounts(agent, world.owner.pubkey())
    none = dict(agent_type=None, name=None, description=None, metadata_uri=None, capabilities=None)
    ok(world, [set_x402_tokens({"accepted_tokens": priced(mints)}, accts, remaining_accounts=mint_accounts(mints))])
    ok(
        world,
        [
            update_agent(
                {**none, "description": MAX_PROFILE["description"], "metadata_uri": MAX_PROFILE["metadata_uri"]}, accts
            )
        ],
    )
    ok(world, [update_agent({**none, "capabilities": MAX_PROFILE["capabilities"]}, accts)])
    full = Agent.decode(chain.account(agent).data)
    encodable = {
        **full.__dict__,
        "x402_accepted_tokens": [t.to_encodable() for t in full.x402_accepted_tokens],
        "earnings": [slot.to_encodable() for slot in full.earnings],
    }
    assert len(Agent.discriminator) + len(Agent.layout.build(encodable)) == AGENT_SPACE  # really full

    ok(world, [update_agent({**none, "name": "ñ" * 32, "description": "D" * 512}, accts)])
    ok(world, [update_agent({**none, "metadata_uri": "U" * 200, "capabilities": ["Z" * 32] * 8}, accts)])
    state = Agent.decode(chain.account(agent).data)
    assert (state.name, state.description, state.metadata_uri, state.capabilities) == (
        "ñ" * 32,
        "D" * 512,
        "U" * 200,
        ["Z" * 32] * 8,
    )
    assert (mints_of(state), state.agent_id, state.x402_service_endpoint) == (mints, "i" * 32, endpoint)


@pytest.mark.parametrize("case", BAD_PROFILE)
def test_update_agent_rejects_invalid_fields(world: World, case: str) -> None:
    changes, error = BAD_PROFILE[case]
    args = {**dict(agent_type=None, name=None, description=None, metadata_uri=None, capabilities=None), **changes}
    assert_refused(world, [update_agent(args, accounts(world.agent, world.owner.pubkey()))], [world.owner], error)


def test_update_agent_rejects_invalid_utf8_name(world: World) -> None:
    ix = update_agent(
        dict(agent_type=None, name="ab", description=None, metadata_uri=None, capabilities=None),
        accounts(world.agent, world.owner.pubkey()),
    )
    data = ix.data.replace(b"ab", b"\xff\xfe")
    assert_refused(world, [Instruction(ix.program_id, data, ix.accounts)], [world.owner], "NameInvalid")


# ---- configure_x402 --------------------------------------------------------------------------


def configure_ix(
    world: World,
    price: int = 20_000,
    tokens: list[Pubkey] | None = None,
    passed: list[Pubkey] | None = None,
    endpoint: str = "https://new.example.com",
    payment: Pubkey | None = None,
) -> Instruction:
    tokens = [world.usdc] if tokens is None else tokens
    config = x402_config(world.owner.pubkey() if payment is None else payment, price, tokens, endpoint)
    return configure_x402(
        {"config": config},
        accounts(world.agent, world.owner.pubkey()),
        remaining_accounts=mint_accounts(tokens if passed is None else passed),
    )


def test_configure_x402_enables_and_sets_everything(plain_world: World) -> None:
    world = plain_world
    assert not world.agent_state().x402_enabled
    payee = Keypair().pubkey()
    mints = [world.usdc, world.chain.create_mint(token_program=TOKEN_2022_PROGRAM_ID)]
    now = world.warp(100)

    result = ok(world, [configure_ix(world, 123_456, mints, endpoint="https://pay.example.com/x", payment=payee)])

    agent = world.agent_state()
    assert agent.x402_enabled and agent.is_active
    assert (price_of(agent), agent.x402_payment_address, mints_of(agent), agent.x402_service_endpoint) == (
        123_456,
        payee,
        mints,
        "https://pay.example.com/x",
    )
    assert agent.updated_at == now
    assert (agent.name, agent.description, agent.capabilities) == (
        PROFILE.name,
        PROFILE.description,
        PROFILE.capabilities,
    )
    event = result.event("X402Configured")
    assert (
        event.agent,
        event.payment_address,
        pairs(event.accepted_tokens),
        event.service_endpoint,
        event.timestamp,
    ) == (world.agent, payee, pairs(priced(mints, 123_456)), "https://pay.example.com/x", now)


def test_configure_x402_replaces_an_existing_configuration(world: World) -> None:
    other = world.chain.create_mint()
    result = ok(world, [configure_ix(world, 50_000, [other], endpoint="http://b.example")])
    agent = world.agent_state()
    assert (price_of(agent), mints_of(agent), agent.x402_service_endpoint) == (50_000, [other], "http://b.example")
    assert pairs(result.event("X402Configured").accepted_tokens) == pairs(priced([other], 50_000))


def test_configure_x402_re_enables_after_disable(world: World) -> None:
    ok(world, [world_ix(world, "disable_x402")])
    ok(world, [configure_ix(world, 7_000)])
    agent = world.agent_state()
    assert agent.x402_enabled and price_of(agent) == 7_000


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_configure_x402_rejects_bad_tokens(world: World, case: str) -> None:
    build, error = BAD_TOKENS[case]
    tokens, passed = build(world.chain)
    assert_refused(world, [configure_ix(world, tokens=tokens, passed=passed)], [world.owner], error)


@pytest.mark.parametrize("case", GOOD_TOKENS)
def test_configure_x402_accepts_mints(plain_world: World, case: str) -> None:
    tokens, passed = GOOD_TOKENS[case](plain_world.chain)
    ok(plain_world, [configure_ix(plain_world, tokens=tokens, passed=passed)])
    assert mints_of(plain_world.agent_state()) == tokens


@pytest.mark.parametrize("price", BAD_PRICES)
def test_configure_x402_rejects_price(world: World, price: int) -> None:
    assert_refused(world, [configure_ix(world, price)], [world.owner], "PriceOutOfRange")


@pytest.mark.parametrize("price", GOOD_PRICES)
def test_configure_x402_price_bounds(plain_world: World, price: int) -> None:
    ok(plain_world, [configure_ix(plain_world, price)])
    assert price_of(plain_world.agent_state()) == price


@pytest.mark.parametrize("case", BAD_ENDPOINTS)
def test_configure_x402_rejects_endpoint(world: World, case: str) -> None:
    endpoint, error = BAD_ENDPOINTS[case]
    assert_refused(world, [configure_ix(world, endpoint=endpoint)], [world.owner], error)


@pytest.mark.parametrize("endpoint", GOOD_ENDPOINTS)
def test_configure_x402_accepts_endpoint(plain_world: World, endpoint: str) -> None:
    ok(plain_world, [configure_ix(plain_world, endpoint=endpoint)])
    assert plain_world.agent_state().x402_service_endpoint == endpoint


def test_configure_x402_rejects_default_payment_address(world: World) -> None:
    assert_refused(world, [configure_ix(world, payment=Pubkey.default())], [world.owner], "InvalidPaymentAddress")


def test_configure_x402_refused_on_plain_agent_leaves_it_disabled(plain_world: World) -> None:
    assert_refused(plain_world, [configure_ix(plain_world, price=0)], [plain_world.owner], "PriceOutOfRange")
    assert not plain_world.agent_state().x402_enabled


# ---- set_x402_price / set_x402_tokens / set_x402_endpoint ----------------------------------------


def test_set_x402_price_emits_the_new_prices(world: World) -> None:
    now = world.warp(100)
    result = ok(
        world, [set_x402_price({"prices": priced([world.usdc], 55_555)}, accounts(world.agent, world.owner.pubkey()))]
    )
    agent = world.agent_state()
    assert price_of(agent) == 55_555 and agent.updated_at == now
    assert mints_of(agent) == [world.usdc] and agent.x402_service_endpoint == ENDPOINT
    event = result.event("X402Configured")
    assert (
        event.agent,
        event.payment_address,
        pairs(event.accepted_tokens),
        event.service_endpoint,
        event.timestamp,
    ) == (world.agent, world.owner.pubkey(), pairs(priced([world.usdc], 55_555)), ENDPOINT, now)


@pytest.mark.parametrize("price", GOOD_PRICES)
def test_set_x402_price_bounds(world: World, price: int) -> None:
    ok(world, [set_x402_price({"prices": priced([world.usdc], price)}, accounts(world.agent, world.owner.pubkey()))])
    assert price_of(world.agent_state()) == price


@pytest.mark.parametrize("price", BAD_PRICES)
def test_set_x402_price_rejects_price(world: World, price: int) -> None:
    ix = set_x402_price({"prices": priced([world.usdc], price)}, accounts(world.agent, world.owner.pubkey()))
    assert_refused(world, [ix], [world.owner], "PriceOutOfRange")


def test_each_mint_keeps_its_own_price(world: World) -> None:
    """A 2-decimal mint is priced in its own atomic units: repricing one mint leaves the others alone."""
    cents = world.chain.create_mint(decimals=2)
    accts = accounts(world.agent, world.owner.pubkey())
    tokens = [TokenPrice(world.usdc, 20_000), TokenPrice(cents, 2_000)]  # 0.02 USDC, 20.00 of the other
    ok(
        world,
        [set_x402_tokens({"accepted_tokens": tokens}, accts, remaining_accounts=mint_accounts([world.usdc, cents]))],
    )
    assert pairs(world.agent_state().x402_accepted_tokens) == [(world.usdc, 20_000), (cents, 2_000)]

    result = ok(world, [set_x402_price({"prices": [TokenPrice(cents, 1_500)]}, accts)])
    assert pairs(world.agent_state().x402_accepted_tokens) == [(world.usdc, 20_000), (cents, 1_500)]
    assert pairs(result.event("X402Configured").accepted_tokens) == [(world.usdc, 20_000), (cents, 1_500)]


@pytest.mark.parametrize(
    ("prices", "error"),
    [
        ("not accepted", "PaymentMintNotAccepted"),
        ("empty", "NoAcceptedTokens"),
        ("second price out of range", "PriceOutOfRange"),
    ],
)
def test_set_x402_price_refusals(world: World, prices: str, error: str) -> None:
    entries = {
        "not accepted": [TokenPrice(world.chain.create_mint(), 5_000)],
        "empty": [],
        "second price out of range": [TokenPrice(world.usdc, 5_000), TokenPrice(world.usdc, 0)],
    }[prices]
    ix = set_x402_price({"prices": entries}, accounts(world.agent, world.owner.pubkey()))
    assert_refused(world, [ix], [world.owner], error)


@pytest.mark.parametrize("price", BAD_PRICES)
def test_a_bad_price_for_any_token_refuses_the_configuration(plain_world: World, price: int) -> None:
    mints = [plain_world.usdc, plain_world.chain.create_mint()]
    config = X402Config(
        plain_world.owner.pubkey(), [TokenPrice(mints[0], 10_000), TokenPrice(mints[1], price)], ENDPOINT
    )
    ix = configure_x402(
        {"config": config},
        accounts(plain_world.agent, plain_world.owner.pubkey()),
        remaining_accounts=mint_accounts(mints),
    )
    assert_refused(plain_world, [ix], [plain_world.owner], "PriceOutOfRange")


def test_set_x402_tokens_replaces_the_list(world: World) -> None:
    mints = [world.chain.create_mint(token_program=TOKEN_2022_PROGRAM_ID), world.chain.create_mint()]
    now = world.warp(100)
    ix = set_x402_tokens(
        {"accepted_tokens": priced(mints)},
        accounts(world.agent, world.owner.pubkey()),
        remaining_accounts=mint_accounts(mints),
    )
    result = ok(world, [ix])
    agent = world.agent_state()
    assert mints_of(agent) == mints and agent.updated_at == now
    assert (price_of(agent), agent.x402_service_endpoint, agent.name, agent.capabilities) == (
        10_000,
        ENDPOINT,
        PROFILE.name,
        PROFILE.capabilities,
    )
    event = result.event("X402Configured")
    assert (pairs(event.accepted_tokens), event.service_endpoint) == (pairs(priced(mints)), ENDPOINT)


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_set_x402_tokens_rejects_bad_tokens(world: World, case: str) -> None:
    build, error = BAD_TOKENS[case]
    tokens, passed = build(world.chain)
    ix = set_x402_tokens(
        {"accepted_tokens": priced(tokens)},
        accounts(world.agent, world.owner.pubkey()),
        remaining_accounts=mint_accounts(passed),
    )
    assert_refused(world, [ix], [world.owner], error)


@pytest.mark.parametrize("case", GOOD_TOKENS)
def test_set_x402_tokens_accepts_mints(world: World, case: str) -> None:
    tokens, passed = GOOD_TOKENS[case](world.chain)
    ix = set_x402_tokens(
        {"accepted_tokens": priced(tokens)},
        accounts(world.agent, world.owner.pubkey()),
        remaining_accounts=mint_accounts(passed),
    )
    ok(world, [ix])
    assert mints_of(world.agent_state()) == tokens


def test_set_x402_endpoint_changes_only_the_endpoint(world: World) -> None:
    now = world.warp(100)
    ix = set_x402_endpoint({"service_endpoint": "http://new.example/v2"}, accounts(world.agent, world.owner.pubkey()))
    result = ok(world, [ix])
    agent = world.agent_state()
    assert agent.x402_service_endpoint == "http://new.example/v2" and agent.updated_at == now
    assert (
        price_of(agent),
        mints_of(agent),
        agent.name,
        agent.description,
        agent.metadata_uri,
        agent.capabilities,
    ) == (10_000, [world.usdc], PROFILE.name, PROFILE.description, PROFILE.metadata_uri, PROFILE.capabilities)
    event = result.event("X402Configured")
    assert (pairs(event.accepted_tokens), event.service_endpoint) == (
        pairs(priced([world.usdc])),
        "http://new.example/v2",
    )


@pytest.mark.parametrize("case", BAD_ENDPOINTS)
def test_set_x402_endpoint_rejects_endpoint(world: World, case: str) -> None:
    endpoint, error = BAD_ENDPOINTS[case]
    ix = set_x402_endpoint({"service_endpoint": endpoint}, accounts(world.agent, world.owner.pubkey()))
    assert_refused(world, [ix], [world.owner], error)


@pytest.mark.parametrize("endpoint", GOOD_ENDPOINTS)
def test_set_x402_endpoint_accepts_endpoint(world: World, endpoint: str) -> None:
    ok(world, [set_x402_endpoint({"service_endpoint": endpoint}, accounts(world.agent, world.owner.pubkey()))])
    assert world.agent_state().x402_service_endpoint == endpoint


@pytest.mark.parametrize("name", ["set_x402_price", "set_x402_tokens", "set_x402_endpoint"])
@pytest.mark.parametrize("how", ["never configured", "disabled"])
def test_setters_require_x402_enabled(world: World, plain_world: World, name: str, how: str) -> None:
    if how == "disabled":
        ok(world, [world_ix(world, "disable_x402")])
    else:
        world = plain_world
    assert_refused(world, [world_ix(world, name)], [world.owner], "X402NotEnabled")


# ---- disable_x402 / set_agent_active ---------------------------------------------------------------


def test_disable_x402(world: World) -> None:
    now = world.warp(100)
    result = ok(world, [world_ix(world, "disable_x402")])
    agent = world.agent_state()
    assert not agent.x402_enabled and agent.is_active and agent.updated_at == now
    event = result.event("X402Disabled")
    assert (event.agent, event.timestamp) == (world.agent, now)


@pytest.mark.parametrize("sequence", [[False], [False, True], [True], [False, False]])
def test_set_agent_active(world: World, sequence: list[bool]) -> None:
    for is_active in sequence:
        now = world.warp(100)
        ix = set_agent_active({"is_active": is_active}, accounts(world.agent, world.owner.pubkey()))
        result = ok(world, [ix])
        agent = world.agent_state()
        assert agent.is_active is is_active and agent.x402_enabled and agent.updated_at == now
        event = result.event("AgentStatusChanged")
        assert (event.agent, event.is_active, event.timestamp) == (world.agent, is_active, now)


# ---- close_agent --------------------------------------------------------------------------------


@pytest.mark.parametrize("extra_lamports", [0, 12_345])
def test_close_agent_refunds_the_owner(world: World, extra_lamports: int) -> None:
    chain = world.chain
    if extra_lamports:
        chain.svm.airdrop(world.agent, extra_lamports)
    held = chain.account(world.agent).lamports
    assert held == chain.svm.minimum_balance_for_rent_exemption(AGENT_SPACE) + extra_lamports
    reputation = reputation_address(world.agent)[0]
    metrics_before = chain.account(reputation)
    assert metrics_before.lamports == chain.svm.minimum_balance_for_rent_exemption(REPUTATION_METRICS_SPACE)
    owner_before = chain.balance(world.owner.pubkey())
    payer_before = chain.balance(world.facilitator.pubkey())
    now = world.warp(100)

    result = ok(world, [world_ix(world, "close_agent")])

    closed = chain.account(world.agent)
    assert closed is None or closed.lamports == 0
    assert chain.account(reputation) == metrics_before  # the reputation outlives the registration
    assert chain.balance(world.owner.pubkey()) == owner_before + held
    assert chain.balance(world.facilitator.pubkey()) == payer_before - 2 * FEE
    event = result.event("AgentClosed")
    assert (event.agent, event.owner, event.refunded_lamports, event.timestamp) == (
        world.agent,
        world.owner.pubkey(),
        held,
        now,
    )


def test_close_agent_empties_the_account_like_anchor(world: World) -> None:
    """Anchor's `close` gives the account to the System Program AND reallocs it to 0 bytes. Without the
    realloc the PDA cannot be registered again while the emptied account lingers (LiteSVM keeps
    0-lamport accounts; a validator does too until the end of the transaction)."""
    ok(world, [world_ix(world, "close_agent")])
    closed = world.chain.account(world.agent)
    assert closed is None or (closed.lamports, len(closed.data), closed.owner) == (0, 0, SYSTEM_PROGRAM_ID)


def test_closed_agent_can_be_registered_again(world: World) -> None:
    ok(world, [world_ix(world, "close_agent")])
    assert register(world.chain, world.facilitator, world.owner) == world.agent
    agent = world.agent_state()
    assert not agent.x402_enabled and agent.name == PROFILE.name and agent.registration == 2


def test_registering_with_another_agents_metrics_is_constraint_seeds(world: World, newcomer: Keypair) -> None:
    """A new agent naming an existing ReputationMetrics (someone else's good reputation) instead of its own PDA."""
    ix = register_ix(newcomer.pubkey())
    metas = list(ix.accounts)
    metas[1] = AccountMeta(reputation_address(world.agent)[0], False, True)
    assert_register_refused(world, newcomer, with_metas(ix, metas), "ConstraintSeeds")


def test_close_then_register_again_in_one_transaction(world: World) -> None:
    ok(world, [world_ix(world, "close_agent"), build_register_agent(world.owner.pubkey(), PROFILE)])
    agent = world.agent_state()
    assert not agent.x402_enabled and agent.is_active


def test_closed_agent_cannot_be_used(world: World) -> None:
    ok(world, [world_ix(world, "close_agent")])
    result = world.send([world_ix(world, "update_agent")], world.owner)
    assert result.error in ("AccountOwnedByWrongProgram", "AccountNotInitialized"), result.logs


def test_close_and_reuse_in_one_transaction_is_refused(world: World) -> None:
    """After close_agent in the same transaction the account is no longer the program's."""
    result = world.send([world_ix(world, "close_agent"), world_ix(world, "update_agent")], world.owner)
    assert not result.ok
    assert world.agent_state().name == PROFILE.name  # the whole transaction rolled back


@pytest.mark.parametrize("open_orders", [1, 2**32 - 1])
def test_close_agent_with_open_work_orders_is_refused(world: World, open_orders: int) -> None:
    chain = world.chain
    data = bytearray(chain.account(world.agent).data)
    data[OPEN_WORK_ORDERS_OFFSET : OPEN_WORK_ORDERS_OFFSET + 4] = struct.pack("<I", open_orders)
    chain.set_account(world.agent, bytes(data), owner=chain.program_id)
    assert world.agent_state().open_work_orders == open_orders

    assert_refused(world, [world_ix(world, "close_agent")], [world.owner], "AgentHasOpenWorkOrders")
    # everything else an owner does is still allowed
    ok(world, [world_ix(world, "set_agent_active")])


# ---- register_agent: x402 and profile validation ---------------------------------------------------


def register_ix(
    owner: Pubkey, x402: X402Config | None = None, passed: list[Pubkey] | None = None, **profile
) -> Instruction:
    ix = build_register_agent(owner, AgentProfile(**{**PROFILE.__dict__, **profile}), x402)
    if passed is None:
        return ix
    return with_metas(ix, list(ix.accounts[:4]) + mint_accounts(passed))


def assert_register_refused(world: World, owner: Keypair, ix: Instruction, error: str) -> None:
    agent = ix.accounts[0].pubkey
    before = snapshot(world, [owner.pubkey(), agent])
    payer_before = world.chain.balance(world.facilitator.pubkey())
    result = world.send([ix], owner)
    assert result.error == error, (result.error, result.logs)
    assert snapshot(world, [owner.pubkey(), agent]) == before
    assert before[agent] is None
    assert world.chain.balance(world.facilitator.pubkey()) == payer_before - 2 * FEE


@pytest.fixture
def newcomer(world: World) -> Keypair:
    return world.chain.funded_keypair()


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_register_agent_rejects_bad_tokens(world: World, newcomer: Keypair, case: str) -> None:
    build, error = BAD_TOKENS[case]
    tokens, passed = build(world.chain)
    x402 = x402_config(newcomer.pubkey(), 10_000, tokens, ENDPOINT)
    assert_register_refused(world, newcomer, register_ix(newcomer.pubkey(), x402, passed), error)


@pytest.mark.parametrize("price", BAD_PRICES)
def test_register_agent_rejects_price(world: World, newcomer: Keypair, price: int) -> None:
    x402 = x402_config(newcomer.pubkey(), price, [world.usdc], ENDPOINT)
    assert_register_refused(world, newcomer, register_ix(newcomer.pubkey(), x402), "PriceOutOfRange")


@pytest.mark.parametrize("case", BAD_ENDPOINTS)
def test_register_agent_rejects_endpoint(world: World, newcomer: Keypair, case: str) -> None:
    endpoint, error = BAD_ENDPOINTS[case]
    x402 = x402_config(newcomer.pubkey(), 10_000, [world.usdc], endpoint)
    assert_register_refused(world, newcomer, register_ix(newcomer.pubkey(), x402), error)


def test_register_agent_rejects_default_payment_address(world: World, newcomer: Keypair) -> None:
    x402 = x402_config(Pubkey.default(), 10_000, [world.usdc], ENDPOINT)
    assert_register_refused(world, newcomer, register_ix(newcomer.pubkey(), x402), "InvalidPaymentAddress")


@pytest.mark.parametrize("case", BAD_PROFILE)
def test_register_agent_rejects_profile(world: World, newcomer: Keypair, case: str) -> None:
    changes, error = BAD_PROFILE[case]
    assert_register_refused(world, newcomer, register_ix(newcomer.pubkey(), **changes), error)


@pytest.mark.parametrize("agent_id", ["a" * 33, "é" * 17, ""])
def test_register_agent_rejects_agent_id(world: World, newcomer: Keypair, agent_id: str) -> None:
    """A seed longer than 32 bytes has no PDA, so the agent account here is any key:
    the ID is checked before the address."""
    valid = register_ix(newcomer.pubkey())
    args = dict(
        agent_id=agent_id, agent_type=1, name="Translator", description="", metadata_uri="", capabilities=[], x402=None
    )
    agent = agent_address(newcomer.pubkey(), agent_id)[0] if agent_id == "" else Keypair().pubkey()
    ix = register_agent(args, {"agent": agent, "reputation": valid.accounts[1].pubkey, "owner": newcomer.pubkey()})
    assert ix.accounts[1:] == valid.accounts[1:]
    assert_register_refused(world, newcomer, ix, "AgentIdInvalid")


@pytest.mark.parametrize("case", GOOD_TOKENS)
def test_register_agent_accepts_mints(world: World, newcomer: Keypair, case: str) -> None:
    tokens, passed = GOOD_TOKENS[case](world.chain)
    x402 = x402_config(newcomer.pubkey(), 1_000_000_000_000, tokens, GOOD_ENDPOINTS[0])
    result = world.send([register_ix(newcomer.pubkey(), x402, passed)], newcomer)
    assert result.ok, result.logs
    agent = Agent.decode(world.chain.account(agent_address(newcomer.pubkey(), PROFILE.agent_id)[0]).data)
    assert agent.x402_enabled and mints_of(agent) == tokens
    assert [t.price for t in agent.x402_accepted_tokens] == [1_000_000_000_000] * len(tokens)
    assert result.event("AgentRegistered").registration == agent.registration == 1
