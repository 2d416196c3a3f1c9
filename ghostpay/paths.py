"""Where GhostPay keeps local state (ledgers, databases, keys)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "GHOSTPAY_HOME"


def data_dir() -> Path:
    """`$GHOSTPAY_HOME`, else `$XDG_DATA_HOME/ghostpay`, else `~/.local/share/ghostpay`."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "ghostpay"
