"""What `ghost indexer run` and `ghost indexer serve` (and `ghost demo --dashboard`) share: the indexer's
configuration from the options, its database opened or one clean error line, logging set up."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import typer


def fail(message: str, status: int = 1) -> NoReturn:
    from ghostpay.cli.context import one_line

    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(status)


def default_db() -> str:
    from ghostpay.paths import data_dir

    return f"sqlite:///{data_dir() / 'indexer.db'}"


def indexer_config(url: str, ws_url: str | None, db: str | None, batch_size: int = 200) -> Any:
    from ghostpay.cli.indexed import db_url
    from ghostpay.cluster import resolve
    from ghostpay.exceptions import InvalidArgument
    from ghostpay.indexer.service import IndexerConfig

    try:
        cluster = resolve(url, ws_url)
    except InvalidArgument as exc:
        fail(str(exc))
    return IndexerConfig(cluster.http_url, cluster.ws_url, db_url(db) if db else default_db(), batch_size=batch_size)


def index_engine(db: str, *, read_only: bool = False) -> Any:
    from ghostpay.cli.errors import CliError
    from ghostpay.cli.indexed import open_database

    try:
        return open_database(db, read_only=read_only)
    except CliError as exc:
        fail(str(exc))


def setup_logging(level: str) -> None:
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        fail(f"--log-level must be debug, info, warning or error, not {level!r}")
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if numeric > logging.DEBUG:  # one line per HTTP request is noise at info
        logging.getLogger("httpx").setLevel(logging.WARNING)
