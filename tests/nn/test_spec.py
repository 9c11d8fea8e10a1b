"""A WiringSpec builds the same layers as the separate keyword arguments it replaces."""

from __future__ import annotations

import pytest
import torch

from dnwgraph import DiscreteTimeNeuralGraph, StaticNeuralGraph, Wiring
from dnwgraph.errors import DNWGraphTypeError
from dnwgraph.models.mobilenet import DNWClassifier, DNWStage
from dnwgraph.nn import LevelExecutor, WiringSpec
from dnwgraph.nn.spec import as_spec

WIRING = Wiring([(0, 2), (1, 2), (2, 3), (0, 3), (1, 4), (3, 4)], output_nodes=[4])
KWARGS = dict(node_op="neuron", node_op_options={"activation": "tanh"}, impl="scatter")


def _same(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(x), b(x))
    assert repr(a) == repr(b)


def test_level_executor_with_a_spec_equals_the_keywords():
    torch.manual_seed(0)
    old = LevelExecutor(WIRING, 4, "random", seed=3, **KWARGS)
    new = LevelExecutor(WIRING, WiringSpec(4, "random", selection_options={"seed": 3}, **KWARGS))
    assert old.spec == new.spec
    assert torch.equal(old.conv.active_mask(), new.conv.active_mask())
    _same(old, new, torch.randn(5, 3))


@pytest.mark.parametrize(
    ("cls", "extra"),
    [(StaticNeuralGraph, {}), (DiscreteTimeNeuralGraph, {"norm": "none", "readout": "mean"})],
)
def test_graph_models_take_a_spec(cls, extra):
    spec = WiringSpec(0.5, node_op="neuron", scope="per_node")
    old = cls(WIRING, 0.5, node_op="neuron", scope="per_node", num_classes=3, **extra)
    new = cls(WIRING, spec, num_classes=3, **extra)
    _same(old, new, torch.randn(6, 2))


def test_mobilenet_stages_take_a_spec():
    old, new = (
        DNWStage(4, 6, 2, 2, 20, impl="dense"),
        DNWStage(4, 6, 2, 2, WiringSpec(20, impl="dense")),
    )
    _same(old, new, torch.randn(4, 2, 8, 8))
    _same(DNWClassifier(8, 3, 0.5), DNWClassifier(8, 3, WiringSpec(0.5)), torch.randn(8, 2))


def test_a_spec_and_separate_arguments_together_is_one_error():
    with pytest.raises(
        DNWGraphTypeError, match=r"not both \(got a WiringSpec and \['impl', 'seed'\]\)"
    ):
        LevelExecutor(WIRING, WiringSpec(3), impl="dense", seed=1)
    with pytest.raises(DNWGraphTypeError, match=r"\['node_op_options'\]"):
        StaticNeuralGraph(WIRING, WiringSpec(3), node_op_options={"activation": "relu"})
    assert as_spec(WiringSpec(3), "dnw", impl="auto") == WiringSpec(3)


def test_spec_fields():
    spec = WiringSpec(2, "random", node_op_options=None, selection_options={"seed": 1})
    assert spec.node_op_options == {} and spec.conv_kwargs() == {
        "scope": None,
        "impl": "auto",
        "seed": 1,
    }
    assert spec.replace(impl="dense").impl == "dense" and spec.impl == "auto"
    with pytest.raises(Exception, match="cannot assign"):
        spec.ratio = 3  # type: ignore[misc]
