"""Datasource: the program's transactions, from JSON-RPC (back-fill) and the websocket (live).

Plain JSON-RPC over httpx with batch requests rather than solana-py's typed client: back-fill
throughput is bounded by request overhead, and raw JSON lets a malformed answer be skipped
instead of failing a whole page.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import websockets
from solders.pubkey import Pubkey

from ghostpay.accounts import Agent
from ghostpay.program_id import PROGRAM_ID

log = logging.getLogger(__name__)

SIGNATURES_PAGE = 1000  # getSignaturesForAddress's maximum limit
RPC_BATCH = 50  # requests per JSON-RPC batch
ACCOUNTS_PAGE = 100  # getMultipleAccounts' maximum
FIRST_RETRY_DELAY = 0.25
MAX_RETRY_DELAY = 30.0  # also caps a node's Retry-After


@dataclass(frozen=True)
class ChainTransaction:
    """What the indexer needs of a transaction, from getTransaction or a logs notification."""

    signature: str
    slot: int
    logs: Sequence[str]
    failed: bool = False


def retry_after(response: httpx.Response) -> float | None:
    """The seconds of a `Retry-After: <seconds>` header (an HTTP date is rare from RPC nodes: ignored)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


class SourceError(RuntimeError):
    """The node answered with an error, or without a transaction it listed: retried by the service."""


@dataclass(frozen=True)
class SignatureInfo:
    signature: str
    slot: int
    failed: bool


class RpcSource:
    """JSON-RPC reads of the program's history at one commitment."""

    def __init__(
        self,
        http_url: str,
        program_id: Pubkey = PROGRAM_ID,
        commitment: str = "confirmed",
        timeout: float = 30.0,
        concurrency: int = 4,
        retries: int = 6,
        max_retry_delay: float = MAX_RETRY_DELAY,
    ) -> None:
        self.http_url = http_url
        self.program_id = program_id
        self.commitment = commitment
        self.concurrency = concurrency
        self.retries = retries
        self.max_retry_delay = max_retry_delay
        self.retried = 0  # requests answered 429 / 5xx and sent again
        self.http = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=concurrency + 2))

    async def close(self) -> None:
        await self.http.aclose()

    async def _post(self, payload: Any) -> httpx.Response:
        """POST, retrying HTTP 429 and 5xx with exponential backoff, or after the node's `Retry-After`."""
        delay = FIRST_RETRY_DELAY
        for attempt in range(self.retries + 1):
            response = await self.http.post(self.http_url, json=payload)
            if response.status_code != 429 and response.status_code < 500 or attempt == self.retries:
                response.raise_for_status()
                return response
            wait = min(retry_after(response) or delay, self.max_retry_delay)
            self.retried += 1
            log.warning("%s answered HTTP %d; retrying in %.2fs", self.http_url, response.status_code, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.max_retry_delay)
        raise AssertionError("unreachable")

    async def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Results of several calls in one HTTP request, in order (SourceError on any error)."""
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        response = await self._post(payload)
        answers = response.json()
        if not isinstance(answers, list):
            raise SourceError(f"batch answered with {str(answers)[:200]}")
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        out = []
        for i, (method, _) in enumerate(calls):
            answer = by_id.get(i)
            if answer is None or "error" in answer:
                raise SourceError(f"{method}: {answer.get('error') if answer else 'no answer'}")
            out.append(answer.get("result"))
        return out

    async def call(self, method: str, *params: Any) -> Any:
        return (await self.batch([(method, list(params))]))[0]

    async def slot(self) -> int:
        return int(await self.call("getSlot", {"commitment": self.commitment}))

    async def genesis_hash(self) -> str:
        return str(await self.call("getGenesisHash"))

    async def signatures_after(self, until: str | None) -> list[SignatureInfo]:
        """Every signature mentioning the program after `until` (all when None), oldest first."""
        found: list[SignatureInfo] = []
        before: str | None = None
        while True:
            options: dict[str, Any] = {"limit": SIGNATURES_PAGE, "commitment": self.commitment}
            if before:
                options["before"] = before
            if until:
                options["until"] = until
            page = await self.call("getSignaturesForAddress", str(self.program_id), options)
            found.extend(SignatureInfo(p["signature"], int(p["slot"]), p.get("err") is not None) for p in page)
            if len(page) < SIGNATURES_PAGE:
                break
            before = page[-1]["signature"]
        found.reverse()
        # Newest-first pages are in ledger order; a stable sort by slot keeps that order within a slot.
        found.sort(key=lambda s: s.slot)
        return found

    async def transactions(self, signatures: Sequence[str]) -> list[ChainTransaction]:
        """The transactions, in the order given, fetched in concurrent batches."""
        chunks = [signatures[i : i + RPC_BATCH] for i in range(0, len(signatures), RPC_BATCH)]
        limit = asyncio.Semaphore(self.concurrency)

        async def fetch(chunk: Sequence[str]) -> list[ChainTransaction]:
            async with limit:
                options = {"encoding": "base64", "commitment": self.commitment, "maxSupportedTransactionVersion": 0}
                results = await self.batch([("getTransaction", [s, options]) for s in chunk])
            return [_chain_transaction(s, r) for s, r in zip(chunk, results, strict=True)]

        pages = await asyncio.gather(*(fetch(c) for c in chunks))
        return [tx for page in pages for tx in page]

    async def accounts(self, addresses: Sequence[str]) -> dict[str, tuple[str, bytes] | None]:
        """(owner, data) of each account, None where it does not exist."""
        found: dict[str, tuple[str, bytes] | None] = {}
        for i in range(0, len(addresses), ACCOUNTS_PAGE):
            page = list(addresses[i : i + ACCOUNTS_PAGE])
            value = (
                await self.call("getMultipleAccounts", page, {"encoding": "base64", "commitment": self.commitment})
            )["value"]
            for address, account in zip(page, value, strict=True):
                found[address] = None if account is None else (account["owner"], base64.b64decode(account["data"][0]))
        return found

    async def agent_accounts(self, addresses: Sequence[str]) -> dict[str, Agent | None]:
        """The decoded agent accounts (None where there is no agent account any more)."""
        found = await self.accounts(addresses)
        return {address: decode_agent_account(account, self.program_id) for address, account in found.items()}


def decode_agent_account(account: tuple[str, bytes] | None, program_id: Pubkey) -> Agent | None:
    """An Agent from (owner, data), or None if the account is not one of our agents."""
    if account is None or account[0] != str(program_id) or account[1][:8] != Agent.discriminator:
        return None
    return Agent.decode(account[1])


def _chain_transaction(signature: str, result: Any) -> ChainTransaction:
    if result is None:  # listed by getSignaturesForAddress but not served yet: try again later
        raise SourceError(f"getTransaction {signature}: not found")
    meta = result.get("meta") or {}
    return ChainTransaction(
        signature, int(result["slot"]), list(meta.get("logMessages") or []), meta.get("err") is not None
    )


class LogStream:
    """`logsSubscribe` mentioning the program: an async iterator of transactions as they land.

    Iteration ends with `ConnectionError` when the websocket drops; the service then back-fills.
    """

    def __init__(self, ws_url: str, program_id: Pubkey = PROGRAM_ID, commitment: str = "confirmed") -> None:
        self.ws_url = ws_url
        self.program_id = program_id
        self.commitment = commitment
        self._ws: Any = None
        self.unparsable = 0

    async def __aenter__(self) -> LogStream:
        self._ws = await websockets.connect(self.ws_url, max_size=None, ping_interval=10, ping_timeout=10)
        await self._ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "logsSubscribe",
                    "params": [{"mentions": [str(self.program_id)]}, {"commitment": self.commitment}],
                }
            )
        )
        while True:  # the subscription id comes before any notification
            reply = json.loads(await self._ws.recv())
            if reply.get("id") == 1:
                if "error" in reply:
                    raise SourceError(f"logsSubscribe: {reply['error']}")
                return self

    async def __aexit__(self, *exc: object) -> None:
        await self._ws.close()

    async def __aiter__(self) -> AsyncIterator[ChainTransaction]:
        try:
            async for message in self._ws:
                tx = self.parse(message)
                if tx is not None:
                    yield tx
        except websockets.ConnectionClosed as exc:
            raise ConnectionError(f"websocket {self.ws_url} closed: {exc}") from exc
        raise ConnectionError(f"websocket {self.ws_url} closed")

    def parse(self, message: str | bytes) -> ChainTransaction | None:
        """The transaction of one logsNotification; None (and counted) for anything unparsable."""
        try:
            result = json.loads(message)["params"]["result"]
            value = result["value"]
            return ChainTransaction(
                str(value["signature"]),
                int(result["context"]["slot"]),
                [str(line) for line in value.get("logs") or []],
                value.get("err") is not None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            self.unparsable += 1
            log.warning("skipping an unparsable websocket message (%s): %.200s", exc, message)
            return None
