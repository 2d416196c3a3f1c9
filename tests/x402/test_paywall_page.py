"""The paywall page a browser gets from `ghost x402 proxy` and the seller middleware: the official package's
Solana paywall (`x402.http.paywall`), with the agent's on-chain name and price and `--paywall-title`.
JSON clients get the 402 they got before; request input never reaches the page unescaped.

GHOSTPAY_PAYWALL_SCREENSHOT=docs/paywall.png also writes the browser test's screenshot there (docs/x402.md's)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from solders.pubkey import Pubkey
from x402.http.utils import decode_payment_required_header
from x402.http.x402_http_server_base import x402HTTPServerBase
from x402.schemas import PaymentRequired, PaymentRequirements, ResourceInfo

from ghostpay.token_labels import LABELS_FILE, TokenLabels, short
from ghostpay.tokens import MintInfo
from ghostpay.x402.networks import DEVNET
from ghostpay.x402.paywall_page import PaywallPage, is_browser
from ghostpay.x402.seller_offer import MintPrice
from tests.sdk.conftest import create_mint
from tests.x402.conftest import Agent, Process, Shop, proxy_process, register

TITLE = "Spanish translations"
HEADING = f"{TITLE} by Translator"  # the title, and the agent's on-chain name (register_agent: agent_id.title())
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}
SHOWN_PRICE = "0.01 USDC"  # 10,000 atomic units of a 6-decimal mint labelled USDC: the token the page pays
OTHER_PRICE = "0.04 EURC"  # 4 atomic units of a 2-decimal mint labelled EURC: also accepted
SCRIPT = "<script>alert(1)</script>"
PAGE_CONFIG = re.compile(r"window\.x402 = (\{.*?\});\n", re.S)  # the package's script tag that feeds the page


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:
    """The translator, priced in a 6-decimal mint (its default) and a 2-decimal one."""
    usdc, eurc = create_mint(net, 6), create_mint(net, 2)
    address, owner = register(net, "translator", {usdc: Decimal("0.01"), eurc: Decimal("0.04")}, ["test"])
    return Agent(address, owner, usdc, net)


def label_mints(net: Any, home: Path, agent: Agent) -> None:
    """USDC and EURC in the proxy's token labels (`ghost token label`'s store), for the agent's two mints."""
    genesis = net.rpc("getGenesisHash")["result"]
    labels = TokenLabels(home / LABELS_FILE)
    prices = agent.run("get_agent").prices_atomic
    for label, mint in zip(("USDC", "EURC"), prices, strict=True):
        labels.add(genesis, label, str(mint))


@pytest.fixture(scope="module")
def proxy(
    net: Any, agent: Agent, upstream: Any, facilitator: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    home = tmp_path_factory.mktemp("paywall")
    label_mints(net, home, agent)
    proc = proxy_process(
        net,
        agent,
        upstream[1].url,
        facilitator.url,
        home,
        "--route",
        "GET /translate",
        "--route",
        "GET /page/*",
        "--paywall-title",
        TITLE,
    ).start()
    yield proc
    proc.stop()


def page_config(page: str) -> dict[str, Any]:
    """What the package's page shows and pays from (`window.x402`)."""
    found = PAGE_CONFIG.search(page)
    assert found, "the page carries no window.x402"
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def raw_get(url: str, target: str, headers: dict[str, str]) -> tuple[int, str]:
    """GET with `target` sent byte for byte (httpx would percent-encode it): status and body."""
    parts = urlsplit(url)
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b"".join(iter(lambda: conn.recv(65536), b""))
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


class Headers:
    """The two request headers the official server's browser check reads (its HTTPAdapter's getters)."""

    def __init__(self, accept: str, user_agent: str) -> None:
        self.accept, self.user_agent = accept, user_agent

    def get_accept_header(self) -> str:
        return self.accept

    def get_user_agent(self) -> str:
        return self.user_agent


@pytest.mark.parametrize(
    ("accept", "user_agent"),
    [
        (BROWSER["Accept"], BROWSER["User-Agent"]),
        ("text/html", "Mozilla/5.0 HeadlessChrome/131"),
        ("text/html", "curl/8.5.0"),
        ("application/json", BROWSER["User-Agent"]),
        ("*/*", BROWSER["User-Agent"]),
        ("", ""),
    ],
)
def test_a_browser_is_what_the_official_server_calls_one(accept: str, user_agent: str) -> None:
    official = x402HTTPServerBase._is_web_browser(None, Headers(accept, user_agent))  # type: ignore[arg-type]
    assert is_browser(accept, user_agent) == official


def test_a_browser_gets_the_packages_paywall_page(proxy: Process, agent: Agent, upstream: Any) -> None:
    service, _ = upstream
    calls = len(service.calls)
    answer = httpx.get(f"{proxy.url}/translate", headers=BROWSER)
    assert answer.status_code == 402 and answer.headers["content-type"].startswith("text/html")
    assert f"<title>{HEADING} - Payment Required</title>" in answer.text
    config = page_config(answer.text)
    assert config["amount"] == "0.01" and config["appName"] == HEADING
    assert config["ghostpay"] == {"label": "USDC", "others": OTHER_PRICE}
    assert config["currentUrl"] == f"{proxy.url}/translate" and config["testnet"] is True
    assert config["paymentRequired"]["resource"]["description"] == HEADING
    # the page pays the same requirements the header (and a JSON client) gets
    required = decode_payment_required_header(answer.headers["payment-required"])
    accepts = [r.model_dump(by_alias=True, exclude_none=True) for r in required.accepts]
    assert config["paymentRequired"]["accepts"] == accepts
    assert [(a["asset"] == str(agent.mint), a["amount"]) for a in accepts] == [(True, "10000"), (False, "4")]
    assert len(service.calls) == calls  # the upstream is never reached unpaid


def test_json_clients_get_the_402_as_before(proxy: Process) -> None:
    """An API client (JSON, no Accept at all, or text/html from a non-browser, the official middleware's rule)
    gets the JSON 402 with the header, the same answer as before."""
    with httpx.Client() as bare:
        bare.headers.clear()
        plain = bare.get(f"{proxy.url}/translate")
        assert plain.status_code == 402 and plain.headers["content-type"] == "application/json"
        for headers in (
            {"Accept": "application/json", "User-Agent": BROWSER["User-Agent"]},
            {"Accept": "text/html"},  # curl -H 'Accept: text/html': not a browser
        ):
            answer = bare.get(f"{proxy.url}/translate", headers=headers)
            assert answer.status_code == 402 and answer.headers["content-type"] == "application/json"
            assert answer.json() == plain.json() and answer.json()["x402Version"] == 1
            assert answer.headers["payment-required"] == plain.headers["payment-required"]
    required = decode_payment_required_header(plain.headers["payment-required"])
    assert required.resource is not None and required.resource.description == "Translator"  # not the page's line


def test_request_input_is_not_reflected_unescaped(proxy: Process) -> None:
    """A path and a query carrying a script tag, sent raw: the page holds them only HTML-escaped."""
    status, page = raw_get(proxy.url, f"/page/{SCRIPT}?q={SCRIPT}", BROWSER)
    assert status == 402 and "window.x402" in page
    assert SCRIPT not in page and "alert(1)" in page  # there, but as \u003cscript\u003e in the JSON
    assert page_config(page)["currentUrl"] == f"{proxy.url}/page/{SCRIPT}?q={SCRIPT}"  # escaped, not altered


def test_a_title_or_an_on_chain_name_with_markup_is_escaped() -> None:
    """The seller's title and the agent's name (anyone's on-chain text) reach the page as text only."""
    required = PaymentRequired(
        error="payment required",
        resource=ResourceInfo(url="http://127.0.0.1/x", description=f"buys {SCRIPT}"),
        accepts=[
            PaymentRequirements(
                scheme="exact",
                network=DEVNET.caip2,
                asset="4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
                amount="10000",
                pay_to="11111111111111111111111111111111",
                max_timeout_seconds=60,
            )
        ],
    )
    page = PaywallPage(f"Title {SCRIPT}").render(required, f"Agent {SCRIPT}")
    assert SCRIPT not in page
    assert "<title>Title &lt;script&gt;alert(1)&lt;/script&gt; by Agent &lt;script&gt;" in page
    shown = page_config(page)["paymentRequired"]["resource"]["description"]
    assert shown == f"Title {SCRIPT} by Agent {SCRIPT}: buys {SCRIPT}"


def requirement(mint: Pubkey, amount: int) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=DEVNET.caip2,
        asset=str(mint),
        amount=str(amount),
        pay_to="11111111111111111111111111111111",
        max_timeout_seconds=60,
    )


def test_each_mint_is_priced_in_its_own_decimals_and_label() -> None:
    """A 2-decimal EURC first (the token the page pays), then a 6-decimal USDC and an unlabelled 9-decimal mint:
    each in its own whole tokens and label (the package would show 4 / 10^6 = $0.000004 USDC, and only EURC)."""
    eurc, usdc, other = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    prices = [
        MintPrice(MintInfo(eurc, 2, Pubkey.default()), 4, "EURC"),
        MintPrice(MintInfo(usdc, 6, Pubkey.default()), 10_000, "USDC"),
        MintPrice(MintInfo(other, 9, Pubkey.default()), 1_500_000_000, None),
    ]
    required = PaymentRequired(
        error="payment required",
        resource=ResourceInfo(url="http://127.0.0.1/x"),
        accepts=[requirement(p.mint.address, p.amount) for p in prices],
    )
    config = page_config(PaywallPage().render(required, "Translator", prices))
    assert config["amount"] == "0.04"
    assert config["ghostpay"] == {"label": "EURC", "others": f"0.01 USDC, 1.5 {short(str(other))}"}
    assert config["paymentRequired"]["accepts"] == [
        r.model_dump(by_alias=True, exclude_none=True) for r in required.accepts
    ]  # the page pays the 402's own requirements, unchanged


def test_a_template_the_patches_do_not_fit_gets_the_packages_own_page() -> None:
    """Every patch fits the installed package's template; one it does not fit (a newer package) is served as
    the package renders it, not half-patched."""
    assert PaywallPage().template is not None
    drifted = PaywallPage(template="<html><head></head><body></body></html>")
    assert drifted.template is None
    required = PaymentRequired(error="payment required", accepts=[requirement(Pubkey.new_unique(), 10_000)])
    config = page_config(drifted.render(required, "Translator"))
    assert config["amount"] == 0.01 and "ghostpay" not in config


def test_the_middleware_serves_the_page_too(agent: Agent, facilitator: Process) -> None:
    """SellerSettings(paywall_title=...) in an app of one's own; the JSON 402 is unchanged beside it."""
    with Shop(agent, facilitator.url, paywall_title="Translations") as shop:
        page = httpx.get(f"{shop.url}/paid", headers=BROWSER)
        assert page.status_code == 402 and "<title>Translations by Translator - Payment Required</title>" in page.text
        assert page_config(page.text)["paymentRequired"]["resource"]["description"] == "Translations by Translator"
        api = httpx.get(f"{shop.url}/paid")
        assert api.status_code == 402 and api.json()["accepts"][0]["maxAmountRequired"] == "10000"
        assert httpx.get(f"{shop.url}/free", headers=BROWSER).text == "free"


def test_chromium_renders_the_price_and_the_agents_name(proxy: Process, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{proxy.url}/translate")
    header = "div.header p"
    WebDriverWait(browser, 60).until(
        lambda d: SHOWN_PRICE in d.execute_script(f"return document.querySelector('{header}')?.innerText || ''")
    )
    browser.save_screenshot(str(tmp_path / "paywall.png"))
    if os.environ.get("GHOSTPAY_PAYWALL_SCREENSHOT"):
        shutil.copy(tmp_path / "paywall.png", os.environ["GHOSTPAY_PAYWALL_SCREENSHOT"])
    assert browser.title == f"{HEADING} - Payment Required"
    assert browser.find_element("css selector", "h1.title").text == "Payment Required"
    line = browser.find_element("css selector", header).text
    assert line.startswith(f"{HEADING}. To access this content, please pay {SHOWN_PRICE} on ")
    rows = {
        row.find_element("css selector", ".payment-label").text: row.find_element("css selector", ".payment-value").text
        for row in browser.find_elements("css selector", ".payment-row")
    }
    assert rows["Amount:"] == SHOWN_PRICE and rows["Also accepted:"] == OTHER_PRICE
    assert line.endswith(f" on {rows['Network:']}.")
    assert "$" not in line and "USDC" not in rows["Also accepted:"]
