"""One agent in LiteSVM and the parties around it, shared by the program tests.

A facilitator pays every fee and appears in no instruction, so on a refused transaction every party's
lamports, every token balance and every byte of the agent, its metrics and the watched accounts must be exactly
as before: only the facilitator's fees go (`assert_refused`).

Three presets register the agent as the test modules need it: `registry_world` (the full profile, x402 in one
mint paid to the owner, or no x402), `escrow_world` (the client funded, paid to the owner) and
`payments_world` (a separate payee, the payer funded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.accounts import Agent, PayerStats, ReputationMetrics, WorkOrder
from ghostpay.agent_instructions import AgentProfile, build_register_agent
from ghostpay.instructions import submit_feedback
from ghostpay.payments import build_x402_payment
from ghostpay.pda import associated_token_address, payer_stats_address, reputation_address
from ghostpay.types import TokenPrice, X402Config
from ghostpay.work_orders import WorkOrderRef, WorkOrderTerms, build_create_work_order
from tests.program.svm import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, InProcessChain as Chain, TxResult
from tools.build_program import build_so

FEE = 5_000  # lamports per signature
DECIMALS = 6
PRICE = 10_000  # the agent's price in each accepted mint
STATS_SPACE = 137  # a PayerStats
ENDPOINT = "https://agent.example.com/translate"
PROFILE = AgentProfile(
    "translator",
    "Translator",
    agent_type=1,
    description="EN<->FR translation",
    metadata_uri="https://example.com/agent.json",
    capabilities=["translate", "summarize"],
)
ESCROW_FUNDS = 10**12  # the escrow client's tokens in each mint
PAYMENT_FUNDS = 1_000_000  # the x402 payer's tokens in each mint
AMOUNT = 5_000_000  # a work order's escrowed amount
DAY = 86_400
REVIEW = 3_600  # a work order's review period
CPI_RELAY_SOURCE = Path(__file__).resolve().parents[1] / "programs" / "cpi_relay.c"


@dataclass
class World:
    chain: Chain
    facilitator: Keypair  # fee payer of every transaction, in no instruction's accounts
    owner: Keypair  # the agent's owner (the provider of its work orders)
    payee: Keypair  # the agent's x402 payment address (the owner, but in `payments_world`)
    payer: Keypair  # an x402 payer
    client: Keypair  # a work-order client
    arbiter: Keypair
    stranger: Keypair
    agent: Pubkey
    usdc: Pubkey  # SPL Token, accepted
    pyusd: Pubkey  # Token-2022, accepted but in `registry_world`
    other: Pubkey  # SPL Token, not accepted
    next_id: int = 1  # the next work order's id

    @property
    def parties(self) -> list[Keypair]:
        """Everyone but the facilitator."""
        return [self.owner, self.payee, self.payer, self.client, self.arbiter, self.stranger]

    @property
    def reputation(self) -> Pubkey:
        return reputation_address(self.agent)[0]

    @property
    def now(self) -> int:
        return self.chain.svm.get_clock().unix_timestamp

    def warp(self, seconds: int) -> int:
        """Move the clock forward; the new time."""
        self.chain.set_unix_timestamp(self.now + seconds)
        return self.now

    def send(self, instructions: list[Instruction], *signers: Keypair) -> TxResult:
        return self.chain.send(instructions, [self.facilitator, *signers])

    def ok(self, ix: Instruction, *signers: Keypair) -> TxResult:
        result = self.send([ix], *signers)
        assert result.ok, (result.error, result.logs)
        return result

    # ---- the agent

    def agent_state(self) -> Agent:
        return Agent.decode(bytes(self.chain.account(self.agent).data))

    def metrics(self) -> ReputationMetrics:
        return ReputationMetrics.decode(bytes(self.chain.account(self.reputation).data))

    def balance(self, owner: Pubkey, mint: Pubkey | None = None, program: Pubkey = TOKEN_PROGRAM_ID) -> int:
        """`owner`'s tokens in `mint` (default USDC)."""
        return self.chain.token_balance(associated_token_address(owner, mint or self.usdc, program))

    # ---- x402 payments

    def payment(
        self,
        reference: bytes,
        amount: int = PRICE,
        mint: Pubkey | None = None,
        token_program: Pubkey = TOKEN_PROGRAM_ID,
    ) -> list[Instruction]:
        return build_x402_payment(
            self.payer.pubkey(),
            self.agent,
            self.payee.pubkey(),
            mint or self.usdc,
            DECIMALS,
            amount,
            reference,
            token_program,
            fee_payer=self.facilitator.pubkey(),
            compute_unit_limit=100_000,
        )

    def pay(self, reference: bytes, **kwargs) -> TxResult:
        result = self.send(self.payment(reference, **kwargs), self.payer)
        assert result.ok, (result.error, result.logs)
        return result

    def stats_address(self, payer: Keypair | None = None) -> Pubkey:
        return payer_stats_address(self.agent, (payer or self.payer).pubkey())[0]

    def stats(self, payer: Keypair | None = None) -> PayerStats | None:
        account = self.chain.account(self.stats_address(payer))
        return PayerStats.decode(bytes(account.data)) if account and account.data else None

    def feedback(
        self,
        reference: bytes,
        success: bool = True,
        response_time_ms: int = 250,
        rating: int = 5,
        signer: Keypair | None = None,
        rated: Pubkey | None = None,
    ) -> Instruction:
        """The payer's (`signer`'s) rating of the call paid with `reference`, through its PayerStats (or `rated`)."""
        signer = signer or self.payer
        return submit_feedback(
            {"reference": list(reference), "success": success, "response_time_ms": response_time_ms, "rating": rating},
            {
                "agent": self.agent,
                "reputation": self.reputation,
                "payer_stats": rated or self.stats_address(signer),
                "payer": signer.pubkey(),
            },
        )

    # ---- work orders

    def create(
        self,
        amount: int = AMOUNT,
        mint: Pubkey | None = None,
        token_program: Pubkey = TOKEN_PROGRAM_ID,
        deadline_in: int = DAY,
        **kwargs,
    ) -> tuple[WorkOrderRef, TxResult]:
        mint = mint or self.usdc
        terms = WorkOrderTerms(
            amount,
            self.now + deadline_in,
            self.arbiter.pubkey(),
            "Translate 10 pages",
            "EN to DE",
            ("glossary", "two rounds"),
            REVIEW,
        )
        vault = Keypair()
        order_id, self.next_id = self.next_id, self.next_id + 1
        ix = build_create_work_order(
            self.client.pubkey(), self.agent, mint, order_id, terms, vault.pubkey(), token_program, **kwargs
        )
        order = WorkOrderRef.derive(
            self.client.pubkey(),
            order_id,
            self.agent,
            self.owner.pubkey(),
            self.arbiter.pubkey(),
            mint,
            vault.pubkey(),
            token_program,
        )
        return order, self.send([ix], self.client, vault)

    def open(self, **kwargs) -> WorkOrderRef:
        order, result = self.create(**kwargs)
        assert result.ok, (result.error, result.logs)
        return order

    def state(self, order: WorkOrderRef) -> WorkOrder | None:
        account = self.chain.account(order.address)
        return WorkOrder.decode(bytes(account.data)) if account and account.data else None


TRANSLATOR = AgentProfile("translator", "Translator")


def make_world(
    accepted: Sequence[str],
    payee_is_owner: bool = True,
    profile: AgentProfile = TRANSLATOR,
    holders: Mapping[str, int] = {},
    sol: int = 10,
) -> World:
    """Every party funded with `sol`; three mints; the agent registered with x402 in the `accepted` mints (none:
    no x402) at PRICE; each of `holders` (party name -> tokens) holding a token account in each mint."""
    chain = Chain()
    facilitator, owner, payer, client, arbiter, stranger = (chain.funded_keypair(sol) for _ in range(6))
    payee = owner if payee_is_owner else chain.funded_keypair(sol)
    usdc, other = chain.create_mint(DECIMALS), chain.create_mint(DECIMALS)
    pyusd = chain.create_mint(DECIMALS, token_program=TOKEN_2022_PROGRAM_ID)
    mints = {"usdc": usdc, "pyusd": pyusd}
    config = X402Config(payee.pubkey(), [TokenPrice(mints[m], PRICE) for m in accepted], ENDPOINT) if accepted else None
    result = chain.send([build_register_agent(owner.pubkey(), profile, config)], [facilitator, owner])
    assert result.ok, result.logs
    agent = Pubkey.from_string(str(result.event("AgentRegistered").agent))
    world = World(chain, facilitator, owner, payee, payer, client, arbiter, stranger, agent, usdc, pyusd, other)
    for name, funds in holders.items():
        for mint, program in ((usdc, TOKEN_PROGRAM_ID), (pyusd, TOKEN_2022_PROGRAM_ID), (other, TOKEN_PROGRAM_ID)):
            chain.create_token_account(getattr(world, name).pubkey(), mint, funds, program)
    return world


def registry_world(x402: bool = True) -> World:
    """The full PROFILE, with x402 in USDC paid to the owner (or without x402); no token accounts."""
    return make_world(("usdc",) if x402 else (), profile=PROFILE)


def escrow_world() -> World:
    """x402 in USDC and PYUSD paid to the owner; the client, the owner, the arbiter and the stranger hold token
    accounts, the client ESCROW_FUNDS in each mint."""
    return make_world(
        ("usdc", "pyusd"), holders={"client": ESCROW_FUNDS, "owner": 0, "stranger": 0, "arbiter": 0}, sol=100
    )


def payments_world() -> World:
    """x402 in USDC and PYUSD paid to a separate payee; the payer holds PAYMENT_FUNDS in each mint."""
    return make_world(("usdc", "pyusd"), payee_is_owner=False, holders={"payer": PAYMENT_FUNDS, "payee": 0})


def reference(n: int) -> bytes:
    """The x402 payment reference number `n`."""
    return n.to_bytes(32, "big")


def escrowed(order: WorkOrderRef) -> list[Pubkey]:
    """A work order and its vault."""
    return [order.address, order.vault]


def snapshot(world: World, watch: Iterable[Pubkey] = ()) -> dict[Pubkey, tuple | None]:
    """Everything a program instruction could change, byte for byte: the agent, its metrics, the payer's
    PayerStats, every party's lamports and token accounts, and `watch`."""
    keys = [world.agent, world.reputation, world.stats_address(), *(p.pubkey() for p in world.parties)]
    keys += [
        associated_token_address(p.pubkey(), mint, program)
        for p in world.parties
        for mint, program in (
            (world.usdc, TOKEN_PROGRAM_ID),
            (world.pyusd, TOKEN_2022_PROGRAM_ID),
            (world.other, TOKEN_PROGRAM_ID),
        )
    ]

    def state(account: Account | None) -> tuple | None:
        return None if account is None else (account.lamports, bytes(account.data), account.owner)

    return {key: state(world.chain.account(key)) for key in [*keys, *watch]}


def assert_refused(
    world: World, instructions: list[Instruction], signers: list[Keypair], error: str, watch: Iterable[Pubkey] = ()
) -> TxResult:
    """Send with the facilitator paying; expect `error` by name, no event, and no change but the facilitator's
    fees."""
    watch = list(watch)
    before = snapshot(world, watch)
    facilitator_before = world.chain.balance(world.facilitator.pubkey())
    result = world.send(instructions, *signers)
    assert result.error == error, (result.error, result.logs)
    assert not result.ok and not result.events
    assert snapshot(world, watch) == before
    assert world.chain.balance(world.facilitator.pubkey()) == facilitator_before - FEE * (1 + len(signers))
    return result


def cpi_relay_program() -> bytes:
    """tests/programs/cpi_relay.c, built by the project's own pipeline (clang-19 + sbpf_link)."""
    return build_so(CPI_RELAY_SOURCE)
