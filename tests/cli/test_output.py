"""Rendering helpers: explorer links per cluster, exact amounts, JSON of SDK values; parsing of values."""

from __future__ import annotations

from decimal import Decimal

import pytest
import typer

from ghostpay.cli import params
from ghostpay.cli.indexed import db_url
from ghostpay.cli.output import explorer_url, format_amount, jsonable

SIG = "5s67TKSC2YHfjFWiUBvRtGsZxsjvDqczNbW53i4AyRGNySJVzBsVS9Uij1Xj2KaGj6J2HRbNqX1utaunT79zZ4aJ"


def test_explorer_links() -> None:
    assert explorer_url("tx", SIG, "https://api.mainnet-beta.solana.com") == f"https://explorer.solana.com/tx/{SIG}"
    assert (
        explorer_url("address", "Abc", "https://api.devnet.solana.com")
        == "https://explorer.solana.com/address/Abc?cluster=devnet"
    )
    assert (
        explorer_url("tx", SIG, "http://127.0.0.1:8899")
        == f"https://explorer.solana.com/tx/{SIG}?cluster=custom&customUrl=http%3A%2F%2F127.0.0.1%3A8899"
    )


@pytest.mark.parametrize(
    "amount, text",
    [
        (Decimal("0.010000"), "0.01 USDC"),
        (Decimal("1234.500000"), "1,234.50 USDC"),
        (Decimal("0.000001"), "0.000001 USDC"),
        (Decimal("5"), "5 USDC"),
        (Decimal("2.000000"), "2.00 USDC"),
    ],
)
def test_amounts_are_exact(amount, text) -> None:
    assert format_amount(amount, "USDC") == text


def test_json_values() -> None:
    from solders.pubkey import Pubkey

    key = Pubkey.default()
    assert jsonable({"k": key, "d": Decimal("0.010000"), "b": b"\x01\x02", "l": (1, key)}) == {
        "k": str(key),
        "d": "0.010000",
        "b": "0102",
        "l": [1, str(key)],
    }


def test_value_parsing() -> None:
    assert params.amount("0.01") == Decimal("0.01") and params.amount("1_000") == Decimal(1000)
    for bad in ("-1", "abc", "0", "nan", "inf"):
        with pytest.raises(typer.BadParameter):
            params.amount(bad)
    assert params.min_reputation("85%") == 8500 and params.min_reputation("7000") == 7000
    assert params.basis_points("12.5%", "--x") == 1250
    with pytest.raises(typer.BadParameter):
        params.basis_points("0.5", "--x")
    assert params.duration("7d", "--d") == 604_800 and params.duration("90", "--d") == 90
    assert params.capabilities(["a, b", "c"]) == ["a", "b", "c"]
    assert db_url("x.db").startswith("sqlite:////") and db_url("postgresql://h/d") == "postgresql://h/d"
