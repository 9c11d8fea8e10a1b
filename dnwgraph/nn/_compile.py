r""":class:`~dnwgraph.WiringConv` under :func:`torch.compile`: its fused aggregation as one
opaque custom operator (``dnwgraph::wiring_conv``) with a registered backward.

The selection, the plans and the sparse products are Python state and sparse tensors, which
Dynamo cannot trace (data-dependent sizes, ``.item()``, sparse layouts).  Compiled code calls
this operator instead: Dynamo and Inductor see one node with known output shape and dtype
(so a graph holds a whole model, ``fullgraph=True`` included, and the node ops around the
aggregation are fused), and at run time the node calls the layer's own eager code, with its
:class:`~dnwgraph.nn.plans.PlanCache`.  Numbers and gradients are those of eager mode.

The layer is found through an integer key (:func:`register`); the plan of a forward call is
handed to its backward through a token (:meth:`PlanCache.record
<dnwgraph.nn.plans.PlanCache.record>`), since a compiled graph carries tensors only.
"""

import itertools
import weakref
from typing import Any

import torch
from torch import Tensor

from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.aggregate import aggregate_backward, aggregate_forward

_LAYERS: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
_KEYS = itertools.count()


def register(layer: Any) -> int:
    """A key under which compiled code finds ``layer`` (held weakly)."""
    key = next(_KEYS)
    _LAYERS[key] = layer
    return key


def _layer(key: int) -> Any:
    layer = _LAYERS.get(key)
    if layer is None:  # only a graph that outlived its layer gets here
        raise DNWGraphError(f"the WiringConv of this compiled graph is gone (key {key})")
    return layer


@torch.library.custom_op("dnwgraph::wiring_conv", mutates_args=())
def wiring_conv(
    x: Tensor,
    edge_weight: Tensor,
    add_to: Tensor | None,
    edge_index: Tensor | None,
    layer: int,
    group: int | None,
    first_row: int,
    out_rows: int,
    out_dtype: torch.dtype,
    record: bool,
) -> tuple[Tensor, Tensor]:
    """``(add_to +) A X`` of layer ``layer`` for its current weights, and the token of the
    plan used (``0`` unless ``record``, which keeps the plan for the backward pass).
    ``edge_weight`` is the layer's own parameter (an input so that gradients reach it)."""
    conv = _layer(layer)
    if edge_index is not None:
        conv._check_edge_index(edge_index)
    plan = conv.plan(group, first_row)
    out = aggregate_forward(x, plan, add_to, out_dtype)
    token = conv.plan_cache.record(plan) if record else 0
    return out, torch.tensor(token)


@wiring_conv.register_fake
def _(x, edge_weight, add_to, edge_index, layer, group, first_row, out_rows, out_dtype, record):
    out = x.new_empty(out_rows, x.size(1), dtype=out_dtype)
    return out, torch.empty((), dtype=torch.long, device="cpu")


@torch.library.custom_op("dnwgraph::wiring_conv_backward", mutates_args=())
def wiring_conv_backward(
    grad_out: Tensor,
    x: Tensor,
    token: Tensor,
    layer: int,
    x_grad: bool,
    weight_grad: bool,
    weight_dtype: torch.dtype,
    num_weights: int,
) -> tuple[Tensor, Tensor]:
    """Gradients for ``x`` and the edge weights with the plan of the forward call ``token``
    (empty tensors for those not asked for)."""
    plan = _layer(layer).plan_cache.recorded(int(token))
    grad_x, grad_w = aggregate_backward(grad_out, x, plan, x_grad, weight_grad, weight_dtype)
    empty = x.new_empty(0)
    return (grad_x if grad_x is not None else empty, grad_w if grad_w is not None else empty)


@wiring_conv_backward.register_fake
def _(grad_out, x, token, layer, x_grad, weight_grad, weight_dtype, num_weights):
    grad_x = torch.empty_like(x) if x_grad else x.new_empty(0)
    grad_w = x.new_empty(num_weights if weight_grad else 0, dtype=weight_dtype)
    return grad_x, grad_w


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    x, edge_weight, add_to, _, layer = inputs[:5]
    ctx.save_for_backward(x, output[1])
    ctx.layer = layer
    ctx.weight = (edge_weight.dtype, edge_weight.numel())
    ctx.add_dtype = None if add_to is None else add_to.dtype


def _backward(ctx: Any, grad_out: Tensor, _token_grad: Any) -> tuple[Tensor | None, ...]:
    x, token = ctx.saved_tensors
    need_x, need_w, need_add = ctx.needs_input_grad[:3]
    grad_x, grad_w = torch.ops.dnwgraph.wiring_conv_backward(
        grad_out, x, token, ctx.layer, need_x, need_w, *ctx.weight
    )
    grad_add = grad_out.to(ctx.add_dtype) if need_add else None
    return (grad_x if need_x else None, grad_w if need_w else None, grad_add) + (None,) * 7


wiring_conv.register_autograd(_backward, setup_context=_setup_context)
