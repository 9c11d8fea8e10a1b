"""One generic registry serves every named thing of the package."""

from __future__ import annotations

import pytest
from torch import nn

from dnwgraph.errors import DNWGraphError
from dnwgraph.registry import Registry


def test_register_get_list_create():
    reg: Registry[type] = Registry("shape")
    reg.register("b", dict)

    @reg.register("a")
    class A:
        def __init__(self, x: int = 0) -> None:
            self.x = x

    assert reg.list() == ["a", "b"] and reg.list("a*") == ["a"] and len(reg) == 2
    assert reg.get("a") is A and reg.create("a", x=3).x == 3 and "b" in reg
    assert reg.find("c") is None and [] not in reg


def test_errors_are_one_line_and_list_the_choices():
    reg: Registry[int] = Registry("thing")
    reg.register("one", 1)
    with pytest.raises(DNWGraphError, match=r"^unknown thing 'two'; choose one of \['one'\]$"):
        reg.get("two")
    with pytest.raises(DNWGraphError, match="unknown thing"):
        reg.get([])  # unhashable
    with pytest.raises(DNWGraphError, match="thing 'one' is already registered"):
        reg.register("one", 2)
    reg.register("one", 2, replace=True)
    assert reg.get("one") == 2


def test_every_registry_of_the_package_is_a_registry():
    from dnwgraph.cli import COMMANDS
    from dnwgraph.models.counting import COUNTERS
    from dnwgraph.models.registry import MODELS
    from dnwgraph.nn.node_ops import NODE_OPS
    from dnwgraph.select.strategies import SELECTIONS
    from dnwgraph.train.datasets import DATASETS, DataError

    for reg in (COMMANDS, COUNTERS, MODELS, NODE_OPS, SELECTIONS, DATASETS):
        assert isinstance(reg, Registry) and len(reg) > 0
    assert "train" in COMMANDS and "mnist1d" in DATASETS and "dnw" in SELECTIONS
    with pytest.raises(DataError, match="unknown dataset 'nope'; choose one of"):
        DATASETS.get("nope")


def test_sparsify_registers_no_counter():
    from dnwgraph import count_params, sparsify
    from dnwgraph.models.counting import COUNTERS

    before = COUNTERS.list()
    for _ in range(3):
        net = sparsify(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), 0.25, dense_first=False)
    assert COUNTERS.list() == before
    assert count_params(net) == 16 + 8 + 2 + 4  # kept weights (16 of 64, 4 of 16) + biases
