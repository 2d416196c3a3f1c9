"""An agent's A2A Agent Card, made from its on-chain account with the official `a2a-sdk`'s types.

The card names the agent as the chain does (name, description, version `<registration>.<updated_at>`),
turns each on-chain capability into a skill, each A2A endpoint (a priced route, or the agent's endpoint)
into a JSON-RPC interface in A2A 1.0 and 0.3, and declares the a2a-x402 extension (required: every call
is paid) with the prices per mint in its params. `validate_proto_required_fields` (the SDK's check of the
fields the A2A schema marks REQUIRED) refuses a card that misses one, and `agent_card_to_dict` (the SDK's
serializer, which adds the 0.3 fields older clients read) writes the JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentExtension, AgentInterface, AgentSkill
from a2a.utils.constants import TransportProtocol
from a2a.utils.errors import InvalidParamsError
from a2a.utils.proto_utils import validate_proto_required_fields
from google.protobuf.struct_pb2 import Struct

from ghostpay.tokens import from_atomic
from ghostpay.x402.a2a.protocol import EXTENSION_URI, PROTOCOL_VERSIONS, integral
from ghostpay.x402.networks import network_for_cluster
from ghostpay.x402.seller_offer import Offer, offer_of

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient
    from ghostpay.results import AgentInfo

CARD_PATH = "/.well-known/agent-card.json"
INPUT_MODES = ("application/json", "text/plain")  # a data part is sent as JSON, text parts as text
DEFAULT_OUTPUT_MODE = "application/json"
SKILL_TAGS = ("x402", "solana", "ghostpay")
GENERIC_SKILL = "call"  # the skill of an agent that declares no capability


def price_text(offer: Offer) -> str:
    """'0.01 of <mint> or 0.02 of <mint>' per call."""
    return " or ".join(
        f"{from_atomic(p.amount, p.mint.decimals).normalize():f} of {p.mint.address}" for p in offer.prices
    )


def extension_params(offer: Offer, network: str, program_id: str) -> dict[str, Any]:
    """What a buyer needs to judge the price before calling: the network, payee and price per mint."""
    return {
        "x402Version": 2,
        "scheme": "exact",
        "network": network,
        "payTo": str(offer.payment_address),
        "agent": str(offer.agent),
        "programId": program_id,
        "accepts": [
            {"asset": str(p.mint.address), "amount": str(p.amount), "decimals": p.mint.decimals} for p in offer.prices
        ],
    }


def skills(offer: Offer, description: str) -> list[AgentSkill]:
    per_call = f" Paid per call in x402: {price_text(offer)}." if offer.prices else ""
    return [
        AgentSkill(
            id=capability,
            name=capability,
            description=f"{capability}: {description.rstrip('.')}.{per_call}",
            tags=[capability, *SKILL_TAGS],
        )
        for capability in (offer.capabilities or (GENERIC_SKILL,))
    ]


def build_card(
    offer: Offer,
    urls: Sequence[str],
    network: str,
    program_id: str,
    *,
    description: str = "",
    output_mode: str = "",
) -> AgentCard:
    """The card of `offer`'s agent served at `urls` (its A2A JSON-RPC endpoints); ValueError naming the
    REQUIRED fields it misses (e.g. no endpoint)."""
    description = description or offer.description or offer.name
    params = Struct()
    params.update(extension_params(offer, network, program_id))
    card = AgentCard(
        name=offer.name,
        description=description,
        version=offer.version or "0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding=TransportProtocol.JSONRPC.value, protocol_version=version)
            for url in urls
            for version in PROTOCOL_VERSIONS
        ],
        capabilities=AgentCapabilities(
            streaming=False,
            push_notifications=False,
            extensions=[
                AgentExtension(
                    uri=EXTENSION_URI,
                    description="Every call is paid with x402 on Solana (a2a-x402 standalone flow): "
                    + (price_text(offer) or "no accepted token now"),
                    required=True,
                    params=params,
                )
            ],
        ),
        default_input_modes=list(INPUT_MODES),
        default_output_modes=[output_mode or DEFAULT_OUTPUT_MODE],
        skills=skills(offer, description),
    )
    try:
        validate_proto_required_fields(card)
    except InvalidParamsError as exc:  # its data names the fields
        raise ValueError(f"the agent card misses required fields: {exc.data}") from None
    return card


def card_json(card: AgentCard) -> dict[str, Any]:
    """The card as served at /.well-known/agent-card.json (A2A 1.0 fields, and 0.3's for older clients)."""
    return integral(agent_card_to_dict(card))


async def chain_card(gp: GhostPayClient, info: AgentInfo, urls: Sequence[str]) -> AgentCard:
    """The card of an agent as the chain has it now, served at `urls` (`ghost agent card`)."""
    network = network_for_cluster(gp.cluster.http_url, gp.cluster.ws_url)
    return build_card(await offer_of(gp, info), urls, network.caip2, str(gp.program_id))
