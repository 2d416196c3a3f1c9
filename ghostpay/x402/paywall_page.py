"""The 402 a browser gets: the official package's Solana paywall page (`x402.http.paywall`).

A request is a browser's when its Accept names text/html and its User-Agent says Mozilla, the rule of the
official middleware (`x402HTTPServerBase._is_web_browser`): any other client gets the JSON 402 as before.
The page is the package's SVM template, built by its `create_paywall().with_network(svm_paywall)`; GhostPay
fills in what the template shows: the requirements at the agent's on-chain price (the package displays
`amount` / 10^6, the decimals of USDC, the token the page pays with) and, as the line above the price, the
title and the agent's on-chain name. Everything shown goes through the package's HTML-safe JSON, so
request input (the URL) is never reflected unescaped; the document title is escaped here.
"""

from __future__ import annotations

import html

from x402.http.paywall import PaywallProvider, create_paywall, svm_paywall
from x402.http.types import PaywallConfig
from x402.schemas import PaymentRequired

from ghostpay.x402.networks import MAINNET_CAIP2

BROWSER_ACCEPT = "text/html"
BROWSER_AGENT = "Mozilla"
TEMPLATE_TITLE = "<title>Payment Required</title>"  # the SVM template's document title, named after ours

__all__ = ["PaywallPage", "is_browser"]


def is_browser(accept: str | None, user_agent: str | None) -> bool:
    """Whether a request gets the paywall page instead of the JSON 402 (the official middleware's rule).

    >>> is_browser("text/html,application/xhtml+xml", "Mozilla/5.0 (X11; Linux x86_64)")
    True
    >>> is_browser("text/html", "curl/8.5.0"), is_browser("application/json", "Mozilla/5.0"), is_browser(None, None)
    (False, False, False)
    """
    return BROWSER_ACCEPT in (accept or "") and BROWSER_AGENT in (user_agent or "")


class PaywallPage:
    """The package's SVM paywall, titled `title` (default: the agent's name)."""

    def __init__(self, title: str = "") -> None:
        self.title = title.strip()
        self.provider: PaywallProvider = create_paywall().with_network(svm_paywall).build()

    def heading(self, agent_name: str) -> str:
        """The page's title: the title given and the agent that sells."""
        if not self.title or self.title == agent_name:
            return agent_name
        return f"{self.title} by {agent_name}" if agent_name else self.title

    def render(self, required: PaymentRequired, agent_name: str) -> str:
        """The page for `required` (the 402's own requirements); the line above the price is the heading and
        what a call buys (the 402's description, when it says more than the agent's name)."""
        heading = self.heading(agent_name)
        resource = required.resource
        shown = required
        if resource is not None:
            bought = resource.description
            line = f"{heading}: {bought}" if bought and bought not in (agent_name, self.title) else heading
            shown = required.model_copy(update={"resource": resource.model_copy(update={"description": line})})
        testnet = not any(r.network == MAINNET_CAIP2 for r in required.accepts)
        config = PaywallConfig(app_name=heading, current_url=resource.url if resource else None, testnet=testnet)
        page = self.provider.generate_html(shown, config)
        return page.replace(TEMPLATE_TITLE, f"<title>{html.escape(heading)} - Payment Required</title>", 1)
