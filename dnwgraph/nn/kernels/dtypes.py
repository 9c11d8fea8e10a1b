r"""Dtypes of an aggregation: half precision is summed in ``float32`` and rounded once;
under :func:`torch.autocast` the aggregation behaves like a matmul (``x`` is cast to the
autocast dtype, which is also the output's)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor

#: Dtypes aggregated in float32 (see the module docstring).
HALF_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype an aggregation of ``dtype`` features is computed in: ``float32`` for half
    types, else ``dtype`` itself.

    Example:
        >>> accumulation_dtype(torch.bfloat16), accumulation_dtype(torch.float64)
        (torch.float32, torch.float64)
    """
    return torch.float32 if dtype in HALF_DTYPES else dtype


def output_dtype(x: Tensor, weight: Tensor) -> torch.dtype:
    """Dtype of :math:`A X`: the autocast dtype when autocast is on for ``x``'s device (as for
    a matmul), else the promotion of the two dtypes."""
    device = x.device.type
    if x.is_floating_point() and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(x.dtype, weight.dtype)


def no_autocast(device: torch.device) -> Any:
    """A context without autocast on ``device`` (the kernels choose their dtypes)."""
    if not torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)
