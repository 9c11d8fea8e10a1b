"""Whole presets in float16 / bfloat16 and under autocast, against float32 on the same weights.

Half precision rounds every activation, so whole-model errors are larger than one layer's
(tests/nn/test_wiring_conv_half.py): the tolerances below are relative errors (norm of the
difference over the norm of the float32 result) about twice the largest measured on CPU; the
recurrent preset backpropagates through 5 InstanceNorms and loses more.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from dnwgraph import create_model

HALF = [torch.bfloat16, torch.float16]
# (logits, gradients) per dtype and per kind of preset
TOL = {
    ("static", torch.bfloat16): (0.05, 0.25),
    ("static", torch.float16): (0.006, 0.08),
    ("discrete", torch.bfloat16): (0.06, 0.7),
    ("discrete", torch.float16): (0.008, 0.2),
}
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


def step(model, x, y):
    """Logits and every parameter's gradient (one vector) of a cross-entropy step."""
    model.zero_grad(set_to_none=True)
    out = model(x)
    F.cross_entropy(out.float(), y).backward()
    grads = torch.cat([p.grad.flatten().double() for p in model.parameters()])
    return out, grads


def check(name, impl, dtype, mode, device):
    torch.manual_seed(0)
    model = create_model(name, impl=impl).to(device)
    x = torch.randn(2, *model.input_shape, device=device)
    y = torch.randint(0, 10, (2,), device=device)
    if mode == "to":
        half = copy.deepcopy(model).to(dtype)
        ref = copy.deepcopy(half).float()  # the same rounded weights, in float32
        out, grads = step(half, x.to(dtype), y)
        ref_out, ref_grads = step(ref, x.to(dtype).float(), y)
        assert all(p.grad.dtype == dtype for p in half.parameters())
    else:
        with torch.autocast(torch.device(device).type, dtype=dtype):
            out, grads = step(model, x, y)
        assert all(p.grad.dtype == torch.float32 for p in model.parameters())
        ref_out, ref_grads = step(model, x, y)
    assert out.dtype == dtype and torch.isfinite(out).all() and torch.isfinite(grads).all()
    tol_out, tol_grad = TOL[(name.split("_")[1], dtype)]
    assert rel(out, ref_out) < tol_out
    assert rel(grads, ref_grads) < tol_grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["to", "autocast"])
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
@pytest.mark.parametrize("name", ["mnist1d_static", "mnist1d_discrete"])
def test_mnist1d_presets_in_half(name, impl, dtype, mode, device):
    check(name, impl, dtype, mode, device)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["to", "autocast"])
@pytest.mark.parametrize("dtype", HALF)
def test_tiny_static_in_half(dtype, mode, device):
    check("tiny_static", "sparse", dtype, mode, device)
