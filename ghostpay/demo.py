"""The main job end to end over JSON-RPC: register an agent priced for x402, pay it
for one call (a facilitator paying the fees), rate the call, read the reputation.

Used by `ghost demo`; runs against any RPC endpoint whose validator has the
GhostPay program and the `surfnet_*` cheat codes (a localnet), and starts a
throwaway localnet when given none.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
from solana.exceptions import SolanaRpcException
from solana.rpc.api import Client
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.types import TxOpts
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from ghostpay.accounts import Agent, ReputationMetrics
from ghostpay.agent_instructions import AgentProfile, build_register_agent
from ghostpay.instructions import submit_feedback
from ghostpay.localnet.process import LocalnetProcess, LocalnetStartError
from ghostpay.payments import build_x402_payment
from ghostpay.pda import agent_address, receipt_address, reputation_address
from ghostpay.reputation import ReputationInputs, reputation_score, tier
from ghostpay.types import X402Config

PRICE = 10_000  # 0.01 of a 6-decimal token
DECIMALS = 6
AIRDROP_LAMPORTS = 2_000_000_000


class DemoError(Exception):
    """The demo could not complete; the message says why."""


@dataclass
class DemoResult:
    agent: Pubkey
    state: Agent
    metrics: ReputationMetrics
    signatures: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        score = reputation_score(ReputationInputs.from_account(self.metrics))
        return {"agent": str(self.agent), "signatures": self.signatures, "state": self.state.to_json(),
                "reputation": {**score.__dict__, "tier": tier(score.score, True).value}}


@contextlib.contextmanager
def temporary_localnet() -> Iterator[str]:
    """A localnet on free ports with a throwaway ledger; yields its RPC URL."""
    with tempfile.TemporaryDirectory(prefix="ghostpay-demo-") as tmp:
        try:
            net = LocalnetProcess(Path(tmp) / "ledger", "--quiet").start()
        except LocalnetStartError as exc:
            raise DemoError(str(exc)) from exc
        try:
            yield net.http_url
        finally:
            net.stop(signal.SIGTERM)


def _cheat(url: str, method: str, *params: Any) -> Any:
    try:
        reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                           timeout=10).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DemoError(f"cannot reach a Solana RPC at {url}: {exc}") from exc
    if "error" in reply:
        hint = " (the demo needs a GhostPay localnet)" if method.startswith("surfnet_") else ""
        raise DemoError(f"{method} failed: {reply['error'].get('message')}{hint}")
    return reply["result"]


def _send(client: Client, instructions: list[Instruction], signers: list[Keypair]) -> str:
    blockhash = client.get_latest_blockhash().value.blockhash
    message = Message.new_with_blockhash(instructions, signers[0].pubkey(), blockhash)
    try:
        signature = client.send_transaction(Transaction(signers, message, blockhash),
                                           opts=TxOpts(preflight_commitment=Confirmed)).value
    except (RPCException, SolanaRpcException) as exc:
        detail = getattr(exc.args[0], "message", None) if exc.args else None  # skip the preflight logs
        raise DemoError(f"transaction failed: {detail or str(exc).splitlines()[0]}") from exc
    client.confirm_transaction(signature, Confirmed, sleep_seconds=0.1)
    return str(signature)


def run_demo(url: str, progress: Callable[[str], None] = lambda _: None) -> DemoResult:
    """Register, pay once through a facilitator, rate the call, and read everything back."""
    _cheat(url, "getHealth")  # a clear error for an unreachable URL before anything else
    client = Client(url, commitment=Confirmed)
    owner, payee, payer, facilitator = Keypair(), Keypair(), Keypair(), Keypair()
    progress("funding the accounts (airdrop, a test USDC mint)")
    for keypair in (owner, payer, facilitator):
        client.confirm_transaction(client.request_airdrop(keypair.pubkey(), AIRDROP_LAMPORTS).value, Confirmed,
                                   sleep_seconds=0.1)
    usdc = Pubkey.from_string(_cheat(url, "surfnet_createMint", {"decimals": DECIMALS})["value"])
    _cheat(url, "surfnet_setTokenAccount", str(payer.pubkey()), str(usdc), {"amount": 1_000_000})

    signatures = {}
    progress("register_agent with its x402 price, in one transaction")
    profile = AgentProfile("translator", "Translator", 1, "Translates text between English and French",
                           "https://agents.example.com/translator.json", ["translate", "summarize"])
    config = X402Config(payee.pubkey(), PRICE, [usdc], "https://agents.example.com/translate")
    signatures["register_agent"] = _send(client, [build_register_agent(owner.pubkey(), profile, config)], [owner])
    agent, _ = agent_address(owner.pubkey(), profile.agent_id)

    progress("paying one call: TransferChecked + record_x402_payment, fees paid by a facilitator")
    reference = os.urandom(32)
    payment = build_x402_payment(payer.pubkey(), agent, payee.pubkey(), usdc, DECIMALS, PRICE, reference,
                                 fee_payer=facilitator.pubkey(), create_payee_account=True,
                                 compute_unit_limit=60_000)
    signatures["x402_payment"] = _send(client, payment, [facilitator, payer])

    progress("submit_feedback: success, 245 ms, five stars")
    reputation, _ = reputation_address(agent)
    feedback = submit_feedback({"success": True, "response_time_ms": 245, "rating": 5},
                               {"agent": agent, "reputation": reputation,
                                "receipt": receipt_address(agent, reference)[0], "payer": payer.pubkey()})
    signatures["submit_feedback"] = _send(client, [feedback], [payer])

    accounts = client.get_multiple_accounts([agent, reputation], encoding="base64").value
    if any(a is None for a in accounts):
        raise DemoError("the agent or its reputation account is missing after the demo")
    return DemoResult(agent, Agent.decode(accounts[0].data), ReputationMetrics.decode(accounts[1].data), signatures)
