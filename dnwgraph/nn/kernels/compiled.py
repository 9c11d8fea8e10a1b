r""":class:`~dnwgraph.WiringConv` under :func:`torch.compile`: its fused aggregation as one
opaque operator (``dnwgraph::wiring_conv``, differentiated by :class:`WiringConvOp` through
a second one, ``dnwgraph::wiring_conv_backward``).

The selection, the plans and the sparse products are Python state and sparse tensors, which
Dynamo cannot trace (data-dependent sizes, ``.item()``, sparse layouts).  Compiled code calls
this operator instead: Dynamo and Inductor see one node with known output shape and dtype
(so a graph holds a whole model, ``fullgraph=True`` included, and the node ops around the
aggregation are fused), and at run time the node calls the layer's own eager code, with its
:class:`~dnwgraph.nn.kernels.cache.PlanCache`.  Numbers and gradients are those of eager mode.

The layer is found through an integer handle (:func:`handle`); the plan of a forward call is
handed to its backward through a token (:meth:`PlanCache.record
<dnwgraph.nn.kernels.cache.PlanCache.record>`), since a compiled graph carries tensors only.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import torch
from torch import Tensor

from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels.dtypes import output_dtype
from dnwgraph.nn.kernels.fused import aggregate_backward, aggregate_forward
from dnwgraph.nn.kernels.planner import Rows, build_plan, candidate_order

# compiled graphs carry integers, not layers: a handle per layer, both ways held weakly (a
# copy of a layer is a layer of its own, with its own handle)
_LAYERS: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_HANDLES: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_NEXT = itertools.count()


@torch.compiler.assume_constant_result
def handle(layer: Any) -> int:
    """The integer under which compiled code finds ``layer`` (a constant of the graph,
    computed when it is traced).

    Example:
        >>> layer = torch.nn.Linear(1, 1)
        >>> handle(layer) == handle(layer) and _layer(handle(layer)) is layer
        True
    """
    key = _HANDLES.get(layer)
    if key is None:
        key = _HANDLES[layer] = next(_NEXT)
        _LAYERS[key] = layer
    return key


def _layer(key: int) -> Any:
    layer = _LAYERS.get(key)
    if layer is None:  # only a graph that outlived its layer gets here
        raise DNWGraphError(f"the WiringConv of this compiled graph is gone (key {key})")
    return layer


# Registered with the low-level torch.library API and differentiated by an autograd.Function:
# a call costs about half of what torch.library.custom_op's wrappers cost (~60 against
# ~130 microseconds on a CPU), which matters at ten calls per training step.
_LIB = torch.library.Library("dnwgraph", "DEF")
_LIB.define(
    "wiring_conv(Tensor x, Tensor edge_weight, Tensor? add_to, Tensor? edge_index, int[] meta, "
    "ScalarType out_dtype) -> (Tensor, Tensor)"
)
_LIB.define(
    "wiring_conv_backward(Tensor grad_out, Tensor x, Tensor token, int[] meta, "
    "ScalarType weight_dtype) -> (Tensor, Tensor)"
)


def _forward(
    x: Tensor,
    edge_weight: Tensor,
    add_to: Tensor | None,
    edge_index: Tensor | None,
    meta: list[int],
    out_dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """``(add_to +) A X`` of the layer for its current weights, and the token of the plan
    used.  ``meta`` is ``[layer, group (-1: none), first_row, out_rows, record]``; ``record``
    keeps the plan for the backward pass (the token is ``0`` otherwise).  ``edge_weight`` is
    the layer's own parameter (an input so that gradients reach it)."""
    layer, group, first_row, out_rows, record = meta
    conv = _layer(layer)
    if edge_index is not None:
        candidate_order(conv.edge_index, edge_index, conv.num_nodes)
    plan = build_plan(conv, Rows(None if group < 0 else group, first_row, first_row + out_rows))
    out = aggregate_forward(x, plan, add_to, out_dtype)
    token = conv.plan_cache.record(plan) if record else 0
    return out, torch.tensor(token)


def _forward_fake(x, edge_weight, add_to, edge_index, meta, out_dtype):
    out = x.new_empty(meta[3], x.size(1), dtype=out_dtype)
    return out, torch.empty((), dtype=torch.long, device="cpu")


def _backward(
    grad_out: Tensor, x: Tensor, token: Tensor, meta: list[int], weight_dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Gradients for ``x`` and the edge weights with the plan of the forward call ``token``
    (empty tensors for those not asked for).  ``meta`` is ``[layer, x_grad, weight_grad,
    num_weights]``."""
    layer, x_grad, weight_grad, _ = meta
    plan = _layer(layer).plan_cache.recorded(int(token))
    grad_x, grad_w = aggregate_backward(
        grad_out, x, plan, bool(x_grad), bool(weight_grad), weight_dtype
    )
    empty = x.new_empty(0)
    return (grad_x if grad_x is not None else empty, grad_w if grad_w is not None else empty)


def _backward_fake(grad_out, x, token, meta, weight_dtype):
    _, x_grad, weight_grad, num_weights = meta
    grad_x = torch.empty_like(x) if x_grad else x.new_empty(0)
    grad_w = x.new_empty(num_weights if weight_grad else 0, dtype=weight_dtype)
    return grad_x, grad_w


_LIB.impl("wiring_conv", _forward, "CompositeExplicitAutograd")
_LIB.impl("wiring_conv_backward", _backward, "CompositeExplicitAutograd")
torch.library.register_fake("dnwgraph::wiring_conv", _forward_fake, lib=_LIB)
torch.library.register_fake("dnwgraph::wiring_conv_backward", _backward_fake, lib=_LIB)


class WiringConvOp(torch.autograd.Function):
    """Autograd of ``dnwgraph::wiring_conv``: its backward is ``wiring_conv_backward`` with
    the token of the forward call."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        edge_weight: Tensor,
        add_to: Tensor | None,
        edge_index: Tensor | None,
        meta: list[int],
        out_dtype: torch.dtype,
    ) -> Tensor:
        out, token = torch.ops.dnwgraph.wiring_conv(
            x, edge_weight, add_to, edge_index, meta, out_dtype
        )
        ctx.save_for_backward(x, token)
        ctx.layer = meta[0]
        ctx.weight = (edge_weight.dtype, edge_weight.numel())
        ctx.add_dtype = None if add_to is None else add_to.dtype
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, token = ctx.saved_tensors
        need_x, need_w, need_add = ctx.needs_input_grad[:3]
        dtype, num_weights = ctx.weight
        grad_x, grad_w = torch.ops.dnwgraph.wiring_conv_backward(
            grad_out, x, token, [ctx.layer, int(need_x), int(need_w), num_weights], dtype
        )
        grad_add = grad_out.to(ctx.add_dtype) if need_add else None
        return grad_x if need_x else None, grad_w if need_w else None, grad_add, None, None, None


@torch.compiler.assume_constant_result
def _onnx_exporting() -> bool:
    # called, not folded: Dynamo folds torch.onnx.is_in_onnx_export() to False, which in a
    # strict export for ONNX would leave the operator for the ONNX translator to fail on
    return torch.onnx.is_in_onnx_export()


def compiled_aggregate(
    layer: Any, x: Tensor, rows: Rows, add_to: Tensor | None, edge_index: Tensor | None
) -> Tensor:
    """The aggregation of ``layer`` for ``rows`` as one opaque node of a compiled graph: the
    layer's eager code runs inside it (plans included).

    Raises:
        DNWGraphError: under :func:`torch.onnx.export` with ``dynamo=True``, which cannot
            translate the operator (it runs Python).
    """
    if _onnx_exporting():
        raise DNWGraphError(
            "torch.onnx.export(..., dynamo=True) cannot translate a WiringConv (its operator "
            "dnwgraph::wiring_conv runs Python): use torch.onnx.export(model, (x,), f, "
            "dynamo=False), which traces the selected edges, or torch.export.export"
        )
    w = layer.selection.weight(layer.edge_weight)
    out_dtype = output_dtype(x, w)
    if x.is_floating_point() and torch.is_autocast_enabled(x.device.type):
        x = x.to(out_dtype)
    record = torch.is_grad_enabled() and (
        x.requires_grad or w.requires_grad or (add_to is not None and add_to.requires_grad)
    )
    group = -1 if rows.group is None else rows.group
    meta = [handle(layer), group, rows.first, rows.last - rows.first, int(record)]
    return WiringConvOp.apply(x, w, add_to, edge_index, meta, out_dtype)
