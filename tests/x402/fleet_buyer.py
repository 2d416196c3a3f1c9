"""One buyer process of a fleet: `python -m tests.x402.fleet_buyer RPC KEYPAIR LEDGER URL CALLS DAILY_TOKENS
[TTL]` makes CALLS concurrent paid GETs of URL under a daily budget counted in LEDGER (a file or
postgresql:// URL) and prints {"paid": n, "refused": n, "errors": [...]} as JSON on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal

from ghostpay.client import GhostPayClient
from ghostpay.exceptions import BudgetExceeded
from ghostpay.spending import RESERVATION_TTL, GuardedWallet, SpendingGuards, SpendLedger
from ghostpay.x402 import x402_http


async def main(rpc: str, keypair: str, ledger: str, url: str, calls: int, daily: str, ttl: float) -> dict:
    guarded = GuardedWallet(SpendingGuards(daily=Decimal(daily)), SpendLedger(ledger, reservation_ttl=ttl))
    async with GhostPayClient(rpc, keypair) as gp, x402_http(gp, guards=guarded) as http:
        results = await asyncio.gather(*(http.get(url) for _ in range(calls)), return_exceptions=True)
    return {
        "paid": sum(1 for r in results if not isinstance(r, BaseException) and r.status_code == 200),
        "refused": sum(1 for r in results if isinstance(r, BudgetExceeded)),
        "errors": [repr(r) for r in results if isinstance(r, BaseException) and not isinstance(r, BudgetExceeded)],
    }


if __name__ == "__main__":
    rpc, keypair, ledger, url, calls, daily, *rest = sys.argv[1:]
    ttl = float(rest[0]) if rest else RESERVATION_TTL
    print(json.dumps(asyncio.run(main(rpc, keypair, ledger, url, int(calls), daily, ttl))), flush=True)
