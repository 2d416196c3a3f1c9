"""The CLI's user error: every command module and helper raises it; `ghost` prints it as one line."""

from __future__ import annotations


class CliError(Exception):
    """A user error: one line on stderr and exit status 1 (2 for `usage=True`)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
