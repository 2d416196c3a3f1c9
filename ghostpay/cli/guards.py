"""Spending guards from the config file: the `x402.*` settings (`ghost config set x402.daily_budget 5`).

Every key takes an optional `.MINT` suffix (an address or a token label) that sets it for one mint
only: `ghost config set x402.daily_budget.USDC 5`. They live in the config file's `[x402]` table.
A label is resolved on the cluster a payment is made on (`ghostpay.token_labels`): "USDC" guards the
USDC of that cluster, and on a cluster without the label every payment is refused, naming the key.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import typer

from ghostpay.cli.errors import CliError

if TYPE_CHECKING:
    from ghostpay.cli.context import State
    from ghostpay.exceptions import UnknownTokenLabel
    from ghostpay.spending import GuardedWallet, Spend, SpendingGuards

TABLE = "x402"
AMOUNTS = {"max_price": "per_call", "hourly_budget": "hourly", "daily_budget": "daily", "total_budget": "total"}
LISTS = ("allowed_mints", "allowed_sellers", "blocked_sellers")
INTEGERS = ("calls_per_minute",)
CONFIRM = "confirm_above"
LEDGER = "ledger"
KEYS = {
    **{k: "whole tokens, e.g. 0.05" for k in AMOUNTS},
    **{k: "comma-separated addresses" for k in LISTS},
    "calls_per_minute": "paid calls per minute",
    CONFIRM: "ask before paying more than this (whole tokens)",
    LEDGER: "the spend ledger: a SQLite file or postgresql://… URL shared by every host (GHOST_X402_LEDGER)",
}
PER_MINT = tuple(AMOUNTS)  # the keys that take a .MINT suffix


def is_guard_key(key: str) -> bool:
    return key.startswith(TABLE + ".")


def check_guard(key: str, value: str) -> tuple[str, str]:
    """(the key inside the [x402] table, the value), or a usage error naming the valid keys."""
    name = key[len(TABLE) + 1 :]
    base, _, mint = name.partition(".")
    if base not in KEYS or (mint and base not in PER_MINT):
        raise CliError(
            f"unknown setting {key!r}; x402 settings are: "
            + ", ".join(f"x402.{k}" + ("[.MINT]" if k in PER_MINT else "") for k in KEYS),
            2,
        )
    tokens = [mint] if mint else [v.strip() for v in value.split(",") if v.strip()] if base == "allowed_mints" else []
    for token in tokens:
        _check_token(token, key)
    if base in AMOUNTS or base == CONFIRM:
        _decimal(value, key)
    elif base in INTEGERS and not value.isdigit():
        raise CliError(f"{key} must be a whole number, not {value!r}", 2)
    return name, value


def _check_token(token: str, key: str) -> None:
    from ghostpay.token_labels import is_address, is_label

    if not (is_address(token) or is_label(token)):
        raise CliError(
            f"{key}: {token!r} is neither a mint address (base58, 32 bytes) nor a token label (like USDC)", 2
        )


def _decimal(value: str, key: str) -> Decimal:
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise CliError(f"{key} must be a decimal number of tokens, like 0.05, not {value!r}", 2) from None
    if not parsed.is_finite() or parsed < 0:
        raise CliError(f"{key} must be zero or positive, not {value!r}", 2)
    return parsed


def guard_settings(state: State) -> dict[str, str]:
    """The [x402] table of the config file, as strings."""
    table = state.config.get(TABLE, {})
    return {str(k): str(v) for k, v in table.items()} if isinstance(table, dict) else {}


def ledger_location(state: State) -> str | None:
    """The spend ledger the budgets are counted in: `$GHOST_X402_LEDGER`, else `x402.ledger`, else None (the
    data folder's SQLite file)."""
    from ghostpay.spend_store import LEDGER_ENV

    return os.environ.get(LEDGER_ENV) or guard_settings(state).get(LEDGER) or None


def guarded_wallet(state: State, guards: SpendingGuards) -> GuardedWallet:
    """`guards` over the configured spend ledger (`ledger_location`)."""
    from ghostpay.spending import GuardedWallet

    return GuardedWallet(guards, ledger_location(state))


def spending_guards(state: State, *, confirm_above: Decimal | None = None, confirmed: bool = False) -> SpendingGuards:
    """The config file's guards; `confirm_above` (when given) replaces `x402.confirm_above`, and above it the
    user is asked on the terminal. `confirmed` (`--yes`): the user agreed in advance, nobody is asked.
    Token labels stay labels: the SDK resolves them on the cluster it pays on (`resolve_labels` does it now)."""
    from ghostpay.spending import Limits, SpendingGuards

    settings = guard_settings(state)
    defaults: dict[str, Any] = {}
    per_mint: dict[str, dict[str, Decimal]] = {}
    for name, value in settings.items():
        base, _, mint = name.partition(".")
        key = f"{TABLE}.{name}"
        if base in AMOUNTS:
            if mint:
                per_mint.setdefault(mint, {})[AMOUNTS[base]] = _decimal(value, key)
            else:
                defaults[AMOUNTS[base]] = _decimal(value, key)
        elif base in LISTS:
            items = [v.strip() for v in value.split(",") if v.strip()]
            defaults[base] = frozenset(items)
        elif base == "calls_per_minute":
            defaults[base] = int(value)
        elif base == CONFIRM:
            defaults[CONFIRM] = _decimal(value, key)
    if confirm_above is not None:
        defaults[CONFIRM] = confirm_above
    if confirmed:
        defaults.pop(CONFIRM, None)
    return SpendingGuards(
        mint_limits={m: Limits(**v) for m, v in per_mint.items()}, confirm=ask_on_terminal(state), **defaults
    )


def resolve_labels(state: State, guards: SpendingGuards) -> SpendingGuards:
    """`guards` with their token labels resolved on the current cluster; a label it does not have is an
    error naming the setting."""
    from ghostpay.exceptions import UnknownTokenLabel

    try:
        return guards.resolved(state.labels())
    except UnknownTokenLabel as exc:
        raise unknown_guard_label(state, exc) from None


def unknown_guard_label(state: State, exc: UnknownTokenLabel) -> CliError:
    """The one line for a spending guard naming a token label this cluster does not have: the settings that
    name it, where the label does exist, and the two ways out."""
    wanted = exc.label.casefold()
    keys = [
        f"{TABLE}.{name}"
        for name, value in guard_settings(state).items()
        if name.partition(".")[2].casefold() == wanted
        or (name == "allowed_mints" and wanted in {v.strip().casefold() for v in value.split(",")})
    ]
    named = ", ".join(keys) if keys else "a spending guard (--allow-mint)"
    where = f" (it names a mint on {', '.join(exc.elsewhere)})" if exc.elsewhere else ""
    return CliError(
        f"{named} names the token {exc.label}, which is not a label on {exc.cluster}{where}: label "
        f"its mint here with 'ghost tokens add {exc.label} MINT', or remove the setting ('ghost config "
        f"unset {keys[0] if keys else 'KEY'}')"
    )


def ask_on_terminal(state: State) -> Any:
    """The confirm callback of the CLI: a y/N question on stderr; declined when stdin is no terminal."""
    from ghostpay.cli.output import format_amount, mint_symbol

    def confirm(spend: Spend) -> bool:
        if not sys.stdin.isatty():
            raise CliError(
                f"paying {format_amount(spend.amount, mint_symbol(state, spend.mint))} needs your "
                "confirmation and there is no terminal to ask: pass --yes, or --max-price to pay "
                "up to a price without asking"
            )
        who = spend.seller + (f" (agent {spend.agent})" if spend.agent else "")
        with state.paused():  # the "Calling…" spinner would be drawn over the question
            return typer.confirm(
                f"Pay {format_amount(spend.amount, mint_symbol(state, spend.mint))} to {who}"
                + (f" for {spend.url}" if spend.url else "")
                + "?",
                default=False,
                err=True,
            )

    return confirm
