"""Crash safety: the indexer killed with SIGKILL at random points of a back-fill, and restarted,
ends with exactly the tables of one clean run (no row lost, none duplicated). Each run is a
forked process (SIGKILL leaves it no chance to clean up), forked so a restart skips the imports.

Sizes: GHOSTPAY_CRASH_PAYMENTS (default 300 payments, about 600 transactions) and
GHOSTPAY_CRASH_KILLS (default 20).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import random
import signal
import time
from multiprocessing.connection import Connection

import pytest

from ghostpay.indexer.service import Indexer
from tests.indexer.conftest import backfill, config, dump_tables, make_history, open_db, run_verify
from tests.indexer.history import HistorySpec
from tests.localnet.conftest import LocalnetProcess

PAYMENTS = int(os.environ.get("GHOSTPAY_CRASH_PAYMENTS", "450"))
KILLS = int(os.environ.get("GHOSTPAY_CRASH_KILLS", "20"))
BATCH = 6  # small commits, so that the kills land between, inside and during many of them
FORK = multiprocessing.get_context("fork")


def _child(net: LocalnetProcess, url: str, commits: Connection) -> None:
    """The indexer in a forked process (already imported: restarts are quick); reports each commit."""
    logging.disable(logging.WARNING)
    indexer = Indexer(config(net, url, batch_size=BATCH), on_commit=lambda signatures, _: commits.send(len(signatures)))
    asyncio.run(indexer.run(once=True))
    os._exit(0)


def run_once(net: LocalnetProcess, url: str, rng: random.Random | None) -> bool:
    """A `--once` back-fill in a child process, SIGKILLed at a random point after 1-3 commits
    (never without `rng`); True if it was killed, False if it finished first."""
    receiver, sender = FORK.Pipe(duplex=False)
    child = FORK.Process(target=_child, args=(net, url, sender))
    child.start()
    sender.close()
    commits, target = 0, rng.randint(1, 3) if rng else None
    try:
        while True:
            receiver.recv()
            commits += 1
            if commits == target:
                assert rng is not None
                time.sleep(rng.uniform(0, 0.01))  # somewhere in the next fetch, apply or commit
                os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
                child.join()
                return True
    except EOFError:  # the child finished and closed its end
        child.join()
        assert child.exitcode == 0
        return False


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sigkill_at_random_points_then_restart_equals_a_clean_run(
    request: pytest.FixtureRequest, kind: str, chain: LocalnetProcess, tmp_path
) -> None:
    make_history(chain, HistorySpec(payments=PAYMENTS, seed=11))
    if kind == "sqlite":
        crashed, clean = (f"sqlite:///{tmp_path / name}" for name in ("crashed.db", "clean.db"))
    else:
        cluster = request.getfixturevalue("postgres")
        crashed, clean = cluster.create_database(), cluster.create_database()
    rng = random.Random(2024)
    kills = 0
    while kills < KILLS and run_once(chain, crashed, rng):
        kills += 1
    assert kills == KILLS, "the history ended before every kill point; raise GHOSTPAY_CRASH_PAYMENTS"
    assert run_once(chain, crashed, None) is False  # the restart that finishes
    backfill(chain, clean)
    assert dump_tables(open_db(crashed)) == dump_tables(open_db(clean))
    assert run_verify(chain, crashed).differences == []
