r"""Backward passes without a second derivative that say so.

A custom autograd function whose backward is not itself differentiable must not hand back
gradients that quietly carry no graph, nor torch's generic error, when the caller asked for
a differentiable gradient (``create_graph=True``).  :func:`tie` ties such gradients to what
they depend on through a node whose own backward raises a
:class:`~dnwgraph.errors.DNWGraphError` that says why and what to use instead;
:func:`first_order` is torch's ``once_differentiable`` with that error in place of torch's.

Example:
    >>> class Square(torch.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x
    ...
    ...     @staticmethod
    ...     @first_order("Square has no second derivative; use x * x")
    ...     def backward(ctx, grad):
    ...         (x,) = ctx.saved_tensors
    ...         return 2 * x * grad
    >>> x = torch.tensor([3.0], requires_grad=True)
    >>> (g,) = torch.autograd.grad(Square.apply(x).sum() * x.sum(), x, create_graph=True)
    >>> g.tolist()  # the first derivative is exact
    [27.0]
    >>> g.sum().backward()
    Traceback (most recent call last):
    ...
    dnwgraph.errors.DNWGraphError: Square has no second derivative; use x * x
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from dnwgraph.errors import DNWGraphError


class _Raise(torch.autograd.Function):
    """Copies of the first ``count`` tensors, tied to the rest; backward raises ``message``.
    (Copies, not views: a backward may hand out views of a buffer it reuses in place.)"""

    @staticmethod
    def forward(ctx: Any, message: str, count: int, *tensors: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        ctx.message = message
        return tuple(t.clone() for t in tensors[:count])

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> None:  # type: ignore[override]
        raise DNWGraphError(ctx.message)


def tie(
    gradients: Sequence[Tensor | None], depends_on: Sequence[Any], message: str
) -> list[Tensor | None]:
    """``gradients``, the same values; while autograd records (a backward pass with
    ``create_graph=True``) and one of ``depends_on`` requires a gradient, a second derivative
    through them raises a ``DNWGraphError(message)`` instead of passing them by."""
    present = [g for g in gradients if g is not None]
    inputs = [t for t in depends_on if isinstance(t, Tensor) and t.requires_grad]
    if not torch.is_grad_enabled() or not present or not inputs:
        return list(gradients)
    tied = iter(_Raise.apply(message, len(present), *present, *inputs))
    return [None if g is None else next(tied) for g in gradients]


def first_order(message: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate an autograd function's ``backward(ctx, *grads)``: it runs without autograd,
    and a second derivative through its gradients raises ``DNWGraphError(message)``
    (:func:`tie`, on the incoming gradients)."""

    def decorate(backward: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(backward)
        def wrapper(ctx: Any, *grads: Any) -> Any:
            with torch.no_grad():
                out = backward(ctx, *grads)
            single = not isinstance(out, tuple)
            outs = (out,) if single else out
            tensors = [o if isinstance(o, Tensor) else None for o in outs]
            tied = tie(tensors, grads, message)
            outs = tuple(t if isinstance(o, Tensor) else o for t, o in zip(tied, outs, strict=True))
            return outs[0] if single else outs

        return wrapper

    return decorate
