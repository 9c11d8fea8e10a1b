r"""What a running :func:`torch.jit.trace` should compute without recording (shape checks
and code-path choices, used by every subpackage).

A trace records tensor operations; Python values computed from a traced tensor's shape are
traced values too, and every ``if`` on one (a shape check, a choice of code path) converts it
to a Python ``bool`` with a ``TracerWarning``.  Checks and choices read :func:`static_shape`
instead, which the trace does not see, while shapes used in computations stay traced (so a
traced model accepts other batch sizes).  :func:`untraced` pauses the trace for a block.
:func:`in_func_transform` tells code paths a :mod:`torch.func` transform cannot enter
(hand-written ``autograd.Function`` classes, NumPy views of tensors) to step aside.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["untraced", "static_shape", "in_func_transform"]


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Pause a running :func:`torch.jit.trace`: what runs inside is computed, not recorded.

    Example:
        >>> with untraced():
        ...     n = torch.ones(3).size(0)
        >>> n
        3
    """
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


def static_shape(x: Tensor) -> tuple[int, ...]:
    """The shape of ``x`` as Python ints, not recorded by a running :func:`torch.jit.trace`
    (for checks and code-path choices, which a trace fixes anyway).

    Example:
        >>> static_shape(torch.zeros(2, 3))
        (2, 3)
    """
    if not torch.jit.is_tracing():
        return tuple(x.shape)
    with untraced():
        return tuple(x.shape)


def in_func_transform() -> bool:
    """Whether a :mod:`torch.func` transform (``vmap``, ``grad``, ``jacrev``, ...) is running.

    Example:
        >>> in_func_transform(), torch.func.vmap(lambda x: torch.tensor(in_func_transform()))(
        ...     torch.zeros(2)).tolist()
        (False, [True, True])
    """
    return bool(torch._C._are_functorch_transforms_active())
