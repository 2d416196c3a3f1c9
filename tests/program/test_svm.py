"""The in-process chain's docstring example runs (tests/test_doctests.py covers only the shipped package)."""

from __future__ import annotations

import doctest

from tests.program import svm


def test_svm_docstring_example() -> None:
    result = doctest.testmod(svm, report=True)
    assert result.attempted > 0 and result.failed == 0
