r"""The one aggregation call of a :class:`~dnwgraph.WiringConv`, and the adapters it needs.

:func:`aggregate` computes :math:`Y + A_{\mathcal{A}} X` for one call of a layer (a source
group, a range of output rows), whatever runs it:

* eager code: the plan of the current selection and the layer's backend
  (:func:`~dnwgraph.nn.kernels.auto.kernel_for`);
* :func:`torch.compile`: one opaque operator that runs the eager code
  (:mod:`~dnwgraph.nn.kernels.compiled`);
* :func:`torch.jit.trace`: the selected edges of the current weights become constants of the
  trace, and the product a gather and an ``index_add`` (plain ops, no sparse tensors; a
  ``scatter_add`` in :func:`torch.onnx.export` with ``dynamo=False``, which traces);
* ``torch_geometric.explain``: per-edge messages in the order of the caller's ``edge_index``
  through PyG's :meth:`~torch_geometric.nn.conv.MessagePassing.propagate`, so that the
  explainer's edge mask reaches the right edges.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dnwgraph._tracing import untraced
from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels.auto import kernel_for
from dnwgraph.nn.kernels.backends import effective_weight
from dnwgraph.nn.kernels.compiled import compiled_aggregate
from dnwgraph.nn.kernels.dtypes import accumulation_dtype, no_autocast, output_dtype
from dnwgraph.nn.kernels.planner import Rows, build_plan


def aggregate(
    layer: Any,
    x: Tensor,
    rows: Rows,
    add_to: Tensor | None = None,
    edge_index: Tensor | None = None,
    order: Tensor | None = None,
) -> Tensor:
    r""":math:`Y + A_{\mathcal{A}} X` for the call ``rows`` of ``layer`` (a
    :class:`~dnwgraph.WiringConv`), with its selection's gradient rule.

    Args:
        x (Tensor): source features ``[layer.source_groups.rows(rows.group), F]``.
        rows (Rows): the source group and output rows.
        add_to (Tensor, optional): :math:`Y` ``[rows.last - rows.first, F]``.
        edge_index (Tensor, optional): the caller's candidate edges (PyG's call), checked in
            compiled code, used by an explainer.
        order (LongTensor, optional): the layer's edge id of each edge of ``edge_index``
            (``None``: the layer's own order).

    Returns:
        Tensor: ``[rows.last - rows.first, F]``.

    Example:
        >>> from dnwgraph import Wiring, WiringConv
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2)]), ratio=2)
        >>> x = torch.ones(3, 1)
        >>> torch.equal(aggregate(conv, x, Rows(None, 0, 3)), conv(x))
        True
    """
    if layer.explain:
        return _explained(layer, x, rows, add_to, edge_index, order)
    if torch.compiler.is_compiling():
        return compiled_aggregate(layer, x, rows, add_to, edge_index)
    if torch.jit.is_tracing():
        return _traced(layer, x, rows, add_to)
    plan = build_plan(layer, rows)
    weight = layer.selection.weight(layer.edge_weight)  # edge-popup: its scores' gradient
    return kernel_for(layer.impl, plan, x).aggregate(x, weight, plan, add_to)


@torch.no_grad()
def accumulate_(layer: Any, out: Tensor, x: Tensor, rows: Rows) -> Tensor:
    r"""``out += A X`` in place, without autograd (inference), for a contiguous ``out``: the
    backend's in-place kernel, or :func:`aggregate` with ``add_to=out`` in compiled or traced
    code."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return out.copy_(aggregate(layer, x, rows, add_to=out))
    plan = build_plan(layer, rows)
    return kernel_for(layer.impl, plan, x).accumulate_(out, x, plan)


def _traced(layer: Any, x: Tensor, rows: Rows, add_to: Tensor | None) -> Tensor:
    with untraced():
        sel = build_plan(layer, rows).selected
    out_dtype = output_dtype(x, layer.edge_weight)
    acc = accumulation_dtype(out_dtype)
    with no_autocast(x.device):
        w = layer.edge_weight[sel.ids].to(acc).unsqueeze(1)
        messages = x.index_select(0, sel.cols).to(acc) * w
        if add_to is None:
            base = x.new_zeros(rows.last - rows.first, x.size(1), dtype=acc)
        else:
            base = add_to.to(acc)
        if torch.onnx.is_in_onnx_export():
            # ONNX has no index_add with repeated indices; ScatterElements(add) is the same sum
            index = sel.rows.unsqueeze(1).expand_as(messages)
            out = base.scatter_add(0, index, messages)
        else:
            out = base.index_add(0, sel.rows, messages)
    return out.to(out_dtype)


def _explained(
    layer: Any,
    x: Tensor,
    rows: Rows,
    add_to: Tensor | None,
    edge_index: Tensor | None,
    order: Tensor | None,
) -> Tensor:
    n = layer.num_nodes
    if edge_index is None or rows != Rows(None, 0, n):
        raise DNWGraphError(
            "explaining a WiringConv needs it called as conv(x, edge_index) (every output "
            "row): the explainer's edge mask is aligned with that edge_index"
        )
    if torch.compiler.is_compiling():
        raise DNWGraphError("explain a WiringConv in eager mode, not under torch.compile")
    ei = edge_index.to(layer.edge_index.device).long()
    mask = layer.active_mask()
    w = effective_weight(layer.edge_weight, mask, layer.straight_through_now)
    if order is not None:
        w = w.index_select(0, order)
    out_dtype = output_dtype(x, layer.edge_weight)
    acc = accumulation_dtype(out_dtype)
    with no_autocast(x.device):
        out = layer.propagate(ei, x=x.to(acc), edge_weight=w.to(acc), size=(x.size(0), n))
        if add_to is not None:
            out = add_to.to(acc) + out
    return out.to(out_dtype)
