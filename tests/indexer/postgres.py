"""A throwaway PostgreSQL cluster from Debian's binaries: initdb and pg_ctl as the `postgres`
user (PostgreSQL refuses to run as root), in a temporary folder, on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
RUN_AS = "postgres"


def _binary(name: str) -> str | None:
    for folder in PG_BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


def postgres_binaries() -> str | None:
    """None if initdb and pg_ctl are there, else what is missing."""
    missing = [name for name in ("initdb", "pg_ctl") if _binary(name) is None]
    return ", ".join(missing) or None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """`PostgresCluster().start()`; `stop()` removes it. Its folder is a fresh one under the system's
    temporary folder, since pytest's (mode 0700, root's) is closed to the postgres user."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ghostpay-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.user = RUN_AS if os.geteuid() == 0 else os.environ.get("USER", "postgres")

    def _run(self, *argv: str) -> None:
        command = list(argv)
        if os.geteuid() == 0:  # as root: hand the folder to postgres and run as it
            command = ["runuser", "-u", RUN_AS, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def start(self) -> PostgresCluster:
        if os.geteuid() == 0:
            shutil.chown(self.folder, RUN_AS)
            self.folder.chmod(0o700)
        self._run(
            _binary("initdb") or "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self._run(
            _binary("pg_ctl") or "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(_binary("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway cluster for the session (the indexer and analytics tests import this fixture)."""
    missing = postgres_binaries()
    if missing:
        pytest.skip(f"PostgreSQL is not installed ({missing}); scripts/setup.sh installs it from Debian")
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()
