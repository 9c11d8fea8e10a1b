r"""Compact inference: drop every node that cannot affect the outputs, run a fixed sparse graph.

After training, a learned wiring is fixed: the top-k never changes again, and many nodes are
dead — nothing reaches them from an input, or nothing they compute reaches an output. The
compact model keeps only the nodes that matter and runs exactly the selected edges with the
``complete`` selection (no top-k per call), so it is smaller and gives the same outputs.

What compaction needs of a model is declared as protocols, not probed by attribute names:
:class:`Subgraphable` (one wiring, restricted to a node mask: :class:`~dnwgraph.StaticNeuralGraph`
and the graph models built on it), :class:`CompactsPerWiring` (several wirings, each compacted
on its own: :class:`~dnwgraph.models.MobileNetV1DNW`) and, optionally, :class:`NodeValues`
(the values of the nodes for one input, to keep the constant nodes that matter).
"""

from __future__ import annotations

from typing import Protocol, cast, runtime_checkable

import torch
from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.models.views import WiringView, _structure, liveness, wiring_views
from dnwgraph.nn import WiringConv

__all__ = ["Subgraphable", "CompactsPerWiring", "NodeValues", "keep_mask", "compact"]


@runtime_checkable
class Subgraphable(Protocol):
    """A model with one learned wiring that can be restricted to some of its nodes."""

    def subgraph(self, node_mask: Tensor) -> nn.Module:
        """The model over the kept nodes (``node_mask: BoolTensor [N]``) and selected edges."""
        ...


@runtime_checkable
class CompactsPerWiring(Protocol):
    """A model with several learned wirings that compacts each of them."""

    def compact_wirings(self) -> nn.Module:
        """A copy whose every wiring holds only its selected edges (same outputs)."""
        ...


@runtime_checkable
class NodeValues(Protocol):
    """A model that reports its nodes' values for one input (node-first, ``[N, B, *]``)."""

    def node_outputs(self, x: Tensor) -> Tensor:
        """What every node computes, :math:`Z_v`."""
        ...

    def node_inputs(self, x: Tensor) -> Tensor:
        """What every node reads from its in-edges, :math:`I_v`."""
        ...


def _edges_into(keep: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    """Nodes with at least one selected edge into a kept node."""
    hits = torch.zeros(keep.numel(), dtype=torch.long).index_add_(0, src, keep[dst].long())
    return hits > 0


@torch.no_grad()
def _nonzero_constants(model: nn.Module, example: Tensor) -> tuple[Tensor, Tensor]:
    """Which nodes output (``Z_v``) and which read out (``I_v``) a non-zero value for ``example``
    (eval mode). For nodes no input reaches, these values do not depend on the input."""
    was_training = model.training
    model.eval()
    try:
        values = cast(NodeValues, model)
        z = values.node_outputs(example)
        i = values.node_inputs(example)
    finally:
        model.train(was_training)
    n = z.size(0)
    return z.reshape(n, -1).abs().amax(1).cpu() > 0, i.reshape(n, -1).abs().amax(1).cpu() > 0


def _probe(model: nn.Module, example_input: Tensor | None) -> Tensor | None:
    if example_input is not None:
        return example_input
    shape = getattr(model, "input_shape", None)
    if shape is None:
        return None
    param = next(model.parameters())
    return torch.zeros(1, *shape, device=param.device, dtype=param.dtype)


def keep_mask(model: nn.Module, example_input: Tensor | None = None) -> Tensor:
    r"""The nodes :func:`compact` keeps, ``BoolTensor [N]``, for a single-wiring model.

    A node is kept when it is **live** — it receives from an input and reaches an output over
    the selected edges (fixed points of one-hop propagation, so chains of dead nodes go at
    once) — or when it is a *constant* node that matters: no input reaches it, so its output
    :math:`Z_v = f_v(\cdot)` does not depend on the data, yet it is non-zero and feeds a kept
    node (or it is an output node whose read-out :math:`I_v` is non-zero). Constants are
    measured once with ``example_input`` (default: zeros of ``model.input_shape``); without
    either, every constant node that reaches an output is kept (always exact, less compact).

    Raises:
        TypeError: a model with more or fewer than one ``WiringConv``.

    Examples:
        >>> from dnwgraph import StaticNeuralGraph, Wiring, WiringSpec
        >>> w = Wiring([(0, 2), (1, 3), (2, 4)], input_nodes=[0, 1], output_nodes=[4])
        >>> spec = WiringSpec(1.0, "complete", node_op="neuron")
        >>> model = StaticNeuralGraph(w, spec, input_shape=(2,))
        >>> keep_mask(model).tolist()  # 1 -> 3 reaches no output
        [True, False, True, False, True]
    """
    views = wiring_views(model)
    if len(views) != 1:
        raise DNWGraphTypeError(
            f"compact handles models with one learned wiring (got {len(views)}: "
            f"{[v.module for v in views]})"
        )
    view = views[0]
    receives, reaches = liveness(view)
    keep = receives & reaches
    constant = ~receives
    example = _probe(model, example_input)
    if example is None or not isinstance(model, NodeValues):
        return keep | (constant & reaches)
    z_nonzero, i_nonzero = _nonzero_constants(model, example)
    keep = keep | (constant & view.node_mask(view.output_nodes) & i_nonzero)
    (src, dst), _ = view.selected()
    while True:
        new = keep | (constant & z_nonzero & _edges_into(keep, src, dst))
        if torch.equal(new, keep):
            return keep
        keep = new


def _compact_conv(conv: WiringConv) -> WiringConv:
    view: WiringView = wiring_views(conv)[0]
    ei, w = view.selected()
    if ei.size(1) == 0:
        raise DNWGraphError("the layer selects no edge; there is nothing to compact")
    wiring = _structure(ei, view.num_nodes)
    sources = conv.source_groups
    groups = [sources.nodes(i) for i in range(len(sources))] or None
    new = WiringConv(wiring, ratio=1.0, selection="complete", source_groups=groups, impl=conv.impl)
    param = conv.edge_weight
    with torch.no_grad():
        new.edge_weight.copy_(w[new.edge_perm])
    return new.to(device=param.device, dtype=param.dtype).train(conv.training)


def compact(model: nn.Module, example_input: Tensor | None = None) -> nn.Module:
    r"""A smaller model with the same outputs, running the selected wiring as a fixed graph.

    * For a :class:`~dnwgraph.WiringConv`: a ``WiringConv`` whose candidates are the selected
      edges (same nodes, same weights, ``complete`` selection), so
      ``compact(conv)(x) == conv(x)`` for every ``x`` without a top-k per call.
    * For a model with one learned wiring and a ``subgraph(node_mask)`` method
      (:class:`Subgraphable`, e.g. :class:`~dnwgraph.StaticNeuralGraph`):
      ``model.subgraph(keep_mask(model))`` — every dead node (no input reaches it, or it
      reaches no output, iterated to a fixed point) is removed
      with its edges, unless it is a constant node whose non-zero value reaches a kept node (see
      :func:`keep_mask`). The result gives identical outputs in eval mode.
    * For a model with several wirings and a ``compact_wirings()`` method
      (:class:`CompactsPerWiring`, e.g. :class:`~dnwgraph.models.MobileNetV1DNW`): that
      method, which compacts each wiring.

    Args:
        model: a ``WiringConv`` or a model as above (left unchanged).
        example_input: one batch of inputs used to measure constant nodes (default: zeros of
            ``model.input_shape`` when the model has one).

    Returns:
        nn.Module: the compact model (same device, dtype and train/eval mode).

    Raises:
        TypeError: a model with neither ``subgraph`` nor ``compact_wirings``, or with several
            learned wirings and only ``subgraph``.
        ValueError: nothing left to run (no selected edge, or no output depends on an input).

    Examples:
        >>> from dnwgraph import Wiring, WiringConv
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=2)
        >>> small = compact(conv)
        >>> x = torch.randn(4, 3)
        >>> small.num_edges, torch.allclose(small(x), conv(x))
        (2, True)
    """
    if isinstance(model, WiringConv):
        return _compact_conv(model)
    if not isinstance(model, nn.Module):
        raise DNWGraphTypeError(
            f"compact expects a WiringConv or a model (got {type(model).__name__})"
        )
    if not isinstance(model, Subgraphable) and isinstance(model, CompactsPerWiring):
        return model.compact_wirings()
    if not isinstance(model, Subgraphable):
        raise DNWGraphTypeError(
            "compact needs a WiringConv or a model with a subgraph(node_mask) method (such as "
            "StaticNeuralGraph) or a compact_wirings() method (such as MobileNetV1DNW) "
            f"(got {type(model).__name__})"
        )
    return model.subgraph(keep_mask(model, example_input))
