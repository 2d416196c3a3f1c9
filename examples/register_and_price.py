"""Register an agent that sells calls over x402, priced in a token, then change its price.

    python examples/register_and_price.py [RPC_URL]     (or GHOSTPAY_URL; default: localnet)
"""

from decimal import Decimal

from sandbox import demo_token, rpc_url, wallets

from ghostpay import GhostPay, X402Settings

url = rpc_url()
(owner,) = wallets(url, 1)
usdc = demo_token(url, {})

with GhostPay(url, owner) as gp:
    registered = gp.register_agent(
        "translator", "Translator", description="English <-> French, per call",
        capabilities=["translate", "summarize"],
        x402=X402Settings(price=Decimal("0.05"), tokens=[usdc], endpoint="https://translator.example/api"))
    pricing = gp.get_agent_pricing("translator")  # an agent_id of the wallet, or any agent's address
    print(f"registered {registered.address} at {pricing.price} per call, paid to {pricing.payment_address}")

    gp.set_price("translator", Decimal("0.04"))
    print(f"new price: {gp.get_agent_pricing('translator').price} per call")
