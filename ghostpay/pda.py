"""Program-derived addresses of every GhostPay account (seeds as in the IDL)."""

from __future__ import annotations

from solders.pubkey import Pubkey

from ghostpay.program_id import PROGRAM_ID

AGENT_SEED = b"agent"


def agent_address(owner: Pubkey, agent_id: str, program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """The agent PDA `["agent", owner, agent_id]` and its canonical bump.

    >>> from solders.pubkey import Pubkey
    >>> address, bump = agent_address(Pubkey.default(), "translator")
    >>> 0 <= bump <= 255
    True
    """
    return Pubkey.find_program_address([AGENT_SEED, bytes(owner), agent_id.encode()], program_id)
