"""Fees as a validator charges them: 5,000 lamports per signature plus the priority fee (CU limit × CU
price), debited from the fee payer before execution, even when the transaction then fails."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.types import TxOpts
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from ghostpay.program_id import PROGRAM_ID
from tests.localnet.conftest import LocalnetProcess
from tests.localnet.helpers import signed

SOL = 1_000_000_000
CU_LIMIT = 1_400_000
CU_PRICE = 5_000_000  # micro-lamports per CU
PRIORITY_FEE = CU_LIMIT * CU_PRICE // 1_000_000  # 7,000,000
FEE = 5_000 + PRIORITY_FEE
UNKNOWN_INSTRUCTION = Instruction(PROGRAM_ID, bytes(8), [])  # GhostPay answers Custom 101


async def funded(client: AsyncClient, lamports: int) -> Keypair:
    keypair = Keypair()
    sig = (await client.request_airdrop(keypair.pubkey(), lamports)).value
    await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
    return keypair


def priced(instructions: list[Instruction], payer: Keypair, blockhash: Hash) -> Transaction:
    """`instructions` behind SetComputeUnitLimit 1,400,000 and SetComputeUnitPrice 5,000,000 µlamports."""
    return signed(
        [set_compute_unit_limit(CU_LIMIT), set_compute_unit_price(CU_PRICE), *instructions], [payer], blockhash
    )


def pay(payer: Keypair, to: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))


def raw_send(localnet: LocalnetProcess, tx: Transaction, skip_preflight: bool = False) -> dict[str, Any]:
    return localnet.rpc(
        "sendTransaction", base64.b64encode(bytes(tx)).decode(), {"encoding": "base64", "skipPreflight": skip_preflight}
    )


def fee_for(localnet: LocalnetProcess, tx: Transaction) -> int:
    message = base64.b64encode(bytes(tx.message)).decode()
    return localnet.rpc("getFeeForMessage", message)["result"]["value"]


def landed_meta(localnet: LocalnetProcess, signature: str) -> dict[str, Any]:
    return localnet.rpc("getTransaction", signature, {"encoding": "json"})["result"]["meta"]


async def test_priority_fee_is_debited_as_meta_fee_says(localnet: LocalnetProcess) -> None:
    async with AsyncClient(localnet.http_url) as client:
        payer, receiver = await funded(client, 10 * SOL), Keypair().pubkey()
        tx = priced([pay(payer, receiver, SOL)], payer, (await client.get_latest_blockhash()).value.blockhash)
        assert fee_for(localnet, tx) == FEE == 7_005_000

        simulated = localnet.rpc(
            "simulateTransaction",
            base64.b64encode(bytes(tx)).decode(),
            {"encoding": "base64", "sigVerify": True, "accounts": {"addresses": [str(payer.pubkey())]}},
        )
        value = simulated["result"]["value"]
        assert value["err"] is None and value["accounts"][0]["lamports"] == 9 * SOL - FEE
        assert (await client.get_balance(payer.pubkey())).value == 10 * SOL  # a simulation pays nothing

        sig = (await client.send_transaction(tx)).value
        await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
        assert (await client.get_balance(payer.pubkey())).value == 9 * SOL - FEE
        assert (await client.get_balance(receiver)).value == SOL
        meta = landed_meta(localnet, str(sig))
        assert meta["err"] is None and meta["fee"] == FEE
        assert meta["preBalances"][:2] == [10 * SOL, 0] and meta["postBalances"][:2] == [9 * SOL - FEE, SOL]


async def test_failed_transaction_still_pays_its_priority_fee(localnet: LocalnetProcess) -> None:
    async with AsyncClient(localnet.http_url) as client:
        payer = await funded(client, 10 * SOL)
        tx = priced([UNKNOWN_INSTRUCTION], payer, (await client.get_latest_blockhash()).value.blockhash)
        refused = raw_send(localnet, tx)["error"]  # preflight: rejected, nothing paid
        assert refused["data"]["err"] == {"InstructionError": [2, {"Custom": 101}]}
        assert (await client.get_balance(payer.pubkey())).value == 10 * SOL

        sig = (await client.send_transaction(tx, opts=TxOpts(skip_preflight=True))).value
        await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
        meta = landed_meta(localnet, str(sig))
        assert meta["err"] == {"InstructionError": [2, {"Custom": 101}]} and meta["fee"] == FEE
        assert (await client.get_balance(payer.pubkey())).value == 10 * SOL - FEE
        assert meta["preBalances"][0] - meta["postBalances"][0] == FEE == fee_for(localnet, tx)


async def test_a_fee_payer_short_of_the_whole_fee_is_refused_before_execution(localnet: LocalnetProcess) -> None:
    """Enough for the signature fee but not the priority fee: the validator refuses, nothing is debited."""
    async with AsyncClient(localnet.http_url) as client:
        short = await funded(client, FEE - 1)
        rent_left = await funded(client, FEE + 1_000)  # paying would leave 1,000 lamports: under rent exemption
        receiver = Keypair().pubkey()
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        for payer, err, message in (
            (short, "InsufficientFundsForFee", "Insufficient funds for fee"),
            (
                rent_left,
                {"InsufficientFundsForRent": {"account_index": 0}},
                "Transaction results in an account (0) with insufficient funds for rent",
            ),
        ):
            tx = priced([pay(payer, receiver, 0)], payer, blockhash)
            balance = (await client.get_balance(payer.pubkey())).value
            refused = raw_send(localnet, tx)["error"]
            assert refused["data"]["err"] == err and refused["message"] == f"Transaction simulation failed: {message}"
            simulated = localnet.rpc(
                "simulateTransaction", base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}
            )["result"]["value"]
            assert simulated["err"] == err
            sig = raw_send(localnet, tx, skip_preflight=True)["result"]  # accepted, then dropped: never lands
            assert localnet.rpc("getSignatureStatuses", [sig])["result"]["value"] == [None]
            assert (await client.get_balance(payer.pubkey())).value == balance
        assert (await client.get_balance(receiver)).value == 0


def test_a_tampered_signature_is_a_signature_failure_first(localnet: LocalnetProcess) -> None:
    """A validator checks signatures before the fee payer: a forged transaction from a payer too poor for its
    fee is still a signature failure."""
    payer = Keypair()  # no account at all
    blockhash = Hash.from_string(localnet.rpc("getLatestBlockhash")["result"]["value"]["blockhash"])
    tampered = bytearray(bytes(priced([pay(payer, Keypair().pubkey(), 1)], payer, blockhash)))
    tampered[5] ^= 0xFF
    answer = httpx.post(
        localnet.http_url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "sendTransaction",
            "params": [base64.b64encode(bytes(tampered)).decode(), {"encoding": "base64"}],
        },
    ).json()
    assert answer["error"]["code"] == -32003
