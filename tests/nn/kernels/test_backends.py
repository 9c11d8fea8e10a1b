"""The kernel interface: every backend computes the same values and gradients (the scatter and
dense backends are the oracles), ``impl="auto"`` picks by size, and a backend written outside
the package with public names only runs on every layer."""

import runpy
from pathlib import Path

import pytest
import torch

from dnwgraph import StaticNeuralGraph, Wiring, WiringConv, WiringSpec, block_dag
from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels import KERNELS, auto, effective_weight
from dnwgraph.nn.kernels.auto import kernel_for

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "custom_kernel.py"


def run(conv, x):
    x = x.clone().requires_grad_()
    out = conv(x)
    out.backward(torch.ones_like(out).cumsum(0))
    return out.detach(), x.grad, conv.edge_weight.grad


@pytest.mark.parametrize("selection", ["dnw", "dnw_no_update", "complete"])
@pytest.mark.parametrize("impl", ["sparse", "dense", "auto"])
def test_every_backend_equals_the_scatter_oracle(impl, selection):
    torch.manual_seed(0)
    wiring = block_dag([3, 5, 4])
    ref = WiringConv(wiring, ratio=9, selection=selection, impl="scatter").double()
    conv = WiringConv(wiring, ratio=9, selection=selection, impl=impl).double()
    conv.load_state_dict(ref.state_dict())
    x = torch.randn(12, 4, dtype=torch.float64)
    for a, b in zip(run(conv, x), run(ref, x), strict=True):
        torch.testing.assert_close(a, b)
    # the straight-through rule by value: every candidate, or the selected edges only
    got = conv.edge_weight.grad != 0
    want = torch.ones_like(got) if selection != "dnw_no_update" else conv.active_mask()
    assert torch.equal(got, want)


def test_auto_is_dense_on_small_cpu_calls_and_sparse_on_large_ones():
    small = WiringConv(block_dag([4, 4]), ratio=4, impl="auto")
    plan = small.plan()
    assert kernel_for("auto", plan, torch.zeros(1)).name == "dense"
    big = WiringConv(block_dag([150, 150]), ratio=500, impl="auto")
    assert big.plan().num_nodes * big.plan().num_src > auto.DENSE_ELEMENTS_CPU
    assert kernel_for("auto", big.plan(), torch.zeros(1)).name == "sparse"
    assert kernel_for("scatter", plan, torch.zeros(1)).name == "scatter"  # as asked


def test_auto_is_the_default_and_bad_backends_name_the_valid_ones():
    conv = WiringConv(block_dag([2, 2]), ratio=2)
    assert conv.impl == "auto"
    with pytest.raises(DNWGraphError, match=r"'impl' must be one of \['auto', .*'sparse'"):
        WiringConv(block_dag([2, 2]), ratio=2, impl="fast")


def test_effective_weight_rules():
    w = torch.tensor([2.0, 3.0], requires_grad=True)
    m = torch.tensor([True, False])
    out = effective_weight(w, m, straight_through=False)
    out.sum().backward()
    assert out.tolist() == [2.0, 0.0] and w.grad.tolist() == [1.0, 0.0]


def test_a_backend_from_outside_the_package_runs_on_every_layer():
    runpy.run_path(str(EXAMPLE), run_name="example")
    assert "index_add" in KERNELS
    torch.manual_seed(0)
    wiring = Wiring([(0, 2), (1, 2), (0, 3), (2, 3), (1, 4), (3, 4)], num_nodes=5)
    ref = WiringConv(wiring, ratio=4, impl="scatter").double()
    conv = WiringConv(wiring, ratio=4, impl="index_add").double()
    conv.load_state_dict(ref.state_dict())
    x = torch.randn(5, 3, dtype=torch.float64)
    for a, b in zip(run(conv, x), run(ref, x), strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # the in-place path of inference
        torch.testing.assert_close(conv.accumulate_(torch.ones(5, 3).double(), x), 1 + ref(x))
    model = StaticNeuralGraph(
        block_dag([2, 4, 2]), WiringSpec(6, impl="index_add", node_op="neuron")
    )
    loss = model(torch.randn(8, 2)).square().mean()
    loss.backward()
    assert model.executor.conv.edge_weight.grad.abs().sum() > 0
