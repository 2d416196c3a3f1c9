"""Which x402 network id a Solana cluster goes by.

Devnet and mainnet use the official CAIP-2 ids (v2) and names (v1). A localnet
has no id the official package accepts (`normalize_network` refuses made-up ones),
so it goes by **devnet's** ids with every party's RPC URL pointed at the local
RPC: unchanged official clients can then pay a localnet seller.

    >>> network_for_cluster("localnet").caip2 == DEVNET.caip2
    True
    >>> network_for_cluster("http://127.0.0.1:8899").rpc_url
    'http://127.0.0.1:8899'
    >>> network_for_cluster("mainnet-beta").v1_name
    'solana'
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from ghostpay.cluster import DEVNET as DEVNET_RPC_URL, MAINNET as MAINNET_RPC_URL, resolve
from ghostpay.exceptions import InvalidArgument
from ghostpay.token_labels import MAINNET_GENESIS

DEVNET_CAIP2 = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
MAINNET_CAIP2 = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"

# The well-known USD stablecoins of each network (a unit is worth one dollar): what a facilitator
# settles by default, and whose payments' value it knows.
STABLECOINS: dict[str, dict[str, str]] = {
    DEVNET_CAIP2: {"4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU": "USDC"},
    MAINNET_CAIP2: {
        "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v": "USDC",
        "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB": "USDT",
    },
}


@dataclass(frozen=True)
class X402Network:
    """An x402 network id (v2 CAIP-2, v1 name) and the RPC its parties use for it."""

    caip2: str
    v1_name: str
    rpc_url: str
    ws_url: str

    @property
    def ids(self) -> tuple[str, str]:
        """Both spellings: requirements and payloads may carry either."""
        return (self.caip2, self.v1_name)


DEVNET = X402Network(DEVNET_CAIP2, "solana-devnet", DEVNET_RPC_URL, "wss://api.devnet.solana.com")
MAINNET = X402Network(MAINNET_CAIP2, "solana", MAINNET_RPC_URL, "wss://api.mainnet-beta.solana.com")

_BY_ID: dict[str, X402Network] = {i: n for n in (DEVNET, MAINNET) for i in n.ids}


def network_for_cluster(url_or_moniker: str, ws_url: str | None = None) -> X402Network:
    """The x402 network of a cluster moniker or RPC URL; anything not mainnet goes by devnet's ids
    (a localnet, a private devnet mirror), with its own RPC URL."""
    cluster = resolve(url_or_moniker, ws_url)
    base = MAINNET if cluster.http_url == MAINNET_RPC_URL else DEVNET
    return X402Network(base.caip2, base.v1_name, cluster.http_url, cluster.ws_url)


def network_for_genesis(genesis_hash: str | None) -> X402Network:
    """The x402 network of a chain named by its genesis hash: mainnet's ids for mainnet, devnet's for
    anything else (as `network_for_cluster`: a localnet goes by devnet's ids).

    >>> network_for_genesis(MAINNET_GENESIS).caip2 == MAINNET_CAIP2, network_for_genesis(None) is DEVNET
    (True, True)
    """
    return MAINNET if genesis_hash == MAINNET_GENESIS else DEVNET


def network_by_id(network_id: str) -> X402Network:
    """The public network of a CAIP-2 id or v1 name (`solana-devnet`, `solana`)."""
    try:
        return _BY_ID[network_id]
    except KeyError:
        known = ", ".join(sorted(_BY_ID))
        raise InvalidArgument(f"unknown x402 network {network_id!r}; known: {known}") from None


def is_loopback_url(url: str) -> bool:
    """Whether an RPC URL is on this machine (a localnet: its mints are test mints).

    >>> is_loopback_url("http://127.0.0.1:8899"), is_loopback_url("http://localhost:8899")
    (True, True)
    >>> is_loopback_url("https://api.devnet.solana.com")
    False
    """
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_network(a: str, b: str) -> bool:
    """Whether two ids (either spelling) name the same network."""
    return a == b or (a in _BY_ID and b in _BY_ID and _BY_ID[a] is _BY_ID[b])
