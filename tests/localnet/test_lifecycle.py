"""Start-up, shutdown, persistence across restarts, user errors and the solana-test-validator engine."""

from __future__ import annotations

import asyncio
import base64
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair
from solders.transaction import Transaction

from ghostpay.localnet.engine import validator_command
from ghostpay.localnet.server import LocalnetConfig, LocalnetError
from ghostpay.program_id import PROGRAM_ID
from tests.localnet.conftest import ROOT, LocalnetProcess, free_port_pair
from tests.localnet.helpers import register_tx, transfer_tx
from tests.localnet.test_rpc import funded


def test_starts_healthy_and_stops_cleanly(tmp_path: Path) -> None:
    """Start-up time is measured by bench/localnet.py, not asserted here."""
    net = LocalnetProcess(tmp_path / "ledger").start()
    out = net.stop(signal.SIGTERM)
    assert f"JSON-RPC:  {net.http_url}" in out and f"WebSocket: {net.ws_url}" in out
    assert "stopped" in out and net.proc is not None and net.proc.returncode == 0


async def test_restart_keeps_accounts_and_transactions(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    net = LocalnetProcess(ledger).start()
    async with AsyncClient(net.http_url) as client:
        owner, receiver = await funded(client), Keypair().pubkey()
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        transfer_sig = (await client.send_transaction(transfer_tx(owner, receiver, 4242, blockhash))).value
        tx, agent = register_tx(owner, "persisted", blockhash)
        register_sig = (await client.send_transaction(tx)).value
        await client.confirm_transaction(register_sig, Confirmed, sleep_seconds=0.05)
        slot = (await client.get_slot()).value
        genesis = (await client.get_genesis_hash()).value
        agent_data = (await client.get_account_info(agent)).value.data
    net.stop(signal.SIGKILL)  # no clean shutdown: what was confirmed must already be on disk

    net = LocalnetProcess(ledger).start()
    try:
        async with AsyncClient(net.http_url) as client:
            assert (await client.get_genesis_hash()).value == genesis
            assert (await client.get_slot()).value >= slot
            assert (await client.get_balance(receiver)).value == 4242
            assert (await client.get_account_info(agent)).value.data == agent_data
            program_accounts = (await client.get_program_accounts(PROGRAM_ID, encoding="base64")).value
            assert agent in [a.pubkey for a in program_accounts]
            got = (await client.get_transaction(register_sig, max_supported_transaction_version=0)).value
            assert any(line.startswith("Program data: ") for line in got.transaction.meta.log_messages)
            history = [s.signature for s in (await client.get_signatures_for_address(owner.pubkey())).value]
            assert history[:2] == [register_sig, transfer_sig]
            # the owner can keep transacting: its balance and the duplicate check survived
            blockhash = (await client.get_latest_blockhash()).value.blockhash
            sig = (await client.send_transaction(transfer_tx(owner, receiver, 1, blockhash))).value
            await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
    finally:
        net.stop()

    net = LocalnetProcess(ledger, "--reset").start()
    try:
        assert net.rpc("getBalance", str(receiver))["result"]["value"] == 0
        assert net.rpc("getTransaction", str(register_sig))["result"] is None
    finally:
        net.stop()


async def test_sigkill_during_a_burst_loses_no_confirmed_transaction(tmp_path: Path) -> None:
    """Group commit answers many concurrent requests with one commit: every transaction whose status was
    answered before a SIGKILL that lands mid-burst is on disk after the restart, and the ledger's state is
    that of exactly the transactions it holds. (A send's answer says only "processed": one answered but never
    seen confirmed may be lost, as a validator may drop it.)"""
    ledger = tmp_path / "ledger"
    net = LocalnetProcess(ledger).start()
    receiver = Keypair().pubkey()
    async with AsyncClient(net.http_url) as client:
        senders = [await funded(client) for _ in range(8)]
        blockhash = (await client.get_latest_blockhash()).value.blockhash
    # every transfer has its own amount, so the receiver's balance says which ones landed
    wires = [
        [
            base64.b64encode(bytes(transfer_tx(s, receiver, 10_000 + 100 * i + n, blockhash))).decode()
            for n in range(200)
        ]
        for i, s in enumerate(senders)
    ]
    confirmed: set[str] = set()
    killed = asyncio.Event()

    async def call(http: httpx.AsyncClient, method: str, *params: object) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        return (await http.post(net.http_url, json=body)).json()["result"]

    async def send(http: httpx.AsyncClient, queue: list[str]) -> None:
        for wire in queue:
            if killed.is_set():
                return
            try:
                signature = await call(http, "sendTransaction", wire, {"encoding": "base64"})
                status = (await call(http, "getSignatureStatuses", [signature]))["value"][0]
            except httpx.HTTPError:
                return  # the kill cut this request
            assert status["confirmationStatus"] == "finalized" and status["err"] is None
            confirmed.add(signature)
            if len(confirmed) == 300 and not killed.is_set():
                killed.set()
                net.proc.kill()  # type: ignore[union-attr]  # SIGKILL while the others are in flight

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=16)) as http:
        await asyncio.gather(*(send(http, queue) for queue in wires))
    net.proc.wait()  # type: ignore[union-attr]
    assert killed.is_set()
    sent = {str(Transaction.from_bytes(base64.b64decode(w)).signatures[0]): w for queue in wires for w in queue}

    net = LocalnetProcess(ledger).start()
    try:
        signatures = list(sent)
        statuses = [
            status
            for i in range(0, len(signatures), 256)  # the RPC's limit per call
            for status in net.rpc("getSignatureStatuses", signatures[i : i + 256])["result"]["value"]
        ]
        landed = {sig for sig, status in zip(signatures, statuses, strict=True) if status is not None}
        assert confirmed <= landed  # nothing seen confirmed was lost ...
        amounts = {
            sig: Transaction.from_bytes(base64.b64decode(sent[sig])).message.instructions[0].data for sig in landed
        }
        expected = sum(int.from_bytes(data[4:12], "little") for data in amounts.values())
        assert net.rpc("getBalance", str(receiver))["result"]["value"] == expected  # ... and state matches
        for sig in list(confirmed)[:20]:
            assert net.rpc("getTransaction", sig, {"encoding": "base64"})["result"]["meta"]["err"] is None
    finally:
        net.stop()


async def test_sigkill_right_after_a_send_answer_keeps_the_transaction_whole_or_not_at_all(tmp_path: Path) -> None:
    """A send's answer leaves before its commit: a SIGKILL right after it may lose the transaction (a validator
    may drop a processed one), but never half of it: after the restart its status, its record and the balances
    agree, whichever way it went."""
    ledger = tmp_path / "ledger"
    net = LocalnetProcess(ledger).start()
    receiver = Keypair().pubkey()
    async with AsyncClient(net.http_url) as client:
        sender = await funded(client)
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        before = (await client.get_balance(sender.pubkey())).value
    tx = transfer_tx(sender, receiver, 4242, blockhash)
    wire = base64.b64encode(bytes(tx)).decode()
    answer = net.rpc("sendTransaction", wire, {"encoding": "base64"})
    net.stop(signal.SIGKILL)  # without waiting for a status
    assert answer["result"] == str(tx.signatures[0])

    net = LocalnetProcess(ledger).start()
    try:
        status = net.rpc("getSignatureStatuses", [answer["result"]])["result"]["value"][0]
        stored = net.rpc("getTransaction", answer["result"], {"encoding": "base64"})["result"]
        received = net.rpc("getBalance", str(receiver))["result"]["value"]
        left = net.rpc("getBalance", str(sender.pubkey()))["result"]["value"]
        if status is None:  # lost: nothing of it
            assert (stored, received, left) == (None, 0, before)
        else:  # kept: all of it
            assert stored["meta"]["err"] is None and received == 4242 and left == before - 4242 - 5000
    finally:
        net.stop()


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ghostpay.localnet", *args], cwd=ROOT, capture_output=True, text=True, timeout=20
    )


def test_user_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    rpc_port, ws_port = free_port_pair()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", rpc_port))
        busy.listen()
        result = run_module("--ledger", str(tmp_path / "a"), "--rpc-port", str(rpc_port), "--ws-port", str(ws_port))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: cannot listen on 127.0.0.1:{rpc_port}")
    assert len(result.stderr.strip().splitlines()) == 1

    bad = tmp_path / "bad.so"
    bad.write_bytes((ROOT / "ghostpay" / "program" / "ghostpay.so").read_bytes()[:64] + bytes(4000))
    result = run_module("--ledger", str(tmp_path / "b"), "--rpc-port", str(rpc_port), "--program-so", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: the runtime rejects the program: "
        "called `Result::unwrap()` on an `Err` value: "
        "Instruction(InvalidAccountData)"
    ]
    net = LocalnetProcess(tmp_path / "shared").start()
    try:
        result = run_module("--ledger", str(tmp_path / "shared"), "--rpc-port", str(rpc_port))
        assert result.returncode == 1
        assert result.stderr.strip() == f"error: the ledger {tmp_path / 'shared'} is in use by another localnet"
    finally:
        net.stop()
    not_elf = tmp_path / "text.so"
    not_elf.write_text("hello")
    result = run_module("--ledger", str(tmp_path / "c"), "--program-so", str(not_elf))
    assert result.returncode == 1 and "not an SBF program" in result.stderr


def test_program_so_option_loads_that_build(tmp_path: Path) -> None:
    so = tmp_path / "copy.so"
    so.write_bytes((ROOT / "ghostpay" / "program" / "ghostpay.so").read_bytes())
    net = LocalnetProcess(tmp_path / "ledger", "--program-so", str(so)).start()
    try:
        info = net.rpc("getAccountInfo", str(PROGRAM_ID), {"encoding": "base64"})["result"]["value"]
        assert info["executable"] is True
    finally:
        net.stop()


def test_ghost_cli_has_the_localnet_commands() -> None:
    from typer.testing import CliRunner

    from ghostpay.cli.main import app

    result = CliRunner().invoke(app, ["localnet", "start", "--help"])
    assert result.exit_code == 0
    for option in ("--rpc-port", "--ws-port", "--ledger", "--reset", "--program-so", "--engine", "--quiet"):
        assert option in result.output
    result = CliRunner().invoke(app, ["localnet", "start", "--engine", "nope"])
    assert result.exit_code == 2 and "--engine must be one of" in result.stderr  # a usage error


def test_solana_test_validator_command(tmp_path: Path) -> None:
    config = LocalnetConfig(rpc_port=9000, ws_port=9001, ledger=tmp_path, reset=True, quiet=True)
    assert validator_command(config, "/p/ghostpay.so", str(PROGRAM_ID)) == [
        "solana-test-validator",
        "--ledger",
        str(tmp_path),
        "--rpc-port",
        "9000",
        "--bind-address",
        "127.0.0.1",
        "--bpf-program",
        str(PROGRAM_ID),
        "/p/ghostpay.so",
        "--reset",
        "--quiet",
    ]
    with pytest.raises(LocalnetError, match="RPC port \\+ 1"):
        validator_command(LocalnetConfig(rpc_port=9000, ws_port=9100), "x.so", str(PROGRAM_ID))


@pytest.mark.skipif(shutil.which("solana-test-validator") is None, reason="solana-test-validator is not installed")
def test_solana_test_validator_engine_runs(tmp_path: Path) -> None:
    rpc_port, ws_port = free_port_pair()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ghostpay.localnet",
            "--engine",
            "solana-test-validator",
            "--ledger",
            str(tmp_path),
            "--rpc-port",
            str(rpc_port),
            "--quiet",
        ],
        cwd=ROOT,
    )
    try:
        for _ in range(600):
            try:
                if (
                    httpx.post(
                        f"http://127.0.0.1:{rpc_port}",
                        json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
                        timeout=0.5,
                    )
                    .json()
                    .get("result")
                    == "ok"
                ):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        info = httpx.post(
            f"http://127.0.0.1:{rpc_port}",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "getAccountInfo",
                "params": [str(PROGRAM_ID), {"encoding": "base64"}],
            },
        ).json()
        assert info["result"]["value"]["executable"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
