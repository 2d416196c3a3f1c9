"""`python -m ghostpay.cli …`: the `ghost` command, where its script is not on PATH."""

from ghostpay.cli.main import app

app(prog_name="python -m ghostpay.cli")
