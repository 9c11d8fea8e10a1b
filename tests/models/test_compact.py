from __future__ import annotations

import pytest
import torch
from torch import nn

from dnwgraph import (
    StaticNeuralGraph,
    Wiring,
    WiringConv,
    WiringSpec,
    count_params,
    create_model,
    random_dag,
)
from dnwgraph.analysis import compact, dead_nodes, live_node_mask
from dnwgraph.models.compact import keep_mask

# inputs 0, 1; outputs 7, 8, 9.  0,1 -> 2 -> 7 is live and 1 -> 8 too; 2 -> 3 -> 4 reaches no
# output (one pruning pass would drop only 4); 5 -> 6 -> 8 starts at a node no input reaches;
# output 9 receives nothing.
EDGES = [(0, 2), (1, 2), (2, 7), (2, 3), (3, 4), (5, 6), (6, 8), (1, 8)]
DEAD = [3, 4, 5, 6, 9]


def hand_built() -> StaticNeuralGraph:
    torch.manual_seed(0)
    wiring = Wiring(EDGES, num_nodes=10, input_nodes=[0, 1], output_nodes=[7, 8, 9])
    model = StaticNeuralGraph(
        wiring, WiringSpec(1.0, "complete", node_op="neuron"), num_classes=3, input_shape=(2,)
    )
    with torch.no_grad():
        model.conv.edge_weight.normal_()
    return model.eval()


def set_bias(model: StaticNeuralGraph, node: int, value: float) -> None:
    for op, group in zip(model.executor.node_ops, model.executor.groups, strict=True):
        hit = (group == node).nonzero().view(-1)
        if hit.numel():
            with torch.no_grad():
                op.bias[hit] = value
            return
    raise AssertionError(f"node {node} has no node op")


def test_hand_built_removes_exactly_the_dead_nodes():
    model = hand_built()
    assert dead_nodes(model)["executor.conv"].tolist() == DEAD
    assert keep_mask(model).nonzero().view(-1).tolist() == [0, 1, 2, 7, 8]
    small = compact(model)
    assert small.num_nodes == 5 and small.conv.num_edges == 4
    assert small.conv.selection.name == "complete"
    x = torch.randn(16, 2)
    torch.testing.assert_close(small(x), model(x), rtol=0, atol=1e-6)
    assert count_params(small) < count_params(model)


def test_constant_nodes_that_matter_are_kept():
    model = hand_built()
    # node 5 receives nothing but outputs relu(0 + 1) = 1, which reaches output 8 through 6
    set_bias(model, 5, 1.0)
    set_bias(model, 6, 0.5)
    with torch.no_grad():
        model.conv.edge_weight.abs_()
    assert keep_mask(model).nonzero().view(-1).tolist() == [0, 1, 2, 5, 6, 7, 8]
    x = torch.randn(16, 2)
    torch.testing.assert_close(compact(model)(x), model(x), rtol=0, atol=1e-6)
    # dropping every dead node regardless would change the outputs: the check above can fail
    naive = model.subgraph(live_node_mask(model)["executor.conv"])
    assert not torch.allclose(naive(x), model(x))


def test_without_a_probe_constant_nodes_reaching_an_output_stay():
    model = hand_built()
    model.input_shape = None
    assert keep_mask(model).nonzero().view(-1).tolist() == [0, 1, 2, 5, 6, 7, 8, 9]
    x = torch.randn(4, 2)
    torch.testing.assert_close(compact(model)(x), model(x), rtol=0, atol=1e-6)
    # an explicit example input measures the constants again
    assert keep_mask(model, example_input=x).sum() == 5


def test_trained_random_model_keeps_its_outputs():
    torch.manual_seed(0)
    model = create_model("mnist1d_static", ratio=0.015)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    for _ in range(3):  # a few steps so that node ops and the wiring move away from init
        x, y = torch.randn(16, 40), torch.randint(0, 10, (16,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    small = compact(model)
    live = live_node_mask(model)["executor.conv"]
    assert int(live.sum()) <= small.num_nodes < model.num_nodes
    x = torch.randn(32, 40)
    torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)
    assert count_params(small) < count_params(model)
    # a fixed point: compacting again removes nothing
    assert compact(small).num_nodes == small.num_nodes


@pytest.mark.parametrize("name", ["mnist1d_static", "tiny_static"])
def test_compact_model_numbers_levels_as_ranges_and_runs_as_a_chain(name):
    """Removed nodes change the levels of the kept ones; the compact model is numbered level by
    level (output nodes last), so its executor runs the fused chain, as the full model does,
    and the outputs stay."""
    torch.manual_seed(0)
    model = create_model(name, ratio=0.02).eval()
    small = compact(model)
    ex = small.executor
    assert model.executor.chain is not None and ex.chain is not None
    starts = [int(g[0]) for g in ex.groups]
    assert starts == sorted(starts)
    for g in ex.groups:  # each level a range of ids
        assert torch.equal(g, torch.arange(int(g[0]), int(g[0]) + g.numel()))
    outputs = small.output_nodes
    assert torch.equal(outputs, torch.arange(small.num_nodes - outputs.numel(), small.num_nodes))
    x = torch.randn(4, *model.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_compact_conv_runs_the_selected_edges(impl):
    torch.manual_seed(0)
    wiring = random_dag("er", 25, seed=2)
    groups = wiring.levels()
    conv = WiringConv(wiring, ratio=0.3, source_groups=groups, impl=impl)
    small = compact(conv)
    assert small.num_edges == small.k == conv.k and small.impl == impl
    assert small.selection.name == "complete"
    x = torch.randn(25, 3)
    torch.testing.assert_close(small(x), conv(x))
    for i, g in enumerate(groups):
        torch.testing.assert_close(small(x[g], group=i), conv(x[g], group=i))


def test_models_with_several_wirings_compact_each():
    from dnwgraph.models import MobileNetV1DNW

    torch.manual_seed(0)
    model = MobileNetV1DNW(0.5, stages=((4, 6, 1, 1), (6, 8, 2, 2))).eval()
    small = compact(model)
    convs = [m for m in model.modules() if isinstance(m, WiringConv)]
    small_convs = [m for m in small.modules() if isinstance(m, WiringConv)]
    assert len(convs) == len(small_convs) >= 2
    assert [c.num_edges for c in small_convs] == [c.k for c in convs]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x))


def test_unsupported_models():
    with pytest.raises(TypeError, match="subgraph"):
        compact(nn.Sequential(WiringConv(Wiring([(0, 1), (1, 2)]), ratio=1)))
    with pytest.raises(TypeError, match="expects a WiringConv"):
        compact("model")


@pytest.mark.parametrize(
    "edges, inputs, outputs",
    [
        ([(0, 2), (0, 1), (2, 3)], [0], [1, 2]),  # output 2 has an out-edge: 1 goes last
        ([(0, 1), (1, 3), (2, 3), (0, 3)], [0, 1, 2], [3]),  # input 1 has an in-edge
    ],
)
def test_subgraph_renumbering_keeps_stem_channels_and_head_columns(edges, inputs, outputs):
    """The level-by-level numbering may order the input or output nodes unlike the old ids:
    their stem channels and head columns follow them, so the outputs stay."""
    torch.manual_seed(0)
    wiring = Wiring(edges, input_nodes=inputs, output_nodes=outputs)
    model = StaticNeuralGraph(
        wiring, WiringSpec(len(edges), node_op="neuron"), num_classes=2, input_shape=(len(inputs),)
    ).eval()
    with torch.no_grad():
        model.conv.edge_weight.normal_()
        model.head.weight.normal_()
    small = model.subgraph(torch.ones(wiring.num_nodes, dtype=torch.bool))
    x = torch.randn(5, len(inputs))
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x))
