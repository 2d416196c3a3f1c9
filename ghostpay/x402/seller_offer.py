"""An agent's x402 offer as the chain has it now, kept current by an account subscription.

`AgentWatch` reads the agent once, then follows `accountSubscribe` on its address, so a price,
token or status change reaches the seller's 402 answers as soon as the node notifies it (well
within a second), not after a cache expiry. When the websocket drops it reconnects with backoff
and re-reads the account, so a change made meanwhile is not missed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import websockets
from solders.instruction import Instruction
from solders.pubkey import Pubkey
from spl.token.instructions import create_idempotent_associated_token_account, get_associated_token_address

from ghostpay.accounts import Agent
from ghostpay.client import AgentInfo, GhostPayClient
from ghostpay.exceptions import GhostPayError
from ghostpay.tokens import MintInfo

log = logging.getLogger(__name__)
RECONNECT_BACKOFF_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class PaywallError(GhostPayError):
    """The paywall cannot sell: the agent is missing, or a payee token account is missing and may not be created."""


class PayeeAccountsMissing(PaywallError):
    """The payment address has no token account for some accepted mints (buyers' payments would fail)."""

    def __init__(self, payment_address: Pubkey, mints: list[Pubkey]) -> None:
        super().__init__(
            f"payment address {payment_address} has no token account for "
            f"{', '.join(map(str, mints))}; create it, or let the paywall create it "
            "(payee_accounts='create' with a keypair)"
        )
        self.payment_address = payment_address
        self.mints = mints


@dataclass(frozen=True)
class MintPrice:
    """One accepted mint, the price of a call in its atomic units, and its token label on the agent's cluster."""

    mint: MintInfo
    amount: int
    label: str | None = None


@dataclass(frozen=True)
class Offer:
    """What a call to the agent costs right now, and whether it sells at all."""

    agent: Pubkey
    active: bool
    x402_enabled: bool
    payment_address: Pubkey
    prices: tuple[MintPrice, ...]
    closed: bool = False
    description: str = ""  # the agent's on-chain description: what a 402 says it sells unless the seller says
    name: str = ""  # the agent's on-chain name: the browser paywall shows it
    capabilities: tuple[str, ...] = ()  # the agent's on-chain capabilities: its A2A card's skills
    version: str = ""  # "<registration>.<updated_at>": its A2A card's version

    @property
    def unavailable(self) -> str | None:
        """Why the agent takes no payment now (the paywall answers 503), or None."""
        if self.closed:
            return "the agent's account is closed"
        if not self.active:
            return "the agent is inactive"
        if not self.x402_enabled or not self.prices:
            return "the agent has x402 payments disabled"
        return None


def token_prices(info: AgentInfo) -> list[tuple[Pubkey, int]]:
    """(mint, price in that mint's atomic units) for each accepted token: the one place that reads prices
    from the SDK's agent type."""
    return list(info.prices_atomic.items())


async def offer_of(gp: GhostPayClient, info: AgentInfo) -> Offer:
    labels = await gp.labels()
    prices = tuple(
        [MintPrice(await gp.get_mint(mint), amount, labels.label(mint)) for mint, amount in token_prices(info)]
    )
    return Offer(
        info.address,
        info.is_active,
        info.x402_enabled,
        info.payment_address,
        prices,
        description=info.description or info.name,
        name=info.name,
        capabilities=tuple(info.capabilities),
        version=f"{info.registration}.{info.updated_at}",
    )


def closed_offer(agent: Pubkey) -> Offer:
    return Offer(agent, False, False, Pubkey.default(), (), closed=True)


def _field_offset(name: str) -> int:
    """Where a fixed-size field of the Agent account starts (from the generated layout)."""
    offset = len(Agent.discriminator)
    for field in Agent.layout.subcons:
        if field.name == name:
            return offset
        offset += field.sizeof()
    raise KeyError(name)


_FLAGS = slice(_field_offset("x402_enabled"), _field_offset("agent_type"))
_PAYMENT_ADDRESS = slice(_field_offset("x402_payment_address"), _field_offset("x402_payment_address") + 32)
_TOKENS = _field_offset("x402_accepted_tokens")


def offer_fingerprint(data: bytes) -> bytes:
    """The bytes of an Agent account an `Offer` depends on (flags, payment address, and the variable tail: token
    prices, name, description, capabilities...): every payment rewrites the account's counters, and decoding
    all of it each time would cost the paywall a millisecond or more per payment."""
    if len(data) < _TOKENS + 4 or data[:8] != Agent.discriminator:
        return b""
    return data[_FLAGS] + data[_PAYMENT_ADDRESS] + data[_TOKENS:]


def payee_account_instructions(offer: Offer, payer: Pubkey, existing: set[Pubkey]) -> list[Instruction]:
    """Idempotent creations of the payment address's token accounts that are not in `existing`."""
    return [
        create_idempotent_associated_token_account(payer, offer.payment_address, p.mint.address, p.mint.token_program)
        for p in offer.prices
        if payee_account(offer, p) not in existing
    ]


def payee_account(offer: Offer, price: MintPrice) -> Pubkey:
    return get_associated_token_address(offer.payment_address, price.mint.address, price.mint.token_program)


class AgentWatch:
    """The agent's current `Offer`, following its account; `on_change` runs after each new offer."""

    def __init__(
        self, gp: GhostPayClient, agent: Pubkey, ws_url: str, on_change: Callable[[Offer], None] | None = None
    ) -> None:
        self.gp = gp
        self.agent = agent
        self.ws_url = ws_url
        self.on_change = on_change
        self.offer: Offer | None = None
        self.notifications = 0  # account notifications received
        self.updates = 0  # offers taken: the first read, then each notification that changed it
        self._fingerprint = b""
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> Offer:
        """Read the agent (PaywallError if it is not a GhostPay agent) and start following it."""
        found = await self.gp._account_data(self.agent)
        if found is None or found[0] != self.gp.program_id or not offer_fingerprint(found[1]):
            raise PaywallError(f"no GhostPay agent at {self.agent} on {self.gp.cluster.http_url}")
        await self._apply(found[1])
        self._task = asyncio.create_task(self._follow(), name=f"ghostpay-agent-watch-{self.agent}")
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)
        offer = self.offer
        assert offer is not None  # _apply set it
        return offer

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _set(self, offer: Offer) -> None:
        self.offer = offer
        if self.on_change is not None:
            self.on_change(offer)

    async def _apply(self, data: bytes) -> None:
        fingerprint = offer_fingerprint(data)
        if fingerprint and fingerprint == self._fingerprint:  # a payment's counters: the offer is the same
            return
        self._fingerprint = fingerprint
        if not fingerprint:
            self._set(closed_offer(self.agent))
        else:
            self._set(await offer_of(self.gp, await self.gp.decode_agent(self.agent, data)))
        self.updates += 1

    async def _follow(self) -> None:
        attempt = 0
        while True:
            try:
                async with websockets.connect(self.ws_url, max_size=2**22, open_timeout=10) as ws:
                    await ws.send(
                        json.dumps(
                            {
                                "jsonrpc": "2.0",
                                "id": 1,
                                "method": "accountSubscribe",
                                "params": [str(self.agent), {"encoding": "base64", "commitment": "confirmed"}],
                            }
                        )
                    )
                    json.loads(await ws.recv())
                    if attempt:  # changes made while disconnected arrive by no notification: read again
                        found = await self.gp._account_data(self.agent)
                        await self._apply(found[1] if found else b"")
                    attempt = 0
                    self._subscribed.set()
                    async for raw in ws:
                        message = json.loads(raw)
                        if message.get("method") == "accountNotification":
                            self.notifications += 1
                            value = message["params"]["result"]["value"]
                            await self._apply(base64.b64decode(value["data"][0]) if value else b"")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the node went away or answered garbage: retry
                delay = RECONNECT_BACKOFF_SECONDS[min(attempt, len(RECONNECT_BACKOFF_SECONDS) - 1)]
                log.warning("agent %s: subscription lost (%s); reconnecting in %.2fs", self.agent, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
