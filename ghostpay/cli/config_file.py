"""The config file (`ghost config`): `$GHOST_CONFIG`, else `config.toml` in the data folder; flat string
settings, then tables (`[x402]`: the spending guards)."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from ghostpay.cli.errors import CliError
from ghostpay.paths import data_dir, private_file

CONFIG_ENV = "GHOST_CONFIG"


def config_path() -> Path:
    """`$GHOST_CONFIG`, else `config.toml` in the data folder (`ghost path`)."""
    return Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else data_dir() / "config.toml"


def read_config(path: Path | None = None) -> dict[str, Any]:
    """The config file as a dict ({} when it does not exist)."""
    path = path or config_path()
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read the config file {path}: {exc}; fix or delete it") from None


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def write_config(data: dict[str, Any], path: Path | None = None) -> Path:
    """Write flat string settings, then the tables (`[x402]`: the spending guards)."""
    path = path or config_path()
    lines = [f"{key} = {_toml_str(str(value))}" for key, value in data.items() if not isinstance(value, dict)]
    for table, values in data.items():
        if isinstance(values, dict):
            lines += ["", f"[{table}]"] + [f"{_toml_str(k)} = {_toml_str(str(v))}" for k, v in values.items()]
    private_file(path).write_text("\n".join(lines) + "\n")
    return path
