"""Every ``Example:`` of the training modules runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "dnwgraph.train.datasets",
    "dnwgraph.train.config",
    "dnwgraph.runs.checkpoint",
    "dnwgraph.runs.run",
    "dnwgraph.train.metrics",
    "dnwgraph.train.loop",
    "dnwgraph.train.optim",
    "dnwgraph.runs.rundir",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
