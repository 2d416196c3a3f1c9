"""The official exact-SVM facilitator scheme (v2 or v1) behind GhostPay's guards, with its crash-safe settle."""

from __future__ import annotations

import base64
from typing import Any

from solders.transaction import VersionedTransaction
from x402.mechanisms.svm.constants import ERR_TRANSACTION_FAILED
from x402.mechanisms.svm.exact.facilitator import ExactSvmScheme
from x402.mechanisms.svm.exact.v1.facilitator import ExactSvmSchemeV1
from x402.mechanisms.svm.types import ExactSvmPayload
from x402.mechanisms.svm.utils import (
    decode_transaction_from_payload,
    get_token_payer_from_transaction,
    transaction_message_hash,
)
from x402.schemas import SchemeNotFoundError, SettleResponse, VerifyResponse

from ghostpay.x402.facilitator.guards import Guards
from ghostpay.x402.facilitator.settle import Settler
from ghostpay.x402.facilitator.signer import SubscribingSigner
from ghostpay.x402.facilitator.store import FAILED, LANDED, PENDING
from ghostpay.x402.record.facilitator import without_record


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

    def __init__(
        self,
        inner: ExactSvmScheme | ExactSvmSchemeV1,
        guards: Guards,
        signer: SubscribingSigner,
        settler: Settler,
        networks: set[str],
    ) -> None:
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

    def _official(self, method: str, payload: Any, requirements: Any, context: Any, tx: VersionedTransaction) -> Any:
        """The official scheme's verify (or settle), on the transaction without an accepted record instruction."""
        if not self._guards.records(tx):
            return getattr(self._inner, method)(payload, requirements, context)
        whole = payload.payload["transaction"]
        stripped = base64.b64encode(bytes(without_record(tx))).decode()
        with self._signer.substituting(stripped, whole):
            return getattr(self._inner, method)(
                payload.model_copy(update={"payload": {**payload.payload, "transaction": stripped}}),
                requirements,
                context,
            )

    def _checked_landed(
        self, payload: Any, requirements: Any, context: Any, tx: VersionedTransaction
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
            return VerifyResponse(
                is_valid=False,
                invalid_reason=ERR_TRANSACTION_FAILED,
                payer=payer,
                invalid_message=f"the transaction landed and failed on chain: {previous.error}",
            )
        refused = self._guards.refusal(tx, payer, self._guards.verify_limiter, requirements, previous)
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
                    return SettleResponse(
                        success=False,
                        error_reason=checked.invalid_reason,
                        error_message=checked.invalid_message,
                        payer=payer,
                        transaction="",
                        network=network,
                    )
            if previous is not None and previous.status != PENDING:
                return self._settler.answer_known(previous, payer, network)
            if previous is None:
                refused = self._guards.refusal(
                    tx, payer, self._guards.settle_limiter, requirements, previous, settle=True
                )
                if refused is not None:
                    return SettleResponse(
                        success=False,
                        error_reason=refused[0],
                        error_message=refused[1],
                        payer=payer,
                        transaction="",
                        network=network,
                    )
            if previous is None:
                return self._send(payload, requirements, context, tx, key, payer, network, resend=False)
            held = self._settler.take(previous, payer, network)  # a live settle (perhaps a replica's) has it
            if held is not None:
                return held
            try:
                return self._send(payload, requirements, context, tx, key, payer, network, resend=True)
            finally:
                self._settler.let_go(key)

    def _send(
        self,
        payload: Any,
        requirements: Any,
        context: Any,
        tx: VersionedTransaction,
        key: str,
        payer: str,
        network: str,
        *,
        resend: bool,
    ) -> SettleResponse:
        """Every check right before the send, and a simulation against the current state: a first send's
        preflight (atomic with it), or for a resend (it may have landed meanwhile) a simulation first."""
        if resend:
            verified = self._official("verify", payload, requirements, context, tx)
        else:
            with self._signer.simulated_by_send():
                verified = self._official("verify", payload, requirements, context, tx)
        if not verified.is_valid:
            return SettleResponse(
                success=False,
                error_reason=verified.invalid_reason,
                error_message=verified.invalid_message,
                payer=verified.payer or payer,
                transaction="",
                network=network,
            )
        return self._settler.send(
            key, tx, payload.payload["transaction"], str(requirements.extra["feePayer"]), payer, network, resend=resend
        )
