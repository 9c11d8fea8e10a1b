"""WiringConv in float16 / bfloat16 and under autocast, against float64 on the same weights."""

import pytest
import torch

from dnwgraph import Wiring, WiringConv, block_dag, complete

IMPLS = ["sparse", "scatter", "dense"]
HALF = [torch.bfloat16, torch.float16]
#: relative error (norm of the difference / norm of the reference) allowed per dtype: a few
#: units of the dtype's rounding (2^-8 for bfloat16, 2^-11 for float16) after one product
REL = {torch.bfloat16: 1e-2, torch.float16: 2e-3}
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        ],
    ),
]


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


def reference(conv, x, g):
    """The same layer in float64 (weights upcast exactly), output and gradients."""
    ref = WiringConv(block_dag([4, 6, 6, 4]), ratio=conv.k, impl="scatter").double()
    ref.load_state_dict(conv.state_dict())
    ref.to(x.device)
    xr = x.detach().double().requires_grad_(True)
    out = ref(xr)
    (out * g.double()).sum().backward()
    assert torch.equal(ref.active_mask(), conv.active_mask())
    return out, xr.grad, ref.edge_weight.grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("impl", IMPLS)
def test_half_model_matches_float64(impl, dtype, device):
    torch.manual_seed(0)
    conv = WiringConv(block_dag([4, 6, 6, 4]), ratio=30, impl=impl).to(device, dtype)
    x = torch.randn(20, 3, 5, device=device, dtype=dtype, requires_grad=True)
    g = torch.randn(20, 3, 5, device=device, dtype=dtype)
    out = conv(x)
    (out * g).sum().backward()
    assert out.dtype == dtype and x.grad.dtype == dtype and conv.edge_weight.grad.dtype == dtype
    ref_out, ref_x, ref_w = reference(conv, x, g)
    assert rel(out, ref_out) < REL[dtype]
    assert rel(x.grad, ref_x) < REL[dtype]
    assert rel(conv.edge_weight.grad, ref_w) < REL[dtype]
    # the straight-through gradient reaches the unselected candidates in half too
    assert conv.edge_weight.grad[~conv.active_mask()].abs().sum() > 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("x_dtype", [torch.float32, "autocast"])
def test_autocast_matches_float64(impl, dtype, device, x_dtype):
    """float32 weights, autocast on: output in the autocast dtype, float32 weight gradient."""
    torch.manual_seed(0)
    conv = WiringConv(block_dag([4, 6, 6, 4]), ratio=30, impl=impl).to(device)
    x = torch.randn(20, 3, 5, device=device, requires_grad=True)
    g = torch.randn(20, 3, 5, device=device)
    with torch.autocast(torch.device(device).type, dtype=dtype):
        # x as a float32 tensor, or as what an autocast op before the layer would give
        out = conv(x if x_dtype == torch.float32 else x.to(dtype))
    assert out.dtype == dtype
    (out.float() * g).sum().backward()
    assert conv.edge_weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
    ref_out, ref_x, ref_w = reference(conv, x.to(dtype), g)
    assert rel(out, ref_out) < REL[dtype]
    assert rel(x.grad, ref_x) < REL[dtype]
    assert rel(conv.edge_weight.grad, ref_w) < REL[dtype]


@pytest.mark.parametrize("impl", ["sparse", "scatter"])
def test_half_sums_in_float32(impl):
    """3,000 unit messages into one node: a float16 running sum would stop at 2,048 (its
    spacing there is 2); summed in float32 the exact 3,000 comes back (representable)."""
    n = 3000
    wiring = Wiring(torch.stack([torch.arange(n), torch.full((n,), n)]), num_nodes=n + 1)
    conv = WiringConv(wiring, ratio=n, impl=impl).half()
    with torch.no_grad():
        conv.edge_weight.fill_(1.0)
    x = torch.ones(n + 1, 1, dtype=torch.float16, requires_grad=True)
    out = conv(x)
    assert out[n].item() == 3000.0
    g = torch.zeros_like(out)
    g[n] = 1.0
    (out * g).sum().backward()
    assert (conv.edge_weight.grad == 1).all() and (x.grad[:n] == 1).all()


@pytest.mark.parametrize("dtype", HALF)
def test_half_selection_equals_float32_selection(dtype):
    """Top-k of the rounded weights, ties broken by index, in half and in float32 alike."""
    torch.manual_seed(0)
    conv = WiringConv(complete(30, self_loops=True), ratio=100).to(dtype)  # many ties
    ref = WiringConv(complete(30, self_loops=True), ratio=100)
    ref.load_state_dict(conv.state_dict())
    assert torch.equal(conv.active_mask(), ref.active_mask())
