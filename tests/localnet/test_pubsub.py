"""The websocket pub-sub through solana-py's websocket client (and raw websockets for the crowd test)."""

from __future__ import annotations

import asyncio
import json

import websockets
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.websocket_api import connect
from solders.keypair import Keypair
from solders.rpc.config import RpcTransactionLogsFilter, RpcTransactionLogsFilterMentions
from solders.rpc.responses import (
    AccountNotification,
    LogsNotification,
    ProgramNotification,
    SignatureNotification,
    SlotNotification,
)

from ghostpay.program_id import PROGRAM_ID
from tests.localnet.conftest import LocalnetProcess
from tests.localnet.helpers import register_tx, transfer_tx
from tests.localnet.test_rpc import SOL, funded


async def next_of(ws: object, kind: type, timeout: float = 5.0) -> object:
    """The next notification of `kind` (skipping others)."""

    async def wait() -> object:
        while True:
            for message in await ws.recv():  # type: ignore[attr-defined]
                if isinstance(message, kind):
                    return message

    return await asyncio.wait_for(wait(), timeout)


async def test_logs_subscribe_receives_program_events(localnet: LocalnetProcess) -> None:
    async with AsyncClient(localnet.http_url) as client, connect(localnet.ws_url) as ws:
        owner = await funded(client)
        await ws.logs_subscribe(RpcTransactionLogsFilterMentions(PROGRAM_ID), commitment=Confirmed)
        sub_id = (await ws.recv())[0].result
        await ws.logs_subscribe(RpcTransactionLogsFilter.All)
        all_id = (await ws.recv())[0].result
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        tx, _ = register_tx(owner, "events", blockhash)
        sig = (await client.send_transaction(tx)).value
        seen = {}
        while len(seen) < 2:
            for note in await asyncio.wait_for(ws.recv(), 5):
                assert isinstance(note, LogsNotification)
                seen[note.subscription] = note.result
        landed = (await client.get_signature_statuses([sig])).value[0]
        for result in seen.values():
            assert result.value.signature == sig and result.value.err is None
            assert any(line.startswith("Program data: ") for line in result.value.logs)
            assert result.context.slot == landed.slot
        assert set(seen) == {sub_id, all_id}
        await ws.logs_unsubscribe(sub_id)
        assert (await ws.recv())[0].result is True

        # a transfer does not mention the program: only the "all" subscription hears it
        sig = (await client.send_transaction(transfer_tx(owner, Keypair().pubkey(), 1, blockhash))).value
        note = (await asyncio.wait_for(ws.recv(), 5))[0]
        assert note.subscription == all_id and note.result.value.signature == sig


async def test_signature_account_program_and_slot_subscriptions(localnet: LocalnetProcess) -> None:
    async with AsyncClient(localnet.http_url) as client, connect(localnet.ws_url) as ws:
        payer, receiver = await funded(client), Keypair()
        await ws.slot_subscribe()
        slot_sub = (await ws.recv())[0].result
        slot_note = await next_of(ws, SlotNotification)
        assert slot_note.result.slot == slot_note.result.parent + 1
        await ws.slot_unsubscribe(slot_sub)
        assert await next_of_result(ws) is True

        await ws.account_subscribe(receiver.pubkey(), commitment=Confirmed, encoding="base64")
        account_sub = await next_of_result(ws)
        await ws.program_subscribe(PROGRAM_ID, encoding="base64")
        program_sub = await next_of_result(ws)

        blockhash = (await client.get_latest_blockhash()).value.blockhash
        tx = transfer_tx(payer, receiver.pubkey(), 5 * SOL // 10, blockhash)
        await ws.signature_subscribe(tx.signatures[0], commitment=Confirmed)
        await next_of_result(ws)
        await client.send_transaction(tx)
        notes = await gather_kinds(ws, (SignatureNotification, AccountNotification))
        assert notes[SignatureNotification].result.value.err is None
        account = notes[AccountNotification]
        assert account.subscription == account_sub and account.result.value.lamports == 5 * SOL // 10

        await client.confirm_transaction(tx.signatures[0], Confirmed, sleep_seconds=0.05)
        # subscribing to a signature that is already confirmed fires at once
        await ws.signature_subscribe(tx.signatures[0])
        await next_of_result(ws)
        assert (await next_of(ws, SignatureNotification)).result.value.err is None

        register, address = register_tx(receiver, "watched", blockhash)
        await client.send_transaction(register)
        program = await next_of(ws, ProgramNotification)
        while program.result.value.pubkey != address:  # register_agent creates more than one program account
            program = await next_of(ws, ProgramNotification)
        assert program.subscription == program_sub and program.result.value.account.owner == PROGRAM_ID
        await ws.account_unsubscribe(account_sub)
        await ws.program_unsubscribe(program_sub)


async def gather_kinds(ws: object, kinds: tuple[type, ...]) -> dict[type, object]:
    """The first notification of each of `kinds`, in whatever order they come."""
    found: dict[type, object] = {}
    while len(found) < len(kinds):
        for message in await asyncio.wait_for(ws.recv(), 5):  # type: ignore[attr-defined]
            if isinstance(message, kinds):
                found.setdefault(type(message), message)
    return found


async def next_of_result(ws: object) -> int:
    """The result of the next subscribe / unsubscribe reply."""
    while True:
        for message in await asyncio.wait_for(ws.recv(), 5):  # type: ignore[attr-defined]
            if (
                hasattr(message, "result")
                and isinstance(message.result, (int, bool))
                and not hasattr(message, "subscription")
            ):
                return message.result


async def test_fifty_subscribers_all_receive_every_log(localnet: LocalnetProcess) -> None:
    subscribe = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "logsSubscribe",
            "params": [{"mentions": [str(PROGRAM_ID)]}, {"commitment": "confirmed"}],
        }
    )
    clients = [await websockets.connect(localnet.ws_url) for _ in range(50)]
    try:
        for ws in clients:
            await ws.send(subscribe)
        for ws in clients:
            assert isinstance(json.loads(await ws.recv())["result"], int)
        async with AsyncClient(localnet.http_url) as client:
            owner = await funded(client)
            blockhash = (await client.get_latest_blockhash()).value.blockhash
            sigs = [
                str((await client.send_transaction(register_tx(owner, f"crowd{i}", blockhash)[0])).value)
                for i in range(5)
            ]

        async def collect(ws: websockets.ClientConnection) -> list[str]:
            got = []
            while len(got) < len(sigs):
                note = json.loads(await asyncio.wait_for(ws.recv(), 10))
                got.append(note["params"]["result"]["value"]["signature"])
            return got

        received = await asyncio.gather(*(collect(ws) for ws in clients))
        assert all(got == sigs for got in received)
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def test_pubsub_errors(localnet: LocalnetProcess) -> None:
    async with websockets.connect(localnet.ws_url) as ws:
        await ws.send("{nope")
        assert json.loads(await ws.recv())["error"]["code"] == -32700
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "fooSubscribe", "params": []}))
        assert json.loads(await ws.recv())["error"]["code"] == -32601
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "accountSubscribe", "params": ["bad"]}))
        assert json.loads(await ws.recv())["error"]["code"] == -32602
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 4, "method": "logsUnsubscribe", "params": [999999]}))
        assert json.loads(await ws.recv())["error"] == {"code": -32602, "message": "Invalid subscription id."}
