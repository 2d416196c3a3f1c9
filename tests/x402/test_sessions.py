"""Sign-In-With-Solana sessions on a real localnet, through `ghost facilitator start`: a payer signs in instead
of paying again within the seller's period (GhostPay's buyer, and the official client with the package's own
SIWX client extension), and every forged, replayed, foreign or unpaid sign-in is refused with a fresh 402."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair
from solders.signature import Signature
from spl.token.instructions import get_associated_token_address
from x402.extensions.sign_in_with_x import (
    SIGN_IN_WITH_X,
    CreateSIWxClientExtensionOptions,
    create_siwx_client_extension,
    create_siwx_payload,
    encode_siwx_header,
)
from x402.http.clients import x402HttpxClient
from x402.http.utils import decode_payment_required_header
from x402.mechanisms.svm.signers import KeypairSigner

from ghostpay.client import GhostPayClient
from ghostpay.x402 import x402_http
from ghostpay.x402.buyer import payment_record, session_call
from ghostpay.x402.networks import DEVNET
from ghostpay.x402.sessions import (
    HINT_KEY,
    REASON_EXPIRED,
    REASON_NOT_CONFIRMED,
    REASON_NOT_PAID,
    REASON_OTHER_ROUTE,
    REASON_REPLAYED,
    SESSION_HEADER,
    Sessions,
    SessionSettings,
)
from tests.cli.conftest import ghost
from tests.x402.conftest import (
    PRICE_ATOMIC,
    Agent,
    Process,
    ServerThread,
    Shop,
    Upstream,
    buyer,
    guarded,
    keypair_file,
    official_client,
    proxy_process,
    register_agent,
    sol_balance,
    token_balance,
)
from tests.x402.test_proxy import settled_rows

PERIOD = 3600.0
FUNDED = 1_000_000  # what `buyer` gives each payer


class Clock:
    """The sessions' clock, moved forward by the tests instead of waiting."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:
    return register_agent(net, "sessions")


@pytest.fixture(scope="module")
def session_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sessions") / "sessions.sqlite3"


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def shop(agent: Agent, facilitator: Process, session_db: Path, clock: Clock) -> Iterator[Shop]:
    running = Shop(agent, facilitator.url, session=SessionSettings(PERIOD, session_db))
    assert running.seller.sessions is not None
    running.seller.sessions.clock = clock
    with running:
        yield running


def challenge(url: str, **headers: str) -> tuple[dict[str, Any], Any]:
    """(the SIWX challenge of `url`'s 402 with the seller's chain, the whole 402)."""
    answer = httpx.get(url, headers=headers)
    assert answer.status_code == 402
    required = decode_payment_required_header(answer.headers["payment-required"])
    declared = required.extensions[SIGN_IN_WITH_X]
    [chain] = declared["supportedChains"]
    return {**declared["info"], "chainId": chain["chainId"], "type": chain["type"]}, required


def sign(keypair: Keypair, info: dict[str, Any], url: str) -> str:
    """A SIGN-IN-WITH-X header: the package's client helper signing `info` with `keypair`."""
    return encode_siwx_header(asyncio.run(create_siwx_payload(info, KeypairSigner(keypair), url)))


def refused(answer: httpx.Response, reason: str) -> None:
    """A sign-in refused by name, with a fresh 402 to pay (a new challenge and the requirements)."""
    assert answer.status_code == 402, answer.text
    assert answer.json()["reason"] == reason and answer.json()["error"] == reason
    required = decode_payment_required_header(answer.headers["payment-required"])
    assert required.error == reason and required.accepts and SIGN_IN_WITH_X in required.extensions


def paid_once(net: Any, agent: Agent, url: str) -> Keypair:
    """A new payer who paid `url` once with GhostPay's buyer."""
    keypair = buyer(net, agent.mint)

    async def pay() -> None:
        async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp, x402_http(gp) as http:
            assert payment_record(await http.get(url)).settled

    asyncio.run(pay())
    return keypair


def test_the_402_declares_the_packages_siwx_extension(shop: Shop) -> None:
    info, required = challenge(f"{shop.url}/paid", host="evil.example")
    declared = required.extensions[SIGN_IN_WITH_X]
    assert [(c["chainId"], c["type"]) for c in declared["supportedChains"]] == [(DEVNET.caip2, "ed25519")]
    assert declared[HINT_KEY] == {"sessionSeconds": PERIOD} and "schema" in declared
    # bound to the address the seller listens on, whatever Host the client sent
    assert info["domain"] == shop.url.removeprefix("http://") and info["uri"] == f"{shop.url}/paid"
    assert info["resources"] == [info["uri"]] and info["expirationTime"] > info["issuedAt"]
    assert challenge(f"{shop.url}/paid")[0]["nonce"] != info["nonce"]  # a fresh challenge per 402


async def test_a_second_call_within_the_period_is_served_on_a_session_then_paid_again(
    net: Any, agent: Agent, shop: Shop, clock: Clock, tmp_path: Path
) -> None:
    keypair = buyer(net, agent.mint)
    wallet = guarded(tmp_path / "ledger.sqlite3", daily=Decimal("1"))
    ata = get_associated_token_address(keypair.pubkey(), agent.mint)
    url = f"{shop.url}/paid"
    async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp, x402_http(gp, guards=wallet) as http:
        first = await http.get(url)
        paid = payment_record(first)
        assert paid is not None and paid.settled and session_call(first) is None
        balances = (
            token_balance(net, keypair.pubkey(), agent.mint),
            token_balance(net, agent.owner.pubkey(), agent.mint),
        )
        sols = (sol_balance(net, keypair.pubkey()), sol_balance(net, agent.owner.pubkey()))
        history = len((await gp.rpc.get_signatures_for_address(ata)).value)
        spent = wallet.ledger.usage(str(keypair.pubkey()), str(agent.mint), 6).total
        handled = len(shop.handled)

        second = await http.get(url)

        served = session_call(second)
        assert second.status_code == 200 and second.json()["payer"] == str(keypair.pubkey())
        assert payment_record(second) is None and served is not None and len(http.payments) == 1
        assert (served.payer, served.paid_by, served.period_seconds) == (str(keypair.pubkey()), paid.signature, PERIOD)
        assert second.headers[SESSION_HEADER] == paid.signature
        call = shop.handled[handled]
        assert (call.payer, call.amount, call.session) == (keypair.pubkey(), 0, paid.signature)
        # nothing paid: no new transaction of the buyer's token account, balances and budget as they were
        assert len((await gp.rpc.get_signatures_for_address(ata)).value) == history
        assert (
            token_balance(net, keypair.pubkey(), agent.mint),
            token_balance(net, agent.owner.pubkey(), agent.mint),
        ) == balances
        assert balances == (FUNDED - PRICE_ATOMIC, balances[1])
        assert (sol_balance(net, keypair.pubkey()), sol_balance(net, agent.owner.pubkey())) == sols
        assert wallet.ledger.usage(str(keypair.pubkey()), str(agent.mint), 6).total == spent == PRICE_ATOMIC

        clock.ahead = PERIOD  # the period, measured from the payment, is over: a new payment is asked
        try:
            third = await http.get(url)
        finally:
            clock.ahead = 0.0
        again = payment_record(third)
        assert third.status_code == 200 and session_call(third) is None
        assert again is not None and again.settled and again.signature != paid.signature
        assert token_balance(net, keypair.pubkey(), agent.mint) == FUNDED - 2 * PRICE_ATOMIC
        assert wallet.ledger.usage(str(keypair.pubkey()), str(agent.mint), 6).total == 2 * PRICE_ATOMIC


def test_the_period_over_the_seller_refuses_the_session_by_name(
    net: Any, agent: Agent, shop: Shop, clock: Clock
) -> None:
    url = f"{shop.url}/paid"
    keypair = paid_once(net, agent, url)
    clock.ahead = PERIOD
    try:
        refused(httpx.get(url, headers={SIGN_IN_WITH_X: sign(keypair, challenge(url)[0], url)}), REASON_EXPIRED)
    finally:
        clock.ahead = 0.0
    assert httpx.get(url, headers={SIGN_IN_WITH_X: sign(keypair, challenge(url)[0], url)}).status_code == 200


def test_a_key_that_never_paid_or_a_signature_by_another_key_is_refused(net: Any, agent: Agent, shop: Shop) -> None:
    url = f"{shop.url}/paid"
    payer = paid_once(net, agent, url)
    stranger = buyer(net, agent.mint)
    handled, balance = len(shop.handled), token_balance(net, stranger.pubkey(), agent.mint)
    # the stranger signs its own challenge: it paid nothing here
    refused(httpx.get(url, headers={SIGN_IN_WITH_X: sign(stranger, challenge(url)[0], url)}), REASON_NOT_PAID)
    # the stranger signs a challenge claiming the payer's address
    info = challenge(url)[0]
    forged = asyncio.run(create_siwx_payload(info, KeypairSigner(stranger), url))
    forged = forged.model_copy(update={"address": str(payer.pubkey())})
    refused(httpx.get(url, headers={SIGN_IN_WITH_X: encode_siwx_header(forged)}), "invalid_siwx_signature")
    assert len(shop.handled) == handled and token_balance(net, stranger.pubkey(), agent.mint) == balance == FUNDED


def test_a_replayed_challenge_is_refused_also_after_a_restart(
    net: Any, agent: Agent, shop: Shop, session_db: Path
) -> None:
    url = f"{shop.url}/paid"
    keypair = paid_once(net, agent, url)
    header = sign(keypair, challenge(url)[0], url)
    assert httpx.get(url, headers={SIGN_IN_WITH_X: header}).status_code == 200
    handled = len(shop.handled)
    refused(httpx.get(url, headers={SIGN_IN_WITH_X: header}), REASON_REPLAYED)
    assert len(shop.handled) == handled
    # the seller restarted: a new Sessions on the same database still knows the nonce was used
    host, port = shop.url.removeprefix("http://").split(":")
    scope = {"path": "/paid", "scheme": "http", "server": (host, int(port))}
    restarted = Sessions(SessionSettings(PERIOD, session_db), agent.address, DEVNET.caip2)
    try:
        assert asyncio.run(restarted.sign_in(header, scope)).reason == REASON_REPLAYED
        fresh = asyncio.run(restarted.sign_in(sign(keypair, challenge(url)[0], url), scope))
        assert fresh.payer == str(keypair.pubkey())  # its challenges and the payment log outlive the restart
    finally:
        restarted.close()


def test_a_stale_a_future_or_a_malformed_challenge_is_refused(net: Any, agent: Agent, shop: Shop) -> None:
    """Challenges this seller issued (its nonces), but too long ago or for later: the package's issuedAt
    checks refuse them; a header that is not base64 JSON of a SIWX payload is refused by name too."""
    url = f"{shop.url}/paid"
    keypair = paid_once(net, agent, url)
    sessions = shop.seller.sessions
    assert sessions is not None
    host, port = shop.url.removeprefix("http://").split(":")
    scope = {"path": "/paid", "scheme": "http", "server": (host, int(port))}
    chain = {"chainId": DEVNET.caip2, "type": "ed25519"}
    for issued, reason in (
        (-2 * sessions.settings.challenge_seconds, "invalid_siwx_issued_at_too_old"),
        (600, "invalid_siwx_issued_at_in_future"),
    ):
        info = {**sessions.challenge(scope, now=time.time() + issued)[SIGN_IN_WITH_X]["info"], **chain}
        refused(httpx.get(url, headers={SIGN_IN_WITH_X: sign(keypair, info, url)}), reason)
    refused(httpx.get(url, headers={SIGN_IN_WITH_X: "not a header"}), "invalid_siwx_header")
    assert httpx.get(url, headers={SIGN_IN_WITH_X: sign(keypair, challenge(url)[0], url)}).status_code == 200


def test_a_challenge_for_another_origin_or_route_is_refused(net: Any, agent: Agent, shop: Shop) -> None:
    url = f"{shop.url}/paid"
    keypair = paid_once(net, agent, url)
    info = challenge(url)[0]
    elsewhere = {**info, "domain": "evil.example", "uri": "https://evil.example/paid"}
    header = sign(keypair, elsewhere, "https://evil.example/paid")
    refused(httpx.get(url, headers={SIGN_IN_WITH_X: header}), "invalid_siwx_domain_mismatch")
    refused(httpx.get(url, headers={SIGN_IN_WITH_X: header, "host": "evil.example"}), "invalid_siwx_domain_mismatch")
    # a session for /paid opens nothing on /fails: neither its challenge there, nor a /fails challenge
    other = f"{shop.url}/fails"
    refused(httpx.get(other, headers={SIGN_IN_WITH_X: sign(keypair, challenge(url)[0], url)}), REASON_OTHER_ROUTE)
    refused(httpx.get(other, headers={SIGN_IN_WITH_X: sign(keypair, challenge(other)[0], other)}), REASON_NOT_PAID)


async def test_the_official_client_with_the_packages_siwx_extension_signs_in(
    net: Any, agent: Agent, shop: Shop
) -> None:
    keypair = buyer(net, agent.mint)
    client = official_client(net, keypair)
    client.register_extension(create_siwx_client_extension(CreateSIWxClientExtensionOptions([KeypairSigner(keypair)])))
    async with x402HttpxClient(client, timeout=30) as http:
        first = await http.get(f"{shop.url}/paid")  # its sign-in is refused (never paid): it pays
        assert first.status_code == 200 and "payment-response" in first.headers
        second = await http.get(f"{shop.url}/paid")
    assert second.status_code == 200 and "payment-response" not in second.headers
    assert second.headers[SESSION_HEADER] and second.json()["payer"] == str(keypair.pubkey())
    assert token_balance(net, keypair.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC


def test_confirm_on_chain_wants_the_payments_receipt(
    net: Any, agent: Agent, facilitator: Process, tmp_path: Path
) -> None:
    """With confirm_on_chain a recorded payment opens a session once the chain shows its X402PaymentRecorded
    for this agent and payer; a log entry whose transaction shows none (a log written by mistake, or forged)
    opens nothing."""
    settings = SessionSettings(PERIOD, tmp_path / "sessions.sqlite3", confirm_on_chain=True)
    with Shop(agent, facilitator.url, session=settings) as confirming:
        url = f"{confirming.url}/paid"
        payer = paid_once(net, agent, url)
        sessions = confirming.seller.sessions
        assert sessions is not None
        logged = sessions.store.payment(str(payer.pubkey()), "/paid")
        assert logged is not None and logged.recorded
        assert httpx.get(url, headers={SIGN_IN_WITH_X: sign(payer, challenge(url)[0], url)}).status_code == 200
        # the log names a transaction the chain does not have
        other = buyer(net, agent.mint)
        unknown = str(Signature.new_unique())
        sessions.store.record_payment(
            str(other.pubkey()), "/paid", unknown, PRICE_ATOMIC, str(agent.mint), True, time.time()
        )
        refused(httpx.get(url, headers={SIGN_IN_WITH_X: sign(other, challenge(url)[0], url)}), REASON_NOT_CONFIRMED)
        # the payer's own receipt does not open a session for another payer's key either
        sessions.store.record_payment(
            str(other.pubkey()), "/paid", logged.transaction, PRICE_ATOMIC, str(agent.mint), True, time.time()
        )
        refused(httpx.get(url, headers={SIGN_IN_WITH_X: sign(other, challenge(url)[0], url)}), REASON_NOT_CONFIRMED)
    assert token_balance(net, other.pubkey(), agent.mint) == FUNDED


def test_session_settings_take_a_period(agent: Agent) -> None:
    from datetime import timedelta

    from ghostpay.x402.seller import SellerSettings

    settings = SellerSettings(agent.address, agent.net.http_url, session=timedelta(hours=1))
    assert isinstance(settings.session, SessionSettings) and settings.session.period_seconds == 3600
    assert SellerSettings(agent.address, agent.net.http_url, session=90).session == SessionSettings(90)
    with pytest.raises(ValueError):
        SessionSettings(0)


def test_ghost_x402_call_is_served_on_a_session_of_ghost_x402_proxy(
    net: Any, agent: Agent, facilitator: Process, tmp_path: Path
) -> None:
    """`ghost x402 proxy --session 1h`, and `ghost x402 call` twice: paid once, then served on a session (its
    output says so), the budget and balances untouched; the upstream learns the call rode on that payment."""
    service = Upstream()
    with ServerThread(service.app) as upstream:
        proc = proxy_process(
            net, agent, upstream.url, facilitator.url, tmp_path, "--route", "POST /translate", "--session", "1h"
        ).start()
        try:
            payer = buyer(net, agent.mint)
            key = keypair_file(tmp_path, payer)
            env = {"GHOSTPAY_HOME": str(tmp_path / "home"), "GHOST_URL": net.http_url, "GHOST_CONFIG": ""}
            ghost("config", "set", "x402.daily_budget", "1", env=env)
            call = (
                "-k",
                key,
                "x402",
                "call",
                f"{proc.url}/translate",
                "-X",
                "POST",
                "--data",
                "hi",
                "--max-price",
                "1",
            )
            first = ghost(*call, env=env).data
            assert first["payment"]["settled"] and first["session"] is None
            text = ghost(*call, output=None, env=env)
            second = ghost(*call, env=env).data
        finally:
            proc.stop()
    assert text.code == 0 and "served on a session: nothing paid" in text.stderr and "1 h" in text.stderr
    assert first["payment"]["signature"] in text.stderr
    assert second["status"] == 200 and second["payment"] is None
    assert second["session"] == {
        "url": f"{proc.url}/translate",
        "payer": str(payer.pubkey()),
        "period_seconds": 3600.0,
        "paid_by": first["payment"]["signature"],
    }
    assert token_balance(net, payer.pubkey(), agent.mint) == FUNDED - PRICE_ATOMIC
    assert settled_rows(facilitator, payer) == 1
    spent = ghost("-k", key, "x402", "spending", env=env).data
    assert spent["mints"][0]["day"]["spent"] == "0.010000"
    session_calls = [c["headers"] for c in service.calls if "x-ghostpay-session" in c["headers"]]
    assert len(session_calls) == 2 and all(h["x-ghostpay-amount"] == "0" for h in session_calls)
    assert all(h["x-ghostpay-session"] == first["payment"]["signature"] for h in session_calls)
    assert all("sign-in-with-x" not in h for h in session_calls)
