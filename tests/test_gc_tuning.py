"""`ghostpay.gc_tuning` changes the process's collector only for the work it wraps, errors included."""

from __future__ import annotations

import gc

import pytest

from ghostpay.gc_tuning import BULK_GEN0_THRESHOLD, gc_paused, gc_relaxed


def test_paused_then_restored_even_after_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused():
        assert not gc.isenabled()
        raise ValueError("decoding failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():  # an application that turned it off keeps it off
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_relaxed_threshold_then_restored_even_after_an_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), gc_relaxed():
        assert gc.get_threshold() == (BULK_GEN0_THRESHOLD, *before[1:])
        raise RuntimeError("back-fill interrupted")
    assert gc.get_threshold() == before
