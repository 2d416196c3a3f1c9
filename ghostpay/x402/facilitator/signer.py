"""The fee payer's signer: the package's keypair signer, confirming by `signatureSubscribe`."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from concurrent.futures import Future, TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any

from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.transaction import VersionedTransaction
from x402.mechanisms.svm.signers import FacilitatorKeypairSigner

from ghostpay.signature_watcher import SignatureWatcher
from ghostpay.x402.facilitator.confirm import FAILED_ON_CHAIN, SUCCEEDED, FailedOnChain, chain_status
from ghostpay.x402.facilitator.rpc import JsonRpc


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
        self._last_signed = threading.local()  # (transaction, fee payer, signed): the thread's last signing

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
        """The package's signing, remembered for the thread's last transaction: a settle's checks sign it, then
        its send (ed25519 is deterministic: signing the same bytes again gives the same signature)."""
        with self._lock:
            tx_base64 = self._substitutes.get(tx_base64, tx_base64)
        last: tuple[str, str, str] | None = getattr(self._last_signed, "value", None)
        if last is not None and last[:2] == (tx_base64, fee_payer):
            return last[2]
        signed = super().sign_transaction(tx_base64, fee_payer, network)
        self._last_signed.value = (tx_base64, fee_payer, signed)
        return signed

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
        simulated = self.rpc.call(
            "simulateTransaction", [tx_base64, {"encoding": "base64", "sigVerify": True, "commitment": "confirmed"}]
        )
        if simulated["value"]["err"]:
            raise RuntimeError(f"Simulation failed: {simulated['value']['err']}")

    def send_transaction(self, tx_base64: str, network: str, *, preflight: bool = False) -> str:
        """Send; without `preflight` as the package's signer sends (the settle simulated it just before).
        A preflight refusal raises RpcError with `preflight_failed`: nothing was sent."""
        tx = VersionedTransaction.from_bytes(base64.b64decode(tx_base64))
        watch = self._watcher.watch(str(tx.signatures[0]))  # before the send: no notification can be missed
        try:
            signature = self.rpc.call(
                "sendTransaction",
                [tx_base64, {"encoding": "base64", "skipPreflight": not preflight, "preflightCommitment": "confirmed"}],
            )
        except BaseException:
            self._watcher.forget(watch)
            raise
        with self._lock:
            self._watches[signature] = watch
        return signature

    def confirm_transaction(
        self, signature: str, network: str, timeout_seconds: int = 30, *, look_up: bool = False
    ) -> None:
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
            err = watch.result(timeout=self._confirm_timeout).err
        except FutureTimeout:
            self._watcher.forget(watch)
            raise RuntimeError("Transaction confirmation timeout") from None
        if err:
            raise FailedOnChain(err)

    def close(self) -> None:
        self._watcher.close()
        self.rpc.close()
