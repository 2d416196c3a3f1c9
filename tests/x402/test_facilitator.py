"""`ghost facilitator start` over HTTP: the official API, and the guards a public fee payer needs.

Each attack is a payment the buyer signed, sent to /verify and /settle; each is refused by name, and
the fee payer's SOL and tokens do not move."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.instruction import AccountMeta
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from websockets.sync.server import serve
from x402.schemas import PaymentRequirements

from ghostpay.x402.facilitator import FacilitatorSettings, GhostPayFacilitator
from ghostpay.x402.facilitator.app import create_facilitator_app
from ghostpay.x402.facilitator.policy import AssetRule
from ghostpay.x402.networks import DEVNET
from tests.sdk.conftest import create_mint, fund, mint_to
from tests.x402.conftest import (
    PRICE_ATOMIC,
    Process,
    ServerThread,
    buyer,
    facilitator_process,
    keypair_file,
    sol_balance,
    token_balance,
)
from tests.x402.craft import facilitator_call, latest_blockhash, memo, payment, token_transfer


@pytest.fixture(scope="module")
def mint(net: Any) -> Pubkey:
    return create_mint(net)


def requirements_for(fee_payer: str, mint: Pubkey, pay_to: Pubkey, amount: int = PRICE_ATOMIC) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=DEVNET.caip2,
        asset=str(mint),
        amount=str(amount),
        pay_to=str(pay_to),
        max_timeout_seconds=60,
        extra={"feePayer": fee_payer},
    )


@pytest.fixture(scope="module")
def payee(net: Any, mint: Pubkey) -> Pubkey:
    wallet = fund(net)
    mint_to(net, wallet.pubkey(), mint, 0)
    return wallet.pubkey()


def test_supported_and_health(facilitator: Process, fee_payer: Keypair) -> None:
    supported = httpx.get(f"{facilitator.url}/supported").json()
    kinds = {(k["x402Version"], k["network"]) for k in supported["kinds"]}
    assert (2, DEVNET.caip2) in kinds and (1, "solana-devnet") in kinds
    assert all(k["extra"]["feePayer"] == str(fee_payer.pubkey()) for k in supported["kinds"])
    assert supported["signers"]["solana:*"] == [str(fee_payer.pubkey())]
    health = httpx.get(f"{facilitator.url}/health").json()
    assert health["status"] == "ok" and health["feePayer"] == str(fee_payer.pubkey())
    assert health["balanceLamports"] >= health["minBalanceLamports"] > 0


def test_a_plain_payment_verifies_and_settles_once(net: Any, facilitator: Process, mint: Pubkey, payee: Pubkey) -> None:
    requirements = requirements_for(facilitator.announce["feePayer"], mint, payee)
    payer = buyer(net, mint)
    paid = payment(requirements, payer, latest_blockhash(net))
    verified = facilitator_call(facilitator.url, "verify", paid, requirements)
    assert verified == {"isValid": True, "payer": str(payer.pubkey())}
    settled = facilitator_call(facilitator.url, "settle", paid, requirements)
    assert settled["success"] and settled["transaction"] and settled["network"] == DEVNET.caip2
    again = facilitator_call(facilitator.url, "settle", paid, requirements)
    assert again["success"] is False and again["errorReason"] == "duplicate_settlement"
    assert facilitator_call(facilitator.url, "verify", paid, requirements)["invalidReason"] == "duplicate_settlement"
    assert token_balance(net, payer.pubkey(), mint) == 1_000_000 - PRICE_ATOMIC


def attacks(fee_payer: Pubkey, payer: Keypair, mint: Pubkey, payee: Pubkey) -> dict[str, dict[str, Any]]:
    """Payments that would make the fee payer's signature spend its own SOL or tokens."""
    thief = Pubkey.new_unique()
    return {
        "sol transfer from the fee payer after the memo": {
            "after": [memo(), transfer(TransferParams(from_pubkey=fee_payer, to_pubkey=thief, lamports=10**9))]
        },
        "sol transfer from the fee payer instead of the memo": {
            "after": [transfer(TransferParams(from_pubkey=fee_payer, to_pubkey=thief, lamports=10**9))]
        },
        "the fee payer's tokens as the payment": {"transfer": token_transfer(fee_payer, mint, payee, PRICE_ATOMIC)},
        "the fee payer as an account of the memo": {"after": [memo(accounts=[AccountMeta(fee_payer, True, True)])]},
    }


@pytest.mark.parametrize(
    "attack",
    [
        "sol transfer from the fee payer after the memo",
        "sol transfer from the fee payer instead of the memo",
        "the fee payer's tokens as the payment",
        "the fee payer as an account of the memo",
    ],
)
def test_the_fee_payer_signs_nothing_but_the_fee(
    net: Any, facilitator: Process, fee_payer: Keypair, mint: Pubkey, payee: Pubkey, attack: str
) -> None:
    mint_to(net, fee_payer.pubkey(), mint, 5_000_000)
    requirements = requirements_for(facilitator.announce["feePayer"], mint, payee)
    payer = buyer(net, mint)
    crafted = payment(
        requirements, payer, latest_blockhash(net), **attacks(fee_payer.pubkey(), payer, mint, payee)[attack]
    )
    sol_before = sol_balance(net, fee_payer.pubkey())
    tokens_before = token_balance(net, fee_payer.pubkey(), mint)
    verified = facilitator_call(facilitator.url, "verify", crafted, requirements)
    assert verified["isValid"] is False and verified["invalidReason"] == "ghostpay_fee_payer_in_instruction"
    settled = facilitator_call(facilitator.url, "settle", crafted, requirements)
    assert settled["success"] is False and settled["errorReason"] == "ghostpay_fee_payer_in_instruction"
    assert settled["transaction"] == ""
    assert sol_balance(net, fee_payer.pubkey()) == sol_before
    assert token_balance(net, fee_payer.pubkey(), mint) == tokens_before
    assert token_balance(net, payer.pubkey(), mint) == 1_000_000


def test_malformed_requests_answer_400(facilitator: Process) -> None:
    for body in (b"not json", b"{}", b'{"paymentPayload": {"x402Version": 2}, "paymentRequirements": {}}'):
        answer = httpx.post(f"{facilitator.url}/verify", content=body)
        assert answer.status_code == 400 and answer.json()["error"].startswith("not a verify/settle request")
    assert httpx.post(f"{facilitator.url}/settle", content=b"x" * 70_000).status_code == 413


def test_unsupported_network_answers_400(net: Any, facilitator: Process, mint: Pubkey, payee: Pubkey) -> None:
    requirements = requirements_for(facilitator.announce["feePayer"], mint, payee)
    paid = payment(requirements, buyer(net, mint), latest_blockhash(net))
    mainnet = requirements.model_copy(update={"network": "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"})
    answer = httpx.post(
        f"{facilitator.url}/verify",
        json={
            "x402Version": 2,
            "paymentPayload": paid.model_copy(update={"accepted": mainnet}).model_dump(
                by_alias=True, exclude_none=True
            ),
            "paymentRequirements": mainnet.model_dump(by_alias=True, exclude_none=True),
        },
    )
    assert answer.status_code == 400 and "unsupported scheme or network" in answer.json()["error"]


@pytest.fixture
def strict_facilitator(net: Any, tmp_path: Path) -> Iterator[Process]:
    proc = facilitator_process(net, tmp_path, fund(net, sol=100), "--rate-limit", "2").start()
    yield proc
    proc.stop()


def test_rate_limit_per_payer(net: Any, strict_facilitator: Process, mint: Pubkey, payee: Pubkey) -> None:
    requirements = requirements_for(strict_facilitator.announce["feePayer"], mint, payee)
    greedy, other = buyer(net, mint), buyer(net, mint)
    blockhash = latest_blockhash(net)
    results = [
        facilitator_call(strict_facilitator.url, "verify", payment(requirements, greedy, blockhash), requirements)
        for _ in range(3)
    ]
    assert [r["isValid"] for r in results] == [True, True, False]
    assert results[2]["invalidReason"] == "ghostpay_rate_limited"
    assert facilitator_call(strict_facilitator.url, "verify", payment(requirements, other, blockhash), requirements)[
        "isValid"
    ]


def test_balance_floor(net: Any, tmp_path: Path, mint: Pubkey, payee: Pubkey) -> None:
    poor = fund(net, sol=1)
    proc = facilitator_process(net, tmp_path, poor, "--min-balance", "2").start()
    try:
        requirements = requirements_for(proc.announce["feePayer"], mint, payee)
        payer = buyer(net, mint)
        paid = payment(requirements, payer, latest_blockhash(net))
        verified = facilitator_call(proc.url, "verify", paid, requirements)
        assert verified["invalidReason"] == "ghostpay_facilitator_balance_low"
        settled = facilitator_call(proc.url, "settle", paid, requirements)
        assert settled["errorReason"] == "ghostpay_facilitator_balance_low" and settled["transaction"] == ""
        assert token_balance(net, payer.pubkey(), mint) == 1_000_000
        assert httpx.get(f"{proc.url}/health").json()["status"] == "balance_low"
    finally:
        proc.stop()


def test_start_errors_are_one_line(net: Any, tmp_path: Path, facilitator: Process, fee_payer: Keypair) -> None:
    import subprocess

    from tests.x402.conftest import GHOST

    missing = subprocess.run(
        [GHOST, "-u", net.http_url, "-k", str(tmp_path / "none.json"), "facilitator", "start"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1 and missing.stderr.startswith("error: keypair file")
    assert len(missing.stderr.strip().splitlines()) == 1
    bad = subprocess.run(
        [GHOST, "facilitator", "start", "--min-balance", "lots"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2 and "not an amount of SOL" in bad.stderr
    unknown = subprocess.run(
        [GHOST, "facilitator", "start", "--network", "solana:localnet"], capture_output=True, text=True, timeout=30
    )
    assert unknown.returncode == 2 and "unknown x402 network 'solana:localnet'" in unknown.stderr
    port = facilitator.url.rsplit(":", 1)[1]
    taken = subprocess.run(
        [
            GHOST,
            "-u",
            net.http_url,
            "-k",
            str(keypair_file(tmp_path, fee_payer)),
            "facilitator",
            "start",
            "--port",
            port,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (taken.returncode, taken.stderr) == (
        1,
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; pick another port with --port\n",
    )


FEE = 2 * 5_000  # a payment's two signatures; at compute-unit price 0 no priority fee


@pytest.fixture(scope="module")
def quiet_facilitator(net: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A facilitator of its own without a sweep: its fee payer's SOL moves only with the settles a test makes."""
    proc = facilitator_process(net, tmp_path_factory.mktemp("quiet"), fund(net, sol=10), "--sweep-interval", "0")
    yield proc.start()
    proc.stop()


@pytest.mark.parametrize("together", [False, True], ids=["one after the other", "at once"])
def test_two_payments_for_one_price_both_verify_and_only_one_is_sent(
    net: Any, quiet_facilitator: Process, mint: Pubkey, payee: Pubkey, together: bool
) -> None:
    """A buyer holding one price signs two payments; both verify. Settling both sends exactly one: the
    settle simulates against the current state right before its send (two settles of one buyer one after
    the other), so the second is refused before any send and the fee payer pays one fee."""
    url, fee_payer = quiet_facilitator.url, Pubkey.from_string(quiet_facilitator.announce["feePayer"])
    requirements = requirements_for(str(fee_payer), mint, payee)
    payer = buyer(net, mint, PRICE_ATOMIC)
    blockhash = latest_blockhash(net)
    paid = [payment(requirements, payer, blockhash, compute_unit_price=0) for _ in range(2)]
    assert [facilitator_call(url, "verify", p, requirements)["isValid"] for p in paid] == [True, True]
    sol_before, buyer_sol = sol_balance(net, fee_payer), sol_balance(net, payer.pubkey())
    payee_before, settled_before = token_balance(net, payee, mint), httpx.get(f"{url}/health").json()["settled"]
    if together:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda p: facilitator_call(url, "settle", p, requirements), paid))
    else:
        answers = [facilitator_call(url, "settle", p, requirements) for p in paid]
    landed = [a for a in answers if a["success"]]
    refused = [a for a in answers if not a["success"]]
    assert len(landed) == 1 and len(refused) == 1
    assert (refused[0]["errorReason"], refused[0]["transaction"]) == ("transaction_simulation_failed", "")
    assert (
        refused[0]["errorMessage"] == "Simulation failed: {'InstructionError': [2, {'Custom': 1}]}"
    )  # InsufficientFunds
    assert net.rpc("getSignatureStatuses", [landed[0]["transaction"]])["result"]["value"][0]["err"] is None
    assert sol_balance(net, fee_payer) == sol_before - FEE
    assert (token_balance(net, payer.pubkey(), mint), sol_balance(net, payer.pubkey())) == (0, buyer_sol)
    assert token_balance(net, payee, mint) == payee_before + PRICE_ATOMIC
    health = httpx.get(f"{url}/health").json()
    assert (health["settled"], health["pendingSettles"]) == (settled_before + 1, 0)


def test_confirmation_of_a_landed_or_unknown_transaction(net: Any, tmp_path: Path, mint: Pubkey, payee: Pubkey) -> None:
    """Reconciling a settle left pending subscribes after the fact: a landed transaction confirms at once,
    an unknown one times out (and the settle stays pending)."""
    keypair = fund(net, sol=10)
    facilitator = GhostPayFacilitator(
        FacilitatorSettings(
            keypair,
            net.http_url,
            net.ws_url,
            db_path=tmp_path / "f.db",
            confirm_timeout_seconds=1,
            assets=(AssetRule(str(mint)),),
        )
    )
    try:
        requirements = requirements_for(str(keypair.pubkey()), mint, payee)
        settled = facilitator.settle(payment(requirements, buyer(net, mint), latest_blockhash(net)), requirements)
        assert settled.success
        facilitator.signer.confirm_transaction(settled.transaction, DEVNET.caip2)  # landed: returns at once
        with pytest.raises(RuntimeError, match="confirmation timeout"):
            facilitator.signer.confirm_transaction(str(Signature.new_unique()), DEVNET.caip2)
    finally:
        facilitator.close()


class SilentNode:
    """A websocket that acknowledges every `signatureSubscribe` and never notifies: confirmations wait."""

    def __init__(self) -> None:
        def answer(connection: Any) -> None:
            for raw in connection:
                request = json.loads(raw)
                connection.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": request["id"]}))

        self.server = serve(answer, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_a_settle_waiting_for_confirmation_holds_no_other_request(net: Any, tmp_path: Path, mint: Pubkey) -> None:
    """Settles run in worker threads: while one waits for a confirmation that does not come, the server
    still answers, and verifies and settles other payments."""
    silent = SilentNode()
    keypair = fund(net, sol=10)
    payee = fund(net).pubkey()
    mint_to(net, payee, mint, 0)
    settings = FacilitatorSettings(
        keypair,
        net.http_url,
        silent.url,
        db_path=tmp_path / "f.db",
        confirm_timeout_seconds=4,
        sweep_interval_seconds=0,
        assets=(AssetRule(str(mint)),),
    )
    requirements = requirements_for(str(keypair.pubkey()), mint, payee)
    first, second = (payment(requirements, buyer(net, mint), latest_blockhash(net)) for _ in range(2))
    try:
        with ServerThread(create_facilitator_app(settings)) as server, ThreadPoolExecutor(2) as pool:
            waiting = pool.submit(facilitator_call, server.url, "settle", first, requirements)
            while not token_balance(net, payee, mint) > 0:  # the first settle sent its transaction...
                assert not waiting.done(), waiting.result()
            assert httpx.get(f"{server.url}/supported", timeout=10).status_code == 200
            assert facilitator_call(server.url, "verify", second, requirements)["isValid"]
            other = pool.submit(facilitator_call, server.url, "settle", second, requirements)
            while token_balance(net, payee, mint) != 2 * PRICE_ATOMIC:  # ...and so did the second
                assert not other.done(), other.result()
            assert not waiting.done()  # ...while the first still waits for its confirmation
            for settled in (waiting.result(), other.result()):  # unconfirmed: pending, reconcilable by a retry
                assert settled["errorReason"] == "settlement_pending" and settled["transaction"]
    finally:
        silent.close()
