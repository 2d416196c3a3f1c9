"""One localnet for the CLI tests, funded keypair files, and `ghost()`: the CLI in-process (Typer's runner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from typer.testing import CliRunner

from ghostpay.cli.main import app
from ghostpay.token_labels import LABELS_FILE, TokenLabels
from tests.localnet.conftest import LocalnetProcess
from tests.sdk.conftest import create_mint, fund, mint_to

GHOST = str(Path(sys.executable).with_name("ghost"))


@dataclass
class Run:
    """What one `ghost` run printed and returned."""

    code: int
    stdout: str
    stderr: str

    @property
    def data(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)

    def one_line_error(self, code: int) -> str:
        """Assert a clean failure: exit status `code`, nothing on stdout, one `error:` line, no traceback."""
        assert self.code == code, (self.code, self.stdout, self.stderr)
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), self.stderr
        assert "Traceback" not in self.stderr and self.stdout == ""
        return lines[0]


@pytest.fixture(scope="session")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalnetProcess]:
    node = LocalnetProcess(tmp_path_factory.mktemp("cli-localnet") / "ledger").start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ghost-home")


@pytest.fixture(scope="session", autouse=True)
def environment(home: Path, net: LocalnetProcess) -> Iterator[None]:
    """Every run: our data folder (config file, localnet record), our localnet, no stray GHOST_* settings."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("GHOST_"):
                patch.delenv(name)
        patch.setenv("GHOSTPAY_HOME", str(home))
        patch.setenv("GHOST_URL", net.http_url)
        patch.setenv("HOME", str(home))  # no ~/.config/solana/id.json: the default keypair is missing
        yield


class Wallets:
    def __init__(self, net: LocalnetProcess, folder: Path) -> None:
        self.net, self.folder, self.count = net, folder, 0

    def new(self, sol: int = 10) -> tuple[Path, Keypair]:
        """A keypair file for a wallet holding `sol` SOL."""
        self.count += 1
        keypair = fund(self.net, Keypair(), sol)
        path = self.folder / f"wallet{self.count}.json"
        path.write_text(json.dumps(list(bytes(keypair))))
        return path, keypair


@pytest.fixture(scope="session")
def wallets(net: LocalnetProcess, tmp_path_factory: pytest.TempPathFactory) -> Wallets:
    return Wallets(net, tmp_path_factory.mktemp("wallets"))


@pytest.fixture(scope="session")
def usdc(net: LocalnetProcess, home: Path) -> Pubkey:
    """A 6-decimal mint labelled USDC on the session localnet (as `ghost test-mint --symbol USDC` labels it)."""
    mint = create_mint(net, 6)
    TokenLabels(home / LABELS_FILE).add(
        net.rpc("getGenesisHash")["result"], "USDC", str(mint), test_mint=True, replace=True
    )
    return mint


def ghost(
    *args: object,
    keypair: Path | None = None,
    output: str | None = "json",
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """`ghost [-k keypair] [--output json] args…` in-process, as Typer's test runner runs it."""
    argv = (["-k", str(keypair)] if keypair else []) + (["--output", output] if output else []) + [str(a) for a in args]
    result = CliRunner().invoke(app, argv, input=input, env=env, catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def ghost_process(*args: object, keypair: Path | None = None, output: str | None = "json", timeout: float = 60) -> Run:
    """The installed `ghost` script in a subprocess."""
    argv = (
        [GHOST]
        + (["-k", str(keypair)] if keypair else [])
        + (["--output", output] if output else [])
        + [str(a) for a in args]
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return Run(done.returncode, done.stdout, done.stderr)


def register_in_a_pty(keypair: Path, dialogue: list[tuple[str, str | None]]) -> None:
    """`ghost agent register` in a pseudo-terminal: expect each prompt, answer it (None: only expect it)."""
    import pexpect

    child = pexpect.spawn(
        GHOST,
        ["-k", str(keypair), "agent", "register"],
        env={**os.environ, "COLUMNS": "200"},
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    try:
        for prompt, answer in dialogue:
            child.expect(prompt)
            if answer is not None:
                child.sendline(answer)
        child.expect("registered")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before


__all__ = ["Run", "register_in_a_pty", "ghost", "ghost_process", "mint_to", "GHOST"]
