"""Compute units per instruction, measured in LiteSVM (deterministic for given inputs).

    python -m bench.compute_units            # print the table, write bench/results/compute_units.json
    GHOSTPAY_CU_SAMPLES=256 python -m bench.compute_units   # more random inputs per row (default 64)

Every row is the mean over random inputs, with the lowest and highest seen: random owners and agent ids
(random length), random token counts where the row says so, random payers, references and order ids. A PDA
costs about 370 CU per bump tried (the program searches the canonical bump from 255 down), so rows
whose address depends on a value the SDK picks (an order id) are measured with values picked as the SDK
picks them (`ghostpay.pda.new_order_id`: bump 255), and again with arbitrary ones ("any ..." rows). The
record_x402_payment rows count that instruction alone, not the TransferChecked before it: the first
payment of a (payer, agent) pair creates its PayerStats (a PDA of random payers: any bump), every later
one only updates it. The escrow rows include their token CPIs (the vault's creation and every transfer).
"""

from __future__ import annotations

import os
import random
import statistics
import string
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from bench.report import report, size
from ghostpay import instructions as ix
from ghostpay.accounts import Agent
from ghostpay.agent_instructions import AgentProfile, build_register_agent, mint_accounts
from ghostpay.payments import build_x402_payment
from ghostpay.pda import agent_address, new_order_id, new_reference, payer_stats_address, reputation_address
from ghostpay.types import TokenPrice, X402Config
from ghostpay.work_orders import (
    WorkOrderRef,
    WorkOrderTerms,
    build_accept_work_order,
    build_create_work_order,
    build_open_dispute,
    build_release_payment,
    build_resolve_dispute,
    build_submit_work_delivery,
)
from tests.program.svm import InProcessChain

SAMPLES = int(os.environ.get("GHOSTPAY_CU_SAMPLES", size(64, 2)))
ENDPOINT = "https://agents.example.com/translate"


@dataclass
class Row:
    instruction: str
    case: str
    compute_units: int  # the mean over `samples` random inputs, rounded
    lowest: int
    highest: int
    samples: int


def summarize(instruction: str, case: str, samples: list[int]) -> Row:
    return Row(instruction, case, round(statistics.mean(samples)), min(samples), max(samples), len(samples))


class Bench:
    """One chain and a seeded random source; helpers that run an instruction and return its CU."""

    def __init__(self, seed: int = 402) -> None:
        self.chain = InProcessChain()
        self.rng = random.Random(seed)

    def keypair(self, sol: int = 10) -> Keypair:
        """A funded keypair from the seeded source, so PDA bumps (and the means) repeat run to run."""
        keypair = Keypair.from_seed(self.rng.randbytes(32))
        self.chain.svm.airdrop(keypair.pubkey(), sol * 10**9)
        return keypair

    def run(self, name: str, instructions: list[Instruction], *signers: Keypair) -> int:
        result = self.chain.send(instructions, list(signers))
        if not result.ok:
            raise RuntimeError(f"{name} failed: {result.error} {result.logs[-3:]}")
        return result.compute_units

    def agent_id(self) -> str:
        return "".join(self.rng.choice(string.ascii_lowercase) for _ in range(self.rng.randint(3, 32)))

    def prices(self, count: int) -> list[TokenPrice]:
        return [TokenPrice(self.chain.create_mint(), self.rng.randint(1_000, 10**9)) for _ in range(count)]

    def register(self, token_count: int | None) -> tuple[Keypair, Pubkey, int]:
        """A new agent of a new owner, with a random id; returns the owner, the agent and the CU."""
        owner, agent_id = self.keypair(), self.agent_id()
        config = None if token_count is None else X402Config(owner.pubkey(), self.prices(token_count), ENDPOINT)
        profile = AgentProfile(
            agent_id,
            "Translator",
            1,
            "Translates text between English and French",
            "https://agents.example.com/translator.json",
            ["translate", "summarize"],
        )
        cu = self.run("register_agent", [build_register_agent(owner.pubkey(), profile, config)], owner)
        return owner, agent_address(owner.pubkey(), agent_id)[0], cu

    def samples(self, measure_one: Callable[[], int]) -> list[int]:
        return [measure_one() for _ in range(SAMPLES)]

    def data(self, key: Pubkey) -> bytes:
        """An account's data (it must exist)."""
        account = self.chain.account(key)
        if account is None:
            raise LookupError(f"no account {key}")
        return bytes(account.data)


def registering(b: Bench, count: Callable[[], int | None]) -> Callable[[], int]:
    """One register_agent's compute units, with `count()` accepted tokens (None: without x402)."""
    return lambda: b.register(count())[2]


def register_rows(b: Bench) -> Iterator[Row]:
    cases: list[tuple[str, Callable[[], int | None]]] = [
        ("no x402", lambda: None),
        ("x402, 1 token", lambda: 1),
        ("x402, 10 tokens", lambda: 10),
        ("x402, 1-10 tokens", lambda: b.rng.randint(1, 10)),
    ]
    for case, count in cases:
        yield summarize("register_agent", case, b.samples(registering(b, count)))


def update_rows(b: Bench) -> Iterator[Row]:
    """Each owner update on a fresh random agent with one accepted token (configure_x402 also at 10)."""

    def on_new_agent(build: Callable[[Pubkey, Pubkey, Keypair], Instruction]) -> Callable[[], int]:
        def one() -> int:
            owner, agent, _ = b.register(1)
            return b.run("update", [build(agent, owner.pubkey(), owner)], owner)

        return one

    def configure(count: int) -> Callable[[Pubkey, Pubkey, Keypair], Instruction]:
        def build(agent: Pubkey, owner: Pubkey, _: Keypair) -> Instruction:
            config = X402Config(owner, b.prices(count), "https://agents.example.com/v2")
            return ix.configure_x402(
                {"config": config},
                {"agent": agent, "owner": owner},
                remaining_accounts=mint_accounts([t.mint for t in config.accepted_tokens]),
            )

        return build

    def accepted_mint(agent: Pubkey) -> Pubkey:
        return Agent.decode(b.data(agent)).x402_accepted_tokens[0].mint

    def set_tokens(agent: Pubkey, owner: Pubkey, _: Keypair) -> Instruction:
        tokens = b.prices(1)
        return ix.set_x402_tokens(
            {"accepted_tokens": tokens},
            {"agent": agent, "owner": owner},
            remaining_accounts=mint_accounts([t.mint for t in tokens]),
        )

    updates: list[tuple[str, str, Callable[[Pubkey, Pubkey, Keypair], Instruction]]] = [
        (
            "update_agent",
            "owner update",
            lambda a, o, _: ix.update_agent(
                {
                    "agent_type": None,
                    "name": "Translator Pro",
                    "description": None,
                    "metadata_uri": None,
                    "capabilities": None,
                },
                {"agent": a, "owner": o},
            ),
        ),
        ("configure_x402", "owner update", configure(1)),
        ("configure_x402", "10 tokens", configure(10)),
        (
            "set_x402_price",
            "owner update",
            lambda a, o, _: ix.set_x402_price(
                {"prices": [TokenPrice(accepted_mint(a), 30_000)]}, {"agent": a, "owner": o}
            ),
        ),
        ("set_x402_tokens", "owner update", set_tokens),
        (
            "set_x402_endpoint",
            "owner update",
            lambda a, o, _: ix.set_x402_endpoint(
                {"service_endpoint": "https://agents.example.com/v2"}, {"agent": a, "owner": o}
            ),
        ),
        ("disable_x402", "owner update", lambda a, o, _: ix.disable_x402({"agent": a, "owner": o})),
        (
            "set_agent_active",
            "owner update",
            lambda a, o, _: ix.set_agent_active({"is_active": False}, {"agent": a, "owner": o}),
        ),
        ("close_agent", "owner update", lambda a, o, _: ix.close_agent({"agent": a, "owner": o})),
    ]
    for name, case, build in updates:
        yield summarize(name, case, b.samples(on_new_agent(build)))


def payment_rows(b: Bench) -> Iterator[Row]:
    """record_x402_payment after a TransferChecked, to random agents from random payers: the pair's first
    payment (which creates its PayerStats), a later one, and a later one after a Memo (the official x402
    layout); then feedback, closing a PayerStats, and a refresh."""

    def program_cu(logs: list[str]) -> int:
        prefix = f"Program {b.chain.program_id} consumed "
        [cu] = [int(line[len(prefix) :].split()[0]) for line in logs if line.startswith(prefix)]
        return cu

    paid: list[tuple[Pubkey, Keypair]] = []

    def three_payments() -> tuple[int, int, int]:
        owner, agent, _ = b.register(1)
        payee, payer = b.keypair().pubkey(), b.keypair()
        mint = b.chain.create_mint()
        config = X402Config(payee, [TokenPrice(mint, 10_000)], ENDPOINT)
        b.run(
            "configure_x402",
            [
                ix.configure_x402(
                    {"config": config},
                    {"agent": agent, "owner": owner.pubkey()},
                    remaining_accounts=mint_accounts([mint]),
                )
            ],
            owner,
        )
        b.chain.create_token_account(payer.pubkey(), mint, 10**12)
        b.chain.create_token_account(payee, mint)
        units = []
        for memo in (None, None, os.urandom(16).hex()):
            payment = build_x402_payment(payer.pubkey(), agent, payee, mint, 6, 10_000, new_reference(), memo=memo)
            result = b.chain.send(payment, [payer])
            if not result.ok:
                raise RuntimeError(f"record_x402_payment failed: {result.error}")
            units.append(program_cu(result.logs))
        paid.append((agent, payer))
        first, later, after_memo = units
        return first, later, after_memo

    measured = [three_payments() for _ in range(SAMPLES)]
    for column, case in enumerate(("first payment of a pair", "later payments", "later payments, after a Memo")):
        yield summarize("record_x402_payment", case, [units[column] for units in measured])

    def feedback(agent: Pubkey, payer: Keypair) -> int:
        accounts: ix.SubmitFeedbackAccounts = {
            "agent": agent,
            "reputation": reputation_address(agent)[0],
            "payer_stats": payer_stats_address(agent, payer.pubkey())[0],
            "payer": payer.pubkey(),
        }
        return b.run(
            "submit_feedback",
            [
                ix.submit_feedback(
                    {"reference": list(new_reference()), "success": True, "response_time_ms": 245, "rating": 5},
                    accounts,
                )
            ],
            payer,
        )

    def close_stats(agent: Pubkey, payer: Keypair) -> int:
        return b.run(
            "close_payer_stats",
            [
                ix.close_payer_stats(
                    {
                        "payer_stats": payer_stats_address(agent, payer.pubkey())[0],
                        "authority": payer.pubkey(),
                        "rent_payer": payer.pubkey(),
                    }
                )
            ],
            payer,
        )

    def refresh(agent: Pubkey) -> int:
        return b.run(
            "refresh_reputation",
            [ix.refresh_reputation({"agent": agent, "reputation": reputation_address(agent)[0]})],
            b.keypair(),
        )

    yield summarize("submit_feedback", "rating and response time", [feedback(*pair) for pair in paid])
    yield summarize("close_payer_stats", "by its payer, 2 calls unrated", [close_stats(*pair) for pair in paid])
    yield summarize("refresh_reputation", "7 days of history", [refresh(agent) for agent, _ in paid])


def work_order_rows(b: Bench) -> Iterator[Row]:
    """create_work_order (vault + TransferChecked) with SDK-picked and arbitrary order ids, then each step
    of a work order that completes, and a dispute resolved with a split."""
    owner, agent, _ = b.register(1)
    mint = Agent.decode(b.data(agent)).x402_accepted_tokens[0].mint
    client, arbiter = b.keypair(1_000), b.keypair()
    b.chain.create_token_account(client.pubkey(), mint, 10**15)
    b.chain.create_token_account(owner.pubkey(), mint)
    deadline = b.chain.svm.get_clock().unix_timestamp + 7 * 86_400
    terms = WorkOrderTerms(
        5_000_000,
        deadline,
        arbiter.pubkey(),
        "Translate the user guide",
        "EN to FR",
        ("keep the glossary", "two review rounds"),
    )
    orders: list[WorkOrderRef] = []

    def create(pick_order_id: Callable[[], int]) -> Callable[[], int]:
        def one() -> int:
            vault, order_id = Keypair.from_seed(b.rng.randbytes(32)), pick_order_id()
            cu = b.run(
                "create_work_order",
                [build_create_work_order(client.pubkey(), agent, mint, order_id, terms, vault.pubkey())],
                client,
                vault,
            )
            orders.append(
                WorkOrderRef.derive(
                    client.pubkey(), order_id, agent, owner.pubkey(), arbiter.pubkey(), mint, vault.pubkey()
                )
            )
            return cu

        return one

    yield summarize("create_work_order", "SDK order ids", b.samples(create(lambda: new_order_id(client.pubkey()))))
    yield summarize("create_work_order", "any order ids", b.samples(create(lambda: b.rng.getrandbits(64))))

    accepted = list(orders)
    yield summarize(
        "accept_work_order",
        "naming the arbiter",
        [b.run("accept", [build_accept_work_order(o, o.arbiter)], owner) for o in accepted],
    )
    yield summarize(
        "submit_work_delivery",
        "",
        [
            b.run(
                "deliver",
                [
                    build_submit_work_delivery(
                        o, "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", bytes(32)
                    )
                ],
                owner,
            )
            for o in accepted[:SAMPLES]
        ],
    )
    yield summarize(
        "release_payment",
        "partial",
        [b.run("release", [build_release_payment(o, 2_000_000)], client) for o in accepted[:SAMPLES]],
    )
    yield summarize(
        "release_payment",
        "final: closes vault and work order",
        [b.run("release", [build_release_payment(o, 3_000_000)], client) for o in accepted[:SAMPLES]],
    )
    disputed = accepted[SAMPLES:]
    yield summarize(
        "open_dispute",
        "",
        [b.run("dispute", [build_open_dispute(o, client.pubkey(), "late")], client) for o in disputed],
    )
    yield summarize(
        "resolve_dispute",
        "30% to the client, closes",
        [b.run("resolve", [build_resolve_dispute(o, 3_000)], arbiter) for o in disputed],
    )


def measure(progress: Callable[[str], None] = lambda _: None) -> list[Row]:
    bench = Bench()
    rows: list[Row] = []
    for name, rows_of in (
        ("register_agent", register_rows),
        ("owner updates", update_rows),
        ("payments", payment_rows),
        ("work orders", work_order_rows),
    ):
        progress(name)
        rows.extend(rows_of(bench))
    return rows


def main() -> int:
    console = Console(stderr=True)
    with console.status("measuring") as status:
        rows = measure(lambda what: status.update(f"measuring {what} ({SAMPLES} random inputs a row)"))
    table = Table(title=f"GhostPay compute units (LiteSVM), mean of {SAMPLES} random inputs a row")
    table.add_column("instruction")
    table.add_column("case")
    table.add_column("mean CU", justify="right")
    table.add_column("lowest", justify="right")
    table.add_column("highest", justify="right")
    for row in rows:
        table.add_row(row.instruction, row.case, f"{row.compute_units:,}", f"{row.lowest:,}", f"{row.highest:,}")
    report(table, rows, "compute_units", console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
