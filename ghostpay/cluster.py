"""Cluster monikers and RPC / websocket URLs.

>>> resolve("devnet").http_url
'https://api.devnet.solana.com'
>>> resolve("http://127.0.0.1:8899").ws_url
'ws://127.0.0.1:8900'
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ghostpay.exceptions import InvalidArgument

LOCALNET = "http://127.0.0.1:8899"
DEVNET = "https://api.devnet.solana.com"
MAINNET = "https://api.mainnet-beta.solana.com"

MONIKERS: dict[str, str] = {
    "l": LOCALNET,
    "localhost": LOCALNET,
    "localnet": LOCALNET,
    "d": DEVNET,
    "devnet": DEVNET,
    "m": MAINNET,
    "mainnet-beta": MAINNET,
    "mainnet": MAINNET,
}


@dataclass(frozen=True)
class Cluster:
    """An RPC endpoint and its websocket endpoint."""

    http_url: str
    ws_url: str


def ws_url_for(http_url: str) -> str:
    """The websocket URL of an RPC URL as the Solana CLI derives it: ws(s) scheme, port + 1 if explicit."""
    parts = urlsplit(http_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"not an http(s) RPC URL: {http_url!r}")
    scheme = "wss" if parts.scheme == "https" else "ws"
    netloc = parts.netloc
    if parts.port is not None:
        host = parts.netloc.rsplit(":", 1)[0]
        netloc = f"{host}:{parts.port + 1}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


def resolve(url_or_moniker: str, ws_url: str | None = None) -> Cluster:
    """A moniker (`l|localhost|localnet`, `d|devnet`, `m|mainnet-beta`) or an http(s) URL."""
    http_url = MONIKERS.get(url_or_moniker.strip().lower(), url_or_moniker.strip())
    return Cluster(http_url, ws_url or ws_url_for(http_url))
