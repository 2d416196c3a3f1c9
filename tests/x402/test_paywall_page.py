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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from x402.http.utils import decode_payment_required_header
from x402.http.x402_http_server_base import x402HTTPServerBase
from x402.schemas import PaymentRequired, PaymentRequirements, ResourceInfo

from ghostpay.x402.networks import DEVNET
from ghostpay.x402.paywall_page import PaywallPage, is_browser
from tests.x402.conftest import Agent, Process, ServerThread, Shop, Upstream, register_agent
from tests.x402.test_proxy import proxy_process

TITLE = "Spanish translations"
HEADING = f"{TITLE} by Translator"  # the title, and the agent's on-chain name (register_agent: agent_id.title())
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}
SHOWN_PRICE = "$0.01"  # conftest's PRICE: 10,000 atomic units of a 6-decimal mint
SCRIPT = "<script>alert(1)</script>"
PAGE_CONFIG = re.compile(r"window\.x402 = (\{.*?\});\n", re.S)  # the package's script tag that feeds the page


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:
    return register_agent(net, "translator")


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, ServerThread]]:
    service = Upstream()
    with ServerThread(service.app) as server:
        yield service, server


@pytest.fixture(scope="module")
def proxy(
    net: Any, agent: Agent, upstream: Any, facilitator: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    proc = proxy_process(
        net,
        agent,
        upstream[1].url,
        facilitator.url,
        tmp_path_factory.mktemp("paywall"),
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
    assert config["amount"] == 0.01 and config["appName"] == HEADING
    assert config["currentUrl"] == f"{proxy.url}/translate" and config["testnet"] is True
    assert config["paymentRequired"]["resource"]["description"] == HEADING
    # the page pays the same requirements the header (and a JSON client) gets
    required = decode_payment_required_header(answer.headers["payment-required"])
    accepts = [r.model_dump(by_alias=True, exclude_none=True) for r in required.accepts]
    assert config["paymentRequired"]["accepts"] == accepts
    assert accepts[0]["asset"] == str(agent.mint) and accepts[0]["amount"] == "10000"
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
    assert line.startswith(f"{HEADING}. To access this content, please pay {SHOWN_PRICE} ")
    rows = {
        row.find_element("css selector", ".payment-label").text: row.find_element("css selector", ".payment-value").text
        for row in browser.find_elements("css selector", ".payment-row")
    }
    assert rows["Amount:"] == f"{SHOWN_PRICE} USDC"
    assert rows["Network:"] in line
