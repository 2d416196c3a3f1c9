"""Questions on a terminal: answers checked and asked again, irreversible steps confirmed (or `--yes`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from ghostpay.cli.context import State


def checked(parse: Any) -> Any:
    """A prompt's value_proc: the answer if `parse` accepts it, else the reason and the question again."""

    def proc(value: str) -> Any:
        parse(value)  # typer.BadParameter (a click UsageError) makes click print it and ask again
        return value

    return proc


def confirm_irreversible(st: State, yes: bool, question: str, command: str) -> None:
    """Ask on a terminal; without one (a script, a pipe), require --yes rather than go ahead silently."""
    if yes:
        return
    if st.json or not sys.stdin.isatty():
        raise typer.BadParameter(f"'{command}' cannot be undone: pass --yes to confirm (stdin is not a terminal)")
    if not typer.confirm(question, default=False):
        raise typer.Abort()
