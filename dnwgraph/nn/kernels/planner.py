r"""From a layer's selected edges to the :class:`~dnwgraph.nn.kernels.plan.AggregationPlan` of
one call: which edges leave the source group the call aggregates, which reach the output rows
it computes, and which receive a gradient.

A :class:`~dnwgraph.WiringConv` call aggregates the edges leaving a *source group* (all nodes,
or one of the layer's ``source_groups``, e.g. a level of a DAG) into a range of output rows
:math:`[r_0, r_1)`.  A plan holds, for that call and the current selection:

* ``selected``: the selected edges among them, as (output row, source row, edge id);
* ``grad``: the edges that get a gradient: every candidate among them when the selection is
  straight-through for this weight state, else the selected edges only;
* ``values``: the selected weights (the sparse matrix is built from them once).

What depends on the edges alone (the edges of each group, of each row range) is kept per
device in the plan cache's structure dict; what depends on the selection, in its plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels.cache import PlanCache
from dnwgraph.nn.kernels.plan import AggregationPlan
from dnwgraph.nn.kernels.sampled import EdgeSet


class Rows(NamedTuple):
    """One aggregation call: the source group of ``x`` (``None``: every node) and the output
    rows ``[first, last)`` it computes."""

    group: int | None
    first: int
    last: int


class Planned(Protocol):
    """What the planner reads of a layer (a :class:`~dnwgraph.WiringConv`)."""

    edge_index: Tensor  # [2, E], sorted by (target, source)
    edge_weight: Tensor  # [E]
    num_nodes: int
    source_groups: SourceGroups
    plan_cache: PlanCache

    def active_mask(self) -> Tensor: ...

    @property
    def straight_through_now(self) -> bool: ...


class SourceGroups:
    """Disjoint node sets whose features a layer may be called with alone (e.g. the levels of
    a DAG): for every node its group and its row in the group's features, and the lowest
    target of the edges leaving each group.

    Args:
        edge_index (LongTensor): the layer's candidate edges ``[2, E]``.
        num_nodes (int): :math:`N`.
        groups (sequence of LongTensor, optional): the node sets. (default: ``None``)

    Raises:
        ValueError: a node outside ``[0, N)`` or in two groups.

    Example:
        >>> edge_index = torch.tensor([[0, 1, 2], [2, 2, 3]])
        >>> groups = SourceGroups(edge_index, 4, [torch.tensor([0, 1]), torch.tensor([2])])
        >>> groups.sizes, groups.lowest_target, groups.check(1, 3, None)
        ([2, 1], {0: 2, 1: 3, None: 2}, Rows(group=1, first=3, last=4))
    """

    def __init__(
        self, edge_index: Tensor, num_nodes: int, groups: Sequence[Tensor] | None = None
    ) -> None:
        self.group_of_node = torch.full((num_nodes,), -1, dtype=torch.long)
        self.local_index = torch.full((num_nodes,), -1, dtype=torch.long)
        self.sizes: list[int] = []
        self._nodes: list[Tensor] = []
        for i, nodes in enumerate(groups or []):
            nodes = torch.as_tensor(nodes, dtype=torch.long).view(-1)
            if nodes.numel() and (nodes.min() < 0 or nodes.max() >= num_nodes):
                bad = nodes[(nodes < 0) | (nodes >= num_nodes)][0].item()
                raise DNWGraphError(
                    f"'source_groups[{i}]' holds node {bad}, outside [0, {num_nodes})"
                )
            if (self.group_of_node[nodes] >= 0).any() or nodes.unique().numel() != nodes.numel():
                raise DNWGraphError(f"'source_groups' must be disjoint (group {i} repeats a node)")
            self.group_of_node[nodes] = i
            self.local_index[nodes] = torch.arange(nodes.numel())
            self.sizes.append(nodes.numel())
            self._nodes.append(nodes)
        src, dst = edge_index
        g = self.group_of_node[src]
        g = torch.where(g < 0, len(self.sizes), g)  # edges of no group: the last slot
        lowest = torch.full((len(self.sizes) + 1,), num_nodes, dtype=torch.long)
        lowest.scatter_reduce_(0, g, dst, "amin")
        #: the lowest target of the edges leaving each group (``None``: every edge)
        self.lowest_target: dict[int | None, int] = {
            i: int(lowest[i]) for i in range(len(self.sizes))
        }
        self.lowest_target[None] = int(dst.min()) if dst.numel() else num_nodes
        self.num_nodes = num_nodes

    def __len__(self) -> int:
        return len(self.sizes)

    def nodes(self, group: int) -> Tensor:
        """The node ids of ``group``, in the order of its rows."""
        return self._nodes[group]

    def rows(self, group: int | None) -> int:
        """Rows of ``x`` for a call with ``group``."""
        return self.num_nodes if group is None else self.sizes[group]

    def check(self, group: int | None, first_row: int, last_row: int | None) -> Rows:
        """The :class:`Rows` of a call, checked: ``group`` in range; without ``last_row``,
        every candidate leaving ``group`` must target a node >= ``first_row``; with it (a
        row range of its own: the edges reaching nodes outside ``[first_row, last_row)`` are
        left out on purpose), ``last_row`` in ``(first_row, N]``."""
        n = self.num_nodes
        if group is not None and not (isinstance(group, int) and 0 <= group < len(self)):
            raise DNWGraphError(f"'group' must be in [0, {len(self)}) (got {group})")
        if isinstance(first_row, bool) or not isinstance(first_row, int) or not 0 <= first_row <= n:
            raise DNWGraphError(f"'first_row' must be an int in [0, {n}] (got {first_row!r})")
        lowest = self.lowest_target[group]
        if last_row is None:
            if first_row > lowest:
                raise DNWGraphError(
                    f"'first_row'={first_row} drops node {lowest}, which a candidate edge "
                    f"{'' if group is None else f'leaving group {group} '}reaches"
                )
            return Rows(group, first_row, n)
        if (
            isinstance(last_row, bool)
            or not isinstance(last_row, int)
            or not first_row < last_row <= n
        ):
            raise DNWGraphError(
                f"'last_row' must be an int in ({first_row}, {n}] (got {last_row!r})"
            )
        return Rows(group, first_row, last_row)

    def cuts_edges(self, rows: Rows) -> bool:
        """Whether ``rows`` leave out edges of their group (a row range of its own), so that
        its edges must be filtered by target."""
        return rows.first > self.lowest_target[rows.group] or rows.last < self.num_nodes


def group_edges(layer: Planned, group: int | None) -> tuple[Tensor, Tensor]:
    """Edge ids leaving ``group`` and their source row in ``x``, sorted by (target, source)."""
    if group is None:
        static = layer.plan_cache.structure(layer.edge_index.device)
        if None not in static:
            src, by_target = layer.edge_index[0], target_order(layer)
            if by_target is None:
                static[None] = (torch.arange(src.numel(), device=src.device), src)
            else:
                static[None] = (by_target, src.index_select(0, by_target))
        return static[None]
    bounds, order, _, cols = grouped_edges(layer)
    a, b = bounds[group], bounds[group + 1]
    return order[a:b], cols[a:b]


def target_order(layer: Planned) -> Tensor | None:
    """The edge ids sorted by (target, source), or ``None`` when the layer's edges already
    are (a layer's own are; those of a level-order view are not), built once."""
    ei = layer.edge_index
    static = layer.plan_cache.structure(ei.device)
    if "by_target" not in static:
        key = ei[1] * layer.num_nodes + ei[0]
        static["by_target"] = None if bool((key[1:] >= key[:-1]).all()) else torch.argsort(key)
    return static["by_target"]


def grouped_edges(layer: Planned) -> tuple[list[int], Tensor, Tensor, Tensor]:
    """Every edge ordered by (source group, target, source), edges of no group last, built
    once for all groups: the bounds of each group's slice, and the edge id, target and
    source row of every edge in that order.  The targets need not be sorted in the
    layer's own order (a level chain numbers the nodes level by level)."""
    ei = layer.edge_index
    static = layer.plan_cache.structure(ei.device)
    if "order" not in static:
        groups, by_target = layer.source_groups, target_order(layer)
        g = groups.group_of_node.to(ei.device)[ei[0]]
        g = torch.where(g < 0, len(groups), g)
        if by_target is None:
            order = torch.argsort(g, stable=True)
        else:
            order = by_target.index_select(0, torch.argsort(g[by_target], stable=True))
        local = groups.local_index.to(ei.device)[ei[0, order]]
        ends = torch.cumsum(torch.bincount(g, minlength=len(groups) + 1), 0)
        static["order"] = ([0, *ends.tolist()], order, ei[1, order], local)
        static["group_end"] = ends
    return static["order"]


def row_edges(layer: Planned, rows: Rows) -> tuple[Tensor, Tensor]:
    """:func:`group_edges` restricted to the edges reaching the output rows."""
    ids, cols = group_edges(layer, rows.group)
    if not layer.source_groups.cuts_edges(rows):
        return ids, cols
    static, key = layer.plan_cache.structure(layer.edge_index.device), ("rows", *rows)
    if key not in static:
        dst = layer.edge_index[1, ids]
        keep = torch.nonzero((dst >= rows.first) & (dst < rows.last)).view(-1)
        static[key] = (ids[keep], cols[keep])
    return static[key]


def all_edges(layer: Planned, rows: Rows) -> EdgeSet:
    """Every candidate of the call (the gradient set of a straight-through selection)."""
    static, key = layer.plan_cache.structure(layer.edge_index.device), ("all", *rows)
    if key not in static:
        ids, cols = row_edges(layer, rows)
        static[key] = EdgeSet(layer.edge_index[1, ids] - rows.first, cols, ids)
    return static[key]


def selected_edges(layer: Planned, group: int | None, mask: Tensor) -> tuple[Tensor, ...]:
    """Target, source row and id of the selected edges leaving ``group``, sorted by
    (target, source).  With source groups, all groups are gathered in one pass per
    selection (edges ordered by group once) and each group takes its slice."""
    ei = layer.edge_index
    if group is None:
        by_target = target_order(layer)
        if by_target is None:
            ids = torch.nonzero(mask).view(-1)
        else:
            ids = by_target.index_select(0, torch.nonzero(mask.index_select(0, by_target)).view(-1))
        src, dst = ei.index_select(1, ids)
        return dst, src, ids
    cache = layer.plan_cache
    if cache.by_group is None:
        _, order, dst, cols = grouped_edges(layer)
        ends = layer.plan_cache.structure(ei.device)["group_end"]
        # index_select, not t[index]: the plain gather is 3-4x faster on a CPU
        pos = torch.nonzero(mask.index_select(0, order)).view(-1)
        bounds = [0, *torch.searchsorted(pos, ends).tolist()]
        cache.by_group = tuple([bounds] + [t.index_select(0, pos) for t in (dst, cols, order)])
    bounds, dst, cols, ids = cache.by_group
    a, b = bounds[group], bounds[group + 1]
    return dst[a:b], cols[a:b], ids[a:b]


def build_plan(layer: Planned, rows: Rows) -> AggregationPlan:
    """The plan of the call ``rows`` for the layer's current selection, kept in its plan
    cache until the weights or the selection's state change."""
    mask = layer.active_mask()
    plans = layer.plan_cache.plans
    if rows not in plans:
        dst, cols, ids = selected_edges(layer, rows.group, mask)
        if layer.source_groups.cuts_edges(rows):  # the edges into the rows of another call left out
            keep = torch.nonzero((dst >= rows.first) & (dst < rows.last)).view(-1)
            dst, cols, ids = (t.index_select(0, keep) for t in (dst, cols, ids))
        selected = EdgeSet(dst - rows.first if rows.first else dst, cols, ids)
        plans[rows] = AggregationPlan(
            selected=selected,
            grad=all_edges(layer, rows) if layer.straight_through_now else selected,
            values=layer.edge_weight.detach().index_select(0, ids),
            num_nodes=rows.last - rows.first,
            num_src=layer.source_groups.rows(rows.group),
            num_weights=layer.edge_weight.numel(),
        )
    return plans[rows]


def candidate_order(edge_index: Tensor, ei: Any, num_nodes: int) -> Tensor | None:
    """Where each edge of the caller's ``ei`` sits among a layer's candidates ``edge_index``
    (sorted by (target, source)); ``None`` when ``ei`` is ``edge_index`` itself.

    Raises:
        ValueError: ``ei`` is not ``[2, E]`` or not the same edge set (any order).
    """
    if not isinstance(ei, Tensor) or ei.dim() != 2 or ei.size(0) != 2:
        shape = tuple(ei.shape) if isinstance(ei, Tensor) else ei
        raise DNWGraphError(f"'edge_index' must have shape [2, E] (got {shape!r})")
    ei = ei.to(edge_index.device).long()
    num_edges = edge_index.size(1)
    if ei.size(1) == num_edges and torch.equal(ei, edge_index):
        return None
    why, pos = "", None
    if ei.size(1) != num_edges:
        why = f"expected its {num_edges} candidate edges, got {ei.size(1)} edges"
    elif ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
        why = f"node ids must lie in [0, {num_nodes})"
    else:
        own = edge_index[1] * num_nodes + edge_index[0]  # sorted: edges are (target, source)
        key = ei[1] * num_nodes + ei[0]
        pos = torch.searchsorted(own, key).clamp_max(own.numel() - 1)
        missing = (own[pos] != key).nonzero().view(-1)
        if missing.numel():
            j = int(missing[0])
            why = f"edge ({int(ei[0, j])}, {int(ei[1, j])}) at position {j} is not a candidate"
        elif torch.unique(key).numel() != key.numel():
            why = "it repeats an edge"
    if why:
        raise DNWGraphError(
            "WiringConv learns which of its own candidate edges to use and can only run on "
            f"the graph it was built on (the same edge set, any order): {why}. Build a new "
            "layer with WiringConv(Wiring(edge_index), ratio) for another graph"
        )
    return pos
