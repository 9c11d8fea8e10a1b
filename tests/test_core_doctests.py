"""Every ``Example:`` in the core modules runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "dnwgraph.errors",
    "dnwgraph._atomic",
    "dnwgraph.graph.wiring",
    "dnwgraph.graph.io",
    "dnwgraph.graph.convert",
    "dnwgraph.graph.generators",
    "dnwgraph.select.topk",
    "dnwgraph.select.strategies",
    "dnwgraph.nn.aggregate",
    "dnwgraph.nn.wiring_conv",
    "dnwgraph.nn.spec",
    "dnwgraph.nn.levels",
    "dnwgraph.models.registry",
    "dnwgraph.models.views",
    "dnwgraph.models.compact",
    "dnwgraph.models.pretrained",
    "dnwgraph.train.distributed",
    "dnwgraph.train.launch",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
