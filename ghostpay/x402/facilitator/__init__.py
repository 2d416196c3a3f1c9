"""GhostPay's x402 facilitator: the official exact-SVM facilitator logic behind the guards a public fee payer
needs, served over HTTP.

- `settings`: `FacilitatorSettings`, what `ghost facilitator start` configures;
- `service`: `GhostPayFacilitator`, the official `x402Facilitator` with GhostPay's schemes registered;
- `scheme`: the official exact scheme (v2, v1) behind `guards` (fee payer, replay, rate, balance floor);
- `settle`, `store`, `confirm`, `signer`, `rpc`: the crash-safe settle, its log, confirmation by
  `signatureSubscribe`, the fee payer's signer and a lean JSON-RPC client;
- `database`: where the log, keys and quotas live: a SQLite file, or a PostgreSQL that replicas share;
- `policy`, `keys`, `defaults`: the operator's policy, seller keys and their quotas, and their defaults;
- `sweep`: the bounded sweep of legacy receipts whose rent the fee payer fronted;
- `app`: the HTTP API (Starlette); `client`: how a seller calls it (aiohttp, HMAC or bearer keys; several
  replicas in turn, with failover).

GhostPay's record extension (`record_x402_payment` after the Memo) is `ghostpay.x402.record`.
Names are imported on first use: `defaults` and `keys` stay importable without the Solana stack
(`ghost --help` shows the defaults).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "FacilitatorSettings": "settings",
    "default_db_path": "settings",
    "GhostPayFacilitator": "service",
    "PAYER_STATS_SPACE": "service",
    "GuardedScheme": "scheme",
    "Guards": "guards",
    "GUARD_REFUSALS": "guards",
    "BalanceFloor": "guards",
    "SlidingWindowLimiter": "guards",
    "SubscribingSigner": "signer",
    "Settler": "settle",
    "SettledLog": "store",
    "AssetRule": "policy",
    "FeeLimits": "policy",
    "ANY_ASSET": "policy",
    "parse_asset": "policy",
    "KeyStore": "keys",
    "KeyStoreError": "keys",
    "SellerKey": "keys",
    "ReceiptSweep": "sweep",
    "create_facilitator_app": "app",
    "AiohttpFacilitatorClient": "client",
    "FacilitatorHmacAuth": "client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
