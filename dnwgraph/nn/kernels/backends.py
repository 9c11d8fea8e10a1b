r"""The backends of an aggregation, one registry entry each: ``sparse`` (fused), ``scatter``
(per-edge messages) and ``dense`` (a masked matrix); :mod:`~dnwgraph.nn.kernels.auto` picks
one of them by size and device.

Every backend computes the same function of an :class:`~dnwgraph.nn.kernels.plan.AggregationPlan`:

.. math::
    \mathrm{out} = Y + A_{\mathcal{A}} X, \qquad
    \frac{\partial L}{\partial w_e} = \langle x_{c_e}, G_{r_e} \rangle
    \ \text{for every edge } e \text{ of the plan's gradient set}

and takes half precision and :func:`torch.autocast` the same way (summed in ``float32``,
rounded once).  ``scatter`` and ``dense`` are plain autograd ops (second derivatives
included): the oracles of ``sparse``, which has the speed.

A backend is a :class:`Kernel`; :data:`KERNELS` holds them by name.

Example:
    >>> {"sparse", "scatter", "dense"} <= set(KERNELS)
    True
    >>> KERNELS.get("dense").name
    'dense'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from dnwgraph.nn.kernels.dtypes import accumulation_dtype, no_autocast, output_dtype
from dnwgraph.nn.kernels.fused import accumulate_, wiring_matmul
from dnwgraph.nn.kernels.plan import AggregationPlan
from dnwgraph.registry import Registry

Aggregate = Callable[[Tensor, Tensor, AggregationPlan, "Tensor | None"], Tensor]


@dataclass(frozen=True)
class Kernel:
    """One backend: ``aggregate(x, edge_weight, plan, add_to)`` returns
    :math:`Y + A_{\\mathcal{A}} X` ``[plan.num_nodes, F]`` (``x``: ``[plan.num_src, F]``) with
    autograd to ``x``, ``edge_weight`` and ``add_to``; ``accumulate_(out, x, plan)`` adds
    :math:`A_{\\mathcal{A}} X` into ``out`` in place, without autograd (inference)."""

    name: str
    aggregate: Aggregate
    accumulate_: Callable[[Tensor, Tensor, AggregationPlan], Tensor]


KERNELS: Registry[Kernel] = Registry("kernel")
"""The backends by name (``sparse``, ``scatter``, ``dense``): ``KERNELS.register(name, kernel)``
adds one, which every layer then takes as ``impl=name``."""


def effective_weight(weight: Tensor, mask: Tensor, straight_through: bool) -> Tensor:
    r"""The masked weights :math:`w \odot m` with the selection's gradient rule: gradient 1 for
    every entry when ``straight_through`` (value :math:`w m`, and the unselected entries still
    get their gradient), else the plain product's (zero for unselected entries).

    Example:
        >>> w = torch.tensor([2.0, 3.0], requires_grad=True)
        >>> effective_weight(w, torch.tensor([True, False]), True).sum().backward()
        >>> w.grad.tolist()
        [1.0, 1.0]
    """
    m = mask.to(weight.dtype)
    if straight_through:
        return weight * m + (weight - weight.detach()) * (1 - m)
    return weight * m


def gradient_set_weights(weight: Tensor, plan: AggregationPlan) -> Tensor:
    r"""The weights of the plan's gradient set ``[len(plan.grad.ids)]`` (its edges, in its
    order): the plan's values (the selected weights it was built for, zero for the others)
    with the gradient of ``weight`` (1 for every edge of the set: straight-through where the
    set is every candidate).  A backend that sums
    :math:`\sum_e w_e\, x_{c_e}` over the gradient set with these weights computes
    :math:`A_{\mathcal{A}} X` and the plan's edge gradient by plain autograd.

    Example:
        >>> from dnwgraph import Wiring, WiringConv
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2)]), ratio=1)
        >>> with torch.no_grad():
        ...     _ = conv.edge_weight.copy_(torch.tensor([0.5, 3.0]))
        >>> gradient_set_weights(conv.edge_weight, conv.plan()).tolist()  # dnw: every edge
        [0.0, 3.0]
    """
    w = weight.index_select(0, plan.grad.ids)
    return w - w.detach() + plan.grad_set_values()


def _reference(dense: bool) -> Aggregate:
    def aggregate(
        x: Tensor, weight: Tensor, plan: AggregationPlan, add_to: Tensor | None
    ) -> Tensor:
        out_dtype = output_dtype(x, weight)
        # scatter-add sums in its dtype (float32 for half); BLAS sums in float32 by itself
        dtype = out_dtype if dense else accumulation_dtype(out_dtype)
        rows, cols = plan.grad.rows, plan.grad.cols
        with no_autocast(x.device):
            w, x = gradient_set_weights(weight, plan).to(dtype), x.to(dtype)
            if dense:
                a = x.new_zeros(plan.num_nodes, plan.num_src).index_put((rows, cols), w)
                out = a @ x
            else:  # per-edge messages [E, F], summed at their targets
                messages = w.unsqueeze(1) * x.index_select(0, cols)
                out = scatter(messages, rows, 0, dim_size=plan.num_nodes, reduce="sum")
            if add_to is not None:
                out = add_to.to(dtype) + out
        return out.to(out_dtype)

    return aggregate


def _accumulate_with(aggregate: Aggregate) -> Callable[[Tensor, Tensor, AggregationPlan], Tensor]:
    @torch.no_grad()
    def accumulate(out: Tensor, x: Tensor, plan: AggregationPlan) -> Tensor:
        # the values are the plan's; the weight is only where a gradient would go
        zero = plan.values.new_zeros(1).expand(plan.num_weights)  # no [E] memory per call
        return out.copy_(aggregate(x, zero, plan, out))

    return accumulate


def _sparse(x: Tensor, weight: Tensor, plan: AggregationPlan, add_to: Tensor | None) -> Tensor:
    return wiring_matmul(x, weight, plan, add_to=add_to)


KERNELS.register("sparse", Kernel("sparse", _sparse, accumulate_))
for _name, _dense in (("scatter", False), ("dense", True)):
    _fn = _reference(_dense)
    KERNELS.register(_name, Kernel(_name, _fn, _accumulate_with(_fn)))
