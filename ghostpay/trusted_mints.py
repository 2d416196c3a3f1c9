"""Trusted mints: the tokens whose payments count as evidence that an agent is worth paying.

A payment in a mint anyone can create (`ghost test-mint`, a fresh SPL mint) costs its payer nothing, so the
indexer's evidence and trust score count only payments in trusted mints. By default they are the well-known
stablecoins of the network (`token_labels.WELL_KNOWN`: USDC, USDT and PYUSD on mainnet-beta, USDC on devnet),
and on any other cluster (a localnet) the test mints labelled there (`ghost test-mint --symbol`); the index's
own settings add or remove mints (`ghost indexer trust --add/--remove`).

    >>> from ghostpay.token_labels import MAINNET_GENESIS
    >>> sorted(m.label for m in default_trusted_mints(MAINNET_GENESIS, "/nonexistent/labels.json"))
    ['PYUSD', 'USDC', 'USDT']

This module needs only the standard library (the CLI's indexed search reads it without SQLAlchemy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ghostpay.token_labels import NETWORKS, WELL_KNOWN, TokenLabels

STABLECOIN_DECIMALS = 6  # USDC, USDT and PYUSD on Solana


@dataclass(frozen=True)
class TrustedMint:
    """A mint whose payments count, with its label and decimals (None: not known here; the indexer asks the RPC)."""

    mint: str
    label: str | None = None
    decimals: int | None = None


def default_trusted_mints(genesis_hash: str | None, labels_path: Path | str | None = None) -> list[TrustedMint]:
    """The trusted mints of a cluster before any setting: its well-known stablecoins on a public network, the
    test mints labelled on it otherwise (a localnet), none while the cluster is unknown."""
    if genesis_hash is None:
        return []
    if genesis_hash in NETWORKS:
        return [TrustedMint(mint, label, STABLECOIN_DECIMALS) for label, mint in WELL_KNOWN[genesis_hash].items()]
    labels = TokenLabels(labels_path).cluster(genesis_hash)
    return [TrustedMint(mint, label) for label, mint in labels.test_mints().items()]


def effective_trusted_mints(
    defaults: Iterable[TrustedMint], added: Iterable[TrustedMint], removed: Iterable[str]
) -> dict[str, TrustedMint]:
    """mint -> TrustedMint: the defaults plus the mints added, minus those removed (a removal wins)."""
    out = {m.mint: m for m in defaults}
    for extra in added:
        known = out.get(extra.mint)
        out[extra.mint] = TrustedMint(
            extra.mint,
            extra.label or (known.label if known else None),
            extra.decimals if extra.decimals is not None else (known.decimals if known else None),
        )
    for mint in removed:
        out.pop(mint, None)
    return out


__all__ = ["STABLECOIN_DECIMALS", "TrustedMint", "default_trusted_mints", "effective_trusted_mints"]
