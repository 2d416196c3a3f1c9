"""`ghost` imports only what the command it runs needs: `--help` lists the sub-commands without importing them,
and an indexed search (`--db`, JSON) imports neither the Solana/RPC stack, nor SQLAlchemy, nor rich. Behaviour,
not timing: the modules a fresh process holds after the command (docs/performance.md has the times)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import typer
from solders.keypair import Keypair

from bench.search_scale import build_index, realistic_agent
from ghostpay.cli.main import COMMANDS, app, load

HEAVY = ("solders", "solana", "httpx", "x402", "numpy", "sqlalchemy", "sqlmodel", "anchorpy", "construct", "asyncio")
RUN = """
import json, sys
from ghostpay.cli.main import app
code = app(sys.argv[2:], standalone_mode=False)
json.dump({"code": code, "modules": sorted(sys.modules)}, open(sys.argv[1], "w"))
"""


def modules_after(tmp_path: Path, *argv: str) -> set[str]:
    """The modules a fresh `ghost argv` process imported (it must succeed)."""
    out = tmp_path / "modules.json"
    env = {"GHOSTPAY_HOME": str(tmp_path / "home"), "GHOST_URL": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"}
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


def test_an_indexed_search_imports_neither_the_rpc_stack_nor_sqlalchemy(tmp_path: Path) -> None:
    rng, mints = random.Random(5), [Keypair().pubkey() for _ in range(3)]
    db = tmp_path / "index.db"
    build_index(f"sqlite:///{db}", [(Keypair().pubkey(), realistic_agent(rng, i, mints)) for i in range(30)])
    search = ["--db", str(db), "--output", "json", "agent", "search", "-c", "translate", "--token", str(mints[0])]
    modules = modules_after(tmp_path, *search, "--sort", "price", "--limit", "5")
    assert loaded(modules, (*HEAVY, "rich")) == []
    assert "ghostpay.cli.agent" in modules and "ghostpay.cli.x402" not in modules  # only the group it runs


def test_the_listing_shows_each_sub_command_by_its_own_help() -> None:
    """`COMMANDS` lists a lazy sub-command by the first paragraph of its own help (what `ghost --help` showed when
    every sub-command was imported)."""
    root = typer.main.get_command(app)
    for name, lazy in COMMANDS.items():
        command = load(name)
        assert command.name == name
        assert " ".join((command.help or "").split("\n\n")[0].split()) == lazy.help, name
        assert root.get_command(None, name) is not None  # type: ignore[attr-defined]
