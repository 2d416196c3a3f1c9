"""GhostPay: pay AI agents on Solana.

The public surface, importable from the package itself:

    from decimal import Decimal
    from ghostpay import GhostPay, X402Settings, OutcomeUnknown

    with GhostPay("localnet", keypair="~/.config/solana/id.json") as gp:      # GhostPayClient: the async one
        paid = gp.pay_agent(agent)                                            # agent: an address or agent_id

- clients: `GhostPayClient` (async), `GhostPay` (the same methods, blocking);
- values: `X402Settings`, `Atomic`, and what the methods return (`TxResult`, `PaymentResult`,
  `PreparedPayment`, `Simulation`, `AgentInfo`, `TokenEarnings`, `Pricing`, `Receipt`, `Reputation`, `Tier`,
  `WorkOrderInfo`, `NewWorkOrder`, `ProgramEvent`);
- errors: `GhostPayError` and its family (`ghostpay.exceptions`; one class per program error there too);
- `PROGRAM_ID`, `__version__`.

Names are imported on first use, so `import ghostpay` (and `ghost --help`) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what a type checker sees of the names imported on first use (a test keeps both equal)
    from ghostpay.client import (
        AgentInfo as AgentInfo,
        GhostPayClient as GhostPayClient,
        NewWorkOrder as NewWorkOrder,
        PaymentResult as PaymentResult,
        PreparedPayment as PreparedPayment,
        Pricing as Pricing,
        Receipt as Receipt,
        Reputation as Reputation,
        Simulation as Simulation,
        TokenEarnings as TokenEarnings,
        TxResult as TxResult,
        WorkOrderInfo as WorkOrderInfo,
        X402Settings as X402Settings,
    )
    from ghostpay.events import ProgramEvent as ProgramEvent
    from ghostpay.exceptions import (
        AccountNotFound as AccountNotFound,
        AlreadyProcessed as AlreadyProcessed,
        BlockhashExpired as BlockhashExpired,
        GhostPayError as GhostPayError,
        InvalidArgument as InvalidArgument,
        OutcomeUnknown as OutcomeUnknown,
        ProgramError as ProgramError,
        RpcError as RpcError,
        TokenLabelTaken as TokenLabelTaken,
        TokenProgramError as TokenProgramError,
        TransactionError as TransactionError,
        TransactionTimeout as TransactionTimeout,
        TransportError as TransportError,
        UnknownTokenLabel as UnknownTokenLabel,
    )
    from ghostpay.program_id import PROGRAM_ID as PROGRAM_ID
    from ghostpay.reputation import Tier as Tier
    from ghostpay.sync_client import GhostPay as GhostPay
    from ghostpay.tokens import Atomic as Atomic

__version__ = "0.1.0"

_EXPORTS = {
    "GhostPayClient": "ghostpay.client",
    "X402Settings": "ghostpay.client",
    "TxResult": "ghostpay.client",
    "PaymentResult": "ghostpay.client",
    "PreparedPayment": "ghostpay.client",
    "Simulation": "ghostpay.client",
    "AgentInfo": "ghostpay.client",
    "TokenEarnings": "ghostpay.client",
    "Pricing": "ghostpay.client",
    "Receipt": "ghostpay.client",
    "Reputation": "ghostpay.client",
    "WorkOrderInfo": "ghostpay.client",
    "NewWorkOrder": "ghostpay.client",
    "GhostPay": "ghostpay.sync_client",
    "Atomic": "ghostpay.tokens",
    "Tier": "ghostpay.reputation",
    "ProgramEvent": "ghostpay.events",
    "PROGRAM_ID": "ghostpay.program_id",
    **{
        name: "ghostpay.exceptions"
        for name in (
            "GhostPayError",
            "InvalidArgument",
            "AccountNotFound",
            "TransportError",
            "RpcError",
            "TransactionTimeout",
            "OutcomeUnknown",
            "BlockhashExpired",
            "TransactionError",
            "AlreadyProcessed",
            "TokenProgramError",
            "ProgramError",
            "UnknownTokenLabel",
            "TokenLabelTaken",
        )
    },
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ghostpay' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
