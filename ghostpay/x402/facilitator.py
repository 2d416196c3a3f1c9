"""GhostPay's x402 facilitator: the official exact-SVM scheme behind guards a public fee payer needs.

The official `x402Facilitator` logic does the protocol (its verify checks every instruction of the
"exact" transaction, then simulates it); around each of its schemes (v2 and v1) this module adds:

- a fee-payer guard: the facilitator's key may appear in no instruction and the message may use no
  address lookup table, so its signature can only ever pay the fee of a verified payment;
- replay protection that survives restarts (`SettledLog`, SQLite);
- a crash-safe settle (`facilitator_settle`): simulated against the current state right before the
  send, its signature logged as pending before the send, pending rows reconciled by signature;
- a per-payer rate limit (a sliding window);
- a SOL balance floor under which it refuses to pay fees, each spend counted as it is committed;
- the operator's policy (`facilitator_policy`): fee and compute-unit caps, an asset allow-list with
  minimum amounts, and per seller key (`facilitator_keys`) rent fronting and quotas;
- the GhostPay extension (`facilitator_record`): `record_x402_payment` may follow the Memo, and the
  fee payer may front the rent of the buyer's PayerStats (once per buyer and agent; no account is made
  per payment); a bounded sweep reclaims the rent of legacy receipts it fronted, then ends;
- confirmation by `signatureSubscribe`: the websocket subscription is opened before the send, so the
  settle returns as soon as the cluster confirms (the package's signer polls with 1 s sleeps).

Everything here is synchronous: the HTTP app runs verify/settle in worker threads, off its event loop.
"""

from __future__ import annotations

import base64
import logging
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
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from x402 import x402FacilitatorSync
from x402.interfaces import FacilitatorExtension
from x402.mechanisms.svm.constants import ERR_DUPLICATE_SETTLEMENT, ERR_TRANSACTION_FAILED
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

from ghostpay.accounts import PayerStats
from ghostpay.artifacts import idl_dict
from ghostpay.paths import data_dir
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402.facilitator_confirm import SignatureWatcher
from ghostpay.x402.facilitator_record import (
    ERR_RECORD_INVALID,
    ERR_RENT_NOT_FRONTED,
    EXTENSION_FRONT_RENT,
    EXTENSION_RECORD,
    ReceiptSweep,
    accept_record_instruction,
    has_record_instruction,
    without_record,
)
from ghostpay.x402.facilitator_keys import AUTH_REFUSALS, OPERATOR, AccessGate, Caller, KeyStore
from ghostpay.x402.facilitator_policy import (
    POLICY_REFUSALS,
    AssetAllowList,
    AssetRule,
    FeeLimits,
    LabelledMints,
    PaymentPolicy,
    QuotaStore,
    RefusalCounter,
    current,
    fronted_account,
    serving,
)
from ghostpay.x402.facilitator_rpc import JsonRpc
from ghostpay.x402.facilitator_settle import (
    ERR_BALANCE_LOW,
    FAILED_ON_CHAIN,
    SUCCEEDED,
    FailedOnChain,
    Reconciling,
    Settler,
    chain_status,
    fee_lamports,
)
from ghostpay.x402.facilitator_store import FAILED, LANDED, PENDING, SETTLED, SettledLog
from ghostpay.x402.networks import DEVNET_CAIP2, network_by_id

# Refusal reasons of the guards (the official ones keep their names).
ERR_FEE_PAYER_IN_INSTRUCTION = "ghostpay_fee_payer_in_instruction"
ERR_LOOKUP_TABLES = "ghostpay_address_lookup_tables_not_allowed"
ERR_RATE_LIMITED = "ghostpay_rate_limited"

GUARD_REFUSALS = {
    ERR_FEE_PAYER_IN_INSTRUCTION: "the fee payer appears in an instruction (it only ever pays the fee)",
    ERR_LOOKUP_TABLES: "the message uses an address lookup table",
    ERR_RECORD_INVALID: "an instruction after the Memo that is not an acceptable record_x402_payment",
    ERR_RENT_NOT_FRONTED: "the record names the fee payer as rent payer, for a seller whose key does not "
                          "allow rent fronting (or with --no-front-rent)",
    ERR_DUPLICATE_SETTLEMENT: "a payment already settled (the log survives restarts)",
    ERR_RATE_LIMITED: "too many verifies (or settles) from one payer in the rate window",
    ERR_BALANCE_LOW: "the fee payer's SOL is under its floor",
}

LAMPORTS_PER_SOL = 1_000_000_000
PAYER_STATS_SPACE = len(PayerStats.discriminator) + PayerStats.layout.sizeof()
MAX_ACCOUNTS_PER_CALL = 100  # getMultipleAccounts
log = logging.getLogger(__name__)


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
    program_id: Pubkey = PROGRAM_ID  # whose record_x402_payment may follow the Memo (the GhostPay extension)
    record_extension: bool = True
    front_receipt_rent: bool = True  # the fee payer may be the record's rent payer (a pair's PayerStats, once)
    sweep_interval_seconds: float = 60.0  # closes the legacy receipts it fronted when they may be closed (0: never)
    fee_limits: FeeLimits = field(default_factory=FeeLimits)
    assets: tuple[AssetRule, ...] = ()  # the mints it settles (none given: the network's stablecoins...)
    test_mints: Path | None = None  # ...and the test mints labelled on this cluster in this label store (a localnet's)

    @property
    def fee_payer(self) -> Pubkey:
        return self.keypair.pubkey()


class SubscribingSigner(FacilitatorKeypairSigner):
    """The package's keypair signer, confirming by `signatureSubscribe` instead of polling.

    The subscription is made before the transaction is sent (its signature is known: the fee payer's,
    slot 0), on one shared websocket, so no notification can be missed and the settle returns the
    moment the node confirms. Simulations and sends go through `JsonRpc` (the same requests as the
    package's signer makes, for a fraction of the CPU). Every simulation is made against the current
    state: none is reused.
    """

    def __init__(self, keypair: Keypair, rpc_url: str, ws_url: str, confirm_timeout: float) -> None:
        super().__init__(keypair, rpc_url)
        self._watcher = SignatureWatcher(ws_url)
        self.rpc = JsonRpc(rpc_url, timeout=confirm_timeout)
        self._confirm_timeout = confirm_timeout
        self._watches: dict[str, Future[Any]] = {}
        self._substitutes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._checking = threading.local()  # `unsimulated` while the official checks run without a simulation

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

    def signature_of(self, tx: VersionedTransaction) -> str:
        """The fee payer's signature of `tx` (ed25519 is deterministic: the one it signed before)."""
        return str(self._keypairs[str(tx.message.account_keys[0])].sign_message(to_bytes_versioned(tx.message)))

    @contextmanager
    def _unsimulated(self) -> Iterator[None]:
        self._checking.unsimulated = True
        try:
            yield
        finally:
            self._checking.unsimulated = False

    def landed(self) -> Any:
        """While the official checks run on a payment whose transaction already landed (its outcome known,
        nothing to send): no simulation, which would only say that the signature was processed."""
        return self._unsimulated()

    def simulated_by_send(self) -> Any:
        """While the official checks run right before a first send: no separate simulation, the send's
        preflight is it (the node simulates against its current state and forwards nothing that fails,
        atomically with the send), one RPC round trip fewer per settle."""
        return self._unsimulated()

    def simulate_transaction(self, tx_base64: str, network: str) -> None:
        if getattr(self._checking, "unsimulated", False):
            return
        # What the package's signer asks: a signature-verified simulation at confirmed commitment.
        simulated = self.rpc.call("simulateTransaction", [tx_base64, {
            "encoding": "base64", "sigVerify": True, "commitment": "confirmed"}])
        if simulated["value"]["err"]:
            raise RuntimeError(f"Simulation failed: {simulated['value']['err']}")

    def send_transaction(self, tx_base64: str, network: str, *, preflight: bool = False) -> str:
        """Send; without `preflight` as the package's signer sends (the settle simulated it just before).
        A preflight refusal raises RpcError with `preflight_failed`: nothing was sent."""
        tx = VersionedTransaction.from_bytes(base64.b64decode(tx_base64))
        watch = self._watcher.watch(str(tx.signatures[0]))  # before the send: no notification can be missed
        try:
            signature = self.rpc.call("sendTransaction", [tx_base64, {
                "encoding": "base64", "skipPreflight": not preflight, "preflightCommitment": "confirmed"}])
        except BaseException:
            self._watcher.forget(watch)
            raise
        with self._lock:
            self._watches[signature] = watch
        return signature

    def confirm_transaction(self, signature: str, network: str, timeout_seconds: int = 30, *,
                            look_up: bool = False) -> None:
        """Wait for the confirmation of a transaction sent by `send_transaction` (else subscribe now);
        `look_up`: it may have landed before its subscription (a reconciled or resent one), so its status
        is read too. FailedOnChain when it landed and failed; RuntimeError when no confirmation came."""
        with self._lock:
            watch = self._watches.pop(signature, None)
        if watch is None:
            watch, look_up = self._watcher.watch(signature), True
        if look_up:
            status = chain_status(self.rpc, signature, None)
            if status.state in (SUCCEEDED, FAILED_ON_CHAIN):
                self._watcher.forget(watch)
                if status.state == FAILED_ON_CHAIN:
                    raise FailedOnChain(status.error)
                return
        try:
            err = watch.result(timeout=self._confirm_timeout)
        except FutureTimeout:
            self._watcher.forget(watch)
            raise RuntimeError("Transaction confirmation timeout") from None
        if err:
            raise FailedOnChain(err)

    def close(self) -> None:
        self._watcher.close()
        self.rpc.close()


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
    """The fee payer's SOL against a floor, every spend counted as it is committed.

    A settle reserves what its transaction can cost (fee and any receipt rent it fronts) before the
    send, and accounts for what it did cost once its outcome is known. What may be spent is the balance
    last read from the node (at most every `ttl` seconds), less the spends accounted since and the
    reservations still open: concurrent settles cannot together go under the floor, however old the read.

        >>> class Node:  # a fee payer holding 1,030,000 lamports
        ...     def get_balance(self, key, commitment): return type("R", (), {"value": 1_030_000})()
        >>> floor = BalanceFloor(Node(), Pubkey.default(), 1_000_000)
        >>> [floor.reserve(10_000) for _ in range(4)]
        [True, True, True, False]
        >>> floor.account(10_000, 0); floor.reserve(10_000)  # one was never sent: its reservation returns
        True
    """

    def __init__(self, rpc: Client, fee_payer: Pubkey, floor_lamports: int, ttl: float = 2.0) -> None:
        self._rpc = rpc
        self._fee_payer = fee_payer
        self.floor = floor_lamports
        self._ttl = ttl
        self._read_at: float | None = None
        self._balance = 0  # the last read, less what was accounted as spent since
        self._reserved = 0
        self._spends: list[tuple[int, int]] = []  # (sequence, lamports) accounted since the last read began
        self._sequence = 0
        self._lock = threading.Lock()
        self._reading = threading.Lock()

    def _refresh(self) -> None:
        with self._reading:
            with self._lock:
                if self._read_at is not None and time.monotonic() - self._read_at <= self._ttl:
                    return
                began = self._sequence
            lamports = self._rpc.get_balance(self._fee_payer, Confirmed).value
            with self._lock:  # a spend accounted while the read was under way may be missing from it
                self._spends = [(sequence, spent) for sequence, spent in self._spends if sequence > began]
                self._balance = lamports - sum(spent for _, spent in self._spends)
                self._read_at = time.monotonic()

    def balance(self) -> int:
        """The balance as last read, less the spends accounted since."""
        self._refresh()
        with self._lock:
            return self._balance

    def too_low(self) -> bool:
        """Whether the balance, less the open reservations, is under the floor."""
        if self.floor <= 0:
            return False
        self._refresh()
        with self._lock:
            return self._balance - self._reserved < self.floor

    def reserve(self, lamports: int) -> bool:
        """Reserve `lamports` for a settle about to send; False if that would go under the floor."""
        self._refresh()
        with self._lock:
            if self.floor > 0 and self._balance - self._reserved - lamports < self.floor:
                return False
            self._reserved += lamports
            return True

    def account(self, reserved: int, spent: int) -> None:
        """A reservation ends: `spent` lamports of it left the account (0: it was never sent)."""
        with self._lock:
            self._reserved -= reserved
            self._balance -= spent
            self._sequence += 1
            self._spends.append((self._sequence, spent))


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


class PairAccounts:
    """Which (payer, agent) PayerStats exist: a pair's first payment opens one (its rent fronted when the fee
    payer is the rent payer), later ones do not. An account seen once stays known (it is closed only by its
    payer, after which the program would open it again: then the rent counts once more, erring on the safe
    side); the set is bounded, the oldest forgotten first."""

    KNOWN = 200_000  # pairs remembered (≈ 100 bytes each)

    def __init__(self, rpc: Client) -> None:
        self._rpc = rpc
        self._known: dict[str, None] = {}
        self._lock = threading.Lock()

    def exists(self, address: str) -> bool:
        with self._lock:
            if address in self._known:
                return True
        found = self._rpc.get_account_info(Pubkey.from_string(address), Confirmed).value is not None
        if found:
            with self._lock:
                self._known[address] = None
                if len(self._known) > self.KNOWN:
                    self._known.pop(next(iter(self._known)))
        return found


class Guards:
    """The checks shared by the v1 and v2 schemes, and the settled-payment log."""

    def __init__(self, fee_payers: set[str], log: SettledLog, rate_limit: int, rate_window: float,
                 floor: BalanceFloor, extension: RecordExtension | None, policy: PaymentPolicy,
                 pairs: "PairAccounts") -> None:
        self.fee_payers = fee_payers
        self.pairs = pairs
        self.log = log
        self.verify_limiter = SlidingWindowLimiter(rate_limit, rate_window)
        self.settle_limiter = SlidingWindowLimiter(rate_limit, rate_window)
        self.floor = floor
        self.extension = extension
        self.policy = policy

    def records(self, tx: VersionedTransaction) -> bool:
        """Whether `tx` ends with the record instruction of the extension (acceptable or not)."""
        return self.extension is not None and has_record_instruction(tx, self.extension.program_id)

    def opened_by(self, tx: VersionedTransaction) -> str | None:
        """The PayerStats this (recording) payment makes at the fee payer's expense: the pair's first payment
        with the fee payer as rent payer; None when the payer pays it, or the pair's account exists."""
        fronted = fronted_account(tx, self.fee_payers)
        return fronted if fronted is not None and not self.pairs.exists(fronted) else None

    def refusal(self, tx: VersionedTransaction, payer: str, limiter: SlidingWindowLimiter,
                requirements: Any, *, settle: bool = False) -> tuple[str, str] | None:
        """(reason, message) when a guard refuses the payment, else None. A settle's last guard reserves
        the seller's quota (`PaymentPolicy.seller_refusal`)."""
        ticket = current(OPERATOR)
        checked, receipt = tx, None
        if self.records(tx):
            assert self.extension is not None
            hints = (requirements.extra or {}).get("ghostpay")
            agent = hints.get("agent") if isinstance(hints, dict) else None
            front_rent = self.extension.front_rent and ticket.caller.may_front_rent
            reason = accept_record_instruction(tx, self.fee_payers, self.extension.program_id,
                                               front_rent, agent if isinstance(agent, str) else None)
            if reason is not None:
                return reason, "record_x402_payment is accepted only as the last instruction, right after the " \
                               "Memo, recording the transfer before it" + \
                               ("" if front_rent else ", with the payer paying the PayerStats rent")
            checked, receipt = without_record(tx), self.opened_by(tx)
        reason = fee_payer_refusal(checked, self.fee_payers)
        if reason is not None:
            return reason, "the facilitator's key appears in an instruction: it only ever pays the fee"
        refused = self.policy.payment_refusal(tx)
        if refused is not None:
            return refused
        previous = self.log.get(transaction_message_hash(tx))
        if previous is not None and previous.status == SETTLED:  # others are reconciled by the scheme first
            return ERR_DUPLICATE_SETTLEMENT, "this payment was already settled"
        if not limiter.allow(payer):
            return ERR_RATE_LIMITED, f"too many payments from {payer}; retry later"
        if self.floor.too_low():
            return ERR_BALANCE_LOW, "the facilitator's SOL balance is under its floor; it pays no fees now"
        return self.policy.seller_refusal(tx, receipt, ticket, settle=settle)


def _decode(payload: Any) -> tuple[VersionedTransaction, str] | None:
    try:
        tx = decode_transaction_from_payload(ExactSvmPayload.from_dict(payload.payload))
        return tx, get_token_payer_from_transaction(tx) or ""
    except Exception:  # noqa: BLE001 - the official verify names a transaction it cannot decode
        return None


class GuardedScheme:
    """An official exact-SVM facilitator scheme (v2 or v1) with GhostPay's guards in front and GhostPay's
    crash-safe settle (`Settler`) in place of the official one.

    A payment with an accepted record instruction reaches the official scheme without it, and the
    signer swaps the whole transaction back in to sign, simulate and send it."""

    def __init__(self, inner: ExactSvmScheme | ExactSvmSchemeV1, guards: Guards, signer: "SubscribingSigner",
                 settler: Settler, networks: set[str]) -> None:
        self._inner = inner
        self._guards = guards
        self._signer = signer
        self._settler = settler
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
        """The official scheme's verify (or settle), on the transaction without an accepted record instruction."""
        if not self._guards.records(tx):
            return getattr(self._inner, method)(payload, requirements, context)
        whole = payload.payload["transaction"]
        stripped = base64.b64encode(bytes(without_record(tx))).decode()
        with self._signer.substituting(stripped, whole):
            return getattr(self._inner, method)(payload.model_copy(update={"payload": {
                **payload.payload, "transaction": stripped}}), requirements, context)

    def _checked_landed(self, payload: Any, requirements: Any, context: Any, tx: VersionedTransaction
                        ) -> VerifyResponse:
        """The official checks of a payment that landed against these requirements (a landed payment to
        one seller must not pass for another's), without a simulation."""
        with self._signer.landed():
            return self._official("verify", payload, requirements, context, tx)

    def verify(self, payload: Any, requirements: Any, context: Any = None) -> VerifyResponse:
        self._check_network(payload, requirements)
        decoded = _decode(payload)
        if decoded is None:
            return self._inner.verify(payload, requirements, context)
        tx, payer = decoded
        previous = self._settler.looked_up(transaction_message_hash(tx), tx)
        if previous is not None and previous.status == LANDED:  # paid on chain, if it pays these requirements
            return self._checked_landed(payload, requirements, context, tx)
        if previous is not None and previous.status == FAILED:
            return VerifyResponse(is_valid=False, invalid_reason=ERR_TRANSACTION_FAILED, payer=payer,
                                  invalid_message=f"the transaction landed and failed on chain: {previous.error}")
        refused = self._guards.refusal(tx, payer, self._guards.verify_limiter, requirements)
        if refused is not None:
            return VerifyResponse(is_valid=False, invalid_reason=refused[0], invalid_message=refused[1], payer=payer)
        return self._official("verify", payload, requirements, context, tx)

    def settle(self, payload: Any, requirements: Any, context: Any = None) -> SettleResponse:
        self._check_network(payload, requirements)
        network = str(requirements.network)
        decoded = _decode(payload)
        if decoded is None:
            return self._inner.settle(payload, requirements, context)
        tx, payer = decoded
        key = transaction_message_hash(tx)
        with self._settler.holding(key, tx):
            previous = self._settler.looked_up(key, tx)
            if previous is not None and previous.status == LANDED:
                checked = self._checked_landed(payload, requirements, context, tx)
                if not checked.is_valid:
                    return SettleResponse(success=False, error_reason=checked.invalid_reason,
                                          error_message=checked.invalid_message, payer=payer, transaction="",
                                          network=network)
            if previous is not None and previous.status != PENDING:
                return self._settler.answer_known(previous, payer, network)
            if previous is None:
                refused = self._guards.refusal(tx, payer, self._guards.settle_limiter, requirements,
                                                 settle=True)
                if refused is not None:
                    return SettleResponse(success=False, error_reason=refused[0], error_message=refused[1],
                                          payer=payer, transaction="", network=network)
            # Every check right before the send, and a simulation against the current state: a first send's
            # preflight (atomic with it), or for a resend (it may have landed meanwhile) a simulation first.
            if previous is None:
                with self._signer.simulated_by_send():
                    verified = self._official("verify", payload, requirements, context, tx)
            else:
                verified = self._official("verify", payload, requirements, context, tx)
            if not verified.is_valid:
                return SettleResponse(success=False, error_reason=verified.invalid_reason,
                                      error_message=verified.invalid_message, payer=verified.payer or payer,
                                      transaction="", network=network)
            return self._settler.send(key, tx, payload.payload["transaction"], str(requirements.extra["feePayer"]),
                                      payer, network, resend=previous is not None)


class GhostPayFacilitator:
    """The official facilitator logic with GhostPay's guards; `verify`/`settle` block (run them in threads).

    At start it reconciles the settles a crash left pending, and again every few seconds. `caller` says on
    whose behalf a request comes (a seller's key, or the operator: the default for in-process use)."""

    def __init__(self, settings: FacilitatorSettings) -> None:
        self.settings = settings
        self.rpc = Client(settings.rpc_url)
        self.signer = SubscribingSigner(settings.keypair, settings.rpc_url, settings.ws_url,
                                        settings.confirm_timeout_seconds)
        self.log = SettledLog(settings.db_path)
        self.keys = KeyStore(settings.db_path)
        self.gate = AccessGate(self.keys)
        test_mints = LabelledMints(settings.test_mints, str(self.rpc.get_genesis_hash().value)) \
            if settings.test_mints is not None else None
        self._receipt_rent: int | None = None
        self.policy = PaymentPolicy(
            settings.fee_limits, AssetAllowList.for_network(settings.networks[0], settings.assets, test_mints),
            QuotaStore(settings.db_path), self.receipt_rent, self._existing)
        extension = RecordExtension(settings.program_id, settings.front_receipt_rent) \
            if settings.record_extension else None
        self.guards = Guards({str(settings.fee_payer)}, self.log, settings.rate_limit, settings.rate_window_seconds,
                             BalanceFloor(self.rpc, settings.fee_payer, settings.min_balance_lamports), extension,
                             self.policy, PairAccounts(self.rpc))
        self.settler = Settler(self.signer, self.log, self.guards.floor, self.cost)
        cache = SettlementCache()  # shared by v1 and v2, as the package's register helper does
        self.x402 = x402FacilitatorSync()
        v2, v1 = set(settings.networks), {network_by_id(n).v1_name for n in settings.networks}
        self.x402.register(sorted(v2), GuardedScheme(ExactSvmScheme(self.signer, cache), self.guards, self.signer,
                                                     self.settler, v2))
        self.x402.register_v1(sorted(v1), GuardedScheme(ExactSvmSchemeV1(self.signer, cache), self.guards,
                                                        self.signer, self.settler, v1))
        if extension is not None:
            self.x402.register_extension(FacilitatorExtension(EXTENSION_RECORD))
            if extension.front_rent:
                self.x402.register_extension(FacilitatorExtension(EXTENSION_FRONT_RENT))
        window = next(int(c["value"]) for c in idl_dict()["constants"] if c["name"] == "FEEDBACK_WINDOW_SECONDS")
        self.sweep = ReceiptSweep(self.rpc, settings.keypair, settings.program_id, window)
        try:
            self.settler.reconcile_pending()
        except Exception as exc:  # noqa: BLE001 - the node is away: the rows wait for the next round
            log.warning("reconciling pending settles at start failed: %s", exc)
        self.reconciling = Reconciling(self.settler)

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

    def _refused(self, method: str, caller: Caller, reason: str | None, message: str | None, payer: str | None
                 ) -> None:
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
            "rentFronting": {"enabled": settings.record_extension and settings.front_receipt_rent,
                             "forCaller": caller.may_front_rent and settings.front_receipt_rent},
            "rateLimit": {"perPayer": settings.rate_limit, "windowSeconds": settings.rate_window_seconds},
            "minBalanceLamports": settings.min_balance_lamports,
            "refusals": {**AUTH_REFUSALS, **GUARD_REFUSALS, **POLICY_REFUSALS},
        }

    def health(self) -> dict[str, Any]:
        balance = self.guards.floor.balance()
        return {"status": "ok" if balance >= self.guards.floor.floor else "balance_low",
                "feePayer": str(self.settings.fee_payer), "balanceLamports": balance,
                "minBalanceLamports": self.guards.floor.floor, "networks": list(self.settings.networks),
                "auth": self.gate.mode(), "settled": self.log.count(), "pendingSettles": len(self.log.pending()),
                "refusals": self.refusals.snapshot(),
                "extensions": self.supported().extensions,
                "receiptsClosed": self.sweep.closed, "rentReclaimedLamports": self.sweep.reclaimed_lamports}

    def sweep_once(self) -> None:
        """Close the receipts whose rent may come back; the sellers' outstanding rent follows."""
        swept = self.sweep.run_once()
        self.policy.reconcile_rent([str(r.address) for r in swept], self._existing)

    def _existing(self, addresses: list[str]) -> list[bool]:
        found: list[bool] = []
        for start in range(0, len(addresses), MAX_ACCOUNTS_PER_CALL):
            batch = [Pubkey.from_string(a) for a in addresses[start:start + MAX_ACCOUNTS_PER_CALL]]
            found += [info is not None for info in self.rpc.get_multiple_accounts(batch, Confirmed).value]
        return found

    def close(self) -> None:
        self.reconciling.stop()
        self.signer.close()
        self.log.close()
        self.keys.close()
        self.policy.quotas.close()
