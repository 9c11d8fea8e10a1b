"""The learned wiring as a message-passing layer."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.nn import _compile
from dnwgraph.nn.aggregate import (
    AggregationPlan,
    EdgeSet,
    accumulate_,
    accumulation_dtype,
    no_autocast,
    output_dtype,
    wiring_matmul,
)
from dnwgraph.nn.plans import PlanCache
from dnwgraph.select import Selection, create_selection
from dnwgraph.typing import Ratio, Scope, WiringLike

IMPLS: tuple[str, ...] = ("sparse", "scatter", "dense")
#: Fan-ins of the initialisation (:meth:`WiringConv.reset_parameters`).
FAN_INS: tuple[str, ...] = ("selected", "candidates")


@contextlib.contextmanager
def _untraced() -> Iterator[None]:
    """Pause a running :func:`torch.jit.trace`: what runs inside is computed, not recorded
    (the plan of a traced layer is a constant of the trace)."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


class WiringConv(MessagePassing):
    r"""A learned wiring over channel-nodes, from *Discovering Neural Wirings*
    (Wortsman, Farhadi & Rastegari, NeurIPS 2019, https://arxiv.org/abs/1906.00586).

    Every candidate edge :math:`(u, v)` of the :class:`~dnwgraph.Wiring` has a learned weight
    :math:`w_{uv}`.  The forward pass aggregates over the selected edges :math:`\mathcal{A}`
    (by default the top-k by :math:`|w|`, re-chosen whenever the weights change):

    .. math::
        \mathrm{out}_v = \sum_{(u, v) \in \mathcal{A}} w_{uv}\, x_u

    and the backward pass gives the exact gradient for :math:`x` and, under the ``dnw``
    strategy, the straight-through gradient to **every** candidate edge,
    :math:`\partial L/\partial w_{uv} = \langle x_u, \partial L/\partial \mathrm{out}_v\rangle`
    (inner product over all trailing dimensions), so unused edges can grow and swap in.

    Candidate edges are stored sorted by (target, source): ``edge_index`` and ``edge_weight``
    are aligned with each other, and ``edge_index == wiring.edge_index[:, edge_perm]``.

    The selection and the sparse matrices are kept while the weights are unchanged, in
    :attr:`plan_cache` (a :class:`~dnwgraph.nn.plans.PlanCache`, keyed on the weights' values;
    ``invalidate()``, ``freeze()``).  The layer works under :func:`torch.compile` (one opaque
    operator: whole graphs, ``fullgraph=True``), :func:`torch.jit.trace` (inference) and
    ``torch_geometric.explain``; ``docs/interop.md`` says how, and what does not work.

    Args:
        wiring (Wiring): the candidate edges (anything with ``edge_index`` ``[2, E]`` and
            ``num_nodes``).
        ratio (int or float): edge budget; ``int`` keeps that many edges, ``float`` in (0, 1]
            keeps that fraction of the candidates.
        selection (str or Selection, optional): a strategy name from
            :func:`~dnwgraph.list_selections` or a built :class:`~dnwgraph.Selection`.
            (default: ``"dnw"``)
        scope (str, optional): ``"global"`` or ``"per_node"`` (in-degree budget); ``None``
            takes the strategy's default. (default: ``None``)
        source_groups (list of LongTensor, optional): disjoint node sets (e.g. topological
            levels).  ``forward(x, group=i)`` then takes ``x`` for the nodes of group ``i``
            only and aggregates the edges leaving them. (default: ``None``)
        grad_every (int, optional): for straight-through strategies (``dnw``, ``complete``),
            compute the all-candidate gradient only for every ``grad_every``-th set of weights
            (i.e. optimizer step: the first, the ``1 + grad_every``-th, ...); in between
            only the selected edges get their (exact) gradient and the others exactly zero.
            Cheaper steps where the candidates far outnumber the selected edges; ``1`` is
            plain DNW. (default: ``1``)
        impl (str, optional): ``"sparse"`` (fused sparse matmul, the default), ``"scatter"``
            (per-edge messages via :meth:`message`, the oracle) or ``"dense"`` (a dense
            masked :math:`N \times N` matrix, as in the reference code).  Every ``impl``
            takes ``float16``/``bfloat16`` models and :func:`torch.autocast`: ``sparse`` and
            ``scatter`` sum the edges in ``float32``, ``dense`` uses a half matmul (BLAS
            accumulates in ``float32``); under autocast the output has the autocast dtype.
        fan_in (str, optional): the fan-in that scales the initial weights
            (:meth:`reset_parameters`): ``"selected"``, the mean number of *selected* inputs
            per node, keeps the scale of the features through the sparse forward;
            ``"candidates"``, the largest candidate in-degree, is the reference code's (a 1x1
            convolution over all candidates). (default: ``"selected"``)
        **selection_options: strategy options (``seed``, ``mask``, ``drop_rate``).

    Shapes:
        - **input:** node features :math:`[N, *]`, or :math:`[|g_i|, *]` with ``group=i``;
          optional ``edge_index`` :math:`[2, E]` (the candidates, any order)
        - **output:** node features :math:`[N, *]`

    Raises:
        ValueError: on an unknown ``impl`` or strategy, a bad budget, overlapping or
            out-of-range ``source_groups``, an ``x`` with the wrong number of rows, or an
            ``edge_index`` that is not this layer's candidate set.

    Examples:
        >>> from dnwgraph import Wiring
        >>> wiring = Wiring([(0, 2), (1, 2), (0, 3), (2, 3)], num_nodes=4)
        >>> conv = WiringConv(wiring, ratio=2)
        >>> out = conv(torch.randn(4, 5))
        >>> out.shape, int(conv.active_mask().sum())
        (torch.Size([4, 5]), 2)
    """

    edge_index: Tensor
    edge_perm: Tensor

    def __init__(
        self,
        wiring: Any,
        ratio: Ratio,
        selection: str | Selection = "dnw",
        *,
        scope: Scope | None = None,
        source_groups: Sequence[Tensor] | None = None,
        impl: str = "sparse",
        fan_in: str = "selected",
        grad_every: int = 1,
        **selection_options: Any,
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        if impl not in IMPLS:
            raise DNWGraphError(f"'impl' must be one of {list(IMPLS)} (got {impl!r})")
        if fan_in not in FAN_INS:
            raise DNWGraphError(f"'fan_in' must be one of {list(FAN_INS)} (got {fan_in!r})")
        if isinstance(grad_every, bool) or not isinstance(grad_every, int) or grad_every < 1:
            raise DNWGraphError(f"'grad_every' must be a positive int (got {grad_every!r})")
        self.impl = impl
        self.fan_in = fan_in
        self.grad_every = grad_every
        if not isinstance(wiring, WiringLike):
            raise DNWGraphTypeError(
                "'wiring' must be a Wiring (or anything with edge_index [2, E] and num_nodes) "
                f"(got {type(wiring).__name__}); build one with Wiring(pairs)"
            )
        self.num_nodes = int(wiring.num_nodes)
        edge_index = torch.as_tensor(wiring.edge_index).long().cpu()
        # Sort by (target, source) so that selected edges form CSR rows without a sort.
        perm = torch.argsort(edge_index[1] * self.num_nodes + edge_index[0], stable=True)
        self.register_buffer("edge_index", edge_index[:, perm].contiguous())
        self.register_buffer("edge_perm", perm)
        self.edge_weight = Parameter(torch.empty(perm.numel()))

        if isinstance(selection, Selection):
            if selection.num_edges != self.num_edges:
                raise DNWGraphError(
                    f"'selection' was built for {selection.num_edges} edges "
                    f"(got a wiring with {self.num_edges})"
                )
            self.selection = selection
        else:
            self.selection = create_selection(
                selection,
                ratio,
                target=self.edge_index[1],
                num_nodes=self.num_nodes,
                scope=scope,
                **selection_options,
            )
        self._set_groups(source_groups)
        #: the selection and aggregation plans of the current weights (explicit, see
        #: :class:`~dnwgraph.nn.plans.PlanCache`)
        self.plan_cache = PlanCache()
        self._compile_key = _compile.register(self)
        self.reset_parameters()

    # ------------------------------------------------------------------ set-up
    def _set_groups(self, groups: Sequence[Tensor] | None) -> None:
        group_of_node = torch.full((self.num_nodes,), -1, dtype=torch.long)
        local_index = torch.full((self.num_nodes,), -1, dtype=torch.long)
        self.num_groups = 0 if groups is None else len(groups)
        self.group_sizes: list[int] = []
        for i, nodes in enumerate(groups or []):
            nodes = torch.as_tensor(nodes, dtype=torch.long).view(-1)
            if nodes.numel() and (nodes.min() < 0 or nodes.max() >= self.num_nodes):
                bad = nodes[(nodes < 0) | (nodes >= self.num_nodes)][0].item()
                raise DNWGraphError(
                    f"'source_groups[{i}]' holds node {bad}, outside [0, {self.num_nodes})"
                )
            if (group_of_node[nodes] >= 0).any() or nodes.unique().numel() != nodes.numel():
                raise DNWGraphError(f"'source_groups' must be disjoint (group {i} repeats a node)")
            group_of_node[nodes] = i
            local_index[nodes] = torch.arange(nodes.numel())
            self.group_sizes.append(nodes.numel())
        self.register_buffer("group_of_node", group_of_node, persistent=False)
        self.register_buffer("local_index", local_index, persistent=False)
        # the lowest target of the edges leaving each group (None: all edges), for first_row
        src, dst = self.edge_index
        g = group_of_node[src]
        g = torch.where(g < 0, self.num_groups, g)  # edges of no group: the last slot
        lowest = torch.full((self.num_groups + 1,), self.num_nodes, dtype=torch.long)
        lowest.scatter_reduce_(0, g, dst, "amin")
        self._lowest_target: dict[int | None, int] = {
            i: int(lowest[i]) for i in range(self.num_groups)
        }
        self._lowest_target[None] = int(dst.min()) if dst.numel() else self.num_nodes

    def reset_parameters(self) -> None:
        r"""Uniform :math:`\mathcal{U}(-b, b)` with :math:`b = 1/\sqrt{d}`, one bound for all
        edges (which keeps the initial top-k unbiased).

        With ``fan_in="selected"``, :math:`d = k / |\{v : d^-_v > 0\}|` is the mean number
        of selected inputs of a node that has candidates.  The top-k edges by :math:`|w|`
        start near :math:`|w| = b`, so a node's output :math:`\sum_{u} w_{uv} x_u` over its
        :math:`\approx d` selected inputs keeps the variance of :math:`x` (LeCun's rule for
        the sparse graph that the forward pass uses).  With ``"candidates"``,
        :math:`d = \max_v d^-_v`, the largest candidate in-degree (the reference code's
        1x1 convolution over all candidates): at a 5 % budget the outputs start about
        :math:`\sqrt{20}` times smaller than the inputs."""
        in_degree = torch.bincount(self.edge_index[1], minlength=self.num_nodes)
        if self.fan_in == "selected":
            fan_in = self.k / max(int((in_degree > 0).sum()), 1)
        else:
            fan_in = float(in_degree.max()) if in_degree.numel() else 1.0
        bound = 1.0 / math.sqrt(max(fan_in, 1.0))
        with torch.no_grad():
            self.edge_weight.uniform_(-bound, bound)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._compile_key = _compile.register(self)  # a copy is a layer of its own

    def __prepare_scriptable__(self) -> WiringConv:
        raise DNWGraphError(
            "torch.jit.script cannot compile WiringConv: its top-k selection and cached sparse "
            "plans are Python state; use torch.compile(model) (training and inference) or "
            "torch.jit.trace(model.eval(), x) (inference, the selection fixed at trace time)"
        )

    @property
    def num_edges(self) -> int:
        """Number of candidate edges :math:`E`."""
        return int(self.edge_index.size(1))

    @property
    def k(self) -> int:
        """Edge budget of the selection (edges used forward in evaluation)."""
        return self.selection.k

    # --------------------------------------------------------------- selection
    def _refresh(self) -> Tensor:
        """The mask of the current weights: the plan cache's, or selected anew (dropping
        the plans) when the weights or the selection's state changed."""
        cache, w = self.plan_cache, self.edge_weight
        if not cache.matches(w, self.selection.cache_key()):
            mask = self.selection(w)
            cache.store(w, mask, self.selection.cache_key())
        return cache.mask  # type: ignore[return-value]

    @property
    def weight_updates(self) -> int:
        """Distinct weight states seen (one per optimizer step); drives ``grad_every``."""
        return self.plan_cache.weight_states

    @property
    def all_candidate_grad(self) -> bool:
        """Whether the current weights' backward pass gives every candidate its
        straight-through gradient (``False``: only the selected edges get a gradient)."""
        if self.selection.straight_through:
            self._refresh()  # not otherwise: a random selection would draw again
        return self._straight_through_now()

    def _straight_through_now(self) -> bool:
        """:attr:`all_candidate_grad` for the weight state just refreshed."""
        if not self.selection.straight_through:
            return False
        return (self.weight_updates - 1) % self.grad_every == 0

    def active_mask(self) -> Tensor:
        """Boolean mask ``[E]`` of the edges the forward pass uses for the current weights."""
        return self._refresh()

    def _structure(self) -> dict[Any, Any]:
        return self.plan_cache.structure(self.edge_index.device)

    def _group_edges(self, group: int | None) -> tuple[Tensor, Tensor]:
        """Edge ids leaving ``group`` (ascending) and their source row in ``x``."""
        static = self._structure()
        if group not in static:
            src = self.edge_index[0]
            if group is None:
                static[group] = (torch.arange(self.num_edges, device=src.device), src)
            else:
                ids = torch.nonzero(self.group_of_node[src] == group).view(-1)
                static[group] = (ids, self.local_index[src[ids]])
        return static[group]

    def _check_rows(self, group: int | None, first_row: int, last_row: int | None = None) -> int:
        """Without ``last_row``, every candidate leaving ``group`` must target a node >=
        ``first_row``; with it (a row range of its own: the edges reaching nodes outside
        ``[first_row, last_row)`` are left out on purpose), ``last_row`` must be in
        ``(first_row, N]``.  Returns the end of the range."""
        if (
            isinstance(first_row, bool)
            or not isinstance(first_row, int)
            or not 0 <= first_row <= self.num_nodes
        ):
            raise DNWGraphError(
                f"'first_row' must be an int in [0, {self.num_nodes}] (got {first_row!r})"
            )
        lowest = self._lowest_target[group]
        if last_row is None and first_row > lowest:
            raise DNWGraphError(
                f"'first_row'={first_row} drops node {lowest}, which a candidate edge "
                f"{'' if group is None else f'leaving group {group} '}reaches"
            )
        if last_row is None:
            return self.num_nodes
        if (
            isinstance(last_row, bool)
            or not isinstance(last_row, int)
            or not first_row < last_row <= self.num_nodes
        ):
            raise DNWGraphError(
                f"'last_row' must be an int in ({first_row}, {self.num_nodes}] (got {last_row!r})"
            )
        return last_row

    def _selected_edges(self, group: int | None, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Target, source row and id of the selected edges leaving ``group``, sorted by
        (target, source).  With source groups, all groups are gathered in one pass per
        selection (edges ordered by group once) and each group takes its slice."""
        if group is None:
            ids = torch.nonzero(mask).view(-1)
            src, dst = self.edge_index.index_select(1, ids)
            return dst, src, ids
        cache, static = self.plan_cache, self._structure()
        if cache.by_group is None:
            if "order" not in static:
                # edges by (group, target, source); edges of no group last
                g = self.group_of_node[self.edge_index[0]]
                g = torch.where(g < 0, self.num_groups, g)
                order = torch.argsort(g, stable=True)
                src = self.edge_index[0, order]
                static["order"] = (order, self.edge_index[1, order], self.local_index[src])
                static["group_end"] = torch.cumsum(
                    torch.bincount(g, minlength=self.num_groups + 1), 0
                )
            order, dst, cols = static["order"]
            # index_select, not t[index]: the plain gather is 3-4x faster on a CPU
            pos = torch.nonzero(mask.index_select(0, order)).view(-1)
            bounds = [0, *torch.searchsorted(pos, static["group_end"]).tolist()]
            cache.by_group = tuple([bounds] + [t.index_select(0, pos) for t in (dst, cols, order)])
        bounds, dst, cols, ids = cache.by_group
        a, b = bounds[group], bounds[group + 1]
        return dst[a:b], cols[a:b], ids[a:b]

    def _cuts_edges(self, group: int | None, first_row: int, last_row: int) -> bool:
        """Whether the rows ``[first_row, last_row)`` leave out edges of ``group`` (a row
        range of its own), so that its edges must be filtered by target."""
        return first_row > self._lowest_target[group] or last_row < self.num_nodes

    def _row_edges(self, group: int | None, first_row: int, last_row: int) -> tuple[Tensor, Tensor]:
        """:meth:`_group_edges` restricted to the edges reaching nodes in
        ``[first_row, last_row)``."""
        ids, cols = self._group_edges(group)
        if not self._cuts_edges(group, first_row, last_row):
            return ids, cols
        static, key = self._structure(), ("rows", group, first_row, last_row)
        if key not in static:
            dst = self.edge_index[1, ids]
            keep = torch.nonzero((dst >= first_row) & (dst < last_row)).view(-1)
            static[key] = (ids[keep], cols[keep])
        return static[key]

    def _all_edges(
        self, group: int | None, first_row: int = 0, last_row: int | None = None
    ) -> EdgeSet:
        """Gradient set of straight-through strategies: every candidate leaving ``group``
        (that reaches a node below ``last_row``)."""
        last = self.num_nodes if last_row is None else last_row
        static, key = self._structure(), ("all", group, first_row, last)
        if key not in static:
            ids, cols = self._row_edges(group, first_row, last)
            static[key] = EdgeSet(self.edge_index[1, ids] - first_row, cols, ids)
        return static[key]

    def plan(
        self, group: int | None = None, first_row: int = 0, last_row: int | None = None
    ) -> AggregationPlan:
        """The :class:`~dnwgraph.nn.aggregate.AggregationPlan` for the current weights (output
        rows: the nodes ``first_row, ..., last_row - 1``), kept in :attr:`plan_cache`."""
        mask = self._refresh()
        last = self.num_nodes if last_row is None else last_row
        plans, key = self.plan_cache.plans, (group, first_row, last)
        if key not in plans:
            last = self._check_rows(group, first_row, last_row)
            dst, cols, sel_ids = self._selected_edges(group, mask)
            if self._cuts_edges(group, first_row, last):
                # a row range: the edges into the rows of another call are left out
                keep = torch.nonzero((dst >= first_row) & (dst < last)).view(-1)
                dst, cols, sel_ids = (t.index_select(0, keep) for t in (dst, cols, sel_ids))
            selected = EdgeSet(dst - first_row if first_row else dst, cols, sel_ids)
            if self._straight_through_now():
                grad = self._all_edges(group, first_row, last)
            else:
                grad = selected
            plans[key] = AggregationPlan(
                selected=selected,
                grad=grad,
                values=self.edge_weight.detach().index_select(0, sel_ids),
                num_nodes=last - first_row,
                num_src=self.num_nodes if group is None else self.group_sizes[group],
                num_weights=self.num_edges,
            )
        return plans[key]

    @classmethod
    def from_wiring(
        cls,
        wiring: Any,
        ratio: Ratio | None = None,
        selection: str | Selection = "dnw",
        **kwargs: Any,
    ) -> WiringConv:
        """A layer over ``wiring`` whose edge weights start from ``wiring.edge_weight``.

        Seeds a layer with a saved wiring: ``Wiring.from_file`` (or ``Wiring.from_data``) keeps
        the learned weights of an exported wiring, and this layer then selects the same edges
        and gives the same outputs as the layer that was exported.

        Args:
            wiring (Wiring): candidate edges with ``edge_weight`` ``[E]``.
            ratio (int or float, optional): edge budget; ``None`` uses every edge of
                ``wiring`` (right for a file of selected edges; for a file written with
                ``all_candidates=True`` pass the number of selected edges). (default: ``None``)
            selection (str or Selection, optional): as in the constructor. (default: ``"dnw"``)
            **kwargs: the constructor's keyword arguments (``scope``, ``impl``, ...).

        Returns:
            WiringConv: with ``edge_weight`` equal to ``wiring.edge_weight[edge_perm]``.

        Raises:
            ValueError: ``wiring`` has no ``edge_weight``, or any check of the constructor.

        Examples:
            >>> from dnwgraph import Wiring
            >>> w = Wiring([(0, 2), (1, 2), (2, 3)], edge_weight=[0.5, -1.0, 2.0])
            >>> WiringConv.from_wiring(w).edge_weight.tolist()
            [0.5, -1.0, 2.0]
        """
        weight = getattr(wiring, "edge_weight", None)
        if weight is None:
            raise DNWGraphError(
                "'wiring' must carry edge weights (got edge_weight=None); build it with "
                "edge_weight=... or read a file written by dnwgraph.save_wiring"
            )
        conv = cls(wiring, wiring.num_edges if ratio is None else ratio, selection, **kwargs)
        with torch.no_grad():
            conv.edge_weight.copy_(torch.as_tensor(weight)[conv.edge_perm])
        return conv

    def _check_edge_index(self, edge_index: Tensor) -> Tensor | None:
        """Accept only this layer's candidate edges, in any order (explains what differs).

        Returns:
            LongTensor or None: the layer's edge id of every edge of ``edge_index`` (``None``
            when ``edge_index`` is the layer's own, in its order).
        """
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else edge_index
            raise DNWGraphError(f"'edge_index' must have shape [2, E] (got {shape!r})")
        ei = edge_index.to(self.edge_index.device).long()
        if ei.size(1) == self.num_edges and torch.equal(ei, self.edge_index):
            return None
        why, pos = "", None
        if ei.size(1) != self.num_edges:
            why = f"expected its {self.num_edges} candidate edges, got {ei.size(1)} edges"
        elif ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= self.num_nodes):
            why = f"node ids must lie in [0, {self.num_nodes})"
        else:
            n = self.num_nodes
            own = self.edge_index[1] * n + self.edge_index[0]  # sorted: edges are (target, source)
            key = ei[1] * n + ei[0]
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

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        x: Tensor,
        edge_index: Tensor | None = None,
        group: int | None = None,
        *,
        first_row: int = 0,
        last_row: int | None = None,
        add_to: Tensor | None = None,
    ) -> Tensor:
        r"""Aggregate ``x`` over the selected edges.

        Args:
            x (Tensor): features of every node ``[N, *]``, or of the nodes of group
                ``group`` ``[|g|, *]``.
            edge_index (Tensor, optional): the candidate edges ``[2, E]`` in any order, as a
                PyG layer is called (``conv(x, edge_index)``); checked against the layer's own
                candidates and otherwise unused: the layer always aggregates over the edges it
                selects among them. (default: ``None``)
            group (int, optional): source group of ``x`` (see ``source_groups``).
                (default: ``None``)
            first_row (int, optional): compute only the output rows of nodes
                ``first_row, ..., N - 1`` (every candidate edge leaving the group must reach
                one of them, e.g. the nodes after a level of a DAG numbered level by level).
                (default: ``0``)
            last_row (int, optional): compute the output rows of nodes
                ``first_row, ..., last_row - 1`` as a range of their own: the edges reaching
                nodes outside it (before ``first_row`` too) are left out, and get no gradient
                from this call (another call computes their rows, e.g. from pooled features).
                (default: ``None``: the rows from ``first_row`` to :math:`N - 1`, every edge
                of the group included)
            add_to (Tensor, optional): ``[last_row - first_row, *]``, added to the output
                inside the sparse product (:math:`\mathrm{add\_to} + A X`, one pass instead of
                two).

        Returns:
            Tensor: ``[last_row - first_row, *]``.

        Raises:
            ValueError: ``x`` with the wrong number of rows, ``group`` out of range, or an
                ``edge_index`` other than the candidate set.
        """
        compiling = torch.compiler.is_compiling()
        order = None
        if edge_index is not None:
            if group is not None:
                raise DNWGraphError("pass either 'edge_index' or 'group', not both")
            if not compiling:  # compiled code checks it when it runs (_compile.wiring_conv)
                order = self._check_edge_index(edge_index)
        if group is not None and not 0 <= group < self.num_groups:
            raise DNWGraphError(f"'group' must be in [0, {self.num_groups}) (got {group})")
        rows = self.num_nodes if group is None else self.group_sizes[group]
        if not isinstance(x, Tensor):
            raise DNWGraphTypeError(f"'x' must be a Tensor [N, *] (got {type(x).__name__})")
        if x.dim() < 1 or x.size(0) != rows:
            what = "one per node" if group is None else f"one per node of group {group}"
            raise DNWGraphError(f"'x' must have {rows} rows ({what}) (got shape {tuple(x.shape)})")
        trailing = x.shape[1:]
        last = self.num_nodes if last_row is None else last_row
        out_rows = last - first_row
        if add_to is not None and add_to.shape != (out_rows, *trailing):
            raise DNWGraphError(
                f"'add_to' must have shape {(out_rows, *trailing)} (got {tuple(add_to.shape)})"
            )
        x2d = x.reshape(rows, -1)
        add2d = None if add_to is None else add_to.reshape(out_rows, -1)
        if self.explain:
            out = self._explained(x2d, edge_index, order, first_row, last, add2d)
        elif self.impl != "sparse":
            self._check_rows(group, first_row, last_row)
            ids, cols = self._row_edges(group, first_row, last)
            dst = self.edge_index[1, ids] - first_row
            out = self._aggregate_edges(self.impl, x2d, ids, cols, dst, out_rows, add2d)
        elif compiling:
            out = self._compiled(x2d, add2d, edge_index, group, first_row, out_rows)
        elif torch.jit.is_tracing():
            out = self._traced(x2d, add2d, group, first_row, last)
        else:
            # the fused product directly: PyG's propagate() machinery (argument inspection,
            # hooks) costs more than the product itself on small graphs
            plan = self.plan(group, first_row, last_row)
            out = wiring_matmul(x2d, self.edge_weight, plan, add_to=add2d)
        return out.view(out_rows, *trailing)

    def _aggregate_edges(
        self,
        impl: str,
        x2d: Tensor,
        ids: Tensor,
        cols: Tensor,
        dst: Tensor,
        out_rows: int,
        add2d: Tensor | None,
    ) -> Tensor:
        """The ``scatter`` and ``dense`` paths over the candidates ``ids`` (source rows
        ``cols``, output rows ``dst``): masked weights with the strategy's gradient rule,
        plain autograd ops (second derivatives included)."""
        out_dtype = output_dtype(x2d, self.edge_weight)
        # scatter-add accumulates in its dtype (float32 for half); BLAS accumulates in
        # float32 by itself, so the dense product runs in the output dtype
        dtype = accumulation_dtype(out_dtype) if impl == "scatter" else out_dtype
        with no_autocast(x2d.device):
            w = self._effective_weight()[ids].to(dtype)
            x2d = x2d.to(dtype)
            if impl == "scatter":
                out = self.propagate(
                    torch.stack([cols, dst]),
                    x=x2d,
                    edge_weight=w,
                    plan=None,
                    add_to=None,
                    size=(x2d.size(0), out_rows),
                )
            else:
                dense = x2d.new_zeros(out_rows, x2d.size(0)).index_put((dst, cols), w)
                out = dense @ x2d
            if add2d is not None:
                out = add2d.to(dtype) + out
        return out.to(out_dtype)

    def _explained(
        self,
        x2d: Tensor,
        edge_index: Tensor | None,
        order: Tensor | None,
        first_row: int,
        last_row: int,
        add2d: Tensor | None,
    ) -> Tensor:
        """Under ``torch_geometric.explain``: per-edge messages in the order of the caller's
        ``edge_index``, so that :meth:`explain_message` applies the explainer's edge mask to
        the right edges (the fused product has no per-edge messages to mask)."""
        if edge_index is None or first_row or last_row != self.num_nodes:
            raise DNWGraphError(
                "explaining a WiringConv needs it called as conv(x, edge_index) (every output "
                "row): the explainer's edge mask is aligned with that edge_index"
            )
        if torch.compiler.is_compiling():
            raise DNWGraphError("explain a WiringConv in eager mode, not under torch.compile")
        ei = edge_index.to(self.edge_index.device).long()
        ids = torch.arange(self.num_edges, device=ei.device) if order is None else order
        return self._aggregate_edges("scatter", x2d, ids, ei[0], ei[1], self.num_nodes, add2d)

    def _compiled(
        self,
        x2d: Tensor,
        add2d: Tensor | None,
        edge_index: Tensor | None,
        group: int | None,
        first_row: int,
        out_rows: int,
    ) -> Tensor:
        """The fused product as one opaque operator of a compiled graph (see
        :mod:`dnwgraph.nn._compile`): the same eager code runs inside it."""
        w = self.edge_weight
        out_dtype = output_dtype(x2d, w)
        if x2d.is_floating_point() and torch.is_autocast_enabled(x2d.device.type):
            x2d = x2d.to(out_dtype)
        record = torch.is_grad_enabled() and (
            x2d.requires_grad or w.requires_grad or (add2d is not None and add2d.requires_grad)
        )
        meta = [
            self._compile_key,
            -1 if group is None else group,
            first_row,
            out_rows,
            int(record),
        ]
        return _compile.WiringConvOp.apply(x2d, w, add2d, edge_index, meta, out_dtype)

    def _traced(
        self, x2d: Tensor, add2d: Tensor | None, group: int | None, first_row: int, last_row: int
    ) -> Tensor:
        """Under :func:`torch.jit.trace`: the selected edges of the current weights become
        constants of the trace (the plan is computed outside it) and the product is a gather
        and an ``index_add`` (plain ops, no sparse tensors)."""
        with _untraced():
            plan = self.plan(group, first_row, last_row)
        sel = plan.selected
        out_dtype = output_dtype(x2d, self.edge_weight)
        acc = accumulation_dtype(out_dtype)
        with no_autocast(x2d.device):
            w = self.edge_weight[sel.ids].to(acc).unsqueeze(1)
            messages = x2d.index_select(0, sel.cols).to(acc) * w
            if add2d is None:
                base = x2d.new_zeros(last_row - first_row, x2d.size(1), dtype=acc)
            else:
                base = add2d.to(acc)
            out = base.index_add(0, sel.rows, messages)
        return out.to(out_dtype)

    @torch.no_grad()
    def accumulate_(
        self,
        out: Tensor,
        x: Tensor,
        group: int | None = None,
        *,
        first_row: int = 0,
        last_row: int | None = None,
    ) -> Tensor:
        """``out += self(x, group=group, first_row=first_row, last_row=last_row)`` in place
        and without autograd (for inference: no output buffer, no separate addition).

        Args:
            out (Tensor): ``[last_row - first_row, *]``, updated in place.
            x (Tensor): as for :meth:`forward`.

        Returns:
            Tensor: ``out``.
        """
        if (
            self.impl != "sparse"
            or not out.is_contiguous()
            or torch.compiler.is_compiling()
            or torch.jit.is_tracing()
        ):  # the functional path, rounded as forward() rounds
            return out.copy_(
                self(x, group=group, first_row=first_row, last_row=last_row, add_to=out)
            )
        rows = self.num_nodes if group is None else self.group_sizes[group]
        last = self.num_nodes if last_row is None else last_row
        if x.size(0) != rows or out.size(0) != last - first_row:
            raise DNWGraphError(
                f"'x' must have {rows} rows and 'out' {last - first_row} "
                f"(got {tuple(x.shape)} and {tuple(out.shape)})"
            )
        plan = self.plan(group, first_row, last_row)
        accumulate_(out.view(out.size(0), -1), x.reshape(rows, -1), plan)
        return out

    def _effective_weight(self) -> Tensor:
        """Masked weights whose gradient follows the strategy's rule (non-fused paths)."""
        mask = self.active_mask().to(self.edge_weight.dtype)
        w = self.edge_weight
        if self._straight_through_now():
            # value w*m, gradient 1 for every candidate
            return w * mask + (w - w.detach()) * (1 - mask)
        return w * mask

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(
        self,
        edge_index: Tensor,
        x: Tensor,
        edge_weight: Tensor,
        plan: AggregationPlan | None,
        add_to: Tensor | None,
    ) -> Tensor:
        assert plan is not None, "the fused path is reached through forward()"
        return wiring_matmul(x, edge_weight, plan, add_to=add_to)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_nodes={self.num_nodes}, "
            f"num_edges={self.num_edges}, k={self.k}, selection={self.selection.name!r}, "
            f"impl={self.impl!r}"
            + (f", grad_every={self.grad_every})" if self.grad_every > 1 else ")")
        )
