"""Bazaar discovery backed by the chain: the x402 `bazaar` extension's facilitator endpoints
(`GET /discovery/resources`, `GET /discovery/search`, as the package's `with_bazaar` client calls them),
answered from GhostPay's on-chain registry.

- `catalogue`: `ChainCatalogue`, every x402-enabled active agent as the package's `DiscoveryResource`, with
  GhostPay's evidence (reputation, verified paid calls, payers, last paid) in `extensions.ghostpay`;
- `query`: the routes' parameters checked (named 400 reasons), filters, search terms, sorting and paging.

`ghost facilitator start` serves them (`ghostpay.x402.facilitator.app`), refreshing the catalogue from the
chain every `--discovery-refresh` seconds.
"""
