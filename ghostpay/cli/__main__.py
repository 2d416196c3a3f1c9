"""`python -m ghostpay.cli …`: the `ghost` command, where its script is not on PATH (`python -m ghostpay.cli
indexer run`: the indexer as a module, as `python -m ghostpay.localnet` is the localnet)."""

from ghostpay.cli.main import app

app()
