"""The dashboard in a real browser: Debian's chromium, headless, driven by selenium through
/usr/bin/chromedriver, against `ghost indexer run --serve` on a localnet history. The figures shown
equal the API's; a payment made during the test appears in the live feed without a reload.

GHOSTPAY_DASHBOARD_SCREENSHOT=docs/dashboard.png also writes the screenshot there (docs/analytics.md's)."""

from __future__ import annotations

import asyncio
import os
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.analytics.conftest import GhostServer, wait_for
from tests.analytics.world import World

WEEK = 7 * 86_400


def text(driver: Any, selector: str) -> str:
    return str(driver.find_element("css selector", selector).text)


def shown_metrics(driver: Any) -> dict[str, str]:
    names = [
        "success-rate",
        "error-rate",
        "rated",
        "payments-total",
        "payments-successful",
        "payments-failed",
        "payments-pending",
        "failed-payments",
        "active-agents",
        "response-ms",
    ]
    return {n: text(driver, f'[data-metric="{n}"]') for n in names}


def expected_metrics(api: dict[str, Any]) -> dict[str, str]:
    perf, payments = api["performance"], api["payments"]
    rate = lambda v: "–" if v is None else f"{v}%"  # noqa: E731
    return {
        "success-rate": rate(perf["success_rate"]),
        "error-rate": rate(perf["error_rate"]),
        "rated": str(perf["rated"]),
        "payments-total": str(payments["total"]),
        "payments-successful": str(payments["successful"]),
        "payments-failed": str(payments["failed"]),
        "payments-pending": str(payments["pending"]),
        "failed-payments": str(payments["failed"]),
        "active-agents": str(api["agents"]["active"]),
        "response-ms": "–" if perf["average_response_ms"] is None else f"{perf['average_response_ms']} ms",
    }


def rows(driver: Any, table: str) -> list[list[str]]:
    return [
        [td.text for td in tr.find_elements("css selector", "td")]
        for tr in driver.find_elements("css selector", f"#{table} tbody tr")
    ]


def check_against_api(driver: Any, url: str, period: int) -> dict[str, Any]:
    api = httpx.get(f"{url}api/metrics/x402?period={period}", timeout=10).json()
    assert shown_metrics(driver) == expected_metrics(api)
    shown = rows(driver, "volume")  # tokens by label where they have one (USDC), else the short address
    assert shown == [[token(t), str(t["payments"]), t["total"], t["average"]] for t in api["volume"]["by_token"]]
    assert "USDC" in [row[0] for row in shown]
    assert [r[:2] for r in rows(driver, "earners")] == [
        [e["name"], str(e["calls"])] for e in api["agents"]["top_earners"]
    ]
    assert [r[2] for r in rows(driver, "earners")] == [
        f"{e['earnings']} {token(e)}" for e in api["agents"]["top_earners"]
    ]
    return api


def token(entry: dict[str, Any]) -> str:
    """How the dashboard names an entry's mint: its label, else its short address."""
    return entry["label"] or entry["mint"][:4] + "…" + entry["mint"][-4:]


def evidence_text(e: dict[str, Any]) -> str:
    """The dashboard's evidence cell: x402 calls, distinct payers and volume in trusted mints, and days."""
    t = e["x402"]["trusted"]
    volume = ", ".join(f"{v['volume']} {v['label'] or v['mint'][:4] + '…' + v['mint'][-4:]}" for v in t["volume"])
    days = f" · {e['days']} d" if e["days"] else ""
    return f"{t['calls']} calls · {e['trusted_payers']} payers" + (f" · {volume}" if volume else "") + days


def test_dashboard_shows_the_apis_figures_and_a_live_payment(fresh_world: World, browser: Any, tmp_path: Path) -> None:
    with GhostServer(fresh_world, "indexer", "run", "--serve", "--log-level", "warning") as server:
        browser.get(server.url)
        wait_for(
            lambda: browser.find_element("css selector", "body").get_attribute("data-loaded"),
            what="the dashboard's first load",
        )
        api = check_against_api(browser, server.url, WEEK)
        assert api["payments"]["total"] == len(fresh_world.payments)
        agents = httpx.get(f"{server.url}api/agents?sort=reputation&limit=10&x402_enabled=true").json()["items"]
        assert rows(browser, "reputation") == [
            [
                a["name"],
                a["reputation"]["tier"],
                f"{a['reputation']['percent']}%",
                str(a["x402_total_calls"]),
                evidence_text(a["evidence"]),
                f"{a['evidence']['trust']['score'] / 100:.2f}",
            ]
            for a in agents
        ]
        volume = httpx.get(f"{server.url}api/metrics/volume?period={WEEK}&buckets=24").json()
        bars = browser.find_elements("css selector", "#chart rect")
        assert [int(b.get_attribute("data-payments")) for b in bars] == [b["payments"] for b in volume["buckets"]]
        assert len(browser.find_elements("css selector", "#feed li")) == len(fresh_world.payments)

        paid = asyncio.run(fresh_world.pay(fresh_world.payers[0], "summarizer", fresh_world.usdc, Decimal("0.025")))
        item = wait_for(
            lambda: browser.find_elements("css selector", f'#feed li[data-signature="{paid.signature}"]'),
            what="the new payment in the live feed",
        )[0]
        assert "0.025000 USDC" in item.text and "Summarizer" in item.text and "new" in item.get_attribute("class")
        total = str(len(fresh_world.payments))
        wait_for(lambda: text(browser, '[data-metric="payments-total"]') == total, what="the figures to refresh")
        check_against_api(browser, server.url, WEEK)
        browser.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        if os.environ.get("GHOSTPAY_DASHBOARD_SCREENSHOT"):
            shutil.copy(tmp_path / "dashboard.png", os.environ["GHOSTPAY_DASHBOARD_SCREENSHOT"])

        browser.find_element("css selector", 'button[data-period="3600"]').click()
        wait_for(
            lambda: "on" in browser.find_element("css selector", 'button[data-period="3600"]').get_attribute("class"),
            what="the period switch",
        )
        wait_for(
            lambda: (
                shown_metrics(browser)
                == expected_metrics(httpx.get(f"{server.url}api/metrics/x402?period=3600").json())
            ),
            what="the 1 h figures",
        )
        assert browser.get_log("browser") == [], "the page logged errors"
    assert server.exit_code == 0, server.stderr


def test_a_token_protected_dashboard_loads_and_follows_the_feed(
    fresh_world: World, browser: Any, tmp_path: Path
) -> None:
    """`indexer serve --token-file`: the API refuses requests without the token; the dashboard opened as
    /?token=… sends it on every fetch and on its EventSource, so its figures and live feed still load."""
    token_file = tmp_path / "api-token"
    token_file.write_text("d4shb0ard-s3cret\n")
    with GhostServer(
        fresh_world, "indexer", "run", "--serve", "--log-level", "warning", "--token-file", str(token_file)
    ) as server:
        assert httpx.get(f"{server.url}api/metrics/x402?period={WEEK}").status_code == 401
        browser.get(f"{server.url}?token=d4shb0ard-s3cret")
        wait_for(
            lambda: browser.find_element("css selector", "body").get_attribute("data-loaded"),
            what="the dashboard's first load",
        )
        api = httpx.get(
            f"{server.url}api/metrics/x402?period={WEEK}",
            timeout=10,
            headers={"Authorization": "Bearer d4shb0ard-s3cret"},
        ).json()
        assert shown_metrics(browser) == expected_metrics(api) and api["payments"]["total"] > 0
        paid = asyncio.run(fresh_world.pay(fresh_world.payers[0], "summarizer", fresh_world.usdc, Decimal("0.025")))
        wait_for(
            lambda: browser.find_elements("css selector", f'#feed li[data-signature="{paid.signature}"]'),
            what="the new payment in the live feed, through the token-carrying EventSource",
        )
        browser.save_screenshot(str(tmp_path / "dashboard-token.png"))
        assert browser.get_log("browser") == [], "the page logged errors"
