r"""Any DAG as a level chain: its nodes numbered level by level.

A :class:`~dnwgraph.nn.kernels.chain.LevelChain` needs levels that are ascending node ranges
whose edges reach later ranges.  Any DAG is one once its nodes are numbered level by level:
with :math:`\pi` listing the executed levels' nodes level after level (ascending ids within a
level) and the nodes without out-edges last, every edge :math:`(u, v)` has
:math:`\pi^{-1}(u) < \pi^{-1}(v)` in a later range.  :class:`LevelOrder` holds :math:`\pi`,
translates a call's inputs and rows into that numbering and back (one ``index_select`` each,
none for the first level's inputs, which keep their order), and shows the layer to the chain
with its nodes renumbered (:class:`LevelIds`): the same edges, edge ids, weights and
selection, so the layer's parameters, state dict and exported wiring keep the caller's ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels.cache import PlanCache
from dnwgraph.nn.kernels.dispatch import accumulate_, aggregate
from dnwgraph.nn.kernels.planner import SourceGroups


class LevelOrder:
    r"""The level-by-level numbering :math:`\pi` of a DAG's nodes.

    Args:
        groups (sequence of LongTensor): the executed levels' nodes, each ascending.
        num_nodes (int): :math:`N`.

    Example:
        >>> order = LevelOrder([torch.tensor([0, 3]), torch.tensor([1])], 4)
        >>> order.order.tolist(), order.position.tolist()
        ([0, 3, 1, 2], [0, 2, 3, 1])
    """

    def __init__(self, groups: Sequence[Tensor], num_nodes: int) -> None:
        executed = torch.cat([g.cpu().long() for g in groups]) if groups else torch.zeros(0)
        rest = torch.ones(num_nodes, dtype=torch.bool)
        rest[executed.long()] = False
        #: the node id at every position (level by level, the other nodes last)
        self.order = torch.cat([executed.long(), rest.nonzero().view(-1)])
        #: the position of every node id
        self.position = torch.empty_like(self.order)
        self.position[self.order] = torch.arange(num_nodes)
        self.sizes = [int(g.numel()) for g in groups]
        first = self.sizes[0] if groups else 0
        #: the positions of the nodes after the first level, by ascending id
        self.after_first = self.position[self.position >= first]
        self._view: LevelIds | None = None

    def view(self, conv: nn.Module) -> LevelIds:
        """``conv`` with its nodes numbered level by level (built once per layer and
        device)."""
        view = self._view
        if view is None or view.conv is not conv or view.device != conv.edge_index.device:
            view = self._view = LevelIds(conv, self)
        return view

    def enter(
        self, conv: nn.Module, x: Tensor, rows: Tensor | slice | None, first: bool, base: int
    ) -> tuple[LevelIds, Tensor, Tensor | slice | None, Tensor | None]:
        """A chain call in the level order: the layer's view, the inputs (every node's
        permuted; the first level's as they are), the rows as positions, and the positions
        to read the result back in (``None``: the rows are read as given)."""
        view = self.view(conv)
        if not first:
            x = x.index_select(0, self.order.to(x.device))
        if rows is None:
            back = self.after_first if first else self.position
            return view, x, None, (back - base).to(x.device)
        if isinstance(rows, slice):
            pos = self.position[rows]
            self._check_after_first(rows, pos, first, base)
            lo = int(pos[0]) if pos.numel() else base
            if torch.equal(pos, torch.arange(lo, lo + pos.numel())):
                return view, x, slice(lo, lo + pos.numel()), None
            return view, x, pos.to(x.device), None
        pos = self.position.to(rows.device)[rows]
        self._check_after_first(rows, pos, first, base)
        return view, x, pos, None

    def _check_after_first(self, rows: Tensor | slice, pos: Tensor, first: bool, base: int) -> None:
        if not first or not pos.numel():
            return
        early = (pos < base).nonzero().view(-1)
        if early.numel():
            ids = torch.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows
            node = int(ids[int(early[0])])
            raise DNWGraphError(
                f"'rows' must be nodes outside the first level when 'x' holds the first "
                f"level's inputs only (got node {node}, of the first level)"
            )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_view": None}  # rebuilt for the copy's own layer


class LevelIds:
    r"""A :class:`~dnwgraph.WiringConv` seen with its nodes numbered level by level: the
    same edges in the same order (so the same edge ids, weights, selection and gradients),
    every target and source renumbered, the levels as node ranges.  It has its own plans
    (built for the renumbered edges) and takes the layer's selection, so the two never
    disagree.  The chain calls it as it calls the layer (``view(z, group=l, first_row=...)``,
    :meth:`accumulate_`).

    Args:
        conv (WiringConv): the layer.
        order (LevelOrder): the numbering.
    """

    explain = False  # an explainer sees the layer's own calls (the chain does not run)

    def __init__(self, conv: Any, order: LevelOrder) -> None:
        self.conv, self.device = conv, conv.edge_index.device
        self.num_nodes = int(conv.num_nodes)
        self.edge_index = order.position.to(self.device)[conv.edge_index]
        starts = torch.tensor([0, *order.sizes]).cumsum(0).tolist()
        levels = [torch.arange(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
        self.source_groups = SourceGroups(self.edge_index.cpu(), self.num_nodes, levels)
        self.plan_cache = PlanCache()
        self._state: dict | None = None  # the layer's plans when the view's were built

    @property
    def impl(self) -> str:
        return self.conv.impl

    @property
    def edge_weight(self) -> Tensor:
        return self.conv.edge_weight

    @property
    def selection(self) -> Any:
        return self.conv.selection

    @property
    def straight_through_now(self) -> bool:
        return self.conv.straight_through_now

    def active_mask(self) -> Tensor:
        """The layer's selection; the view's plans are dropped whenever the layer starts a
        new weight state (its plans are a new dict then: a selection may hand back the same
        mask object for other weights, e.g. ``fixed``)."""
        mask = self.conv.active_mask()
        cache, state = self.plan_cache, self.conv.plan_cache.plans
        if cache.mask is not mask or self._state is not state:
            cache.mask, cache.plans, cache.by_group = mask, {}, None
            self._state = state
        return mask

    def __call__(
        self,
        x: Tensor,
        *,
        group: int | None,
        first_row: int = 0,
        last_row: int | None = None,
        add_to: Tensor | None = None,
    ) -> Tensor:
        """``add_to + A x`` for the rows ``[first_row, last_row)`` (as the layer's call)."""
        rows = self.source_groups.check(group, first_row, last_row)
        out_rows = rows.last - rows.first
        add2d = None if add_to is None else add_to.reshape(out_rows, -1)
        out = aggregate(self, x.reshape(x.size(0), -1), rows, add2d)
        return out.view(out_rows, *x.shape[1:])

    def accumulate_(
        self,
        out: Tensor,
        x: Tensor,
        group: int,
        *,
        first_row: int = 0,
        last_row: int | None = None,
    ) -> Tensor:
        """``out += A x`` in place, without autograd (as the layer's ``accumulate_``)."""
        rows = self.source_groups.check(group, first_row, last_row)
        accumulate_(self, out.view(out.size(0), -1), x.reshape(x.size(0), -1), rows)
        return out
