"""The main job, as a scripted session of `ghost` commands on a throwaway localnet (`ghost demo`, `make demo`).

Two provider agents register with their x402 prices (one per accepted token) in one transaction each; a
buyer finds them with `agent search --token USDC --max-price …`, simulates and pays calls (TransferChecked +
record_x402_payment), one of them in the second token, and rates them; the buyer hires one through escrow
(create, accept naming the arbiter, deliver, release); then it buys over real HTTP: the summarizer's service
(a tiny local upstream) is sold through `ghost x402 proxy`, paid calls settle through `ghost facilitator`,
and the buyer calls it with `ghost x402 call` within a daily budget, the payment recorded in the same
transaction; the indexer indexes the chain and shows the payment history and the reputation table. Every
step is a real `ghost` command, run in-process with the same code path as the installed script (the two
servers as background `ghost` processes), and printed as `$ ghost …` before its output.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghostpay.child_process import python_module_command, start_attached_child
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
    saved_env = {
        k: os.environ.get(k)
        for k in (
            "GHOST_URL",
            "GHOST_CONFIG",
            "GHOSTPAY_HOME",
            "GHOST_KEYPAIR",
            "GHOST_OUTPUT",
            "GHOST_DB",
            "GHOST_COMMITMENT",
            "GHOST_PROGRAM_ID",
        )
    }
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
    """Runs `ghost` commands in-process (`ghost`: the root command, called with an argv as click's
    `main`): shown as `$ ghost …` with their text output, or (json=True) captured as JSON documents for
    one summary."""

    ghost: Callable[..., Any]
    json: bool
    show: Callable[[str, str], None]
    steps: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, note: str, *args: str, keypair: str | None = None) -> Any:
        argv = (["-k", keypair] if keypair else []) + list(args)
        command = "ghost " + " ".join(shlex.quote(a) for a in argv)
        out, err = io.StringIO(), io.StringIO()
        if not self.json:
            self.show(note, command)
        with (
            contextlib.redirect_stderr(err),
            contextlib.redirect_stdout(out) if self.json else contextlib.nullcontext(),
        ):
            code = self.ghost(["--output", "json", *argv] if self.json else argv, standalone_mode=False)
        if code == 130:  # Ctrl-C inside the command: stop the whole session
            raise KeyboardInterrupt
        if code != 0:
            reason = err.getvalue().strip().splitlines()[-1:] or [f"exit status {code}"]
            raise DemoError(f"'{command}' failed: {reason[0].removeprefix('error: ')}")
        data = json.loads(out.getvalue()) if self.json and out.getvalue().strip() else None
        self.steps.append({"note": note, "command": command, "output": data})
        return data


class SummaryService(http.server.BaseHTTPRequestHandler):
    """The service the summarizer sells: any POST answers a one-line JSON summary."""

    def do_POST(self) -> None:  # http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        try:
            text = str(json.loads(self.rfile.read(length) or b"{}").get("text", ""))
        except (ValueError, AttributeError):
            text = ""
        words = text.split()
        body = json.dumps({"summary": " ".join(words[:5]) + (" …" if len(words) > 5 else "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # quiet: the demo prints its own story
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def upstream_service() -> Iterator[str]:
    """The summarizer's plain HTTP service on a free port, in a thread; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SummaryService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def background_ghost(run: Session, note: str, args: list[str], ready_url: str) -> Iterator[None]:
    """`ghost …` as a background process until the block ends, once `ready_url` answers (any status)."""
    import httpx

    command = "ghost " + " ".join(shlex.quote(a) for a in args) + " &"
    if not run.json:
        run.show(note, command)
    run.steps.append({"note": note, "command": command, "output": None})
    process = start_attached_child(
        python_module_command("ghostpay.cli.main", *args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                stderr = process.stderr.read() if process.stderr else ""
                reason = (stderr.strip().splitlines() or [f"exit status {process.returncode}"])[-1]
                raise DemoError(f"'{command}' stopped: {reason.removeprefix('error: ')}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(ready_url, timeout=1)
                break
            if time.monotonic() > deadline:
                raise DemoError(f"'{command}' did not answer at {ready_url} within 60 s")
            time.sleep(0.05)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


SUMMARY_CALL_KEY = "demo_summary_call_1"  # a payment identifier: the call's retry is answered, not paid again


def buy_over_http(run: Session, summarizer: str) -> None:
    """The summarizer's service sold through `ghost x402 proxy`, paid calls settled by `ghost facilitator`,
    bought with `ghost x402 call` within a daily budget; the record_x402_payment rides in the same transaction."""
    fee_port, proxy_port = free_port(), free_port()
    facilitator = f"http://127.0.0.1:{fee_port}"
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(upstream_service())
        stack.enter_context(
            background_ghost(
                run,
                "a facilitator pays the fees of x402 payments (and the one-time rent of a buyer's PayerStats)",
                ["-k", "facilitator.json", "facilitator", "start", "--port", str(fee_port), "--db", "facilitator.db"],
                f"{facilitator}/health",
            )
        )
        stack.enter_context(
            background_ghost(
                run,
                "the summarizer sells its plain HTTP service at its on-chain price, through an x402 proxy",
                [
                    "-k",
                    "summarizer.json",
                    "x402",
                    "proxy",
                    "--agent",
                    summarizer,
                    "--upstream",
                    upstream,
                    "--port",
                    str(proxy_port),
                    "--facilitator",
                    facilitator,
                    "--create-payee-accounts",
                ],
                f"http://127.0.0.1:{proxy_port}/",
            )
        )
        run(
            "the buyer's spending guard: at most 1 USDC a day over x402", "config", "set", "x402.daily_budget.USDC", "1"
        )
        run(
            "the buyer finds the summarizer in the facilitator's x402 Bazaar: x402 agents on chain, with evidence",
            "x402",
            "discover",
            "capability:summarize",
            "--facilitator",
            facilitator,
        )
        summary_call = [
            "x402",
            "call",
            f"http://127.0.0.1:{proxy_port}/summarize",
            "-X",
            "POST",
            "--json",
            json.dumps({"text": "GhostPay lets AI agents pay each other per call on Solana."}),
            "--token",
            "USDC",
            "--max-price",
            "0.05",
            "--idempotency-key",
            SUMMARY_CALL_KEY,
        ]
        run(
            "buy one summary over HTTP: 402, pay (recorded in the same transaction), 200, rate it",
            *summary_call,
            "--feedback",
            "auto",
            keypair="buyer.json",
        )
        run(
            "the same call retried with its idempotency key: the seller answers from its cache, nothing is paid",
            *summary_call,
            keypair="buyer.json",
        )
        run("what the guard has left", "x402", "spending", keypair="buyer.json")


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
    from solders.pubkey import Pubkey

    from ghostpay.pda import agent_address, work_order_address

    who = wallets(folder, ["translator", "summarizer", "buyer", "arbiter", "facilitator"])
    agents = {name: str(agent_address(Pubkey.from_string(who[name]), name)[0]) for name in ("translator", "summarizer")}
    order = str(work_order_address(Pubkey.from_string(who["buyer"]), ORDER_ID)[0])
    references = [os.urandom(32).hex() for _ in range(3)]
    db = "index.db"  # commands run in `folder`

    for name in ("translator", "summarizer", "buyer", "arbiter", "facilitator"):
        run(f"fund the {name}'s wallet with SOL for fees", "airdrop", "2", keypair=f"{name}.json")
    for symbol in ("USDC", "EURC"):
        run(
            f"a {symbol}-like test mint (6 decimals); the buyer gets 100",
            "test-mint",
            "--symbol",
            symbol,
            "--fund",
            who["buyer"],
            "--amount",
            "100",
            keypair="buyer.json",
        )
    run(
        "provider 1 registers with a price in each token it accepts, in one transaction",
        "agent",
        "register",
        "translator",
        "--name",
        "Translator",
        "-d",
        "English <-> French, per call",
        "-c",
        "translate,summarize",
        "--tokens",
        "USDC=0.01,EURC=0.01",
        "--endpoint",
        "https://translator.example/x402",
        "--yes",
        keypair="translator.json",
    )
    run(
        "provider 2 takes USDC only",
        "agent",
        "register",
        "summarizer",
        "--name",
        "Summarizer",
        "-c",
        "summarize",
        "--tokens",
        "USDC=0.02",
        "--endpoint",
        "https://summarizer.example/x402",
        "--yes",
        keypair="summarizer.json",
    )
    run(
        "the buyer discovers agents that summarize for at most 0.05 USDC a call",
        "agent",
        "search",
        "--x402-enabled",
        "--capability",
        "summarize",
        "--token",
        "USDC",
        "--max-price",
        "0.05",
        "--sort",
        "price",
    )
    run(
        "dry run of one paid call: compute units, fee, nothing spent",
        "payment",
        "simulate",
        "--agent",
        agents["translator"],
        keypair="buyer.json",
    )
    for agent, reference, token in (
        (agents["translator"], references[0], "USDC"),
        (agents["translator"], references[1], "EURC"),
        (agents["summarizer"], references[2], "USDC"),
    ):
        run(
            f"pay one call in {token} at the agent's {token} price: TransferChecked + record_x402_payment",
            "payment",
            "send",
            "--agent",
            agent,
            "--token",
            token,
            "--reference",
            reference,
            keypair="buyer.json",
        )
    run(
        "the seller (or anyone) finds the payment by its reference (its transaction is the receipt)",
        "payment",
        "verify",
        "--agent",
        agents["translator"],
        "--reference",
        references[0],
    )
    for agent, reference, rating, ms in (
        (agents["translator"], references[0], "5", "420"),
        (agents["translator"], references[1], "4", "900"),
        (agents["summarizer"], references[2], "3", "2500"),
    ):
        run(
            "rate the paid call (once, as its payer)",
            "payment",
            "feedback",
            "--agent",
            agent,
            "--reference",
            reference,
            "--rating",
            rating,
            "--response-time",
            ms,
            keypair="buyer.json",
        )
    run(
        "hire the translator through escrow: 5 USDC into a vault",
        "escrow",
        "create",
        "--agent",
        agents["translator"],
        "--amount",
        "5",
        "--title",
        "Translate the user manual",
        "--arbiter",
        who["arbiter"],
        "--deadline",
        "7d",
        "--review-period",
        "1d",
        "--order-id",
        str(ORDER_ID),
        keypair="buyer.json",
    )
    run(
        "the provider accepts the job and agrees to its arbiter",
        "escrow",
        "accept",
        order,
        "--arbiter",
        who["arbiter"],
        keypair="translator.json",
    )
    run(
        "and delivers it (a URI and the content's SHA-256)",
        "escrow",
        "deliver",
        order,
        "--uri",
        "https://translator.example/out/manual-fr.pdf",
        "--hash",
        "5e" * 32,
        keypair="translator.json",
    )
    run("the buyer releases the payment: the work order completes", "escrow", "release", order, keypair="buyer.json")
    buy_over_http(run, agents["summarizer"])
    run(
        "index the chain's GhostPay events into SQLite",
        "--db",
        db,
        "indexer",
        "run",
        "--once",
        "--log-level",
        "warning",
    )
    run("payment history, from the indexer", "--db", db, "agent", "payment-history", agents["translator"])
    run(
        "the reputation table, from the indexer",
        "--db",
        db,
        "agent",
        "search",
        "--x402-enabled",
        "--sort",
        "reputation",
    )
    run("how the translator's score is made", "agent", "reputation", agents["translator"], "--detailed")
    return {"wallets": who, "agents": agents, "references": references, "work_order": order}


def check_reachable(url: str) -> None:
    import httpx

    try:
        httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}, timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DemoError(
            f"cannot reach a Solana RPC at {url}: {exc}; drop -u/--url to use a throwaway localnet"
        ) from exc


def run_demo(
    ghost: Callable[..., Any],
    url: str | None,
    json_output: bool,
    show: Callable[[str, str], None],
    then: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """The whole main job on `url`, or on a throwaway localnet started and stopped here, through `ghost`
    (the root command: `ctx.find_root().command`); `then(rpc_url, index_url)` runs before the localnet and
    the session folder go (the dashboard, until Ctrl-C)."""
    if url is not None:
        check_reachable(url)
    with contextlib.ExitStack() as stack:
        rpc_url = url or stack.enter_context(temporary_localnet())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ghostpay-session-")))
        stack.enter_context(session_environment(folder, rpc_url))
        session = Session(ghost, json_output, show)
        found = run_session(rpc_url, folder, session)
        if then is not None:
            then(rpc_url, f"sqlite:///{folder / 'index.db'}")
        return {"rpc_url": rpc_url, "throwaway_localnet": url is None, **found, "steps": session.steps}
