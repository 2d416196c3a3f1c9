"""The GhostPay buyer against GhostPay's own seller middleware and `ghost facilitator`, and the buyer's
CLI (`ghost x402 call`, `quote`, `spending`, the `x402.*` config keys), over real HTTP on the localnet."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from x402.http.utils import encode_payment_required_header
from x402.schemas import PaymentRequired, PaymentRequirements

from ghostpay.client import GhostPayClient
from ghostpay.exceptions import SellerNotAllowed
from ghostpay.spending import GuardedWallet, SpendingGuards, SpendLedger
from ghostpay.x402 import x402_http
from ghostpay.x402.buyer import payment_record
from ghostpay.x402.networks import DEVNET
from tests.cli.conftest import ghost
from tests.sdk.conftest import fund, mint_to
from tests.x402.conftest import (
    GHOST,
    PRICE_ATOMIC,
    Agent,
    Process,
    ServerThread,
    Shop,
    buyer,
    keypair_file,
    register_agent,
    token_balance,
)


@pytest.fixture(scope="module")
def agent(net: Any) -> Agent:
    return register_agent(net, "buyable")


@pytest.fixture(scope="module")
def shop(agent: Agent, facilitator: Process) -> Iterator[Shop]:
    with Shop(agent, facilitator.url) as running:
        yield running


async def test_ghostpay_buyer_seller_and_facilitator(net, agent: Agent, shop: Shop, facilitator: Process) -> None:
    """Row 1 of the interop matrix: 200, the payment recorded on chain when the 200 arrives, the score moves."""
    keypair = buyer(net, agent.mint)
    async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url) as gp:
        before = (await gp.get_reputation(agent.address)).metrics
        async with x402_http(gp, feedback="auto") as http:
            quotes = await http.quote(shop.url + "/paid")
            response = await http.get(shop.url + "/paid")
        record = payment_record(response)
        receipt = await gp.get_receipt(agent.address, record.reference)
        stats = await gp.get_payer_stats(agent.address)
        after = await gp.get_reputation(agent.address)
    assert [(q.agent, q.amount_atomic, q.mint) for q in quotes] == [(str(agent.address), PRICE_ATOMIC, str(agent.mint))]
    assert response.status_code == 200 and response.json()["payer"] == str(keypair.pubkey())
    assert record.settled and record.agent == str(agent.address) and record.seller == str(agent.owner.pubkey())
    assert record.verified and receipt is not None and receipt.payer == keypair.pubkey() and record.feedback
    assert shop.handled[-1].payer == keypair.pubkey() and token_balance(net, keypair.pubkey(), agent.mint) == 990_000
    assert after.metrics.successful_payments == before.successful_payments + 1
    assert after.metrics.rating_count == before.rating_count + 1 and after.score > 0
    assert str(receipt.signature) == record.signature and (stats.paid_calls, stats.rated_calls) == (1, 1)


@pytest.fixture
def env(tmp_path: Path, net: Any) -> dict[str, str]:
    """A data folder of its own (config file, spend ledger) and the test localnet."""
    return {"GHOSTPAY_HOME": str(tmp_path / "home"), "GHOST_URL": net.http_url, "GHOST_CONFIG": ""}


def test_cli_quote_call_and_spending(net, agent: Agent, shop: Shop, env: dict[str, str], tmp_path: Path) -> None:
    keypair = buyer(net, agent.mint)
    key = keypair_file(tmp_path, keypair)
    quoted = ghost("x402", "quote", shop.url + "/paid", env=env).data
    assert quoted["status"] == 402 and [(r["amount"], r["agent"], r["pay_to"]) for r in quoted["requirements"]] == [
        ("0.010000", str(agent.address), str(agent.owner.pubkey()))
    ]
    assert ghost("x402", "quote", shop.url + "/free", env=env).data == {
        "url": shop.url + "/free",
        "status": 200,
        "requirements": [],
    }
    text = ghost("x402", "quote", shop.url + "/paid", env=env, output=None).stdout
    assert "asks for one of" in text and str(agent.address) in text

    ghost("config", "set", "x402.daily_budget", "0.02", env=env).data
    # no --yes, no --max-price, no terminal to ask: refused, nothing paid
    refused = ghost("-k", key, "x402", "call", shop.url + "/paid", env=env)
    assert "needs your confirmation" in refused.one_line_error(1)
    paid = ghost("-k", key, "x402", "call", shop.url + "/paid", "--max-price", "0.01", env=env).data
    assert paid["status"] == 200 and paid["body"]["payer"] == str(keypair.pubkey())
    assert paid["payment"]["amount"] == "0.010000" and paid["payment"]["settled"] and paid["payment"]["signature"]
    assert "over the per-call maximum 0.005" in ghost(
        "-k", key, "x402", "call", shop.url + "/paid", "--max-price", "0.005", env=env
    ).one_line_error(1)
    assert "allow it with --max-price or 'ghost config set x402.max_price." in ghost(
        "-k", key, "x402", "call", shop.url + "/paid", "--max-price", "0.005", env=env
    ).one_line_error(1)
    run = ghost("-k", key, "x402", "call", shop.url + "/paid", "--yes", env=env, output=None)
    assert run.code == 0 and json.loads(run.stdout)["payer"] == str(keypair.pubkey())
    assert "paid 0.01" in run.stderr and "settled" in run.stderr
    over = ghost("-k", key, "x402", "call", shop.url + "/paid", "--yes", env=env).one_line_error(1)
    short = f"{str(agent.mint)[:4]}…{str(agent.mint)[-4:]}"  # an unlabelled mint; its config key is its address
    assert over == (
        f"error: paying 0.01 {short} would exceed the daily budget of 0.02 {short} (0.00 {short} left); "
        f"raise it with 'ghost config set x402.daily_budget.{agent.mint} AMOUNT' or wait for the window "
        "to pass; nothing was paid"
    )
    assert token_balance(net, keypair.pubkey(), agent.mint) == 980_000

    spent = ghost("-k", key, "x402", "spending", env=env).data
    [usdc] = spent["mints"]
    assert spent["guards"] == {"daily_budget": "0.02"} and usdc["mint"] == str(agent.mint)
    assert usdc["day"] == {"spent": "0.020000", "budget": "0.02", "remaining": "0.000000"}
    assert [e["state"] for e in spent["recent"]] == ["settled", "settled"]
    assert "Spending guards of" in ghost("-k", key, "x402", "spending", env=env, output=None).stdout


def test_cli_call_http_failure_exit_status_and_usage_errors(
    net, agent: Agent, shop: Shop, env: dict[str, str], tmp_path: Path
) -> None:
    key = keypair_file(tmp_path, buyer(net, agent.mint))
    failed = ghost("-k", key, "x402", "call", shop.url + "/fails", "--yes", env=env)
    # the seller's handler failed: not charged (the GhostPay seller settles only below 400), exit 1
    body = json.loads(failed.stdout)
    assert failed.code == 1 and body["status"] == 500 and body["payment"]["settled"] is False
    text = ghost("-k", key, "x402", "call", shop.url + "/fails", "--yes", env=env, output=None)
    assert (
        text.code == 1
        and text.stdout == "broken\n"
        and text.stderr.splitlines()[-1] == f"error: HTTP 500 from {shop.url}/fails"
    )
    included = ghost("-k", key, "x402", "call", shop.url + "/fails", "--yes", "-i", env=env, output=None).stdout
    head, _, rest = included.partition("\n\n")
    assert head.splitlines()[0] == "HTTP/1.1 500 Internal Server Error" and rest == "broken\n"  # as curl -i
    assert any(line.lower().startswith("content-type: ") for line in head.splitlines()[1:])
    assert "x402 settings are" in ghost("config", "set", "x402.weekly", "1", env=env).one_line_error(2)
    assert "must be a decimal" in ghost("config", "set", "x402.daily_budget", "lots", env=env).one_line_error(2)
    assert "--data or --json" in ghost(
        "x402", "call", shop.url + "/paid", "-d", "a", "--json", "{}", env=env
    ).one_line_error(2)
    assert "not an http(s) URL" in ghost("x402", "quote", "ftp://x", env=env).one_line_error(2)
    ghost("config", "set", "x402.blocked_sellers", str(agent.owner.pubkey()), env=env).data
    assert ghost("config", "get", "x402.blocked_sellers", env=env).data["source"] == "config"
    assert "is blocked" in ghost("-k", key, "x402", "call", shop.url + "/paid", "--yes", env=env).one_line_error(1)


def test_cli_call_asks_on_a_terminal(net, agent: Agent, shop: Shop, env: dict[str, str], tmp_path: Path) -> None:
    keypair = buyer(net, agent.mint)
    key = keypair_file(tmp_path, keypair)

    def call(answer: str) -> tuple[int, str]:
        child = pexpect.spawn(
            GHOST,
            ["-k", str(key), "x402", "call", shop.url + "/paid"],
            encoding="utf-8",
            env={**os.environ, **env, "COLUMNS": "200"},
            timeout=60,
            dimensions=(40, 200),
        )
        try:
            child.expect(
                r"Pay 0\.01 \S+ to "
                + str(agent.owner.pubkey())
                + r" \(agent "
                + str(agent.address)
                + r"\) for http://\S+/paid\? \[y/N\]"
            )
            # the "Calling…" spinner stays stopped while the question waits (it was redrawn over it)
            assert child.expect(["Calling", pexpect.TIMEOUT], timeout=1) == 1
            child.sendline(answer)
            child.expect(pexpect.EOF)
        finally:
            child.close()
        return child.exitstatus, child.before

    code, shown = call("n")
    assert code == 1 and "declined; nothing was paid" in shown
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000
    code, shown = call("y")
    assert code == 0 and "paid 0.01" in shown and str(keypair.pubkey()) in shown
    assert token_balance(net, keypair.pubkey(), agent.mint) == 990_000


async def test_allowed_by_agent_only_when_the_chain_confirms_it(
    net, agent: Agent, shop: Shop, ledger_path: Path
) -> None:
    """A seller naming an allowed agent it is not (its payTo is another wallet) is refused, nothing signed."""
    impostor = fund(net, sol=1).pubkey()
    mint_to(net, impostor, agent.mint, 0)
    fee_payer = httpx.get(shop.url + "/paid").json()  # the real 402 (v1 body): the facilitator's fee payer
    offer = PaymentRequirements(
        scheme="exact",
        network=DEVNET.caip2,
        asset=str(agent.mint),
        amount=str(PRICE_ATOMIC),
        pay_to=str(impostor),
        max_timeout_seconds=60,
        extra={"feePayer": fee_payer["accepts"][0]["extra"]["feePayer"], "ghostpay": {"agent": str(agent.address)}},
    )
    app = FastAPI()
    paid_retries: list[str] = []

    @app.get("/paid")
    async def paid(request: Request) -> JSONResponse:
        if request.headers.get("payment-signature"):
            paid_retries.append(request.headers["payment-signature"])
        return JSONResponse(
            {},
            status_code=402,
            headers={"PAYMENT-REQUIRED": encode_payment_required_header(PaymentRequired(accepts=[offer]))},
        )

    keypair = buyer(net, agent.mint)
    allowed = GuardedWallet(SpendingGuards(allowed_sellers={str(agent.address)}), ledger_path)
    async with GhostPayClient(net.http_url, keypair, ws_url=net.ws_url, guards=allowed) as gp, x402_http(gp) as http:
        assert payment_record(await http.get(shop.url + "/paid")).settled  # the real agent: allowed
        with (
            ServerThread(app) as fake,
            pytest.raises(SellerNotAllowed, match=f"seller {impostor} is not among the allowed"),
        ):
            await http.get(fake.url + "/paid")
    assert paid_retries == [] and token_balance(net, impostor, agent.mint) == 0


def test_config_guards_apply_to_ghost_payment_send(net, agent: Agent, env: dict[str, str], tmp_path: Path) -> None:
    keypair = buyer(net, agent.mint)
    key = keypair_file(tmp_path, keypair)
    ghost("config", "set", "x402.max_price", "0.005", env=env).data
    refused = ghost("-k", key, "payment", "send", "--agent", str(agent.address), env=env)
    assert "over the per-call maximum 0.005" in refused.one_line_error(1)
    ghost("config", "set", "x402.max_price", "0.01", env=env).data
    ghost("config", "set", "x402.total_budget", "0.01", env=env).data
    assert ghost("-k", key, "payment", "send", "--agent", str(agent.address), env=env).data["amount"] == "0.010000"
    again = ghost("-k", key, "payment", "send", "--agent", str(agent.address), env=env)
    assert "total budget of 0.01" in again.one_line_error(1)
    assert token_balance(net, keypair.pubkey(), agent.mint) == 990_000


def test_cli_confirm_above_from_the_config(net, agent: Agent, shop: Shop, env: dict[str, str], tmp_path: Path) -> None:
    keypair = buyer(net, agent.mint)
    key = keypair_file(tmp_path, keypair)
    ghost("config", "set", "x402.confirm_above", "0.005", env=env).data
    # within --max-price, but over the confirmation threshold: asked, and here nobody can answer
    asked = ghost("-k", key, "x402", "call", shop.url + "/paid", "--max-price", "0.01", env=env)
    assert "needs your confirmation" in asked.one_line_error(1)
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000
    assert ghost("-k", key, "x402", "call", shop.url + "/paid", "--yes", env=env).data["payment"]["settled"]
    assert token_balance(net, keypair.pubkey(), agent.mint) == 990_000


def test_cli_call_names_tokens_by_label(net, agent: Agent, shop: Shop, env: dict[str, str], tmp_path: Path) -> None:
    """`--token` takes this cluster's labels, what was paid is said by label, and a token the seller does not
    take is said the right way round (before: "<the seller's mint> is not among the tokens asked for")."""
    keypair = buyer(net, agent.mint)
    key = keypair_file(tmp_path, keypair)
    ghost("tokens", "add", "USDC", str(agent.mint), env=env).data
    eurc = ghost("-k", key, "test-mint", "--symbol", "EURC", "--amount", "5", env=env).data["mint"]
    line = ghost("-k", key, "x402", "call", shop.url + "/paid", "--token", "EURC", "--yes", env=env).one_line_error(1)
    assert line == (
        f"error: the seller does not take EURC ({eurc}); it asks for USDC ({agent.mint}); pass one of "
        "those with --token, or leave --token out; nothing was paid"
    )
    assert "--token USDT names a mint on mainnet-beta" in ghost(
        "-k", key, "x402", "call", shop.url + "/paid", "--token", "USDT", "--yes", env=env
    ).one_line_error(2)
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000
    quoted = ghost("x402", "quote", shop.url + "/paid", env=env).data
    assert [r["symbol"] for r in quoted["requirements"]] == ["USDC"]
    run = ghost("-k", key, "x402", "call", shop.url + "/paid", "--token", "usdc", "--yes", env=env, output=None)
    assert run.code == 0 and "paid 0.01 USDC to" in run.stderr
    assert token_balance(net, keypair.pubkey(), agent.mint) == 1_000_000 - PRICE_ATOMIC


def test_a_seller_calling_its_own_url_is_told_so_and_pays_nothing(
    net, agent: Agent, shop: Shop, env: dict[str, str], tmp_path: Path
) -> None:
    key = keypair_file(tmp_path, agent.owner)  # the agent's owner: its wallet is the payTo
    before = token_balance(net, agent.owner.pubkey(), agent.mint)
    line = ghost("-k", key, "x402", "call", shop.url + "/paid", "--yes", env=env).one_line_error(1)
    assert "you are the seller: its payTo " + str(agent.owner.pubkey()) + " is this wallet" in line
    assert "SelfPayment" in line and "Custom" not in line
    assert token_balance(net, agent.owner.pubkey(), agent.mint) == before


def test_cli_ledger_on_postgresql_from_the_config_or_the_environment(
    net, agent: Agent, shop: Shop, env: dict[str, str], tmp_path: Path, postgres
) -> None:
    keypair = buyer(net, agent.mint)
    key, wallet = keypair_file(tmp_path, keypair), str(keypair.pubkey())
    configured, from_env = postgres.create_database(), postgres.create_database()
    ghost("config", "set", "x402.ledger", configured, env=env).data
    ghost("config", "set", "x402.daily_budget", "0.01", env=env).data
    assert ghost("-k", key, "x402", "call", shop.url + "/paid", "--yes", env=env).data["status"] == 200
    assert "daily budget of 0.01" in ghost(
        "-k", key, "x402", "call", shop.url + "/paid", "--yes", env=env
    ).one_line_error(1)
    spent = ghost("-k", key, "x402", "spending", env=env).data
    assert spent["ledger"] == configured and spent["mints"][0]["day"]["spent"] == "0.010000"
    assert SpendLedger(configured).counts(wallet) == {"settled": 1}
    # GHOST_X402_LEDGER wins over the config file: another ledger, its own budget
    moved = {**env, "GHOST_X402_LEDGER": from_env}
    assert ghost("-k", key, "x402", "call", shop.url + "/paid", "--yes", env=moved).data["status"] == 200
    assert ghost("-k", key, "x402", "spending", env=moved).data["ledger"] == from_env
    assert SpendLedger(from_env).counts(wallet) == {"settled": 1}
    assert SpendLedger(configured).counts(wallet) == {"settled": 1}
    assert token_balance(net, keypair.pubkey(), agent.mint) == 980_000
