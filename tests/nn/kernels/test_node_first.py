"""Node ops on node-first views against the same modules on transposed (channel) inputs."""

import copy

import pytest
import torch
from torch import nn

from dnwgraph.nn.kernels import node_first

N, B = 5, 3
MODULES = {
    "instance2d": lambda: nn.InstanceNorm2d(N, affine=True),
    "instance1d": lambda: nn.InstanceNorm1d(N, affine=True),
    "instance2d_plain": lambda: nn.InstanceNorm2d(N),
    "instance2d_running": lambda: nn.InstanceNorm2d(N, affine=True, track_running_stats=True),
    "batch2d": lambda: nn.BatchNorm2d(N),
    "batch1d": lambda: nn.BatchNorm1d(N),
    "conv2d": lambda: nn.Conv2d(N, N, 3, padding=1, groups=N, bias=False),
    "conv2d_k5_bias": lambda: nn.Conv2d(N, N, 5, padding=2, groups=N),
    "conv1d": lambda: nn.Conv1d(N, N, 3, padding=1, groups=N, bias=False),
    "conv1d_dilated_bias": lambda: nn.Conv1d(N, N, 3, padding=2, dilation=2, groups=N),
    "conv1d_same": lambda: nn.Conv1d(N, N, 3, padding="same", groups=N, bias=False),
}


def randomize(module):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return module


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("name", sorted(MODULES))
def test_node_first_equals_transposed(name, contiguous, training):
    torch.manual_seed(0)
    a = randomize(MODULES[name]()).double().train(training)
    b = copy.deepcopy(a)
    spatial = (4,) if "1d" in name else (4, 6)
    x = torch.randn(N, B, *spatial, dtype=torch.float64)
    if not contiguous:  # e.g. a transposed view: the fallback path
        x = torch.randn(B, N, *spatial, dtype=torch.float64).transpose(0, 1)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = node_first.apply(a, xa)
    ref = b(xb.transpose(0, 1)).transpose(0, 1)
    assert out.shape == ref.shape == x.shape
    g = torch.randn(x.shape, dtype=torch.float64)
    (out * g).sum().backward()
    (ref * g).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(xa.grad, xb.grad)
    for (pname, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=pname)
    for (bname, p), q in zip(a.named_buffers(), b.buffers(), strict=True):
        torch.testing.assert_close(p, q, msg=bname)  # running statistics


@pytest.mark.parametrize("name", ["instance2d", "instance1d", "instance2d_plain"])
def test_node_first_without_autograd_equals_transposed(name):
    """Without a backward pass to record (inference), the instance norm runs as a layer norm
    over S with the affine parameters applied in place: the module's values still."""
    module = randomize(MODULES[name]()).double()
    spatial = (4,) if "1d" in name else (4, 6)
    x = torch.randn(N, B, *spatial, dtype=torch.float64)
    with torch.no_grad():
        ref = module(x.transpose(0, 1)).transpose(0, 1)
        out = node_first.apply(module, x)
    torch.testing.assert_close(out, ref)
    # parameters that need no gradient, outside no_grad: nothing to record either
    module.requires_grad_(False)
    assert not node_first.records_grad(module, x)
    torch.testing.assert_close(node_first.apply(module, x), ref)
    assert node_first.records_grad(module, x.requires_grad_(True))


def test_uncovered_modules_fall_back():
    x = torch.randn(N, B, 4, 4)
    conv = nn.Conv2d(N, 2 * N, 3, padding=1, groups=N)  # not single-channel: no view form
    assert node_first.conv(conv, x) is None
    norm = nn.InstanceNorm2d(N, track_running_stats=True)
    assert node_first.norm(norm, x) is None


def test_hooks_still_run():
    """A module with a forward hook is called as a module (the transposed layout)."""
    conv = nn.Conv2d(N, N, 3, padding=1, groups=N, bias=False)
    seen = []
    conv.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    x = torch.randn(N, B, 4, 4)
    out = node_first.apply(conv, x)
    assert seen == [(B, N, 4, 4)]
    torch.testing.assert_close(out, conv(x.transpose(0, 1)).transpose(0, 1))


def test_one_spatial_element_is_the_module_error_with_and_without_autograd():
    """InstanceNorm over one spatial element is undefined: the module raises, and so does the
    node-first form, in inference as in training."""
    norm = nn.InstanceNorm1d(N, affine=True)
    x = torch.randn(N, B, 1)
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        node_first.apply(norm, x.requires_grad_(True))
    with torch.no_grad(), pytest.raises(ValueError, match="more than 1 spatial element"):
        node_first.apply(norm, x)
