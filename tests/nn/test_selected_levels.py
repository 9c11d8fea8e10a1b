"""Inference by the selected edges' levels against the candidates' level loop: the same
outputs, built at the second call of a weight state, node ops read at every call, and the
cases that keep the candidates' levels."""

import pytest
import torch

from dnwgraph import Wiring, WiringSpec
from dnwgraph.models import StaticNeuralGraph
from dnwgraph.nn import LevelExecutor
from dnwgraph.nn.selected_levels import SelectedLevels
from tests.nn.kernels.test_pull import SpatialMean, deep_wiring

KEY = "selected levels"


def deep_executor(n=200, seed=0, ratio=0.1, **spec):
    spec = {"node_op": "neuron", **spec}
    ex = LevelExecutor(deep_wiring(n, seed), WiringSpec(ratio, **spec)).double().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ex.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return ex


def built(ex):
    return ex.conv.plan_cache.plans.get(KEY)


def test_the_selected_levels_are_fewer_and_give_the_candidates_outputs():
    ex = deep_executor()
    x = torch.randn(200, 3, dtype=torch.float64)
    rows = torch.tensor([199, 0, 100])
    with torch.no_grad():
        ref = ex.plain_forward(x)
        torch.testing.assert_close(ex(x), ref)  # first call: the candidates' levels
        assert built(ex) == "seen"
        torch.testing.assert_close(ex(x), ref)  # second: built, then reused
        selected = built(ex)
        assert isinstance(selected, SelectedLevels)
        assert len(selected.executor.node_ops) < len(ex.node_ops) / 2
        torch.testing.assert_close(ex(x, rows=rows), ref[rows])
        torch.testing.assert_close(ex(x, rows=slice(3, 150)), ref[3:150])
        assert built(ex) is selected


def test_first_level_inputs_and_pooled_sinks():
    ex = deep_executor(node_op="conv2d")
    first, sinks = ex.groups[0], torch.tensor([5, 17, 101, 199])
    x0 = torch.randn(first.numel(), 2, 4, 4, dtype=torch.float64)
    every = x0.new_zeros(200, 2, 4, 4).index_copy(0, first, x0)
    after = torch.ones(200, dtype=torch.bool).index_fill(0, first, False)
    pool = SpatialMean()
    with torch.no_grad():
        ref = ex.plain_forward(every)
        for _ in range(2):
            torch.testing.assert_close(ex(x0), ref[after])
            torch.testing.assert_close(ex(x0, rows=sinks, pool=pool), pool.pool(ref[sinks]))
    assert isinstance(built(ex), SelectedLevels)


def test_node_ops_changed_in_place_are_read_at_every_call():
    ex = deep_executor(node_op="conv1d", node_op_options={"norm": "batch"})
    x = torch.randn(200, 4, 6, dtype=torch.float64)
    with torch.no_grad():
        ex(x), ex(x)
        selected = built(ex)
        for step, op in enumerate(ex.node_ops):  # the edge weights stay: the same build
            op.conv.weight.mul_(1.5)
            op.norm.running_var.data.add_(step)  # through .data too
        torch.testing.assert_close(ex(x), ex.plain_forward(x))
    assert built(ex) is selected


def test_new_edge_weights_start_again():
    ex = deep_executor()
    x = torch.randn(200, 2, dtype=torch.float64)
    with torch.no_grad():
        ex(x), ex(x)
        ex.conv.edge_weight.copy_(torch.randn_like(ex.conv.edge_weight))
        torch.testing.assert_close(ex(x), ex.plain_forward(x))
        assert built(ex) == "seen"  # a new weight state: the candidates' levels first
        torch.testing.assert_close(ex(x), ex.plain_forward(x))
    assert isinstance(built(ex), SelectedLevels)


@pytest.mark.parametrize("node_op", ["neuron", "conv1d"])
def test_building_draws_nothing_from_the_callers_random_stream(node_op):
    ex = deep_executor(node_op=node_op)  # conv1d: the regrouped ops are new modules
    x = (
        torch.randn(200, 2, 5, dtype=torch.float64)
        if node_op == "conv1d"
        else torch.randn(200, 2, dtype=torch.float64)
    )
    state = torch.get_rng_state()
    with torch.no_grad():
        ex(x), ex(x)
    assert isinstance(built(ex), SelectedLevels)
    assert torch.equal(torch.get_rng_state(), state)


def test_inference_mode_and_another_dtype():
    ex = deep_executor()
    x = torch.randn(200, 2, dtype=torch.float64)
    with torch.no_grad():
        ref = ex.plain_forward(x)
    with torch.inference_mode():
        ex(x), ex(x)
        torch.testing.assert_close(ex(x), ref)
    ex.float()
    with torch.no_grad():
        ex(x.float())
        out = ex(x.float())
    assert out.dtype == torch.float32 and isinstance(built(ex), SelectedLevels)
    torch.testing.assert_close(out, ref.float(), rtol=1e-4, atol=1e-4)


def hooked_op(ex):
    calls = []
    ex.node_ops[3].register_forward_hook(lambda *args: calls.append(1))
    return calls


@pytest.mark.parametrize(
    "case",
    ["training", "grad", "hook", "complete", "random draw", "not a node op", "deep", "frozen"],
)
def test_the_cases_that_keep_the_candidates_levels(case):
    spec = {"complete": {"ratio": 1.0, "selection": "complete"}, "deep": {"ratio": 0.9}}
    spec = spec.get(case, {})
    ex = deep_executor(**spec)
    if case == "random draw":  # a selection that draws at every call has no weight state
        ex.conv.selection.cache_key = lambda: None
    if case == "not a node op":
        ex.node_ops[2] = torch.nn.Tanh()
    if case == "frozen":  # later weight edits are ignored, as on the candidates' levels
        ex.conv.active_mask()
        ex.conv.plan_cache.freeze()
    calls = hooked_op(ex) if case == "hook" else []
    ex.train(case == "training")
    x = torch.randn(200, 2, dtype=torch.float64)
    with torch.set_grad_enabled(case == "grad"):
        for _ in range(3):
            ex(x)
    # the selected edges keep most of the levels: marked once, the candidates' levels run
    assert built(ex) == ("candidates" if case == "deep" else None)
    assert len(calls) == (3 if case == "hook" else 0)  # the hook saw every call


def test_a_static_model_evaluates_a_deep_dag_by_its_selected_levels():
    n = 300
    wiring = deep_wiring(n, 4, shuffle=False)
    wiring = Wiring(wiring.edge_index, n, input_nodes=[0, 1], output_nodes=[n - 2, n - 1])
    model = StaticNeuralGraph(wiring, WiringSpec(0.1, node_op="neuron"), input_shape=(2,))
    x = torch.randn(16, 2)
    ref = model(x)  # train mode, the candidates' levels
    model.eval()
    with torch.no_grad():
        outs = [model(x) for _ in range(3)]
    assert isinstance(built(model.executor), SelectedLevels)
    for out in outs:
        torch.testing.assert_close(out, ref.detach(), rtol=1e-5, atol=1e-5)


def test_node_ops_that_cannot_be_read_as_tensors_keep_the_candidates_levels():
    # a parametrized weight is computed; a norm in training mode updates its statistics
    from torch.nn.utils.parametrizations import weight_norm

    x = torch.randn(200, 2, 5, dtype=torch.float64)
    for case in ("parametrized", "norm in training mode"):
        ex = deep_executor(node_op="conv1d", node_op_options={"norm": "batch"})
        for op in ex.node_ops:
            if case == "parametrized":
                weight_norm(op.conv)
            else:
                op.norm.train()
        with torch.no_grad():
            outs = [ex(x) for _ in range(3)]
        assert built(ex) is None, case
        if case != "parametrized":  # every call updated the statistics, as before
            assert int(ex.node_ops[0].norm.num_batches_tracked) == 3
        else:
            torch.testing.assert_close(outs[2], ex.plain_forward(x))


def test_a_node_op_module_replaced_rebuilds_or_keeps_the_candidates_levels():
    ex = deep_executor(node_op="conv1d")
    x = torch.randn(200, 2, 5, dtype=torch.float64)
    with torch.no_grad():
        ex(x), ex(x)
        before = built(ex)
        for op in ex.node_ops:  # what the configuration builds: regrouped again
            op.act = torch.nn.GELU().eval()
        torch.testing.assert_close(ex(x), ex.plain_forward(x))
        again = built(ex)
        assert isinstance(again, SelectedLevels) and again is not before
        for op in ex.node_ops:  # not what the configuration builds: not regrouped
            op.act = torch.nn.Tanh().eval()
        torch.testing.assert_close(ex(x), ex.plain_forward(x))
    assert built(ex) == "candidates"


def test_the_result_dtype_is_the_promoted_one_at_every_call():
    ex = deep_executor()  # float64 weights, float32 inputs: float64, as the level loop
    x = torch.randn(200, 2)
    with torch.no_grad():
        dtypes = [ex(x).dtype for _ in range(3)]
    assert dtypes == [torch.float64] * 3 and isinstance(built(ex), SelectedLevels)
