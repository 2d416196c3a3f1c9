"""What a recorded x402 call costs, and who pays it: SOL spent and SOL locked per call for the fee payer (the
facilitator), the buyers and the seller, before (an account per payment) and after (a PayerStats per buyer
and agent); calls per 100 SOL of the fee payer; the localnet's ledger growth per call; the facilitator's
memory over a soak.

    python -m bench.economics                                   # 1,000 calls from 16 buyers, a 30 s soak
    python -m bench.economics --calls 10000 --soak-seconds 600  # issue 25's figures   (make bench-economics)

On one throwaway localnet: `ghost facilitator start` (fronting rent, as the issue's soak did) and
`ghost x402 proxy` selling a plain upstream at 0.01 of a 6-decimal token, paid by `--buyers` GhostPay buyers
at once (a worker each), each call the official exact transaction with `record_x402_payment` after the Memo,
the facilitator its record's rent payer. Every balance is read before and after: the fee payer's SOL, each
buyer's SOL and tokens, the seller's SOL and tokens. SOL locked is rent held by accounts the calls created
(found with getProgramAccounts); SOL spent by the fee payer is its balance's fall (fees and rent). The soak
then keeps calling for `--soak-seconds`, sampling the facilitator's resident memory every second.

"Before" is the program that made an X402Receipt (194 bytes) per payment, its rent fronted by the fee payer:
its rent and the measured fee per call give its cost (the issue's 44,422 calls per 100 SOL); its ledger
growth (5.3 KB a call) and the sweep's memory are issue 25's measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import based58
from rich.console import Console
from rich.table import Table
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from bench.report import RESULTS_DIR, report
from bench.x402 import Chain, RecordingBuyer, ghost, keypair_file, wait_http
from ghostpay.accounts import PayerStats, X402Receipt
from ghostpay.client import GhostPayClient, X402Settings
from ghostpay.localnet.ledger import LEDGER_FILE
from ghostpay.localnet.process import free_port_pair
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402.facilitator.settle import LOG_RETENTION_SECONDS

PRICE = Decimal("0.01")
PRICE_ATOMIC = 10_000
SOL = 1_000_000_000
HUNDRED_SOL = 100 * SOL
FEE_PAYER_SOL = 1_000
BUYER_SOL = 1  # a buyer holds some SOL only to show it spends none
LEGACY_RECEIPT_SPACE = 194
LEGACY_LEDGER_BYTES_PER_CALL = 5_300  # issue 25's measurement of the receipt-per-payment program
AGENT_OFFSET = 8  # PayerStats and X402Receipt: the agent right after the discriminator
RSS_SAMPLE_SECONDS = 1.0
WARM_UP_SHARE = 0.1  # of the soak, before the facilitator's memory counts as warmed up


@dataclass
class Row:
    metric: str
    before: float | None  # the program that made an account per payment
    after: float | None  # this one
    unit: str
    how: str


@dataclass
class Balances:
    """What the calls could change: SOL of the fee payer, the buyers and the seller; tokens of buyers and seller."""

    fee_payer: int
    buyers_sol: int
    seller_sol: int
    buyers_tokens: int
    seller_tokens: int


@dataclass
class Soak:
    seconds: float = 0.0
    calls: int = 0
    rss_kb: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the soak, resident kB)
    fee_payer_spent: int = 0
    db_bytes_before: int = 0
    db_bytes_after: int = 0
    db_bytes: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the soak, log bytes)


class Stack:
    """The localnet, an agent, funded buyers, the facilitator and the proxy, all in `folder`."""

    def __init__(self, folder: Path, buyers: int) -> None:
        self.folder = folder
        self.chain = Chain(folder)
        self.procs: list[subprocess.Popen[Any]] = []
        self.rpc = self.chain.node.http_url
        self.mint = Pubkey.from_string(self.chain.call("surfnet_createMint", {"decimals": 6})["value"])
        self.owner = self.chain.funded()
        self.agent = asyncio.run(self._register())
        self.chain.tokens(self.owner.pubkey(), self.mint, 0)
        self.buyers = [self.chain.funded(BUYER_SOL) for _ in range(buyers)]
        for buyer in self.buyers:
            self.chain.tokens(buyer.pubkey(), self.mint, 10**12)
        self.fee_payer = self.chain.funded(FEE_PAYER_SOL)

    async def _register(self) -> Pubkey:
        async with GhostPayClient(self.rpc, self.owner, ws_url=self.chain.node.ws_url) as gp:
            registered = await gp.register_agent(
                "economics",
                "Economics",
                capabilities=["translate"],
                x402=X402Settings({self.mint: PRICE}, "http://127.0.0.1/translate"),
            )
            assert registered.address is not None  # the agent it created
            return registered.address

    def start_servers(self) -> str:
        """Upstream, facilitator and proxy; returns the paid route's URL."""
        upstream_port = free_port_pair()[0]
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.x402", "upstream", str(upstream_port)], stderr=subprocess.PIPE, text=True
            )
        )
        upstream = f"http://127.0.0.1:{upstream_port}"
        self.facilitator, announced = ghost(
            self.folder,
            "-u",
            self.rpc,
            "-k",
            keypair_file(self.folder, self.fee_payer),
            "facilitator",
            "start",
            "--port",
            str(free_port_pair()[0]),
            "--db",
            str(self.facilitator_db),
            "--rate-limit",
            "1000000",
            "--asset",
            str(self.mint),
        )  # the bench's mint (a cheat-code mint, not a labelled test mint)
        self.procs.append(self.facilitator)
        proxy, served = ghost(
            self.folder,
            "-u",
            self.rpc,
            "-k",
            keypair_file(self.folder, self.owner),
            "x402",
            "proxy",
            "--agent",
            str(self.agent),
            "--upstream",
            upstream,
            "--facilitator",
            announced["url"],
            "--route",
            "GET /translate",
            "--port",
            str(free_port_pair()[0]),
        )
        self.procs.append(proxy)
        wait_http(f"{upstream}/free", self.procs[0])
        return f"{served['url']}/translate"

    @property
    def facilitator_db(self) -> Path:
        return self.folder / "facilitator.db"

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.chain.node.stop()

    # reading the chain -------------------------------------------------------------------------------------

    def sol(self, key: Pubkey) -> int:
        return int(self.chain.call("getBalance", str(key))["value"])

    def tokens(self, owner: Pubkey) -> int:
        account = get_associated_token_address(owner, self.mint)
        return int(self.chain.call("getTokenAccountBalance", str(account))["value"]["amount"])

    def balances(self) -> Balances:
        return Balances(
            self.sol(self.fee_payer.pubkey()),
            sum(self.sol(b.pubkey()) for b in self.buyers),
            self.sol(self.owner.pubkey()),
            sum(self.tokens(b.pubkey()) for b in self.buyers),
            self.tokens(self.owner.pubkey()),
        )

    def program_accounts(self, discriminator: bytes) -> list[dict[str, Any]]:
        """This agent's accounts of a kind (PayerStats or X402Receipt), lamports only."""
        return self.chain.call(
            "getProgramAccounts",
            str(PROGRAM_ID),
            {
                "encoding": "base64",
                "dataSlice": {"offset": 0, "length": 0},
                "filters": [
                    {"memcmp": {"offset": 0, "bytes": based58.b58encode(discriminator).decode()}},
                    {"memcmp": {"offset": AGENT_OFFSET, "bytes": str(self.agent)}},
                ],
            },
        )

    def total_calls(self) -> int:
        async def read() -> int:
            async with GhostPayClient(self.rpc) as gp:
                return (await gp.get_agent(self.agent)).total_calls

        return asyncio.run(read())

    def ledger_bytes(self) -> int:
        return database_bytes(self.chain.node.ledger / LEDGER_FILE)

    def facilitator_db_bytes(self) -> int:
        return database_bytes(self.facilitator_db)

    def rent(self, space: int) -> int:
        return int(self.chain.call("getMinimumBalanceForRentExemption", space))


WAL_HEADER, WAL_FRAME_HEADER = 32, 24  # sqlite.org/fileformat.html: the WAL file


def database_bytes(path: Path) -> int:
    """A SQLite database's logical size, what a reader sees (WAL frames included, the WAL file's slack not), read
    from its files: the localnet holds its ledger in exclusive locking mode, so no connection can ask it. The
    size is the page count of the last commit frame of the WAL's current generation (frames carrying the
    header's salts), else the main file's (the WAL checkpointed or empty)."""
    with path.open("rb") as main:
        header = main.read(100)
    page_size = int.from_bytes(header[16:18], "big") or 65_536  # 1 stands for 65,536
    page_count = int.from_bytes(header[28:32], "big")
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        data = wal.read_bytes()
        if len(data) >= WAL_HEADER:
            salts = data[16:24]
            frame = WAL_FRAME_HEADER + page_size
            for at in range(WAL_HEADER, len(data) - frame + 1, frame):
                if data[at + 8 : at + 16] != salts:
                    break  # a frame of an earlier generation: the current one ended
                committed = int.from_bytes(data[at + 4 : at + 8], "big")  # the pages after a commit, else 0
                if committed:
                    page_count = committed
    return page_count * page_size


def resident_kb(pid: int) -> int:
    """A process's resident memory (VmRSS, kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def pay(url: str, stack: Stack, until: Callable[[int], bool]) -> int:
    """Paid calls by every buyer at once (a worker each) until `until(calls made)`; returns how many."""
    clients = [RecordingBuyer(stack.rpc, buyer) for buyer in stack.buyers]
    made = 0

    async def worker(client: RecordingBuyer) -> None:
        nonlocal made
        while not until(made):
            made += 1
            answer = await client.get(url)
            if answer.status_code != 200:
                raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:300]}")

    try:
        await asyncio.gather(*(worker(c) for c in clients))
    finally:
        for client in clients:
            await client.aclose()
    return made


async def soak(url: str, stack: Stack, seconds: float) -> Soak:
    """Calls for `seconds`, the facilitator's memory sampled every second."""
    result = Soak(db_bytes_before=stack.facilitator_db_bytes())
    spent_before = stack.sol(stack.fee_payer.pubkey())
    started = time.monotonic()

    async def sample() -> None:
        while True:
            at = round(time.monotonic() - started, 1)
            result.rss_kb.append((at, resident_kb(stack.facilitator.pid)))
            result.db_bytes.append((at, stack.facilitator_db_bytes()))
            await asyncio.sleep(RSS_SAMPLE_SECONDS)

    sampler = asyncio.create_task(sample())
    try:
        result.calls = await pay(url, stack, lambda _: time.monotonic() - started >= seconds)
    finally:
        sampler.cancel()
    result.seconds = round(time.monotonic() - started, 1)
    result.rss_kb.append((result.seconds, resident_kb(stack.facilitator.pid)))
    result.fee_payer_spent = spent_before - stack.sol(stack.fee_payer.pubkey())
    result.db_bytes_after = stack.facilitator_db_bytes()
    return result


def per_call(total: float, calls: int) -> float:
    return total / calls if calls else 0.0


def measure(calls: int, buyers: int, soak_seconds: float, progress: Callable[[str], None]) -> list[Row]:
    folder = Path(tempfile.mkdtemp(prefix="bench-economics-"))
    stack = Stack(folder, buyers)
    try:
        url = stack.start_servers()
        progress(f"{calls:,} calls from {buyers} buyers…")
        before, ledger_before, calls_before = stack.balances(), stack.ledger_bytes(), stack.total_calls()
        stats_before = len(stack.program_accounts(PayerStats.discriminator))
        receipts_before = len(stack.program_accounts(X402Receipt.discriminator))
        made = asyncio.run(pay(url, stack, lambda n: n >= calls))
        after, ledger_after = stack.balances(), stack.ledger_bytes()
        stats = stack.program_accounts(PayerStats.discriminator)
        receipts = len(stack.program_accounts(X402Receipt.discriminator)) - receipts_before
        recorded = stack.total_calls() - calls_before
        if recorded != made or after.seller_tokens - before.seller_tokens != made * PRICE_ATOMIC:
            raise RuntimeError(f"{made} calls paid, {recorded} recorded: the run is not exact")
        progress(f"a {soak_seconds:g} s soak…")
        soaked = asyncio.run(soak(url, stack, soak_seconds))
        legacy_rent = stack.rent(LEGACY_RECEIPT_SPACE)
    finally:
        stack.stop()

    created = len(stats) - stats_before
    locked = sum(int(a["account"]["lamports"]) for a in stats)
    spent = before.fee_payer - after.fee_payer
    fee = per_call(soaked.fee_payer_spent, soaked.calls)  # every pair exists by then: the fee alone
    warm = [rss for t, rss in soaked.rss_kb if t >= soaked.seconds * WARM_UP_SHARE] or [soaked.rss_kb[-1][1]]
    legacy = "legacy receipt rent (getMinimumBalanceForRentExemption(194)) + the measured fee"
    rows = [
        Row("recorded calls", None, made, "calls", f"{buyers} buyers at once, then {soaked.calls:,} in the soak"),
        Row(
            "fee payer: SOL spent per call",
            (fee + legacy_rent) / SOL,
            per_call(spent, made) / SOL,
            "SOL",
            f"balance fall / calls (fees, and {created} PayerStats rents fronted once); before: {legacy}",
        ),
        Row(
            "fee payer: SOL spent per call, steady state",
            (fee + legacy_rent) / SOL,
            fee / SOL,
            "SOL",
            "the soak's balance fall / its calls (every pair's PayerStats exists)",
        ),
        Row(
            "fee payer: SOL locked per call",
            legacy_rent / SOL,
            per_call(locked, made) / SOL,
            "SOL",
            f"rent held by accounts the calls created ({created} PayerStats, {receipts} receipts) / calls; "
            "before: a receipt's rent, back after feedback and a sweep or 30 days",
        ),
        Row(
            "fee payer: SOL locked per call, steady state",
            legacy_rent / SOL,
            0.0,
            "SOL",
            "no account per call once a buyer's PayerStats exists",
        ),
        Row(
            "buyers: SOL spent per call",
            0.0,
            per_call(before.buyers_sol - after.buyers_sol, made) / SOL,
            "SOL",
            "their balance fall / calls (the fee payer fronts the rent)",
        ),
        Row(
            "seller: SOL spent per call",
            0.0,
            per_call(before.seller_sol - after.seller_sol, made) / SOL,
            "SOL",
            "its balance fall / calls",
        ),
        Row(
            "seller: tokens earned per call",
            float(PRICE),
            per_call(after.seller_tokens - before.seller_tokens, made) / 10**6,
            "tokens",
            "the price, exactly, for every call recorded",
        ),
        Row(
            "calls per 100 SOL of fee payer",
            HUNDRED_SOL / (fee + legacy_rent),
            HUNDRED_SOL / fee if fee else None,
            "calls",
            "100 SOL / steady-state SOL spent per call",
        ),
        Row(
            "new accounts per buyer and agent",
            made / buyers,
            created / buyers,
            "accounts",
            "PayerStats created / buyers; before: a receipt per call",
        ),
        Row(
            "localnet ledger growth per call",
            LEGACY_LEDGER_BYTES_PER_CALL,
            per_call(ledger_after - ledger_before, made),
            "bytes",
            "the ledger database's logical size (page_count x page_size); before: issue 25's measurement",
        ),
        Row(
            "facilitator RSS after warm-up",
            None,
            warm[0],
            "kB",
            f"{WARM_UP_SHARE * 100:.0f} % into the soak (sampled every second); before: grew by tens of MB per "
            "sweep (issue 25)",
        ),
        Row("facilitator RSS at the soak's end", None, warm[-1], "kB", f"after {soaked.seconds:g} s"),
        Row(
            "facilitator RSS spread after warm-up",
            None,
            round((max(warm) - min(warm)) * 100 / min(warm), 1),
            "%",
            "(highest - lowest) / lowest, from warm-up to the end",
        ),
        Row(
            "facilitator database growth per call",
            None,
            per_call(soaked.db_bytes_after - soaked.db_bytes_before, soaked.calls),
            "bytes",
            "the settled-payment log's logical size (replay protection) during the soak / its calls",
        ),
    ]
    settled = [size for t, size in soaked.db_bytes if t >= LOG_RETENTION_SECONDS + RSS_SAMPLE_SECONDS * 10]
    if settled:  # the log keeps answered outcomes LOG_RETENTION_SECONDS: after that it should stay flat
        rows += [
            Row(
                "facilitator database once its retention has passed",
                None,
                settled[0],
                "bytes",
                f"{LOG_RETENTION_SECONDS:g} s (the log's retention) + 10 s into the soak",
            ),
            Row("facilitator database at the soak's end", None, settled[-1], "bytes", f"after {soaked.seconds:g} s"),
            Row(
                "facilitator database spread after its retention",
                None,
                round((max(settled) - min(settled)) * 100 / min(settled), 1),
                "%",
                "(highest - lowest) / lowest, from then to the end",
            ),
        ]
    return rows


def table_of(rows: list[Row]) -> Table:
    table = Table(title="What a recorded x402 call costs, and who pays it")
    for column in ("metric", "before (a receipt per call)", "after (a PayerStats per buyer)", "unit"):
        table.add_column(column, justify="left" if column in ("metric", "unit") else "right")

    def cell(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.9f}".rstrip("0")

    for row in rows:
        table.add_row(row.metric, cell(row.before), cell(row.after), row.unit)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.economics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000, help="recorded calls measured (default 1,000)")
    parser.add_argument("--buyers", type=int, default=16, help="buyers paying at once (default 16)")
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=30.0,
        help="then keep calling this long, sampling the facilitator's memory (default 30)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "economics.json",
        help="where the rows go (default bench/results/economics.json)",
    )
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    with console.status("starting") as status:
        rows = measure(args.calls, args.buyers, args.soak_seconds, lambda what: status.update(what))
    if args.output == RESULTS_DIR / "economics.json":
        report(table_of(rows), rows, "economics", console, width=140)
    else:
        Console(width=140).print(table_of(rows))
        args.output.write_text(json.dumps([row.__dict__ for row in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
