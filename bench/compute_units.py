"""Compute units per instruction, measured in LiteSVM (deterministic).

    python -m bench.compute_units            # print the table, write bench/results/compute_units.json

Creating a PDA costs 1,500 CU per bump tried (the program finds the canonical
bump on-chain), so rows that create an account are measured for an address
whose canonical bump is 255 (one try); the `mean` row shows the average over
random agent IDs.
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table
from solders.keypair import Keypair

from solders.instruction import Instruction

from ghostpay import instructions as ix
from ghostpay.agent_instructions import AgentProfile, build_register_agent, mint_accounts
from ghostpay.pda import agent_address
from ghostpay.svm import InProcessChain
from ghostpay.types import X402Config

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "compute_units.json"
MEAN_SAMPLES = 64


@dataclass
class Row:
    instruction: str
    case: str
    compute_units: int


def owner_with_bump_255(chain: InProcessChain, agent_id: str) -> Keypair:
    """A funded owner whose agent PDA for `agent_id` is found on the first try."""
    while True:
        owner = Keypair()
        if agent_address(owner.pubkey(), agent_id)[1] == 255:
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
    accounts = {"agent": agent, "owner": owner.pubkey()}
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
    Console().print(table)
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    console.print(f"wrote {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
