"""`ghost config get|set|unset|path`: GhostPay's own settings file (TOML)."""

from __future__ import annotations

from typing import Optional

import typer

from ghostpay.cli.context import ENV, CliError, check_setting, config_path, read_config, state, \
    write_config
from ghostpay.cli.output import emit, table

app = typer.Typer(help="Read and write the ghost config file (settings under the command-line options and "
                       "GHOST_* variables).", no_args_is_help=True,
                  rich_markup_mode=None)


@app.command()
def path(ctx: typer.Context) -> None:
    """Print the config file's path (GHOST_CONFIG moves it).

    Example: ghost config path
    """
    emit(state(ctx), {"path": str(config_path())}, lambda out: out.print(str(config_path())))


@app.command()
def get(ctx: typer.Context, key: Optional[str] = typer.Argument(None, help=f"One of: {', '.join(ENV)}.")) -> None:
    """Show one setting, or every setting with where its value comes from.

    Example: ghost config get url
    """
    st = state(ctx)
    settings = st.settings
    if key is not None:
        if key not in ENV:
            raise CliError(f"unknown setting {key!r}; settings are: {', '.join(ENV)}", 2)
        value = getattr(settings, key)
        emit(st, {key: value, "source": settings.sources[key]}, lambda out: out.print("" if value is None else value))
        return
    data = {k: {"value": getattr(settings, k), "source": settings.sources[k], "env": ENV[k]} for k in ENV}
    tokens = read_config().get("tokens", {})
    emit(st, {"settings": data, "tokens": tokens, "path": str(config_path())}, lambda out: out.print(
        table(["setting", "value", "from", "environment variable"],
              [(k, "" if v["value"] is None else v["value"], v["source"], v["env"]) for k, v in data.items()],
              title=f"ghost settings ({config_path()})")))


@app.command("set")
def set_(ctx: typer.Context, key: str = typer.Argument(..., help=f"One of: {', '.join(ENV)}."),
         value: str = typer.Argument(...)) -> None:
    """Save a setting in the config file.

    Example: ghost config set url devnet
    """
    check_setting(key, value)
    data = read_config()
    data[key] = value
    where = write_config(data)
    emit(state(ctx), {key: value, "path": str(where)}, lambda out: out.print(f"{key} = {value}  ({where})"))


@app.command()
def unset(ctx: typer.Context, key: str = typer.Argument(..., help=f"One of: {', '.join(ENV)}.")) -> None:
    """Remove a setting from the config file (back to its default).

    Example: ghost config unset url
    """
    if key not in ENV:
        raise CliError(f"unknown setting {key!r}; settings are: {', '.join(ENV)}", 2)
    data = read_config()
    data.pop(key, None)
    where = write_config(data)
    emit(state(ctx), {key: None, "path": str(where)}, lambda out: out.print(f"{key} unset  ({where})"))
