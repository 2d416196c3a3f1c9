"""`ghost config get|set|unset|path`: GhostPay's own settings file (TOML)."""

from __future__ import annotations

import typer

from ghostpay.cli.config_file import config_path, read_config, write_config
from ghostpay.cli.context import ENV, CliError, check_setting, state
from ghostpay.cli.guards import TABLE as GUARDS, check_guard, guard_settings, is_guard_key
from ghostpay.cli.output import emit, table

app = typer.Typer(
    help="Read and write the ghost config file (settings under the command-line options and "
    "GHOST_* variables, and the x402.* spending guards).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
KEY_HELP = f"One of: {', '.join(ENV)}, or an x402.* spending guard (e.g. x402.daily_budget, see 'ghost x402 spending')."


@app.command()
def path(ctx: typer.Context) -> None:
    """Print the config file's path (GHOST_CONFIG moves it).

    Example: ghost config path
    """
    emit(state(ctx), {"path": str(config_path())}, lambda out: out.print(str(config_path())))


@app.command()
def get(ctx: typer.Context, key: str | None = typer.Argument(None, help=KEY_HELP)) -> None:
    """Show one setting, or every setting with where its value comes from.

    Example: ghost config get url
    """
    st = state(ctx)
    settings = st.settings
    guards = guard_settings(st)
    if key is not None and is_guard_key(key):
        name, _ = check_guard(key, "0")
        found = guards.get(name)
        emit(st, {key: found, "source": "default" if found is None else "config"}, lambda out: out.print(found or ""))
        return
    if key is not None:
        if key not in ENV:
            raise CliError(f"unknown setting {key!r}; settings are: {', '.join(ENV)}", 2)
        value = getattr(settings, key)
        emit(st, {key: value, "source": settings.sources[key]}, lambda out: out.print("" if value is None else value))
        return
    data = {k: {"value": getattr(settings, k), "source": settings.sources[k], "env": ENV[k]} for k in ENV}
    emit(
        st,
        {"settings": data, GUARDS: guards, "path": str(config_path())},
        lambda out: out.print(
            table(
                ["setting", "value", "from", "environment variable"],
                [(k, "" if v["value"] is None else v["value"], v["source"], v["env"]) for k, v in data.items()]
                + [(f"{GUARDS}.{k}", v, "config", "") for k, v in guards.items()],
                title=f"ghost settings ({config_path()})",
            )
        ),
    )


@app.command("set")
def set_(ctx: typer.Context, key: str = typer.Argument(..., help=KEY_HELP), value: str = typer.Argument(...)) -> None:
    """Save a setting in the config file.

    Example: ghost config set url devnet, or ghost config set x402.daily_budget 5   (a spending guard: 5
    tokens a day, every mint)
    """
    data = read_config()
    if is_guard_key(key):
        name, value = check_guard(key, value)
        data.setdefault(GUARDS, {})[name] = value
    else:
        data[key] = check_setting(key, value)
    where = write_config(data)
    emit(state(ctx), {key: value, "path": str(where)}, lambda out: out.print(f"{key} = {value}  ({where})"))


@app.command()
def unset(ctx: typer.Context, key: str = typer.Argument(..., help=KEY_HELP)) -> None:
    """Remove a setting from the config file (back to its default).

    Example: ghost config unset url
    """
    data = read_config()
    if is_guard_key(key):
        data.get(GUARDS, {}).pop(check_guard(key, "0")[0], None)
    elif key not in ENV:
        raise CliError(f"unknown setting {key!r}; settings are: {', '.join(ENV)}", 2)
    else:
        data.pop(key, None)
    where = write_config(data)
    emit(state(ctx), {key: None, "path": str(where)}, lambda out: out.print(f"{key} unset  ({where})"))
