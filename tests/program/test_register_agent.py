"""register_agent through the whole stack: generated bindings -> LiteSVM -> generated decoders."""

from __future__ import annotations

import pytest
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.accounts import Agent
from ghostpay.instructions import register_agent
from ghostpay.pda import agent_address, reputation_address
from ghostpay.types import TokenPrice, X402Config
from tests.program.svm import InProcessChain as Chain

AGENT_SPACE = 2808


def register_ix(
    owner: Pubkey,
    agent_id: str = "translator",
    x402: X402Config | None = None,
    mints: list[Pubkey] | None = None,
    **overrides,
) -> Instruction:
    agent, _ = agent_address(owner, agent_id)
    args = dict(
        agent_id=agent_id,
        agent_type=1,
        name="Translator",
        description="EN<->FR translation",
        metadata_uri="https://example.com/agent.json",
        capabilities=["translate", "summarize"],
        x402=x402,
    )
    args.update(overrides)
    remaining = [AccountMeta(m, is_signer=False, is_writable=False) for m in (mints or [])]
    return register_agent(
        args, {"agent": agent, "reputation": reputation_address(agent)[0], "owner": owner}, remaining_accounts=remaining
    )


@pytest.fixture
def chain() -> Chain:
    return Chain()


def test_register_agent_creates_the_account_and_emits_the_event(chain: Chain) -> None:
    owner = chain.funded_keypair()
    mint = chain.create_mint()
    x402 = X402Config(
        payment_address=owner.pubkey(),
        accepted_tokens=[TokenPrice(mint, 10_000)],
        service_endpoint="https://agent.example.com/translate",
    )

    result = chain.send([register_ix(owner.pubkey(), x402=x402, mints=[mint])], [owner])

    assert result.ok, result.logs
    address, bump = agent_address(owner.pubkey(), "translator")
    account = chain.account(address)
    assert account is not None and account.owner == chain.program_id and len(account.data) == AGENT_SPACE
    assert account.lamports == chain.svm.minimum_balance_for_rent_exemption(AGENT_SPACE)
    agent = Agent.decode(account.data)
    assert (agent.owner, agent.agent_id, agent.name, agent.bump) == (owner.pubkey(), "translator", "Translator", bump)
    assert agent.capabilities == ["translate", "summarize"]
    assert agent.x402_enabled and agent.is_active
    assert agent.x402_accepted_tokens == [TokenPrice(mint, 10_000)] and agent.registration == 1
    assert agent.x402_service_endpoint == "https://agent.example.com/translate"
    assert agent.created_at == agent.updated_at == chain.svm.get_clock().unix_timestamp > 1_700_000_000

    event = result.event("AgentRegistered")
    assert (event.agent, event.owner, event.agent_id, event.x402_enabled, event.registration) == (
        address,
        owner.pubkey(),
        "translator",
        True,
        1,
    )


def test_register_agent_without_x402(chain: Chain) -> None:
    owner = chain.funded_keypair()
    result = chain.send([register_ix(owner.pubkey())], [owner])
    assert result.ok, result.logs
    agent = Agent.decode(chain.account(agent_address(owner.pubkey(), "translator")[0]).data)
    assert not agent.x402_enabled and agent.x402_accepted_tokens == [] and agent.registration == 1


def test_unknown_discriminator_is_instruction_fallback_not_found(chain: Chain) -> None:
    payer = chain.funded_keypair()
    ix = Instruction(chain.program_id, bytes(8) + b"\x01", [])
    result = chain.send([ix], [payer])
    assert result.error == "InstructionFallbackNotFound"
    assert any("Error Code: InstructionFallbackNotFound. Error Number: 101." in line for line in result.logs)


def test_missing_owner_signature_is_account_not_signer(chain: Chain) -> None:
    payer, owner = chain.funded_keypair(), chain.funded_keypair()
    ix = register_ix(owner.pubkey())
    metas = [AccountMeta(m.pubkey, is_signer=False, is_writable=m.is_writable) for m in ix.accounts]
    before = chain.balances([payer.pubkey(), owner.pubkey()])

    result = chain.send([Instruction(ix.program_id, ix.data, metas)], [payer])

    assert result.error == "AccountNotSigner"
    assert any("AnchorError caused by account: owner. Error Code: AccountNotSigner" in line for line in result.logs)
    assert chain.balance(owner.pubkey()) == before[owner.pubkey()]
    assert chain.account(agent_address(owner.pubkey(), "translator")[0]) is None


@pytest.mark.parametrize("cut", [1, 5, 40])
def test_truncated_arguments_are_instruction_did_not_deserialize(chain: Chain, cut: int) -> None:
    owner = chain.funded_keypair()
    ix = register_ix(owner.pubkey())
    result = chain.send([Instruction(ix.program_id, ix.data[:-cut], ix.accounts)], [owner])
    assert result.error == "InstructionDidNotDeserialize"
    assert chain.account(agent_address(owner.pubkey(), "translator")[0]) is None


def test_trailing_bytes_are_instruction_did_not_deserialize(chain: Chain) -> None:
    owner = chain.funded_keypair()
    ix = register_ix(owner.pubkey())
    result = chain.send([Instruction(ix.program_id, ix.data + b"\x00", ix.accounts)], [owner])
    assert result.error == "InstructionDidNotDeserialize"


def test_reregistration_fails_with_agent_already_registered(chain: Chain) -> None:
    owner = chain.funded_keypair()
    assert chain.send([register_ix(owner.pubkey())], [owner]).ok
    before = chain.balance(owner.pubkey())
    result = chain.send([register_ix(owner.pubkey(), name="Other")], [owner])
    assert result.error == "AgentAlreadyRegistered"
    assert chain.balance(owner.pubkey()) == before - 5000  # only the fee


def test_prefunded_agent_address_still_registers(chain: Chain) -> None:
    """Someone sending lamports to the PDA first must not block registration."""
    owner = chain.funded_keypair()
    address, _ = agent_address(owner.pubkey(), "translator")
    chain.svm.airdrop(address, 1_000)
    result = chain.send([register_ix(owner.pubkey())], [owner])
    assert result.ok, result.logs
    account = chain.account(address)
    assert account.owner == chain.program_id and len(account.data) == AGENT_SPACE
    assert account.lamports == chain.svm.minimum_balance_for_rent_exemption(AGENT_SPACE)


def test_wrong_pda_is_constraint_seeds(chain: Chain) -> None:
    owner = chain.funded_keypair()
    ix = register_ix(owner.pubkey())
    forged = Keypair().pubkey()
    metas = [AccountMeta(forged, False, True)] + list(ix.accounts[1:])
    result = chain.send([Instruction(ix.program_id, ix.data, metas)], [owner])
    assert result.error == "ConstraintSeeds"
    assert chain.account(forged) is None
