"""`python -m ghostpay.indexer run|status|verify`: the same commands as `ghost indexer`."""

from ghostpay.cli.indexer import app

app(prog_name="python -m ghostpay.indexer")
