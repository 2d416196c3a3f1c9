"""GhostPay's x402 facilitator: the official exact-SVM scheme behind guards a public fee payer needs.

The official `x402Facilitator` logic does the protocol (its verify checks every instruction of the
"exact" transaction, then simulates it); around each of its schemes (v2 and v1, `scheme`) this
package adds:

- a fee-payer guard (`guards`): the facilitator's key may appear in no instruction and the message may
  use no address lookup table, so its signature can only ever pay the fee of a verified payment;
- replay protection that survives restarts (`SettledLog`, `store`: SQLite, or a PostgreSQL its replicas share);
- a crash-safe settle (`settle`): simulated against the current state right before the
  send, its signature logged as pending before the send, pending rows reconciled by signature;
- a per-payer rate limit (a sliding window);
- a SOL balance floor under which it refuses to pay fees, each spend counted as it is committed;
- the operator's policy (`policy`): fee and compute-unit caps, an asset allow-list with
  minimum amounts, and per seller key (`keys`) rent fronting and quotas;
- the GhostPay extension (`ghostpay.x402.record`): `record_x402_payment` may follow the Memo, and the
  fee payer may front the rent of the buyer's PayerStats (once per buyer and agent; no account is made
  per payment); a bounded sweep (`sweep`) reclaims the rent of legacy receipts it fronted, then ends;
- confirmation by `signatureSubscribe` (`signer`, `confirm`): the websocket subscription is opened
  before the send, so the settle returns as soon as the cluster confirms (the package's signer polls
  with 1 s sleeps).

Everything here is synchronous: the HTTP app runs verify/settle in worker threads, off its event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from solana.rpc.api import Client
from solana.rpc.commitment import Confirmed
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from x402 import x402FacilitatorSync
from x402.extensions.bazaar import BAZAAR
from x402.mechanisms.svm.exact.facilitator import ExactSvmScheme
from x402.mechanisms.svm.exact.v1.facilitator import ExactSvmSchemeV1
from x402.mechanisms.svm.settlement_cache import SettlementCache
from x402.schemas import SettleResponse, SupportedResponse, VerifyResponse

from ghostpay.accounts import PayerStats
from ghostpay.artifacts import idl_dict
from ghostpay.x402.facilitator.guards import GUARD_REFUSALS, BalanceFloor, Guards, PairAccounts
from ghostpay.x402.facilitator.keys import AUTH_REFUSALS, OPERATOR, AccessGate, Caller, KeyStore
from ghostpay.x402.facilitator.policy import (
    POLICY_REFUSALS,
    AssetAllowList,
    LabelledMints,
    PaymentPolicy,
    QuotaStore,
    RefusalCounter,
    serving,
)
from ghostpay.x402.facilitator.scheme import GuardedScheme
from ghostpay.x402.facilitator.settings import FacilitatorSettings
from ghostpay.x402.facilitator.settle import Reconciling, Settler, fee_lamports
from ghostpay.x402.facilitator.signer import SubscribingSigner
from ghostpay.x402.facilitator.store import SettledLog
from ghostpay.x402.facilitator.sweep import ReceiptSweep
from ghostpay.x402.networks import network_by_id
from ghostpay.x402.record.facilitator import RecordExtension
from ghostpay.x402.record.types import EXTENSION_FRONT_RENT, FRONT_RENT_EXTENSION, RECORD_EXTENSION

PAYER_STATS_SPACE = len(PayerStats.discriminator) + PayerStats.layout.sizeof()
MAX_ACCOUNTS_PER_CALL = 100  # getMultipleAccounts
log = logging.getLogger(__name__)


class GhostPayFacilitator:
    """The official facilitator logic with GhostPay's guards; `verify`/`settle` block (run them in threads).

    At start it reconciles the settles a crash left pending, and again every few seconds. `caller` says on
    whose behalf a request comes (a seller's key, or the operator: the default for in-process use)."""

    def __init__(self, settings: FacilitatorSettings) -> None:
        self.settings = settings
        self.rpc = Client(settings.rpc_url)
        self.signer = SubscribingSigner(
            settings.keypair, settings.rpc_url, settings.ws_url, settings.confirm_timeout_seconds
        )
        self.log = SettledLog(settings.db_path)
        self.keys = KeyStore(settings.db_path)
        self.gate = AccessGate(self.keys)
        test_mints = (
            LabelledMints(settings.test_mints, str(self.rpc.get_genesis_hash().value))
            if settings.test_mints is not None
            else None
        )
        self._receipt_rent: int | None = None
        self.policy = PaymentPolicy(
            settings.fee_limits,
            AssetAllowList.for_network(settings.networks[0], settings.assets, test_mints),
            QuotaStore(self.keys.database),
            self.receipt_rent,
            self._existing,
        )
        extension = (
            RecordExtension(settings.program_id, settings.front_receipt_rent) if settings.record_extension else None
        )
        self.guards = Guards(
            {str(settings.fee_payer)},
            self.log,
            settings.rate_limit,
            settings.rate_window_seconds,
            BalanceFloor(self.rpc, settings.fee_payer, settings.min_balance_lamports),
            extension,
            self.policy,
            PairAccounts(self.rpc),
        )
        self.settler = Settler(self.signer, self.log, self.guards.floor, self.cost)
        cache = SettlementCache()  # shared by v1 and v2, as the package's register helper does
        self.x402 = x402FacilitatorSync()
        v2, v1 = set(settings.networks), {network_by_id(n).v1_name for n in settings.networks}
        self.x402.register(
            sorted(v2), GuardedScheme(ExactSvmScheme(self.signer, cache), self.guards, self.signer, self.settler, v2)
        )
        self.x402.register_v1(
            sorted(v1), GuardedScheme(ExactSvmSchemeV1(self.signer, cache), self.guards, self.signer, self.settler, v1)
        )
        if extension is not None:
            self.x402.register_extension(RECORD_EXTENSION)
            if extension.front_rent:
                self.x402.register_extension(FRONT_RENT_EXTENSION)
        if settings.discovery_refresh_seconds > 0:  # served by the app from `ghostpay.x402.bazaar`
            self.x402.register_extension(BAZAAR)
        window = next(int(c["value"]) for c in idl_dict()["constants"] if c["name"] == "FEEDBACK_WINDOW_SECONDS")
        self.sweep = ReceiptSweep(self.rpc, settings.keypair, settings.program_id, window)
        try:
            self.settler.reconcile_pending()
        except Exception as exc:  # noqa: BLE001 - the node is away: the rows wait for the next round
            log.warning("reconciling pending settles at start failed: %s", exc)
        self.reconciling = Reconciling(self.settler)
        self.on_settled: list[Callable[[Any, Any], Any]] = []  # (payload, requirements) of each settled payment

    def cost(self, tx: VersionedTransaction) -> int:
        """What settling `tx` can take from the fee payer: its fee, and the pair's PayerStats rent when this
        payment opens it at the fee payer's expense."""
        fronted = self.guards.records(tx) and self.guards.opened_by(tx) is not None
        return fee_lamports(tx.message) + (self.receipt_rent() if fronted else 0)

    @property
    def refusals(self) -> RefusalCounter:
        return self.policy.refusals

    def receipt_rent(self) -> int:
        """Lamports the fee payer fronts for one pair's PayerStats (asked of the cluster once)."""
        if self._receipt_rent is None:
            self._receipt_rent = self.rpc.get_minimum_balance_for_rent_exemption(PAYER_STATS_SPACE).value
        return self._receipt_rent

    def verify(self, payload: Any, requirements: Any, caller: Caller = OPERATOR) -> VerifyResponse:
        with serving(caller):
            result = self.x402.verify(payload, requirements)
        if not result.is_valid:
            self._refused("verify", caller, result.invalid_reason, result.invalid_message, result.payer)
        return result

    def settle(self, payload: Any, requirements: Any, caller: Caller = OPERATOR) -> SettleResponse:
        """Settle; a success is acknowledged at once (the caller holds the answer)."""
        result = self.settle_unacknowledged(payload, requirements, caller)
        if result.success:
            self.settler.acknowledge(result.transaction)
        return result

    def settle_unacknowledged(self, payload: Any, requirements: Any, caller: Caller = OPERATOR) -> SettleResponse:
        """Settle, leaving a success to `settler.acknowledge` once its answer is handed over (or to
        `settler.unanswered` if it is lost): a crash before then leaves the payment answerable by a retry."""
        with serving(caller) as ticket:
            result = self.x402.settle(payload, requirements)
        self.policy.settled(ticket, result)
        if not result.success:
            self._refused("settle", caller, result.error_reason, result.error_message, result.payer)
            return result
        for hook in self.on_settled:
            try:
                hook(payload, requirements)
            except Exception:  # the payment landed: its answer must reach the seller whatever a hook does
                log.exception("an on_settled hook failed")
        return result

    def _refused(self, method: str, caller: Caller, reason: str | None, message: str | None, payer: str | None) -> None:
        self.refusals.count(reason or "unknown")
        log.info("%s refused for %s (payer %s): %s: %s", method, caller.name, payer or "?", reason, message)

    def supported(self, caller: Caller = OPERATOR) -> SupportedResponse:
        """The kinds, and the extensions this caller gets: rent fronting only when its key allows it."""
        answer = self.x402.get_supported()
        extensions = [e for e in answer.extensions if e != EXTENSION_FRONT_RENT or caller.may_front_rent]
        return answer.model_copy(update={"extensions": extensions + self.policy.summary()})

    def policy_document(self, caller: Caller = OPERATOR) -> dict[str, Any]:
        """GET /policy: every rule by which a request or payment is refused, and the caller's terms."""
        settings = self.settings
        return {
            "auth": {"mode": self.gate.mode(), "schemes": ["Bearer", "GhostPay-HMAC-SHA256"]},
            "caller": caller.name,
            **self.policy.document(caller),
            "rentFronting": {
                "enabled": settings.record_extension and settings.front_receipt_rent,
                "forCaller": caller.may_front_rent and settings.front_receipt_rent,
            },
            "rateLimit": {"perPayer": settings.rate_limit, "windowSeconds": settings.rate_window_seconds},
            "minBalanceLamports": settings.min_balance_lamports,
            "refusals": {**AUTH_REFUSALS, **GUARD_REFUSALS, **POLICY_REFUSALS},
        }

    def health(self) -> dict[str, Any]:
        balance = self.guards.floor.balance()
        return {
            "status": "ok" if balance >= self.guards.floor.floor else "balance_low",
            "feePayer": str(self.settings.fee_payer),
            "balanceLamports": balance,
            "minBalanceLamports": self.guards.floor.floor,
            "networks": list(self.settings.networks),
            "auth": self.gate.mode(),
            "settled": self.log.count(),
            "pendingSettles": len(self.log.pending()),
            "refusals": self.refusals.snapshot(),
            "extensions": self.supported().extensions,
            "receiptsClosed": self.sweep.closed,
            "rentReclaimedLamports": self.sweep.reclaimed_lamports,
        }

    def sweep_once(self) -> None:
        """Close the receipts whose rent may come back; the sellers' outstanding rent follows."""
        swept = self.sweep.run_once()
        self.policy.reconcile_rent([str(r.address) for r in swept], self._existing)

    def _existing(self, addresses: list[str]) -> list[bool]:
        found: list[bool] = []
        for start in range(0, len(addresses), MAX_ACCOUNTS_PER_CALL):
            batch = [Pubkey.from_string(a) for a in addresses[start : start + MAX_ACCOUNTS_PER_CALL]]
            found += [info is not None for info in self.rpc.get_multiple_accounts(batch, Confirmed).value]
        return found

    def close(self) -> None:
        self.reconciling.stop()
        self.signer.close()
        self.log.close()
        self.keys.close()
