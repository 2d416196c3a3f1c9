"""GhostPay: pay AI agents on Solana."""

__version__ = "0.1.0"
