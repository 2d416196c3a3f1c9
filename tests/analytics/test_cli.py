"""`ghost analytics`, `ghost indexer serve` and `ghost indexer run --serve` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.analytics.conftest import GhostServer, ServedApi
from tests.analytics.world import World
from tests.cli.conftest import ghost

GHOST = str(Path(sys.executable).with_name("ghost"))
WEEK = 7 * 86_400


def test_analytics_json_is_the_apis_document(world: World, api: ServedApi, tmp_path: Path) -> None:
    home = {"GHOSTPAY_HOME": str(world.home)}  # the world's token labels: USDC
    got = ghost("-u", world.net.http_url, "--db", world.db_url, "analytics", "--period", "7d", env=home).data
    want = api.get(f"/api/metrics/x402?period={WEEK}").json()
    assert {k: v for k, v in got.items() if k != "period"} == {k: v for k, v in want.items() if k != "period"}
    assert {t["mint"]: t["label"] for t in got["volume"]["by_token"]} == {
        str(world.usdc): "USDC",
        str(world.bonk): None,
    }
    assert got["period"]["seconds"] == WEEK
    agent = str(world.agents["coder"])
    mine = ghost(
        "-u", world.net.http_url, "--db", world.db_url, "analytics", "--period", "604800", "--agent", agent
    ).data
    assert mine["agent"] == agent and mine["payments"]["total"] == sum(
        p.agent == world.agents["coder"] for p in world.payments
    )
    key = tmp_path / "coder.json"
    key.write_text(json.dumps(list(bytes(world.owners["coder"]))))
    by_id = ghost(
        "-u", world.net.http_url, "--db", world.db_url, "-k", key, "analytics", "--period", "7d", "--agent", "coder"
    ).data
    assert by_id["agent"] == agent and by_id["payments"] == mine["payments"]


def test_analytics_tables(world: World) -> None:
    run = ghost("-u", world.net.http_url, "--db", world.db_url, "analytics", "--period", "7d", output=None)
    assert run.code == 0, run.stderr
    for shown in (
        "x402 payments",
        "success rate",
        "80.00% of 5 rated calls",
        "Volume by token",
        "0.120000000",
        "Top earners",
        "Coder",
        "avg response time",
    ):
        assert shown in run.stdout, shown


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["analytics", "--period", "soon"], 2, "--period is a duration like"),
        (["analytics", "--period", "10"], 2, "between 1 minute and 366 days"),
        (["analytics", "--agent", "x" * 40], 2, "agent_id"),
        (["analytics", "--agent", "11111111111111111111111111111111"], 1, "no indexed agent"),
        (["indexer", "run", "--serve", "--once"], 1, "--serve keeps running"),
    ],
)
def test_bad_arguments(world: World, args: list[str], code: int, message: str) -> None:
    assert message in ghost("-u", world.net.http_url, "--db", world.db_url, *args).one_line_error(code)


def test_serve_prints_its_urls_and_stops_on_sigterm(world: World) -> None:
    process = subprocess.Popen(
        [GHOST, "-u", world.net.http_url, "--db", world.db_url, "--output", "json", "indexer", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        assert set(urls) == {"url", "dashboard", "docs", "metrics"}
        assert httpx.get(urls["url"] + "api/agents").json()["total"] == len(world.agents)
        assert httpx.get(urls["metrics"]).status_code == 200
    finally:
        process.terminate()
        assert process.wait(30) == 0


def test_a_busy_port_is_one_line(world: World) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = ghost("-u", world.net.http_url, "--db", world.db_url, "indexer", "serve", "--port", port)
    assert f"cannot listen on 127.0.0.1:{port}" in run.one_line_error(1)


def test_run_serve_indexes_and_serves_in_one_process(fresh_world: World) -> None:
    import asyncio
    from decimal import Decimal

    from tests.analytics.conftest import wait_for

    with GhostServer(fresh_world, "indexer", "run", "--serve") as server:
        before = httpx.get(server.url + "api/metrics/x402?period=3600").json()["payments"]["total"]
        paid = asyncio.run(fresh_world.pay(fresh_world.payers[1], "translator", fresh_world.usdc, Decimal("0.01")))
        wait_for(
            lambda: httpx.get(server.url + "api/metrics/x402?period=3600").json()["payments"]["total"] == before + 1,
            what="the live payment in the metrics",
        )
        latest = httpx.get(f"{server.url}api/agents/{fresh_world.agents['translator']}/payments?limit=1").json()
        assert latest["items"][0]["signature"] == paid.signature
        assert "ghostpay_indexer_reconnects_total 0.0" in httpx.get(server.url + "metrics").text
    assert server.exit_code == 0, server.stderr


def test_help_stays_light() -> None:
    heavy = ("solana", "solders", "sqlmodel", "sqlalchemy", "httpx", "fastapi", "uvicorn", "prometheus_client")
    probe = (
        "import sys\nfrom ghostpay.cli.main import app\n"
        "for argv in (['webhooks', '--help'], ['analytics', '--help'], ['indexer', 'serve', '--help']):\n"
        "    try:\n        app(argv)\n    except SystemExit as exc:\n        assert exc.code == 0, argv\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert done.stdout.count("Example: ghost") == 2  # analytics and indexer serve teach by example


def test_analytics_of_a_missing_database_is_an_error_not_a_new_index(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    run = ghost("--db", missing, "analytics", output=None)
    assert run.code == 1 and "no indexer database at" in run.stderr
    assert not missing.exists()


def test_serve_with_a_token_refuses_requests_without_it(world: World, tmp_path: Path) -> None:
    from ghostpay.indexer_client import search_addresses

    token_file = tmp_path / "api-token"
    token_file.write_text("s3cret-api\n")
    with GhostServer(world, "indexer", "serve", "--token-file", str(token_file)) as server:
        for path in ("api/agents", "api/status", "metrics", "api/events?after=0", "docs"):
            refused = httpx.get(server.url + path, timeout=10)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
            wrong = httpx.get(server.url + path, headers={"Authorization": "Bearer nope"}, timeout=10)
            assert wrong.status_code == 401, path
        assert httpx.get(server.url, timeout=10).status_code == 200  # the page: no data in it
        good = {"Authorization": "Bearer s3cret-api"}
        assert httpx.get(server.url + "api/agents", headers=good, timeout=10).json()["total"] == len(world.agents)
        assert httpx.get(server.url + "api/status?token=s3cret-api", timeout=10).status_code == 200
        found = asyncio.run(
            search_addresses(
                server.url,
                x402_enabled=None,
                capability=None,
                token=None,
                max_price=None,
                min_reputation=None,
                sort=None,
                limit=None,
                api_token="s3cret-api",
            )
        )
        assert found and set(found) <= {str(a) for a in world.agents.values()}  # the SDK's search sends it
    assert "s3cret-api" not in " ".join(server.argv)  # the secret stays off the command line
