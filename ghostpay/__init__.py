"""GhostPay: pay AI agents on Solana."""
