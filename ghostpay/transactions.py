"""The transaction plumbing under `GhostPayClient`: RPC calls with the SDK's exceptions, and sending.

`send` signs with a cached blockhash (read again after `BLOCKHASH_MAX_AGE` seconds, and when the node refuses it
as expired: a new blockhash, the transaction signed again), sends and confirms; `send_transaction` sends
signed bytes and, when the connection fails or hangs after they may have left, recovers the outcome
from the signature's status, re-sending the same bytes meanwhile (one signature lands at most once);
`resume_transaction` finishes what an earlier send left unknown. `on_send` is the journal hook: it
sees each signature, its last valid block height and the signed bytes just before they leave.

A transaction is confirmed by `signatureSubscribe` on one websocket per client (watched before it is sent, so
no notification is missed; its status is still read every `WATCH_POLL_SECONDS` in case one is), or by polling
`getSignatureStatuses` while the websocket is unavailable. The landed transaction is read back
(`getTransaction`) for its logs, compute units and events only when they are wanted (`details`), or when it
failed (its logs name the error).

Program errors come back typed by their IDL name (Anchor's log line, else the custom code of an
instruction of this program), token program errors as `TokenProgramError`, RPC failures as
`RpcError`, transport failures as `TransportError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self, TypeVar

import httpx
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment, Confirmed, Processed
from solana.rpc.core import RPCException
from solana.rpc.types import TxOpts
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from websockets.exceptions import WebSocketException

from ghostpay.cluster import Cluster, resolve
from ghostpay.events import decode_events
from ghostpay.exceptions import (
    ANCHOR_LOG,
    AlreadyProcessed,
    BlockhashExpired,
    GhostPayError,
    InvalidArgument,
    OutcomeUnknown,
    ProgramError,
    RpcError,
    TokenProgramError,
    TransactionError,
    TransportError,
)
from ghostpay.keypairs import KeypairSource, default_keypair_path, load_keypair
from ghostpay.program_id import PROGRAM_ID
from ghostpay.results import Simulation, TxResult
from ghostpay.signature_watcher import Notification, SignatureWatcher

T = TypeVar("T")
_COMMITMENT_RANK = {"processed": 0, "confirmed": 1, "finalized": 2}
_TRANSPORT_FAILURES = (SolanaRpcException, httpx.HTTPError, OSError, asyncio.TimeoutError)
# A blockhash stays valid for 150 slots (~60 s): one read serves every transaction for this long, leaving
# ~100 slots for the last one to land; the node's refusal of an expired one fetches a new one anyway.
BLOCKHASH_MAX_AGE = 20.0
WATCH_POLL_SECONDS = 1.0  # a watched transaction's status is still read this often (a lost notification)
WEBSOCKET_RETRY_SECONDS = 30.0  # after the websocket fails, poll for this long before trying it again
_WEBSOCKET_FAILURES = (OSError, TimeoutError, WebSocketException, RuntimeError)
SendHook = Callable[[Signature, int | None, bytes], None]
"""Called with a transaction's signature, its last valid block height and its signed bytes before it is sent."""


def _status_rank(status: Any) -> int:
    level = status.confirmation_status
    name = str(level).rsplit(".", 1)[-1].lower() if level is not None else "finalized"
    return _COMMITMENT_RANK.get(name, 2)


class TransactionClient:
    """A wallet on a cluster that sends GhostPay transactions: the base of `GhostPayClient` (its arguments
    are documented there). Use as `async with ...:`; `close()` closes the HTTP connection pool."""

    def __init__(
        self,
        cluster: str = "localnet",
        keypair: KeypairSource = None,
        *,
        commitment: Commitment = Confirmed,
        program_id: Pubkey | str | None = None,
        ws_url: str | None = None,
        priority_fee: int | None = None,
        timeout: float = 10.0,
        confirm_timeout: float = 30.0,
        blockhash_retries: int = 2,
        on_send: SendHook | None = None,
        details: bool = True,
    ) -> None:
        self.cluster: Cluster = resolve(cluster, ws_url)
        self.commitment = commitment
        self.program_id = Pubkey.from_string(program_id) if isinstance(program_id, str) else (program_id or PROGRAM_ID)
        if keypair is None and not default_keypair_path().exists():
            self._keypair: Keypair | None = None
        else:
            self._keypair = load_keypair(keypair)
        self.priority_fee = priority_fee
        self.confirm_timeout = confirm_timeout
        self.blockhash_retries = blockhash_retries
        self.on_send = on_send
        self.details = details
        self.rpc = AsyncClient(self.cluster.http_url, commitment=commitment, timeout=timeout)
        self._genesis_hash: str | None = None
        self._blockhash: tuple[Hash, int, float] | None = None  # the cached one, its last valid height, when read
        self._signed_with_cached: set[Signature] = set()  # signatures sent with the cached blockhash
        self._watcher = SignatureWatcher(self.cluster.ws_url, str(commitment), open_timeout=timeout)
        self._websocket_retry_at = 0.0  # monotonic time before which the websocket is not tried again

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connection pool and the websocket."""
        self._watcher.close()
        await self.rpc.close()

    @property
    def keypair(self) -> Keypair:
        """The wallet that signs and pays (InvalidArgument if the client was opened read-only)."""
        if self._keypair is None:
            raise InvalidArgument("no keypair: pass keypair= (none found at the Solana CLI default)")
        return self._keypair

    @property
    def wallet(self) -> Pubkey:
        """The wallet's public key (the signer of every transaction the client sends)."""
        return self.keypair.pubkey()

    # RPC calls -----------------------------------------------------------------------------------------------

    async def _rpc(self, call: Awaitable[T]) -> T:
        """Await an AsyncClient call, translating every failure into the SDK's exceptions."""
        try:
            return await call
        except RPCException as exc:
            raise self._rpc_exception(exc) from None
        except _TRANSPORT_FAILURES as exc:
            raise self._transport_error(exc) from exc
        except GhostPayError:
            raise
        except Exception as exc:  # solders parse errors on a non-JSON-RPC answer
            raise TransportError(f"{self.cluster.http_url}: unexpected answer: {exc}") from exc

    def _transport_error(self, exc: BaseException) -> TransportError:
        cause = exc.__cause__ or exc
        return TransportError(f"{self.cluster.http_url}: {type(cause).__name__}: {cause}")

    def _rpc_exception(
        self, exc: RPCException, message: Message | MessageV0 | None = None, signature: Signature | None = None
    ) -> GhostPayError:
        parsed = exc.args[0] if exc.args else None
        if isinstance(parsed, SendTransactionPreflightFailureMessage):
            data = parsed.data
            if data.err is not None and "BlockhashNotFound" in str(data.err):
                return BlockhashExpired("blockhash not found")
            return self._transaction_error(data.err, list(data.logs or []), signature, message)
        return RpcError(getattr(parsed, "message", str(parsed)), getattr(parsed, "code", None), parsed)

    def _transaction_error(
        self, err: Any, logs: Sequence[str], signature: Signature | None, message: Message | MessageV0 | None
    ) -> TransactionError:
        index = err.index if isinstance(err, TransactionErrorInstructionError) else None
        for line in logs:  # Anchor's log line names the error even inside a CPI
            match = ANCHOR_LOG.search(line)
            if match:
                return ProgramError.from_code(int(match.group(2)), err, logs, signature, index)
        if isinstance(err, TransactionErrorInstructionError) and isinstance(err.err, InstructionErrorCustom):
            program = None
            if message is not None and index is not None and index < len(message.instructions):
                program = message.account_keys[message.instructions[index].program_id_index]
            if program is None or program == self.program_id:
                return ProgramError.from_code(err.err.code, err, logs, signature, index)
            if program in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
                return TokenProgramError(err.err.code, err, logs, signature, index)
        if "AlreadyProcessed" in str(err):
            return AlreadyProcessed(
                f"transaction already processed: {signature or 'the same signed bytes'} landed "
                "before; nothing more was done",
                err,
                logs,
                signature,
                index,
            )
        return TransactionError(f"transaction failed: {err}", err, logs, signature, index)

    async def latest_blockhash(self) -> tuple[Hash, int]:
        """The latest blockhash and its last valid block height (read from the node; `send` signs with it until
        it is `BLOCKHASH_MAX_AGE` seconds old)."""
        value = (await self._rpc(self.rpc.get_latest_blockhash(self.commitment))).value
        if self._blockhash is None or self._blockhash[0] != value.blockhash:
            self._signed_with_cached.clear()
        self._blockhash = (value.blockhash, value.last_valid_block_height, time.monotonic())
        return value.blockhash, value.last_valid_block_height

    async def _recent_blockhash(self) -> tuple[Hash, int]:
        """The cached blockhash while it is younger than BLOCKHASH_MAX_AGE, else the node's latest."""
        cached = self._blockhash
        if cached is not None and time.monotonic() - cached[2] < BLOCKHASH_MAX_AGE:
            return cached[0], cached[1]
        return await self.latest_blockhash()

    async def _sign(
        self, instructions: list[Instruction], payer: Keypair, keypairs: list[Keypair]
    ) -> tuple[Transaction, int]:
        """The transaction signed with the cached blockhash; with the node's latest instead when the same
        transaction was already sent with the cached one (the same bytes again would only be refused as
        already processed: two identical calls stay two transactions once the slot moves on, as without a
        cache)."""
        blockhash, last_valid = await self._recent_blockhash()
        tx = Transaction(keypairs, Message.new_with_blockhash(instructions, payer.pubkey(), blockhash), blockhash)
        if tx.signatures[0] in self._signed_with_cached:
            blockhash, last_valid = await self.latest_blockhash()
            tx = Transaction(keypairs, Message.new_with_blockhash(instructions, payer.pubkey(), blockhash), blockhash)
        if self._blockhash is not None and blockhash == self._blockhash[0]:
            self._signed_with_cached.add(tx.signatures[0])
        return tx, last_valid

    # sending: sign, send, confirm, recover ----------------------------------------------------------------

    def _budget(self, compute_unit_limit: int | None, priority_fee: int | None) -> list[Instruction]:
        out = []
        if compute_unit_limit is not None:
            out.append(set_compute_unit_limit(compute_unit_limit))
        fee = priority_fee if priority_fee is not None else self.priority_fee
        if fee:
            out.append(set_compute_unit_price(fee))
        return out

    async def send(
        self,
        instructions: Sequence[Instruction],
        signers: Sequence[Keypair] = (),
        *,
        fee_payer: Keypair | None = None,
        compute_unit_limit: int | None = None,
        priority_fee: int | None = None,
        address: Pubkey | None = None,
        details: bool | None = None,
    ) -> TxResult:
        """Sign with the fee payer (default: the wallet) and `signers`, send, confirm; a new blockhash
        is fetched and the transaction re-signed when the node says the old one expired, which it says only
        once that transaction can no longer land (`blockhash_retries`). `details` (default: the client's):
        read the landed transaction back for its logs, compute units and events."""
        payer = fee_payer or self.keypair
        all_ixs = self._budget(compute_unit_limit, priority_fee) + list(instructions)
        keypairs = [payer] + [k for k in signers if k.pubkey() != payer.pubkey()]
        for attempt in range(self.blockhash_retries + 1):
            transaction, last_valid = await self._sign(all_ixs, payer, keypairs)
            try:
                return await self.send_transaction(transaction, last_valid, address=address, details=details)
            except BlockhashExpired:
                self._blockhash = None  # the next attempt signs with the node's latest
                if attempt == self.blockhash_retries:
                    raise
        raise AssertionError("unreachable")

    async def send_transaction(
        self,
        transaction: Transaction | VersionedTransaction,
        last_valid_block_height: int | None = None,
        *,
        address: Pubkey | None = None,
        details: bool | None = None,
    ) -> TxResult:
        """Send a fully signed transaction and wait for it (e.g. a facilitator completing a PreparedPayment).

        If the connection fails, hangs or answers HTTP errors after the transaction may have left, the
        outcome is recovered from the signature's status (the same signed bytes are re-sent meanwhile:
        one signature lands at most once); `OutcomeUnknown` if the node stays silent for `confirm_timeout`.
        `details` (default: the client's): read the landed transaction back for its logs, compute units and
        events (a failed one always is: its logs name the error).
        """
        signature = transaction.signatures[0]
        raw = bytes(transaction)
        if self.on_send is not None:
            self.on_send(signature, last_valid_block_height, raw)
        watch = await self._watch(signature)  # before the send: no notification can be missed
        opts = TxOpts(skip_confirmation=True, preflight_commitment=self.commitment)
        fetch = self.details if details is None else details
        try:
            try:
                await self.rpc.send_raw_transaction(raw, opts)
            except RPCException as exc:
                raise self._rpc_exception(exc, transaction.message, signature) from None
            except _TRANSPORT_FAILURES as exc:
                slot, fetch = (
                    await self._resolve(signature, raw, last_valid_block_height, self._transport_error(exc)),
                    True,
                )
            else:
                try:
                    slot, failed = await self._confirm(signature, last_valid_block_height, watch)
                    fetch = fetch or failed
                except TransportError as exc:
                    slot, fetch = await self._resolve(signature, raw, last_valid_block_height, exc), True
                except OutcomeUnknown as exc:
                    exc.transaction = raw
                    raise
        finally:
            if watch is not None and not watch.done():
                self._watcher.forget(watch)
        if not fetch:
            return TxResult(signature, slot, None, address=address)
        return await self._result(signature, slot, transaction.message, address)

    async def _watch(self, signature: Signature) -> concurrent.futures.Future[Notification] | None:
        """A subscription to the signature's confirmation on the client's websocket, or None while the
        websocket is unavailable (the confirmation is then polled)."""
        if time.monotonic() < self._websocket_retry_at:
            return None
        try:
            if not self._watcher.connected:
                await asyncio.to_thread(self._watcher.connect)
            return self._watcher.watch(str(signature))
        except _WEBSOCKET_FAILURES:
            self._websocket_retry_at = time.monotonic() + WEBSOCKET_RETRY_SECONDS
            return None

    async def _resolve(
        self, signature: Signature, raw: bytes, last_valid_block_height: int | None, cause: TransportError
    ) -> int:
        try:
            return await self._recover(signature, raw, last_valid_block_height, cause)
        except OutcomeUnknown as exc:  # what resume_transaction needs to finish it later
            exc.transaction = raw
            raise

    async def _recover(
        self, signature: Signature, raw: bytes, last_valid_block_height: int | None, cause: TransportError
    ) -> int:
        """The slot of a transaction whose send or confirmation lost the connection: poll its status
        until the node answers, re-sending the same bytes while it is unknown and the blockhash valid."""
        deadline = time.monotonic() + self.confirm_timeout
        wanted = _COMMITMENT_RANK.get(str(self.commitment), 1)
        delay = 0.1
        while time.monotonic() < deadline:
            try:
                status = (await self._rpc(self.rpc.get_signature_statuses([signature]))).value[0]
                if status is not None and (status.err is not None or _status_rank(status) >= wanted):
                    return status.slot
                if status is None:
                    await self._raise_if_expired(signature, last_valid_block_height)
                if status is None:  # it may never have left: the same bytes cannot land twice
                    await self._resend(raw)
            except (TransportError, RpcError):
                pass  # still unreachable: look again
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise OutcomeUnknown(
            f"{signature}: sent, but the RPC did not say whether it landed ({cause})",
            signature,
            last_valid_block_height=last_valid_block_height,
        )

    async def _resend(self, raw: bytes) -> None:
        """Send the same signed bytes again, with preflight: a refusal there means it never landed (raised, as
        the first send would have), "already processed" that it did (the status will show it)."""
        with contextlib.suppress(AlreadyProcessed):
            await self._rpc(
                self.rpc.send_raw_transaction(raw, TxOpts(skip_confirmation=True, preflight_commitment=self.commitment))
            )

    async def _confirm(
        self,
        signature: Signature,
        last_valid_block_height: int | None,
        watch: concurrent.futures.Future[Notification] | None = None,
    ) -> tuple[int, bool]:
        """(slot, whether it failed) of a sent transaction once it reaches the client's commitment: told by
        `watch` (its subscription), its status read every WATCH_POLL_SECONDS meanwhile, or polled without one."""
        deadline = time.monotonic() + self.confirm_timeout
        wanted = _COMMITMENT_RANK.get(str(self.commitment), 1)
        notified = None if watch is None else asyncio.wrap_future(watch)
        delay = 0.02
        while True:
            if notified is not None:
                await asyncio.wait({notified}, timeout=max(0.0, min(WATCH_POLL_SECONDS, deadline - time.monotonic())))
                if notified.done():
                    if notified.exception() is None:  # else the websocket dropped: poll
                        return notified.result().slot, notified.result().err is not None
                    notified = None
            status = (await self._rpc(self.rpc.get_signature_statuses([signature]))).value[0]
            if status is not None and (status.err is not None or _status_rank(status) >= wanted):
                return status.slot, status.err is not None
            if status is None:
                await self._raise_if_expired(signature, last_valid_block_height)
            if time.monotonic() > deadline:
                raise OutcomeUnknown(
                    f"{signature}: not confirmed in {self.confirm_timeout}s",
                    signature,
                    last_valid_block_height=last_valid_block_height,
                )
            if notified is None:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def _raise_if_expired(self, signature: Signature, last_valid_block_height: int | None) -> None:
        """BlockhashExpired if the blockhash is past and the transaction did not land. The status is read
        again once the height is past: it may have landed between the first look and the height's, and
        an expiry must be definitive (the callers then sign a new transaction, which would pay twice)."""
        if last_valid_block_height is None:
            return
        height = (await self._rpc(self.rpc.get_block_height(self.commitment))).value
        if height <= last_valid_block_height:
            return
        if await self.get_signature_status(signature) is None:
            raise BlockhashExpired(f"{signature}: blockhash expired before it landed", signature)

    async def landed_transaction(self, signatures: Sequence[Signature | str]) -> TxResult | None:
        """The result of whichever of `signatures` landed, once confirmed (one that landed and failed raises
        its error), or None if the node knows none of them."""
        for signature in signatures:
            sig = Signature.from_string(signature) if isinstance(signature, str) else signature
            if await self.get_signature_status(sig) is not None:
                return await self._result(sig, (await self._confirm(sig, None))[0], None, None)
        return None

    async def resume_transaction(
        self, signatures: Sequence[Signature | str], transaction: bytes | None, last_valid_block_height: int | None
    ) -> TxResult | None:
        """Finish what an earlier send left unknown (`OutcomeUnknown`, or a journal of `on_send`): the result
        of whichever of `signatures` landed; else, while the blockhash of the last one is valid, its signed
        bytes (`transaction`) sent again, which land at most once; else (without the bytes) its blockhash
        waited out. None means none landed and none can any more (their blockhashes expired): nothing they
        did happened, and a new transaction is safe. Signatures must be given oldest first, the last one
        being `transaction`'s, whose blockhash is the newest; without `last_valid_block_height` only whether
        one landed is checked. `OutcomeUnknown` again if the node stays silent."""
        found = await self.landed_transaction(signatures)
        if found is not None or last_valid_block_height is None:
            return found
        if transaction is not None:
            tx = VersionedTransaction.from_bytes(transaction)
            try:
                return await self.send_transaction(tx, last_valid_block_height, details=True)
            except (BlockhashExpired, AlreadyProcessed):  # expired before it was sent again, or it landed meanwhile
                pass
        else:
            while (await self._rpc(self.rpc.get_block_height(self.commitment))).value <= last_valid_block_height:
                await asyncio.sleep(0.4)
        return await self.landed_transaction(signatures)

    async def genesis_hash(self) -> str:
        """The cluster's genesis hash: what names a chain whichever endpoint serves it (read once)."""
        if self._genesis_hash is None:
            self._genesis_hash = str((await self._rpc(self.rpc.get_genesis_hash())).value)
        return self._genesis_hash

    async def get_signature_status(self, signature: Signature | str) -> Any:
        """The node's status of a signature (solders `TransactionStatus`: slot, err, confirmation level), or
        None if the node has not seen it."""
        sig = Signature.from_string(signature) if isinstance(signature, str) else signature
        return (await self._rpc(self.rpc.get_signature_statuses([sig], search_transaction_history=True))).value[0]

    async def landed(self, signature: Signature | str) -> bool:
        """Whether the node has the transaction at the client's commitment (confirmed at least) without an error:
        its status, not the transaction."""
        status = await self.get_signature_status(signature)
        wanted = max(_COMMITMENT_RANK.get(str(self.commitment), 1), _COMMITMENT_RANK["confirmed"])
        return status is not None and status.err is None and _status_rank(status) >= wanted

    async def transaction_details(self, result: TxResult) -> TxResult:
        """`result` with its logs, compute units and events, read from the node (for one sent with
        `details=False`)."""
        return await self._result(result.signature, result.slot, None, result.address)

    async def _result(
        self, signature: Signature, slot: int, message: Message | MessageV0 | None, address: Pubkey | None
    ) -> TxResult:
        commitment = Confirmed if str(self.commitment) == str(Processed) else self.commitment
        tx = None
        for _ in range(20):
            try:
                tx = (await self._rpc(self.rpc.get_transaction(signature, "json", commitment, 0))).value
            except TransportError:  # the status said it landed: report that, without its logs
                break
            if tx is not None:
                break
            await asyncio.sleep(0.05)
        if tx is None or tx.transaction.meta is None:
            return TxResult(signature, slot, None, address=address)
        meta = tx.transaction.meta
        logs = list(meta.log_messages or [])
        if meta.err is not None:
            raise self._transaction_error(meta.err, logs, signature, message)
        return TxResult(
            signature,
            tx.slot,
            meta.compute_units_consumed,
            logs,
            decode_events(logs, self.program_id, signature, tx.slot),
            address,
        )

    async def simulate(
        self,
        instructions: Sequence[Instruction],
        signers: Sequence[Keypair] = (),
        *,
        fee_payer: Keypair | None = None,
        compute_unit_limit: int | None = None,
    ) -> Simulation:
        """Simulate: compute units consumed, logs, and the typed error it would raise."""
        payer = fee_payer or self.keypair
        blockhash, _ = await self._recent_blockhash()
        message = Message.new_with_blockhash(
            self._budget(compute_unit_limit, None) + list(instructions), payer.pubkey(), blockhash
        )
        keypairs = [payer] + [k for k in signers if k.pubkey() != payer.pubkey()]
        value = (
            await self._rpc(
                self.rpc.simulate_transaction(Transaction(keypairs, message, blockhash), commitment=self.commitment)
            )
        ).value
        logs = list(value.logs or [])
        error = self._transaction_error(value.err, logs, None, message) if value.err is not None else None
        fee = (await self._rpc(self.rpc.get_fee_for_message(message, self.commitment))).value
        return Simulation(value.units_consumed, logs, error, fee)

    async def _account_data(self, address: Pubkey) -> tuple[Pubkey, bytes] | None:
        value = (await self._rpc(self.rpc.get_account_info(address, self.commitment, "base64"))).value
        return None if value is None else (value.owner, bytes(value.data))

    async def _accounts_data(self, addresses: list[Pubkey]) -> list[tuple[Pubkey, bytes] | None]:
        """Several accounts' (owner, data), in one call (at most 100)."""
        if len(addresses) == 1:
            return [await self._account_data(addresses[0])]
        values = (await self._rpc(self.rpc.get_multiple_accounts(addresses, self.commitment, "base64"))).value
        return [None if value is None else (value.owner, bytes(value.data)) for value in values]

    async def _send_raw_ixs(self, instructions: list[Instruction]) -> TxResult:
        # the budget instructions are already in `instructions`: no second set
        saved, self.priority_fee = self.priority_fee, None
        try:
            return await self.send(instructions)
        finally:
            self.priority_fee = saved


__all__ = ["SendHook", "TransactionClient"]
