"""Backward passes without a second derivative say so in one DNWGraphError, for every impl;
the first derivative taken with ``create_graph=True`` keeps its value."""

import pytest
import torch

from dnwgraph import WiringConv, block_dag, create_model
from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels.first_order import tie


@pytest.mark.parametrize("impl", ["auto", "sparse", "dense", "scatter"])
def test_a_static_model_refuses_a_second_derivative_in_one_line(impl):
    torch.manual_seed(0)
    model = create_model("mnist1d_static", impl=impl).double()
    x = torch.randn(4, 40, dtype=torch.float64, requires_grad=True)
    (plain,) = torch.autograd.grad(model(x).square().sum(), x)
    (g,) = torch.autograd.grad(model(x).square().sum(), x, create_graph=True)
    torch.testing.assert_close(g.detach(), plain)  # the first derivative is exact
    with pytest.raises(DNWGraphError, match="no second derivative") as err:
        g.square().sum().backward()
    assert "\n" not in str(err.value)
    if impl in ("dense", "scatter"):
        assert "level executor of a static model" in str(err.value)


def test_the_fused_error_names_auto_and_the_layers_that_have_one():
    torch.manual_seed(0)
    conv = WiringConv(block_dag([32, 192, 192]), ratio=0.5)  # auto: too large to run densely
    x = torch.randn(416, 64, requires_grad=True)
    (g,) = torch.autograd.grad(conv(x).sum(), x, create_graph=True)
    with pytest.raises(DNWGraphError, match=r"impl='auto' for inference and for calls too large"):
        g.square().sum().backward()


def test_a_small_layer_under_auto_has_an_exact_second_derivative():
    torch.manual_seed(0)
    conv = WiringConv(block_dag([3, 4]), ratio=6).double()
    ref = WiringConv(block_dag([3, 4]), ratio=6, impl="scatter").double()
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    second = []
    for layer in (conv, ref):
        (g,) = torch.autograd.grad(layer(x).pow(3).sum(), x, create_graph=True)
        second.append(torch.autograd.grad(g.square().sum(), x)[0])
    torch.testing.assert_close(*second)


def test_tie_leaves_values_and_passes_by_without_create_graph():
    a, b = torch.randn(3), torch.randn(2, requires_grad=True)
    with torch.no_grad():  # as in a backward pass without create_graph: nothing tied
        out = tie([a, None], [b], "never raised")
    assert out[1] is None and out[0] is a
    assert tie([a], [torch.randn(2)], "nothing to tie to")[0] is a
    tied, none = tie([a, None], [b], "why")
    assert none is None and torch.equal(tied, a) and tied.requires_grad
    with pytest.raises(DNWGraphError, match="^why$"):
        tied.sum().backward()
