"""The indexer API's ERC-8004 documents: every agent's registration file (the one `ghost agent
registration-file` emits from the chain), and its payers' feedback with the payment's transaction as
`proofOfPayment`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ghostpay.erc8004 import RegistrationFile, parse_account_id
from ghostpay.program_id import PROGRAM_ID
from tests.analytics.conftest import ServedApi
from tests.analytics.world import World, cheat

GHOST = str(Path(sys.executable).with_name("ghost"))


def chain(world: World) -> tuple[str, str]:
    """(CAIP-2 chain id, agentRegistry) of the world's localnet, from its getGenesisHash."""
    genesis = str(cheat(world.net.http_url, "getGenesisHash"))
    return f"solana:{genesis[:32]}", f"solana:{genesis[:32]}:{PROGRAM_ID}"


def test_every_agent_has_its_registration_file(world: World, api: ServedApi, tmp_path: Path) -> None:
    _, registry = chain(world)
    for agent_id, address in world.agents.items():
        served = api.get(f"/api/agents/{address}/registration.json")
        assert served.status_code == 200
        doc = served.json()
        parsed = RegistrationFile.from_json(doc)
        assert parsed.to_json() == doc and parsed.agent_in(registry) == str(address)
        assert parse_account_id(registry) == ("solana", registry.split(":")[1], str(PROGRAM_ID))
        assert [(s.name, s.endpoint) for s in parsed.services] == [
            ("A2A", f"https://{agent_id}.example/.well-known/agent-card.json"),
            ("web", f"https://{agent_id}.example/api"),
        ]
        assert (parsed.name, parsed.x402_support, parsed.active) == (agent_id.title(), True, True)
        emitted = subprocess.run(
            [GHOST, "-u", world.net.http_url, "agent", "registration-file", str(address)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "GHOSTPAY_HOME": str(tmp_path)},
        )
        assert emitted.returncode == 0, emitted.stderr
        assert json.loads(emitted.stdout) == doc  # the index serves what the chain says
    assert api.get(f"/api/agents/{PROGRAM_ID}/registration.json").status_code == 404


def test_feedback_in_the_erc8004_shape_with_the_payment_as_proof(world: World, api: ServedApi) -> None:
    chain_id, registry = chain(world)
    translator = str(world.agents["translator"])
    a, b = (str(p.pubkey()) for p in world.payers)
    rated = [p for p in world.payments if p.agent == world.agents["translator"] and p.outcome != "recorded"]
    pay_to = str(world.owners["translator"].pubkey())  # the payment address defaults to the owner
    doc = api.get(f"/api/agents/{translator}/feedback").json()
    assert (doc["agentRegistry"], doc["agentId"], doc["next_cursor"]) == (registry, translator, None)
    by_proof: dict[str, dict[str, int]] = {}
    for entry in doc["items"]:
        proof = entry["proofOfPayment"]
        assert proof == {"fromAddress": a, "toAddress": pay_to, "chainId": chain_id, "txHash": proof["txHash"]}
        assert (entry["agentRegistry"], entry["agentId"], entry["clientAddress"]) == (
            registry,
            translator,
            f"{chain_id}:{a}",
        )
        assert entry["valueDecimals"] == 0 and entry["createdAt"].endswith("Z")
        by_proof.setdefault(proof["txHash"], {})[entry["tag1"]] = entry["value"]
    assert by_proof == {
        p.signature: {"successRate": 100, "starred": 100, "responseTime": p.response_time_ms} for p in rated
    }
    for signature in by_proof:  # each proof is a real payment transaction of the payer on this chain
        tx = cheat(world.net.http_url, "getTransaction", signature, {"encoding": "json"})
        assert tx["meta"]["err"] is None  # type: ignore[index]
        assert a in tx["transaction"]["message"]["accountKeys"]  # type: ignore[index]
    revenues = {(r["clientAddress"], r["asset"]): (r["value"], r["valueDecimals"]) for r in doc["revenues"]}
    assert revenues == {
        (f"{chain_id}:{a}", f"{chain_id}/token:{world.usdc}"): (20_000, 6),
        (f"{chain_id}:{b}", f"{chain_id}/token:{world.usdc}"): (12_000, 6),
    }
    assert {r["tag1"] for r in doc["revenues"]} == {"revenues"}


def test_one_payers_feedback(world: World, api: ServedApi) -> None:
    """A failed call rated one star: successRate 0, starred 20; a payer who never rated has revenues only."""
    summarizer = str(world.agents["summarizer"])
    a, b = (str(p.pubkey()) for p in world.payers)
    failed = next(p for p in world.payments if p.agent == world.agents["summarizer"] and p.outcome == "failed")
    doc = api.get(f"/api/agents/{summarizer}/feedback", params={"payer": b}).json()
    assert {e["tag1"]: e["value"] for e in doc["items"]} == {"successRate": 0, "starred": 20, "responseTime": 2_000}
    assert {e["proofOfPayment"]["txHash"] for e in doc["items"]} == {failed.signature}
    translator = api.get(f"/api/agents/{world.agents['translator']}/feedback", params={"payer": b}).json()
    assert translator["items"] == [] and [r["value"] for r in translator["revenues"]] == [12_000]
    assert api.get(f"/api/agents/{summarizer}/feedback", params={"payer": "nope"}).status_code == 400
