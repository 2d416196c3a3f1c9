"""Every custom program error (6000-6082) raised as its typed exception.

`REACHABLE` triggers each code through the SDK's public methods, the way a user could: bad
input, the wrong wallet, the wrong state or time. Where the SDK refuses a value before sending
(it cannot be encoded, or the SDK needs it to build the transaction) it raises the program's own
class, so `except NameOfError` works either way; those rows are marked `client-side`, and each
of their codes is also reached on chain by another row.

Not reachable through the SDK, because the SDK derives or fills in the accounts and instructions
involved (only a hand-built or forged instruction can trigger them); `RAW` covers each with a raw
instruction sent through `GhostPayClient.send`:

- 6007 NoAcceptedTokens, 6009 DuplicateToken, 6010 DefaultTokenNotAllowed, 6012 NotAMint: the SDK
  takes prices as a mapping (no mint twice) and reads each mint's decimals first, so it refuses an
  empty mapping, a missing mint or a non-mint before sending (client-side rows in `REACHABLE`).
- 6011 MintAccountMismatch: the SDK passes the accepted mints as remaining accounts, in order.
- 6021 PaymentTransferMissing, 6025 PaymentAuthorityMismatch, 6026 PaymentAmountMismatch: `pay_agent`
  always builds the TransferChecked to the payment address's token account, signed by the payer, for
  the recorded amount, right before the record.
- 6029 ReceiptAgentMismatch, 6082 ReceiptReferenceMismatch: the SDK finds a legacy receipt from the agent and
  the reference it rates.
- 6079 PayerStatsMismatch: the SDK derives the PayerStats from the agent and the wallet.
- 6066 PayeeTokenAccountMismatch, 6075 SourceTokenAccountMismatch, 6076 PaymentMintAccountMismatch: the
  SDK passes the transfer's destination, source and mint as the record's accounts.
- 6068 NotReceiptRentPayer: `close_receipt` reads the rent payer from the receipt.
- 6056 VaultMismatch, 6058 WorkOrderAgentMismatch, 6059 WorkOrderMintMismatch,
  6063 TokenProgramMismatch: the SDK reads the vault, agent and mint from the work order and
  takes the token program from the mint's owner.

The legacy receipts (X402Receipt, one per payment, made by the program before PayerStats) that some rows
rate or close are planted as the earlier program left them (`legacy_receipt`): the program makes none now.

`PROGRAM_TESTS_ONLY` lists the one code that needs a program of its own to trigger: 6064
PaymentNotTopLevel (record_x402_payment invoked through CPI), tried in tests/program/test_x402_payments.py with
a relay program built by the project's pipeline. 6022 (PaymentWrongDestination) and 6027
(PaymentAlreadyRecorded) are no longer in the IDL: 6066 PayeeTokenAccountMismatch checks the payee's token
account instead, and a payment counts once because its transaction lands once, not by an account per reference.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_2022_PROGRAM_ID

from ghostpay import instructions as ix
from ghostpay.agent_instructions import mint_accounts
from ghostpay.client import WorkOrderInfo, X402Settings
from ghostpay.errors.custom import CUSTOM_ERROR_MAP
from ghostpay.exceptions import ProgramError, program_error_class
from ghostpay.payments import build_record_x402_payment, build_x402_payment
from ghostpay.pda import associated_token_address, payer_stats_address, receipt_address, reputation_address
from ghostpay.sync_client import GhostPay
from ghostpay.tokens import Atomic
from ghostpay.types import TokenPrice
from ghostpay.work_orders import WorkOrderRef, build_release_payment
from tests.localnet.conftest import LocalnetProcess
from tests.sdk.conftest import PRICE, cheat, create_mint, fund, mint_to, plant_legacy_receipt, time_travel

ENDPOINT = "https://errors.example"
FEEDBACK_WINDOW_SECONDS = 30 * 86_400
TOKEN_2022_MINT_TYPE_OFFSET = 165  # the account-type byte after a token account's 165-byte base
EXTENSIONS = {"MintHasTransferFee": (1, 108), "MintHasTransferHook": (14, 64), "MintExtensionNotSupported": (12, 32)}


def extension_mint(net: LocalnetProcess, extension_type: int, length: int) -> Pubkey:
    """A Token-2022 mint carrying one extension (zeroed), as the program reads it."""
    mint = Pubkey.from_string(
        cheat(
            net,
            "surfnet_createMint",
            {
                "decimals": 6,
                "tokenProgram":  # type: ignore[index]
                str(TOKEN_2022_PROGRAM_ID),
            },
        )["value"]
    )
    account = cheat(net, "getAccountInfo", str(mint), {"encoding": "base64"})["value"]  # type: ignore[index]
    base = base64.b64decode(account["data"][0])
    data = (
        base.ljust(TOKEN_2022_MINT_TYPE_OFFSET, b"\0")
        + b"\x01"
        + extension_type.to_bytes(2, "little")
        + length.to_bytes(2, "little")
        + bytes(length)
    )
    cheat(net, "surfnet_setAccount", str(mint), {"data": data.hex(), "lamports": 10_000_000})
    return mint


def legacy_receipt(w: World, *, agent: Pubkey | None = None, registration: int = 1) -> bytes:
    """An unrated legacy receipt of a payment by the client to `agent` (default: w.agent); its reference."""
    return plant_legacy_receipt(
        w.net,
        agent or w.agent,
        w.client.wallet,
        w.client.wallet,
        w.usdc,
        w.client.chain_time(),
        registration=registration,
    )[1]


@dataclass
class World:
    """Wallets, an agent priced in `usdc`, a paid call, and a factory of work orders in any live state."""

    net: LocalnetProcess
    provider: GhostPay
    client: GhostPay
    arbiter: GhostPay
    stranger: GhostPay
    usdc: Pubkey
    eurc: Pubkey
    agent: Pubkey
    plain_agent: Pubkey  # no x402
    sleepy_agent: Pubkey  # inactive
    ext_mints: dict[str, Pubkey]  # Token-2022 mints with extensions
    reference: bytes  # paid by the client, no feedback yet

    def order(self, status: str = "Created", **terms: Any) -> WorkOrderInfo:
        """A fresh 1-token work order of the client, moved to `status`."""
        terms = {"deadline": timedelta(hours=1), "arbiter": self.arbiter.wallet, "title": "job", **terms}
        address = self.client.create_work_order(self.agent, 1, **terms).address
        if status != "Created":
            self.provider.accept_work_order(address)
        if status in ("Submitted", "Disputed", "Rejected"):
            self.provider.submit_delivery(address, "https://files.example/x", bytes(32))
        if status == "Disputed":
            self.client.open_dispute(address, "not what I asked for")
        if status == "Rejected":
            self.client.reject_delivery(address, "not what I asked for")
        return self.client.get_work_order(address)

    def ref(self, order: WorkOrderInfo) -> WorkOrderRef:
        return WorkOrderRef.from_account(order.address, order.account, order.token_program)


@pytest.fixture(scope="module")
def w(net: LocalnetProcess, usdc: Pubkey) -> Iterator[World]:
    clients = [GhostPay(net.http_url, fund(net)) for _ in range(4)]
    provider, client, arbiter, stranger = clients
    x402 = X402Settings({usdc: PRICE}, ENDPOINT)
    agent = provider.register_agent("errors", "Errors", x402=x402).address
    plain = provider.register_agent("plain", "Plain").address
    sleepy = provider.register_agent("sleepy", "Sleepy", x402=x402).address
    provider.deactivate(sleepy)
    ext_mints = {name: extension_mint(net, *spec) for name, spec in EXTENSIONS.items()}
    for wallet in (client.wallet, stranger.wallet, provider.wallet):
        mint_to(net, wallet, usdc, 1_000_000_000)
    reference = client.pay_agent(agent).reference
    yield World(
        net, provider, client, arbiter, stranger, usdc, create_mint(net, 2), agent, plain, sleepy, ext_mints, reference
    )
    for gp in clients:
        gp.close()


Case = Callable[[World], object]


def _legacy_feedback_twice(w: World) -> None:
    reference = legacy_receipt(w)
    w.client.submit_feedback(w.agent, reference, rating=5)
    w.client.submit_feedback(w.agent, reference, rating=4)  # not the same transaction again (AlreadyProcessed)


def _rate_beyond_the_calls_paid(w: World) -> None:
    """A new buyer pays one call and rates it, then rates again (naming another reference)."""
    buyer = GhostPay(w.net.http_url, fund(w.net))
    try:
        mint_to(w.net, buyer.wallet, w.usdc, 1_000_000)
        buyer.submit_feedback(w.agent, buyer.pay_agent(w.agent).reference, rating=5)
        buyer.submit_feedback(w.agent, os.urandom(32), rating=1)
    finally:
        buyer.close()


def _rate_an_earlier_registration(w: World) -> None:
    """A call paid before the agent was closed (once its feedback window passed) and registered again rates
    nothing now: its window is over."""
    again = w.provider.register_agent("again", "Again", x402=X402Settings({w.usdc: PRICE}, ENDPOINT)).address
    reference = w.client.pay_agent(again).reference
    time_travel(w.net, FEEDBACK_WINDOW_SECONDS)
    w.provider.close_agent(again)
    w.provider.register_agent("again", "Again, anew", x402=X402Settings({w.usdc: PRICE}, ENDPOINT))
    w.client.submit_feedback(again, reference, rating=5)


def _rate_a_legacy_receipt_of_an_earlier_registration(w: World) -> None:
    """A legacy receipt of the agent's first registration, rated after it was closed and registered again."""
    again = w.provider.register_agent("legacy", "Legacy", x402=X402Settings({w.usdc: PRICE}, ENDPOINT)).address
    w.provider.close_agent(again)  # never paid: nothing to wait for
    w.provider.register_agent("legacy", "Legacy, anew", x402=X402Settings({w.usdc: PRICE}, ENDPOINT))
    w.client.submit_feedback(again, legacy_receipt(w, agent=again, registration=1), rating=5)


def _close_while_a_payment_can_be_rated(w: World) -> None:
    agent = w.provider.register_agent("rated", "Rated", x402=X402Settings({w.usdc: PRICE}, ENDPOINT)).address
    w.client.pay_agent(agent)
    w.provider.close_agent(agent)


def _refund_within_the_grace_period(w: World) -> None:
    order = w.order("Rejected", deadline=w.client.chain_time() + 5, review_period=3_600)
    time_travel(w.net, 10)  # past the deadline, within the grace period the rejection opened
    w.client.claim_refund(order)


def _reject_after_the_review_period(w: World) -> None:
    order = w.order("Submitted", review_period=60)
    time_travel(w.net, 61)
    w.client.reject_delivery(order, "too late to say so")


def _dispute_after_the_grace_period(w: World) -> None:
    order = w.order("Rejected", deadline=w.client.chain_time() + 5, review_period=60)
    time_travel(w.net, 61)  # past the deadline and the grace period: the client's refund is due
    w.provider.open_dispute(order, "too late to object")


def _accept_after_deadline(w: World) -> None:
    order = w.order(deadline=w.client.chain_time() + 5)
    time_travel(w.net, 10)
    w.provider.accept_work_order(order)


REACHABLE: list[tuple[str, Case]] = [
    ("AgentIdInvalid", lambda w: w.stranger.register_agent("", "Empty id")),
    ("AgentIdInvalid", lambda w: w.stranger.register_agent("x" * 33, "client-side: no PDA for it")),
    ("NameInvalid", lambda w: w.stranger.register_agent("n", "")),
    ("DescriptionTooLong", lambda w: w.stranger.register_agent("d", "D", description="d" * 513)),
    ("MetadataUriTooLong", lambda w: w.stranger.register_agent("m", "M", metadata_uri="u" * 201)),
    ("TooManyCapabilities", lambda w: w.stranger.register_agent("c", "C", capabilities=[f"c{i}" for i in range(9)])),
    ("CapabilityInvalid", lambda w: w.stranger.register_agent("c", "C", capabilities=[""])),
    ("PriceOutOfRange", lambda w: w.provider.set_price(w.agent, {w.usdc: Atomic(0)})),
    ("NoAcceptedTokens", lambda w: w.provider.set_tokens(w.agent, {})),  # client-side
    ("NoAcceptedTokens", lambda w: w.provider.configure_x402(w.agent, X402Settings({}, ENDPOINT))),  # client-side
    ("TooManyAcceptedTokens", lambda w: w.provider.set_tokens(w.agent, {create_mint(w.net): PRICE for _ in range(11)})),
    ("NotAMint", lambda w: w.provider.set_tokens(w.agent, {w.usdc: PRICE, w.stranger.wallet: PRICE})),  # client-side
    (
        "InvalidPaymentAddress",
        lambda w: w.provider.configure_x402(w.agent, X402Settings({w.usdc: PRICE}, ENDPOINT, Pubkey.default())),
    ),
    ("EndpointTooLong", lambda w: w.provider.set_endpoint(w.agent, "https://" + "e" * 250)),
    ("InvalidEndpoint", lambda w: w.provider.set_endpoint(w.agent, "ftp://files.example")),
    ("Unauthorized", lambda w: w.stranger.update_agent(w.agent, name="Mine now")),
    ("AgentAlreadyRegistered", lambda w: w.provider.register_agent("errors", "Again")),
    ("X402NotEnabled", lambda w: w.provider.set_endpoint(w.plain_agent, ENDPOINT)),
    ("X402NotEnabled", lambda w: w.provider.set_price(w.plain_agent, {w.usdc: PRICE})),
    ("AgentHasOpenWorkOrders", lambda w: (w.order(), w.provider.close_agent(w.agent))),
    ("AgentInactive", lambda w: w.client.pay_agent(w.sleepy_agent)),
    (
        "PaymentMintNotAccepted",
        lambda w: w.client.create_work_order(
            w.agent, 100, mint=w.eurc, deadline=timedelta(hours=1), arbiter=w.arbiter.wallet, title="euros"
        ),
    ),
    ("PaymentBelowPrice", lambda w: w.client.pay_agent(w.agent, amount=Atomic(9_999))),
    ("SelfPayment", lambda w: w.provider.pay_agent(w.agent)),  # the owner paying its own agent
    ("ReceiptFromEarlierRegistration", _rate_a_legacy_receipt_of_an_earlier_registration),
    ("FeedbackWindowClosed", _rate_an_earlier_registration),
    ("NothingToRate", _rate_beyond_the_calls_paid),
    ("NotReceiptPayer", lambda w: w.stranger.close_payer_stats(w.agent, w.client.wallet)),
    ("FeedbackAlreadySubmitted", _legacy_feedback_twice),
    ("RatingOutOfRange", lambda w: w.client.submit_feedback(w.agent, w.reference, rating=6)),
    ("ResponseTimeOutOfRange", lambda w: w.client.submit_feedback(w.agent, w.reference, response_time_ms=3_600_001)),
    ("ReceiptStillOpen", lambda w: w.client.close_receipt(w.agent, legacy_receipt(w))),
    (
        "WorkOrderAmountOutOfRange",
        lambda w: w.client.create_work_order(
            w.agent, Atomic(999), deadline=timedelta(hours=1), arbiter=w.arbiter.wallet, title="tiny"
        ),
    ),
    ("DeadlineInPast", lambda w: w.order(deadline=w.client.chain_time() - 1)),
    ("ReviewPeriodOutOfRange", lambda w: w.order(review_period=59)),
    ("TitleInvalid", lambda w: w.order(title="")),
    ("WorkOrderDescriptionTooLong", lambda w: w.order(description="d" * 513)),
    ("TooManyRequirements", lambda w: w.order(requirements=[f"r{i}" for i in range(11)])),
    ("RequirementInvalid", lambda w: w.order(requirements=[""])),
    ("InvalidArbiter", lambda w: w.order(arbiter=w.client.wallet)),
    (
        "CannotHireOwnAgent",
        lambda w: w.provider.create_work_order(
            w.agent, 1, deadline=timedelta(hours=1), arbiter=w.arbiter.wallet, title="self"
        ),
    ),
    *[
        (
            name,
            (
                lambda extension: (
                    lambda w: w.provider.set_tokens(w.agent, {w.usdc: PRICE, w.ext_mints[extension]: Decimal("0.01")})
                )
            )(name),
        )
        for name in EXTENSIONS
    ],
    ("DeadlineTooFar", lambda w: w.order(deadline=timedelta(days=366))),
    ("ArbiterNotAgreed", lambda w: w.provider.accept_work_order(w.order(), arbiter=w.stranger.wallet)),
    ("GracePeriodActive", _refund_within_the_grace_period),
    ("ReviewPeriodOver", _reject_after_the_review_period),
    ("GracePeriodOver", _dispute_after_the_grace_period),
    ("RulingPeriodActive", lambda w: w.provider.settle_by_default(w.order("Disputed"))),
    ("InvalidWorkOrderStatus", lambda w: w.client.cancel_work_order(w.order("Accepted"))),
    ("NotWorkOrderClient", lambda w: w.stranger.reject_delivery(w.order("Submitted"), "not mine")),
    ("NotWorkOrderProvider", lambda w: w.stranger.accept_work_order(w.order())),
    ("NotWorkOrderArbiter", lambda w: w.stranger.resolve_dispute(w.order("Disputed"), 0)),
    ("NotWorkOrderParty", lambda w: w.stranger.open_dispute(w.order("Accepted"), "meddling")),
    ("DeadlinePassed", _accept_after_deadline),
    ("DeadlineNotReached", lambda w: w.client.claim_refund(w.order())),
    ("ReviewPeriodActive", lambda w: w.provider.claim_payment(w.order("Submitted"))),
    ("ReleaseExceedsRemainder", lambda w: w.client.release_payment(w.order("Accepted"), Decimal("1.000001"))),
    ("ZeroAmount", lambda w: w.client.release_payment(w.order("Accepted"), 0)),
    (
        "TokenAccountOwnerMismatch",
        lambda w: w.client.release_payment(
            w.order("Accepted"), provider_token_account=associated_token_address(w.client.wallet, w.usdc)
        ),
    ),
    ("DeliverableUriInvalid", lambda w: w.provider.submit_delivery(w.order("Accepted"), "", bytes(32))),
    ("ReasonTooLong", lambda w: w.client.open_dispute(w.order("Accepted"), "r" * 201)),
    ("ShareOutOfRange", lambda w: w.arbiter.resolve_dispute(w.order("Disputed"), 10_001)),
    ("ShareOutOfRange", lambda w: w.arbiter.resolve_dispute(w.order("Disputed"), 70_000)),  # client-side: not a u16
    ("FeedbackWindowOpen", _close_while_a_payment_can_be_rated),
]


def _set_tokens(w: World, prices: list[TokenPrice], mints: list[Pubkey]) -> tuple[list[Instruction], list[Keypair]]:
    return [
        ix.set_x402_tokens(
            {"accepted_tokens": prices},
            {"agent": w.agent, "owner": w.provider.wallet},
            remaining_accounts=mint_accounts(mints),
        )
    ], [w.provider.keypair]


def _payment(w: World, payer: Pubkey, amount: int = 10_000) -> list[Instruction]:
    return build_x402_payment(payer, w.agent, w.provider.wallet, w.usdc, 6, amount, os.urandom(32))


def _record_instead(payment: list[Instruction], record: Instruction) -> list[Instruction]:
    return payment[:-1] + [record]


def _record(
    w: World,
    amount: int = 10_000,
    reference: bytes | None = None,
    *,
    source_owner: Pubkey | None = None,
    mint: Pubkey | None = None,
    payee: Pubkey | None = None,
) -> Instruction:
    """The client's record of a payment from `source_owner`'s (default: the client's) usdc account in `mint`
    (default: usdc) to `payee`'s (default: the provider's)."""
    usdc = w.usdc
    return build_record_x402_payment(
        w.agent,
        w.client.wallet,
        amount,
        reference or os.urandom(32),
        associated_token_address(source_owner or w.client.wallet, usdc),
        mint or usdc,
        associated_token_address(payee or w.provider.wallet, usdc),
    )


def _rate_legacy(
    w: World, reference: bytes, *, agent: Pubkey | None = None, named: bytes | None = None
) -> tuple[list[Instruction], list[Keypair]]:
    """The client's rating through the legacy receipt of `reference`, for `agent`, naming `named`."""
    agent = agent or w.agent
    return [
        ix.submit_feedback(
            {"reference": list(named or reference), "success": True, "response_time_ms": 0, "rating": 5},
            {
                "agent": agent,
                "reputation": reputation_address(agent)[0],
                "payer_stats": receipt_address(w.agent, reference)[0],
                "payer": w.client.wallet,
            },
        )
    ], []


def _forged_release(w: World, **keys: Any) -> tuple[list[Instruction], list[Keypair]]:
    order = w.order("Accepted")
    return [build_release_payment(replace(w.ref(order), **keys), 1)], []


RAW: list[tuple[str, Callable[[World], tuple[list[Instruction], list[Keypair]]]]] = [
    ("NoAcceptedTokens", lambda w: _set_tokens(w, [], [])),
    ("DuplicateToken", lambda w: _set_tokens(w, [TokenPrice(w.usdc, 10_000)] * 2, [w.usdc] * 2)),
    ("DefaultTokenNotAllowed", lambda w: _set_tokens(w, [TokenPrice(Pubkey.default(), 10_000)], [Pubkey.default()])),
    ("NotAMint", lambda w: _set_tokens(w, [TokenPrice(w.stranger.wallet, 10_000)], [w.stranger.wallet])),
    ("MintAccountMismatch", lambda w: _set_tokens(w, [TokenPrice(w.usdc, 10_000)], [w.eurc])),
    ("PaymentTransferMissing", lambda w: ([_record(w)], [])),
    (
        "PaymentAuthorityMismatch",
        lambda w: (
            _record_instead(_payment(w, w.stranger.wallet), _record(w, source_owner=w.stranger.wallet)),
            [w.stranger.keypair],
        ),
    ),
    ("PaymentAmountMismatch", lambda w: (_record_instead(_payment(w, w.client.wallet), _record(w, 20_000)), [])),
    (
        "PayeeTokenAccountMismatch",
        lambda w: (_record_instead(_payment(w, w.client.wallet), _record(w, payee=w.client.wallet)), []),
    ),
    (
        "SourceTokenAccountMismatch",
        lambda w: (_record_instead(_payment(w, w.client.wallet), _record(w, source_owner=w.stranger.wallet)), []),
    ),
    (
        "PaymentMintAccountMismatch",
        lambda w: (_record_instead(_payment(w, w.client.wallet), _record(w, mint=w.eurc)), []),
    ),
    (
        "NotReceiptRentPayer",
        lambda w: (
            [
                ix.close_payer_stats(
                    {
                        "payer_stats": payer_stats_address(w.agent, w.client.wallet)[0],
                        "authority": w.client.wallet,
                        "rent_payer": w.stranger.wallet,
                    }
                )
            ],
            [],
        ),
    ),
    ("ReceiptAgentMismatch", lambda w: _rate_legacy(w, legacy_receipt(w), agent=w.sleepy_agent)),
    ("ReceiptReferenceMismatch", lambda w: _rate_legacy(w, legacy_receipt(w), named=os.urandom(32))),
    (
        "PayerStatsMismatch",
        lambda w: (
            [
                ix.submit_feedback(
                    {"reference": list(w.reference), "success": False, "response_time_ms": 0, "rating": 1},
                    {
                        "agent": w.agent,
                        "reputation": reputation_address(w.agent)[0],
                        "payer_stats": payer_stats_address(w.agent, w.client.wallet)[0],
                        "payer": w.stranger.wallet,
                    },
                )
            ],
            [w.stranger.keypair],
        ),
    ),
    ("VaultMismatch", lambda w: _forged_release(w, vault=associated_token_address(w.client.wallet, w.usdc))),
    ("WorkOrderAgentMismatch", lambda w: _forged_release(w, agent=w.sleepy_agent)),
    ("WorkOrderMintMismatch", lambda w: _forged_release(w, mint=w.eurc)),
    ("TokenProgramMismatch", lambda w: _forged_release(w, token_program=TOKEN_2022_PROGRAM_ID)),
]


PROGRAM_TESTS_ONLY = {"PaymentNotTopLevel", "EarningsTableFull"}  # tests/program/: x402 payments, earnings


def test_every_custom_error_is_covered() -> None:
    covered = {program_error_class(name).code for name, _ in REACHABLE + RAW}  # type: ignore[operator]
    covered |= {program_error_class(name).code for name in PROGRAM_TESTS_ONLY}  # type: ignore[operator]
    assert covered == set(CUSTOM_ERROR_MAP) == set(range(6000, 6083)) - {6022, 6027}


@pytest.mark.parametrize("name, case", REACHABLE, ids=[f"{program_error_class(n).code}-{n}" for n, _ in REACHABLE])
def test_reachable_through_the_sdk(w: World, name: str, case: Case) -> None:
    with pytest.raises(program_error_class(name)) as raised:
        case(w)
    assert isinstance(raised.value, ProgramError) and raised.value.name == name


@pytest.mark.parametrize("name, build", RAW, ids=[f"{program_error_class(n).code}-{n}" for n, _ in RAW])
def test_raw_instruction(
    w: World, name: str, build: Callable[[World], tuple[list[Instruction], list[Keypair]]]
) -> None:
    instructions, signers = build(w)
    with pytest.raises(program_error_class(name)) as raised:
        w.client.send(instructions, signers)
    assert raised.value.logs  # the program said so on chain
