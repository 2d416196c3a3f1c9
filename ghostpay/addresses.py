"""Which network addresses a service that POSTs to user-given URLs may reach.

A webhook URL is chosen by whoever can run `ghost webhooks add`; the indexer then sends requests to it
from inside the operator's network. Loopback, private (RFC 1918, unique-local), link-local (the cloud
metadata address 169.254.169.254), and reserved ranges are refused unless the operator allows them, and
a host name counts by every address it resolves to, checked before any connection is made.

    >>> private_address_refusal("http://169.254.169.254/latest/meta-data")
    'http://169.254.169.254/latest/meta-data reaches 169.254.169.254, a link-local address'
    >>> private_address_refusal("https://8.8.8.8/hooks") is None
    True
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _kind(address: IpAddress) -> str | None:
    """What makes `address` non-public, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _kind(address.ipv4_mapped)
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return kind
    return None


def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address `host` stands for: itself when it is an IP literal, else what the resolver answers
    (a DNS lookup, no connection)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def private_address_refusal(url: str) -> str | None:
    """Why `url` may not be reached without `--allow-private`, or None when every address it resolves to is
    public. A host that does not resolve is refused too (its address cannot be checked)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return f"{url} has no host"
    try:
        addresses = resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError) as exc:
        return f"{url}: cannot resolve {host} ({exc.strerror if isinstance(exc, OSError) else exc})"
    for address in addresses:
        kind = _kind(address)
        if kind is not None:
            return f"{url} reaches {address}, a{'n' if kind[0] in 'aeiou' else ''} {kind} address"
    return None
