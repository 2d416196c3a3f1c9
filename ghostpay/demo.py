"""The main job, as a scripted session of `ghost` commands on a throwaway localnet (`ghost demo`, `make demo`).

Two provider agents register with their x402 prices (one per accepted token) in one transaction each; a
buyer finds them with `agent search --token USDC --max-price …`, simulates and pays calls (TransferChecked +
record_x402_payment), one of them in the second token, and rates them; the buyer hires one through escrow
(create, accept naming the arbiter, deliver, release); the indexer indexes the chain
and shows the payment history and the reputation table. Every step is a real `ghost` command, run
in-process with the same code path as the installed script, and printed as `$ ghost …` before its output.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ghostpay.localnet.process import LocalnetProcess, LocalnetStartError

ORDER_ID = 1


class DemoError(Exception):
    """The demo could not complete; the message says why."""


@contextlib.contextmanager
def temporary_localnet() -> Iterator[str]:
    """A localnet on free ports with a throwaway ledger; yields its RPC URL and stops it after."""
    with tempfile.TemporaryDirectory(prefix="ghostpay-demo-") as tmp:
        try:
            net = LocalnetProcess(Path(tmp) / "ledger", "--quiet").start()
        except LocalnetStartError as exc:
            raise DemoError(str(exc)) from exc
        try:
            yield net.http_url
        finally:
            net.stop(signal.SIGTERM)


@contextlib.contextmanager
def session_environment(folder: Path, url: str) -> Iterator[None]:
    """The demo's own settings: its RPC URL, a config file and data folder of its own (the user's config is
    never touched), commands run from `folder` so keypair paths stay short."""
    saved_env = {k: os.environ.get(k) for k in ("GHOST_URL", "GHOST_CONFIG", "GHOSTPAY_HOME", "GHOST_KEYPAIR",
                                                "GHOST_OUTPUT", "GHOST_DB", "GHOST_COMMITMENT", "GHOST_PROGRAM_ID")}
    saved_cwd = os.getcwd()
    for key in saved_env:
        os.environ.pop(key, None)
    os.environ.update(GHOST_URL=url, GHOST_CONFIG=str(folder / "config.toml"), GHOSTPAY_HOME=str(folder / "home"))
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Session:
    """Runs `ghost` commands in-process: shown as `$ ghost …` with their text output, or (json=True)
    captured as JSON documents for one summary."""

    json: bool
    show: Callable[[str, str], None]
    steps: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, note: str, *args: str, keypair: str | None = None) -> Any:
        from ghostpay.cli.main import app

        argv = (["-k", keypair] if keypair else []) + list(args)
        command = "ghost " + " ".join(shlex.quote(a) for a in argv)
        out, err = io.StringIO(), io.StringIO()
        if not self.json:
            self.show(note, command)
        with contextlib.redirect_stderr(err), \
                (contextlib.redirect_stdout(out) if self.json else contextlib.nullcontext()):
            code = app(["--output", "json", *argv] if self.json else argv, standalone_mode=False)
        if code != 0:
            reason = err.getvalue().strip().splitlines()[-1:] or [f"exit status {code}"]
            raise DemoError(f"'{command}' failed: {reason[0].removeprefix('error: ')}")
        data = json.loads(out.getvalue()) if self.json and out.getvalue().strip() else None
        self.steps.append({"note": note, "command": command, "output": data})
        return data


def wallets(folder: Path, names: list[str]) -> dict[str, str]:
    """New keypair files (Solana CLI format) named after their roles; returns name -> base58 address."""
    from solders.keypair import Keypair

    addresses = {}
    for name in names:
        keypair = Keypair()
        (folder / f"{name}.json").write_text(json.dumps(list(bytes(keypair))))
        addresses[name] = str(keypair.pubkey())
    return addresses


def run_session(url: str, folder: Path, run: Session) -> dict[str, Any]:
    """The scripted session; returns what it found out (addresses, reference, order)."""
    from ghostpay.pda import agent_address, work_order_address
    from solders.pubkey import Pubkey

    who = wallets(folder, ["translator", "summarizer", "buyer", "arbiter"])
    agents = {name: str(agent_address(Pubkey.from_string(who[name]), name)[0]) for name in ("translator",
                                                                                          "summarizer")}
    order = str(work_order_address(Pubkey.from_string(who["buyer"]), ORDER_ID)[0])
    references = [os.urandom(32).hex() for _ in range(3)]
    db = "index.db"  # commands run in `folder`

    for name in ("translator", "summarizer", "buyer", "arbiter"):
        run(f"fund the {name}'s wallet with SOL for fees", "airdrop", "2", keypair=f"{name}.json")
    for symbol in ("USDC", "EURC"):
        run(f"a {symbol}-like test mint (6 decimals); the buyer gets 100", "test-mint", "--symbol", symbol, "--fund",
            who["buyer"], "--amount", "100", keypair="buyer.json")
    run("provider 1 registers with a price in each token it accepts, in one transaction", "agent", "register",
        "translator", "--name", "Translator", "-d", "English <-> French, per call", "-c", "translate,summarize",
        "--tokens", "USDC=0.01,EURC=0.01", "--endpoint", "https://translator.example/x402", "--yes",
        keypair="translator.json")
    run("provider 2 takes USDC only", "agent", "register", "summarizer", "--name", "Summarizer", "-c", "summarize",
        "--tokens", "USDC=0.02", "--endpoint", "https://summarizer.example/x402", "--yes",
        keypair="summarizer.json")
    run("the buyer discovers agents that summarize for at most 0.05 USDC a call", "agent", "search",
        "--x402-enabled", "--capability", "summarize", "--token", "USDC", "--max-price", "0.05", "--sort", "price")
    run("dry run of one paid call: compute units, fee, nothing spent", "payment", "simulate", "--agent",
        agents["translator"], keypair="buyer.json")
    for agent, reference, token in ((agents["translator"], references[0], "USDC"),
                                    (agents["translator"], references[1], "EURC"),
                                    (agents["summarizer"], references[2], "USDC")):
        run(f"pay one call in {token} at the agent's {token} price: TransferChecked + record_x402_payment",
            "payment", "send", "--agent", agent, "--token", token, "--reference", reference, keypair="buyer.json")
    run("the seller (or anyone) checks the receipt", "payment", "verify", "--agent", agents["translator"],
        "--reference", references[0])
    for agent, reference, rating, ms in ((agents["translator"], references[0], "5", "420"),
                                         (agents["translator"], references[1], "4", "900"),
                                         (agents["summarizer"], references[2], "3", "2500")):
        run("rate the paid call (once, as its payer)", "payment", "feedback", "--agent", agent, "--reference",
            reference, "--rating", rating, "--response-time", ms, keypair="buyer.json")
    run("hire the translator through escrow: 5 USDC into a vault", "escrow", "create", "--agent",
        agents["translator"], "--amount", "5", "--title", "Translate the user manual", "--arbiter", who["arbiter"],
        "--deadline", "7d", "--review-period", "1d", "--order-id", str(ORDER_ID), keypair="buyer.json")
    run("the provider accepts the job and agrees to its arbiter", "escrow", "accept", order, "--arbiter",
        who["arbiter"], keypair="translator.json")
    run("and delivers it (a URI and the content's SHA-256)", "escrow", "deliver", order, "--uri",
        "https://translator.example/out/manual-fr.pdf", "--hash", "5e" * 32, keypair="translator.json")
    run("the buyer releases the payment: the work order completes", "escrow", "release", order,
        keypair="buyer.json")
    run("index the chain's GhostPay events into SQLite", "--db", db, "indexer", "run", "--once", "--log-level",
        "warning")
    run("payment history, from the indexer", "--db", db, "agent", "payment-history", agents["translator"])
    run("the reputation table, from the indexer", "--db", db, "agent", "search", "--x402-enabled", "--sort",
        "reputation")
    run("how the translator's score is made", "agent", "reputation", agents["translator"], "--detailed")
    return {"wallets": who, "agents": agents, "references": references, "work_order": order}


def check_reachable(url: str) -> None:
    import httpx

    try:
        httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}, timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DemoError(f"cannot reach a Solana RPC at {url}: {exc}; drop --url to use a throwaway localnet") \
            from exc


def run_demo(url: str | None, json_output: bool, show: Callable[[str, str], None],
             then: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """The whole main job on `url`, or on a throwaway localnet started and stopped here; `then(rpc_url,
    index_url)` runs before the localnet and the session folder go (the dashboard, until Ctrl-C)."""
    if url is not None:
        check_reachable(url)
    with contextlib.ExitStack() as stack:
        rpc_url = url or stack.enter_context(temporary_localnet())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ghostpay-session-")))
        stack.enter_context(session_environment(folder, rpc_url))
        session = Session(json_output, show)
        found = run_session(rpc_url, folder, session)
        if then is not None:
            then(rpc_url, f"sqlite:///{folder / 'index.db'}")
        return {"rpc_url": rpc_url, "throwaway_localnet": url is None, **found, "steps": session.steps}
