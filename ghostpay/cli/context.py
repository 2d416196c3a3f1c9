"""Global options, environment variables, the State every command gets (with the lazily built SDK client),
and how failures become one line (`report`); the config file is `config_file`, the error `errors.CliError`.

Precedence for every setting: the command-line option, then its environment variable, then
`ghost config set`, then the default. Nothing here imports the Solana stack at import time:
`ghost --help` stays fast; `State.run` imports the SDK when a command needs the chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from ghostpay.cli.config_file import read_config
from ghostpay.cli.errors import CliError

if TYPE_CHECKING:
    from solders.pubkey import Pubkey

    from ghostpay.cli.journal import Entry
    from ghostpay.client import GhostPayClient
    from ghostpay.token_labels import ClusterLabels

T = TypeVar("T")

CONFIRM_TIMEOUT_ENV = "GHOST_CONFIRM_TIMEOUT"
DEFAULT_CONFIRM_TIMEOUT = 30.0
ENV = {
    "url": "GHOST_URL",
    "keypair": "GHOST_KEYPAIR",
    "commitment": "GHOST_COMMITMENT",
    "program_id": "GHOST_PROGRAM_ID",
    "output": "GHOST_OUTPUT",
    "db": "GHOST_DB",
}
DEFAULTS: dict[str, str | None] = {
    "url": "localnet",
    "keypair": None,
    "commitment": "confirmed",
    "program_id": None,
    "output": "text",
    "db": None,
}
URL_MONIKERS = ("l", "localhost", "localnet", "d", "devnet", "m", "mainnet-beta", "mainnet")  # ghostpay.cluster's
CHOICES = {"commitment": ("processed", "confirmed", "finalized"), "output": ("text", "json")}
HELP = {
    "url": "RPC URL or moniker: l|localhost|localnet, d|devnet, m|mainnet-beta (websocket URL derived).",
    "keypair": "Signer keypair file (default: the Solana CLI config's keypair, else ~/.config/solana/id.json).",
    "commitment": "Commitment level: processed, confirmed or finalized.",
    "program_id": "GhostPay program ID (default: the IDL's address).",
    "output": "Output format: text or json (one JSON document on stdout, nothing else).",
    "db": "Indexer database (SQLite path or URL); agent search and payment history read it when set.",
}


# settings ------------------------------------------------------------------------------------------------


def check_setting(key: str, value: str) -> str:
    if key not in ENV:
        raise CliError(f"unknown setting {key!r}; settings are: {', '.join(ENV)}", 2)
    if key in CHOICES and value not in CHOICES[key]:
        raise CliError(f"{key} must be one of {', '.join(CHOICES[key])}, not {value!r}", 2)
    if (
        key == "url"
        and value.strip().lower() not in URL_MONIKERS
        and not value.strip().startswith(("http://", "https://"))
    ):
        raise CliError(f"url must be an http(s):// URL or a moniker ({', '.join(URL_MONIKERS)}), not {value!r}", 2)
    if key == "program_id":
        from ghostpay.cli.params import looks_like_pubkey

        if not looks_like_pubkey(value.strip()):
            raise CliError(f"program_id must be a base58 public key (32 bytes), not {value!r}", 2)
    return value


# the state every command gets ----------------------------------------------------------------------------


@dataclass
class Settings:
    url: str = "localnet"
    keypair: str | None = None
    commitment: str = "confirmed"
    program_id: str | None = None
    output: str = "text"
    db: str | None = None
    verbose: bool = False
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(cls, given: dict[str, str | None], verbose: bool = False) -> Settings:
        """Command line / environment (click read both) over the config file over the defaults."""
        config = read_config()
        values: dict[str, Any] = {}
        sources = {}
        for key in ENV:
            if given.get(key) is not None:
                values[key] = given[key]
                sources[key] = "env" if os.environ.get(ENV[key]) == given[key] else "option"
            elif isinstance(config.get(key), str):
                values[key] = check_setting(key, config[key])
                sources[key] = "config"
            else:
                values[key] = DEFAULTS[key]
                sources[key] = "default"
        return cls(verbose=verbose, sources=sources, **values)


class State:
    """What `ghost`'s global options decided, shared by every command through `ctx.obj`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._config: dict[str, Any] | None = None
        self.sent: list[str] = []  # signatures sent by this command, to name them if it is interrupted
        self.journal: Entry | None = None  # the open journal entry of the payment being sent
        self._status: Any = None  # the running spinner (rich Status), paused while a question is asked
        self._genesis_hash: str | None = None
        self._labels: ClusterLabels | None = None
        self._labels_unknown = False

    @property
    def json(self) -> bool:
        return self.settings.output == "json"

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = read_config()
        return self._config

    @property
    def rpc_url(self) -> str:
        url = self.settings.url.strip()
        if "://" in url:
            return url
        from ghostpay.cluster import MONIKERS  # imports the SDK's exceptions (anchorpy): only for a moniker

        return MONIKERS.get(url.lower(), url)

    def keypair_path(self) -> Path:
        from ghostpay.keypairs import default_keypair_path

        chosen = self.settings.keypair
        return Path(os.path.expanduser(chosen)) if chosen else default_keypair_path()

    def missing_keypair(self, path: Path, other: str = "") -> CliError:
        """The one-line error for a keypair file that is not there, naming what to do instead."""
        create = "ghost keygen" if self.settings.keypair is None else f"ghost keygen --outfile {path}"
        return CliError(
            f"keypair file {path} not found; create it with '{create}', or pass -k/--keypair FILE "
            f"or set GHOST_KEYPAIR{other}"
        )

    def wallet_address(self, other: str = "") -> Pubkey:
        """The -k wallet's address (the keypair file's public key)."""
        from ghostpay.keypairs import load_keypair

        path = self.keypair_path()
        if not path.exists():
            raise self.missing_keypair(path, other)
        try:
            return load_keypair(str(path)).pubkey()
        except ValueError as exc:
            raise CliError(str(exc)) from None

    def client(self, *, signer: bool = True) -> GhostPayClient:
        """The SDK client; `signer=False` opens it read-only when no keypair exists."""
        from ghostpay.client import GhostPayClient

        path = self.keypair_path()
        keypair: Any = str(path)
        if not path.exists():
            if signer or self.settings.keypair:
                raise self.missing_keypair(path)
            keypair = None
        from solana.rpc.commitment import Commitment

        guards = None
        if signer:  # every payment a command makes passes the config file's x402.* spending guards
            from ghostpay.cli.guards import guarded_wallet, spending_guards

            guards = guarded_wallet(self, spending_guards(self))
        return GhostPayClient(
            self.settings.url,
            keypair,
            commitment=Commitment(self.settings.commitment),
            program_id=self.settings.program_id,
            guards=guards,
            on_send=self._on_send,
            confirm_timeout=confirm_timeout(),
        )

    def _on_send(self, signature: object, last_valid_block_height: int | None, transaction: bytes) -> None:
        self.sent.append(str(signature))
        if self.journal is not None:
            self.journal.sent(signature, last_valid_block_height, transaction)

    def run(
        self, work: Callable[[GhostPayClient], Awaitable[T]], *, signer: bool = True, status: str | None = None
    ) -> T:
        """Open the client, run `work(client)` on a fresh event loop, close it; errors become one line."""
        import asyncio  # here, not at the top: commands that make no RPC client (an indexed search) skip it

        async def main() -> T:
            async with self.client(signer=signer) as gp:
                with self.spinner(status):
                    return await work(gp)

        try:
            return asyncio.run(main())
        except CliError:
            raise
        except KeyboardInterrupt:
            if not self.sent:
                raise
            raise CliError(
                f"interrupted after sending transaction {self.sent[-1]}{self._pending_hint()}", 130
            ) from None
        except Exception as exc:
            from ghostpay.exceptions import UnknownTokenLabel
            from ghostpay.spending import GUARD_TOKEN

            if isinstance(exc, UnknownTokenLabel) and exc.what == GUARD_TOKEN:
                from ghostpay.cli.guards import unknown_guard_label

                raise unknown_guard_label(self, exc) from exc
            described = describe(exc, self.rpc_url)
            if described is None:
                raise
            from ghostpay.exceptions import OutcomeUnknown, TokenNotAccepted

            refused = spending_refusal(self, exc)
            if refused is not None:
                described = (refused, 1)
            if isinstance(exc, TokenNotAccepted):
                described = (
                    described[0].removesuffix("; nothing was paid")
                    + "; pass one of those with --token, or leave --token out; nothing was paid",
                    1,
                )
            if isinstance(exc, OutcomeUnknown):
                described = (described[0] + self._pending_hint(), described[1])
            raise CliError(*described) from exc

    def _pending_hint(self) -> str:
        """How to learn the outcome of what was sent, and how to retry safely."""
        hint = f"; check it with 'ghost confirm {self.sent[-1]}'" if self.sent else ""
        if self.journal is not None and self.journal.reference:
            hint += (
                f"; reference {self.journal.reference}: run the same command again to retry, it checks "
                "first and cannot pay twice"
            )
        elif self.journal is not None and self.journal.order_id is not None:
            hint += (
                f"; order id {self.journal.order_id}: run the same command again to retry, it checks "
                "first and cannot create the order twice"
            )
        return hint

    def jsonrpc(self, method: str, *params: Any, hint: str = "") -> Any:
        """One plain JSON-RPC call (cheat codes, airdrops, the genesis hash); errors become one line. Over
        urllib, so commands that need no SDK import no HTTP library."""
        reply = self._post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        if "error" in reply:
            raise CliError(f"{method} failed: {reply['error'].get('message')}{hint}")
        return reply["result"]

    def jsonrpc_batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several plain JSON-RPC calls in one request (one round trip): each call's result in order, None for
        one that failed (or all, from a node that does not take batches)."""
        replies = self._post([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)])
        found = (
            {r.get("id"): r.get("result") for r in replies if isinstance(r, dict)} if isinstance(replies, list) else {}
        )
        return [found.get(i) for i in range(len(calls))]

    def _post(self, payload: Any) -> Any:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.rpc_url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise CliError(unreachable(self.rpc_url, f"HTTP {exc.code} {exc.reason}")) from exc
        except (OSError, ValueError) as exc:  # refused, timed out, or no JSON
            detail = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            raise CliError(unreachable(self.rpc_url, detail)) from exc

    def genesis_hash(self) -> str:
        """The cluster's genesis hash: what names it, whichever endpoint serves it (read once)."""
        if self._genesis_hash is None:
            self._genesis_hash = str(self.jsonrpc("getGenesisHash"))
        return self._genesis_hash

    def labels(self) -> ClusterLabels:
        """The token labels of this cluster (`ghostpay.token_labels`), the old global ones sorted out first."""
        if self._labels is None:
            from ghostpay.cli.labels import cluster_labels

            self._labels = cluster_labels(self)
        return self._labels

    def labels_if_known(self) -> ClusterLabels | None:
        """The labels for showing mints by name, or None when the RPC cannot say which cluster it is (or the
        labels file cannot be read): names are a nicety there, not worth an error."""
        if self._labels is None and not self._labels_unknown:
            try:
                self.labels()
            except (CliError, ValueError):
                self._labels_unknown = True
        return self._labels

    def forget_labels(self) -> None:
        """Read the labels again at next use (after this command changed them)."""
        self._labels = None

    @contextlib.contextmanager
    def spinner(self, message: str | None) -> Iterator[None]:
        """A spinner on stderr while waiting, in text mode on a terminal only (`paused()` stops it for a
        question)."""
        if message is None or self.json or not sys.stderr.isatty():
            yield
            return
        from rich.console import Console

        with Console(stderr=True).status(message) as status:
            self._status = status
            try:
                yield
            finally:
                self._status = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No spinner while this runs (a prompt on the terminal): it would be drawn over the question."""
        status = self._status
        if status is None:
            yield
            return
        status.stop()
        try:
            yield
        finally:
            status.start()


def confirm_timeout() -> float:
    """Seconds to wait for a confirmation, or for the RPC to answer again after a failure
    (`GHOST_CONFIRM_TIMEOUT`, default 30)."""
    try:
        return float(os.environ.get(CONFIRM_TIMEOUT_ENV) or DEFAULT_CONFIRM_TIMEOUT)
    except ValueError:
        raise CliError(
            f"{CONFIRM_TIMEOUT_ENV} is a number of seconds, not {os.environ[CONFIRM_TIMEOUT_ENV]!r}", 2
        ) from None


def state(ctx: typer.Context) -> State:
    """The State of the root command (built by the `ghost` callback)."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State(Settings.resolve({}))
    return root.obj


# errors -------------------------------------------------------------------------------------------------


def describe(exc: BaseException, url: str = "") -> tuple[str, int] | None:
    """One line saying what went wrong and what to do, and the exit status; None for a bug."""
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, typer.BadParameter):
        return exc.format_message(), 2
    unreached = unreachable_service(exc)
    if unreached is not None:
        return unreached, 1
    if not type(exc).__module__.startswith("ghostpay"):
        return None
    from ghostpay import exceptions as gx

    if isinstance(exc, gx.ProgramError):
        return f"the program refused it: {exc.name} (error {exc.code}): {with_values(exc.message)}", 1
    if isinstance(exc, gx.TokenProgramError):
        return f"the token program refused it: {exc.name} (error {exc.code}): {exc.message}", 1
    if isinstance(exc, gx.TransportError):
        return unreachable(url or "the RPC URL", str(exc).split(": ", 1)[-1]), 1
    if isinstance(exc, gx.AccountNotFound) and getattr(exc, "agent_id", None):
        return f"{exc}; list yours with 'ghost agent list'", 1
    if isinstance(exc, gx.AccountNotFound):
        hint = {
            "agent": "; check the address, or list agents with 'ghost agent list --owner OWNER'",
            "mint": "; check the token mint address (and the cluster, -u)",
        }.get(exc.what, "")
        return f"{exc}{hint}", 1
    if isinstance(exc, gx.OutcomeUnknown):
        return (
            f"OutcomeUnknown: transaction {exc.signature} was sent but the RPC at {url} did not say whether it landed",
            1,
        )
    if isinstance(exc, gx.TransactionTimeout):
        return f"{exc}; it may still land: check it with 'ghost confirm {exc.signature}'", 1
    if isinstance(exc, gx.AlreadyProcessed):
        return "this exact transaction was already processed (sent twice in a row); nothing more was done", 1
    if isinstance(exc, gx.TransactionError):
        inner = getattr(getattr(exc.err, "err", None), "__class__", type(None)).__name__
        detail = str(getattr(exc.err, "err", exc.err))
        if exc.instruction_index is not None:
            failed = [line.split("Error: ", 1)[1] for line in exc.logs if "Program log: Error: " in line]
            detail = f"instruction {exc.instruction_index} failed: " + (
                failed[-1] if failed else detail.removeprefix(f"{inner}(").rstrip(")")
            )
        return f"the transaction failed: {detail}; run with --verbose for the program logs", 1
    if isinstance(exc, gx.GhostPayError):
        return str(exc), 1
    return None


def with_values(message: str) -> str:
    """A program message with the IDL constants it names replaced by their values ("between 1,000 and …")."""
    import re

    from ghostpay.cli.params import limits

    values = limits()
    message = re.sub(r"\bMIN and MAX_(\w+)", r"MIN_\1 and MAX_\1", message)

    def value(match: re.Match[str]) -> str:
        name = match.group(0)
        if name not in values:
            return name
        unit = " s" if name.endswith("_SECONDS") else " atomic units" if name.endswith(("_AMOUNT", "_PER_CALL")) else ""
        return f"{values[name]:,}{unit}"

    return re.sub(r"\b(MIN|MAX)_[A-Z_]+\b", value, message)


def one_line(message: str) -> str:
    """The first line (httpx adds a second with a documentation link to its HTTP status errors)."""
    return message.strip().splitlines()[0] if message.strip() else message


def unreachable(url: str, detail: str) -> str:
    """The one line for an RPC that does not answer: start a localnet when the URL is this machine's, check
    the network or the URL when it is a remote cluster's."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if local:
        return (
            f"cannot reach the Solana RPC at {url} ({detail}); start one with 'ghost localnet start --detach' "
            "or pass -u/--url"
        )
    return (
        f"cannot reach the Solana RPC at {url} ({detail}); check the network connection and the URL "
        "(-u/--url), or work on a local chain: 'ghost localnet start --detach', then -u localnet"
    )


def spending_refusal(state: State, exc: BaseException) -> str | None:
    """A budget or per-call maximum refusal in the user's terms: amounts in plain notation with the token's
    label, and the setting that would allow it; None for other errors."""
    from ghostpay.exceptions import BudgetExceeded, PriceAboveMaximum

    if not isinstance(exc, (BudgetExceeded, PriceAboveMaximum)) or not exc.mint:
        return None
    from ghostpay.cli.output import format_amount, mint_symbol
    from ghostpay.spending import BUDGET_NAMES

    symbol = mint_symbol(state, exc.mint)
    label = symbol if "…" not in symbol else exc.mint  # config keys take a label or the address
    money = lambda value: format_amount(Decimal(str(value)), symbol)  # noqa: E731
    if isinstance(exc, BudgetExceeded):
        key = f"x402.{BUDGET_NAMES[exc.window]}_budget.{label}"  # the config keys: x402.daily_budget, ...
        left = max(Decimal(str(exc.limit)) - Decimal(str(exc.spent)), Decimal(0))
        return (
            f"paying {money(exc.amount)} would exceed the {BUDGET_NAMES[exc.window]} budget of "
            f"{money(exc.limit)} ({money(left)} left); raise it with 'ghost config set {key} AMOUNT'"
            + ("" if exc.window == "total" else " or wait for the window to pass")
            + "; nothing was paid"
        )
    return (
        f"the price {money(exc.amount)} is over the per-call maximum {money(exc.maximum)}; allow it with "
        f"--max-price or 'ghost config set x402.max_price.{label} AMOUNT'; nothing was paid"
    )


def unreachable_service(exc: BaseException) -> str | None:
    """An HTTP service (a seller, a facilitator, an indexer API) that did not answer: which, and what to check."""
    import httpx

    if not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError)):
        return None
    try:
        target = str(exc.request.url)
    except RuntimeError:  # raised without its request
        target = "the server"
    what = {
        httpx.ConnectError: "nothing accepts connections there",
        httpx.ConnectTimeout: "the connection timed out",
        httpx.ReadTimeout: "it did not answer in time",
        httpx.RemoteProtocolError: "it closed the connection without an answer",
    }[type(exc)]
    return f"cannot reach {target}: {what} ({exc or type(exc).__name__}); check the URL and that the server runs"


def report(exc: BaseException, verbose: bool, url: str = "") -> int:
    """Print the error (a traceback too with --verbose) and return the exit status."""
    described = describe(exc, url)
    if verbose:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
        logs = getattr(exc, "logs", None) or getattr(exc.__cause__, "logs", None)  # CliError wraps SDK errors
        if logs:
            print("program logs:\n  " + "\n  ".join(logs), file=sys.stderr)
    if described is None:
        message, code = (f"internal error: {type(exc).__name__}: {exc}; run again with --verbose and report it"), 1
    else:
        message, code = described
    print(f"error: {one_line(message)}", file=sys.stderr)
    return code
