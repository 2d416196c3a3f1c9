"""The defaults of the facilitator's policy and of a seller key's terms, importable without the Solana
stack (the CLI's --help shows them)."""

from __future__ import annotations

from decimal import Decimal

# A payment's compute-unit limit: the official exact client's 20,000 plus what GhostPay's buyer adds for
# its record instruction (ghostpay.x402.record.RECORD_COMPUTE_UNITS, 8,000); tests hold the two equal.
DEFAULT_MAX_COMPUTE_UNITS = 28_000
# An official payment costs 10,001 lamports (two signatures, 20,000 CU at 1 µlamport); this leaves room for a
# priority price up to about 1,400,000 µlamports at DEFAULT_MAX_COMPUTE_UNITS, and no more.
DEFAULT_MAX_FEE_LAMPORTS = 50_000
DEFAULT_MAX_FEE_SHARE = Decimal(1)  # the fee may cost as much as the payment is worth, not more
DEFAULT_SOL_USD = Decimal(500)  # a high price for SOL: fees are valued high, so the share check errs on refusing

# A seller key's terms when `ghost facilitator keys add` is not told otherwise (rent fronting: off).
DEFAULT_MAX_RENT_OUTSTANDING = 50_000_000  # lamports (0.05 SOL: about 22 receipts)
DEFAULT_SETTLES_PER_MINUTE = 60
DEFAULT_FEE_LAMPORTS_PER_DAY = 50_000_000  # 0.05 SOL: about 5,000 settles of an official payment
