"""Every docstring example in the package runs (they are the modules' shortest documentation)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ghostpay

MODULES = sorted(m.name for m in pkgutil.walk_packages(ghostpay.__path__, "ghostpay.")
                 if not m.name.endswith("__main__") and m.name != "ghostpay.program.ghostpay")  # the .so, no module


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), report=True)
    assert result.failed == 0
