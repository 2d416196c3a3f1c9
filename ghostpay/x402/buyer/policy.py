"""Which requirement of a 402 the buyer pays: on its network, in the exact scheme, in the tokens it prefers,
within its spending guards and `max_price`, from what the wallet holds; and the agent the guards see only
when the chain confirms it is the seller's."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from solders.pubkey import Pubkey

from ghostpay.exceptions import GhostPayError, NoPayableRequirement, SpendingRefused, TokenNotAccepted
from ghostpay.spending import GuardedWallet, Reservation, Spend, SpendingGuards
from ghostpay.tokens import from_atomic, to_atomic
from ghostpay.x402.buyer.models import Quote
from ghostpay.x402.buyer.quotes import Required, decode_quotes
from ghostpay.x402.networks import X402Network, same_network

if TYPE_CHECKING:
    from ghostpay.client import GhostPayClient


class BuyerPolicy:
    """Chooses the requirement to pay for one wallet (a GhostPayClient's) and reserves it under its guards."""

    def __init__(
        self,
        gp: GhostPayClient,
        network: X402Network,
        *,
        guards: SpendingGuards | GuardedWallet | None = None,
        max_price: Decimal | None = None,
        tokens: Sequence[Pubkey | str] = (),
    ) -> None:
        self.gp = gp
        self.wallet = gp.wallet
        self.network = network
        self.guarded = guards if isinstance(guards, GuardedWallet) or guards is None else GuardedWallet(guards)
        self.max_price = max_price
        self.asked = list(tokens)  # mints or token labels, resolved on the wallet's cluster at the first 402
        self.tokens: list[str] | None = None
        self._agents: dict[tuple[str, str], bool] = {}  # (agent, payTo): the agent's payment address is payTo

    async def quotes(
        self, required: Required, url: str, assumed: dict[int, tuple[str, ...]] | None = None
    ) -> list[Quote]:
        return await decode_quotes(self.gp, required, url, assumed)

    async def choose(self, required: Required, url: str, assumed: dict[int, tuple[str, ...]]) -> tuple[int, Quote]:
        """The requirement to pay: the first (in `tokens` order, then the seller's) on this network, in the
        exact scheme, with a fee payer, that the guards allow and the wallet holds enough of."""
        quotes = await self.quotes(required, url, assumed)
        if self.tokens is None:
            self.tokens = [str(await self.gp.resolve_mint(t)) for t in self.asked]
        tokens = self.tokens
        order = sorted(
            range(len(quotes)),
            key=lambda i: (tokens.index(quotes[i].mint) if quotes[i].mint in tokens else len(tokens), i),
        )
        reasons: list[str] = []
        refusal: SpendingRefused | None = None
        if self.guarded is not None:
            await self.gp.bind_guards(self.guarded)
        guards = self.guarded.guards if self.guarded else SpendingGuards()
        if tokens and not {q.mint for q in quotes} & set(tokens):
            labels = await self.gp.labels()
            asked = ", ".join(f"{labels.label(t)} ({t})" if labels.label(t) else t for t in tokens)
            raise TokenNotAccepted(
                f"the seller does not take {asked}; it asks for "
                + ", ".join(q.token for q in quotes)
                + "; nothing was paid",
                asked=tokens,
                accepted=list(dict.fromkeys(q.mint for q in quotes)),
            )
        for i in order:
            quote = quotes[i]
            if quote.scheme != "exact":
                reasons.append(f"scheme {quote.scheme!r} is not supported (only 'exact')")
            elif not same_network(quote.network, self.network.caip2) and not same_network(
                quote.network, self.network.v1_name
            ):
                reasons.append(f"the seller wants network {quote.network}; this wallet is on {self.network.caip2}")
            elif not quote.fee_payer:
                reasons.append(f"{quote.token}: no extra.feePayer (the facilitator paying the fees)")
            elif quote.decimals is None:
                reasons.append(f"{quote.mint} is not a token mint on {self.network.rpc_url}")
            elif quote.pay_to == str(self.wallet):
                reasons.append(
                    f"you are the seller: its payTo {quote.pay_to} is this wallet, and a payment to "
                    "yourself proves nothing (the program refuses it as SelfPayment)"
                )
            elif tokens and quote.mint not in tokens:
                continue  # another requirement is in a token asked for
            else:
                try:
                    guards.with_max_price(self.max_price).check(await self.spend(quote, url))
                except SpendingRefused as exc:
                    refusal = refusal or exc
                    continue
                balance = to_atomic(
                    await self.gp.get_token_balance(self.wallet, Pubkey.from_string(quote.mint)), quote.decimals
                )
                if balance >= quote.amount_atomic:
                    return i, quote
                reasons.append(
                    f"{quote.token}: the wallet holds {from_atomic(balance, quote.decimals)}, "
                    f"the price is {quote.amount}"
                )
        if refusal is not None:
            raise refusal
        raise NoPayableRequirement("nothing in the seller's 402 can be paid from this wallet: " + "; ".join(reasons))

    async def spend(self, quote: Quote, url: str) -> Spend:
        """What the guards see of paying `quote`: the agent only when the chain confirms it is the seller's."""
        assert quote.decimals is not None
        return Spend(
            str(self.wallet),
            quote.mint,
            quote.decimals,
            quote.amount_atomic,
            quote.pay_to,
            await self._verified_agent(quote),
            url,
            quote.label,
        )

    async def _verified_agent(self, quote: Quote) -> str | None:
        """The agent the seller names (`extra.ghostpay.agent`), if its on-chain payment address is the payTo:
        a seller may not borrow an allowed agent's name."""
        if quote.agent is None:
            return None
        key = (quote.agent, quote.pay_to)
        if key not in self._agents:
            try:
                info = await self.gp.get_agent(Pubkey.from_string(quote.agent))
                self._agents[key] = str(info.payment_address) == quote.pay_to
            except (GhostPayError, ValueError):
                self._agents[key] = False
        return quote.agent if self._agents[key] else None

    async def authorize(self, spend: Spend) -> Reservation | None:
        if self.guarded is None:
            return None
        return await self.guarded.authorize(spend, self.max_price)
