"""Every docstring example in the package runs (they are the modules' shortest documentation)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import ghostpay


def with_examples() -> list[str]:
    """The package's modules that hold at least one docstring example."""
    names = []
    for info in pkgutil.walk_packages(ghostpay.__path__, "ghostpay."):
        if info.name.endswith("__main__") or info.name == "ghostpay.program.ghostpay":  # the .so is no module
            continue
        module: ModuleType = importlib.import_module(info.name)
        if any(test.examples for test in doctest.DocTestFinder().find(module)):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", with_examples())
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), report=True)
    assert result.attempted > 0 and result.failed == 0
