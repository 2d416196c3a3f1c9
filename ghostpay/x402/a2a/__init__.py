"""A2A on GhostPay: the Agent Card from the chain, and the a2a-x402 extension (v0.2) both ways.

Modules: `protocol` (the extension's names, the JSON-RPC binding read and written with the official `a2a-sdk`'s
types, A2A 1.0 and 0.3), `card` (the Agent Card of an agent's account), `seller` (the merchant side the
paywall runs on its priced routes), `buyer` (`A2ABuyer`: pays an a2a-x402 agent under spending guards).
"""

from ghostpay.x402.a2a.buyer import A2ABuyer, A2ACall, A2APaymentFailed
from ghostpay.x402.a2a.card import CARD_PATH, build_card, card_json, chain_card
from ghostpay.x402.a2a.protocol import EXTENSION_URI

__all__ = [
    "CARD_PATH",
    "EXTENSION_URI",
    "A2ABuyer",
    "A2ACall",
    "A2APaymentFailed",
    "build_card",
    "card_json",
    "chain_card",
]
