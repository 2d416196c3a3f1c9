"""Program-derived addresses of every GhostPay account (seeds as in the IDL)."""

from __future__ import annotations

from solders.pubkey import Pubkey

from ghostpay.program_id import PROGRAM_ID

AGENT_SEED = b"agent"
REPUTATION_SEED = b"reputation"
RECEIPT_SEED = b"receipt"
REFERENCE_LEN = 32


def agent_address(owner: Pubkey, agent_id: str, program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """The agent PDA `["agent", owner, agent_id]` and its canonical bump.

    >>> from solders.pubkey import Pubkey
    >>> address, bump = agent_address(Pubkey.default(), "translator")
    >>> 0 <= bump <= 255
    True
    """
    return Pubkey.find_program_address([AGENT_SEED, bytes(owner), agent_id.encode()], program_id)


def reputation_address(agent: Pubkey, program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """The agent's ReputationMetrics PDA `["reputation", agent]` and its bump."""
    return Pubkey.find_program_address([REPUTATION_SEED, bytes(agent)], program_id)


def receipt_address(agent: Pubkey, reference: bytes, program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """The X402Receipt PDA `["receipt", agent, reference]` of a 32-byte payment reference."""
    if len(reference) != REFERENCE_LEN:
        raise ValueError(f"a payment reference is {REFERENCE_LEN} bytes, got {len(reference)}")
    return Pubkey.find_program_address([RECEIPT_SEED, bytes(agent), reference], program_id)
