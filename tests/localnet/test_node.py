"""The localnet through @solana/web3.js 1.x (tests/js/localnet.mjs), as a browser or Node dApp sees it."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed

from ghostpay.discovery import AGENT_SPACE
from ghostpay.program_id import PROGRAM_ID
from tests.localnet.conftest import ROOT, LocalnetProcess
from tests.localnet.helpers import register_tx
from tests.localnet.test_rpc import funded

JS = ROOT / "tests" / "js"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_web3js_against_the_localnet(localnet: LocalnetProcess) -> None:
    if not (JS / "node_modules" / "@solana" / "web3.js").is_dir():
        pytest.fail("tests/js/node_modules is missing: run scripts/setup.sh (it runs `npm ci` there)")
    async with AsyncClient(localnet.http_url) as client:
        owner = await funded(client)
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        tx, agent = register_tx(owner, "from-node", blockhash)
        await client.confirm_transaction((await client.send_transaction(tx)).value, Confirmed, sleep_seconds=0.05)

    result = subprocess.run(
        [
            "node",
            "localnet.mjs",
            localnet.http_url,
            localnet.ws_url,
            str(PROGRAM_ID),
            str(owner.pubkey()),
            str(AGENT_SPACE),
        ],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["balance"] == 2_000_000_000 and summary["receiverBalance"] == 1_000_000
    assert summary["preflight"].startswith("Simulation failed")
    assert summary["preflightLogs"] > 0
    assert summary["signatureErr"] == {"InstructionError": [0, {"Custom": 101}]}
    assert summary["logsSignature"] is True and summary["logsErr"] == summary["signatureErr"]
    assert summary["transferLogs"][-1] == "Program 11111111111111111111111111111111 success"
    assert summary["transferFee"] == 5000 and summary["programExecutable"] is True
    transfer = summary["parsedTransfer"]  # getParsedTransaction: the jsonParsed shape web3.js validates
    assert transfer["type"] == "transfer" and transfer["info"]["lamports"] == 1_000_000
    assert summary["parsedPayerSigner"] is True
    assert summary["agents"] == [str(agent)]
    assert summary["signatures"] == [summary["transferSig"]]
