"""The ``Example:`` blocks of the analysis docstrings run and stay correct."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["export", "metrics", "plots", "source"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"dnwgraph.analysis.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
