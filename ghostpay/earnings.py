"""An agent's earnings per mint, as the program keeps them (atomic units; `TokenEarnings` has them in tokens).

The Agent account has a fixed table of MAX_EARNING_MINTS slots; an empty slot has the default key as mint.
"""

from solders.pubkey import Pubkey

from ghostpay.accounts.agent import Agent
from ghostpay.types.mint_earnings import MintEarnings

EMPTY_SLOT = Pubkey.default()


def earnings_by_mint(agent: Agent) -> dict[Pubkey, MintEarnings]:
    """The agent's occupied earnings slots by mint, in slot order. The program fills slots from the front and
    never empties one, so the first empty slot ends them."""
    found = {}
    for slot in agent.earnings:
        if slot.mint == EMPTY_SLOT:
            break
        found[slot.mint] = slot
    return found


def agent_mints(agent: Agent) -> list[Pubkey]:
    """Every mint an agent account names: its accepted ones, then those it earned in."""
    return list(dict.fromkeys([*(t.mint for t in agent.x402_accepted_tokens), *earnings_by_mint(agent)]))
