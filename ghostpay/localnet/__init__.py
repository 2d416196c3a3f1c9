"""A local Solana validator on LiteSVM: standard JSON-RPC (HTTP) and pub-sub (websocket), GhostPay preloaded.

Start it with `ghost localnet start` or `python -m ghostpay.localnet`; see
`server.LocalnetConfig` for the options and `cheats` for the `surfnet_*` methods.
"""
