r"""The plans of a pull chain (:mod:`.pull`): what depends on the edges and the levels alone
(the candidates sorted by target, each step's slice of them, its edge set for the gradient)
built once (:class:`PullSteps`); what depends on the selection (each step's selected edges,
their weights and bag offsets) once per weight state, for all steps at once with a few
vectorised operations (:class:`PullPlan`): no per-level work when the weights change.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from dnwgraph.nn.kernels.sampled import EdgeSet


@dataclass
class PullSteps:
    r"""The edges of a pull chain, by step: step :math:`s = 1, \dots, L` pulls the rows
    :math:`[b_s, b_{s+1})` (level :math:`s`, the sinks for :math:`s = L`) from the candidates
    into them, ``cand[s - 1]:cand[s]`` of the candidates sorted by (target, source).

    Args:
        bounds (list of int): :math:`b_0 = 0, b_1, \dots, b_L, b_{L+1} = N`.
        order (LongTensor or None): the edge id of every sorted candidate (``None``: the edge
            ids are in that order).
        dst (LongTensor): every sorted candidate's target row.
        local (LongTensor): every sorted candidate's target row within its step.
        src (LongTensor): every sorted candidate's source row.
        cand (list of int): the bounds of each step's candidates.
        offset_index (LongTensor): for each step's bag offsets, the row pointer entries they
            read (``[N - b_1 + L]``), and ``offset_base`` the entry they start from.

    Example:
        >>> # levels {0, 1} | {2} | {3, 4}, the sink {5}: steps 1, 2 and 3 (the sink)
        >>> edge_index = torch.tensor([[1, 0, 2, 2, 3, 0], [2, 2, 3, 4, 5, 5]])
        >>> steps = PullSteps.of(edge_index, [0, 2, 3, 5, 6])
        >>> steps.cand, steps.rows(2), steps.local.tolist()
        ([0, 2, 4, 6], (3, 5), [0, 0, 0, 1, 0, 0])
    """

    bounds: list[int]
    order: Tensor | None
    dst: Tensor
    local: Tensor
    src: Tensor
    cand: list[int]
    offset_index: Tensor
    offset_base: Tensor
    _edges: EdgeSet | None = field(default=None, repr=False)

    @classmethod
    def of(cls, edge_index: Tensor, bounds: list[int]) -> PullSteps | None:
        """The steps of the level bounds ``bounds`` over the candidates ``edge_index``
        (node ids numbered level by level), or ``None`` when a candidate enters the first
        level (then the levels are not a DAG's)."""
        n, dev = bounds[-1], edge_index.device
        key = edge_index[1] * n + edge_index[0]
        order = None if bool((key[1:] >= key[:-1]).all()) else torch.argsort(key)
        src, dst = edge_index if order is None else edge_index[:, order]
        if dst.numel() and int(dst.min()) < bounds[1]:
            return None
        starts = torch.tensor(bounds[1:], device=dev)
        cand = torch.searchsorted(dst, starts).tolist()
        sizes = torch.diff(starts)  # rows of each step
        step_of_row = torch.repeat_interleave(torch.arange(sizes.numel(), device=dev), sizes)
        local = dst - starts[step_of_row[dst - bounds[1]]]
        # the bag offsets of step s are row pointer entries [b_s, b_{s+1}] - b_1, from b_s - b_1
        step_of_entry = torch.repeat_interleave(torch.arange(sizes.numel(), device=dev), sizes + 1)
        within = torch.arange(step_of_entry.numel(), device=dev) - (
            torch.cumsum(sizes + 1, 0) - (sizes + 1)
        ).index_select(0, step_of_entry)
        first = (starts[:-1] - bounds[1]).index_select(0, step_of_entry)
        return cls(bounds, order, dst, local, src, cand, first + within, first)

    @property
    def num_steps(self) -> int:
        """:math:`L`: the levels after the first, and the sinks."""
        return len(self.bounds) - 2

    def rows(self, step: int) -> tuple[int, int]:
        """The rows ``[a, b)`` that ``step`` pulls."""
        return self.bounds[step], self.bounds[step + 1]

    @property
    def edges(self) -> EdgeSet:
        """Every candidate (rows: the target's row after the first level, ``dst - b_1``;
        ids: positions among the sorted candidates), cut into blocks once
        (:func:`~.sampled.sddmm`)."""
        if self._edges is None:
            ids = torch.arange(self.src.numel(), device=self.src.device)
            self._edges = EdgeSet(self.dst - self.bounds[1], self.src, ids)
        return self._edges


class StepEdges(NamedTuple):
    """The selected edges into one step's rows: target row (local), source row and weight,
    and the bag offsets of the rows (``[rows + 1]``, from 0)."""

    local: Tensor
    src: Tensor
    weights: Tensor
    offsets: Tensor

    def bag_sum(self, z: Tensor) -> Tensor:
        r""":math:`A Z`: every row of the step the weighted sum of the rows of ``z``
        (``[sources, F]``, the weights' dtype) that its edges read, ``[rows, F]``.

        The op behind :func:`torch.nn.functional.embedding_bag` (mode ``sum``, weighted,
        with the last offset), called directly: a deep chain calls it once per level, and
        the functional's checks of its arguments add about a quarter to the call.
        """
        sum_mode = 0
        return torch.embedding_bag(
            z,
            self.src,
            self.offsets,
            scale_grad_by_freq=False,
            mode=sum_mode,
            sparse=False,
            per_sample_weights=self.weights,
            include_last_offset=True,
        )[0]


@dataclass
class PullPlan:
    """The selected edges of a pull chain for one weight state, for all steps at once:
    step :math:`s`'s are ``sel[s - 1]:sel[s]`` of ``local``, ``src``, ``pos`` (their
    positions among the sorted candidates) and of the selected weights ``values``; its bag
    offsets a slice of ``offsets`` (see :meth:`step_edges`)."""

    steps: PullSteps
    local: Tensor
    src: Tensor
    pos: Tensor
    values: Tensor
    offsets: Tensor
    sel: list[int]
    all_grads: bool
    _steps: dict[torch.dtype, list[StepEdges]] = field(default_factory=dict, repr=False)
    _grad_set: EdgeSet | None = field(default=None, repr=False)

    @classmethod
    def of(cls, steps: PullSteps, mask: Tensor, weight: Tensor, all_grads: bool) -> PullPlan:
        """The plan of the selection ``mask`` (by edge id) of the weights ``weight``;
        ``all_grads``: every candidate gets a gradient (else the selected edges)."""
        m = mask if steps.order is None else mask.index_select(0, steps.order)
        pos = torch.nonzero(m).view(-1)
        ids = pos if steps.order is None else steps.order.index_select(0, pos)
        local, src = steps.local.index_select(0, pos), steps.src.index_select(0, pos)
        b1, n = steps.bounds[1], steps.bounds[-1]
        # the row pointer of the selected edges over the rows b_1, ..., N - 1
        row = torch.searchsorted(pos, torch.tensor(steps.cand, device=pos.device))
        crow = torch.zeros(n - b1 + 1, dtype=torch.long, device=pos.device)
        target = steps.dst.index_select(0, pos) - b1
        torch.cumsum(torch.bincount(target, minlength=n - b1), 0, out=crow[1:])
        offsets = crow.index_select(0, steps.offset_index) - crow.index_select(0, steps.offset_base)
        values = weight.detach().index_select(0, ids)
        return cls(steps, local, src, pos, values, offsets, row.tolist(), all_grads)

    def step_edges(self, dtype: torch.dtype) -> list[StepEdges]:
        """Every step's selected edges (step :math:`s` at ``s - 1``), weights in ``dtype``:
        views split once per plan and dtype, shared by the passes that use the plan."""
        if dtype not in self._steps:
            sizes = [b - a for a, b in itertools.pairwise(self.sel)]
            rows = [b - a + 1 for a, b in itertools.pairwise(self.steps.bounds[1:])]
            parts = (t.split(sizes) for t in (self.local, self.src, self.values.to(dtype)))
            offsets = self.offsets.split(rows)
            self._steps[dtype] = [StepEdges(*e) for e in zip(*parts, offsets, strict=True)]
        return self._steps[dtype]

    @property
    def grad_set(self) -> EdgeSet:
        """The edges that get a gradient, as :attr:`PullSteps.edges`: every candidate, or
        the selected ones."""
        if self.all_grads:
            return self.steps.edges
        if self._grad_set is None:
            rows = self.steps.dst.index_select(0, self.pos) - self.steps.bounds[1]
            self._grad_set = EdgeSet(rows, self.src, self.pos)
        return self._grad_set


def pull_plan(conv: Any, bounds: list[int]) -> PullPlan | None:
    """The plan of ``conv``'s current selection for the level bounds ``bounds``, kept in its
    plan cache (the steps: in its structure, for good); ``None`` when the levels do not allow
    a pull chain."""
    cache = conv.plan_cache
    mask = conv.active_mask()  # (a new selection empties the plans)
    static = cache.structure(conv.edge_index.device)
    if "pull" not in static:
        static["pull"] = PullSteps.of(conv.edge_index, bounds)
    steps = static["pull"]
    if steps is None:
        return None
    if "pull" not in cache.plans:
        all_grads = bool(conv.straight_through_now)
        cache.plans["pull"] = PullPlan.of(steps, mask, conv.edge_weight, all_grads)
    return cache.plans["pull"]
