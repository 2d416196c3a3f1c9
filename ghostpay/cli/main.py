"""`ghost`: register, price, pay and hire AI agents on Solana.

The root command reads the global options (`-u`, `-k`, `--commitment`, `--program-id`, `--output`,
`--db`, `--verbose`) into a `State` for every sub-command. Errors end as one line on stderr: exit
status 1 for user errors (the chain said no, a file is missing, the RPC is unreachable), 2 for
usage errors (a malformed option value); `--verbose` adds the traceback. Nothing here imports the
Solana stack: each command imports the SDK when it runs, so `ghost --help` is fast. The sub-commands
(`COMMANDS`) are imported and built when one is run, only that one: `ghost --help` lists them from their
first help paragraph (tests/test_cli_start.py holds it equal to theirs), `ghost --db index.db agent search`
builds the `agent` group alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import typer
from typer._click import Command, Context, exceptions as click_exceptions
from typer.core import TyperCommand, TyperGroup

from ghostpay import __version__
from ghostpay.cli.context import ENV, HELP, CliError, Settings, State, check_setting, report

GLOBAL_VALUE_OPTIONS = {"-u", "--url", "-k", "--keypair", "--commitment", "--program-id", "-o", "--output", "--db"}
GLOBAL_FLAGS = {"-v", "--verbose"}


@dataclass(frozen=True)
class Lazy:
    """A sub-command imported when it runs: `target` is "module:attribute", a Typer sub-app or a command
    function; `help` its first help paragraph, what `ghost --help` lists."""

    target: str
    help: str


COMMANDS: dict[str, Lazy] = {  # in the order `ghost --help` lists them, after version and path
    "mcp": Lazy(
        "ghostpay.cli.mcp:serve",
        "Serve GhostPay to an LLM agent over MCP: find, pay, rate and hire agents with the -k wallet on -u.",
    ),
    "keygen": Lazy(
        "ghostpay.cli.wallet:keygen",
        "Create a keypair file in the Solana CLI's format (a JSON array of 64 bytes, readable by you only).",
    ),
    "address": Lazy("ghostpay.cli.wallet:address", "Print the -k wallet's address (its public key)."),
    "balance": Lazy(
        "ghostpay.cli.wallet:balance",
        "SOL and every token account of a wallet (both token programs), tokens by label.",
    ),
    "airdrop": Lazy("ghostpay.cli.misc:airdrop", "Request SOL from the cluster's faucet (localnet, devnet)."),
    "confirm": Lazy(
        "ghostpay.cli.misc:confirm",
        "Did a transaction land? Its status, slot and error, like 'solana confirm' (exit 1 if it failed or "
        "the node does not know it).",
    ),
    "test-mint": Lazy(
        "ghostpay.cli.misc:test_mint",
        "Create a USDC-like test mint on a localnet and add to wallets' balances (cheat codes: no "
        "signatures). Its --symbol labels it on this localnet only: on another cluster the label means that "
        "cluster's mint (USDC on mainnet-beta is real USDC), or nothing.",
    ),
    "demo": Lazy(
        "ghostpay.cli.misc:demo",
        "The main job, as a scripted session of ghost commands on a throwaway localnet.",
    ),
    "analytics": Lazy(
        "ghostpay.cli.analytics:analytics",
        "x402 payments over a period: counts, success rate, volume by token, top earners, active agents.",
    ),
    "agent": Lazy(
        "ghostpay.cli.agent:app",
        "Register, price, update and find agents; read their reputation and payments.",
    ),
    "payment": Lazy("ghostpay.cli.payment:app", "Pay agents per call (x402), verify payments, give feedback."),
    "escrow": Lazy(
        "ghostpay.cli.escrow:app",
        "Hire agents through token escrow: work orders from creation to payment.",
    ),
    "config": Lazy(
        "ghostpay.cli.config:app",
        "Read and write the ghost config file (settings under the command-line options and GHOST_* variables,"
        " and the x402.* spending guards).",
    ),
    "localnet": Lazy("ghostpay.cli.localnet:app", "A local Solana validator (LiteSVM) with GhostPay loaded."),
    "indexer": Lazy(
        "ghostpay.cli.indexer:app",
        "Index GhostPay events into SQLite or PostgreSQL; status; verify against the chain.",
    ),
    "webhooks": Lazy(
        "ghostpay.cli.webhooks:app",
        "Signed webhooks: POST indexed events (payments, work orders…) to your URL.",
    ),
    "facilitator": Lazy(
        "ghostpay.cli.facilitator:app",
        "An x402 facilitator: verifies and settles payments, paying their fees.",
    ),
    "x402": Lazy("ghostpay.cli.x402:app", "HTTP calls paid with x402: sell an API behind a paywall, pay for calls."),
    "tokens": Lazy(
        "ghostpay.cli.tokens:app",
        "Token labels: names that stand for mints (USDC), wherever a token is expected. A label belongs to "
        "one cluster: well-known mints are built in for mainnet-beta and devnet, 'ghost test-mint --symbol' "
        "labels its mint on its localnet, 'ghost tokens add' labels any mint.",
    ),
}


def subcommand(group: Any, name: str) -> Any:
    """`group`'s sub-command `name` (imported and built if it is lazy), None if there is none."""
    get = getattr(group, "get_command", None)
    return get(None, name) if get is not None else None


def load(name: str) -> Command:
    """The click command of `COMMANDS[name]`, built under the root's settings (plain help, no completion
    options) as `add_typer` and `command` on the root would build it."""
    module, attribute = COMMANDS[name].target.split(":")
    found = getattr(import_module(module), attribute)
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    if isinstance(found, typer.Typer):
        holder.add_typer(found, name=name)
        command = typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]
    else:
        holder.command(name)(found)
        command = typer.main.get_command(holder)  # one command and no callback: the command itself
    name_arguments(command)
    return command


def hoist_global_options(root: Any, argv: list[str]) -> list[str]:
    """Move global options given after the subcommand to the front, as the `solana` CLI accepts them
    (`ghost agent list -o json`), unless that subcommand has an option of the same name."""
    group, index = root, 0
    while index < len(argv):  # skip the root's own options, then walk down the subcommand names
        token = argv[index]
        if token in GLOBAL_VALUE_OPTIONS:
            index += 2
        elif token.startswith("-"):
            index += 1
        elif (sub := subcommand(group, token)) is not None:
            group = sub
            index += 1
            if not hasattr(group, "commands"):
                break
        else:
            return argv
    own = {name for param in getattr(group, "params", []) for name in (*param.opts, *param.secondary_opts)}
    front, rest, i = [], argv[:index], index
    while i < len(argv):
        token = argv[i]
        name = token.split("=", 1)[0]
        if token == "--":
            rest += argv[i:]
            break
        if name in GLOBAL_VALUE_OPTIONS and name not in own:
            taken = 1 if "=" in token else 2
            front += argv[i : i + taken]
            i += taken
        elif token in GLOBAL_FLAGS and token not in own:
            front.append(token)
            i += 1
        else:
            rest.append(token)
            i += 1
    return front + rest


def name_arguments(command: Any) -> None:
    """Arguments in usage lines as the Solana CLI writes them: `ORDER`, `[AGENT_ID]` (not `{order}`)."""
    for sub in getattr(command, "commands", {}).values():
        name_arguments(sub)
    for param in getattr(command, "params", []):
        if param.param_type_name == "argument" and not getattr(param, "named", False):
            param.metavar = param.metavar or param.name.upper()
            shown = param.metavar if param.required else f"[{param.metavar}]"
            param.get_usage_pieces = lambda ctx, shown=shown: [shown]  # typer's own wraps it in {}
            param.named = True


class GhostGroup(TyperGroup):
    """Runs the command in non-standalone mode and turns every failure into one line and an exit status;
    imports a sub-command of `COMMANDS` only when it runs."""

    listing = False  # formatting `ghost --help`: a lazy command is listed by its help, not imported

    def list_commands(self, ctx: Context) -> list[str]:
        return [*(name for name in super().list_commands(ctx) if name not in COMMANDS), *COMMANDS]

    def get_command(self, ctx: Context | None, cmd_name: str) -> Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            if self.listing:
                return TyperCommand(cmd_name, help=COMMANDS[cmd_name].help)
            self.commands[cmd_name] = load(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Context, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self.listing = False

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = hoist_global_options(self, list(sys.argv[1:] if args is None else args))
        name_arguments(self)
        verbose = "--verbose" in argv or "-v" in argv
        try:
            result = super().main(argv, "ghost", complete_var, False, windows_expand_args, **extra)
            code = result if isinstance(result, int) else 0
        except click_exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else "", err=False)
            code = 2
        except click_exceptions.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
            code = 2
        except click_exceptions.ClickException as exc:
            print(f"error: {exc.format_message()}", file=sys.stderr)
            code = exc.exit_code
        except typer.Abort:
            print("error: aborted", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            code = 130
        except Exception as exc:  # noqa: BLE001 - the one place that turns failures into an exit status
            code = report(exc, verbose)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=GhostGroup,
    rich_markup_mode=None,  # plain help: flags shown as flags, option names never truncated
    help="GhostPay: register, price, pay and hire AI agents on Solana.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    url: str | None = typer.Option(
        None, "--url", "-u", envvar=ENV["url"], help=HELP["url"] + " (default: l)", show_default=False
    ),
    keypair: str | None = typer.Option(None, "--keypair", "-k", envvar=ENV["keypair"], help=HELP["keypair"]),
    commitment: str | None = typer.Option(
        None, "--commitment", envvar=ENV["commitment"], help=HELP["commitment"] + " (default: confirmed)"
    ),
    program_id: str | None = typer.Option(None, "--program-id", envvar=ENV["program_id"], help=HELP["program_id"]),
    output: str | None = typer.Option(
        None, "--output", "-o", envvar=ENV["output"], help=HELP["output"] + " (default: text)"
    ),
    db: str | None = typer.Option(None, "--db", envvar=ENV["db"], help=HELP["db"]),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and program logs on errors."),
) -> None:
    """GhostPay: register, price, pay and hire AI agents on Solana.

    Settings come from the options, then GHOST_* environment variables, then `ghost config set`.
    """
    given = {
        "url": url,
        "keypair": keypair,
        "commitment": commitment,
        "program_id": program_id,
        "output": output,
        "db": db,
    }
    for key, value in given.items():
        if value is not None:
            check_setting(key, value)
    ctx.obj = State(Settings.resolve(given, verbose))
    from ghostpay.cli.indexed import indexer_defaults

    ctx.default_map = {**(ctx.default_map or {}), **indexer_defaults(ctx.obj)}


@app.command()
def version(ctx: typer.Context) -> None:
    """Print the GhostPay version.

    Example: ghost version
    """
    from ghostpay.cli.context import state
    from ghostpay.cli.output import emit

    emit(state(ctx), {"version": __version__}, lambda out: out.print(f"ghostpay {__version__}"))


@app.command()
def path(ctx: typer.Context) -> None:
    """Print the folder where GhostPay keeps local state (set GHOSTPAY_HOME to move it).

    Example: ghost path
    """
    from ghostpay.cli.context import state
    from ghostpay.cli.output import emit
    from ghostpay.paths import data_dir

    emit(state(ctx), {"path": str(data_dir())}, lambda out: out.print(str(data_dir())))


__all__ = ["app", "CliError"]

if __name__ == "__main__":
    app()
