"""The SDK's exceptions: one hierarchy under `GhostPayError`, nothing else escapes the client.

    GhostPayError
    ├── InvalidArgument            (also a ValueError)
    │   ├── UnknownTokenLabel      a token label the cluster does not have (labels are per cluster)
    │   └── TokenLabelTaken        the label already names another mint on that cluster
    ├── AccountNotFound
    ├── TransportError             the node could not be reached or answered garbage
    ├── RpcError                   the node answered with a JSON-RPC error
    ├── TransactionTimeout         not confirmed in time
    │   ├── OutcomeUnknown         sent, but whether it landed could not be learnt: signature, reference,
    │   │                          last valid block height and signed bytes to resume it with
    │   └── BlockhashExpired       its blockhash expired before it landed (after retries)
    ├── TransactionError           the transaction failed on chain (or in preflight)
    │   ├── TokenProgramError      SPL Token / Token-2022 refused it: name and code of spl-token's TokenError
    │   └── ProgramError           a GhostPay program error: name, code, message from the IDL
    │       └── one class per IDL error (e.g. PaymentBelowPrice) and per Anchor framework error
    ├── SpendingRefused            a spending guard refused a payment: nothing was signed or sent
    │   ├── BudgetExceeded         an hourly, daily or total budget of the mint would be exceeded
    │   ├── PriceAboveMaximum      the price is over the per-call maximum
    │   ├── SellerNotAllowed       the seller (payTo or agent) is blocked or not in the allowed list
    │   ├── MintNotAllowed         the mint is not in the allowed list
    │   ├── RateLimited            more calls in the last minute than the guards allow
    │   └── PaymentDeclined        the confirm callback (the CLI: the user) said no
    └── X402Error                  an x402 exchange failed (the 402, the requirements, the paid retry)
        ├── PaymentRequirementsInvalid  the seller's 402 cannot be read or misses what a payment needs
        └── NoPayableRequirement        no accepted (network, mint) this wallet can pay

The typed classes are made from the generated error tables (ghostpay.errors, itself generated
from the IDL), so a new IDL error needs no change here. Where the SDK refuses a value before
sending (e.g. an agent_id too long to be a PDA seed, a share over 65,535 bps) it raises the
program's own class, without logs or signature: `except AgentIdInvalid` catches both.

    >>> err = ProgramError.from_code(6024)
    >>> isinstance(err, PaymentBelowPrice), err.name, err.code
    (True, 'PaymentBelowPrice', 6024)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from ghostpay.errors import anchor as _anchor_errors, custom as _custom_errors

__all__ = [
    "GhostPayError",
    "InvalidArgument",
    "AccountNotFound",
    "TransportError",
    "RpcError",
    "UnknownTokenLabel",
    "TokenLabelTaken",
    "TransactionTimeout",
    "OutcomeUnknown",
    "BlockhashExpired",
    "TransactionError",
    "TokenProgramError",
    "ProgramError",
    "program_error_class",
    "SpendingRefused",
    "BudgetExceeded",
    "PriceAboveMaximum",
    "SellerNotAllowed",
    "MintNotAllowed",
    "RateLimited",
    "PaymentDeclined",
    "X402Error",
    "PaymentRequirementsInvalid",
    "NoPayableRequirement",
]


class GhostPayError(Exception):
    """Base of every exception the SDK raises."""


class InvalidArgument(GhostPayError, ValueError):
    """A value the SDK refuses before anything is sent (bad amount, reference, keypair, URL...)."""


class UnknownTokenLabel(InvalidArgument):
    """A token label that names no mint on this cluster (`ghostpay.token_labels`): `label`, the `cluster`'s
    name, `elsewhere`, the clusters where it does name a mint, and `what` named it (e.g. the spending guards)."""

    def __init__(
        self, message: str, *, label: str = "", cluster: str = "", elsewhere: Sequence[str] = (), what: str = "token"
    ) -> None:
        super().__init__(message)
        self.label, self.cluster, self.elsewhere, self.what = label, cluster, list(elsewhere), what


class TokenLabelTaken(InvalidArgument):
    """The token label already names another mint (`mint`) on the cluster: moving it must be asked for."""

    def __init__(self, message: str, *, label: str = "", mint: str = "") -> None:
        super().__init__(message)
        self.label, self.mint = label, mint


class AccountNotFound(GhostPayError):
    """The account does not exist (or is not a GhostPay account of the expected type)."""

    def __init__(self, address: Any, what: str = "account", *, agent_id: str | None = None, owner: Any = None) -> None:
        if agent_id is not None:  # the caller typed an agent_id: the address is derived, name what was typed
            message = (
                f"no agent {agent_id!r} among the agents of {owner} (an agent_id names one of your own "
                "agents); to reach another wallet's agent, pass its address"
            )
        else:
            message = f"{what} {address} not found"
        super().__init__(message)
        self.address = address
        self.what = what
        self.agent_id = agent_id


class TransportError(GhostPayError):
    """The RPC node could not be reached, timed out, or answered something that is not JSON-RPC."""


class RpcError(GhostPayError):
    """The RPC node answered with a JSON-RPC error."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message if code is None else f"{message} (RPC error {code})")
        self.message = message
        self.code = code
        self.data = data


class TransactionTimeout(GhostPayError):
    """The transaction was sent but not seen confirmed in time; it may still land."""

    def __init__(self, message: str, signature: Any = None) -> None:
        super().__init__(message)
        self.signature = signature


class OutcomeUnknown(TransactionTimeout):
    """The transaction was (or may have been) sent and the node never said whether it landed: the
    connection failed, hung or answered HTTP errors after the send, and kept doing so while the SDK
    checked the signature's status. It may still land until the block height passes
    `last_valid_block_height`. Never build a new transaction for it: `GhostPayClient.resume_payment(exc)`
    (or `resume_transaction(...)`) learns whether `signature` landed, sends the same signed bytes
    (`transaction`) again while they can land (at most once), and says when they never can."""

    def __init__(
        self,
        message: str,
        signature: Any = None,
        reference: bytes | None = None,
        last_valid_block_height: int | None = None,
        transaction: bytes | None = None,
    ) -> None:
        super().__init__(message, signature)
        self.reference = reference
        self.last_valid_block_height = last_valid_block_height
        self.transaction = transaction


class BlockhashExpired(TransactionTimeout):
    """The blockhash expired before the transaction landed, on every attempt."""


class TransactionError(GhostPayError):
    """The transaction failed: `err` is the runtime's error, `logs` the program logs if known."""

    def __init__(
        self,
        message: str,
        err: Any = None,
        logs: Sequence[str] = (),
        signature: Any = None,
        instruction_index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.err = err
        self.logs = list(logs)
        self.signature = signature
        self.instruction_index = instruction_index


class AlreadyProcessed(TransactionError):
    """These exact signed bytes were processed before (sent twice with one blockhash): the first one's outcome
    stands, under the same signature, and nothing more was done."""


# spl-token's TokenError, in code order (Token-2022 shares the codes it has in common)
TOKEN_ERRORS = (
    ("NotRentExempt", "lamport balance below rent-exempt threshold"),
    ("InsufficientFunds", "insufficient funds"),
    ("InvalidMint", "invalid mint"),
    ("MintMismatch", "account not associated with this mint"),
    ("OwnerMismatch", "owner does not match"),
    ("FixedSupply", "fixed supply"),
    ("AlreadyInUse", "account or token already in use"),
    ("InvalidNumberOfProvidedSigners", "invalid number of provided signers"),
    ("InvalidNumberOfRequiredSigners", "invalid number of required signers"),
    ("UninitializedState", "state is uninitialized"),
    ("NativeNotSupported", "instruction does not support native tokens"),
    ("NonNativeHasBalance", "non-native account can only be closed if its balance is zero"),
    ("InvalidInstruction", "invalid instruction"),
    ("InvalidState", "state is invalid for requested operation"),
    ("Overflow", "operation overflowed"),
    ("AuthorityTypeNotSupported", "account does not support specified authority type"),
    ("MintCannotFreeze", "this token mint cannot freeze accounts"),
    ("AccountFrozen", "account is frozen"),
    ("MintDecimalsMismatch", "the provided decimals value different from the mint decimals"),
    ("NonNativeNotSupported", "instruction does not support non-native tokens"),
)


class TokenProgramError(TransactionError):
    """The token program (SPL Token or Token-2022) refused an instruction: `name` and `code` of its TokenError
    (e.g. `InsufficientFunds`, 1), `message` as the program words it."""

    def __init__(
        self,
        code: int,
        err: Any = None,
        logs: Sequence[str] = (),
        signature: Any = None,
        instruction_index: int | None = None,
    ) -> None:
        self.code = code
        self.name, self.message = (
            TOKEN_ERRORS[code] if 0 <= code < len(TOKEN_ERRORS) else (f"TokenError{code}", "token program error")
        )
        super().__init__(f"{self.name} ({code}): {self.message}", err, logs, signature, instruction_index)


class ProgramError(TransactionError):
    """A GhostPay program error with its IDL `name`, `code` and `message`.

    Catch a specific one by class (`except PaymentBelowPrice`), or this base for all.
    """

    code: int = -1  # the class's; an error of a code unknown to this SDK sets its own
    name: ClassVar[str] = "ProgramError"
    message: ClassVar[str] = ""
    _by_code: ClassVar[dict[int, type[ProgramError]]] = {}
    _by_name: ClassVar[dict[str, type[ProgramError]]] = {}

    def __init__(
        self,
        err: Any = None,
        logs: Sequence[str] = (),
        signature: Any = None,
        instruction_index: int | None = None,
        code: int | None = None,
    ) -> None:
        if code is not None and type(self).code == -1:
            self.code = code
        super().__init__(f"{self.name} ({self.code}): {self.message}", err, logs, signature, instruction_index)

    @classmethod
    def from_code(
        cls,
        code: int,
        err: Any = None,
        logs: Sequence[str] = (),
        signature: Any = None,
        instruction_index: int | None = None,
    ) -> ProgramError:
        """The typed exception of `code` (a plain `ProgramError` for codes the IDL does not know)."""
        klass = cls._by_code.get(code)
        if klass is None:
            return ProgramError(err, logs, signature, instruction_index, code=code)
        return klass(err, logs, signature, instruction_index)


class SpendingRefused(GhostPayError):
    """A spending guard refused the payment before anything was signed or sent."""


class BudgetExceeded(SpendingRefused):
    """Paying `amount` would take the `window` budget (hour, day, total) of `mint` over `limit`."""

    def __init__(
        self,
        message: str,
        *,
        mint: str = "",
        window: str = "",
        limit: Any = None,
        spent: Any = None,
        amount: Any = None,
    ) -> None:
        super().__init__(message)
        self.mint, self.window, self.limit, self.spent, self.amount = mint, window, limit, spent, amount


class PriceAboveMaximum(SpendingRefused):
    """The price asked (`amount` of `mint`) is over the per-call maximum (`maximum`: `max_price`, or the
    guards' per-call limit)."""

    def __init__(self, message: str, *, mint: str = "", maximum: Any = None, amount: Any = None) -> None:
        super().__init__(message)
        self.mint, self.maximum, self.amount = mint, maximum, amount


class SellerNotAllowed(SpendingRefused):
    """The seller (its payTo wallet or its agent) is blocked, or not in the allowed list."""


class MintNotAllowed(SpendingRefused):
    """The mint asked for is not one the guards allow."""


class RateLimited(SpendingRefused):
    """More paid calls in the last minute than the guards allow."""


class PaymentDeclined(SpendingRefused):
    """The confirm callback declined a payment above the confirmation threshold."""


class X402Error(GhostPayError):
    """An x402 exchange failed: the 402 could not be read, or nothing in it can be paid."""


class PaymentRequirementsInvalid(X402Error):
    """The seller's 402 cannot be read, or misses a field the payment needs (named in the message)."""


class NoPayableRequirement(X402Error):
    """No requirement of the 402 is one this wallet can pay: scheme, network, mint or balance."""


class TokenNotAccepted(NoPayableRequirement):
    """The buyer asked to pay in mints the seller does not accept (`asked`); the seller's are `accepted`."""

    def __init__(self, message: str, *, asked: list[str], accepted: list[str]) -> None:
        super().__init__(message)
        self.asked = asked
        self.accepted = accepted


def program_error_class(name_or_code: str | int) -> type[ProgramError]:
    """The exception class of an IDL error, by name or code.

    >>> program_error_class("NameInvalid").code
    6001
    """
    try:
        if isinstance(name_or_code, int):
            return ProgramError._by_code[name_or_code]
        return ProgramError._by_name[name_or_code]
    except KeyError:
        raise InvalidArgument(f"no GhostPay program error {name_or_code!r}") from None


def _register(code: int, name: str, message: str) -> type[ProgramError]:
    klass = type(
        name,
        (ProgramError,),
        {
            "code": code,
            "name": name,
            "message": message,
            "__doc__": f"Program error {code}: {message}",
            "__module__": __name__,
        },
    )
    ProgramError._by_code[code] = klass
    ProgramError._by_name[name] = klass
    globals()[name] = klass
    __all__.append(name)
    return klass


# Anchor's framework errors first, then the program's own (which win on a name clash).
for _map in (_anchor_errors.ANCHOR_ERROR_MAP, _custom_errors.CUSTOM_ERROR_MAP):
    for _code, _err in _map.items():
        _register(_code, type(_err).name, type(_err).msg)

ANCHOR_LOG = re.compile(r"AnchorError .*Error Code: (\w+)\. Error Number: (\d+)\. Error Message: (.*?)\.?$")


def __getattr__(name: str) -> type[ProgramError]:  # for type checkers: IDL error classes are dynamic
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
