"""GhostPay's x402 facilitator: the official exact-SVM scheme behind guards a public fee payer needs.

The official `x402Facilitator` logic does the protocol (its verify checks every instruction of the
"exact" transaction, then simulates it); around each of its schemes (v2 and v1) this module adds:

- a fee-payer guard: the facilitator's key may appear in no instruction and the message may use no
  address lookup table, so its signature can only ever pay the fee of a verified payment;
- replay protection that survives restarts (`SettledLog`, SQLite);
- a per-payer rate limit (a sliding window);
- a SOL balance floor under which it refuses to pay fees;
- the GhostPay extension (`facilitator_record`): `record_x402_payment` may follow the Memo, and the
  fee payer may front the rent of the buyer's PayerStats (once per buyer and agent; no account is made
  per payment); a bounded sweep reclaims the rent of legacy receipts it fronted, then ends;
- confirmation by `signatureSubscribe`: the websocket subscription is opened before the send, so the
  settle returns as soon as the cluster confirms (the package's signer polls with 1 s sleeps).

Everything here is synchronous: the HTTP app runs verify/settle in worker threads, off its event loop.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from solana.rpc.api import Client
from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus
from x402 import x402FacilitatorSync
from x402.interfaces import FacilitatorExtension
from x402.mechanisms.svm.constants import ERR_DUPLICATE_SETTLEMENT, ERR_SETTLEMENT_PENDING
from x402.mechanisms.svm.exact.facilitator import ExactSvmScheme
from x402.mechanisms.svm.exact.v1.facilitator import ExactSvmSchemeV1
from x402.mechanisms.svm.settlement_cache import SettlementCache
from x402.mechanisms.svm.signers import FacilitatorKeypairSigner
from x402.mechanisms.svm.types import ExactSvmPayload
from x402.mechanisms.svm.utils import (
    decode_transaction_from_payload,
    get_token_payer_from_transaction,
    transaction_message_hash,
)
from x402.schemas import SchemeNotFoundError, SettleResponse, SupportedResponse, VerifyResponse

from ghostpay.artifacts import idl_dict
from ghostpay.paths import data_dir
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402.facilitator_record import (
    EXTENSION_FRONT_RENT,
    EXTENSION_RECORD,
    ReceiptSweep,
    accept_record_instruction,
    has_record_instruction,
    without_record,
)
from ghostpay.x402.facilitator_confirm import SignatureWatcher
from ghostpay.x402.facilitator_rpc import JsonRpc
from ghostpay.x402.facilitator_store import SettledLog
from ghostpay.x402.networks import DEVNET_CAIP2, network_by_id

# Refusal reasons of the guards (the official ones keep their names).
ERR_FEE_PAYER_IN_INSTRUCTION = "ghostpay_fee_payer_in_instruction"
ERR_LOOKUP_TABLES = "ghostpay_address_lookup_tables_not_allowed"
ERR_RATE_LIMITED = "ghostpay_rate_limited"
ERR_BALANCE_LOW = "ghostpay_facilitator_balance_low"

LAMPORTS_PER_SOL = 1_000_000_000


def default_db_path() -> Path:
    return data_dir() / "facilitator.db"


@dataclass(frozen=True)
class FacilitatorSettings:
    """What `ghost facilitator start` passes in; defaults suit a localnet."""

    keypair: Keypair
    rpc_url: str
    ws_url: str
    networks: tuple[str, ...] = (DEVNET_CAIP2,)  # CAIP-2 ids served (v2); v1 names are served too
    db_path: Path = field(default_factory=default_db_path)
    rate_limit: int = 120  # verify or settle requests per payer per window, each counted apart
    rate_window_seconds: float = 60.0
    min_balance_lamports: int = LAMPORTS_PER_SOL // 100  # refuse to pay fees under 0.01 SOL
    confirm_timeout_seconds: float = 30.0
    simulation_reuse_seconds: float = 2.0  # settle skips re-simulating what verify simulated this recently (0: never)
    program_id: Pubkey = PROGRAM_ID  # whose record_x402_payment may follow the Memo (the GhostPay extension)
    record_extension: bool = True
    front_receipt_rent: bool = True  # the fee payer may be the record's rent payer (a pair's PayerStats, once)
    sweep_interval_seconds: float = 60.0  # closes the legacy receipts it fronted when they may be closed (0: never)

    @property
    def fee_payer(self) -> Pubkey:
        return self.keypair.pubkey()


class SubscribingSigner(FacilitatorKeypairSigner):
    """The package's keypair signer, confirming by `signatureSubscribe` instead of polling.

    The subscription is made before the transaction is sent (its signature is known: the fee payer's,
    slot 0), on one shared websocket, so no notification can be missed and the settle returns the
    moment the node confirms. Simulations and sends go through `JsonRpc` (the same requests as the
    package's signer makes, for a fraction of the CPU).
    """

    def __init__(self, keypair: Keypair, rpc_url: str, ws_url: str, confirm_timeout: float,
                 simulation_reuse: float = 0.0) -> None:
        super().__init__(keypair, rpc_url)
        self._watcher = SignatureWatcher(ws_url)
        self._rpc = JsonRpc(rpc_url, timeout=confirm_timeout)
        self._confirm_timeout = confirm_timeout
        self._simulation_reuse = simulation_reuse
        self._simulated: dict[str, float] = {}  # fully signed transaction -> when its simulation passed
        self._watches: dict[str, Future[Any]] = {}
        self._substitutes: dict[str, str] = {}
        self._lock = threading.Lock()

    @contextmanager
    def substituting(self, checked: str, whole: str) -> Iterator[None]:
        """While the official scheme checks `checked` (a payment without its record instruction), sign,
        simulate and send `whole` in its place."""
        with self._lock:
            self._substitutes[checked] = whole
        try:
            yield
        finally:
            with self._lock:
                self._substitutes.pop(checked, None)

    def sign_transaction(self, tx_base64: str, fee_payer: str, network: str) -> str:
        with self._lock:
            tx_base64 = self._substitutes.get(tx_base64, tx_base64)
        return super().sign_transaction(tx_base64, fee_payer, network)

    def simulate_transaction(self, tx_base64: str, network: str) -> None:
        """The official settle verifies again, simulation included, right after the seller's verify: the
        same signed bytes that passed a simulation less than `simulation_reuse` seconds ago pass once
        more without a second one (the transaction can still fail on chain; then the settle fails)."""
        now = time.monotonic()
        with self._lock:
            passed = self._simulated.pop(tx_base64, None)
        if passed is not None and now - passed < self._simulation_reuse:
            return
        # What the package's signer asks: a signature-verified simulation at confirmed commitment.
        simulated = self._rpc.call("simulateTransaction", [tx_base64, {
            "encoding": "base64", "sigVerify": True, "commitment": "confirmed"}])
        if simulated["value"]["err"]:
            raise RuntimeError(f"Simulation failed: {simulated['value']['err']}")
        if self._simulation_reuse > 0:
            with self._lock:
                self._simulated = {k: t for k, t in self._simulated.items() if now - t < self._simulation_reuse}
                self._simulated[tx_base64] = now

    def send_transaction(self, tx_base64: str, network: str) -> str:
        tx = VersionedTransaction.from_bytes(base64.b64decode(tx_base64))
        watch = self._watcher.watch(str(tx.signatures[0]))  # before the send: no notification can be missed
        try:
            # As the package's signer sends: no preflight (verify simulated it).
            signature = self._rpc.call("sendTransaction", [tx_base64, {
                "encoding": "base64", "skipPreflight": True, "preflightCommitment": "confirmed"}])
        except BaseException:
            self._watcher.forget(watch)
            raise
        with self._lock:
            self._watches[signature] = watch
        return signature

    def confirm_transaction(self, signature: str, network: str, timeout_seconds: int = 30) -> None:
        with self._lock:
            watch = self._watches.pop(signature, None)
        if watch is None:  # reconciling a settle left pending: it may have landed before this subscription
            watch = self._watcher.watch(signature)
            status = self._get_client(network).get_signature_statuses([Signature.from_string(signature)]).value[0]
            if status is not None and status.confirmation_status is not None and \
                    str(status.confirmation_status) != str(TransactionConfirmationStatus.Processed):
                self._watcher.forget(watch)
                if status.err:
                    raise RuntimeError(f"Transaction failed: {status.err}")
                return
        try:
            err = watch.result(timeout=self._confirm_timeout)
        except FutureTimeout:
            self._watcher.forget(watch)
            raise RuntimeError("Transaction confirmation timeout") from None
        if err:
            raise RuntimeError(f"Transaction failed: {err}")

    def close(self) -> None:
        self._watcher.close()
        self._rpc.close()


class SlidingWindowLimiter:
    """At most `limit` events per key in any `window` seconds.

        >>> limiter = SlidingWindowLimiter(2, 60.0)
        >>> [limiter.allow("payer") for _ in range(3)], limiter.allow("other")
        ([True, True, False], True)
    """

    def __init__(self, limit: int, window: float) -> None:
        self._limit = limit
        self._window = window
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            events = self._events[key]
            while events and events[0] <= now - self._window:
                events.popleft()
            if len(events) >= self._limit:
                return False
            events.append(now)
            return True


class BalanceFloor:
    """The fee payer's SOL balance, read at most every `ttl` seconds, against a floor."""

    def __init__(self, rpc: Client, fee_payer: Pubkey, floor_lamports: int, ttl: float = 2.0) -> None:
        self._rpc = rpc
        self._fee_payer = fee_payer
        self.floor = floor_lamports
        self._ttl = ttl
        self._cached: tuple[float, int] | None = None
        self._lock = threading.Lock()

    def balance(self) -> int:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self._ttl:
                self._cached = (time.monotonic(), self._rpc.get_balance(self._fee_payer, Confirmed).value)
            return self._cached[1]

    def too_low(self) -> bool:
        return self.floor > 0 and self.balance() < self.floor


def fee_payer_refusal(tx: VersionedTransaction, fee_payers: set[str]) -> str | None:
    """Why the fee payer must not sign `tx`, or None: its key may not appear in any instruction (as
    program or account: no transfer, close, approve or create can then spend its SOL or tokens), and
    no address lookup table may hide accounts from this check."""
    message = tx.message
    if isinstance(message, MessageV0) and message.address_table_lookups:
        return ERR_LOOKUP_TABLES
    ours = {i for i, key in enumerate(message.account_keys) if str(key) in fee_payers}
    for instruction in message.instructions:
        if instruction.program_id_index in ours or ours.intersection(bytes(instruction.accounts)):
            return ERR_FEE_PAYER_IN_INSTRUCTION
    return None


@dataclass(frozen=True)
class RecordExtension:
    """The GhostPay extension: which program's record instruction may follow the Memo, and whether the
    fee payer fronts the rent of a buyer's PayerStats (paid once, by the pair's first payment)."""

    program_id: Pubkey
    front_rent: bool


class Guards:
    """The checks shared by the v1 and v2 schemes, and the settled-payment log."""

    def __init__(self, fee_payers: set[str], log: SettledLog, rate_limit: int, rate_window: float,
                 floor: BalanceFloor, extension: RecordExtension | None) -> None:
        self.fee_payers = fee_payers
        self.log = log
        self.verify_limiter = SlidingWindowLimiter(rate_limit, rate_window)
        self.settle_limiter = SlidingWindowLimiter(rate_limit, rate_window)
        self.floor = floor
        self.extension = extension

    def records(self, tx: VersionedTransaction) -> bool:
        """Whether `tx` ends with the record instruction of the extension (acceptable or not)."""
        return self.extension is not None and has_record_instruction(tx, self.extension.program_id)

    def refusal(self, tx: VersionedTransaction, payer: str, limiter: SlidingWindowLimiter,
                requirements: Any) -> tuple[str, str] | None:
        """(reason, message) when a guard refuses the payment, else None."""
        checked = tx
        if self.records(tx):
            assert self.extension is not None
            hints = (requirements.extra or {}).get("ghostpay")
            agent = hints.get("agent") if isinstance(hints, dict) else None
            reason = accept_record_instruction(tx, self.fee_payers, self.extension.program_id,
                                               self.extension.front_rent, agent if isinstance(agent, str) else None)
            if reason is not None:
                return reason, "record_x402_payment is accepted only as the last instruction, right after the " \
                               "Memo, recording the transfer before it" + \
                               ("" if self.extension.front_rent else ", with the payer paying the PayerStats rent")
            checked = without_record(tx)
        reason = fee_payer_refusal(checked, self.fee_payers)
        if reason is not None:
            return reason, "the facilitator's key appears in an instruction: it only ever pays the fee"
        if self.log.get(transaction_message_hash(tx)) is not None:
            return ERR_DUPLICATE_SETTLEMENT, "this payment was already settled"
        if not limiter.allow(payer):
            return ERR_RATE_LIMITED, f"too many payments from {payer}; retry later"
        if self.floor.too_low():
            return ERR_BALANCE_LOW, "the facilitator's SOL balance is under its floor; it pays no fees now"
        return None


def _decode(payload: Any) -> tuple[VersionedTransaction, str] | None:
    try:
        tx = decode_transaction_from_payload(ExactSvmPayload.from_dict(payload.payload))
        return tx, get_token_payer_from_transaction(tx) or ""
    except Exception:  # noqa: BLE001 - the official verify names a transaction it cannot decode
        return None


class GuardedScheme:
    """An official exact-SVM facilitator scheme (v2 or v1) with GhostPay's guards in front.

    A payment with an accepted record instruction reaches the official scheme without it, and the
    signer swaps the whole transaction back in to sign, simulate and send it."""

    def __init__(self, inner: ExactSvmScheme | ExactSvmSchemeV1, guards: Guards, signer: "SubscribingSigner",
                 networks: set[str]) -> None:
        self._inner = inner
        self._guards = guards
        self._signer = signer
        self._networks = networks
        self.scheme = inner.scheme
        self.caip_family = inner.caip_family

    def get_extra(self, network: str) -> dict[str, Any] | None:
        return self._inner.get_extra(network)

    def get_signers(self, network: str) -> list[str]:
        return self._inner.get_signers(network)

    def _check_network(self, payload: Any, requirements: Any) -> None:
        """The package matches any `solana:*` id once one is registered; a payment labelled for another
        cluster than the one this facilitator settles on must not verify."""
        for network in {str(requirements.network), str(payload.get_network())}:
            if network not in self._networks:
                raise SchemeNotFoundError(self.scheme, network)

    def _official(self, method: str, payload: Any, requirements: Any, context: Any, tx: VersionedTransaction
                  ) -> Any:
        """The official scheme's verify or settle, on the transaction without an accepted record instruction."""
        if not self._guards.records(tx):
            return getattr(self._inner, method)(payload, requirements, context)
        whole = payload.payload["transaction"]
        stripped = base64.b64encode(bytes(without_record(tx))).decode()
        with self._signer.substituting(stripped, whole):
            return getattr(self._inner, method)(payload.model_copy(update={"payload": {
                **payload.payload, "transaction": stripped}}), requirements, context)

    def verify(self, payload: Any, requirements: Any, context: Any = None) -> VerifyResponse:
        self._check_network(payload, requirements)
        decoded = _decode(payload)
        if decoded is None:
            return self._inner.verify(payload, requirements, context)
        refused = self._guards.refusal(*decoded, self._guards.verify_limiter, requirements)
        if refused is not None:
            return VerifyResponse(is_valid=False, invalid_reason=refused[0], invalid_message=refused[1],
                                  payer=decoded[1])
        return self._official("verify", payload, requirements, context, decoded[0])

    def settle(self, payload: Any, requirements: Any, context: Any = None) -> SettleResponse:
        self._check_network(payload, requirements)
        network = str(requirements.network)
        decoded = _decode(payload)
        if decoded is None:
            return self._inner.settle(payload, requirements, context)
        tx, payer = decoded
        key = transaction_message_hash(tx)
        previous = self._guards.log.get(key)
        if previous is not None and previous.pending:  # a settle left pending: let the scheme reconcile it
            return self._record(key, self._official("settle", payload, requirements, context, tx))
        refused = self._guards.refusal(tx, payer, self._guards.settle_limiter, requirements)
        if refused is None and not self._guards.log.claim(key, payer=payer, network=network):
            refused = (ERR_DUPLICATE_SETTLEMENT, "this payment was already settled")
        if refused is not None:
            return SettleResponse(success=False, error_reason=refused[0], error_message=refused[1], payer=payer,
                                  transaction="", network=network)
        try:
            return self._record(key, self._official("settle", payload, requirements, context, tx))
        except BaseException:
            self._guards.log.release(key)
            raise

    def _record(self, key: str, result: SettleResponse) -> SettleResponse:
        if result.transaction:  # sent: confirmed, or pending and reconcilable by a retry
            self._guards.log.complete(key, result.transaction, pending=result.error_reason == ERR_SETTLEMENT_PENDING)
        else:
            self._guards.log.release(key)
        return result


class GhostPayFacilitator:
    """The official facilitator logic with GhostPay's guards; `verify`/`settle` block (run them in threads)."""

    def __init__(self, settings: FacilitatorSettings) -> None:
        self.settings = settings
        self.rpc = Client(settings.rpc_url)
        self.signer = SubscribingSigner(settings.keypair, settings.rpc_url, settings.ws_url,
                                        settings.confirm_timeout_seconds, settings.simulation_reuse_seconds)
        self.log = SettledLog(settings.db_path)
        extension = RecordExtension(settings.program_id, settings.front_receipt_rent) \
            if settings.record_extension else None
        self.guards = Guards({str(settings.fee_payer)}, self.log, settings.rate_limit, settings.rate_window_seconds,
                             BalanceFloor(self.rpc, settings.fee_payer, settings.min_balance_lamports), extension)
        cache = SettlementCache()  # shared by v1 and v2, as the package's register helper does
        self.x402 = x402FacilitatorSync()
        v2, v1 = set(settings.networks), {network_by_id(n).v1_name for n in settings.networks}
        self.x402.register(sorted(v2), GuardedScheme(ExactSvmScheme(self.signer, cache), self.guards, self.signer,
                                                     v2))
        self.x402.register_v1(sorted(v1), GuardedScheme(ExactSvmSchemeV1(self.signer, cache), self.guards,
                                                        self.signer, v1))
        if extension is not None:
            self.x402.register_extension(FacilitatorExtension(EXTENSION_RECORD))
            if extension.front_rent:
                self.x402.register_extension(FacilitatorExtension(EXTENSION_FRONT_RENT))
        window = next(int(c["value"]) for c in idl_dict()["constants"] if c["name"] == "FEEDBACK_WINDOW_SECONDS")
        self.sweep = ReceiptSweep(self.rpc, settings.keypair, settings.program_id, window)

    def verify(self, payload: Any, requirements: Any) -> VerifyResponse:
        return self.x402.verify(payload, requirements)

    def settle(self, payload: Any, requirements: Any) -> SettleResponse:
        return self.x402.settle(payload, requirements)

    def supported(self) -> SupportedResponse:
        return self.x402.get_supported()

    def health(self) -> dict[str, Any]:
        balance = self.guards.floor.balance()
        return {"status": "ok" if balance >= self.guards.floor.floor else "balance_low",
                "feePayer": str(self.settings.fee_payer), "balanceLamports": balance,
                "minBalanceLamports": self.guards.floor.floor, "networks": list(self.settings.networks),
                "settled": self.log.count(), "extensions": self.supported().extensions,
                "receiptsClosed": self.sweep.closed, "rentReclaimedLamports": self.sweep.reclaimed_lamports}

    def close(self) -> None:
        self.signer.close()
        self.log.close()
