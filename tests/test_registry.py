"""One generic registry serves every named thing of the package."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

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
    reg.register("three", 3)
    with pytest.raises(DNWGraphError, match=r"\['one', 'three'\]; did you mean 'three'\?$"):
        reg.get("thre")  # the closest name, when one is close
    with pytest.raises(DNWGraphError, match=r"did you mean 'three'\?$"):
        reg.get("THREE")  # letter case ignored in the hint (the name itself is exact)
    with pytest.raises(DNWGraphError, match="thing 'one' is already registered"):
        reg.register("one", 2)
    reg.register("one", 2, replace=True)
    assert reg.get("one") == 2


def test_every_registry_of_the_package_is_a_registry():
    from dnwgraph.cli import COMMANDS
    from dnwgraph.graph.generators import RANDOM_KINDS
    from dnwgraph.models.counting import COUNTERS
    from dnwgraph.models.registry import MODELS
    from dnwgraph.nn.node_ops import ACTIVATIONS, NODE_OPS
    from dnwgraph.select.strategies import SELECTIONS
    from dnwgraph.train.datasets import DATASETS, DataError

    for reg in (
        ACTIVATIONS,
        COMMANDS,
        COUNTERS,
        MODELS,
        NODE_OPS,
        RANDOM_KINDS,
        SELECTIONS,
        DATASETS,
    ):
        assert isinstance(reg, Registry) and len(reg) > 0
    assert "train" in COMMANDS and "mnist1d" in DATASETS and "dnw" in SELECTIONS
    assert ACTIVATIONS.list() == ["gelu", "identity", "relu", "sigmoid", "tanh"]
    assert RANDOM_KINDS.list() == ["ba", "er", "ws"]
    # the torch layers are counted through the same registry as the package's own
    assert {"Conv2d", "Linear", "LazyBatchNorm2d", "WiringConv"} <= set(COUNTERS.list())
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


# ------------------------------------------ no name map outside the one Registry mechanism

#: Plain-dict name maps still in files that another change owns (the file formats); each
#: goes when it becomes a Registry, and the test below fails while one is listed but gone.
PENDING: dict[str, str] = {}


def _is_thing(value: object) -> bool:
    """A class or a function, or a tuple that starts with one (a factory and its options)."""
    if isinstance(value, tuple):
        return bool(value) and _is_thing(value[0])
    return isinstance(value, type) or inspect.isfunction(value) or inspect.isbuiltin(value)


def _is_key(key: object) -> bool:
    return isinstance(key, (str, type)) or (
        isinstance(key, tuple) and bool(key) and all(isinstance(k, type) for k in key)
    )


def _module_level_names(path: Path) -> list[str]:
    names = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def _plain_name_maps() -> set[str]:
    """Every module-level ``dict`` of the package whose keys are names (or classes) and whose
    values are all classes or functions: a map that belongs in a :class:`Registry`."""
    import dnwgraph

    root = Path(dnwgraph.__file__).parent
    found = set()
    for info in pkgutil.walk_packages(dnwgraph.__path__, "dnwgraph."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        path = Path(module.__file__ or "")
        if root not in path.parents:
            continue
        for name in _module_level_names(path):
            value = vars(module).get(name)
            if (
                type(value) is dict
                and value
                and all(_is_key(k) for k in value)
                and all(_is_thing(v) for v in value.values())
            ):
                found.add(f"{info.name}.{name}")
    return found


def test_every_name_map_is_a_registry():
    """A new ``NAME = {"x": SomeClass, ...}`` fails here: register it in a Registry instead
    (one-line errors that list the choices, ``list``, ``create``, a decorator)."""
    assert _plain_name_maps() == set(PENDING)


def test_the_name_map_scan_finds_one():
    """The scan above is not vacuous: it sees a map of names to classes, functions or
    ``(factory, options)`` pairs, and leaves data alone."""
    assert _is_thing(nn.ReLU) and _is_thing(_is_key) and _is_thing((_is_key, ("p",)))
    assert not _is_thing("tab:green") and not _is_thing({"norm": "none"}) and not _is_thing(())
    assert _is_key("relu") and _is_key((nn.Conv1d, nn.Conv2d)) and not _is_key(1)
