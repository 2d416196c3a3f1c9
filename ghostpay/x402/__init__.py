"""x402 over HTTP on the official `x402` package: networks, facilitator, seller middleware, proxy, buyer."""
