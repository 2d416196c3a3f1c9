"""getTransaction with `jsonParsed`: account keys as objects and the System / SPL Token / Associated Token /
Memo instructions parsed as Agave parses them (solders' typed parser accepts the shape), other programs'
instructions partially decoded; an encoding the localnet does not serve is a JSON-RPC error."""

from __future__ import annotations

from solders.transaction_status import ParsedInstruction, UiPartiallyDecodedInstruction

from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.program_id import PROGRAM_ID
from tests.sdk.conftest import PRICE, fund, mint_to


async def test_a_payment_in_the_parsed_shape(net, usdc) -> None:
    seller = GhostPayClient(net.http_url, fund(net))
    buyer = GhostPayClient(net.http_url, fund(net))
    async with seller, buyer:
        registered = await seller.register_agent(
            "parsed", "Parsed", x402=X402Settings({usdc: PRICE}, "https://p.example")
        )
        mint_to(net, buyer.wallet, usdc, 1_000_000)
        paid = await buyer.pay_agent(registered.address)
        raw = net.rpc(
            "getTransaction", str(paid.signature), {"encoding": "jsonParsed", "maxSupportedTransactionVersion": 0}
        )["result"]
        keys = raw["transaction"]["message"]["accountKeys"]
        assert keys[0] == {"pubkey": str(buyer.wallet), "signer": True, "source": "transaction", "writable": True}
        by_program = {ix.get("program", ix["programId"]): ix for ix in raw["transaction"]["message"]["instructions"]}
        transfer = by_program["spl-token"]["parsed"]
        assert transfer["type"] == "transferChecked"
        assert transfer["info"]["mint"] == str(usdc) and transfer["info"]["authority"] == str(buyer.wallet)
        assert transfer["info"]["tokenAmount"] == {
            "amount": "10000",
            "decimals": 6,
            "uiAmount": 0.01,
            "uiAmountString": "0.01",
        }
        assert by_program["spl-associated-token-account"]["parsed"]["type"] == "createIdempotent"
        record = by_program[str(PROGRAM_ID)]  # GhostPay's own: partially decoded, as Agave does
        assert set(record) == {"accounts", "data", "programId", "stackHeight"}
        assert "loadedAddresses" not in raw["meta"] and raw["meta"]["innerInstructions"]
        inner = [ix for group in raw["meta"]["innerInstructions"] for ix in group["instructions"]]
        assert any(ix.get("parsed", {}).get("type") == "createAccount" for ix in inner)  # the receipt's CPI

        typed = (
            await buyer.rpc.get_transaction(paid.signature, "jsonParsed", max_supported_transaction_version=0)
        ).value
        instructions = typed.transaction.transaction.message.instructions
        assert any(isinstance(ix, ParsedInstruction) and ix.program == "spl-token" for ix in instructions)
        assert any(isinstance(ix, UiPartiallyDecodedInstruction) and ix.program_id == PROGRAM_ID for ix in instructions)

        for encoding in ("binary", "base64+zstd", "yaml"):
            error = net.rpc("getTransaction", str(paid.signature), {"encoding": encoding})["error"]
            assert error["code"] == -32602 and "unsupported encoding" in error["message"]
