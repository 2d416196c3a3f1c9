"""The HTTP JSON-RPC through solana-py's AsyncClient (and raw JSON where shapes matter)."""

from __future__ import annotations

import asyncio
import base64
import time

import based58
import httpx
import pytest
import zstandard
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.types import MemcmpOpts, TokenAccountOpts, TxOpts
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay import instructions as ix
from ghostpay.accounts import Agent
from ghostpay.agent_instructions import build_close_agent
from ghostpay.discovery import AGENT_SPACE, IS_ACTIVE_OFFSET, OWNER_OFFSET
from ghostpay.localnet.encoding import FILTER_PREFIX
from ghostpay.program_id import PROGRAM_ID
from tests.localnet.conftest import LocalnetProcess
from tests.localnet.helpers import register_tx, signed, transfer_tx

SOL = 1_000_000_000


async def funded(client: AsyncClient, sol: int = 10) -> Keypair:
    keypair = Keypair()
    sig = (await client.request_airdrop(keypair.pubkey(), sol * SOL)).value
    await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
    return keypair


async def test_cluster_methods(localnet: LocalnetProcess) -> None:
    async with AsyncClient(localnet.http_url) as client:
        assert await client.is_connected()
        version = (await client.get_version()).value
        assert version.solana_core
        slot = (await client.get_slot()).value
        await asyncio.sleep(0.9)
        later = (await client.get_slot()).value
        assert later >= slot + 2  # a slot per ~400 ms
        assert (await client.get_block_height()).value >= later
        epoch = (await client.get_epoch_info()).value
        assert epoch.absolute_slot >= later
        rent = (await client.get_minimum_balance_for_rent_exemption(AGENT_SPACE)).value
        assert rent == 6960 * (AGENT_SPACE + 128)
        assert len(str((await client.get_genesis_hash()).value)) >= 32
        block_time = (await client.get_block_time(slot)).value
        assert abs(block_time - int(time.time())) < 5
    fees = localnet.rpc("getRecentPrioritizationFees", [str(PROGRAM_ID)])["result"]
    assert fees and fees[-1]["prioritizationFee"] == 0


async def test_transfer_is_confirmed_and_recorded(localnet: LocalnetProcess) -> None:
    async with AsyncClient(localnet.http_url) as client:
        sender, receiver = await funded(client), Keypair().pubkey()
        assert (await client.get_balance(sender.pubkey())).value == 10 * SOL
        blockhash = (await client.get_latest_blockhash()).value
        assert localnet.rpc("isBlockhashValid", str(blockhash.blockhash))["result"]["value"] is True
        tx = transfer_tx(sender, receiver, 12_345, blockhash.blockhash)
        fee = (await client.get_fee_for_message(tx.message)).value
        assert fee == 5000
        sig = (await client.send_transaction(tx)).value
        await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
        assert (await client.get_balance(receiver)).value == 12_345
        statuses = (await client.get_signature_statuses([sig])).value
        assert statuses[0] is not None and statuses[0].err is None

        got = (await client.get_transaction(sig, max_supported_transaction_version=0)).value
        meta = got.transaction.meta
        assert meta.fee == 5000 and meta.err is None
        assert meta.pre_balances[0] - meta.post_balances[0] == 12_345 + 5000
        assert meta.post_balances[1] == 12_345
        assert meta.log_messages == [
            "Program 11111111111111111111111111111111 invoke [1]",
            "Program 11111111111111111111111111111111 success",
        ]
        assert meta.compute_units_consumed == 150
        assert got.block_time and got.slot <= (await client.get_slot()).value
        raw = (await client.get_transaction(sig, encoding="base64")).value
        assert raw.transaction.transaction.signatures[0] == sig

        # the same transaction again is a duplicate
        with pytest.raises(RPCException) as duplicate:
            await client.send_transaction(tx)
        assert "already been processed" in str(duplicate.value)


async def test_signatures_for_address_pages(localnet: LocalnetProcess) -> None:
    async with AsyncClient(localnet.http_url) as client:
        sender, receiver = await funded(client), Keypair().pubkey()
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        sigs = []
        for lamports in range(1_000_000, 1_000_005):
            sigs.append((await client.send_transaction(transfer_tx(sender, receiver, lamports, blockhash))).value)
        newest_first = [s.signature for s in (await client.get_signatures_for_address(receiver)).value]
        assert newest_first == sigs[::-1]
        page = (await client.get_signatures_for_address(receiver, before=sigs[3], until=sigs[0], limit=10)).value
        assert [s.signature for s in page] == [sigs[2], sigs[1]]
        assert len((await client.get_signatures_for_address(receiver, limit=2)).value) == 2
        assert (await client.get_signatures_for_address(sender.pubkey())).value[-1].signature != sigs[0]


async def test_signatures_for_address_give_memos_as_agave_formats_them(localnet: LocalnetProcess) -> None:
    from solders.instruction import AccountMeta
    from solders.system_program import TransferParams, transfer
    from spl.memo.constants import MEMO_PROGRAM_ID

    async with AsyncClient(localnet.http_url) as client:
        sender, receiver = await funded(client), Keypair().pubkey()
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        memo = [
            Instruction(MEMO_PROGRAM_ID, text.encode(), [AccountMeta(sender.pubkey(), True, False)])
            for text in ("x402 nonce 9f2c", "é")
        ]
        pay = transfer(TransferParams(from_pubkey=sender.pubkey(), to_pubkey=receiver, lamports=1_000_000))
        with_memos = (await client.send_transaction(signed([pay, *memo], [sender], blockhash))).value
        plain = (await client.send_transaction(transfer_tx(sender, receiver, 1_000_001, blockhash))).value
        await client.confirm_transaction(plain, Confirmed, sleep_seconds=0.05)
        rows = {r["signature"]: r for r in localnet.rpc("getSignaturesForAddress", str(receiver))["result"]}
        assert rows[str(with_memos)]["memo"] == "[15] x402 nonce 9f2c; [2] é"  # length in bytes, as Agave
        assert rows[str(plain)]["memo"] is None


async def test_register_agent_and_program_accounts(localnet: LocalnetProcess) -> None:
    async with AsyncClient(localnet.http_url) as client:
        owner = await funded(client)
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        addresses = []
        for agent_id in ("alpha", "beta"):
            tx, address = register_tx(owner, agent_id, blockhash)
            sig = (await client.send_transaction(tx)).value
            await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
            addresses.append(address)

        info = (await client.get_account_info(addresses[0])).value
        assert info.owner == PROGRAM_ID and len(info.data) == AGENT_SPACE
        assert Agent.decode(info.data).agent_id == "alpha"
        several = (await client.get_multiple_accounts([addresses[1], Keypair().pubkey()])).value
        assert Agent.decode(several[0].data).agent_id == "beta" and several[1] is None

        mine = (
            await client.get_program_accounts(
                PROGRAM_ID, encoding="base64", filters=[AGENT_SPACE, MemcmpOpts(offset=8, bytes=str(owner.pubkey()))]
            )
        ).value
        assert sorted(str(a.pubkey) for a in mine) == sorted(str(a) for a in addresses)
        assert (await client.get_program_accounts(PROGRAM_ID, filters=[AGENT_SPACE + 1])).value == []
        sliced = localnet.rpc(
            "getProgramAccounts",
            str(PROGRAM_ID),
            {
                "encoding": "base64",
                "dataSlice": {"offset": 8, "length": 32},
                "withContext": True,
                "filters": [
                    {
                        "memcmp": {
                            "offset": 8,
                            "bytes": base64.b64encode(bytes(owner.pubkey())).decode(),
                            "encoding": "base64",
                        }
                    }
                ],
            },
        )["result"]
        assert sliced["context"]["slot"] > 0 and len(sliced["value"]) == 2
        assert base64.b64decode(sliced["value"][0]["account"]["data"][0]) == bytes(owner.pubkey())
        # base64+zstd, as the Solana CLI asks for accounts: one zstd frame of the same bytes
        packed = localnet.rpc("getAccountInfo", str(addresses[0]), {"encoding": "base64+zstd"})["result"]["value"]
        text, encoding = packed["data"]
        assert encoding == "base64+zstd" and len(base64.b64decode(text)) < AGENT_SPACE
        assert zstandard.ZstdDecompressor().decompress(base64.b64decode(text)) == bytes(info.data)
        head = localnet.rpc(
            "getMultipleAccounts",
            [str(addresses[1])],
            {"encoding": "base64+zstd", "dataSlice": {"offset": 8, "length": 32}},
        )["result"]["value"][0]
        assert zstandard.ZstdDecompressor().decompress(base64.b64decode(head["data"][0])) == bytes(owner.pubkey())

        got = (await client.get_transaction(sig, max_supported_transaction_version=0)).value
        logs = got.transaction.meta.log_messages
        assert any(line.startswith("Program data: ") for line in logs)  # the AgentRegistered event
        assert got.transaction.meta.inner_instructions  # the system program's create_account CPI
        assert got.transaction.meta.compute_units_consumed > 1000


async def test_bad_transaction_has_the_validator_error_shape(localnet: LocalnetProcess) -> None:
    async with AsyncClient(localnet.http_url) as client:
        payer = await funded(client)
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        bad = signed([Instruction(PROGRAM_ID, bytes(8), [])], [payer], blockhash)  # unknown discriminator
        raw = httpx.post(
            localnet.http_url,
            json={
                "jsonrpc": "2.0",
                "id": 7,
                "method": "sendTransaction",
                "params": [base64.b64encode(bytes(bad)).decode(), {"encoding": "base64"}],
            },
        ).json()
        error = raw["error"]
        assert error["code"] == -32002
        assert (
            error["message"] == "Transaction simulation failed: Error processing Instruction 0: "
            "custom program error: 0x65"
        )
        assert error["data"]["err"] == {"InstructionError": [0, {"Custom": 101}]}
        assert any("InstructionFallbackNotFound" in line for line in error["data"]["logs"])
        assert set(error["data"]) >= {"accounts", "err", "logs", "unitsConsumed", "returnData"}
        assert (await client.get_balance(payer.pubkey())).value == 10 * SOL  # rejected in preflight: no fee

        with pytest.raises(RPCException):  # solana-py parses the same error
            await client.send_transaction(bad)

        sig = (await client.send_transaction(bad, opts=TxOpts(skip_preflight=True))).value
        await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
        status = (await client.get_signature_statuses([sig])).value[0]
        assert status.err is not None
        landed = localnet.rpc("getTransaction", str(sig), {"encoding": "json"})["result"]
        assert landed["meta"]["err"] == {"InstructionError": [0, {"Custom": 101}]}
        assert landed["meta"]["status"] == {"Err": {"InstructionError": [0, {"Custom": 101}]}}
        assert (await client.get_balance(payer.pubkey())).value == 10 * SOL - 5000  # landed: fee paid

        stale = transfer_tx(payer, Keypair().pubkey(), 1, Hash.new_unique())
        error = localnet.rpc("sendTransaction", base64.b64encode(bytes(stale)).decode(), {"encoding": "base64"})[
            "error"
        ]
        assert (error["code"], error["message"]) == (-32002, "Transaction simulation failed: Blockhash not found")
        assert error["data"]["err"] == "BlockhashNotFound"

        tampered = bytearray(bytes(transfer_tx(payer, Keypair().pubkey(), 1, blockhash)))
        tampered[5] ^= 0xFF  # corrupt the signature
        error = localnet.rpc("sendTransaction", base64.b64encode(bytes(tampered)).decode(), {"encoding": "base64"})[
            "error"
        ]
        assert (error["code"], error["message"]) == (-32003, "Transaction signature verification failure")


async def test_simulate_transaction(localnet: LocalnetProcess) -> None:
    async with AsyncClient(localnet.http_url) as client:
        payer, receiver = await funded(client), Keypair().pubkey()
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        tx = transfer_tx(payer, receiver, 777, blockhash)
        sim = (await client.simulate_transaction(tx, sig_verify=True)).value
        assert sim.err is None and sim.units_consumed == 150
        assert (await client.get_balance(receiver)).value == 0  # nothing committed
        encoded = base64.b64encode(bytes(tx)).decode()
        result = localnet.rpc(
            "simulateTransaction",
            encoded,
            {
                "encoding": "base64",
                "replaceRecentBlockhash": True,
                "accounts": {"addresses": [str(receiver)], "encoding": "base64"},
            },
        )["result"]["value"]
        assert result["accounts"][0]["lamports"] == 777
        assert result["replacementBlockhash"]["blockhash"]
        error = localnet.rpc(
            "simulateTransaction", encoded, {"encoding": "base64", "sigVerify": True, "replaceRecentBlockhash": True}
        )["error"]
        assert error["code"] == -32602


def test_malformed_requests_get_json_rpc_errors(localnet: LocalnetProcess) -> None:
    url = localnet.http_url
    assert httpx.post(url, content=b"{not json").json()["error"]["code"] == -32700
    assert httpx.post(url, json={"id": 1, "method": "getSlot"}).json()["error"]["code"] == -32600
    assert httpx.post(url, json=[]).json()["error"]["code"] == -32600
    assert httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "getNothing"}).json()["error"] == {
        "code": -32601,
        "message": "Method not found",
    }
    bad_key = localnet.rpc("getBalance", "not-a-key")["error"]
    assert bad_key["code"] == -32602
    assert localnet.rpc("getBalance")["error"]["code"] == -32602
    assert localnet.rpc("sendTransaction", "!!!", {"encoding": "base64"})["error"]["code"] == -32602
    assert localnet.rpc("sendTransaction", "AAAA", {"encoding": "base64"})["error"]["code"] == -32602
    assert localnet.rpc("getAccountInfo", str(PROGRAM_ID), {"commitment": "soon"})["error"]["code"] == -32602
    batch = httpx.post(
        url, json=[{"jsonrpc": "2.0", "id": 1, "method": "getHealth"}, {"jsonrpc": "2.0", "id": 2, "method": "nope"}]
    ).json()
    assert batch[0]["result"] == "ok" and batch[1]["error"]["code"] == -32601
    assert httpx.get(url + "/health").text == "ok"
    assert localnet.rpc("getHealth")["result"] == "ok"  # still serving


async def test_cheat_codes_tokens_accounts_and_clock(localnet: LocalnetProcess) -> None:
    owner = Keypair().pubkey()
    mint = localnet.rpc("surfnet_createMint", {"decimals": 6})["result"]["value"]
    assert localnet.rpc("surfnet_setTokenAccount", str(owner), mint, {"amount": 2_500_000})["result"]["value"] is None
    async with AsyncClient(localnet.http_url) as client:
        mint_key = Pubkey.from_string(mint)
        supply = (await client.get_token_supply(mint_key)).value
        assert (supply.amount, supply.decimals, supply.ui_amount_string) == ("2500000", 6, "2.5")
        accounts = (await client.get_token_accounts_by_owner(owner, TokenAccountOpts(mint=mint_key))).value
        assert len(accounts) == 1
        balance = (await client.get_token_account_balance(accounts[0].pubkey)).value
        assert balance.amount == "2500000"
        parsed = (
            await client.get_token_accounts_by_owner_json_parsed(
                owner, TokenAccountOpts(program_id=Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"))
            )
        ).value
        assert parsed[0].account.data.parsed["info"]["tokenAmount"]["uiAmount"] == 2.5

        key = Keypair().pubkey()
        localnet.rpc("surfnet_setAccount", str(key), {"lamports": 42, "data": "0102ff", "owner": str(PROGRAM_ID)})
        info = (await client.get_account_info(key)).value
        assert (info.lamports, info.data, info.owner) == (42, b"\x01\x02\xff", PROGRAM_ID)

        slot = (await client.get_slot()).value
        moved = localnet.rpc(
            "surfnet_timeTravel", {"absoluteTimestamp": 2_000_000_000_000, "absoluteSlot": slot + 1000}
        )["result"]
        assert moved["absoluteSlot"] >= slot + 1000
        assert (await client.get_block_time((await client.get_slot()).value)).value >= 2_000_000_000
        assert localnet.rpc("surfnet_timeTravel", {"absoluteSlot": 1})["error"]["code"] == -32602


def zstd_program_accounts(localnet: LocalnetProcess, *filters: dict, batch: bool = False) -> dict[str, dict]:
    """getProgramAccounts of the program in base64+zstd (the items the localnet keeps), by address, each
    account's data decompressed; with `batch`, asked inside a JSON-RPC batch with context."""
    cfg = {"encoding": "base64+zstd", "filters": list(filters)}
    if batch:
        calls = [
            {"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "getProgramAccounts",
                "params": [str(PROGRAM_ID), cfg | {"withContext": True}],
            },
        ]
        slot, answer = httpx.post(localnet.http_url, json=calls, timeout=10).json()
        assert slot["result"] <= answer["result"]["context"]["slot"]
        items = answer["result"]["value"]
    else:
        items = localnet.rpc("getProgramAccounts", str(PROGRAM_ID), cfg)["result"]
    found = {}
    for item in items:
        text, encoding = item["account"]["data"]
        assert encoding == "base64+zstd"
        found[item["pubkey"]] = item["account"] | {
            "data": zstandard.ZstdDecompressor().decompress(base64.b64decode(text))
        }
    return found


async def test_kept_program_accounts_follow_every_write(localnet: LocalnetProcess) -> None:
    """The localnet keeps each account's base64+zstd item between searches: a search after a transaction or a
    cheat code writes an agent sees the new bytes, after a close no longer sees it; its items are the accounts
    as getAccountInfo and the base64 encoding (never kept) give them, memcmp past the kept prefix included."""
    async with AsyncClient(localnet.http_url) as client:
        owner = await funded(client)
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        tx, address = register_tx(owner, "kept", blockhash)
        await client.confirm_transaction((await client.send_transaction(tx)).value, Confirmed, sleep_seconds=0.05)
        mine = {"memcmp": {"offset": OWNER_OFFSET, "bytes": str(owner.pubkey())}}
        active = {"memcmp": {"offset": IS_ACTIVE_OFFSET, "bytes": based58.b58encode(b"\1").decode()}}

        def search(*filters: dict) -> dict[str, dict]:
            kept = zstd_program_accounts(localnet, mine, *filters)
            again = zstd_program_accounts(localnet, mine, *filters, batch=True)  # served from what is kept
            plain = localnet.rpc(
                "getProgramAccounts", str(PROGRAM_ID), {"encoding": "base64", "filters": [mine, *filters]}
            )["result"]
            assert (
                kept
                == again
                == {
                    item["pubkey"]: item["account"] | {"data": base64.b64decode(item["account"]["data"][0])}
                    for item in plain
                }
            )
            return kept

        first = search(active, {"dataSize": AGENT_SPACE})
        info = localnet.rpc("getAccountInfo", str(address), {"encoding": "base64+zstd"})["result"]["value"]
        assert first[str(address)] | {"data": None} == info | {"data": None}
        data = first[str(address)]["data"]
        assert Agent.decode(data).is_active and Agent.decode(data).name == "Agent kept"

        # a transaction writes the agent: the next search sees it inactive
        deactivate = ix.set_agent_active({"is_active": False}, {"agent": address, "owner": owner.pubkey()})
        sig = (await client.send_transaction(signed([deactivate], [owner], blockhash))).value
        await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
        assert search(active) == {}
        assert not Agent.decode(search()[str(address)]["data"]).is_active

        # a cheat code writes it: the next search sees the new bytes, past the kept prefix too
        renamed = data.replace(b"Agent kept", b"Agent KEPT")
        localnet.rpc("surfnet_setAccount", str(address), {"data": [base64.b64encode(renamed).decode(), "base64"]})
        tail = renamed.index(b"Agent KEPT")
        named = {"memcmp": {"offset": tail, "bytes": based58.b58encode(b"Agent KEPT").decode()}}
        assert tail > FILTER_PREFIX and search(named)[str(address)]["data"] == renamed
        assert search(active)[str(address)]["data"] == renamed

        # closed by a transaction: gone from the next search
        close = build_close_agent(address, owner.pubkey())
        sig = (await client.send_transaction(signed([close], [owner], blockhash))).value
        await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.05)
        assert search() == {}
