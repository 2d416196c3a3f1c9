"""`ghost`: register, price, pay and hire AI agents on Solana.

The root command reads the global options (`-u`, `-k`, `--commitment`, `--program-id`, `--output`,
`--db`, `--verbose`) into a `State` for every sub-command. Errors end as one line on stderr: exit
status 1 for user errors (the chain said no, a file is missing, the RPC is unreachable), 2 for
usage errors (a malformed option value); `--verbose` adds the traceback. Nothing here imports the
Solana stack: each command imports the SDK when it runs, so `ghost --help` is fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer._click import exceptions as click_exceptions
from typer.core import TyperGroup

from ghostpay import __version__
from ghostpay.cli import (
    agent,
    analytics,
    config,
    escrow,
    facilitator,
    localnet,
    mcp,
    misc,
    payment,
    tokens,
    wallet,
    webhooks,
    x402,
)
from ghostpay.cli.context import ENV, HELP, CliError, Settings, State, check_setting, report
from ghostpay.cli.indexer import app as indexer_app

GLOBAL_VALUE_OPTIONS = {"-u", "--url", "-k", "--keypair", "--commitment", "--program-id", "-o", "--output", "--db"}
GLOBAL_FLAGS = {"-v", "--verbose"}


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
        elif token in getattr(group, "commands", {}):
            group = group.commands[token]
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
            param._usage_display_name = lambda shown=shown: shown  # typer's own wraps it in {}
            param.named = True


class GhostGroup(TyperGroup):
    """Runs the command in non-standalone mode and turns every failure into one line and an exit status."""

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


app.add_typer(agent.app, name="agent")
app.add_typer(payment.app, name="payment")
app.add_typer(escrow.app, name="escrow")
app.add_typer(config.app, name="config")
app.add_typer(localnet.app, name="localnet")
app.add_typer(indexer_app, name="indexer")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(facilitator.app, name="facilitator")
app.add_typer(x402.app, name="x402")
app.command("mcp")(mcp.serve)
app.add_typer(tokens.app, name="tokens")
app.command()(wallet.keygen)
app.command()(wallet.address)
app.command()(wallet.balance)
misc.register(app)
analytics.register(app)

__all__ = ["app", "CliError"]

if __name__ == "__main__":
    app()
