r"""Per-node norms and single-channel convolutions on node-first features, without transposes.

Features are ``[n, B, *S]`` (node-first, contiguous).  The PyTorch modules want the nodes as
channels, ``[B, n, *S]``; transposing costs a copy in, a copy out and, in backward, the same
again.  Every operation here is a view of the same memory instead:

* InstanceNorm (statistics per node and sample over :math:`S`): ``[1, n B, *S]``, one
  "channel" per (node, sample), with the node's affine parameters repeated :math:`B` times
  (this is how :func:`torch.nn.functional.instance_norm` computes it after its own reshape);
  without a backward pass to record, a layer norm over :math:`S` (the same statistics, a
  faster kernel) with the node's affine parameters applied in place;
* BatchNorm (statistics per node over :math:`B` and :math:`S`): ``[1, n, B S_0, *S_{1:}]``,
  the module itself on a view;
* single-channel convolution of every node (``groups=n``, kernel :math:`K_v`):
  ``[1, n B, H, W]`` with ``groups=n B`` and kernel :math:`K_v` repeated :math:`B` times
  (2-D), or a 2-D convolution of ``[1, n, B, L]`` with :math:`1 \times k` kernels (1-D).

:func:`apply` falls back to the transposed layout for a module or an input it does not cover
(a non-contiguous input, running statistics of an InstanceNorm, ...), so the maths stays the
modules' own; only the rounding of the reductions may differ.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dnwgraph._tracing import static_shape

_INSTANCE = (nn.InstanceNorm1d, nn.InstanceNorm2d)
_BATCH = (nn.BatchNorm1d, nn.BatchNorm2d)
_FULL = (torch.float32, torch.float64)


def _per_sample(p: Tensor | None, batch: int) -> Tensor | None:
    return None if p is None else p.repeat_interleave(batch, 0)


def norm(module: nn.Module, x: Tensor) -> Tensor | None:
    """``module`` (an InstanceNorm or BatchNorm over the ``n`` nodes) applied to ``x``
    ``[n, B, *S]``; ``None`` if not covered."""
    n, b = x.shape[:2]
    if isinstance(module, _INSTANCE):
        if module.track_running_stats:
            return None
        traced = torch.jit.is_tracing()
        # one element: module's error; no traced sizes in the test (a TracerWarning)
        fast = not traced and x.dtype in _FULL and math.prod(x.shape[2:]) > 1
        if fast and not records_grad(module, x):
            # statistics per (node, sample) over S are a layer norm over S, whose kernel is
            # faster without a backward pass; the node's affine parameters in place after it
            # (a trace keeps one graph; half precision keeps instance_norm's one rounding)
            out = F.layer_norm(x, x.shape[2:], eps=module.eps)
            if module.weight is not None:
                shape = (n,) + (1,) * (x.dim() - 1)
                out.mul_(module.weight.view(shape)).add_(module.bias.view(shape))
            return out
        flat = x.view(1, n * b, *x.shape[2:])
        weight, bias = _per_sample(module.weight, b), _per_sample(module.bias, b)
        momentum = module.momentum if module.momentum is not None else 0.0
        if traced:
            # F.instance_norm checks the spatial size with Python ifs on the traced sizes (a
            # TracerWarning per call, for a shape the trace fixes): record the op it wraps
            cudnn = torch.backends.cudnn.enabled
            out = torch.instance_norm(
                flat, weight, bias, None, None, True, momentum, module.eps, cudnn
            )
        else:
            out = F.instance_norm(
                flat,
                weight=weight,
                bias=bias,
                use_input_stats=True,
                momentum=momentum,
                eps=module.eps,
            )
        return out.view_as(x)
    if isinstance(module, _BATCH):
        return module(x.view(1, n, b * x.size(2), *x.shape[3:])).view_as(x)
    return None


def records_grad(module: nn.Module, x: Tensor) -> bool:
    """Whether autograd records ``module`` applied to ``x`` (``x`` or a parameter needs a
    gradient)."""
    return torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in module.parameters())
    )


def conv(module: nn.Module, x: Tensor) -> Tensor | None:
    """A depthwise ``Conv{1,2}d(n, n, k, groups=n)`` applied to ``x`` ``[n, B, *S]``;
    ``None`` if not covered."""
    n, b = x.shape[:2]
    nodes = static_shape(x)[0]  # the choice of path: not recorded by a trace
    if not isinstance(module, (nn.Conv1d, nn.Conv2d)) or module.groups != nodes:
        return None
    if module.in_channels != nodes or module.out_channels != nodes:
        return None
    if module.padding_mode != "zeros":
        return None
    if isinstance(module, nn.Conv1d) and isinstance(module.padding, tuple):
        # 1-D: a 2-D convolution of [1, n, B, L] with [n, 1, 1, k] kernels (one channel per
        # node, the samples as rows): no repeated kernels, 15-35% faster than grouped conv1d
        out = F.conv2d(
            x.unsqueeze(0),
            module.weight.unsqueeze(2),
            module.bias,
            (1, *module.stride),
            (0, *module.padding),
            (1, *module.dilation),
            n,
        )
        return out.view(n, b, *out.shape[3:])
    if torch.jit.is_tracing():  # groups=n B would be a constant of the trace (one batch size)
        return None
    fn = F.conv1d if isinstance(module, nn.Conv1d) else F.conv2d
    out = fn(
        x.view(1, n * b, *x.shape[2:]),
        module.weight.repeat_interleave(b, 0),
        _per_sample(module.bias, b),
        module.stride,
        module.padding,
        module.dilation,
        n * b,
    )
    return out.view(n, b, *out.shape[2:])


def hooked(module: nn.Module) -> bool:
    """Whether calling ``module`` runs hooks (e.g. the MAC counter's), which the functional
    form would skip."""
    glob = nn.modules.module
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or getattr(module, "_backward_pre_hooks", None)
        or getattr(glob, "_global_forward_hooks", None)
        or getattr(glob, "_global_forward_pre_hooks", None)
        or getattr(glob, "_global_backward_hooks", None)
    )


def apply(module: nn.Module, x: Tensor) -> Tensor:
    """``module`` (a norm or a single-channel convolution over the nodes) on ``x``
    ``[n, B, *S]``, as ``module(x.transpose(0, 1)).transpose(0, 1)`` computes it (and that
    way, when the module has hooks).

    Example:
        >>> conv = nn.Conv1d(3, 3, 3, padding=1, groups=3)
        >>> x = torch.randn(3, 2, 8)  # 3 nodes, batch 2, length 8
        >>> ref = conv(x.transpose(0, 1)).transpose(0, 1)
        >>> torch.allclose(apply(conv, x), ref, atol=1e-6)
        True
    """
    if x.is_contiguous() and not hooked(module):
        fn = norm if isinstance(module, _INSTANCE + _BATCH) else conv
        out = fn(module, x)
        if out is not None:
            return out
    return module(x.transpose(0, 1)).transpose(0, 1)
