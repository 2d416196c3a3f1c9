"""Every ```python block of README.md and docs/*.md runs as written, in document order (README.md, then docs/ by
name), as a user would run it:
after the README's set-up commands (its `<!-- readme-setup -->` shell block: a wallet, a provider wallet, test
mints labelled USDC and EURC), against a localnet this test starts, each block a script in a subprocess with
HOME a temporary folder and the environment the README names (GHOSTPAY_URL, GHOSTPAY_FACILITATOR_URL,
GHOSTPAY_SELLER_URL). A block that builds an ASGI `app` is served by uvicorn (`uvicorn module:app`) for the
blocks after it. Then the money each block moved is checked on chain.

Of the ```sh blocks only the set-up runs: the others start or call servers that run until stopped (localnet,
facilitator, proxy, indexer, MCP), need devnet or a funded fee payer, or are `make` targets (the demo and the suite
included)."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.token_labels import LABELS_FILE, TokenLabels
from tests.localnet.conftest import ROOT, LocalnetProcess, free_port_pair
from tests.sdk.conftest import fund
from tests.x402.conftest import Process, facilitator_process, token_balance

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SETUP = re.compile(r"<!-- readme-setup -->\s*```sh\n(.*?)```", re.S)
FENCED = re.compile(r"^```.*?^```", re.S | re.M)
BIN = Path(sys.executable).parent
SELLER_ROUTE = "/translate"  # where the README's middleware block sells, and its buyer block pays
# What each block prints when it did its job, by a line of its code: (code, what stdout must match)
EXPECTED = [
    ("register_agent(", r"^translator tier: \w+"),
    ("create_work_order(", r"^Submitted, 30.000000 USDC left; 1 order\(s\) waiting for review"),
    ("x402_http(", r"^200 \{'text': 'hola', 'payer': '\w+'\} paid 0.01 USDC, verified on chain: True"),
    ("def verify(", r"^$"),
    ("X402McpClient(", r"^hola paid 0.01 USDC, verified on chain: True$"),
    (
        "with_bazaar(",
        r"^Translator at https://t\.example/api: 10000 atomic units of \w+, 2 atomic units of \w+\n"
        r"  [A-Z]+, [1-9]\d* verified paid calls$",
    ),
    (
        "chain_registry(",
        r"^Service\(name='A2A', endpoint='https://t\.example/\.well-known/agent-card\.json', version='1\.0'\)$",
    ),
    ("A2ACardResolver(", r"^Translator http://127\.0\.0\.1:\d+/translate \d+ of \w+(, \d+ of \w+)* required: True$"),
]


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    code: str

    @property
    def name(self) -> str:
        return f"{self.document.name}:{self.line}"

    @property
    def serves_an_app(self) -> bool:
        return re.search(r"^app = ", self.code, re.M) is not None


def blocks() -> list[Block]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        found += [Block(document, text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]
    return found


@dataclass
class Session:
    """The README's world: the localnet, the user's HOME, the facilitator, and the servers blocks started."""

    net: LocalnetProcess
    home: Path
    env: dict[str, str]
    servers: list[subprocess.Popen[str]]

    def wallet(self, name: str) -> Keypair:
        return Keypair.from_bytes(json.loads((self.home / ".config" / "solana" / name).read_text()))

    def mint(self, label: str) -> Pubkey:
        """The mint `ghost test-mint --symbol LABEL` made in the set-up, from the user's label store."""
        labels = TokenLabels(self.home / ".local" / "share" / "ghostpay" / LABELS_FILE)
        return Pubkey.from_string(labels.cluster(str(self.net.rpc("getGenesisHash")["result"])).mint(label))


def user_environment(home: Path, net: LocalnetProcess, facilitator: str, seller: str) -> dict[str, str]:
    """The user's shell: HOME of their own (nothing of ours leaks in), the README's variables, `ghost` on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GHOST_", "GHOSTPAY_", "XDG_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    return {
        **env,
        "HOME": str(home),
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        "GHOST_URL": net.http_url,
        "GHOSTPAY_URL": net.http_url,
        "GHOSTPAY_FACILITATOR_URL": facilitator,
        "GHOSTPAY_SELLER_URL": seller,
    }


def run_setup(env: dict[str, str], cwd: Path) -> None:
    """The README's set-up block, but its `ghost localnet start` (this test's localnet stands for it)."""
    found = SETUP.search((ROOT / "README.md").read_text())
    assert found, "README.md lost its <!-- readme-setup --> block"
    lines = [line for line in found.group(1).splitlines() if not line.startswith("ghost localnet start")]
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    folder = tmp_path_factory.mktemp("readme")
    net = LocalnetProcess(folder / "ledger").start()
    facilitator: Process | None = None
    servers: list[subprocess.Popen[str]] = []
    try:
        # the Bazaar reads the chain every half second: docs/x402.md's discovery block finds the README's agent
        facilitator = facilitator_process(net, folder, fund(net, sol=10), "--discovery-refresh", "0.5").start()
        home = folder / "user"  # the user's HOME (the localnet keeps its state in "home" beside its ledger)
        home.mkdir()
        seller_port = free_port_pair()[0]
        env = user_environment(home, net, facilitator.url, f"http://127.0.0.1:{seller_port}{SELLER_ROUTE}")
        run_setup(env, home)
        yield Session(net, home, env, servers)
    finally:
        for server in servers:
            server.terminate()
            server.wait(15)
        if facilitator is not None:
            facilitator.stop()
        net.stop()


def serve(session: Session, block: Block, path: Path) -> None:
    """`uvicorn <module>:app` on the port GHOSTPAY_SELLER_URL names, until the session ends; it must start
    (the app's lifespan checks its agent and payee accounts) and answer a request without payment with 402."""
    url = session.env["GHOSTPAY_SELLER_URL"]
    port = url.split(":")[2].split("/")[0]
    server = subprocess.Popen(
        [str(BIN / "uvicorn"), f"{path.stem}:app", "--port", port],
        cwd=path.parent,
        env=session.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    session.servers.append(server)
    seen = []
    while server.stdout is not None and select.select([server.stdout], [], [], 60)[0]:
        line = server.stdout.readline()
        seen.append(line)
        if not line or "Uvicorn running on" in line:
            break
    assert server.poll() is None, f"{block.name} did not start:\n" + "".join(seen)
    unpaid = httpx.post(url, json={"text": "hi"}, timeout=30)
    assert unpaid.status_code == 402, (unpaid.status_code, unpaid.text)
    assert unpaid.headers["payment-required"] and unpaid.json()["accepts"]
    assert httpx.get(url.removesuffix(SELLER_ROUTE) + "/elsewhere", timeout=30).status_code == 404  # not priced


@pytest.mark.parametrize("block", blocks(), ids=lambda block: block.name)
def test_block_runs_as_written(session: Session, block: Block, tmp_path: Path) -> None:
    path = tmp_path / f"readme_{block.line}.py"
    path.write_text(block.code)
    if block.serves_an_app:
        serve(session, block, path)
        return
    done = subprocess.run(
        [sys.executable, str(path)], cwd=session.home, env=session.env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stderr}"
    for marker, output in EXPECTED:
        if marker in block.code:
            assert re.search(output, done.stdout, re.M), (block.name, done.stdout)


def test_what_the_blocks_paid(session: Session) -> None:
    """After every block ran: the provider holds what the quick start (0.02 EURC), the work order's milestone
    (20 USDC), the paid HTTP call (0.01 USDC) and the paid MCP tool call (0.01 USDC) brought it, and the buyer's
    wallet paid exactly that plus the 30 USDC still in escrow."""
    provider, you = session.wallet("provider.json").pubkey(), session.wallet("id.json").pubkey()
    usdc, eurc = session.mint("USDC"), session.mint("EURC")
    assert token_balance(session.net, provider, eurc) == 2  # 0.02 of a 2-decimal token
    assert token_balance(session.net, provider, usdc) == 20_020_000
    assert token_balance(session.net, you, eurc) == 100_000 - 2
    assert token_balance(session.net, you, usdc) == 1_000_000_000 - 20_020_000 - 30_000_000


def test_every_block_is_run() -> None:
    found = blocks()
    assert len(found) >= 5 and all(any(marker in b.code for marker, _ in EXPECTED) or b.serves_an_app for b in found), [
        b.name for b in found
    ]


def anchors(document: Path) -> set[str]:
    """The anchors GitHub gives the headings of `document`."""
    titles = re.findall(r"^#+ (.+)$", FENCED.sub("", document.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-") for title in titles}


def test_links_between_the_documents_resolve() -> None:
    """README.md and docs/ link each other by file and heading: every such link finds its file and heading."""
    broken = []
    for document in DOCUMENTS:
        for target in re.findall(r"\]\(([^)\s]+)\)", FENCED.sub("", document.read_text())):
            path, _, anchor = target.partition("#")
            if target.startswith(("http://", "https://")):
                continue
            linked = (document.parent / path).resolve() if path else document
            if not linked.exists() or (anchor and anchor not in anchors(linked)):
                broken.append(f"{document.name}: {target}")
    assert not broken, broken
