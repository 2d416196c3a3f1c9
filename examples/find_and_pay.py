"""Find an agent that takes x402 payments under a price, pay one call, find the payment by its
reference (its transaction is the receipt), rate the call and read the agent's reputation.

    python examples/find_and_pay.py [RPC_URL]     (or GHOSTPAY_URL; default: localnet)
"""

from decimal import Decimal

from sandbox import demo_token, rpc_url, wallets

from ghostpay import GhostPay, X402Settings

url = rpc_url()
seller, buyer = wallets(url, 2)
usdc = demo_token(url, {buyer: 10})

with GhostPay(url, seller) as gp:  # someone to find: an agent selling OCR at 0.02 a page
    gp.register_agent(
        "ocr", "OCR", capabilities=["ocr"], x402=X402Settings({usdc: Decimal("0.02")}, "https://ocr.example/api")
    )

with GhostPay(url, buyer) as gp:
    found = gp.search_agents(
        x402_enabled=True, capability="ocr", token=usdc, max_price=Decimal("0.05"), sort="reputation"
    )
    agent = found[0]
    print(f"found {agent.name} at {agent.address}")

    paid = gp.pay_agent(agent.address, mint=usdc)  # its USDC price (default: its first accepted token)
    receipt = gp.get_receipt(agent.address, paid.reference)  # the agent's newest transactions, searched
    assert receipt is not None and receipt.signature == paid.signature and receipt.amount == paid.amount
    print(f"paid {paid.amount} (reference {paid.reference.hex()[:16]}...), transaction {receipt.signature}")

    # ... call the agent's endpoint with the reference as proof of payment, then rate the call:
    gp.submit_feedback(agent.address, paid.reference, success=True, response_time_ms=420, rating=5)
    reputation = gp.get_reputation(agent.address)
    print(f"reputation {reputation.score} bps, tier {reputation.tier}")
