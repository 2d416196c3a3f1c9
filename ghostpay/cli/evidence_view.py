"""The evidence and trust score of indexed agents, as `ghost agent show` and `ghost agent search` print them, and the
search's `--min-payers` / `--min-volume` filters (`ghostpay.indexer.evidence`: read from the index given by --db)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import typer

from ghostpay.cli import params
from ghostpay.cli.context import State
from ghostpay.cli.output import format_amount, mint_symbol, whole

TRUST_SCALE = 10_000


def min_volumes(st: State, given: list[str] | None, decimals: Any) -> dict[str, int] | None:
    """`--min-volume USDC=10` (repeatable) as mint -> atomic units; `decimals`: mint -> IndexedMint or None."""
    if not given:
        return None
    out = {}
    for item in given:
        token, sep, amount = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--min-volume is TOKEN=AMOUNT in whole tokens, like USDC=10, not {item!r}")
        mint = str(params.token(st, token, "--min-volume"))
        value = params.amount(amount, "--min-volume", allow_zero=True, token=token)
        found = decimals(mint)
        if found is None:
            raise typer.BadParameter(f"cannot read the decimals of {token} from {st.rpc_url}; --min-volume needs them")
        out[mint] = int(value.scaleb(found.decimals))
    return out


def _volume(st: State, mint: str, atomic: int, decimals: Any) -> str:
    found = decimals(mint)
    if found is None:
        return f"{atomic:,} atomic units of {mint_symbol(st, mint)}"
    return format_amount(whole(atomic, found.decimals), mint_symbol(st, mint))


def evidence_text(st: State, e: Any, decimals: Any) -> str:
    """`412 paid calls from 97 payers, 41.20 USDC, 30 days` (`ghostpay.indexer.evidence.describe`)."""
    from ghostpay.indexer.evidence import describe

    return "—" if e is None else describe(e, lambda mint, atomic: _volume(st, mint, atomic, decimals))


def trust_text(e: Any) -> str:
    """`73.10` (percent of the most trusted agent's trust), or `—` before the trust score is computed."""
    if e is None or e.trust_score is None:
        return "—"
    return f"{Decimal(e.trust_score) / 100:.2f}"


def evidence_json(st: State, e: Any, decimals: Any) -> dict[str, Any] | None:
    if e is None:
        return None

    def kind(k: Any) -> dict[str, Any]:
        def amount(mint: str, atomic: int) -> dict[str, Any]:
            found = decimals(mint)
            return {
                "token": mint,
                "symbol": mint_symbol(st, mint),
                "volume": whole(atomic, found.decimals) if found else None,
                "volume_atomic": atomic,
            }

        return {
            "by_mint": [{**amount(m.mint, m.volume), "calls": m.calls, "payers": m.payers} for m in k.by_mint],
            "trusted": {
                "calls": k.trusted_calls,
                "payers": k.trusted_payers,
                "volume": [amount(m, v) for m, v in k.trusted_volume.items()],
            },
        }

    return {
        "x402": kind(e.x402),
        "escrow": kind(e.escrow),
        **e.span(),
        "trust_score": e.trust_score,
        "trust_share": e.trust,
        "text": evidence_text(st, e, decimals),
    }
