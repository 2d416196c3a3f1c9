"""The 402 a browser gets: the official package's Solana paywall page (`x402.http.paywall`).

A request is a browser's when its Accept names text/html and its User-Agent says Mozilla, the rule of the
official middleware (`x402HTTPServerBase._is_web_browser`): any other client gets the JSON 402 as before.
The page is the package's SVM template (`SVM_PAYWALL_TEMPLATE`, what its `svm_paywall` serves), fed the
way its handler feeds it (`window.x402`: the requirements, the URL, the title), with the agent's on-chain
name and the title as the line above the price. Everything shown goes through the package's HTML-safe JSON,
so request input (the URL) is never reflected unescaped; the document title is escaped here.

The package's page shows `amount` / 10^6 as "$… USDC" whatever the mint, and only the first requirement
(the one it pays). GhostPay gives it the price in whole tokens of the mint's real decimals, and patches the
template's fixed "USDC" and "$" to the mint's token label (`ghostpay.token_labels`, from the offer), and adds
a row listing the other accepted tokens at their prices. Each patch must match the template exactly once;
if the installed package's template differs, the page is the package's own, unpatched (logged).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from x402.http.paywall import PaywallProvider, create_paywall, svm_paywall
from x402.http.paywall.svm_paywall_template import SVM_PAYWALL_TEMPLATE
from x402.http.types import PaywallConfig
from x402.http.utils import htmlsafe_json_dumps
from x402.schemas import PaymentRequired, PaymentRequirements

from ghostpay.token_labels import short
from ghostpay.tokens import from_atomic
from ghostpay.x402.networks import MAINNET_CAIP2
from ghostpay.x402.seller_offer import MintPrice

log = logging.getLogger(__name__)

BROWSER_ACCEPT = "text/html"
BROWSER_AGENT = "Mozilla"
TEMPLATE_TITLE = "<title>Payment Required</title>"  # the SVM template's document title, named after ours
PAGE_KEY = "ghostpay"  # window.x402's key for what the patched template reads: the paid token's label, the others

# The template's component (minified: Z = window.x402, W = its amount, q = the token's name, k = the network's,
# F = the buyer's balance, pt = the JSX runtime): its "Network:" row, before which the other tokens are listed.
_NETWORK_ROW = (
    '(0,pt.jsxs)("div",{className:"payment-row",children:[(0,pt.jsx)("span",{className:"payment-label",'
    'children:"Network:"})'
)
_OTHERS_ROW = (
    f'Z.{PAGE_KEY}?.others&&(0,pt.jsxs)("div",{{className:"payment-row",children:[(0,pt.jsx)("span",'
    '{className:"payment-label",children:"Also accepted:"}),(0,pt.jsx)("span",{className:"payment-value",'
    f"children:Z.{PAGE_KEY}.others}})]}}),"
)
TEMPLATE_PATCHES: tuple[tuple[str, str], ...] = (
    ('q=oe.extra?.name||"USDC"', f'q=Z.{PAGE_KEY}?.label||oe.extra?.name||"USDC"'),
    (
        '" To access this content, please pay $",W," ",k," ",q,"."',
        '" To access this content, please pay ",W," ",q," on ",k,"."',
    ),
    ('children:["$",W," USDC"]', 'children:[W," ",q]'),
    ("`$${F} USDC`", "`${F} ${q}`"),
    (' USDC"}):"-"}', ' "+q}):"-"}'),
    ('i("Checking USDC balance...")', "i(`Checking ${q} balance...`)"),
    ("Make sure you have USDC on ${k}.", "Make sure you have ${q} on ${k}."),
    ('"Unable to read your USDC balance. Please retry."', '"Unable to read your token balance. Please retry."'),
    (_NETWORK_ROW, _OTHERS_ROW + _NETWORK_ROW),
)

__all__ = ["PaywallPage", "is_browser", "patched_template", "shown_price"]


def is_browser(accept: str | None, user_agent: str | None) -> bool:
    """Whether a request gets the paywall page instead of the JSON 402 (the official middleware's rule).

    >>> is_browser("text/html,application/xhtml+xml", "Mozilla/5.0 (X11; Linux x86_64)")
    True
    >>> is_browser("text/html", "curl/8.5.0"), is_browser("application/json", "Mozilla/5.0"), is_browser(None, None)
    (False, False, False)
    """
    return BROWSER_ACCEPT in (accept or "") and BROWSER_AGENT in (user_agent or "")


def patched_template(template: str = SVM_PAYWALL_TEMPLATE) -> str | None:
    """The template with every patch applied, or None when one does not match exactly once."""
    for old, new in TEMPLATE_PATCHES:
        if template.count(old) != 1:
            log.warning("the x402 paywall template changed (%r not found once): the page shows its own prices", old)
            return None
        template = template.replace(old, new)
    return template


@dataclass(frozen=True)
class ShownPrice:
    amount: str  # whole tokens, exact (atomic units when the mint's decimals are unknown)
    label: str

    def __str__(self) -> str:
        return f"{self.amount} {self.label}"


def shown_price(requirement: PaymentRequirements, tokens: Mapping[str, MintPrice]) -> ShownPrice:
    """A requirement's price as the page shows it: whole tokens in its mint's decimals, with its label (else
    the mint, shortened).

    >>> from solders.pubkey import Pubkey
    >>> from ghostpay.tokens import MintInfo
    >>> mint = Pubkey.new_unique()
    >>> eurc = MintPrice(MintInfo(mint, 2, Pubkey.default()), 4, "EURC")
    >>> req = PaymentRequirements(scheme="exact", network="solana:x", asset=str(mint), amount="4",
    ...                           pay_to=str(mint), max_timeout_seconds=60)
    >>> str(shown_price(req, {str(mint): eurc}))
    '0.04 EURC'
    >>> str(shown_price(req, {})) == f"4 atomic units {short(str(mint))}"
    True
    """
    token = tokens.get(requirement.asset)
    atomic = int(requirement.amount)
    if token is None:
        return ShownPrice(f"{atomic} atomic units", short(requirement.asset))
    whole = from_atomic(atomic, token.mint.decimals).normalize()
    return ShownPrice(f"{whole:f}", token.label or short(requirement.asset))


class PaywallPage:
    """The package's SVM paywall, titled `title` (default: the agent's name)."""

    def __init__(self, title: str = "", template: str = SVM_PAYWALL_TEMPLATE) -> None:
        self.title = title.strip()
        self.template = patched_template(template)
        self.provider: PaywallProvider = create_paywall().with_network(svm_paywall).build()

    def heading(self, agent_name: str) -> str:
        """The page's title: the title given and the agent that sells."""
        if not self.title or self.title == agent_name:
            return agent_name
        return f"{self.title} by {agent_name}" if agent_name else self.title

    def render(self, required: PaymentRequired, agent_name: str, prices: Sequence[MintPrice] = ()) -> str:
        """The page for `required` (the 402's own requirements, priced in `prices`' mints); the line above the
        price is the heading and what a call buys (the 402's description, when it says more than the agent's
        name)."""
        heading = self.heading(agent_name)
        resource = required.resource
        shown = required
        if resource is not None:
            bought = resource.description
            line = f"{heading}: {bought}" if bought and bought not in (agent_name, self.title) else heading
            shown = required.model_copy(update={"resource": resource.model_copy(update={"description": line})})
        testnet = not any(r.network == MAINNET_CAIP2 for r in required.accepts)
        url = resource.url if resource else None
        if self.template is None:
            config = PaywallConfig(app_name=heading, current_url=url, testnet=testnet)
            page = self.provider.generate_html(shown, config)
        else:
            page = self._page(self.template, shown, heading, url, testnet, {str(p.mint.address): p for p in prices})
        return page.replace(TEMPLATE_TITLE, f"<title>{html.escape(heading)} - Payment Required</title>", 1)

    @staticmethod
    def _page(
        template: str,
        shown: PaymentRequired,
        heading: str,
        url: str | None,
        testnet: bool,
        tokens: Mapping[str, MintPrice],
    ) -> str:
        """The template fed as the package's handler feeds it, the price in the paid mint's whole tokens (it
        pays the first requirement) and the other accepted tokens beside it."""
        first, *others = [shown_price(r, tokens) for r in shown.accepts]
        config: dict[str, Any] = {
            "amount": first.amount,
            "paymentRequired": shown.model_dump(by_alias=True, exclude_none=True),
            "testnet": testnet,
            "currentUrl": url,
            "appName": heading,
            "appLogo": "",
            PAGE_KEY: {"label": first.label, "others": ", ".join(str(o) for o in others)},
        }
        script = f"\n  <script>\n    window.x402 = {htmlsafe_json_dumps(config)};\n  </script>"
        return template.replace("</head>", f"{script}\n</head>", 1)
