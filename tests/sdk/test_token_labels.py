"""Token labels through the SDK: a label of the client's cluster is accepted wherever a mint is (X402Settings
keys, pay_agent / simulate_payment / create_work_order / list_work_orders mint=, search_agents token=, get_mint,
set_price, the guards' mint keys), and a label of another cluster is refused before anything is sent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from solders.keypair import Keypair

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.exceptions import BudgetExceeded, NotAMint, TokenLabelTaken, UnknownTokenLabel
from ghostpay.spending import GuardedWallet, Limits, SpendingGuards
from ghostpay.token_labels import TokenLabels
from tests.sdk.conftest import create_mint, fund, mint_to


async def test_labels_wherever_a_mint_is(net, tmp_path: Path) -> None:
    labels = TokenLabels(tmp_path / "labels.json")
    usdc, eurc = create_mint(net, 6), create_mint(net, 2)
    seller = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url, token_labels=labels)
    guards = GuardedWallet(SpendingGuards(mint_limits={"EURC": Limits(daily=Decimal("0.05"))}), tmp_path / "ledger")
    buyer = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url, token_labels=labels, guards=guards)
    async with seller, buyer:
        assert (await seller.add_token_label("USDC", usdc, test_mint=True)).mint == str(usdc)
        await seller.add_token_label("EURC", str(eurc))
        with pytest.raises(TokenLabelTaken, match=f"the label USDC already names the mint {usdc}"):
            await seller.add_token_label("usdc", eurc)
        with pytest.raises(NotAMint):  # a wallet is no mint: nothing labelled
            await seller.add_token_label("WALLET", seller.wallet)
        assert (await seller.labels()).test_mints() == {"USDC": str(usdc)}

        reg = await seller.register_agent(
            "labelled",
            "Labelled",
            capabilities=["label"],
            x402=X402Settings({"USDC": Decimal("0.01"), "eurc": Decimal("0.02")}, "https://labelled.example"),
        )
        info = await seller.get_agent(reg.address)
        assert info.prices == {usdc: Decimal("0.01"), eurc: Decimal("0.02")}
        assert (await seller.get_mint("EURC")).decimals == 2
        found = await buyer.search_agents(capability="label", token="USDC", max_price=Decimal("0.01"))
        assert [a.address for a in found] == [reg.address]
        assert await buyer.search_agents(capability="label", token="USDC", max_price=Decimal("0.009")) == []

        mint_to(net, buyer.wallet, usdc, 1_000_000)
        mint_to(net, buyer.wallet, eurc, 1_000)
        assert (await buyer.simulate_payment(reg.address, mint="EURC")).amount == Decimal("0.02")
        paid = await buyer.pay_agent(reg.address, mint="EURC")
        assert (paid.mint, paid.amount) == (eurc, Decimal("0.02"))
        await buyer.pay_agent(reg.address, mint="eurc")
        with pytest.raises(BudgetExceeded, match=r"daily budget of 0.05 EURC: 0.01 left; nothing was paid"):
            await buyer.pay_agent(reg.address, mint="EURC")  # the guards' "EURC" is this cluster's EURC
        assert await buyer.get_token_balance(buyer.wallet, "EURC") == Decimal("9.96")
        assert await buyer.get_token_balance(seller.wallet, eurc) == Decimal("0.04")

        await seller.set_price(reg.address, {"USDC": Decimal("0.03")})
        assert (await seller.get_agent(reg.address)).prices[usdc] == Decimal("0.03")
        arbiter = Keypair().pubkey()
        order = await buyer.create_work_order(
            reg.address, Decimal("0.5"), deadline=timedelta(days=1), arbiter=arbiter, title="by label", mint="USDC"
        )
        assert order.mint == usdc
        assert [o.address for o in await buyer.list_work_orders(client=buyer.wallet, mint="USDC")] == [order.address]
        assert await buyer.list_work_orders(client=buyer.wallet, mint="EURC") == []

        for refused in (
            buyer.pay_agent(reg.address, mint="USDT"),
            buyer.search_agents(token="PYUSD"),
            seller.register_agent("never", "Never", x402=X402Settings({"USDT": 1}, "https://n.example")),
        ):
            with pytest.raises(
                UnknownTokenLabel, match=r"names a mint on mainnet-beta .*, not on the cluster at"
            ) as unknown:
                await refused
            assert unknown.value.elsewhere == ["mainnet-beta"]
        assert await buyer.get_token_balance(buyer.wallet, usdc) == Decimal("0.5")  # only the escrow moved
        with pytest.raises(ValueError, match="neither a mint address"):
            X402Settings({"not a label!": 1}, "https://n.example")


async def test_guards_naming_a_label_this_cluster_lacks_refuse_every_payment(net, usdc, tmp_path: Path) -> None:
    seller = GhostPayClient(net.http_url, fund(net), ws_url=net.ws_url)
    guards = SpendingGuards(daily=Decimal(1), mint_limits={"GOLD": Limits(daily=Decimal("0.01"))})
    buyer = GhostPayClient(
        net.http_url,
        fund(net),
        ws_url=net.ws_url,
        token_labels=tmp_path / "labels.json",
        guards=GuardedWallet(guards, tmp_path / "ledger"),
    )
    async with seller, buyer:
        reg = await seller.register_agent(
            "no-gold", "NoGold", x402=X402Settings({usdc: Decimal("0.01")}, "https://g.example")
        )
        mint_to(net, buyer.wallet, usdc, 1_000_000)
        with pytest.raises(UnknownTokenLabel, match="the spending guards' token GOLD is not a token label on"):
            await buyer.pay_agent(reg.address)
        assert await buyer.get_token_balance(buyer.wallet, usdc) == Decimal(1)  # nothing was paid
