"""ERC-8004 ("Trustless Agents") documents for GhostPay agents: the registration file and feedback.

An ERC-8004 registry names an agent by `agentRegistry` (CAIP-10 `{namespace}:{chainId}:{registry}`)
and `agentId`. A GhostPay agent's registry is the program on its chain, `solana:<chain>:<program id>`
(the CAIP-2 Solana chain id is the first 32 characters of the genesis hash), and its id is the agent's
account address (its PDA). The registration file (`registration-v1`) lists the agent's services: its
A2A Agent Card at `<endpoint origin>/.well-known/agent-card.json`, its MCP endpoint when it has one,
and its web endpoint (the on-chain x402 service endpoint); the proxy serves the file at
`<origin>/.well-known/agent-registration.json`, the path ERC-8004 gives for proving an endpoint's domain.

    >>> registry = agent_registry("4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZAMdL4VZHirAn", "11111111111111111111111111111111")
    >>> registry
    'solana:4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZ:11111111111111111111111111111111'
    >>> doc = registration_file(
    ...     address="Ghost1111111111111111111111111111111111111", name="Translator", description="",
    ...     endpoint="https://translator.example/x402", active=True, x402_enabled=True, registry=registry)
    >>> [(s.name, s.endpoint) for s in doc.services]
    [('A2A', 'https://translator.example/.well-known/agent-card.json'), ('web', 'https://translator.example/x402')]
    >>> RegistrationFile.from_json(doc.to_json()) == doc
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ghostpay.exceptions import InvalidArgument

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient
    from ghostpay.inputs import AgentRef

REGISTRATION_TYPE = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1"
REGISTRATION_PATH = "/.well-known/agent-registration.json"
AGENT_CARD_PATH = "/.well-known/agent-card.json"  # A2A's well-known Agent Card location
A2A_PROTOCOL_VERSION = "1.0"
MCP_PROTOCOL_VERSION = "2025-06-18"
SERVICE_A2A = "A2A"
SERVICE_MCP = "MCP"
SERVICE_WEB = "web"
TRUST_REPUTATION = "reputation"

SOLANA_NAMESPACE = "solana"
CAIP2_SOLANA_REFERENCE_LEN = 32  # CAIP-2, solana namespace: truncate(genesisHash, 32)
# CAIP-2: namespace [-a-z0-9]{3,8}, reference [-_a-zA-Z0-9]{1,32}; CAIP-10 address [-.%a-zA-Z0-9]{1,128}
CAIP10 = re.compile(r"^([-a-z0-9]{3,8}):([-_a-zA-Z0-9]{1,32}):([-.%a-zA-Z0-9]{1,128})$")

# Feedback tags ERC-8004 names, and how a GhostPay rating maps onto them.
TAG_STARRED = "starred"  # quality 0-100
TAG_SUCCESS_RATE = "successRate"  # percent
TAG_RESPONSE_TIME = "responseTime"  # milliseconds
TAG_REVENUES = "revenues"  # cumulative, in the token's whole units (valueDecimals = its decimals)
STARS_TO_PERCENT = 20  # a 1-5 star rating is 20-100 on the `starred` scale
PERCENT = 100


class RegistrationFileInvalid(InvalidArgument):
    """A document is not an ERC-8004 registration-v1 file (the message names the field)."""


def solana_chain_id(genesis_hash: str) -> str:
    """The CAIP-2 id of the Solana chain with this genesis hash.

    >>> solana_chain_id("5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d")
    'solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp'
    """
    return f"{SOLANA_NAMESPACE}:{genesis_hash[:CAIP2_SOLANA_REFERENCE_LEN]}"


def account_id(genesis_hash: str, address: object) -> str:
    """The CAIP-10 id of an account (a wallet, a program) on the Solana chain with this genesis hash."""
    return f"{solana_chain_id(genesis_hash)}:{address}"


def agent_registry(genesis_hash: str, program_id: object) -> str:
    """The `agentRegistry` of GhostPay agents: the program on its chain, as CAIP-10."""
    return account_id(genesis_hash, program_id)


def parse_account_id(value: str) -> tuple[str, str, str]:
    """(namespace, chain reference, address) of a CAIP-10 id; RegistrationFileInvalid if it is not one.

    >>> parse_account_id("eip155:1:0x742d35Cc6634C0532925a3b844Bc9e7595f0bEb7")[:2]
    ('eip155', '1')
    """
    match = CAIP10.match(value) if isinstance(value, str) else None
    if match is None:
        raise RegistrationFileInvalid(f"agentRegistry {value!r} is not a CAIP-10 id (namespace:chainId:address)")
    namespace, reference, address = match.groups()
    return namespace, reference, address


def endpoint_origin(endpoint: str) -> str | None:
    """scheme://host[:port] of an http(s) endpoint, None for anything else.

    >>> endpoint_origin("https://agent.example:8443/x402/translate?x=1"), endpoint_origin("")
    ('https://agent.example:8443', None)
    """
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Service:
    """One entry of `services`: a name (A2A, MCP, web, ...), where, and the protocol version (a SHOULD)."""

    name: str
    endpoint: str
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "endpoint": self.endpoint}
        if self.version is not None:
            out["version"] = self.version
        return out


@dataclass(frozen=True)
class Registration:
    """One entry of `registrations`: the agent's id in one registry (both fields are mandatory)."""

    agent_id: str
    agent_registry: str

    def to_json(self) -> dict[str, Any]:
        return {"agentId": self.agent_id, "agentRegistry": self.agent_registry}


@dataclass(frozen=True)
class RegistrationFile:
    """An ERC-8004 registration-v1 file, field for field."""

    name: str
    description: str
    services: tuple[Service, ...]
    registrations: tuple[Registration, ...]
    x402_support: bool = True
    active: bool = True
    image: str = ""
    supported_trust: tuple[str, ...] = (TRUST_REPUTATION,)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": REGISTRATION_TYPE,
            "name": self.name,
            "description": self.description,
            "image": self.image,
            "services": [s.to_json() for s in self.services],
            "x402Support": self.x402_support,
            "active": self.active,
            "registrations": [r.to_json() for r in self.registrations],
            "supportedTrust": list(self.supported_trust),
        }

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def agent_in(self, registry: str) -> str | None:
        """The agent's id in `registry` (a CAIP-10 id), if it is registered there."""
        return next((r.agent_id for r in self.registrations if r.agent_registry == registry), None)

    @classmethod
    def from_json(cls, doc: Any) -> RegistrationFile:
        """Read a registration file (RegistrationFileInvalid naming the first bad field). `endpoints`, the
        draft's name for `services`, is read too; unknown fields are ignored, as the format allows."""
        if not isinstance(doc, dict):
            raise RegistrationFileInvalid("a registration file is a JSON object")
        if doc.get("type") != REGISTRATION_TYPE:
            raise RegistrationFileInvalid(f"type is {doc.get('type')!r}, not {REGISTRATION_TYPE!r}")
        services = doc.get("services", doc.get("endpoints", []))
        registrations = doc.get("registrations", [])
        trust = doc.get("supportedTrust") or []
        if not isinstance(services, list) or not isinstance(registrations, list) or not isinstance(trust, list):
            raise RegistrationFileInvalid("services, registrations and supportedTrust are lists")
        return cls(
            name=_text(doc, "name"),
            description=_text(doc, "description", required=False),
            image=_text(doc, "image", required=False),
            services=tuple(_service(s) for s in services),
            registrations=tuple(_registration(r) for r in registrations),
            x402_support=_flag(doc, "x402Support", False),
            active=_flag(doc, "active", True),
            supported_trust=tuple(str(t) for t in trust),
        )


def _text(doc: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = doc.get(key, None if required else "")
    if not isinstance(value, str):
        raise RegistrationFileInvalid(f"{key} must be a string")
    return value


def _flag(doc: dict[str, Any], key: str, default: bool) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise RegistrationFileInvalid(f"{key} must be true or false")
    return value


def _service(entry: Any) -> Service:
    if not isinstance(entry, dict):
        raise RegistrationFileInvalid("each service is an object")
    version = entry.get("version")
    return Service(_text(entry, "name"), _text(entry, "endpoint"), None if version is None else str(version))


def _registration(entry: Any) -> Registration:
    if not isinstance(entry, dict) or "agentId" not in entry:
        raise RegistrationFileInvalid("each registration has agentId and agentRegistry")
    registry = _text(entry, "agentRegistry")
    parse_account_id(registry)
    return Registration(str(entry["agentId"]), registry)  # EVM registries number their agents


def registration_file(
    *,
    address: object,
    name: str,
    description: str,
    endpoint: str,
    active: bool,
    x402_enabled: bool,
    registry: str,
    image: str = "",
    mcp: str | None = None,
) -> RegistrationFile:
    """The registration file of the agent at `address` in `registry` (`agent_registry(...)`).

    `endpoint` is its on-chain x402 service endpoint: its origin serves the A2A Agent Card (the proxy's
    /.well-known/agent-card.json) and the endpoint itself is the `web` service. `mcp`: its MCP endpoint."""
    services: list[Service] = []
    origin = endpoint_origin(endpoint)
    if origin is not None:
        services.append(Service(SERVICE_A2A, origin + AGENT_CARD_PATH, A2A_PROTOCOL_VERSION))
    if mcp:
        services.append(Service(SERVICE_MCP, mcp, MCP_PROTOCOL_VERSION))
    if origin is not None:
        services.append(Service(SERVICE_WEB, endpoint))
    return RegistrationFile(
        name=name,
        description=description,
        image=image,
        services=tuple(services),
        registrations=(Registration(str(address), registry),),
        x402_support=x402_enabled,
        active=active,
    )


async def chain_registry(gp: GhostPayClient) -> tuple[str, str]:
    """(genesis hash, agentRegistry) of the client's chain and program (the genesis hash is read once)."""
    genesis = await gp.genesis_hash()
    return genesis, agent_registry(genesis, gp.program_id)


async def registration_of(
    gp: GhostPayClient, agent: AgentRef, *, image: str = "", mcp: str | None = None
) -> RegistrationFile:
    """The registration file of an agent as its account is now (AccountNotFound if there is none)."""
    info = await gp.get_agent(agent)
    _, registry = await chain_registry(gp)
    return registration_file(
        address=info.address,
        name=info.name,
        description=info.description,
        endpoint=info.endpoint,
        active=info.is_active,
        x402_enabled=info.x402_enabled,
        registry=registry,
        image=image,
        mcp=mcp,
    )


def registration_url(endpoint: str) -> str:
    """Where the proxy at `endpoint` serves the agent's registration file (InvalidArgument if not http(s))."""
    origin = endpoint_origin(endpoint)
    if origin is None:
        raise InvalidArgument(f"the endpoint {endpoint!r} is not an http(s) URL: no registration file is served there")
    return origin + REGISTRATION_PATH


# feedback ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaidCall:
    """One paid call of a payer to the agent, as the chain recorded it, with the payer's rating if any."""

    signature: str  # the payment's transaction
    payer: str
    pay_to: str  # the agent's payment address
    timestamp: int
    success: bool | None = None  # None: not rated
    rating: int = 0  # 1-5 stars, 0 = none given
    response_time_ms: int = 0  # 0 = not measured


def feedback_entries(genesis_hash: str, registry: str, agent: str, call: PaidCall) -> list[dict[str, Any]]:
    """The ERC-8004 off-chain feedback files a rated paid call stands for, one per signal it carries
    (`successRate`, `starred`, `responseTime`), each with the payment as `proofOfPayment`."""
    if call.success is None:
        return []
    signals = [(TAG_SUCCESS_RATE, PERCENT if call.success else 0)]
    if call.rating:
        signals.append((TAG_STARRED, call.rating * STARS_TO_PERCENT))
    if call.response_time_ms:
        signals.append((TAG_RESPONSE_TIME, call.response_time_ms))
    return [feedback_file(genesis_hash, registry, agent, call, tag, value, 0) for tag, value in signals]


def feedback_file(
    genesis_hash: str, registry: str, agent: str, call: PaidCall, tag1: str, value: int, value_decimals: int
) -> dict[str, Any]:
    """One feedback file: the MUST fields, the tag, and the payment behind it."""
    return {
        "agentRegistry": registry,
        "agentId": agent,
        "clientAddress": account_id(genesis_hash, call.payer),
        "createdAt": iso_time(call.timestamp),
        "value": value,
        "valueDecimals": value_decimals,
        "tag1": tag1,
        "proofOfPayment": proof_of_payment(genesis_hash, call),
    }


def revenues_entry(
    genesis_hash: str, registry: str, agent: str, last: PaidCall, total: int, decimals: int, mint: str
) -> dict[str, Any]:
    """What a payer paid the agent in one mint, all told (`revenues`, in the token's units: `valueDecimals`
    are its decimals), with its latest payment as `proofOfPayment` and the token as a CAIP-19 `asset`."""
    entry = feedback_file(genesis_hash, registry, agent, last, TAG_REVENUES, total, decimals)
    entry["asset"] = f"{solana_chain_id(genesis_hash)}/token:{mint}"
    return entry


def proof_of_payment(genesis_hash: str, call: PaidCall) -> dict[str, str]:
    """ERC-8004's x402 proof of payment for a Solana payment: `txHash` is the transaction's signature."""
    return {
        "fromAddress": call.payer,
        "toAddress": call.pay_to,
        "chainId": solana_chain_id(genesis_hash),
        "txHash": call.signature,
    }


def iso_time(timestamp: int) -> str:
    """
    >>> iso_time(1758628800)
    '2025-09-23T12:00:00Z'
    """
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
