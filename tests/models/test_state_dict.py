"""load_state_dict: a state dict that does not fit is one DNWGraphError line naming the keys;
state dicts of the former module names (``graph.*``, ``input_op`` / ``level_ops``) are refused
like any other layout, not renamed."""

import re

import pytest
import torch
from torch import nn

from dnwgraph import WiringSpec, block_dag
from dnwgraph.errors import DNWGraphError
from dnwgraph.models import StaticNeuralGraph, create_model
from dnwgraph.models.state_dict import load_state_dict


def _refused(module, state, match, **kwargs):
    with pytest.raises(DNWGraphError, match=match) as info:
        load_state_dict(module, state, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_matching_state_dict_loads_every_tensor():
    torch.manual_seed(0)
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    result = load_state_dict(target, source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert torch.equal(target.weight, source.weight) and torch.equal(target.bias, source.bias)


def test_missing_and_unexpected_keys_are_counted_and_the_first_three_named():
    model = nn.Sequential(*(nn.Linear(2, 2) for _ in range(3)))
    state = {f"layer{k}": v for k, v in model.state_dict().items()}
    message = _refused(model, state, "^the state dict does not fit Sequential: ")
    assert message.endswith(
        "6 keys missing ('0.weight', '0.bias', '1.weight', ...), "
        "6 keys unexpected ('layer0.weight', 'layer0.bias', 'layer1.weight', ...)"
    )
    state = {**model.state_dict(), "extra": torch.zeros(1)}
    message = _refused(model, state, "fit Sequential: 1 key unexpected", what="x")
    assert message == "x does not fit Sequential: 1 key unexpected ('extra')"


def test_not_strict_returns_the_keys_that_did_not_match():
    model = nn.Linear(2, 2)
    result = load_state_dict(model, {"weight": torch.ones(2, 2)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == []
    assert torch.equal(model.weight, torch.ones(2, 2))


def test_not_strict_refuses_a_state_dict_that_shares_no_key():
    model = nn.Linear(2, 2)
    before = model.weight.detach().clone()
    message = _refused(
        model,
        {"conv.weight": torch.ones(2, 2)},
        "^w shares no key with Linear ",
        strict=False,
        what="w",
    )
    assert "2 keys missing ('weight', 'bias'), 1 key unexpected ('conv.weight')" in message
    assert torch.equal(model.weight, before)
    # one shared key is a partial load, as torch's strict=False
    assert load_state_dict(model, {"bias": torch.ones(2), "x": torch.ones(1)}, strict=False)
    assert torch.equal(model.bias, torch.ones(2))
    # an empty module or an empty state dict has nothing to share
    assert load_state_dict(nn.ReLU(), {"x": torch.ones(1)}, strict=False)
    assert load_state_dict(model, {}, strict=False).missing_keys == ["weight", "bias"]


def test_a_tensor_of_another_shape_names_the_key_and_both_shapes():
    model = nn.Linear(2, 3)
    state = {"weight": torch.zeros(3, 4), "bias": torch.zeros(3)}
    for strict in (True, False):
        message = _refused(model, state, r"size mismatch for weight", strict=strict)
        assert re.search(r"torch.Size\(\[3, 4\]\).*torch.Size\(\[3, 2\]\)", message)


def test_the_static_models_former_graph_keys_are_refused():
    """Up to 0.2 the executor was ``model.graph``: its keys are now simply another layout."""
    torch.manual_seed(0)
    model = StaticNeuralGraph(block_dag([2, 3, 2]), WiringSpec(6, node_op="conv1d"), num_classes=3)
    former = {k.replace("executor.", "graph.", 1): v for k, v in model.state_dict().items()}
    message = _refused(model, former, "does not fit StaticNeuralGraph")
    assert "missing ('executor.conv.edge_weight'" in message
    assert "unexpected ('graph.conv.edge_weight'" in message


def test_the_mobilenet_stages_former_input_op_and_level_ops_keys_are_refused():
    model = create_model("mobilenetv1_dnw_x225", stages=((4, 6, 1, 1), (6, 8, 2, 2)))
    former = {
        re.sub(r"\.node_ops\.0\.", ".input_op.", k).replace(".node_ops.1.", ".level_ops.0."): v
        for k, v in model.state_dict().items()
    }
    message = _refused(model, former, "does not fit MobileNetV1DNW: ")
    assert "missing ('stages.0.node_ops.0.norm.weight'" in message
    assert "unexpected ('stages.0.input_op.norm.weight'" in message
