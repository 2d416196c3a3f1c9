"""Rendering: rich tables and panels in text mode, one JSON document in JSON mode; amounts with the
mint's decimals and symbol; keys and signatures in base58 with Solana Explorer links."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

if TYPE_CHECKING:  # rich is imported where text is rendered: a JSON answer never loads it
    from rich.console import Console
    from rich.table import Table

    from ghostpay.cli.context import State

EXPLORER = "https://explorer.solana.com"
DEVNET_HOSTS = ("api.devnet.solana.com",)
MAINNET_HOSTS = ("api.mainnet-beta.solana.com",)

PIPE_WIDTH = 200  # piped or captured output: wide enough that keys, signatures and links are never broken


def make_console() -> Console:
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH, soft_wrap=False)


class _LazyConsole:
    """The stdout console, made at first use (CliRunner swaps sys.stdout per invocation)."""

    def __getattr__(self, name: str) -> object:
        return getattr(make_console(), name)


console = cast("Console", _LazyConsole())  # it forwards every attribute to a Console made when first used


def explorer_url(kind: str, value: object, rpc_url: str) -> str:
    """The Solana Explorer page of an address (`kind="address"`) or a transaction (`"tx"`) on `rpc_url`'s
    cluster: `?cluster=devnet`, nothing for mainnet, `?cluster=custom&customUrl=…` for anything else."""
    host = rpc_url.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    if host in MAINNET_HOSTS:
        suffix = ""
    elif host in DEVNET_HOSTS:
        suffix = "?cluster=devnet"
    else:
        suffix = f"?cluster=custom&customUrl={quote(rpc_url, safe='')}"
    return f"{EXPLORER}/{kind}/{value}{suffix}"


def jsonable(value: Any) -> Any:
    """Plain JSON: keys and signatures as base58, Decimal as an exact string, bytes as hex."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    return str(value)  # Pubkey, Signature, Hash


def whole(atomic: int, decimals: int) -> Decimal:
    """Atomic units as whole tokens, exactly (ghostpay.tokens.from_atomic without importing the Solana
    stack, so indexer-backed commands stay light)."""
    return Decimal(atomic).scaleb(-decimals)


def format_amount(amount: Decimal, symbol: str = "") -> str:
    """`1,234.5 USDC`: exact, trailing zeros dropped but at least two places when the mint has them."""
    exponent = amount.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    text = format(amount.normalize(), ",f")
    shown = len(text.split(".")[1]) if "." in text else 0
    if shown < min(2, places):
        text = format(amount.quantize(Decimal(1).scaleb(-min(2, places))), ",f")
    return f"{text} {symbol}".rstrip()


def span(seconds: int) -> str:
    """A duration as people say it: `3 days`, `1 day 12 h`, `45 min`, `90 s` (at most two units).

    >>> [span(s) for s in (259_200, 129_600, 2_700, 90, 3_661)]
    ['3 days', '1 day 12 h', '45 min', '1 min 30 s', '1 h 1 min']
    """
    parts, rest = [], seconds
    for size, one, many in ((86_400, "day", "days"), (3_600, "h", "h"), (60, "min", "min"), (1, "s", "s")):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {one if count == 1 else many}")
    return " ".join(parts[:2]) or "0 s"


def short(key: object) -> str:
    from ghostpay.token_labels import short as shortened

    return shortened(str(key))


def mint_symbol(state: State, mint: object) -> str:
    """A mint's token label on the current cluster (`ghost tokens list`), else its short address; without
    labels (the RPC cannot say which cluster it is) the short address."""
    key = str(mint)
    labels = state.labels_if_known()
    return (labels.label(key) if labels is not None else None) or short(key)


def emit(state: State, data: Any, render: Callable[[Console], None] | None = None) -> None:
    """Print `data` as one JSON document (JSON mode) or call `render` with the console (text mode)."""
    if state.json:
        print(json.dumps(jsonable(data), indent=2))
    elif render is not None:
        render(console)


def key_value_table(rows: Iterable[tuple[str, object]], title: str | None = None) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=title, show_header=False, box=box.SIMPLE, title_justify="left", pad_edge=False)
    table.add_column("field", style="bold cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in rows:
        table.add_row(
            name,
            value
            if isinstance(value, str)
            else ", ".join(map(str, value))
            if isinstance(value, (list, tuple))
            else str(value),
        )
    return table


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None) -> Table:
    from rich import box
    from rich.table import Table

    out = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*(v if isinstance(v, str) else str(v) for v in row))
    return out


def tx_data(
    state: State, action: str, signature: object, compute_units: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A confirmed transaction as JSON: what was done, signature, explorer link, CU, and more fields."""
    known = signature is not None  # None: an earlier run's transaction the node no longer reports
    return {
        "action": action,
        "signature": str(signature) if known else None,
        "explorer": explorer_url("tx", signature, state.rpc_url) if known else None,
        "compute_units": compute_units,
        **extra,
    }


def print_tx(state: State, data: dict[str, Any], rows: Sequence[tuple[str, object]] = ()) -> None:
    """Emit a confirmed transaction: a panel in text mode, the dict in JSON mode."""

    def render(out: Console) -> None:
        lines = list(rows) + [(k, data[k]) for k in ("signature", "explorer") if data[k] is not None]
        if data.get("compute_units") is not None:
            lines.append(("compute units", f"{data['compute_units']:,}"))
        out.print(key_value_table(lines, title=f"[green]✔[/green] {data['action']}"))

    emit(state, data, render)


def done(state: State, message: str, data: dict[str, Any]) -> None:
    """A one-line success message in text mode, `data` in JSON mode."""
    emit(state, data, lambda out: out.print(message))
