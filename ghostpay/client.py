"""GhostPayClient: the async SDK client over solana-py's AsyncClient.

    from decimal import Decimal
    from ghostpay.client import GhostPayClient, X402Settings

    async with GhostPayClient("localnet", keypair="~/.config/solana/id.json") as gp:
        reg = await gp.register_agent("translator", "Translator", capabilities=["translate"],
                                      x402=X402Settings({"USDC": Decimal("0.01")}, "https://t.example/api"))
        paid = await gp.pay_agent(reg.address)
        assert (await gp.get_receipt(reg.address, paid.reference)).signature == paid.signature
        # hiring another agent through escrow, as the client
        order = await gp.create_work_order(agent, Decimal("25"), deadline=timedelta(days=7), arbiter=arbiter,
                                           title="Translate the manual")
        await gp.release_payment(order.address)   # once the provider has delivered

Wherever a mint is expected, a token label of the client's cluster ("USDC") is accepted too
(`ghostpay.token_labels`: labels belong to one cluster, named by its genesis hash).

Every failure is a `ghostpay.exceptions.GhostPayError`: program errors are typed by their IDL
name (`PaymentBelowPrice`, ...), RPC and transport failures are `RpcError` / `TransportError`.

The client is in three layers, as solana-py's `rpc/core.py` under its providers: what the methods take
(`ghostpay.inputs`: `X402Settings`, `AgentRef`, ...) and return (`ghostpay.results`: `TxResult`,
`AgentInfo`, ...), the transaction plumbing (`ghostpay.transactions`: send, confirm, recover, the journal
hook), and here the methods themselves. Paying x402 over HTTP is `ghostpay.x402.x402_http(gp, ...)`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from solana.rpc.commitment import Commitment, Confirmed, Finalized, Processed
from solana.rpc.types import TokenAccountOpts
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.sysvar import CLOCK
from solders.transaction import Transaction
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from spl.token.instructions import create_idempotent_associated_token_account, get_associated_token_address

from ghostpay import instructions as ix
from ghostpay.accounts import Agent, PayerStats, ReputationMetrics, WorkOrder, X402Receipt
from ghostpay.agent_instructions import AgentProfile, build_close_agent, build_register_agent, mint_accounts
from ghostpay.borsh_layout import decode_account
from ghostpay.discovery import (
    ACCOUNTS_ENCODING,
    AgentQuery,
    JsonArrayStream,
    Ranking,
    SortKey,
    WorkOrderQuery,
    decode_agents,
    encoded_accounts,
    filters_json,
)
from ghostpay.earnings import agent_mints
from ghostpay.events import ProgramEvent, decode_events, live_events
from ghostpay.exceptions import (
    AccountNotFound,
    BlockhashExpired,
    InvalidArgument,
    OutcomeUnknown,
    RpcError,
    TransactionError,
    program_error_class,
)
from ghostpay.gc_tuning import gc_paused
from ghostpay.indexer_client import IndexerUnavailable, payments_by_reference, search_addresses
from ghostpay.inputs import (
    MAX_SEED_LEN,
    AgentRef,
    Deadline,
    MintLike,
    Prices,
    PubkeyLike,
    X402Settings,
    looks_like_address,
    mint_key,
    normalize_reference,
    optional_pubkey,
    to_pubkey,
)
from ghostpay.keypairs import KeypairSource
from ghostpay.payments import build_x402_payment
from ghostpay.pda import (
    agent_address,
    new_order_id,
    new_reference,
    payer_stats_address,
    receipt_address,
    reputation_address,
    work_order_address,
)
from ghostpay.reputation import ReputationInputs, ReputationScore, reputation_score, tier
from ghostpay.results import (
    AgentInfo,
    NewWorkOrder,
    PayerStatsInfo,
    PaymentResult,
    PreparedPayment,
    Pricing,
    Receipt,
    Reputation,
    Simulation,
    TokenEarnings,
    TokenPricing,
    TxResult,
    WorkOrderInfo,
    WorkOrderLike,
)
from ghostpay.spending import GuardedWallet, Outcome, Reservation, SentSpend, Spend, SpendingGuards, sent_proof
from ghostpay.token_labels import ClusterLabels, TokenLabel, TokenLabels
from ghostpay.tokens import TOKEN_PROGRAMS, Amount, MintInfo, from_atomic, parse_mint, to_atomic
from ghostpay.transactions import SendHook, TransactionClient
from ghostpay.types import TokenPrice, X402Config
from ghostpay.work_orders import (
    CONTENT_HASH_LEN,
    WorkOrderRef,
    WorkOrderTerms,
    build_accept_work_order,
    build_cancel_work_order,
    build_claim_payment,
    build_claim_refund,
    build_create_work_order,
    build_decline_work_order,
    build_open_dispute,
    build_reject_delivery,
    build_release_payment,
    build_resolve_dispute,
    build_settle_by_default,
    build_submit_work_delivery,
)

log = logging.getLogger(__name__)
MAX_SHARE_ENCODABLE = 2**16 - 1  # client_share_bps is a u16
MINT_LEN, ACCOUNT_LEN = 82, 165  # SPL Token account sizes; Token-2022 puts its account type at byte 165
CLOCK_UNIX_TIMESTAMP_OFFSET = 32  # Clock sysvar: slot, epoch_start_timestamp, epoch, leader_schedule_epoch, then this

PAYMENT_COMPUTE_UNITS = 60_000  # record_x402_payment ~9k CU, TransferChecked ~6k, ATA creation ~25k
RECEIPT_SEARCH_TRANSACTIONS = 200  # get_receipt without an index: the agent's newest transactions searched
SIGNATURES_PAGE = 1_000  # getSignaturesForAddress answers at most this many per call
FETCH_CONCURRENCY = 16  # getTransaction calls in flight while searching
CLOCK_SKEW_SECONDS = 60.0  # a sent payment is searched among transactions this long before the ledger says


Self_ = TypeVar("Self_")
Filters = ParamSpec("Filters")


def _uncounted(
    counted: Callable[Concatenate[Self_, Filters], Awaitable[tuple[list[AgentInfo], int]]], name: str
) -> Callable[Concatenate[Self_, Filters], Coroutine[Any, Any, list[AgentInfo]]]:
    """The method `name`: `counted`'s agents without the count, under `counted`'s parameters and docstring (one
    signature for both; the blocking client and its stub read it through `__signature__`)."""

    async def agents(self: Self_, /, *args: Filters.args, **kwargs: Filters.kwargs) -> list[AgentInfo]:
        found, _ = await counted(self, *args, **kwargs)
        return found

    agents.__name__, agents.__doc__ = name, counted.__doc__
    agents.__qualname__ = counted.__qualname__.rsplit(".", 1)[0] + "." + name
    agents.__signature__ = inspect.signature(counted).replace(  # type: ignore[attr-defined]
        return_annotation="list[AgentInfo]"
    )
    return agents


class GhostPayClient(TransactionClient):
    """Async client for the GhostPay program. Use as `async with GhostPayClient(...) as gp:`.

    `cluster`: an RPC URL or a moniker (`localnet`, `devnet`, `mainnet-beta`); `keypair`: a Keypair,
    a file path, bytes, a JSON array, or None for the Solana CLI default (read-only if that is missing);
    `priority_fee`: micro-lamports per compute unit added to every transaction; `guards`: spending
    guards (`ghostpay.spending`) every payment of this client passes, `pay_agent` and
    `ghostpay.x402.x402_http` alike, with their spend ledger (default: the data folder's); `on_send`:
    called with each signature, its last valid block height and the signed bytes just before the
    transaction is sent (e.g. to journal it, so that an interrupted process can still say what it sent,
    and a later one resume it: see `resume_transaction`); `details`: read each landed transaction back
    (getTransaction) for its logs, compute units and events (False: results carry the signature and slot,
    one RPC call less per transaction; `transaction_details(result)` reads them later); `indexer_url` (and
    `indexer_token`): a `ghost indexer serve` API that `search_agents` and `get_receipt` ask first;
    `token_labels`: the label store (default: the data folder's, shared with `ghost tokens`).
    """

    def __init__(
        self,
        cluster: str = "localnet",
        keypair: KeypairSource = None,
        *,
        commitment: Commitment = Confirmed,
        program_id: Pubkey | str | None = None,
        ws_url: str | None = None,
        priority_fee: int | None = None,
        timeout: float = 10.0,
        confirm_timeout: float = 30.0,
        blockhash_retries: int = 2,
        on_send: SendHook | None = None,
        details: bool = True,
        indexer_url: str | None = None,
        guards: SpendingGuards | GuardedWallet | None = None,
        indexer_token: str | None = None,
        token_labels: TokenLabels | Path | str | None = None,
    ) -> None:
        super().__init__(
            cluster,
            keypair,
            commitment=commitment,
            program_id=program_id,
            ws_url=ws_url,
            priority_fee=priority_fee,
            timeout=timeout,
            confirm_timeout=confirm_timeout,
            blockhash_retries=blockhash_retries,
            on_send=on_send,
            details=details,
        )
        self.indexer_url = indexer_url  # a `ghost indexer serve` API for search_agents; None: the chain
        self.indexer_token = indexer_token  # its bearer token, when it was started with --token-file
        self._mints: dict[Pubkey, MintInfo] = {}
        # (agent, the mint asked for) -> the payee's token account its last payment went to
        self._last_payee_account: dict[tuple[Pubkey, MintLike | None], Pubkey] = {}
        self.token_labels = token_labels if isinstance(token_labels, TokenLabels) else TokenLabels(token_labels)
        self.guards: GuardedWallet | None = (
            guards if isinstance(guards, GuardedWallet) or guards is None else GuardedWallet(guards)
        )

    # tokens ----------------------------------------------------------------------------------------------

    async def labels(self) -> ClusterLabels:
        """The token labels of this client's cluster (well-known mints and the user's, `ghostpay.token_labels`)."""
        return self.token_labels.cluster(await self.genesis_hash(), self.cluster.http_url)

    async def resolve_mint(self, token: MintLike) -> Pubkey:
        """The mint `token` names: a Pubkey or base58 address as is, a token label of this cluster resolved
        (`UnknownTokenLabel`, saying where the label does exist, for one this cluster does not have)."""
        key = mint_key(token)
        if isinstance(key, Pubkey):
            return key
        return Pubkey.from_string((await self.labels()).mint(key))

    async def add_token_label(
        self, label: str, mint: MintLike, *, replace: bool = False, test_mint: bool = False
    ) -> TokenLabel:
        """Label a mint of this cluster (it must be a mint here: `NotAMint` otherwise); `replace` moves a label
        that names another mint (`TokenLabelTaken` without it)."""
        info = await self.get_mint(mint)
        return self.token_labels.add(
            await self.genesis_hash(),
            label,
            str(info.address),
            test_mint=test_mint,
            url=self.cluster.http_url,
            replace=replace,
        )

    async def get_mint(self, mint: MintLike) -> MintInfo:
        """A mint's decimals and token program (cached: decimals never change); `NotAMint` if it is none."""
        mint = await self.resolve_mint(mint)
        return (await self.get_mints([mint]))[mint]

    async def get_mints(self, mints: Collection[Pubkey]) -> dict[Pubkey, MintInfo]:
        """Several mints' decimals and token programs: the uncached ones in one getMultipleAccounts per 100."""
        missing = list(dict.fromkeys(m for m in mints if m not in self._mints))
        for start in range(0, len(missing), 100):
            chunk = missing[start : start + 100]
            resp = await self._rpc(self.rpc.get_multiple_accounts(chunk, self.commitment, "base64"))
            for mint, account in zip(chunk, resp.value, strict=True):
                if account is None:  # what the program says of a missing mint too
                    raise program_error_class("NotAMint")()
                self._mints[mint] = parse_mint(mint, account.owner, bytes(account.data))
        return {m: self._mints[m] for m in mints}

    async def get_token_balance(self, owner: PubkeyLike, mint: MintLike) -> Decimal:
        """The balance of `owner`'s associated token account for `mint` (0 if it does not exist)."""
        owner = to_pubkey(owner, "owner")
        info = await self.get_mint(mint)
        found = await self._account_data(get_associated_token_address(owner, info.address, info.token_program))
        if found is None:
            return from_atomic(0, info.decimals)
        return from_atomic(int.from_bytes(found[1][64:72], "little"), info.decimals)

    async def get_sol_balance(self, owner: Pubkey) -> Decimal:
        """`owner`'s SOL, in whole SOL (lamports / 10^9, exact)."""
        return from_atomic((await self._rpc(self.rpc.get_balance(owner))).value, 9)

    async def get_token_balances(self, owner: Pubkey) -> dict[Pubkey, Decimal]:
        """Every token `owner` holds (all its token accounts, both token programs), summed per mint."""
        atomic: dict[Pubkey, int] = {}
        for program in TOKEN_PROGRAMS:
            resp = await self._rpc(self.rpc.get_token_accounts_by_owner(owner, TokenAccountOpts(program_id=program)))
            for keyed in resp.value:
                data = bytes(keyed.account.data)
                mint = Pubkey.from_bytes(data[:32])
                atomic[mint] = atomic.get(mint, 0) + int.from_bytes(data[64:72], "little")
        return {mint: from_atomic(amount, (await self.get_mint(mint)).decimals) for mint, amount in atomic.items()}

    # agents ----------------------------------------------------------------------------------------------

    def agent_address(self, agent: AgentRef, owner: Pubkey | None = None) -> Pubkey:
        """The agent's address: a Pubkey or base58 address as is, else the PDA of an agent_id owned by `owner`
        (default: the wallet). Text too long for an agent_id that is no valid address is refused as such."""
        if isinstance(agent, Pubkey):
            return agent
        if not isinstance(agent, str):
            raise InvalidArgument(
                f"an agent is a Pubkey, its base58 address or an agent_id, not {type(agent).__name__}"
            )
        try:
            return Pubkey.from_string(agent)
        except ValueError:
            pass
        if looks_like_address(agent):
            raise InvalidArgument(
                f"{agent!r} is not a valid agent address (base58, 32 bytes), nor an agent_id "
                f"(at most {MAX_SEED_LEN} bytes)"
            )
        return self._agent_id_address(agent, owner or self.wallet)

    def _agent_id_address(self, agent_id: str, owner: Pubkey) -> Pubkey:
        if not agent_id or len(agent_id.encode()) > MAX_SEED_LEN:  # no PDA exists for it: what the program says
            raise program_error_class("AgentIdInvalid")()
        return agent_address(owner, agent_id, self.program_id)[0]

    async def _token_prices(self, prices: Prices) -> list[TokenPrice]:
        """Whole-token prices to atomic ones, each with its own mint's decimals (labels resolved)."""
        if not prices:
            raise program_error_class("NoAcceptedTokens")()
        tokens, labels = [], await self.labels()
        for token, price in prices.items():
            mint = await self.get_mint(token)
            name = labels.label(mint.address) or str(mint.address)
            tokens.append(TokenPrice(mint=mint.address, price=to_atomic(price, mint.decimals, name)))
        return tokens

    async def _x402_config(self, settings: X402Settings, owner: Pubkey) -> X402Config:
        payment_address = optional_pubkey(settings.payment_address, "payment address")  # a Pubkey already
        if payment_address is not None:
            await self._check_wallet(payment_address, "payment address")
        return X402Config(
            payment_address=payment_address or owner,
            accepted_tokens=await self._token_prices(settings.prices),
            service_endpoint=settings.endpoint,
        )

    async def _check_wallet(self, address: Pubkey, what: str) -> None:
        """Refuse a mint or a token account where a wallet is meant (tokens go to a wallet's associated
        token account: paying "to" a mint or a token account would strand them)."""
        found = await self._account_data(address)
        if found is None or found[0] not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
            return
        data = found[1]
        kind = (
            "a token mint"
            if len(data) == MINT_LEN or len(data) > ACCOUNT_LEN and data[ACCOUNT_LEN] == 1
            else "a token account"
        )
        raise InvalidArgument(
            f"the {what} {address} is {kind}, not a wallet: payments go to a wallet's associated "
            "token account, so give the wallet's address"
        )

    async def register_agent(
        self,
        agent_id: str,
        name: str,
        *,
        agent_type: int = 0,
        description: str = "",
        metadata_uri: str = "",
        capabilities: Sequence[str] = (),
        x402: X402Settings | None = None,
    ) -> TxResult:
        """Register an agent owned by the wallet, with its x402 pricing in the same transaction.

        `result.address` is the new agent's address.
        """
        owner = self.wallet
        address = self._agent_id_address(agent_id, owner)
        config = await self._x402_config(x402, owner) if x402 is not None else None
        instruction = build_register_agent(
            owner,
            AgentProfile(agent_id, name, agent_type, description, metadata_uri, list(capabilities)),
            config,
            self.program_id,
        )
        return await self.send([instruction], address=address)

    async def update_agent(
        self,
        agent: AgentRef,
        *,
        name: str | None = None,
        agent_type: int | None = None,
        description: str | None = None,
        metadata_uri: str | None = None,
        capabilities: Sequence[str] | None = None,
    ) -> TxResult:
        """Change any subset of the descriptive fields."""
        address = self.agent_address(agent)
        args: ix.UpdateAgentArgs = {
            "agent_type": agent_type,
            "name": name,
            "description": description,
            "metadata_uri": metadata_uri,
            "capabilities": list(capabilities) if capabilities is not None else None,
        }
        return await self.send(
            [
                ix.update_agent(
                    args,
                    {"agent": address, "owner": self.wallet},
                    self.program_id,
                )
            ],
            address=address,
        )

    async def configure_x402(self, agent: AgentRef, settings: X402Settings) -> TxResult:
        """Enable x402, or replace its payment address, price, tokens and endpoint."""
        address = self.agent_address(agent)
        config = await self._x402_config(settings, self.wallet)
        mints = [token.mint for token in config.accepted_tokens]
        return await self.send(
            [
                ix.configure_x402(
                    {"config": config}, {"agent": address, "owner": self.wallet}, self.program_id, mint_accounts(mints)
                )
            ],
            address=address,
        )

    async def set_price(self, agent: AgentRef, prices: Prices) -> TxResult:
        """Change the price per call in some accepted mints, in whole units of each (the others keep theirs).

        await gp.set_price("translator", {"USDC": Decimal("0.02")})
        """
        address = self.agent_address(agent)
        return await self.send(
            [
                ix.set_x402_price(
                    {"prices": await self._token_prices(prices)},
                    {"agent": address, "owner": self.wallet},
                    self.program_id,
                )
            ],
            address=address,
        )

    async def set_tokens(self, agent: AgentRef, prices: Prices) -> TxResult:
        """Replace the accepted mints and their prices (whole units of each mint)."""
        address = self.agent_address(agent)
        tokens = await self._token_prices({mint_key(m): p for m, p in prices.items()})
        return await self.send(
            [
                ix.set_x402_tokens(
                    {"accepted_tokens": tokens},
                    {"agent": address, "owner": self.wallet},
                    self.program_id,
                    mint_accounts([t.mint for t in tokens]),
                )
            ],
            address=address,
        )

    async def set_endpoint(self, agent: AgentRef, endpoint: str) -> TxResult:
        """Set the x402 service endpoint URL."""
        address = self.agent_address(agent)
        return await self.send(
            [
                ix.set_x402_endpoint(
                    {"service_endpoint": endpoint}, {"agent": address, "owner": self.wallet}, self.program_id
                )
            ],
            address=address,
        )

    async def disable_x402(self, agent: AgentRef) -> TxResult:
        """Stop accepting x402 payments (the pricing stays stored)."""
        address = self.agent_address(agent)
        return await self.send(
            [ix.disable_x402({"agent": address, "owner": self.wallet}, self.program_id)], address=address
        )

    async def set_active(self, agent: AgentRef, active: bool) -> TxResult:
        """Mark the agent active or inactive (`activate` / `deactivate` say which)."""
        address = self.agent_address(agent)
        return await self.send(
            [ix.set_agent_active({"is_active": active}, {"agent": address, "owner": self.wallet}, self.program_id)],
            address=address,
        )

    async def activate(self, agent: AgentRef) -> TxResult:
        """Mark the agent active."""
        return await self.set_active(agent, True)

    async def deactivate(self, agent: AgentRef) -> TxResult:
        """Mark the agent inactive (hidden from `search_agents` by default)."""
        return await self.set_active(agent, False)

    async def close_agent(self, agent: AgentRef) -> TxResult:
        """Close the agent, refunding its rent to the wallet: refused with open work orders
        (AgentHasOpenWorkOrders) and until FEEDBACK_WINDOW_SECONDS after its last payment, while its paid calls
        can still be rated (FeedbackWindowOpen; `deactivate` stops new payments at once). Its reputation
        metrics stay on chain: registering the same agent id again continues that reputation."""
        address = self.agent_address(agent)
        return await self.send([build_close_agent(address, self.wallet, self.program_id)], address=address)

    async def get_agent(self, agent: AgentRef) -> AgentInfo:
        """One agent (AccountNotFound if there is none)."""
        address = self.agent_address(agent)
        return await self._agent_from(agent, address, await self._account_data(address))

    async def _agent_from(self, agent: AgentRef, address: Pubkey, found: tuple[Pubkey, bytes] | None) -> AgentInfo:
        """The agent at `address` from its account (owner, data) as read (AccountNotFound if it is none)."""
        if found is None or found[0] != self.program_id or found[1][:8] != Agent.discriminator:
            typed_id = (
                agent if isinstance(agent, str) and str(address) != agent else None
            )  # an agent_id, not an address
            raise AccountNotFound(
                address, "agent", agent_id=typed_id, owner=self.wallet if typed_id is not None else None
            )
        return await self.decode_agent(address, found[1])

    async def decode_agent(self, address: Pubkey, data: bytes) -> AgentInfo:
        """An Agent account's data as `AgentInfo` (the decimals of the mints it earned in are read once)."""
        return (await self._agent_infos([(address, Agent.decode(data))]))[0]

    async def _agent_infos(self, agents: Sequence[tuple[Pubkey, Agent]]) -> list[AgentInfo]:
        mints = await self.get_mints([mint for _, agent in agents for mint in agent_mints(agent)])
        with gc_paused():
            return [AgentInfo.from_account(address, agent, mints) for address, agent in agents]

    async def _program_agents(self, query: AgentQuery) -> tuple[list[AgentInfo], int]:
        """The agents `query` keeps (its first `limit` in its order) and how many matched. The answer is read
        as it arrives, each account as a lean listing (`Ranking`); only the kept ones are decoded in full."""
        ranking = Ranking(query)
        await self._rpc(self._stream_program_accounts(filters_json(query.memcmp_filters()), ranking))
        with gc_paused():
            agents = [(Pubkey(address), decode_account("Agent", data)) for address, data in ranking.kept()]
        return await self._agent_infos(agents), ranking.matched

    async def _stream_program_accounts(self, filters: list[dict[str, Any]], ranking: Ranking) -> None:
        """getProgramAccounts of the program in `ACCOUNTS_ENCODING`, each account offered to `ranking` as its
        JSON arrives: neither the answer's text nor a solders object per account is ever held whole."""
        provider = self.rpc._provider
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "getProgramAccounts",
            "params": [
                str(self.program_id),
                {"encoding": ACCOUNTS_ENCODING, "commitment": str(self.commitment), "filters": filters},
            ],
        }
        items = JsonArrayStream("result")
        async with provider.session.stream("POST", provider.endpoint_uri, json=body) as response:
            response.raise_for_status()
            async for chunk in response.aiter_text():
                for address, data in encoded_accounts(items.feed(chunk)):
                    ranking.offer(address, data)
        items.close()
        if not items.done:
            answer = json.loads(items.text) if items.text else {}
            error = answer.get("error") or {"message": "the getProgramAccounts answer ended before its last account"}
            raise RpcError(str(error.get("message", error)), error.get("code"), error.get("data"))

    async def list_agents(self, owner: PubkeyLike | None = None) -> list[AgentInfo]:
        """Every agent of `owner` (default: the wallet), active or not, oldest first (then by agent_id)."""
        agents, _ = await self._program_agents(
            AgentQuery(owner=optional_pubkey(owner, "owner") or self.wallet, active=None)
        )
        return sorted(agents, key=lambda a: (a.created_at, a.agent_id))

    async def search_agents_counted(
        self,
        *,
        x402_enabled: bool | None = None,
        capability: str | None = None,
        token: MintLike | None = None,
        max_price: Amount | None = None,
        min_reputation: int | None = None,
        active: bool | None = True,
        owner: PubkeyLike | None = None,
        sort: SortKey | None = None,
        limit: int | None = None,
        indexer_url: str | None = None,
    ) -> tuple[list[AgentInfo], int]:
        """Agents matching every given filter, from the chain (`search_agents_counted`: with how many matched in
        all, which `limit` does not cut).

        memcmp does the owner, x402_enabled and is_active filters on the node; capability, token,
        `max_price` (the price in `token`, whole units or `Atomic(n)`) and `min_reputation` (basis points)
        are checked exactly after. `sort`: reputation, price (in `token`, else in each agent's first
        token's atomic units), newest, oldest, calls, name.
        With `indexer_url` (or the client's), the indexer API finds the agents and their accounts are
        read from the chain and checked the same way; if the API cannot answer, the chain is searched.
        (With `limit`, agents tied on the sort key may be cut differently: the index breaks ties by the
        address's base58 text, the chain search by its bytes.)
        """
        token = None if token is None else await self.resolve_mint(token)
        owner = optional_pubkey(owner, "owner")
        max_atomic = None
        decimals = 0
        if max_price is not None:
            if token is None:
                raise InvalidArgument("max_price needs token=: each accepted mint has its own price")
            decimals = (await self.get_mint(token)).decimals
            max_atomic = to_atomic(max_price, decimals)
        query = AgentQuery(owner, x402_enabled, active, capability, token, max_atomic, min_reputation, sort, limit)
        url = indexer_url or self.indexer_url
        if url is not None and owner is None and active is True:
            try:
                found = await search_addresses(
                    url,
                    x402_enabled=x402_enabled,
                    capability=capability,
                    token=str(token) if token else None,
                    max_price=from_atomic(max_atomic, decimals) if max_atomic is not None else None,
                    min_reputation=min_reputation,
                    sort=sort,
                    limit=limit,
                    api_token=self.indexer_token,
                )
            except IndexerUnavailable as exc:
                log.warning("indexer API unavailable, searching the chain: %s", exc)
            else:
                agents = await self._agents_at([Pubkey.from_string(a) for a in found], query)
                return agents, len(agents)
        return await self._program_agents(query)

    search_agents = _uncounted(search_agents_counted, "search_agents")

    async def _agents_at(self, addresses: list[Pubkey], query: AgentQuery) -> list[AgentInfo]:
        """The agent accounts at `addresses`, read from the chain, filtered and sorted by `query`."""
        raw: list[tuple[Pubkey, bytes]] = []
        for start in range(0, len(addresses), 100):  # getMultipleAccounts takes at most 100
            chunk = addresses[start : start + 100]
            resp = await self._rpc(self.rpc.get_multiple_accounts(chunk, self.commitment, "base64"))
            raw += [
                (a, bytes(acc.data))
                for a, acc in zip(chunk, resp.value, strict=True)
                if acc is not None and acc.owner == self.program_id
            ]
        return await self._agent_infos(query.apply(decode_agents(raw)))

    async def get_agent_pricing(self, agent: AgentRef) -> Pricing:
        """The price per call in each accepted mint (with its decimals), the endpoint and the payment address."""
        info = await self.get_agent(agent)
        if not info.prices:
            raise InvalidArgument(f"agent {info.address} has no x402 pricing")
        tokens = []
        for mint, atomic in info.prices_atomic.items():
            m = await self.get_mint(mint)
            tokens.append(TokenPricing(mint, info.prices[mint], atomic, m.decimals, m.token_program))
        return Pricing(info.address, info.x402_enabled, tokens, info.endpoint, info.payment_address)

    # payments --------------------------------------------------------------------------------------------

    async def _payment(
        self,
        agent: AgentRef,
        amount: Amount | None,
        mint: MintLike | None,
        reference: bytes | str | None,
        fee_payer: PubkeyLike,
        create_payee_account: bool | None,
        compute_unit_limit: int | None,
        priority_fee: int | None,
        rent_payer: Pubkey | None = None,
    ) -> tuple[list[Instruction], bytes, Pubkey, MintInfo, int]:
        fee_payer = to_pubkey(fee_payer, "fee payer")
        address = self.agent_address(agent)
        # the payee's token account of the last payment to this agent, read with the agent in one call
        guess = self._last_payee_account.get((address, mint)) if create_payee_account is None else None
        found = await self._accounts_data([address] if guess is None else [address, guess])
        info = await self._agent_from(agent, address, found[0])
        if not info.prices:
            raise InvalidArgument(f"agent {info.address} takes no x402 payments")
        chosen = info.accepted_tokens[0] if mint is None else await self.resolve_mint(mint)
        if chosen not in info.prices:
            raise program_error_class("PaymentMintNotAccepted")()
        mint_info = await self.get_mint(chosen)
        atomic = info.prices_atomic[chosen] if amount is None else to_atomic(amount, mint_info.decimals)
        ref = new_reference() if reference is None else normalize_reference(reference)
        if create_payee_account is None:
            ata = get_associated_token_address(info.payment_address, mint_info.address, mint_info.token_program)
            if ata != guess:  # the agent's payment address changed, or a first payment: read it now
                found = [found[0], await self._account_data(ata)]
            self._last_payee_account[(address, mint)] = ata
            create_payee_account = found[1] is None
        fee = priority_fee if priority_fee is not None else self.priority_fee
        instructions = build_x402_payment(
            self.wallet,
            info.address,
            info.payment_address,
            mint_info.address,
            mint_info.decimals,
            atomic,
            ref,
            mint_info.token_program,
            fee_payer=fee_payer,
            rent_payer=rent_payer,
            create_payee_account=create_payee_account,
            compute_unit_limit=compute_unit_limit,
            compute_unit_price=fee or None,
            program_id=self.program_id,
        )
        return instructions, ref, payer_stats_address(info.address, self.wallet, self.program_id)[0], mint_info, atomic

    async def pay_agent(
        self,
        agent: AgentRef,
        *,
        amount: Amount | None = None,
        mint: MintLike | None = None,
        reference: bytes | str | None = None,
        create_payee_account: bool | None = None,
        compute_unit_limit: int | None = PAYMENT_COMPUTE_UNITS,
        priority_fee: int | None = None,
    ) -> PaymentResult:
        """Pay one call (default: the agent's price in its first accepted token; with `mint`, that mint's price)
        and record it on chain.

        The payee's token account is created idempotently when missing. The pair's first payment creates
        the wallet's PayerStats for the agent (its rent from the wallet); later ones cost the fee alone.
        With `guards`, a refused payment raises a `SpendingRefused` subclass and nothing is sent. When the
        connection fails after sending and the outcome cannot be learnt, `OutcomeUnknown` carries the
        signature, the reference and the signed bytes: `resume_payment(exc)` finishes it without ever
        paying twice (a new `pay_agent` would be a second payment, whatever its reference).
        """
        instructions, ref, stats, mint_info, atomic = await self._payment(
            agent, amount, mint, reference, self.wallet, create_payee_account, compute_unit_limit, priority_fee
        )
        reservation = await self._authorize_payment(agent, mint_info, atomic)
        try:
            result = await self._send_guarded(instructions, reservation)
        except OutcomeUnknown as exc:  # the reference is what a safe retry needs
            exc.reference = ref
            raise
        return PaymentResult(
            result.signature,
            ref,
            stats,
            from_atomic(atomic, mint_info.decimals),
            atomic,
            mint_info.address,
            result.compute_units,
            result.slot,
            result.events,
        )

    async def resume_payment(self, unknown: OutcomeUnknown) -> PaymentResult | None:
        """The payment of an `OutcomeUnknown` from `pay_agent`, finished: its result if it landed (sending
        its same signed bytes again while its blockhash is valid: they land at most once), None once it
        never can (its blockhash expired without it landing): nothing was paid, and paying again (with
        `unknown.reference`) is safe."""
        result = await self.resume_transaction(
            [unknown.signature], unknown.transaction, unknown.last_valid_block_height
        )
        return None if result is None else await self.payment_result(result)

    async def payment_result(self, result: TxResult) -> PaymentResult:
        """A PaymentResult from a landed payment transaction (its X402PaymentRecorded event)."""
        paid = result.event("X402PaymentRecorded")
        decimals = (await self.get_mint(paid.mint)).decimals
        return PaymentResult(
            result.signature,
            bytes(paid.reference),
            payer_stats_address(paid.agent, paid.payer, self.program_id)[0],
            from_atomic(paid.amount, decimals),
            paid.amount,
            paid.mint,
            result.compute_units,
            result.slot,
            result.events,
        )

    async def _authorize_payment(self, agent: AgentRef, mint_info: MintInfo, atomic: int) -> Reservation | None:
        """The spending guards' reservation for paying `agent` (None without guards)."""
        if self.guards is None:
            return None
        info = await self.get_agent(agent)
        await self.bind_guards(self.guards)
        return await self.guards.authorize(
            Spend(
                str(self.wallet),
                str(mint_info.address),
                mint_info.decimals,
                atomic,
                str(info.payment_address),
                str(info.address),
            )
        )

    async def bind_guards(self, guarded: GuardedWallet) -> GuardedWallet:
        """`guarded` set to pay on this client's cluster: its token labels resolved here (`UnknownTokenLabel`
        for a label this cluster does not have) and refusals naming mints by label."""
        guarded.on_cluster(await self.labels(), self.sent_payment_outcome)
        return guarded

    async def sent_payment_outcome(self, sent: SentSpend) -> Outcome:
        """What became of a payment its wallet signed and a dead process left sent: ("settled", transaction) if
        it landed, ("released", …) if it failed or its blockhash expired without it landing, None while it may
        still land. Found by the wallet's own signature among the wallet's transactions since it was sent (the
        transaction id is a facilitator's signature, which the buyer may never have learnt)."""
        commitment = Confirmed if str(self.commitment) == str(Processed) else self.commitment
        wallet, before = Pubkey.from_string(sent.wallet), None
        # asked first: a payment not found after its blockhash expired can never land. A message's fee is
        # null once its blockhash expired (solana-py has no isBlockhashValid).
        probe = Message.new_with_blockhash([], wallet, Hash.from_string(sent.proof.blockhash))
        valid = (await self._rpc(self.rpc.get_fee_for_message(probe, commitment))).value is not None
        while True:
            page = (
                await self._rpc(
                    self.rpc.get_signatures_for_address(
                        wallet, before=before, limit=SIGNATURES_PAGE, commitment=commitment
                    )
                )
            ).value
            for entry in page:
                if entry.block_time is not None and entry.block_time < sent.sent_at - CLOCK_SKEW_SECONDS:
                    return None if valid else ("released", None)
                tx = (await self._rpc(self.rpc.get_transaction(entry.signature, "json", commitment, 0))).value
                if tx is not None and sent.proof.wallet_signature in map(str, tx.transaction.transaction.signatures):
                    return ("settled" if entry.err is None else "released", str(entry.signature))
            if len(page) < SIGNATURES_PAGE:
                return None if valid else ("released", None)
            before = page[-1].signature

    async def _send_guarded(self, instructions: list[Instruction], reservation: Reservation | None) -> TxResult:
        """Send a payment, keeping its reservation: settled when it lands, released when it provably moved
        nothing (it failed, or its blockhash expired), still counted when its outcome is unknown."""
        if reservation is None:
            return await self._send_raw_ixs(instructions)
        await reservation.sent()  # signed in _send_raw_ixs with a fresh blockhash: no proof before it
        try:
            result = await self._send_raw_ixs(instructions)
        except (TransactionError, BlockhashExpired):
            await reservation.release()
            raise
        await reservation.settled(str(result.signature))
        return result

    async def prepare_payment(
        self,
        agent: AgentRef,
        fee_payer: PubkeyLike,
        *,
        amount: Amount | None = None,
        mint: MintLike | None = None,
        reference: bytes | str | None = None,
        create_payee_account: bool | None = None,
        compute_unit_limit: int | None = PAYMENT_COMPUTE_UNITS,
        priority_fee: int | None = None,
        rent_payer: Pubkey | None = None,
    ) -> PreparedPayment:
        """The payment transaction signed by the wallet only, for a facilitator `fee_payer` to co-sign
        and send. The facilitator appears in no instruction except paying a missing payee account and,
        when it fronts the rent of the wallet's PayerStats (`rent_payer=fee_payer`; paid only by the pair's
        first payment), as the rent payer; otherwise the wallet pays that rent."""
        instructions, ref, stats, mint_info, atomic = await self._payment(
            agent,
            amount,
            mint,
            reference,
            fee_payer,
            create_payee_account,
            compute_unit_limit,
            priority_fee,
            rent_payer,
        )
        reservation = await self._authorize_payment(agent, mint_info, atomic)
        blockhash, last_valid = await self.latest_blockhash()
        fee_payer = to_pubkey(fee_payer, "fee payer")
        tx = Transaction.new_unsigned(Message.new_with_blockhash(instructions, fee_payer, blockhash))
        tx.partial_sign([self.keypair], blockhash)
        if reservation is not None:  # signed and handed over: it counts, whoever sends it
            await reservation.sent(sent_proof(tx, self.wallet))
        return PreparedPayment(
            tx, ref, stats, from_atomic(atomic, mint_info.decimals), atomic, mint_info.address, fee_payer, last_valid
        )

    async def simulate_payment(
        self,
        agent: AgentRef,
        *,
        amount: Amount | None = None,
        mint: MintLike | None = None,
        reference: bytes | str | None = None,
    ) -> Simulation:
        """Simulate `pay_agent` (the same transaction, nothing spent): the amount and mint it would pay,
        compute units, fee, and the typed error it would raise, e.g. `PaymentBelowPrice` or the token
        program's `InsufficientFunds`."""
        instructions, _, _, mint_info, atomic = await self._payment(
            agent, amount, mint, reference, self.wallet, None, PAYMENT_COMPUTE_UNITS, None
        )
        saved, self.priority_fee = self.priority_fee, None  # the budget instructions are already there
        try:
            simulated = await self.simulate(instructions)
        finally:
            self.priority_fee = saved
        return replace(
            simulated, amount=from_atomic(atomic, mint_info.decimals), amount_atomic=atomic, mint=mint_info.address
        )

    async def get_payment_events(self, agent: AgentRef, *, limit: int = 100) -> list[ProgramEvent]:
        """`X402PaymentRecorded` events of the agent, newest first, among its last `limit` transactions
        (AccountNotFound if `agent` is no agent: an empty history would hide the mistake)."""
        address = (await self.get_agent(agent)).address
        commitment = Confirmed if str(self.commitment) == str(Processed) else self.commitment
        signatures = (
            await self._rpc(self.rpc.get_signatures_for_address(address, limit=limit, commitment=commitment))
        ).value
        events = []
        for entry in signatures:
            if entry.err is None:
                events += [
                    e
                    for e in await self.get_transaction_events(entry.signature)
                    if e.name == "X402PaymentRecorded" and e.agent == address
                ]
        return events

    async def get_receipt(
        self, agent: AgentRef, reference: bytes | str, *, search: int = RECEIPT_SEARCH_TRANSACTIONS
    ) -> Receipt | None:
        """The recorded payment of `reference` to `agent` (the earliest found, if the reference was paid more
        than once), or None if none is found. No account is made per payment, so it is looked up: in the
        index when the client has an `indexer_url` (its answer is authoritative up to the index's lag), else
        among the agent's newest `search` transactions on the chain (getSignaturesForAddress, each decoded:
        a payment older than those is not found), then as a legacy X402Receipt account."""
        address = self.agent_address(agent)
        ref = normalize_reference(reference)
        if self.indexer_url is not None:
            try:
                found = await payments_by_reference(self.indexer_url, str(address), ref.hex())
            except IndexerUnavailable as exc:
                log.warning("indexer API unavailable, searching the chain: %s", exc)
            else:
                if not found:
                    return await self._legacy_receipt(address, ref)
                mint = await self.get_mint(Pubkey.from_string(found[0]["mint"]))
                return Receipt.from_index_row(found[0], mint.decimals)
        events = await self._recorded_events(address, ref, search)
        if events:
            return Receipt.from_event(events[-1], (await self.get_mint(events[-1].mint)).decimals)
        return await self._legacy_receipt(address, ref)

    async def _recorded_events(self, agent: Pubkey, reference: bytes, search: int) -> list[ProgramEvent]:
        """X402PaymentRecorded events of `reference` to `agent` in its newest `search` transactions, newest first."""
        commitment = Confirmed if str(self.commitment) == str(Processed) else self.commitment
        signatures: list[Signature] = []
        before = None
        while len(signatures) < search:
            page = (
                await self._rpc(
                    self.rpc.get_signatures_for_address(
                        agent,
                        before=before,
                        limit=min(SIGNATURES_PAGE, search - len(signatures)),
                        commitment=commitment,
                    )
                )
            ).value
            signatures += [entry.signature for entry in page if entry.err is None]
            if len(page) < SIGNATURES_PAGE:
                break
            before = page[-1].signature
        found: list[ProgramEvent] = []
        for start in range(0, len(signatures), FETCH_CONCURRENCY):
            batch = await asyncio.gather(
                *(self.get_transaction_events(sig) for sig in signatures[start : start + FETCH_CONCURRENCY])
            )
            found += [
                e
                for events in batch
                for e in events
                if e.name == "X402PaymentRecorded" and e.agent == agent and bytes(e.reference) == reference
            ]
        return found

    async def _legacy_receipt(self, agent: Pubkey, reference: bytes) -> Receipt | None:
        """The X402Receipt the program made for `reference` before PayerStats, if it is still open."""
        address = receipt_address(agent, reference, self.program_id)[0]
        found = await self._account_data(address)
        if found is None or found[0] != self.program_id:
            return None
        legacy = X402Receipt.decode(found[1])
        return Receipt.from_legacy_account(address, legacy, (await self.get_mint(legacy.mint)).decimals)

    async def close_receipt(self, agent: AgentRef, reference: bytes | str) -> TxResult:
        """Close a legacy receipt (an X402Receipt the program made before PayerStats) the wallet paid or fronted
        the rent of, after feedback or the feedback window; the rent goes back to whoever paid it."""
        address = self.agent_address(agent)
        ref = normalize_reference(reference)
        found = await self._legacy_receipt(address, ref)
        if found is None or found.address is None:
            raise AccountNotFound(receipt_address(address, ref, self.program_id)[0], "receipt")
        accounts: ix.CloseReceiptAccounts = {
            "receipt": found.address,
            "authority": self.wallet,
            "rent_payer": found.rent_payer,
        }
        return await self.send([ix.close_receipt(accounts, self.program_id)], address=found.address)

    async def get_payer_stats(self, agent: AgentRef, payer: PubkeyLike | None = None) -> PayerStatsInfo | None:
        """`payer`'s (default: the wallet's) PayerStats for `agent`: calls paid, rated, expired, and until when
        open ones may be rated; None before the pair's first payment (or after it was closed)."""
        address = self.agent_address(agent)
        stats = payer_stats_address(address, optional_pubkey(payer, "payer") or self.wallet, self.program_id)[0]
        value = (await self._rpc(self.rpc.get_account_info(stats, self.commitment, "base64"))).value
        if value is None or value.owner != self.program_id:
            return None
        p = PayerStats.decode(bytes(value.data))
        return PayerStatsInfo(
            stats,
            p.agent,
            p.payer,
            p.rent_payer,
            p.paid_calls,
            p.rated_calls,
            p.expired_calls,
            p.last_paid_at,
            value.lamports,
        )

    async def close_payer_stats(self, agent: AgentRef, payer: PubkeyLike | None = None) -> TxResult:
        """Close `payer`'s (default: the wallet's) PayerStats for `agent`; its rent goes back to whoever paid it.
        Its payer may close it any time (its calls still open for rating are forfeited); its rent payer (a fee
        payer that fronted it) once the pair has been idle for the feedback window (ReceiptStillOpen before)."""
        info = await self.get_payer_stats(agent, payer)
        if info is None:
            address = self.agent_address(agent)
            raise AccountNotFound(
                payer_stats_address(address, optional_pubkey(payer, "payer") or self.wallet, self.program_id)[0],
                "PayerStats",
            )
        accounts: ix.ClosePayerStatsAccounts = {
            "payer_stats": info.address,
            "authority": self.wallet,
            "rent_payer": info.rent_payer,
        }
        return await self.send([ix.close_payer_stats(accounts, self.program_id)], address=info.address)

    # reputation ------------------------------------------------------------------------------------------

    async def submit_feedback(
        self,
        agent: AgentRef,
        reference: bytes | str,
        *,
        success: bool = True,
        response_time_ms: int = 0,
        rating: int = 0,
    ) -> TxResult:
        """Rate the paid call of `reference`, as its payer: success, response time, rating 1-5 (0: none). The
        program allows one rating per call the wallet paid the agent, while its newest payment to the agent is
        within the feedback window (NothingToRate, FeedbackWindowClosed); the reference names the call rated.
        A payment the program recorded before PayerStats is rated through its legacy receipt."""
        address = self.agent_address(agent)
        ref = normalize_reference(reference)
        legacy = await self._legacy_receipt(address, ref)
        legacy_address = legacy.address if legacy is not None else None  # _legacy_receipt always sets it
        rated = (
            legacy_address
            if legacy is not None and legacy_address is not None and legacy.payer == self.wallet
            else payer_stats_address(address, self.wallet, self.program_id)[0]
        )
        if rated != legacy_address and await self._account_data(rated) is None:
            raise program_error_class("NothingToRate")()  # no PayerStats: never paid, or closed (ratings forfeited)
        accounts: ix.SubmitFeedbackAccounts = {
            "agent": address,
            "reputation": reputation_address(address, self.program_id)[0],
            "payer_stats": rated,
            "payer": self.wallet,
        }
        return await self.send(
            [
                ix.submit_feedback(
                    {
                        "reference": list(ref),
                        "success": success,
                        "response_time_ms": response_time_ms,
                        "rating": rating,
                    },
                    accounts,
                    self.program_id,
                )
            ],
            address=address,
        )

    async def refresh_reputation(self, agent: AgentRef) -> TxResult:
        """Recompute the on-chain score now (rolls the 7-day payment history)."""
        address = self.agent_address(agent)
        return await self.send(
            [
                ix.refresh_reputation(
                    {"agent": address, "reputation": reputation_address(address, self.program_id)[0]}, self.program_id
                )
            ],
            address=address,
        )

    async def get_metrics(self, agent: AgentRef) -> ReputationMetrics:
        """The agent's raw ReputationMetrics account (the inputs of its score)."""
        address = reputation_address(self.agent_address(agent), self.program_id)[0]
        found = await self._account_data(address)
        if found is None or found[0] != self.program_id:
            raise AccountNotFound(address, "reputation metrics")
        return ReputationMetrics.decode(found[1])

    async def get_reputation(self, agent: AgentRef) -> Reputation:
        """The on-chain score, its four components (recomputed from the metrics), tier and raw metrics."""
        info = await self.get_agent(agent)
        metrics = await self.get_metrics(info.address)
        components = self.recompute_reputation(metrics)
        has_payments = metrics.successful_payments + metrics.failed_payments > 0
        return Reputation(
            info.address, info.reputation_score, components, tier(info.reputation_score, has_payments), metrics
        )

    @staticmethod
    def recompute_reputation(metrics: ReputationMetrics | ReputationInputs) -> ReputationScore:
        """The score from metrics, with the program's own integer function (ghostpay.reputation)."""
        inputs = metrics if isinstance(metrics, ReputationInputs) else ReputationInputs.from_account(metrics)
        return reputation_score(inputs)

    # work orders -----------------------------------------------------------------------------------------

    async def chain_time(self) -> int:
        """The cluster's clock (unix seconds, from the Clock sysvar): what deadlines are checked against."""
        found = await self._account_data(CLOCK)
        if found is None:
            raise AccountNotFound(CLOCK, "clock sysvar")
        unix_timestamp: int = struct.unpack_from("<q", found[1], CLOCK_UNIX_TIMESTAMP_OFFSET)[0]
        return unix_timestamp

    async def _deadline(self, deadline: Deadline) -> int:
        if isinstance(deadline, timedelta):
            return await self.chain_time() + int(deadline.total_seconds())
        if isinstance(deadline, datetime):
            if deadline.tzinfo is None:
                raise InvalidArgument("a deadline datetime needs a timezone (e.g. datetime.now(timezone.utc))")
            return int(deadline.timestamp())
        if isinstance(deadline, bool) or not isinstance(deadline, int):
            raise InvalidArgument(f"a deadline is a unix time, datetime or timedelta, not {type(deadline).__name__}")
        return deadline

    async def create_work_order(
        self,
        agent: AgentRef,
        amount: Amount,
        *,
        deadline: Deadline,
        arbiter: PubkeyLike,
        title: str,
        description: str = "",
        requirements: Sequence[str] = (),
        review_period: int | timedelta = timedelta(days=3),
        mint: MintLike | None = None,
        order_id: int | None = None,
    ) -> NewWorkOrder:
        """Hire `agent` through escrow: `amount` (whole tokens of `mint`, default the agent's first accepted
        token) moves from the wallet's token account into a new vault until released.

            order = await gp.create_work_order(agent, Decimal("25"), deadline=timedelta(days=7),
                                               arbiter=arbiter, title="Translate the manual")
            await gp.release_payment(order.address, Decimal("10"))   # a first milestone

        `order_id` (u64) defaults to a random one; it and the wallet make the work order's address.
        """
        arbiter = to_pubkey(arbiter, "arbiter")
        info = await self.get_agent(agent)
        if mint is None and not info.accepted_tokens:
            raise InvalidArgument(f"agent {info.address} lists no accepted token: pass mint=")
        mint_info = await self.get_mint(mint or info.accepted_tokens[0])
        atomic = to_atomic(amount, mint_info.decimals)
        order_id = new_order_id(self.wallet, self.program_id) if order_id is None else order_id
        if isinstance(order_id, bool) or not isinstance(order_id, int) or not 0 <= order_id < 2**64:
            raise InvalidArgument("order_id is a u64")
        review = int(review_period.total_seconds()) if isinstance(review_period, timedelta) else review_period
        terms = WorkOrderTerms(
            atomic, await self._deadline(deadline), arbiter, title, description, tuple(requirements), review
        )
        vault = Keypair()
        address = work_order_address(self.wallet, order_id, self.program_id)[0]
        instruction = build_create_work_order(
            self.wallet,
            info.address,
            mint_info.address,
            order_id,
            terms,
            vault.pubkey(),
            mint_info.token_program,
            program_id=self.program_id,
        )
        result = await self.send([instruction], [vault], address=address)
        return NewWorkOrder(
            address,
            order_id,
            vault.pubkey(),
            from_atomic(atomic, mint_info.decimals),
            atomic,
            mint_info.address,
            result,
        )

    def work_order_address(self, order_id: int, client: Pubkey | None = None) -> Pubkey:
        """The address of `client`'s (default: the wallet's) work order `order_id`."""
        return work_order_address(client or self.wallet, order_id, self.program_id)[0]

    async def get_work_order(self, order: WorkOrderLike) -> WorkOrderInfo:
        """One live work order (AccountNotFound once it is closed, or if it never existed)."""
        address = (
            order.address
            if isinstance(order, WorkOrderInfo)
            else Pubkey.from_string(order)
            if isinstance(order, str)
            else order
        )
        found = await self._account_data(address)
        if found is None or found[0] != self.program_id or found[1][:8] != WorkOrder.discriminator:
            raise AccountNotFound(address, "work order")
        decoded = WorkOrder.decode(found[1])
        return WorkOrderInfo.from_account(address, decoded, await self.get_mint(decoded.mint))

    async def list_work_orders(
        self,
        *,
        client: PubkeyLike | None = None,
        agent: AgentRef | None = None,
        provider: PubkeyLike | None = None,
        arbiter: PubkeyLike | None = None,
        mint: MintLike | None = None,
        status: str | None = None,
    ) -> list[WorkOrderInfo]:
        """Live work orders matching every given filter, oldest first: by `client`, provider `agent`,
        `provider` (the agent's owner), `arbiter`, `mint` or `status` (Created, Accepted, Submitted, Disputed).

            mine = await gp.list_work_orders(client=gp.wallet, status="Submitted")   # waiting for my review
        """
        query = WorkOrderQuery(
            optional_pubkey(client, "client"),
            self.agent_address(agent) if agent is not None else None,
            optional_pubkey(provider, "provider"),
            optional_pubkey(arbiter, "arbiter"),
            None if mint is None else await self.resolve_mint(mint),
            status,
        )
        resp = await self._rpc(
            self.rpc.get_program_accounts(self.program_id, self.commitment, "base64", filters=query.memcmp_filters())
        )
        orders = []
        for keyed in resp.value:
            data = bytes(keyed.account.data)
            if query.matches(data):
                decoded = WorkOrder.decode(data)
                orders.append(WorkOrderInfo.from_account(keyed.pubkey, decoded, await self.get_mint(decoded.mint)))
        return sorted(orders, key=lambda o: (o.created_at, bytes(o.address)))

    async def _order_ref(self, order: WorkOrderLike) -> tuple[WorkOrderInfo, WorkOrderRef]:
        info = order if isinstance(order, WorkOrderInfo) else await self.get_work_order(order)
        return info, WorkOrderRef.from_account(info.address, info.account, info.token_program, self.program_id)

    async def _payee_accounts(self, order: WorkOrderRef, owners: Sequence[Pubkey]) -> list[Instruction]:
        """Idempotent creation of the payees' associated token accounts that do not exist yet (paid by the wallet)."""
        return [
            create_idempotent_associated_token_account(self.wallet, owner, order.mint, order.token_program)
            for owner in owners
            if await self._account_data(order.token_account(owner)) is None
        ]

    async def accept_work_order(self, order: WorkOrderLike, *, arbiter: Pubkey | str | None = None) -> TxResult:
        """Accept a Created work order, as the provider agent's owner, before its deadline. Accepting names
        the arbiter the provider agrees to: pass the one you checked (`arbiter=`); by default the order's
        current arbiter is read and named."""
        info, ref = await self._order_ref(order)
        agreed = (
            info.arbiter if arbiter is None else Pubkey.from_string(arbiter) if isinstance(arbiter, str) else arbiter
        )
        accept = build_accept_work_order(replace(ref, provider_owner=self.wallet), agreed)
        return await self.send([accept], address=ref.address)

    async def submit_delivery(self, order: WorkOrderLike, deliverable_uri: str, content_hash: bytes | str) -> TxResult:
        """Deliver an Accepted work order, as the provider's owner: a URI and the content's 32-byte hash
        (bytes or 64 hex digits, e.g. `hashlib.sha256(content).digest()`); starts the review period."""
        if isinstance(content_hash, str):
            try:
                content_hash = bytes.fromhex(content_hash)
            except ValueError:
                raise InvalidArgument("a content hash string is 64 hex digits") from None
        if len(content_hash) != CONTENT_HASH_LEN:
            raise InvalidArgument(f"the content hash is {CONTENT_HASH_LEN} bytes, got {len(content_hash)}")
        _, ref = await self._order_ref(order)
        deliver = build_submit_work_delivery(
            replace(ref, provider_owner=self.wallet), deliverable_uri, bytes(content_hash)
        )
        return await self.send([deliver], address=ref.address)

    async def reject_delivery(self, order: WorkOrderLike, reason: str) -> TxResult:
        """Send a delivery back within its review period (Submitted → Rejected), as the client; the provider
        then has the review period again to deliver anew or dispute before a refund becomes possible."""
        _, ref = await self._order_ref(order)
        reject = build_reject_delivery(replace(ref, client=self.wallet), reason)
        return await self.send([reject], address=ref.address)

    async def release_payment(
        self,
        order: WorkOrderLike,
        amount: Amount | None = None,
        *,
        client_token_account: Pubkey | None = None,
        provider_token_account: Pubkey | None = None,
    ) -> TxResult:
        """Pay the provider `amount` (whole tokens; default: all that remains), as the client. A partial
        release pays a milestone; the one that empties the escrow completes and closes the work order."""
        info, ref = await self._order_ref(order)
        ref = replace(ref, client=self.wallet)
        atomic = info.amount_atomic - info.released_atomic if amount is None else to_atomic(amount, info.decimals)
        setup = [] if provider_token_account else await self._payee_accounts(ref, [ref.provider_owner])
        release = build_release_payment(
            ref, atomic, client_token_account=client_token_account, provider_token_account=provider_token_account
        )
        return await self.send(setup + [release], address=ref.address)

    async def claim_payment(self, order: WorkOrderLike, *, provider_token_account: Pubkey | None = None) -> TxResult:
        """Take the remainder of a Submitted work order after its review period, as the provider's owner."""
        _, ref = await self._order_ref(order)
        ref = replace(ref, provider_owner=self.wallet)
        setup = [] if provider_token_account else await self._payee_accounts(ref, [ref.provider_owner])
        claim = build_claim_payment(ref, provider_token_account=provider_token_account)
        return await self.send(setup + [claim], address=ref.address)

    async def open_dispute(self, order: WorkOrderLike, reason: str) -> TxResult:
        """Dispute an Accepted, Submitted or Rejected work order, as its client or provider; only the arbiter
        settles it."""
        _, ref = await self._order_ref(order)
        dispute = build_open_dispute(ref, self.wallet, reason)
        return await self.send([dispute], address=ref.address)

    async def resolve_dispute(
        self,
        order: WorkOrderLike,
        client_share_bps: int,
        *,
        client_token_account: Pubkey | None = None,
        provider_token_account: Pubkey | None = None,
    ) -> TxResult:
        """Split the remainder of a Disputed work order, as its arbiter: `client_share_bps` / 10,000 of it
        (rounded down) to the client, the rest to the provider."""
        if (
            isinstance(client_share_bps, bool)
            or not isinstance(client_share_bps, int)
            or not 0 <= client_share_bps <= MAX_SHARE_ENCODABLE
        ):  # cannot even be encoded
            raise program_error_class("ShareOutOfRange")()
        _, ref = await self._order_ref(order)
        ref = replace(ref, arbiter=self.wallet)
        owners = [
            o
            for o, given in ((ref.client, client_token_account), (ref.provider_owner, provider_token_account))
            if given is None
        ]
        resolve = build_resolve_dispute(
            ref,
            client_share_bps,
            client_token_account=client_token_account,
            provider_token_account=provider_token_account,
        )
        return await self.send(await self._payee_accounts(ref, owners) + [resolve], address=ref.address)

    async def cancel_work_order(self, order: WorkOrderLike, *, client_token_account: Pubkey | None = None) -> TxResult:
        """Cancel a Created (not yet accepted) work order, as the client: full refund, the order closes."""
        _, ref = await self._order_ref(order)
        ref = replace(ref, client=self.wallet)
        setup = [] if client_token_account else await self._payee_accounts(ref, [ref.client])
        cancel = build_cancel_work_order(ref, client_token_account=client_token_account)
        return await self.send(setup + [cancel], address=ref.address)

    async def decline_work_order(self, order: WorkOrderLike, *, client_token_account: Pubkey | None = None) -> TxResult:
        """Turn down a Created work order, as the provider agent's owner: the client gets everything back
        and the order closes. (The client's token account is created first, paid by the wallet, if missing.)"""
        _, ref = await self._order_ref(order)
        ref = replace(ref, provider_owner=self.wallet)
        setup = [] if client_token_account else await self._payee_accounts(ref, [ref.client])
        decline = build_decline_work_order(ref, client_token_account=client_token_account)
        return await self.send(setup + [decline], address=ref.address)

    async def settle_by_default(self, order: WorkOrderLike, *, client_token_account: Pubkey | None = None) -> TxResult:
        """End a work order the other side leaves hanging, as its client or provider, by the default: the
        remainder back to the client. For a Disputed order once its ruling period (`WorkOrderInfo.ruling_due`)
        has passed without a ruling; otherwise whenever the client's refund is due (what `claim_refund`
        requires), so a provider need not wait for a client that never claims."""
        _, ref = await self._order_ref(order)
        setup = [] if client_token_account else await self._payee_accounts(ref, [ref.client])
        settle = build_settle_by_default(ref, self.wallet, client_token_account=client_token_account)
        return await self.send(setup + [settle], address=ref.address)

    async def claim_refund(self, order: WorkOrderLike, *, client_token_account: Pubkey | None = None) -> TxResult:
        """Take back the remainder after the deadline passed with no delivery standing (never delivered, or a
        rejection the provider did not answer within its grace period), as the client."""
        _, ref = await self._order_ref(order)
        ref = replace(ref, client=self.wallet)
        setup = [] if client_token_account else await self._payee_accounts(ref, [ref.client])
        refund = build_claim_refund(ref, client_token_account=client_token_account)
        return await self.send(setup + [refund], address=ref.address)

    # events ----------------------------------------------------------------------------------------------

    async def get_transaction_events(self, signature: Signature | str) -> list[ProgramEvent]:
        """All GhostPay events of a confirmed transaction."""
        sig = Signature.from_string(signature) if isinstance(signature, str) else signature
        commitment = Confirmed if str(self.commitment) == str(Processed) else self.commitment
        tx = (await self._rpc(self.rpc.get_transaction(sig, "json", commitment, 0))).value
        if tx is None:
            raise AccountNotFound(sig, "transaction")
        logs = list(tx.transaction.meta.log_messages or []) if tx.transaction.meta else []
        return decode_events(logs, self.program_id, sig, tx.slot)

    def events(
        self, names: Collection[str] | None = None, *, ready: asyncio.Event | None = None
    ) -> AsyncIterator[ProgramEvent]:
        """Live events over the websocket, reconnecting when it drops.

        async for event in gp.events({"X402PaymentRecorded"}):
            print(event.agent, event.amount)
        """
        commitment = Confirmed if str(self.commitment) == str(Processed) else self.commitment
        return live_events(self.cluster.ws_url, self.program_id, commitment, names=names, ready=ready)


__all__ = [
    "GhostPayClient",
    "X402Settings",
    "TxResult",
    "Simulation",
    "AgentInfo",
    "TokenEarnings",
    "Pricing",
    "TokenPricing",
    "Receipt",
    "PayerStatsInfo",
    "PaymentResult",
    "PreparedPayment",
    "Reputation",
    "WorkOrderInfo",
    "NewWorkOrder",
    "normalize_reference",
    "AgentRef",
    "looks_like_address",
    "Finalized",
]
