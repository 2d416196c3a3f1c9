"""ERC-8004 on a localnet: `ghost agent register --registration-file` points the agent's metadata URI at the
file `ghost x402 proxy` serves; the file round-trips, names this chain and program, follows the account;
`ghost agent search --url` reads a foreign agent's registration file and A2A Agent Card."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from ghostpay.client import GhostPayClient
from ghostpay.erc8004 import REGISTRATION_TYPE, RegistrationFile, parse_account_id
from ghostpay.foreign_agents import ForeignAgentError, read_foreign_agent
from ghostpay.localnet.process import free_port_pair
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402.networks import DEVNET_CAIP2
from tests.sdk.conftest import create_mint, fund, mint_to
from tests.x402.conftest import GHOST, Process, ServerThread, Upstream, keypair_file

A2A_X402_EXTENSION = "https://github.com/google-agentic-commerce/a2a-x402/blob/main/spec/v0.2"
METADATA_SERVICE = "http://169.254.169.254/latest/meta-data/agent.json"  # a cloud's, link-local


def ghost(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GHOST, *args], capture_output=True, text=True, timeout=120, env={**os.environ, "GHOSTPAY_HOME": str(home)}
    )


class Seller:
    """An agent registered with the CLI (`--registration-file`), its endpoint on the port its proxy listens on."""

    def __init__(self, net: Any, folder: Path) -> None:
        self.net, self.folder = net, folder
        self.owner: Keypair = fund(net)
        self.key = str(keypair_file(folder, self.owner))
        self.mint: Pubkey = create_mint(net)
        self.port = free_port_pair()[0]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.address = ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return ghost(self.folder, "--output", "json", "-u", self.net.http_url, "-k", self.key, *args)

    def registry(self) -> str:
        genesis = self.net.rpc("getGenesisHash")["result"]
        return f"solana:{genesis[:32]}:{PROGRAM_ID}"

    def run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            async with GhostPayClient(self.net.http_url, self.owner, ws_url=self.net.ws_url) as gp:
                return await getattr(gp, method)(Pubkey.from_string(self.address), *args, **kwargs)

        return asyncio.run(call())


@pytest.fixture(scope="module")
def seller(net: Any, tmp_path_factory: pytest.TempPathFactory) -> Seller:
    s = Seller(net, tmp_path_factory.mktemp("erc8004"))
    registered = s.cli(
        "agent",
        "register",
        "registered",
        "-n",
        "Registered",
        "-d",
        "Translations, per call",
        "-c",
        "translate",
        "--tokens",
        f"{s.mint}=0.01",
        "--endpoint",
        f"{s.origin}/translate",
        "--registration-file",
        "--yes",
    )
    assert registered.returncode == 0, registered.stderr
    out = json.loads(registered.stdout)
    s.address = out["agent"]
    assert out["metadata_uri"] == f"{s.origin}/.well-known/agent-registration.json"
    mint_to(net, s.owner.pubkey(), s.mint, 0)  # the payee's token account
    return s


@pytest.fixture(scope="module")
def proxy(seller: Seller, facilitator: Process) -> Iterator[tuple[Process, Upstream]]:
    service = Upstream()
    with ServerThread(service.app) as upstream:
        proc = Process(
            "-u",
            seller.net.http_url,
            "-k",
            seller.key,
            "x402",
            "proxy",
            "--agent",
            seller.address,
            "--upstream",
            upstream.url,
            "--facilitator",
            facilitator.url,
            "--port",
            str(seller.port),
            home=seller.folder,
        ).start()  # every route priced (the default "*"): the registration file is not one of them
        yield proc, service
        proc.stop()


def test_register_points_the_metadata_uri_at_the_file_the_proxy_serves(
    seller: Seller, proxy: tuple[Process, Upstream]
) -> None:
    shown = json.loads(seller.cli("agent", "show", seller.address).stdout)
    assert shown["metadata_uri"] == f"{seller.origin}/.well-known/agent-registration.json"
    calls = len(proxy[1].calls)
    answer = httpx.get(shown["metadata_uri"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert len(proxy[1].calls) == calls  # answered by the proxy, neither priced nor forwarded
    found = RegistrationFile.from_json(answer.json())
    assert found.agent_in(seller.registry()) == seller.address
    assert answer.json() == {
        "type": REGISTRATION_TYPE,
        "name": "Registered",
        "description": "Translations, per call",
        "image": "",
        "services": [
            {"name": "A2A", "endpoint": f"{seller.origin}/.well-known/agent-card.json", "version": "1.0"},
            {"name": "web", "endpoint": f"{seller.origin}/translate"},
        ],
        "x402Support": True,
        "active": True,
        "registrations": [{"agentId": seller.address, "agentRegistry": seller.registry()}],
        "supportedTrust": ["reputation"],
    }


def test_the_registry_names_this_chain_and_program(seller: Seller, proxy: tuple[Process, Upstream]) -> None:
    """CAIP-10: the localnet's own genesis hash cut to 32 characters (CAIP-2's Solana rule), not the devnet id the
    localnet's x402 payments go by, and the program's id."""
    registry = httpx.get(f"{seller.origin}/.well-known/agent-registration.json").json()["registrations"][0]
    namespace, chain, program = parse_account_id(registry["agentRegistry"])
    genesis = seller.net.rpc("getGenesisHash")["result"]
    assert (namespace, chain, program) == ("solana", genesis[:32], str(PROGRAM_ID))
    assert len(genesis) > 32 and f"solana:{chain}" != DEVNET_CAIP2


def test_round_trip_and_the_cli_emits_the_same_file(seller: Seller, proxy: tuple[Process, Upstream]) -> None:
    served = httpx.get(f"{seller.origin}/.well-known/agent-registration.json").json()
    emitted = seller.cli("agent", "registration-file", seller.address)
    assert emitted.returncode == 0, emitted.stderr
    assert json.loads(emitted.stdout) == served
    parsed = RegistrationFile.from_json(served)
    assert parsed.to_json() == served and RegistrationFile.from_json(parsed.to_json()) == parsed
    with_mcp = json.loads(
        seller.cli("agent", "registration-file", "registered", "--mcp", f"{seller.origin}/mcp").stdout
    )  # by agent_id: the wallet's agent
    assert with_mcp["services"][1] == {"name": "MCP", "endpoint": f"{seller.origin}/mcp", "version": "2025-06-18"}


def test_register_registration_file_needs_an_endpoint(seller: Seller) -> None:
    refused = seller.cli("agent", "register", "other", "-n", "Other", "--registration-file", "--yes")
    assert refused.returncode == 2 and "--registration-file needs --endpoint" in refused.stderr


def search(home: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return ghost(home, "--output", "json", "agent", "search", "--url", url, *extra)


FOREIGN_CARD = {
    "name": "Weather",
    "description": "Forecasts for any city",
    "version": "2.1.0",
    "supportedInterfaces": [{"url": "", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
    "capabilities": {
        "streaming": False,
        "extensions": [{"uri": A2A_X402_EXTENSION, "description": "x402 payments", "required": True}],
    },
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["application/json"],
    "skills": [{"id": "forecast", "name": "Forecast", "description": "Tomorrow's weather", "tags": ["weather"]}],
}


@pytest.fixture(scope="module")
def foreign() -> Iterator[tuple[str, list[str]]]:
    """Another ecosystem's agent (an EVM registry) serving its card and registration file."""
    asked: list[str] = []
    base: dict[str, str] = {}

    async def card(request: Request) -> JSONResponse:
        asked.append(request.url.path)
        interfaces = [{**FOREIGN_CARD["supportedInterfaces"][0], "url": base["url"] + "/a2a"}]  # type: ignore[index]
        return JSONResponse({**FOREIGN_CARD, "supportedInterfaces": interfaces})

    async def registration(request: Request) -> JSONResponse:
        asked.append(request.url.path)
        return JSONResponse(
            {
                "type": REGISTRATION_TYPE,
                "name": "Weather",
                "description": "Forecasts for any city",
                "image": "https://weather.example/logo.png",
                "services": [{"name": "A2A", "endpoint": base["url"] + "/cards/weather.json", "version": "1.0"}],
                "x402Support": True,
                "active": True,
                "registrations": [
                    {"agentId": 22, "agentRegistry": "eip155:8453:0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"}
                ],
                "supportedTrust": ["reputation", "crypto-economic"],
            }
        )

    async def moved(request: Request) -> RedirectResponse:
        asked.append(request.url.path)
        return RedirectResponse(METADATA_SERVICE, status_code=302)

    app = Starlette(
        routes=[
            Route("/.well-known/agent-registration.json", registration),
            Route("/cards/weather.json", card),
            Route("/moved", moved),
        ]
    )
    with ServerThread(app) as server:
        base["url"] = server.url
        yield server.url, asked


def test_search_url_shows_what_a_foreign_agent_offers_and_accepts(
    foreign: tuple[str, list[str]], tmp_path: Path
) -> None:
    """From its origin: the registration file, then the Agent Card its A2A service names."""
    url, asked = foreign
    found = search(tmp_path, url, "--allow-private")
    assert found.returncode == 0, found.stderr
    summary = json.loads(found.stdout)
    assert summary["registration_url"] == f"{url}/.well-known/agent-registration.json"
    assert summary["card_url"] == f"{url}/cards/weather.json"
    assert summary["name"] == "Weather"
    assert summary["offers"]["skills"] == [
        {"id": "forecast", "name": "Forecast", "description": "Tomorrow's weather", "tags": ["weather"]}
    ]
    assert summary["offers"]["interfaces"] == [
        {"url": f"{url}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
    ]
    assert summary["accepts"]["x402"] is True
    assert [e["uri"] for e in summary["accepts"]["payment_extensions"]] == [A2A_X402_EXTENSION]
    assert summary["accepts"]["input_modes"] == ["text/plain"]
    assert summary["registrations"] == [
        {"agentId": "22", "agentRegistry": "eip155:8453:0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"}
    ]
    assert summary["supported_trust"] == ["reputation", "crypto-economic"]
    text = ghost(tmp_path, "agent", "search", "--url", f"{url}/cards/weather.json", "--allow-private")
    assert text.returncode == 0 and "Forecast" in text.stdout and A2A_X402_EXTENSION in text.stdout


def test_search_url_reads_a_ghostpay_proxy(seller: Seller, proxy: tuple[Process, Upstream], tmp_path: Path) -> None:
    summary = json.loads(search(tmp_path, seller.origin, "--allow-private").stdout)
    assert summary["name"] == "Registered" and summary["accepts"]["x402"] is True
    assert summary["registrations"] == [{"agentId": seller.address, "agentRegistry": seller.registry()}]


def test_search_url_refuses_private_addresses(foreign: tuple[str, list[str]], tmp_path: Path) -> None:
    """As webhook URLs: a loopback (or private, link-local) host is refused before any request is made."""
    url, asked = foreign
    before = len(asked)
    refused = search(tmp_path, url)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "a loopback address" in refused.stderr
    assert len(asked) == before
    with pytest.raises(ForeignAgentError, match="169.254.169.254, a link-local address"):
        asyncio.run(read_foreign_agent(METADATA_SERVICE))
    redirected = search(tmp_path, f"{url}/moved", "--allow-private")  # a redirect could lead anywhere: not followed
    assert redirected.returncode == 1 and f"{url}/moved: HTTP 302" in redirected.stderr
    assert asked[before:] == ["/moved"]


def test_the_file_follows_the_account(seller: Seller, proxy: tuple[Process, Upstream]) -> None:
    """A rename and a deactivation on chain reach the served file without restarting the proxy."""
    url = f"{seller.origin}/.well-known/agent-registration.json"
    assert httpx.get(url).json()["name"] == "Registered"
    seller.run("update_agent", name="Renamed")
    seller.run("deactivate")
    for _ in range(600):  # polled: the proxy hears of the change by its account subscription
        doc = httpx.get(url).json()
        if doc["name"] == "Renamed" and doc["active"] is False:
            break
        time.sleep(0.05)
    assert (doc["name"], doc["active"]) == ("Renamed", False)
