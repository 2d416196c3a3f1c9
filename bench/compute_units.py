"""Compute units per instruction, measured in LiteSVM (deterministic).

    python -m bench.compute_units            # print the table, write bench/results/compute_units.json

Creating a PDA costs 1,500 CU per bump tried (the program finds the canonical
bump on-chain), and so does checking a payee's associated token account, so
rows that derive an address are measured where every canonical bump is 255
(one try); the `mean` rows show the average over random keys. The
record_x402_payment rows count that instruction alone, not the TransferChecked
before it. The escrow rows include their token CPIs (the vault's creation and
every transfer); create_work_order is measured where the work-order PDA's bump
is 255 and as a mean over random order ids.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from typing import Callable

from rich.console import Console
from rich.table import Table
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID

from bench.report import report
from ghostpay import instructions as ix
from ghostpay.agent_instructions import AgentProfile, build_register_agent, mint_accounts
from ghostpay.payments import build_x402_payment
from ghostpay.pda import agent_address, receipt_address, reputation_address, work_order_address
from ghostpay.svm import TOKEN_PROGRAM_ID, InProcessChain
from ghostpay.types import X402Config
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

MEAN_SAMPLES = 64


@dataclass
class Row:
    instruction: str
    case: str
    compute_units: int


def owner_with_bump_255(chain: InProcessChain, agent_id: str) -> Keypair:
    """A funded owner whose agent and reputation PDAs for `agent_id` are both found on the first try."""
    while True:
        owner = Keypair()
        agent, bump = agent_address(owner.pubkey(), agent_id)
        if bump == 255 and reputation_address(agent)[1] == 255:
            chain.svm.airdrop(owner.pubkey(), 10**10)
            return owner


def demo_profile(agent_id: str = "translator") -> AgentProfile:
    return AgentProfile(agent_id, "Translator", 1, "Translates text between English and French",
                        "https://agents.example.com/translator.json", ["translate", "summarize"])


def register_cu(chain: InProcessChain, owner: Keypair, token_count: int | None) -> int:
    x402 = None
    if token_count is not None:
        mints = [chain.create_mint() for _ in range(token_count)]
        x402 = X402Config(payment_address=owner.pubkey(), price_per_call=10_000, accepted_tokens=mints,
                          service_endpoint="https://agents.example.com/translate")
    result = chain.send([build_register_agent(owner.pubkey(), demo_profile(), x402)], [owner])
    if not result.ok:
        raise RuntimeError(f"register_agent failed: {result.error}")
    return result.compute_units


def x402_config(chain: InProcessChain, owner: Keypair, price: int = 10_000) -> X402Config:
    return X402Config(payment_address=owner.pubkey(), price_per_call=price, accepted_tokens=[chain.create_mint()],
                      service_endpoint="https://agents.example.com/translate")


def update_instructions(chain: InProcessChain, owner: Keypair) -> list[tuple[str, Instruction]]:
    """One of each owner-only instruction, in an order that keeps every one valid."""
    agent, _ = agent_address(owner.pubkey(), "translator")
    accounts = {"agent": agent, "owner": owner.pubkey(), "reputation": reputation_address(agent)[0]}
    config = x402_config(chain, owner, price=20_000)
    new_mint = chain.create_mint()
    return [
        ("update_agent", ix.update_agent({"agent_type": None, "name": "Translator Pro", "description": None,
                                          "metadata_uri": None, "capabilities": None}, accounts)),
        ("configure_x402", ix.configure_x402({"config": config}, accounts,
                                             remaining_accounts=mint_accounts(config.accepted_tokens))),
        ("set_x402_price", ix.set_x402_price({"price_per_call": 30_000}, accounts)),
        ("set_x402_tokens", ix.set_x402_tokens({"accepted_tokens": [new_mint]}, accounts,
                                               remaining_accounts=mint_accounts([new_mint]))),
        ("set_x402_endpoint", ix.set_x402_endpoint({"service_endpoint": "https://agents.example.com/v2"}, accounts)),
        ("disable_x402", ix.disable_x402(accounts)),
        ("set_agent_active", ix.set_agent_active({"is_active": False}, accounts)),
        ("close_agent", ix.close_agent(accounts)),
    ]


def measure(progress: Callable[[str], None] = lambda _: None) -> list[Row]:
    chain = InProcessChain()
    rows = []
    for case, tokens in (("no x402", None), ("x402, 1 token", 1), ("x402, 10 tokens", 10)):
        progress(f"register_agent ({case})")
        rows.append(Row("register_agent", f"{case}, bump 255",
                        register_cu(chain, owner_with_bump_255(chain, "translator"), tokens)))
    progress(f"register_agent mean over {MEAN_SAMPLES} random owners")
    samples = [register_cu(chain, chain.funded_keypair(), 1) for _ in range(MEAN_SAMPLES)]
    rows.append(Row("register_agent", f"x402, 1 token, mean of {MEAN_SAMPLES} random owners",
                    round(statistics.mean(samples))))
    owner = chain.funded_keypair()
    register_cu(chain, owner, 1)
    for name, instruction in update_instructions(chain, owner):
        progress(name)
        result = chain.send([instruction], [owner])
        if not result.ok:
            raise RuntimeError(f"{name} failed: {result.error}")
        rows.append(Row(name, "owner update", result.compute_units))
    progress("configure_x402 with 10 tokens")
    rows.append(Row("configure_x402", "10 tokens", configure_ten_tokens_cu(chain)))
    progress("record_x402_payment and submit_feedback")
    rows.extend(payment_rows(chain))
    progress("work orders")
    rows.extend(work_order_rows(chain))
    return rows


def program_compute_units(logs: list[str], program_id: Pubkey) -> list[int]:
    """CU of each top-level invocation of `program_id`, from its `consumed` log lines."""
    prefix = f"Program {program_id} consumed "
    return [int(line[len(prefix):].split()[0]) for line in logs if line.startswith(prefix)]


def first_try_payee(mint: Pubkey) -> Keypair:
    """A payment address whose associated token account for `mint` has bump 255."""
    while True:
        payee = Keypair()
        seeds = [bytes(payee.pubkey()), bytes(TOKEN_PROGRAM_ID), bytes(mint)]
        if Pubkey.find_program_address(seeds, ASSOCIATED_TOKEN_PROGRAM_ID)[1] == 255:
            return payee


def payment_rows(chain: InProcessChain) -> list[Row]:
    owner = owner_with_bump_255(chain, "translator")
    agent, _ = agent_address(owner.pubkey(), "translator")
    mint = chain.create_mint()
    payee = first_try_payee(mint)
    config = X402Config(payee.pubkey(), 10_000, [mint], "https://agents.example.com/translate")
    result = chain.send([build_register_agent(owner.pubkey(), demo_profile(), config)], [owner])
    if not result.ok:
        raise RuntimeError(f"register_agent failed: {result.error}")
    payer = chain.funded_keypair()
    chain.create_token_account(payer.pubkey(), mint, 10**12)
    chain.create_token_account(payee.pubkey(), mint)

    def record_cu(reference: bytes) -> int:
        result = chain.send(build_x402_payment(payer.pubkey(), agent, payee.pubkey(), mint, 6, 10_000, reference),
                            [payer])
        if not result.ok:
            raise RuntimeError(f"record_x402_payment failed: {result.error}")
        [cu] = program_compute_units(result.logs, chain.program_id)
        return cu

    first_try = next(r for r in (n.to_bytes(32, "big") for n in range(1_000)) if receipt_address(agent, r)[1] == 255)
    rows = [Row("record_x402_payment", "receipt and payee ATA bumps 255", record_cu(first_try))]
    samples = [record_cu(bytes(Keypair().pubkey())) for _ in range(MEAN_SAMPLES)]
    rows.append(Row("record_x402_payment", f"mean of {MEAN_SAMPLES} random references", round(statistics.mean(samples))))
    feedback = ix.submit_feedback({"success": True, "response_time_ms": 245, "rating": 5},
                                  {"agent": agent, "reputation": reputation_address(agent)[0],
                                   "receipt": receipt_address(agent, first_try)[0], "payer": payer.pubkey()})
    result = chain.send([feedback], [payer])
    if not result.ok:
        raise RuntimeError(f"submit_feedback failed: {result.error}")
    rows.append(Row("submit_feedback", "rating and response time", result.compute_units))
    refresh = ix.refresh_reputation({"agent": agent, "reputation": reputation_address(agent)[0]})
    rows.append(Row("refresh_reputation", "7 days of history", chain.send([refresh], [payer]).compute_units))
    return rows


def work_order_rows(chain: InProcessChain) -> list[Row]:
    """create_work_order (vault + TransferChecked), accept, deliver, a partial and the final release_payment
    (which also closes the vault and the work order), and a dispute resolved with a split."""
    owner, client, arbiter = (chain.funded_keypair(100) for _ in range(3))
    mint = chain.create_mint()
    config = X402Config(owner.pubkey(), 10_000, [mint], "https://agents.example.com/translate")
    result = chain.send([build_register_agent(owner.pubkey(), demo_profile(), config)], [owner])
    if not result.ok:
        raise RuntimeError(f"register_agent failed: {result.error}")
    agent, _ = agent_address(owner.pubkey(), "translator")
    chain.create_token_account(client.pubkey(), mint, 10**15)
    chain.create_token_account(owner.pubkey(), mint)
    deadline = chain.svm.get_clock().unix_timestamp + 7 * 86_400
    terms = WorkOrderTerms(5_000_000, deadline, arbiter.pubkey(), "Translate the user guide", "EN to FR",
                           ("keep the glossary", "two review rounds"))

    def run(name: str, instruction: Instruction, *signers: Keypair) -> int:
        result = chain.send([instruction], [*signers])
        if not result.ok:
            raise RuntimeError(f"{name} failed: {result.error}")
        return result.compute_units

    def create(order_id: int) -> tuple[WorkOrderRef, int]:
        vault = Keypair()
        cu = run("create_work_order", build_create_work_order(client.pubkey(), agent, mint, order_id, terms,
                                                              vault.pubkey()), client, vault)
        return WorkOrderRef.derive(client.pubkey(), order_id, agent, owner.pubkey(), arbiter.pubkey(), mint,
                                   vault.pubkey()), cu

    first_try = next(n for n in range(1_000) if work_order_address(client.pubkey(), n)[1] == 255)
    order, create_cu = create(first_try)
    rows = [Row("create_work_order", "vault + transfer, bump 255", create_cu)]
    samples = [create(n)[1] for n in range(10_000, 10_000 + MEAN_SAMPLES)]
    rows.append(Row("create_work_order", f"mean of {MEAN_SAMPLES} order ids", round(statistics.mean(samples))))
    rows.append(Row("accept_work_order", "", run("accept", build_accept_work_order(order), owner)))
    rows.append(Row("submit_work_delivery", "", run("deliver", build_submit_work_delivery(
        order, "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", bytes(32)), owner)))
    rows.append(Row("release_payment", "partial", run("release", build_release_payment(order, 2_000_000), client)))
    rows.append(Row("release_payment", "final: closes vault and work order",
                    run("release", build_release_payment(order, 3_000_000), client)))
    disputed, _ = create(first_try + 1)
    run("accept", build_accept_work_order(disputed), owner)
    rows.append(Row("open_dispute", "", run("dispute", build_open_dispute(disputed, client.pubkey(), "late"), client)))
    rows.append(Row("resolve_dispute", "30% to the client, closes",
                    run("resolve", build_resolve_dispute(disputed, 3_000), arbiter)))
    return rows


def configure_ten_tokens_cu(chain: InProcessChain) -> int:
    """configure_x402 at the token limit: ten mint accounts to check and a longer event."""
    owner = chain.funded_keypair()
    register_cu(chain, owner, 1)
    agent, _ = agent_address(owner.pubkey(), "translator")
    tokens = [chain.create_mint() for _ in range(10)]
    config = X402Config(payment_address=owner.pubkey(), price_per_call=20_000, accepted_tokens=tokens,
                        service_endpoint="https://agents.example.com/translate")
    result = chain.send([ix.configure_x402({"config": config}, {"agent": agent, "owner": owner.pubkey()},
                                           remaining_accounts=mint_accounts(tokens))], [owner])
    if not result.ok:
        raise RuntimeError(f"configure_x402 with 10 tokens failed: {result.error}")
    return result.compute_units


def main() -> int:
    console = Console(stderr=True)
    with console.status("measuring") as status:
        rows = measure(lambda what: status.update(f"measuring {what}"))
    table = Table(title="GhostPay compute units (LiteSVM)")
    table.add_column("instruction")
    table.add_column("case")
    table.add_column("CU", justify="right")
    for row in rows:
        table.add_row(row.instruction, row.case, f"{row.compute_units:,}")
    report(table, rows, "compute_units", console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
