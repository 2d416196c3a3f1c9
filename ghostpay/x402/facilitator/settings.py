"""What `ghost facilitator start` configures: the facilitator's settings and where its database lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from ghostpay.paths import data_dir
from ghostpay.program_id import PROGRAM_ID
from ghostpay.x402.facilitator.policy import AssetRule, FeeLimits
from ghostpay.x402.networks import DEVNET_CAIP2

LAMPORTS_PER_SOL = 1_000_000_000


def default_db_path() -> Path:
    return data_dir() / "facilitator.db"


@dataclass(frozen=True)
class FacilitatorSettings:
    """What `ghost facilitator start` passes in; defaults suit a localnet."""

    keypair: Keypair
    rpc_url: str
    ws_url: str
    networks: tuple[str, ...] = (DEVNET_CAIP2,)  # CAIP-2 ids served (v2); v1 names are served too
    # A SQLite file, or postgresql://… shared by replicas (`ghostpay.x402.facilitator.database`)
    db_path: Path | str = field(default_factory=default_db_path)
    rate_limit: int = 120  # verify or settle requests per payer per window, each counted apart
    rate_window_seconds: float = 60.0
    min_balance_lamports: int = LAMPORTS_PER_SOL // 100  # refuse to pay fees under 0.01 SOL
    confirm_timeout_seconds: float = 30.0
    program_id: Pubkey = PROGRAM_ID  # whose record_x402_payment may follow the Memo (the GhostPay extension)
    record_extension: bool = True
    front_receipt_rent: bool = True  # the fee payer may be the record's rent payer (a pair's PayerStats, once)
    sweep_interval_seconds: float = 60.0  # closes the legacy receipts it fronted when they may be closed (0: never)
    fee_limits: FeeLimits = field(default_factory=FeeLimits)
    assets: tuple[AssetRule, ...] = ()  # the mints it settles (none given: the network's stablecoins...)
    test_mints: Path | None = None  # ...and the test mints labelled on this cluster in this label store (a localnet's)
    discovery_refresh_seconds: float = 5.0  # the Bazaar catalogue is read from the chain this often (0: no Bazaar)

    @property
    def fee_payer(self) -> Pubkey:
        return self.keypair.pubkey()
