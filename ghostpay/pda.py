"""Program-derived addresses of every GhostPay account.

The seeds are generated from the IDL (ghostpay/seeds.py); this module derives the addresses and picks the values
a client chooses (payment references, order ids). The legacy receipt's seeds are here: no instruction of the IDL
declares them any more."""

from __future__ import annotations

import os
from functools import lru_cache

from solders.pubkey import Pubkey
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_PROGRAM_ID

from ghostpay.program_id import PROGRAM_ID
from ghostpay.seeds import RECEIPT_SEED, agent_seeds, payer_stats_seeds, reputation_seeds, work_order_seeds

REFERENCE_LEN = 32
# Addresses a paid call derives again each time (an agent's reputation, a buyer's PayerStats and token
# accounts): remembered, as a derivation costs about 20 µs (up to 255 hashes and curve checks).
DERIVED_ADDRESSES_KEPT = 4096


def agent_address(owner: Pubkey, agent_id: str, program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """The agent PDA `["agent", owner, agent_id]` and its canonical bump.

    >>> from solders.pubkey import Pubkey
    >>> address, bump = agent_address(Pubkey.default(), "translator")
    >>> 0 <= bump <= 255
    True
    """
    return Pubkey.find_program_address(agent_seeds(owner, agent_id), program_id)


@lru_cache(maxsize=DERIVED_ADDRESSES_KEPT)
def reputation_address(agent: Pubkey, program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """The agent's ReputationMetrics PDA `["reputation", agent]` and its bump."""
    return Pubkey.find_program_address(reputation_seeds(agent), program_id)


@lru_cache(maxsize=DERIVED_ADDRESSES_KEPT)
def payer_stats_address(agent: Pubkey, payer: Pubkey, program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """The PayerStats PDA `["payer_stats", agent, payer]`: one payer's paid calls to one agent."""
    return Pubkey.find_program_address(payer_stats_seeds(agent, payer), program_id)


def receipt_address(agent: Pubkey, reference: bytes, program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """The legacy X402Receipt PDA `["receipt", agent, reference]` of a 32-byte payment reference (the program
    no longer creates receipts; those made before stay readable and closable)."""
    if len(reference) != REFERENCE_LEN:
        raise ValueError(f"a payment reference is {REFERENCE_LEN} bytes, got {len(reference)}")
    return Pubkey.find_program_address([RECEIPT_SEED, bytes(agent), reference], program_id)


def new_reference() -> bytes:
    """A random payment reference: 32 bytes, the buyer's idempotency key and the seller's lookup key.

    >>> len(new_reference())
    32
    """
    return os.urandom(REFERENCE_LEN)


ORDER_ID_BITS = 63  # picked ids fit a signed 64-bit column (SQLite's INTEGER); the program takes any u64


def new_order_id(client: Pubkey, program_id: Pubkey = PROGRAM_ID) -> int:
    """A random order id whose work-order PDA has bump 255 (the program searches the canonical bump from 255
    down, so this costs it one try instead of two on average), below 2^63."""
    while True:
        order_id = int.from_bytes(os.urandom(8), "little") >> (64 - ORDER_ID_BITS)
        if work_order_address(client, order_id, program_id)[1] == 255:
            return order_id


def work_order_address(client: Pubkey, order_id: int, program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """The WorkOrder PDA `["work_order", client, order_id (u64 LE)]`."""
    return Pubkey.find_program_address(work_order_seeds(client, order_id), program_id)


@lru_cache(maxsize=DERIVED_ADDRESSES_KEPT)
def associated_token_address(owner: Pubkey, mint: Pubkey, token_program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
    """The associated token account of `owner` for `mint`, under any token program (spl's helper
    accepts only SPL Token and Token-2022; tests also load clones)."""
    seeds = [bytes(owner), bytes(token_program), bytes(mint)]
    return Pubkey.find_program_address(seeds, ASSOCIATED_TOKEN_PROGRAM_ID)[0]
