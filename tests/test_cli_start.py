"""`ghost` imports only what the command it runs needs: `--help` lists the sub-commands without importing them,
and an indexed search (`--db`, JSON) imports neither the Solana/RPC stack, nor SQLAlchemy, rich or pydantic, and reads
the decimals of the page's mints in one round trip. Behaviour, not timing: the modules a fresh process holds
after the command, the requests the RPC received (docs/performance.md has the times)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from solders.keypair import Keypair

from bench.search_scale import build_index, realistic_agent
from ghostpay.cli.main import COMMANDS, app, load

MINTS = 6  # the mints the agents accept (1 to 6 each): a page of 20 holds all of them
HEAVY = ("solders", "solana", "httpx", "x402", "numpy", "sqlalchemy", "sqlmodel", "anchorpy", "construct", "asyncio")
RUN = """
import json, sys
from ghostpay.cli.main import app
code = app(sys.argv[2:], standalone_mode=False)
json.dump({"code": code, "modules": sorted(sys.modules)}, open(sys.argv[1], "w"))
"""


class Rpc(BaseHTTPRequestHandler):
    """A JSON-RPC node on loopback that knows every mint (6 decimals) and records each request's methods."""

    requests: list[list[str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        calls = body if isinstance(body, list) else [body]
        type(self).requests.append([call["method"] for call in calls])
        answers = [{"jsonrpc": "2.0", "id": call["id"], "result": self.result(call["method"])} for call in calls]
        reply = json.dumps(answers if isinstance(body, list) else answers[0]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    @staticmethod
    def result(method: str) -> Any:
        if method == "getTokenSupply":
            return {"context": {"slot": 1}, "value": {"amount": "0", "decimals": 6, "uiAmountString": "0"}}
        return "11111111111111111111111111111111"  # getGenesisHash: no cluster the labels know

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def rpc() -> Iterator[str]:
    Rpc.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Rpc)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def modules_after(tmp_path: Path, *argv: str, url: str = "http://127.0.0.1:9") -> set[str]:
    """The modules a fresh `ghost argv` process imported (it must succeed)."""
    out = tmp_path / "modules.json"
    env = {"GHOSTPAY_HOME": str(tmp_path / "home"), "GHOST_URL": url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", RUN, str(out), *argv], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    found = json.loads(out.read_text())
    assert found["code"] == 0
    return set(found["modules"])


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in modules or any(m.startswith(f"{name}.") for m in modules)]


def test_help_imports_no_sub_command(tmp_path: Path) -> None:
    modules = modules_after(tmp_path, "--help")
    assert loaded(modules, (*HEAVY, "rich", "pydantic")) == []
    assert [m for m in modules if m.startswith("ghostpay.cli.") and m.split(".")[2] in COMMANDS] == []
    assert "ghostpay.cli.agent" not in modules and "ghostpay.cli.wallet" not in modules


def test_an_indexed_search_imports_neither_the_rpc_stack_nor_sqlalchemy(tmp_path: Path, rpc: str) -> None:
    rng, mints = random.Random(5), [Keypair().pubkey() for _ in range(MINTS)]
    db = tmp_path / "index.db"
    build_index(f"sqlite:///{db}", [(Keypair().pubkey(), realistic_agent(rng, i, mints)) for i in range(30)])
    search = ["--db", str(db), "--output", "json", "agent", "search", "-c", "translate", "--token", str(mints[0])]
    modules = modules_after(tmp_path, *search, "--max-price", "1", "--sort", "price", "--limit", "20", url=rpc)
    assert loaded(modules, (*HEAVY, "rich", "pydantic")) == []  # typer 0.29+ would coerce each parameter with it
    assert "ghostpay.cli.agent" in modules and "ghostpay.cli.x402" not in modules  # only the group it runs
    supplies = [methods for methods in Rpc.requests if "getTokenSupply" in methods]
    assert supplies[0] == ["getTokenSupply"]  # --max-price: the token's decimals
    assert supplies[1:] == [["getTokenSupply"] * (MINTS - 1)]  # every other mint of the page: one batch


def test_the_listing_shows_each_sub_command_by_its_own_help() -> None:
    """`COMMANDS` lists a lazy sub-command by the first paragraph of its own help (what `ghost --help` showed when
    every sub-command was imported)."""
    root = typer.main.get_command(app)
    for name, lazy in COMMANDS.items():
        command = load(name)
        assert command.name == name
        assert " ".join((command.help or "").split("\n\n")[0].split()) == lazy.help, name
        assert root.get_command(None, name) is not None  # type: ignore[attr-defined]


def test_the_mcp_server_does_not_load_the_sellers_stack() -> None:
    """`ghost mcp` buys: its server and service import the paid-tools client, not the x402 seller or A2A's server
    (`ghostpay.x402.mcp` names each side lazily)."""
    probe = "import json, sys, ghostpay.mcp.server, ghostpay.mcp.service; print(json.dumps(sorted(sys.modules)))"
    modules = set(json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True).stdout))
    assert "ghostpay.x402.mcp.client" in modules
    assert not modules & {"ghostpay.x402.mcp.server", "ghostpay.x402.seller", "ghostpay.x402.a2a", "a2a.server"}
