"""The kernel interface: every backend computes the same values and gradients (the scatter and
dense backends are the oracles), ``impl="auto"`` picks by size, and a backend written outside
the package with public names only runs on every layer."""

import runpy
from pathlib import Path

import pytest
import torch

from dnwgraph import StaticNeuralGraph, Wiring, WiringConv, WiringSpec, block_dag, create_model
from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels import KERNELS, auto, dispatch, effective_weight
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


def test_auto_is_dense_on_small_cpu_training_calls_and_sparse_otherwise():
    small = WiringConv(block_dag([4, 4]), ratio=4, impl="auto")
    plan = small.plan()  # 8 x 8: with 16 features, 1,024 multiply-adds
    few, many = torch.zeros(8, 16), torch.zeros(8, auto.DENSE_MACS_CPU // 64 + 1)
    assert kernel_for("auto", plan, few).name == "dense"
    assert kernel_for("auto", plan, many).name == "sparse"  # the features make it large
    with torch.no_grad():  # inference reuses the sparse plan
        assert kernel_for("auto", plan, few).name == "sparse"
    big = WiringConv(block_dag([150, 150]), ratio=500, impl="auto")
    assert kernel_for("auto", big.plan(), torch.zeros(300, 64)).name == "sparse"
    assert kernel_for("scatter", plan, few).name == "scatter"  # as asked
    with torch.no_grad():
        assert kernel_for("dense", plan, few).name == "dense"


def test_auto_picks_sparse_for_the_mnist1d_preset_levels(monkeypatch):
    """The regression that set the bound: at 2**14 rows x sources (no features counted) the
    MNIST-1D preset's levels ran densely, 1.3x the sparse training step, 1.6x its inference."""
    model = create_model("mnist1d_static")
    seen = []
    real = dispatch.kernel_for

    def spy(impl, plan, x):
        kernel = real(impl, plan, x)
        seen.append(kernel.name)
        return kernel

    monkeypatch.setattr(dispatch, "kernel_for", spy)
    model(torch.randn(128, *model.input_shape))
    assert seen and set(seen) == {"sparse"}


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
