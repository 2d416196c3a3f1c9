"""The facilitator's operator policy (issue 24, items 1 and 2), over HTTP against a localnet.

Each attack is performed against `ghost facilitator start` (or its app in-process where the client's
address matters) and refused with its named reason before anything is sent: the SOL and tokens of every
party are unchanged, the refusal is counted in /health and logged on the facilitator's stderr."""

from __future__ import annotations

import asyncio
import doctest
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token.instructions import get_associated_token_address
from starlette.testclient import TestClient
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.mechanisms.svm.constants import DEFAULT_COMPUTE_UNIT_LIMIT
from x402.schemas import PaymentPayload, PaymentRequirements

from ghostpay.client import GhostPayClient
from ghostpay.localnet.process import free_port_pair
from ghostpay.payments import build_record_x402_payment
from ghostpay.x402.facilitator import (
    PAYER_STATS_SPACE,
    FacilitatorSettings,
    keys as facilitator_keys,
    policy as facilitator_policy,
)
from ghostpay.x402.facilitator.app import create_facilitator_app
from ghostpay.x402.facilitator.client import FacilitatorHmacAuth
from ghostpay.x402.facilitator.defaults import DEFAULT_MAX_COMPUTE_UNITS
from ghostpay.x402.facilitator.keys import (
    ERR_AUTH_REVOKED,
    ERR_AUTH_UNKNOWN_KEY,
    AccessGate,
    AuthRefused,
    Credential,
    KeyStore,
    bearer_headers,
    official_create_headers,
    sign_request,
)
from ghostpay.x402.networks import STABLECOINS
from ghostpay.x402.record import RECORD_COMPUTE_UNITS
from tests.sdk.conftest import cheat, create_mint, fund, mint_to
from tests.x402.conftest import (
    GHOST,
    PRICE_ATOMIC,
    Agent,
    Process,
    ServerThread,
    Shop,
    Upstream,
    buyer,
    facilitator_process,
    keypair_file,
    pay,
    register_agent,
    sol_balance,
    token_balance,
)
from tests.x402.craft import facilitator_post, latest_blockhash, memo, payment, request_body, token_transfer
from tests.x402.official_stack import official_seller_app
from tests.x402.test_facilitator import requirements_for

RECORD_CU = DEFAULT_COMPUTE_UNIT_LIMIT + RECORD_COMPUTE_UNITS  # what GhostPay's buyer sets for a recorded payment
USDC_DEV = next(iter(STABLECOINS["solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"]))


# helpers -----------------------------------------------------------------------------------------------


def add_key(folder: Path, name: str, *options: str) -> str:
    """`ghost facilitator keys add NAME ...` on the facilitator's database; the key it prints once."""
    done = subprocess.run(
        [GHOST, "-o", "json", "facilitator", "keys", "add", name, *options, "--db", str(folder / "facilitator.db")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GHOSTPAY_HOME": str(folder)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["key"]


def balances(net: Any, mint: Pubkey, *owners: Pubkey) -> dict[str, tuple[int, int]]:
    return {str(o): (sol_balance(net, o), token_balance(net, o, mint)) for o in owners}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def signed(key: str | None, endpoint: str, body: bytes) -> dict[str, str]:
    return sign_request(key, endpoint, body) if key else {}


def call(
    proc: Process, method: str, paid: PaymentPayload, requirements: PaymentRequirements, key: str | None = None
) -> dict[str, Any]:
    """POST /verify or /settle, HMAC-signed with `key` as GhostPay's clients sign."""
    answer = facilitator_post(
        proc.url, method, paid, requirements, signed(key, method, request_body(paid, requirements))
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_refused(
    net: Any,
    proc: Process,
    paid: PaymentPayload,
    requirements: PaymentRequirements,
    reason: str,
    parties: tuple[Pubkey, ...],
    key: str | None = None,
) -> None:
    """Verify and settle both refuse `paid` with `reason`; nothing moved; /health counts both refusals and
    the facilitator logged them."""
    mint = Pubkey.from_string(requirements.asset)
    fee_payer = Pubkey.from_string(proc.announce["feePayer"])
    before = balances(net, mint, fee_payer, *parties)
    health = httpx.get(f"{proc.url}/health").json()
    logged = proc.log.count(f": {reason}: ")
    verified = call(proc, "verify", paid, requirements, key)
    assert verified["isValid"] is False and verified["invalidReason"] == reason, verified
    settled = call(proc, "settle", paid, requirements, key)
    assert settled["success"] is False and settled["errorReason"] == reason and settled["transaction"] == ""
    assert balances(net, mint, fee_payer, *parties) == before
    after = httpx.get(f"{proc.url}/health").json()
    assert after["settled"] == health["settled"]
    assert after["refusals"].get(reason, 0) == health["refusals"].get(reason, 0) + 2
    wait_for(lambda: proc.log.count(f": {reason}: ") == logged + 2, f"the facilitator did not log {reason}")


def assert_401(answer: httpx.Response, reason: str) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == reason and "GhostPay-HMAC-SHA256" in answer.headers["www-authenticate"]


def recorded(
    net: Any, agent: Agent, payer: Keypair, requirements: PaymentRequirements, rent_payer: Pubkey
) -> tuple[PaymentPayload, bytes]:
    """A GhostPay buyer's payment: the exact layout plus record_x402_payment, its rent paid by `rent_payer`."""
    reference = os.urandom(32)
    record = build_record_x402_payment(
        agent.address,
        payer.pubkey(),
        int(requirements.amount),
        reference,
        get_associated_token_address(payer.pubkey(), agent.mint),
        agent.mint,
        get_associated_token_address(agent.owner.pubkey(), agent.mint),
        rent_payer=rent_payer,
    )
    return payment(
        requirements, payer, latest_blockhash(net), after=[memo(), record], compute_unit_limit=RECORD_CU
    ), reference


@pytest.fixture(scope="module")
def mint(net: Any) -> Pubkey:
    return create_mint(net)


@pytest.fixture(scope="module")
def payee(net: Any, mint: Pubkey) -> Pubkey:
    wallet = fund(net)
    mint_to(net, wallet.pubkey(), mint, 0)
    return wallet.pubkey()


@pytest.fixture(scope="module")
def open_facilitator(net: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """No key (loopback only), any mint, every other default."""
    proc = facilitator_process(net, tmp_path_factory.mktemp("policy-any"), fund(net, sol=100)).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def default_facilitator(net: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """Every default: no key, the network's stablecoins and the test mints of its ghost config."""
    proc = facilitator_process(net, tmp_path_factory.mktemp("policy-default"), fund(net, sol=100), assets=()).start()
    yield proc
    proc.stop()


# 1. fee cap --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limit, price, reason",
    [
        (1_400_000, 5_000_000, "ghostpay_compute_units_too_high"),  # the 7,010,000 lamports a payment
        (20_000, 5_000_000, "ghostpay_fee_too_high"),  # the official client's limit, the official cap's price: 110,000
        (RECORD_CU, 1_800_000, "ghostpay_fee_too_high"),  # a recorded payment's limit: 60,400 lamports
    ],
)
def test_a_generously_priced_payment_is_refused(
    net: Any, open_facilitator: Process, mint: Pubkey, payee: Pubkey, limit: int, price: int, reason: str
) -> None:
    requirements = requirements_for(open_facilitator.announce["feePayer"], mint, payee)
    payer = buyer(net, mint)
    paid = payment(requirements, payer, latest_blockhash(net), compute_unit_limit=limit, compute_unit_price=price)
    assert_refused(net, open_facilitator, paid, requirements, reason, (payer.pubkey(), payee))
    assert token_balance(net, payer.pubkey(), mint) == 1_000_000


def test_the_layouts_of_every_client_pass_the_default_caps(
    net: Any, open_facilitator: Process, mint: Pubkey, payee: Pubkey
) -> None:
    """The official client's 20,000 CU at 1 µlamport (10,001 lamports) and GhostPay's recorded payment's
    28,000 CU verify; the defaults are what those layouts need."""
    assert DEFAULT_MAX_COMPUTE_UNITS == RECORD_CU
    requirements = requirements_for(open_facilitator.announce["feePayer"], mint, payee)
    for limit in (DEFAULT_COMPUTE_UNIT_LIMIT, RECORD_CU):
        paid = payment(requirements, buyer(net, mint), latest_blockhash(net), compute_unit_limit=limit)
        assert call(open_facilitator, "verify", paid, requirements)["isValid"]


def test_the_fee_share_of_a_usd_stablecoin_payment(net: Any, default_facilitator: Process) -> None:
    """Devnet USDC is worth a dollar a unit: a payment of 1 atomic unit ($0.000001) costing a 10,001-lamport fee
    is refused; a cent pays for it (SOL valued at the default $500: $0.005)."""
    usdc = Pubkey.from_string(cheat(net, "surfnet_createMint", {"decimals": 6, "address": USDC_DEV})["value"])
    payee = fund(net).pubkey()
    mint_to(net, payee, usdc, 0)
    payer = buyer(net, usdc)
    tiny = requirements_for(default_facilitator.announce["feePayer"], usdc, payee, amount=1)
    assert_refused(
        net,
        default_facilitator,
        payment(tiny, payer, latest_blockhash(net)),
        tiny,
        "ghostpay_fee_share_too_high",
        (payer.pubkey(), payee),
    )
    cent = requirements_for(default_facilitator.announce["feePayer"], usdc, payee, amount=10_000)
    assert call(default_facilitator, "verify", payment(cent, payer, latest_blockhash(net)), cent)["isValid"]


# 2. whose payments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "assets, reason", [((), "ghostpay_asset_not_allowed"), (("any",), "ghostpay_amount_below_minimum")]
)
def test_a_wallet_without_sol_settling_zero_of_its_own_mint_to_itself(
    net: Any, tmp_path: Path, assets: tuple[str, ...], reason: str
) -> None:
    proc = facilitator_process(net, tmp_path, fund(net, sol=100), assets=assets).start()
    try:
        broke = Keypair()  # no SOL at all
        own = Pubkey.from_string(
            cheat(net, "surfnet_createMint", {"decimals": 6, "mintAuthority": str(broke.pubkey())})["value"]
        )
        mint_to(net, broke.pubkey(), own, 0)
        requirements = requirements_for(proc.announce["feePayer"], own, broke.pubkey(), amount=0)
        paid = payment(requirements, broke, latest_blockhash(net))
        assert_refused(net, proc, paid, requirements, reason, (broke.pubkey(),))
        assert sol_balance(net, broke.pubkey()) == 0
    finally:
        proc.stop()


def test_the_default_allow_list_takes_the_test_mints_of_its_config(net: Any, tmp_path: Path) -> None:
    """On a localnet the default allow-list is the devnet stablecoins and the mints `ghost test-mint`
    labelled, read again when the config changes: a mint made after the start is settled."""
    proc = facilitator_process(net, tmp_path, fund(net, sol=100), assets=()).start()
    try:
        payer = fund(net)
        made = subprocess.run(
            [
                GHOST,
                "-o",
                "json",
                "-u",
                net.http_url,
                "-k",
                str(keypair_file(tmp_path, payer)),
                "test-mint",
                "--symbol",
                "USDC",
                "--amount",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "GHOSTPAY_HOME": str(tmp_path)},
        )
        assert made.returncode == 0, made.stderr
        test_mint = Pubkey.from_string(json.loads(made.stdout)["mint"])
        payee = fund(net).pubkey()
        mint_to(net, payee, test_mint, 0)
        requirements = requirements_for(proc.announce["feePayer"], test_mint, payee)
        settled = call(proc, "settle", payment(requirements, payer, latest_blockhash(net)), requirements)
        assert settled["success"], settled
        assert token_balance(net, payee, test_mint) == PRICE_ATOMIC
        assets = {a["mint"]: a for a in httpx.get(f"{proc.url}/policy").json()["assets"]}
        assert assets[str(test_mint)]["source"] == "test mint USDC" and assets[USDC_DEV]["usdStablecoin"]
        other = create_mint(net)  # made with the cheat code, labelled by nobody
        mint_to(net, payee, other, 0)
        stranger = requirements_for(proc.announce["feePayer"], other, payee)
        payer2 = buyer(net, other)
        assert_refused(
            net,
            proc,
            payment(stranger, payer2, latest_blockhash(net)),
            stranger,
            "ghostpay_asset_not_allowed",
            (payer2.pubkey(), payee),
        )
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def rent_agent(net: Any) -> Agent:
    return register_agent(net, "policy-rent")


def test_fronted_rent_for_a_worthless_mint_is_refused(
    net: Any, default_facilitator: Process, rent_agent: Agent
) -> None:
    """The issue's 1-unit payment of a worthless mint with a record instruction whose rent the fee payer
    would front (2,241,120 lamports): the mint is on no allow-list."""
    fee_payer = Pubkey.from_string(default_facilitator.announce["feePayer"])
    payer = buyer(net, rent_agent.mint)
    requirements = requirements_for(str(fee_payer), rent_agent.mint, rent_agent.owner.pubkey(), amount=1)
    paid, _ = recorded(net, rent_agent, payer, requirements, rent_payer=fee_payer)
    assert_refused(
        net,
        default_facilitator,
        paid,
        requirements,
        "ghostpay_asset_not_allowed",
        (payer.pubkey(), rent_agent.owner.pubkey()),
    )


def test_rent_fronting_by_key_and_its_cap(net: Any, tmp_path: Path, rent_agent: Agent) -> None:
    """A key without --front-rent gets no fronting; one with it gets each new buyer's PayerStats fronted (once
    per buyer and agent: the buyer's later payments cost the fee alone) up to its cap of rent outstanding;
    a buyer closing its PayerStats gives the rent back to the fee payer, and the cap room with it."""
    plain = add_key(tmp_path, "plain")
    fronting = add_key(tmp_path, "fronting", "--front-rent", "--max-rent-outstanding", "0.003")  # one PayerStats
    proc = facilitator_process(net, tmp_path, fund(net, sol=100), "--sweep-interval", "0.2").start()
    try:
        fee_payer = Pubkey.from_string(proc.announce["feePayer"])
        payee = rent_agent.owner.pubkey()
        requirements = requirements_for(str(fee_payer), rent_agent.mint, payee)
        plain_view = httpx.get(f"{proc.url}/supported", headers=signed(plain, "supported", b"")).json()
        fronting_view = httpx.get(f"{proc.url}/supported", headers=signed(fronting, "supported", b"")).json()
        assert "ghostpay-front-receipt-rent" not in plain_view["extensions"]
        assert "ghostpay-front-receipt-rent" in fronting_view["extensions"]

        payer = buyer(net, rent_agent.mint)
        paid, _ = recorded(net, rent_agent, payer, requirements, rent_payer=fee_payer)
        assert_refused(
            net, proc, paid, requirements, "ghostpay_receipt_rent_not_fronted", (payer.pubkey(), payee), key=plain
        )

        def outstanding() -> int:
            return httpx.get(f"{proc.url}/policy", headers=signed(fronting, "policy", b"")).json()["seller"][
                "rentOutstandingLamports"
            ]

        rent = int(net.rpc("getMinimumBalanceForRentExemption", PAYER_STATS_SPACE)["result"])
        sol = sol_balance(net, fee_payer)
        first, _ = recorded(net, rent_agent, payer, requirements, rent_payer=fee_payer)
        assert call(proc, "settle", first, requirements, fronting)["success"]
        assert outstanding() == rent and 10_000 <= sol - sol_balance(net, fee_payer) - rent <= 10_001

        sol = sol_balance(net, fee_payer)
        again, _ = recorded(net, rent_agent, payer, requirements, rent_payer=fee_payer)  # the same pair: no rent
        assert call(proc, "settle", again, requirements, fronting)["success"]
        assert outstanding() == rent and 10_000 <= sol - sol_balance(net, fee_payer) <= 10_001

        newcomer = buyer(net, rent_agent.mint)  # a second pair would pass the cap: refused, nothing moved
        second, _ = recorded(net, rent_agent, newcomer, requirements, rent_payer=fee_payer)
        assert_refused(
            net, proc, second, requirements, "ghostpay_rent_outstanding_cap", (newcomer.pubkey(), payee), key=fronting
        )

        async def close() -> None:  # the first buyer closes its PayerStats: the rent goes back to the fee payer
            async with GhostPayClient(net.http_url, payer, ws_url=net.ws_url) as gp:
                await gp.close_payer_stats(rent_agent.address)

        sol = sol_balance(net, fee_payer)
        asyncio.run(close())
        assert sol_balance(net, fee_payer) == sol + rent
        third, _ = recorded(net, rent_agent, newcomer, requirements, rent_payer=fee_payer)
        assert call(proc, "settle", third, requirements, fronting)["success"]  # the cap saw the closed account
        assert outstanding() == rent
    finally:
        proc.stop()


class CountingListener:
    """A TCP port that counts the connections made to it (and closes them): an RPC nobody may call."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"


def test_without_keys_a_non_loopback_client_is_refused_before_any_rpc(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rpc = CountingListener()
    # no sweep and no Bazaar: both read the chain on their own schedule, whoever calls
    settings = FacilitatorSettings(
        Keypair(),
        rpc.url,
        rpc.url.replace("http", "ws"),
        db_path=tmp_path / "f.db",
        sweep_interval_seconds=0,
        discovery_refresh_seconds=0,
    )
    body = {"x402Version": 2, "paymentPayload": {}, "paymentRequirements": {}}
    remote_app = create_facilitator_app(settings)
    with TestClient(remote_app, client=("203.0.113.7", 40000)) as remote:
        for answer in (
            remote.post("/verify", json=body),
            remote.post("/settle", json=body),
            remote.get("/supported"),
            remote.get("/policy"),
            remote.get("/health"),
        ):
            assert answer.status_code == 403 and answer.json()["error"] == "ghostpay_loopback_only", answer.text
        assert remote_app.state.facilitator.refusals.snapshot() == {"ghostpay_loopback_only": 5}
    assert (
        sum("ghostpay_loopback_only" in r.getMessage() and "203.0.113.7" in r.getMessage() for r in caplog.records) == 5
    )
    with TestClient(create_facilitator_app(settings), client=("127.0.0.1", 40000)) as local:
        relayed = local.post("/settle", json=body, headers={"X-Forwarded-For": "203.0.113.7"})
        assert relayed.status_code == 403 and relayed.json()["error"] == "ghostpay_loopback_only"
        assert rpc.accepted == 0  # refused before any connection to the RPC
        assert local.get("/supported").status_code == 200  # the operator, on loopback
    rpc.sock.close()


def test_start_says_it_serves_loopback_only(net: Any, tmp_path: Path, default_facilitator: Process) -> None:
    assert default_facilitator.announce["auth"] == "loopback-only"
    assert httpx.get(f"{default_facilitator.url}/health").json()["auth"] == "loopback-only"
    text = subprocess.Popen(
        [
            GHOST,
            "-u",
            net.http_url,
            "-k",
            str(keypair_file(tmp_path, fund(net))),
            "facilitator",
            "start",
            "--port",
            "0",
            "--db",
            str(tmp_path / "f.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "GHOSTPAY_HOME": str(tmp_path)},
    )
    try:
        assert text.stdout is not None
        assert text.stdout.readline().startswith("facilitator listening on")
        assert text.stdout.readline().startswith("no seller key configured: serving loopback clients only")
    finally:
        text.terminate()
        text.wait(timeout=15)


@pytest.fixture(scope="module")
def keyed(net: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, str, Path]]:
    """A facilitator with one seller key ("alice"), any mint."""
    folder = tmp_path_factory.mktemp("policy-keyed")
    key = add_key(folder, "alice", "--settles-per-minute", "1000")
    proc = facilitator_process(net, folder, fund(net, sol=100)).start()
    assert proc.announce["auth"] == "keys"
    yield proc, key, folder
    proc.stop()


def test_bad_expired_replayed_or_forged_credentials_answer_401(
    net: Any, keyed: tuple[Process, str, Path], mint: Pubkey, payee: Pubkey
) -> None:
    proc, key, folder = keyed
    fee_payer = Pubkey.from_string(proc.announce["feePayer"])
    requirements = requirements_for(str(fee_payer), mint, payee)
    payer = buyer(net, mint)
    paid = payment(requirements, payer, latest_blockhash(net))
    body = request_body(paid, requirements)
    key_id = facilitator_keys.key_id_of(key)
    before = balances(net, mint, fee_payer, payer.pubkey(), payee)
    refusals = httpx.get(f"{proc.url}/health").json()["refusals"]

    def settle(headers: dict[str, str], content: bytes = body, endpoint: str = "settle") -> httpx.Response:
        return httpx.post(
            f"{proc.url}/{endpoint}",
            content=content,
            headers={"Content-Type": "application/json", **headers},
            timeout=60,
        )

    assert_401(settle({}), "ghostpay_auth_required")
    assert_401(settle({"Authorization": f"Bearer {key[:-4]}AAAA"}), "ghostpay_auth_unknown_key")
    assert_401(settle({"Authorization": "Basic YWxpY2U6c2VjcmV0"}), "ghostpay_auth_malformed")
    forged = f"gpk_{key_id}_{'x' * 43}"  # the right id, a guessed secret
    assert_401(settle(sign_request(forged, "settle", body)), "ghostpay_auth_bad_signature")
    assert_401(settle(sign_request(f"gpk_000000000000_{'x' * 43}", "settle", body)), "ghostpay_auth_unknown_key")
    assert_401(settle(sign_request(key, "settle", b"{}")), "ghostpay_auth_bad_signature")  # signed another body
    assert_401(settle(sign_request(key, "settle", body, now=time.time() - 310)), "ghostpay_auth_expired")
    assert_401(settle(sign_request(key, "settle", body, now=time.time() + 310)), "ghostpay_auth_expired")
    verify_headers = sign_request(key, "verify", body)
    assert settle(verify_headers, endpoint="verify").json()["isValid"]
    assert_401(settle(verify_headers, endpoint="verify"), "ghostpay_auth_replayed")
    assert_401(settle(verify_headers), "ghostpay_auth_bad_signature")  # a verify's signature does not settle
    assert balances(net, mint, fee_payer, payer.pubkey(), payee) == before
    counted = httpx.get(f"{proc.url}/health").json()["refusals"]
    for reason, times in (
        ("ghostpay_auth_required", 1),
        ("ghostpay_auth_unknown_key", 2),
        ("ghostpay_auth_bad_signature", 3),
        ("ghostpay_auth_expired", 2),
        ("ghostpay_auth_replayed", 1),
        ("ghostpay_auth_malformed", 1),
    ):
        assert counted.get(reason, 0) - refusals.get(reason, 0) == times, reason
    wait_for(lambda: "ghostpay_auth_replayed" in proc.log, "the facilitator did not log the replay")

    assert settle(sign_request(key, "settle", body)).json()["success"]  # the key, signed, settles
    assert token_balance(net, payee, mint) == before[str(payee)][1] + PRICE_ATOMIC


def test_a_revoked_key_is_refused_at_once(net: Any, tmp_path: Path, mint: Pubkey, payee: Pubkey) -> None:
    key = add_key(tmp_path, "short-lived")
    proc = facilitator_process(net, tmp_path, fund(net, sol=100)).start()
    try:
        requirements = requirements_for(proc.announce["feePayer"], mint, payee)
        paid = payment(requirements, buyer(net, mint), latest_blockhash(net))
        assert call(proc, "verify", paid, requirements, key)["isValid"]
        revoked = subprocess.run(
            [GHOST, "facilitator", "keys", "revoke", "short-lived", "--db", str(tmp_path / "facilitator.db")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert revoked.returncode == 0, revoked.stderr
        body = request_body(paid, requirements)
        for headers in (sign_request(key, "settle", body), {"Authorization": f"Bearer {key}"}):
            assert_401(facilitator_post(proc.url, "settle", paid, requirements, headers), "ghostpay_auth_key_revoked")
    finally:
        proc.stop()


def test_keys_kept_in_memory_follow_every_change_another_process_commits(tmp_path: Path) -> None:
    """The facilitator's key table is read once and kept; a key added, revoked or deleted through another
    connection (the CLI's) counts from the next request, and a store that cannot be read fails closed."""
    db = tmp_path / "facilitator.db"
    serving, cli = KeyStore(db), KeyStore(db)
    gate = AccessGate(serving)

    def identify(key: str) -> str:
        try:
            admitted = gate.admit("10.0.0.1", "settle", {"authorization": f"Bearer {key}"}, public=False)
        except AuthRefused as refused:
            return refused.reason
        assert isinstance(admitted, Credential)
        return admitted.key.name

    assert gate.mode() == "loopback-only"
    _, alice = cli.add("alice")
    assert gate.mode() == "keys" and identify(alice) == "alice"
    _, bob = cli.add("bob")
    assert identify(bob) == "bob"
    cli.revoke("alice")
    assert identify(alice) == ERR_AUTH_REVOKED and identify(bob) == "bob"
    with sqlite3.connect(db) as other:  # by hand, as no command does: the key is gone at once
        other.execute("DELETE FROM seller_keys WHERE name = 'bob'")
    assert identify(bob) == ERR_AUTH_UNKNOWN_KEY
    _, carol = serving.add("carol")  # this connection's own write counts too
    assert identify(carol) == "carol"
    serving.close()
    assert identify(carol) == "ghostpay_auth_store_unavailable"
    cli.close()


def test_an_official_seller_uses_a_bearer_key_through_create_headers(
    net: Any, keyed: tuple[Process, str, Path], rent_agent: Agent
) -> None:
    """The package's middleware, unchanged, with `create_headers` giving the key as a bearer: paid; without
    it, the facilitator refuses its verify and nothing moves."""
    proc, key, _ = keyed
    owner = str(rent_agent.owner.pubkey())
    with_key = official_seller_app(
        proc.url, owner, str(rent_agent.mint), PRICE_ATOMIC, create_headers=lambda: official_create_headers(key)
    )
    without = official_seller_app(proc.url, owner, str(rent_agent.mint), PRICE_ATOMIC)
    with ServerThread(with_key) as paid_seller, ServerThread(without) as keyless_seller:
        payer = buyer(net, rent_agent.mint)
        answer = pay(net, payer, f"{paid_seller.url}/paid")
        assert answer.status_code == 200 and answer.json() == {"answer": 42}
        assert token_balance(net, payer.pubkey(), rent_agent.mint) == 1_000_000 - PRICE_ATOMIC
        other = buyer(net, rent_agent.mint)
        assert pay(net, other, f"{keyless_seller.url}/paid").status_code != 200
        assert token_balance(net, other.pubkey(), rent_agent.mint) == 1_000_000
    wait_for(lambda: "ghostpay_auth_required" in proc.log, "the facilitator did not log the keyless verify")


def test_ghostpay_middleware_proxy_and_sdk_sign_with_the_key(
    net: Any, keyed: tuple[Process, str, Path], rent_agent: Agent, tmp_path: Path
) -> None:
    proc, key, _ = keyed
    with Shop(rent_agent, proc.url, facilitator_key=key) as shop:
        payer = buyer(net, rent_agent.mint)
        assert pay(net, payer, f"{shop.url}/paid").status_code == 200
        assert token_balance(net, payer.pubkey(), rent_agent.mint) == 1_000_000 - PRICE_ATOMIC
    with Shop(rent_agent, proc.url) as keyless:
        other = buyer(net, rent_agent.mint)
        answer = pay(net, other, f"{keyless.url}/paid")
        assert answer.status_code == 502 and "ghostpay_auth_required" in answer.json()["message"]
        assert token_balance(net, other.pubkey(), rent_agent.mint) == 1_000_000

    with ServerThread(Upstream().app) as upstream:
        proxy = Process(
            "-u",
            net.http_url,
            "x402",
            "proxy",
            "--agent",
            str(rent_agent.address),
            "--upstream",
            upstream.url,
            "--facilitator",
            proc.url,
            "--route",
            "GET /free",
            "--port",
            str(free_port_pair()[0]),
            home=tmp_path,
        )
        proxy.env["GHOSTPAY_FACILITATOR_KEY"] = key
        proxy.start()
        try:
            third = buyer(net, rent_agent.mint)
            assert pay(net, third, f"{proxy.url}/free").status_code == 200
            assert token_balance(net, third.pubkey(), rent_agent.mint) == 1_000_000 - PRICE_ATOMIC
        finally:
            proxy.stop()

    async def sdk_verify() -> Any:  # the package's own client, its httpx client signing each request
        requirements = requirements_for(proc.announce["feePayer"], rent_agent.mint, rent_agent.owner.pubkey())
        paid = payment(requirements, buyer(net, rent_agent.mint), latest_blockhash(net))
        async with httpx.AsyncClient(auth=FacilitatorHmacAuth(key)) as http:
            client = HTTPFacilitatorClient(FacilitatorConfig(url=proc.url, http_client=http))
            return await client.verify(paid, requirements)

    assert asyncio.run(sdk_verify()).is_valid


@pytest.mark.parametrize(
    "terms, reason",
    [
        (("--settles-per-minute", "1"), "ghostpay_settle_quota_exceeded"),
        (("--fee-lamports-per-day", "15000"), "ghostpay_fee_quota_exceeded"),  # one official payment: 10,001
    ],
)
def test_quota_exhaustion(
    net: Any, tmp_path: Path, mint: Pubkey, payee: Pubkey, terms: tuple[str, ...], reason: str
) -> None:
    key = add_key(tmp_path, "metered", *terms)
    proc = facilitator_process(net, tmp_path, fund(net, sol=100)).start()
    try:
        requirements = requirements_for(proc.announce["feePayer"], mint, payee)
        first = payment(requirements, buyer(net, mint), latest_blockhash(net))
        assert call(proc, "settle", first, requirements, key)["success"]
        payer = buyer(net, mint)
        assert_refused(
            net,
            proc,
            payment(requirements, payer, latest_blockhash(net)),
            requirements,
            reason,
            (payer.pubkey(), payee),
            key=key,
        )
        seller = httpx.get(f"{proc.url}/policy", headers=signed(key, "policy", b"")).json()["seller"]
        assert seller["name"] == "metered" and seller["settlesLastMinute"] == 1
        assert seller["feeLamportsLast24h"] == 10_001  # what was admitted: refusals give theirs back
    finally:
        proc.stop()


def test_quotas_fail_closed_when_their_store_is_unavailable(
    net: Any, keyed: tuple[Process, str, Path], mint: Pubkey, payee: Pubkey
) -> None:
    """Another process holds the database's write lock: no settle can be counted, so none is made (a bearer key is
    read from the store; an HMAC-signed request, whose nonce cannot be recorded, is refused before that)."""
    proc, key, folder = keyed
    requirements = requirements_for(proc.announce["feePayer"], mint, payee)
    payer = buyer(net, mint)
    paid = payment(requirements, payer, latest_blockhash(net))
    locker = sqlite3.connect(folder / "facilitator.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        before = balances(net, mint, Pubkey.from_string(proc.announce["feePayer"]), payer.pubkey(), payee)
        refusals = httpx.get(f"{proc.url}/health").json()["refusals"].get("ghostpay_quota_store_unavailable", 0)
        signed_settle = facilitator_post(
            proc.url, "settle", paid, requirements, signed(key, "settle", request_body(paid, requirements))
        )
        assert (signed_settle.status_code, signed_settle.json()["error"]) == (503, "ghostpay_auth_store_unavailable")
        answer = facilitator_post(proc.url, "settle", paid, requirements, bearer_headers(key))
        settled = answer.json()
        assert settled["errorReason"] == "ghostpay_quota_store_unavailable" and settled["transaction"] == ""
        assert balances(net, mint, Pubkey.from_string(proc.announce["feePayer"]), payer.pubkey(), payee) == before
        assert httpx.get(f"{proc.url}/health").json()["refusals"]["ghostpay_quota_store_unavailable"] == refusals + 1
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    wait_for(lambda: "ghostpay_quota_store_unavailable" in proc.log, "the facilitator did not log the refusal")
    assert call(proc, "settle", paid, requirements, key)["success"]  # the store is back: the same payment settles


def test_policy_and_supported_list_what_will_be_refused(keyed: tuple[Process, str, Path]) -> None:
    proc, key, _ = keyed
    policy = httpx.get(f"{proc.url}/policy").json()
    assert policy["auth"]["mode"] == "keys" and policy["caller"] == "anonymous" and "seller" not in policy
    assert policy["fees"]["maxFeeLamports"] == 50_000 and policy["fees"]["maxComputeUnits"] == RECORD_CU
    assert policy["assets"] == [{"mint": "any", "minAmount": 1, "source": "--asset", "usdStablecoin": False}]
    for reason in (
        "ghostpay_fee_too_high",
        "ghostpay_compute_units_too_high",
        "ghostpay_fee_share_too_high",
        "ghostpay_asset_not_allowed",
        "ghostpay_amount_below_minimum",
        "ghostpay_receipt_rent_not_fronted",
        "ghostpay_rent_outstanding_cap",
        "ghostpay_settle_quota_exceeded",
        "ghostpay_fee_quota_exceeded",
        "ghostpay_quota_store_unavailable",
        "ghostpay_auth_replayed",
        "ghostpay_loopback_only",
    ):
        assert reason in policy["refusals"]
    mine = httpx.get(f"{proc.url}/policy", headers={"Authorization": f"Bearer {key}"}).json()
    assert mine["seller"]["name"] == "alice" and mine["seller"]["frontRent"] is False
    extensions = httpx.get(f"{proc.url}/supported").json()["extensions"]
    assert {"ghostpay-policy", "ghostpay-max-fee-lamports:50000", "ghostpay-max-compute-units:28000"} <= set(extensions)
    assert "ghostpay-front-receipt-rent" not in extensions  # no key, no fronting
    assert httpx.get(f"{proc.url}/health").json()["auth"] == "keys"
    assert_401(
        httpx.get(f"{proc.url}/policy", headers={"Authorization": "Bearer gpk_nope_nope"}), "ghostpay_auth_unknown_key"
    )


def test_the_fee_is_what_a_validator_charges() -> None:
    """Signatures (the precompiles' too) and the priority fee; a limit left out is 200,000 CU per instruction;
    a compute-budget instruction that cannot be read counts as the worst it could say."""
    payer, fee_payer = Keypair(), Keypair()

    def fee(*instructions: Instruction) -> facilitator_policy.FeeEstimate:
        message = MessageV0.try_compile(fee_payer.pubkey(), list(instructions), [], Hash.default())
        signatures = [Signature.default()] * message.header.num_required_signatures
        return facilitator_policy.fee_of(VersionedTransaction.populate(message, signatures))

    transfer = token_transfer(payer.pubkey(), Pubkey.new_unique(), Pubkey.new_unique(), 1)
    assert fee(set_compute_unit_limit(20_000), set_compute_unit_price(1), transfer, memo()).lamports == 10_001
    assert fee(transfer, memo(), memo()).compute_unit_limit == 600_000
    two_signatures = Instruction(Pubkey.from_string("Ed25519SigVerify111111111111111111111111111"), bytes([2, 0]), [])
    assert fee(set_compute_unit_limit(20_000), transfer, two_signatures).lamports == 4 * 5_000
    garbled = Instruction(set_compute_unit_limit(1).program_id, bytes([2, 1, 0]), [])
    assert fee(garbled, transfer).compute_unit_limit == 1_400_000


def test_doctests() -> None:
    for module in (facilitator_keys, facilitator_policy):
        assert doctest.testmod(module).failed == 0
