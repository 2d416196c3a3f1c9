"""Parsing and checking command-line values before anything is sent: a bad value is a usage error
(exit status 2) naming the option. Limits come from the IDL's constants; solders is imported only
when a value is actually parsed, never by `--help`."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar, Union

import typer

if TYPE_CHECKING:
    from datetime import datetime, timedelta
    from pathlib import Path

    from solders.pubkey import Pubkey

    from ghostpay.cli.context import State

AgentArg = Union["Pubkey", str]
Choice = TypeVar("Choice", bound=str)


@lru_cache(maxsize=1)
def limits() -> dict[str, int]:
    """The IDL's numeric constants (MAX_NAME_LEN, MAX_ACCEPTED_TOKENS, ...)."""
    from ghostpay.artifacts import idl_dict

    return {
        c["name"]: int(c["value"])
        for c in idl_dict().get("constants", [])
        if c["type"] in ("u8", "u16", "u32", "u64", "i64")
    }


def pubkey(value: str, what: str = "public key") -> Pubkey:
    from solders.pubkey import Pubkey

    try:
        key = Pubkey.from_string(value.strip())
    except Exception:  # noqa: BLE001 - solders raises ValueError for bad base58 or length
        raise typer.BadParameter(f"{value!r} is not a valid {what} (base58, 32 bytes)") from None
    return key


def looks_like_pubkey(value: str) -> bool:
    import based58

    try:
        return len(based58.b58decode(value.encode())) == 32
    except Exception:  # noqa: BLE001 - not base58
        return False


def agent_ref(value: str) -> AgentArg:
    """An agent's address, or the agent_id of one of the wallet's agents; text too long for an agent_id
    that is no valid address is refused as a malformed address (the SDK's rule, `looks_like_address`)."""
    value = value.strip()
    if looks_like_pubkey(value):
        return pubkey(value, "agent address")
    maximum = limits()["MAX_AGENT_ID_LEN"]
    if len(value.encode()) > maximum and all(c.isascii() and c.isalnum() for c in value):
        raise typer.BadParameter(
            f"{value!r} is not a valid agent address (base58, 32 bytes), nor an agent_id (at most {maximum} bytes)"
        )
    check_len(value, "agent_id", "MAX_AGENT_ID_LEN", minimum=1)
    return value


def token(state: State, value: str, option: str = "token") -> Pubkey:
    """A mint address, or a token label of the current cluster (see `token_address`)."""
    return pubkey(token_address(state, value, option), "token mint")


def token_address(state: State, value: str, option: str = "token") -> str:
    """A mint address, or a token label of the current cluster (`ghost tokens list`), as base58 text (checked
    without importing solders: an indexed search needs no Pubkey); a label the cluster does not have is a usage
    error saying where it does name a mint and how to label one here."""
    text = value.strip()
    if looks_like_pubkey(text):
        return text
    from ghostpay.token_labels import is_label

    if not is_label(text):
        raise typer.BadParameter(
            f"{option} {value!r} is neither a mint address (base58, 32 bytes) nor a token label (like USDC)"
        )
    labels = state.labels()
    found = labels.find(text)
    if found is None:
        raise typer.BadParameter(str(labels.unknown(text, option)))
    return str(found.mint)


def token_prices(state: State, values: Sequence[str], price: str | None = None) -> dict[Pubkey, Decimal]:
    """Accepted mints and their price per call, each in whole units of its own mint (its decimals are read
    from the chain when the transaction is built): `USDC=0.01,EURC=0.0095` (repeated and/or comma-separated),
    or one mint with `--price`. 1 to 10 distinct mints."""
    items = [part.strip() for value in values for part in value.split(",") if part.strip()]
    maximum = limits()["MAX_ACCEPTED_TOKENS"]
    if not items:
        raise typer.BadParameter("give at least one token and its price (--tokens USDC=0.01[,EURC=0.01...])")
    if len(items) > maximum:
        raise typer.BadParameter(f"at most {maximum} accepted tokens, got {len(items)}")
    if price is not None:
        if len(items) != 1 or "=" in items[0]:
            raise typer.BadParameter(
                "--price prices a single token; give each token its own price instead: --tokens USDC=0.01,EURC=0.01"
            )
        prices = {token(state, items[0], "--tokens"): amount(price, "--price", token=items[0])}
    else:
        unpriced = [item for item in items if "=" not in item]
        if unpriced:
            raise typer.BadParameter(
                f"no price for {', '.join(unpriced)}: write --tokens {unpriced[0]}=0.01 "
                "(whole tokens), or --price P with a single token"
            )
        prices = {}
        for item in items:
            label, _, value = item.partition("=")
            prices[token(state, label, "--tokens")] = amount(value, f"the price of {label.strip()}", token=label)
    if len(prices) != len(items):
        raise typer.BadParameter("the accepted tokens must be distinct")
    return prices


USD_STABLECOINS = ("USDC", "USDT", "PYUSD")  # labels whose whole token is a dollar: `$0.01` may price them


def amount(value: str, what: str = "amount", *, allow_zero: bool = False, token: str | None = None) -> Decimal:
    """A non-negative decimal number of whole tokens (never a float); `$0.01` when `token` (as typed) is a USD
    stablecoin."""
    text = value.strip()
    if text.startswith("$"):
        if token is None:
            raise typer.BadParameter(
                f"{what} in dollars ({value}) needs the token it is paid in: a USD stablecoin, e.g. --token USDC"
            )
        if token.strip().upper() not in USD_STABLECOINS:
            raise typer.BadParameter(
                f"{what} in dollars ({value}) is for USD stablecoins ({', '.join(USD_STABLECOINS)})"
                f", not {token.strip()}: give it in whole {token.strip()} tokens"
            )
        text = text[1:]
    try:
        parsed = Decimal(text.replace("_", ""))
    except InvalidOperation:
        raise typer.BadParameter(f"{what} must be a decimal number of tokens, like 0.01, not {value!r}") from None
    if not parsed.is_finite():
        raise typer.BadParameter(f"{what} must be a finite number, not {value!r}")
    if parsed < 0 or (parsed == 0 and not allow_zero):
        raise typer.BadParameter(f"{what} must be {'zero or ' if allow_zero else ''}positive, not {value}")
    return parsed


def in_token_range(value: Decimal, decimals: int, limit: str, option: str, symbol: str) -> None:
    """Refuse (usage error) an amount outside the program's MIN_<limit>..MAX_<limit> atomic units, saying the
    bounds in whole tokens of the mint."""
    from ghostpay.cli.errors import CliError
    from ghostpay.cli.output import format_amount

    low, high = limits()[f"MIN_{limit}"], limits()[f"MAX_{limit}"]
    atomic = value.scaleb(decimals)
    if atomic != atomic.to_integral_value():
        return  # more decimals than the mint has: the SDK says exactly that
    if not low <= atomic <= high:
        raise CliError(
            f"{option} must be between {format_amount(Decimal(low).scaleb(-decimals), symbol)} and "
            f"{format_amount(Decimal(high).scaleb(-decimals), symbol)}, not {value}",
            2,
        )


def check_len(value: str, what: str, limit: str, minimum: int = 0) -> str:
    size = len(value.encode())
    maximum = limits()[limit]
    if size < minimum:
        raise typer.BadParameter(f"{what} must not be empty")
    if size > maximum:
        raise typer.BadParameter(f"{what} is at most {maximum} bytes, got {size}")
    return value


def capabilities(values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    items = [part.strip() for value in values for part in value.split(",") if part.strip()]
    maximum = limits()["MAX_CAPABILITIES"]
    if len(items) > maximum:
        raise typer.BadParameter(f"at most {maximum} capabilities, got {len(items)}")
    for item in items:
        check_len(item, f"capability {item!r}", "MAX_CAPABILITY_LEN", minimum=1)
    return items


def endpoint(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise typer.BadParameter(f"the endpoint must be an http:// or https:// URL, not {value!r}")
    return check_len(value, "the endpoint", "MAX_ENDPOINT_LEN")


def reference(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise typer.BadParameter(f"a payment reference is 64 hex digits, not {value!r}")
    return raw


def min_reputation(value: str | None) -> int | None:
    """Basis points (0-10,000), or a percentage like `85%`."""
    return None if value is None else basis_points(value, "--min-reputation")


def choice(value: str, choices: Sequence[Choice], option: str) -> Choice:
    """`value`, typed as the one of `choices` it equals (a Literal's, say)."""
    for known in choices:
        if known == value:
            return known
    raise typer.BadParameter(f"{option} must be one of {', '.join(choices)}, not {value!r}")


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def duration(value: str, what: str, limit: str | None = None) -> int:
    """Seconds from `90`, `90s`, `30m`, `12h`, `7d` or `2w`; within MIN_<limit>..MAX_<limit> when given."""
    text = value.strip().lower()
    unit = DURATION_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    if not number.isdigit():
        raise typer.BadParameter(f"{what} is a duration like 3600, 30m, 12h or 7d, not {value!r}")
    seconds = int(number) * (unit or 1)
    if limit is not None:
        low, high = limits()[f"MIN_{limit}"], limits()[f"MAX_{limit}"]
        if not low <= seconds <= high:
            raise typer.BadParameter(
                f"{what} must be between {low:,} s ({low // 60} minute) and {high:,} s "
                f"({high // 86_400} days), not {value}"
            )
    return seconds


def deadline(value: str) -> int | datetime | timedelta:
    """A deadline: a duration from now (`7d`, returned as a timedelta), an ISO date-time with a time zone,
    or unix seconds."""
    from datetime import datetime, timedelta

    text = value.strip()
    if text[-1:].lower() in DURATION_UNITS and text[:-1].isdigit():
        return timedelta(seconds=duration(text, "--deadline"))
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"--deadline is a duration from now (7d), an ISO date-time with a zone "
            f"(2026-12-01T12:00Z) or unix seconds, not {value!r}"
        ) from None
    if moment.tzinfo is None:
        raise typer.BadParameter("--deadline needs a time zone, e.g. 2026-12-01T12:00:00+00:00")
    return moment


def basis_points(value: str, option: str) -> int:
    """Whole basis points (0-10,000), or a percentage like `30%` or `12.5%`."""
    text = value.strip()
    try:
        bps = Decimal(text[:-1]) * 100 if text.endswith("%") else Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{option} is basis points (0-10000) or a percentage, not {value!r}") from None
    if not 0 <= bps <= 10_000 or bps != bps.to_integral_value():
        raise typer.BadParameter(f"{option} is 0 to 10,000 whole basis points (0% to 100%)")
    return int(bps)


def bearer_token(token_file: Path | None, env: str) -> str | None:
    """A bearer token: the first line of `token_file`, else `$env`, else None. Never a command-line value:
    every user of the machine sees those in `ps`."""
    import os

    if token_file is None:
        return os.environ.get(env) or None
    try:
        lines = token_file.expanduser().read_text().splitlines()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read --token-file {token_file}: {exc.strerror or exc}") from None
    if not lines or not lines[0].strip():
        raise typer.BadParameter(f"--token-file {token_file} is empty; write the token on its first line")
    return lines[0].strip()
