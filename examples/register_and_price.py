"""Register an agent that sells calls over x402, priced in two tokens (each price in its own token's
units), then change its price in one of them.

    python examples/register_and_price.py [RPC_URL]     (or GHOSTPAY_URL; default: localnet)
"""

from decimal import Decimal

from sandbox import demo_token, rpc_url, wallets

from ghostpay import GhostPay, X402Settings

url = rpc_url()
(owner,) = wallets(url, 1)
usdc, eurc = demo_token(url, {}), demo_token(url, {}, decimals=2)

with GhostPay(url, owner) as gp:
    registered = gp.register_agent(
        "translator",
        "Translator",
        description="English <-> French, per call",
        capabilities=["translate", "summarize"],
        x402=X402Settings(
            prices={usdc: Decimal("0.05"), eurc: Decimal("10.00")}, endpoint="https://translator.example/api"
        ),
    )
    pricing = gp.get_agent_pricing("translator")  # an agent_id of the wallet, or any agent's address
    for token in pricing.tokens:  # the first is the default a buyer pays in
        print(f"{token.price} of {token.mint} per call ({token.price_atomic} atomic units, {token.decimals} decimals)")
    print(f"registered {registered.address}, paid to {pricing.payment_address}")

    gp.set_price("translator", {usdc: Decimal("0.04")})  # the other token keeps its price
    pricing = gp.get_agent_pricing("translator")
    print(f"new price: {pricing.price_in(usdc).price} per call, still {pricing.price_in(eurc).price} in the other")
