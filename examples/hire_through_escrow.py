"""Hire an agent through escrow: create a work order, the provider accepts it (agreeing to its
arbiter) and delivers, the client releases the payment in two milestones. Then a second order goes
to dispute and the arbiter splits it; a third the provider declines, refunding the client in full.

    python examples/hire_through_escrow.py [RPC_URL]     (or GHOSTPAY_URL; default: localnet)
"""

import hashlib
from datetime import timedelta
from decimal import Decimal

from sandbox import demo_token, rpc_url, wallets

from ghostpay import GhostPay, X402Settings

url = rpc_url()
provider_wallet, client_wallet, arbiter_wallet = wallets(url, 3)
usdc = demo_token(url, {client_wallet: 100})

with (
    GhostPay(url, provider_wallet) as provider,
    GhostPay(url, client_wallet) as client,
    GhostPay(url, arbiter_wallet) as arbiter,
):
    agent = provider.register_agent(
        "writer",
        "Writer",
        capabilities=["write"],
        x402=X402Settings({usdc: Decimal("1")}, "https://writer.example/api"),
    ).address

    # 1. create -> accept -> deliver -> release in two milestones
    order = client.create_work_order(
        agent,
        Decimal("50"),
        deadline=timedelta(days=7),
        arbiter=arbiter.wallet,
        title="Write the user guide",
        requirements=["10 pages", "Markdown"],
    )
    provider.accept_work_order(order.address, arbiter=arbiter.wallet)  # the provider agrees to this arbiter
    guide = b"# User guide\n..."
    provider.submit_delivery(order.address, "https://files.example/guide.md", hashlib.sha256(guide).digest())
    client.release_payment(order.address, Decimal("20"))  # first milestone
    print(f"released 20, {client.get_work_order(order.address).remaining} left in escrow")
    client.release_payment(order.address)  # the rest: completes and closes the work order
    print(
        f"provider holds {provider.get_token_balance(provider.wallet, usdc)}, "
        f"jobs completed: {provider.get_agent(agent).total_jobs_completed}"
    )

    # 2. a dispute, settled by the arbiter: 40 % back to the client, 60 % to the provider
    order = client.create_work_order(
        agent, Decimal("30"), deadline=timedelta(days=7), arbiter=arbiter.wallet, title="Translate the guide"
    )
    provider.accept_work_order(order.address, arbiter=arbiter.wallet)
    provider.submit_delivery(order.address, "https://files.example/guide-fr.md", bytes(32))
    client.open_dispute(order.address, "half of it is still in English")
    resolved = arbiter.resolve_dispute(order.address, client_share_bps=4_000).event("DisputeResolved")
    print(
        f"dispute resolved: {resolved.client_amount} to the client, {resolved.provider_amount} to the provider "
        f"(atomic units); client holds {client.get_token_balance(client.wallet, usdc)}"
    )
    print(f"reputation: {provider.get_reputation(agent).score} bps")

    # 3. an order the provider does not want: declined before accepting, the client gets it all back
    order = client.create_work_order(
        agent, Decimal("5"), deadline=timedelta(days=7), arbiter=arbiter.wallet, title="Rush job"
    )
    provider.decline_work_order(order.address)
    print(f"declined; client holds {client.get_token_balance(client.wallet, usdc)}")
