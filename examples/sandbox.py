"""Throwaway wallets and a test token for the examples, on any cluster that airdrops SOL
(a localnet, devnet). With real funds you would load your keypair instead.

    url = rpc_url()                      # argv[1], else $GHOSTPAY_URL, else localnet
    alice, bob = wallets(url, 2)         # 2 SOL each, by airdrop
    usdc = demo_token(url, {bob: 100})   # a 6-decimal mint; bob holds 100 of it
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal

from solana.exceptions import SolanaRpcException
from solana.rpc.api import Client
from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.client import Token
from spl.token.constants import TOKEN_PROGRAM_ID

from ghostpay.cluster import resolve

LAMPORTS_PER_SOL = 1_000_000_000


def rpc_url() -> str:
    """The cluster to run against: the first argument, else $GHOSTPAY_URL, else localnet. Exits with one
    line saying how to start a localnet when nothing answers there."""
    url = resolve(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GHOSTPAY_URL", "localnet")).http_url
    try:
        healthy = Client(url, timeout=5).is_connected()  # getHealth
    except SolanaRpcException:  # refused or timed out
        healthy = False
    if not healthy:
        sys.exit(
            f"no Solana RPC answers at {url}: start a localnet with 'ghost localnet start --detach' "
            "(or pass an RPC URL)"
        )
    return url


def wallets(url: str, count: int, sol: int = 2) -> list[Keypair]:
    """`count` new keypairs with `sol` SOL each."""
    rpc = Client(url, Confirmed)
    keypairs = [Keypair() for _ in range(count)]
    for keypair in keypairs:
        rpc.confirm_transaction(
            rpc.request_airdrop(keypair.pubkey(), sol * LAMPORTS_PER_SOL).value, Confirmed, sleep_seconds=0.1
        )
    return keypairs


def demo_token(url: str, holders: dict[Keypair, int], decimals: int = 6) -> Pubkey:
    """A new mint (SPL Token) and whole-token balances for `holders`; a throwaway authority pays."""
    rpc = Client(url, Confirmed)
    authority = wallets(url, 1)[0]
    token = Token.create_mint(rpc, authority, authority.pubkey(), decimals, TOKEN_PROGRAM_ID)
    for holder, amount in holders.items():
        account = token.create_associated_token_account(holder.pubkey())
        rpc.confirm_transaction(
            token.mint_to(account, authority, int(Decimal(amount).scaleb(decimals))).value, Confirmed, sleep_seconds=0.1
        )
    return token.pubkey
