"""The cyclic garbage collector during bulk work.

Decoding 10,000 agents or back-filling thousands of events allocates objects that all live until the
work ends. The collector's young-generation pass runs every 700 allocations by default and rescans
those survivors again and again (a third of a chain search's decoding, a tenth of a back-fill). Both
helpers restore the collector's settings when the work ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations between young collections during a back-fill (default 700). Measured over 100,000 events:
# 5,000 is as fast as 20,000 and keeps the indexer's memory flat; 100,000 let it grow with every batch.
BULK_GEN0_THRESHOLD = 5_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """No collection at all: for short bursts that build no reference cycles (decoding accounts)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def gc_relaxed(gen0_threshold: int = BULK_GEN0_THRESHOLD) -> Iterator[None]:
    """Young collections far apart: for long work (a back-fill) whose garbage must still be collected."""
    thresholds = gc.get_threshold()
    gc.set_threshold(gen0_threshold, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
