"""Instructions of the work-order escrow, with every account derived.

The generated builders (ghostpay.instructions) take each account explicitly and
always name SPL Token as the token program; these fill in the PDAs, the
parties' associated token accounts and the mint's own token program (SPL Token
or Token-2022).

    >>> from solders.pubkey import Pubkey
    >>> client, agent, owner, arbiter, mint, vault = (Pubkey.new_unique() for _ in range(6))
    >>> terms = WorkOrderTerms(amount=5_000_000, deadline=1_900_000_000, arbiter=arbiter, title="Translate 10 pages")
    >>> ix = build_create_work_order(client, agent, mint, order_id=1, terms=terms, vault=vault)
    >>> order = WorkOrderRef.derive(client, 1, agent, owner, arbiter, mint, vault)
    >>> ix.accounts[0].pubkey == order.address
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_PROGRAM_ID

from ghostpay import artifacts
from ghostpay.accounts import WorkOrder
from ghostpay.instructions import (
    accept_work_order,
    cancel_work_order,
    claim_payment,
    claim_refund,
    create_work_order,
    decline_work_order,
    open_dispute,
    reject_delivery,
    release_payment,
    resolve_dispute,
    settle_by_default,
    submit_work_delivery,
)
from ghostpay.instructions.cancel_work_order import CancelWorkOrderAccounts
from ghostpay.instructions.release_payment import ReleasePaymentAccounts
from ghostpay.pda import associated_token_address, reputation_address, work_order_address
from ghostpay.program_id import PROGRAM_ID

CONTENT_HASH_LEN = 32


@dataclass(frozen=True)
class WorkOrderTerms:
    """What the client offers: `amount` in atomic units of the mint, a delivery deadline (unix time)."""

    amount: int
    deadline: int
    arbiter: Pubkey
    title: str
    description: str = ""
    requirements: tuple[str, ...] = ()
    review_period_seconds: int = 3 * 86_400


@dataclass(frozen=True)
class WorkOrderRef:
    """The keys every instruction on one work order needs."""

    address: Pubkey
    client: Pubkey
    agent: Pubkey
    provider_owner: Pubkey
    arbiter: Pubkey
    mint: Pubkey
    vault: Pubkey
    token_program: Pubkey = TOKEN_PROGRAM_ID
    program_id: Pubkey = field(default=PROGRAM_ID)

    @classmethod
    def derive(
        cls,
        client: Pubkey,
        order_id: int,
        agent: Pubkey,
        provider_owner: Pubkey,
        arbiter: Pubkey,
        mint: Pubkey,
        vault: Pubkey,
        token_program: Pubkey = TOKEN_PROGRAM_ID,
        program_id: Pubkey = PROGRAM_ID,
    ) -> WorkOrderRef:
        address, _ = work_order_address(client, order_id, program_id)
        return cls(address, client, agent, provider_owner, arbiter, mint, vault, token_program, program_id)

    @classmethod
    def from_account(
        cls,
        address: Pubkey,
        order: WorkOrder,
        token_program: Pubkey = TOKEN_PROGRAM_ID,
        program_id: Pubkey = PROGRAM_ID,
    ) -> WorkOrderRef:
        """From a decoded WorkOrder; `token_program` is the owner of its mint."""
        return cls(
            address,
            order.client,
            order.agent,
            order.provider_owner,
            order.arbiter,
            order.mint,
            order.vault,
            token_program,
            program_id,
        )

    @property
    def reputation(self) -> Pubkey:
        return reputation_address(self.agent, self.program_id)[0]

    def token_account(self, owner: Pubkey) -> Pubkey:
        return associated_token_address(owner, self.mint, self.token_program)


@cache
def _token_program_index(instruction_name: str) -> int:
    ix = next(i for i in artifacts.idl_dict()["instructions"] if i["name"] == instruction_name)
    return [a["name"] for a in ix["accounts"]].index("token_program")


def _with_token_program(ix: Instruction, instruction_name: str, token_program: Pubkey) -> Instruction:
    """The generated builders hard-code SPL Token; put the mint's program in its slot."""
    accounts = list(ix.accounts)
    accounts[_token_program_index(instruction_name)] = AccountMeta(token_program, is_signer=False, is_writable=False)
    return Instruction(ix.program_id, ix.data, accounts)


def build_create_work_order(
    client: Pubkey,
    agent: Pubkey,
    mint: Pubkey,
    order_id: int,
    terms: WorkOrderTerms,
    vault: Pubkey,
    token_program: Pubkey = TOKEN_PROGRAM_ID,
    client_token_account: Pubkey | None = None,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """`create_work_order`: moves `terms.amount` from the client's token account (default: its ATA) into a new
    vault at `vault`, the public key of a fresh keypair that must sign the transaction."""
    work_order, _ = work_order_address(client, order_id, program_id)
    ix = create_work_order(
        {
            "order_id": order_id,
            "amount": terms.amount,
            "deadline": terms.deadline,
            "review_period_seconds": terms.review_period_seconds,
            "arbiter": terms.arbiter,
            "title": terms.title,
            "description": terms.description,
            "requirements": list(terms.requirements),
        },
        {
            "work_order": work_order,
            "vault": vault,
            "client": client,
            "client_token_account": client_token_account or associated_token_address(client, mint, token_program),
            "agent": agent,
            "mint": mint,
        },
        program_id=program_id,
    )
    return _with_token_program(ix, "create_work_order", token_program)


def build_accept_work_order(order: WorkOrderRef, arbiter: Pubkey) -> Instruction:
    """`accept_work_order` naming the `arbiter` the provider agrees to (the program refuses any other)."""
    return accept_work_order(
        {"arbiter": arbiter},
        {"work_order": order.address, "provider": order.provider_owner},
        program_id=order.program_id,
    )


def build_submit_work_delivery(order: WorkOrderRef, deliverable_uri: str, content_hash: bytes) -> Instruction:
    if len(content_hash) != CONTENT_HASH_LEN:
        raise ValueError(f"the content hash is {CONTENT_HASH_LEN} bytes, got {len(content_hash)}")
    return submit_work_delivery(
        {"deliverable_uri": deliverable_uri, "content_hash": list(content_hash)},
        {"work_order": order.address, "provider": order.provider_owner},
        program_id=order.program_id,
    )


def build_reject_delivery(order: WorkOrderRef, reason: str) -> Instruction:
    return reject_delivery(
        {"reason": reason}, {"work_order": order.address, "client": order.client}, program_id=order.program_id
    )


def build_open_dispute(order: WorkOrderRef, party: Pubkey, reason: str) -> Instruction:
    """`open_dispute` by `party`: the client or the provider agent's owner."""
    return open_dispute(
        {"reason": reason},
        {"work_order": order.address, "party": party, "agent": order.agent, "reputation": order.reputation},
        program_id=order.program_id,
    )


def _settlement_accounts(
    order: WorkOrderRef, client_token_account: Pubkey | None, provider_token_account: Pubkey | None
) -> ReleasePaymentAccounts:
    """The accounts every settlement names (release_payment's; the others add their signer)."""
    return {
        "work_order": order.address,
        "vault": order.vault,
        "client": order.client,
        "client_token_account": client_token_account or order.token_account(order.client),
        "provider_token_account": provider_token_account or order.token_account(order.provider_owner),
        "agent": order.agent,
        "reputation": order.reputation,
        "mint": order.mint,
    }


def _refund_accounts(order: WorkOrderRef, client_token_account: Pubkey | None) -> CancelWorkOrderAccounts:
    """The accounts of a refund to the client (cancel_work_order's; the others add their signer)."""
    return {
        "work_order": order.address,
        "vault": order.vault,
        "client": order.client,
        "client_token_account": client_token_account or order.token_account(order.client),
        "agent": order.agent,
        "mint": order.mint,
    }


def build_release_payment(
    order: WorkOrderRef,
    amount: int,
    *,
    client_token_account: Pubkey | None = None,
    provider_token_account: Pubkey | None = None,
) -> Instruction:
    """`release_payment` of `amount` to the provider (default accounts: both parties' ATAs)."""
    ix = release_payment(
        {"amount": amount},
        _settlement_accounts(order, client_token_account, provider_token_account),
        program_id=order.program_id,
    )
    return _with_token_program(ix, "release_payment", order.token_program)


def build_claim_payment(
    order: WorkOrderRef, *, client_token_account: Pubkey | None = None, provider_token_account: Pubkey | None = None
) -> Instruction:
    accounts = _settlement_accounts(order, client_token_account, provider_token_account)
    ix = claim_payment({**accounts, "provider": order.provider_owner}, program_id=order.program_id)
    return _with_token_program(ix, "claim_payment", order.token_program)


def build_resolve_dispute(
    order: WorkOrderRef,
    client_share_bps: int,
    *,
    client_token_account: Pubkey | None = None,
    provider_token_account: Pubkey | None = None,
) -> Instruction:
    accounts = _settlement_accounts(order, client_token_account, provider_token_account)
    ix = resolve_dispute(
        {"client_share_bps": client_share_bps}, {**accounts, "arbiter": order.arbiter}, program_id=order.program_id
    )
    return _with_token_program(ix, "resolve_dispute", order.token_program)


def build_cancel_work_order(order: WorkOrderRef, *, client_token_account: Pubkey | None = None) -> Instruction:
    ix = cancel_work_order(_refund_accounts(order, client_token_account), program_id=order.program_id)
    return _with_token_program(ix, "cancel_work_order", order.token_program)


def build_decline_work_order(order: WorkOrderRef, *, client_token_account: Pubkey | None = None) -> Instruction:
    """`decline_work_order` by the provider agent's owner: a full refund to the client's token account."""
    accounts = _refund_accounts(order, client_token_account)
    ix = decline_work_order({**accounts, "provider": order.provider_owner}, program_id=order.program_id)
    return _with_token_program(ix, "decline_work_order", order.token_program)


def build_claim_refund(order: WorkOrderRef, *, client_token_account: Pubkey | None = None) -> Instruction:
    accounts = _refund_accounts(order, client_token_account)
    ix = claim_refund({**accounts, "reputation": order.reputation}, program_id=order.program_id)
    return _with_token_program(ix, "claim_refund", order.token_program)


def build_settle_by_default(
    order: WorkOrderRef, party: Pubkey, *, client_token_account: Pubkey | None = None
) -> Instruction:
    """`settle_by_default` by `party` (the client or the provider agent's owner): the remainder back to the
    client, once a dispute's ruling period has passed without a ruling, or whenever the client's refund is due."""
    accounts = _refund_accounts(order, client_token_account)
    ix = settle_by_default({**accounts, "reputation": order.reputation, "party": party}, program_id=order.program_id)
    return _with_token_program(ix, "settle_by_default", order.token_program)
