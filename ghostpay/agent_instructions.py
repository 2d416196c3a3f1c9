"""Instruction builders for agents: the generated bindings plus the PDA and the
remaining accounts the program expects, so callers pass plain values."""

from __future__ import annotations

from dataclasses import dataclass, field

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from ghostpay.instructions import close_agent, register_agent
from ghostpay.instructions.register_agent import RegisterAgentArgs
from ghostpay.pda import agent_address, reputation_address
from ghostpay.program_id import PROGRAM_ID
from ghostpay.types import X402Config


@dataclass
class AgentProfile:
    """The descriptive fields of an agent."""

    agent_id: str
    name: str
    agent_type: int = 0
    description: str = ""
    metadata_uri: str = ""
    capabilities: list[str] = field(default_factory=list)


def mint_accounts(mints: list[Pubkey]) -> list[AccountMeta]:
    """Accepted token mints as the read-only remaining accounts the program checks."""
    return [AccountMeta(mint, is_signer=False, is_writable=False) for mint in mints]


def build_register_agent(
    owner: Pubkey, profile: AgentProfile, x402: X402Config | None = None, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """`register_agent` for `owner`, with x402 pricing in the same instruction when given.

    >>> from solders.pubkey import Pubkey
    >>> ix = build_register_agent(Pubkey.new_unique(), AgentProfile("translator", "Translator"))
    >>> len(ix.accounts)
    4
    """
    agent, _ = agent_address(owner, profile.agent_id, program_id)
    reputation, _ = reputation_address(agent, program_id)
    args: RegisterAgentArgs = {
        "agent_id": profile.agent_id,
        "agent_type": profile.agent_type,
        "name": profile.name,
        "description": profile.description,
        "metadata_uri": profile.metadata_uri,
        "capabilities": profile.capabilities,
        "x402": x402,
    }
    remaining = mint_accounts([token.mint for token in x402.accepted_tokens]) if x402 else []
    return register_agent(
        args,
        {"agent": agent, "reputation": reputation, "owner": owner},
        program_id=program_id,
        remaining_accounts=remaining,
    )


def build_close_agent(agent: Pubkey, owner: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """`close_agent`: closes the agent, refunding its rent to `owner`; its ReputationMetrics stays, so
    registering the same agent id again continues the same reputation."""
    return close_agent({"agent": agent, "owner": owner}, program_id=program_id)
