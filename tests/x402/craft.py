"""Hand-built exact-SVM payments: the official client's layout, with the changes an attacker would make."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from typing import Any

import httpx
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import TransferCheckedParams, get_associated_token_address, transfer_checked
from x402.http.utils import encode_payment_signature_header
from x402.schemas import PaymentPayload, PaymentRequirements

from tests.localnet.conftest import LocalnetProcess


def latest_blockhash(net: LocalnetProcess) -> Hash:
    return Hash.from_string(net.rpc("getLatestBlockhash")["result"]["value"]["blockhash"])


def memo(data: bytes | None = None, accounts: Sequence[Any] = ()) -> Instruction:
    return Instruction(MEMO_PROGRAM_ID, data or os.urandom(16).hex().encode(), list(accounts))


def token_transfer(owner: Pubkey, mint: Pubkey, to: Pubkey, amount: int, decimals: int = 6) -> Instruction:
    return transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID,
            source=get_associated_token_address(owner, mint),
            mint=mint,
            dest=get_associated_token_address(to, mint),
            owner=owner,
            amount=amount,
            decimals=decimals,
        )
    )


def payment(
    requirements: PaymentRequirements,
    buyer: Keypair,
    blockhash: Hash,
    *,
    transfer: Instruction | None = None,
    after: Sequence[Instruction] | None = None,
    signers: Sequence[Keypair] = (),
    compute_unit_limit: int = 20_000,
    compute_unit_price: int = 1,
) -> PaymentPayload:
    """[limit, price, TransferChecked (buyer → payTo, the required amount), Memo] unless `transfer` or `after`
    (what follows the transfer) say otherwise; signed by the buyer and `signers`, fee payer slot left empty."""
    fee_payer = Pubkey.from_string(requirements.extra["feePayer"])
    mint, pay_to = Pubkey.from_string(requirements.asset), Pubkey.from_string(requirements.pay_to)
    instructions = [
        set_compute_unit_limit(compute_unit_limit),
        set_compute_unit_price(compute_unit_price),
        transfer or token_transfer(buyer.pubkey(), mint, pay_to, int(requirements.amount)),
        *(after if after is not None else [memo()]),
    ]
    message = MessageV0.try_compile(fee_payer, instructions, [], blockhash)
    keys = list(message.account_keys)
    signatures = [Signature.default()] * message.header.num_required_signatures
    for keypair in (buyer, *signers):
        if keypair.pubkey() not in keys:  # e.g. a transfer of someone else's tokens: the buyer does not sign
            continue
        signatures[keys.index(keypair.pubkey())] = keypair.sign_message(bytes([0x80]) + bytes(message))
    tx = VersionedTransaction.populate(message, signatures)
    return PaymentPayload(
        x402_version=2, payload={"transaction": base64.b64encode(bytes(tx)).decode()}, accepted=requirements
    )


def header(payload: PaymentPayload) -> dict[str, str]:
    return {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)}


def facilitator_call(
    url: str,
    method: str,
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST /verify or /settle as the official HTTP facilitator client does."""
    answer = facilitator_post(url, method, payload, requirements, headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def facilitator_post(
    url: str,
    method: str,
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{url}/{method}",
        content=request_body(payload, requirements),
        timeout=60,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def request_body(payload: PaymentPayload, requirements: PaymentRequirements) -> bytes:
    """The JSON body of a verify or settle request, as bytes (what an HMAC signs)."""
    return json.dumps(
        {
            "x402Version": 2,
            "paymentPayload": payload.model_dump(by_alias=True, exclude_none=True),
            "paymentRequirements": requirements.model_dump(by_alias=True, exclude_none=True),
        }
    ).encode()
