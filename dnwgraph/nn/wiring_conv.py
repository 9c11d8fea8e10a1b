"""The learned wiring as a message-passing layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing

from dnwgraph.errors import DNWGraphTypeError
from dnwgraph.nn.aggregate import (
    AggregationPlan,
    EdgeSet,
    accumulate_,
    accumulation_dtype,
    no_autocast,
    output_dtype,
    wiring_matmul,
)
from dnwgraph.select import Selection, create_selection
from dnwgraph.typing import Ratio, Scope, WiringLike

IMPLS: tuple[str, ...] = ("sparse", "scatter", "dense")
#: Fan-ins of the initialisation (:meth:`WiringConv.reset_parameters`).
FAN_INS: tuple[str, ...] = ("selected", "candidates")


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
            raise ValueError(f"'impl' must be one of {list(IMPLS)} (got {impl!r})")
        if fan_in not in FAN_INS:
            raise ValueError(f"'fan_in' must be one of {list(FAN_INS)} (got {fan_in!r})")
        if isinstance(grad_every, bool) or not isinstance(grad_every, int) or grad_every < 1:
            raise ValueError(f"'grad_every' must be a positive int (got {grad_every!r})")
        self.impl = impl
        self.fan_in = fan_in
        self.grad_every = grad_every
        #: distinct weight states seen (one per optimizer step); drives ``grad_every``
        self.weight_updates = 0
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
                raise ValueError(
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
        self._cache_key: tuple[Any, ...] | None = None
        self._cache: dict[Any, Any] = {}
        self._static: dict[Any, Any] = {}
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
                raise ValueError(
                    f"'source_groups[{i}]' holds node {bad}, outside [0, {self.num_nodes})"
                )
            if (group_of_node[nodes] >= 0).any() or nodes.unique().numel() != nodes.numel():
                raise ValueError(f"'source_groups' must be disjoint (group {i} repeats a node)")
            group_of_node[nodes] = i
            local_index[nodes] = torch.arange(nodes.numel())
            self.group_sizes.append(nodes.numel())
        self.register_buffer("group_of_node", group_of_node, persistent=False)
        self.register_buffer("local_index", local_index, persistent=False)

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

    def __getstate__(self) -> dict[str, Any]:
        # cached plans hold sparse tensors (not deep-copyable) and are cheap to rebuild
        state = self.__dict__.copy()
        state.update(_cache={}, _cache_key=None, _static={})
        state["weight_updates"] -= self._cache_key is not None  # the copy re-selects once
        return state

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> WiringConv:
        super()._apply(fn, *args, **kwargs)
        self.weight_updates -= self._cache_key is not None  # same weights, selected again
        self._cache_key, self._cache, self._static = None, {}, {}
        return self

    @property
    def num_edges(self) -> int:
        """Number of candidate edges :math:`E`."""
        return int(self.edge_index.size(1))

    @property
    def k(self) -> int:
        """Edge budget of the selection (edges used forward in evaluation)."""
        return self.selection.k

    # --------------------------------------------------------------- selection
    def _refresh(self) -> None:
        """Drop cached plans when the weights or the selection state changed."""
        w = self.edge_weight
        sel_key = self.selection.cache_key()
        key = None if sel_key is None else (w._version, w.data_ptr(), w.dtype, sel_key)
        if key is None or key != self._cache_key:
            self._cache = {"mask": self.selection(w)}
            self._cache_key = key
            self.weight_updates += 1

    @property
    def all_candidate_grad(self) -> bool:
        """Whether the current weights' backward pass gives every candidate its
        straight-through gradient (``False``: only the selected edges get a gradient)."""
        if not self.selection.straight_through:
            return False
        self._refresh()
        return (self.weight_updates - 1) % self.grad_every == 0

    def active_mask(self) -> Tensor:
        """Boolean mask ``[E]`` of the edges the forward pass uses for the current weights."""
        self._refresh()
        return self._cache["mask"]

    def _group_edges(self, group: int | None) -> tuple[Tensor, Tensor]:
        """Edge ids leaving ``group`` (ascending) and their source row in ``x``."""
        if group not in self._static:
            src = self.edge_index[0]
            if group is None:
                ids = torch.arange(self.num_edges, device=src.device)
                self._static[group] = (ids, src)
            else:
                ids = torch.nonzero(self.group_of_node[src] == group).view(-1)
                self._static[group] = (ids, self.local_index[src[ids]])
        return self._static[group]

    def _check_first_row(self, group: int | None, first_row: int) -> None:
        """Every candidate leaving ``group`` must target a node >= ``first_row`` (once)."""
        key = ("first_row", group, first_row)
        if key in self._static:
            return
        if not isinstance(first_row, int) or not 0 <= first_row <= self.num_nodes:
            raise ValueError(
                f"'first_row' must be an int in [0, {self.num_nodes}] (got {first_row!r})"
            )
        ids, _ = self._group_edges(group)
        dst = self.edge_index[1, ids]
        if first_row > 0 and dst.numel() and int(dst.min()) < first_row:
            bad = int(dst.min())
            raise ValueError(
                f"'first_row'={first_row} drops node {bad}, which a candidate edge "
                f"{'' if group is None else f'leaving group {group} '}reaches"
            )
        self._static[key] = True

    def _selected_edges(self, group: int | None) -> tuple[Tensor, Tensor, Tensor]:
        """Target, source row and id of the selected edges leaving ``group``, sorted by
        (target, source).  With source groups, all groups are gathered in one pass per
        selection (edges ordered by group once) and each group takes its slice."""
        if group is None:
            ids = torch.nonzero(self._cache["mask"]).view(-1)
            return self.edge_index[1, ids], self.edge_index[0, ids], ids
        if "by_group" not in self._cache:
            if "order" not in self._static:
                # edges by (group, target, source); edges of no group last
                g = self.group_of_node[self.edge_index[0]]
                g = torch.where(g < 0, self.num_groups, g)
                order = torch.argsort(g, stable=True)
                src = self.edge_index[0, order]
                self._static["order"] = (order, self.edge_index[1, order], self.local_index[src])
                self._static["group_end"] = torch.cumsum(
                    torch.bincount(g, minlength=self.num_groups + 1), 0
                )
            order, dst, cols = self._static["order"]
            keep = self._cache["mask"][order]
            pos = torch.nonzero(keep).view(-1)
            kept = torch.cat([keep.new_zeros(1, dtype=torch.long), torch.cumsum(keep, 0)])
            bounds = [0, *kept[self._static["group_end"]].tolist()]
            self._cache["by_group"] = (bounds, dst[pos], cols[pos], order[pos])
        bounds, dst, cols, ids = self._cache["by_group"]
        a, b = bounds[group], bounds[group + 1]
        return dst[a:b], cols[a:b], ids[a:b]

    def _all_edges(self, group: int | None, first_row: int = 0) -> EdgeSet:
        """Gradient set of straight-through strategies: every candidate leaving ``group``."""
        key = ("all", group, first_row)
        if key not in self._static:
            ids, cols = self._group_edges(group)
            self._static[key] = EdgeSet(self.edge_index[1, ids] - first_row, cols, ids)
        return self._static[key]

    def plan(self, group: int | None = None, first_row: int = 0) -> AggregationPlan:
        """The :class:`~dnwgraph.nn.aggregate.AggregationPlan` for the current weights (output
        rows: the nodes from ``first_row`` on)."""
        self._refresh()
        key = (group, first_row)
        if key not in self._cache:
            self._check_first_row(group, first_row)
            dst, cols, sel_ids = self._selected_edges(group)
            selected = EdgeSet(dst - first_row if first_row else dst, cols, sel_ids)
            if self.all_candidate_grad:
                grad = self._all_edges(group, first_row)
            else:
                grad = selected
            self._cache[key] = AggregationPlan(
                selected=selected,
                grad=grad,
                values=self.edge_weight.detach()[sel_ids],
                num_nodes=self.num_nodes - first_row,
                num_src=self.num_nodes if group is None else self.group_sizes[group],
                num_weights=self.num_edges,
            )
        return self._cache[key]

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
            raise ValueError(
                "'wiring' must carry edge weights (got edge_weight=None); build it with "
                "edge_weight=... or read a file written by dnwgraph.save_wiring"
            )
        conv = cls(wiring, wiring.num_edges if ratio is None else ratio, selection, **kwargs)
        with torch.no_grad():
            conv.edge_weight.copy_(torch.as_tensor(weight)[conv.edge_perm])
        return conv

    def _check_edge_index(self, edge_index: Tensor) -> None:
        """Accept only this layer's candidate edges, in any order (explains what differs)."""
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else edge_index
            raise ValueError(f"'edge_index' must have shape [2, E] (got {shape!r})")
        ei = edge_index.to(self.edge_index.device).long()
        if ei.size(1) == self.num_edges and torch.equal(ei, self.edge_index):
            return
        why = ""
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
            raise ValueError(
                "WiringConv learns which of its own candidate edges to use and can only run on "
                f"the graph it was built on (the same edge set, any order): {why}. Build a new "
                "layer with WiringConv(Wiring(edge_index), ratio) for another graph"
            )

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        x: Tensor,
        edge_index: Tensor | None = None,
        group: int | None = None,
        *,
        first_row: int = 0,
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
            add_to (Tensor, optional): ``[N - first_row, *]``, added to the output inside the
                sparse product (:math:`\mathrm{add\_to} + A X`, one pass instead of two).

        Returns:
            Tensor: ``[N - first_row, *]``.

        Raises:
            ValueError: ``x`` with the wrong number of rows, ``group`` out of range, or an
                ``edge_index`` other than the candidate set.
        """
        if edge_index is not None:
            if group is not None:
                raise ValueError("pass either 'edge_index' or 'group', not both")
            self._check_edge_index(edge_index)
        if group is not None and not 0 <= group < self.num_groups:
            raise ValueError(f"'group' must be in [0, {self.num_groups}) (got {group})")
        rows = self.num_nodes if group is None else self.group_sizes[group]
        if not isinstance(x, Tensor):
            raise DNWGraphTypeError(f"'x' must be a Tensor [N, *] (got {type(x).__name__})")
        if x.dim() < 1 or x.size(0) != rows:
            what = "one per node" if group is None else f"one per node of group {group}"
            raise ValueError(f"'x' must have {rows} rows ({what}) (got shape {tuple(x.shape)})")
        trailing = x.shape[1:]
        out_rows = self.num_nodes - first_row
        if add_to is not None and add_to.shape != (out_rows, *trailing):
            raise ValueError(
                f"'add_to' must have shape {(out_rows, *trailing)} (got {tuple(add_to.shape)})"
            )
        x2d = x.reshape(rows, -1)
        add2d = None if add_to is None else add_to.reshape(out_rows, -1)
        if self.impl == "sparse":
            # the fused product directly: PyG's propagate() machinery (argument inspection,
            # hooks) costs more than the product itself on small graphs
            plan = self.plan(group, first_row)
            out = wiring_matmul(x2d, self.edge_weight, plan, add_to=add2d)
        else:
            self._check_first_row(group, first_row)
            ids, cols = self._group_edges(group)
            dst = self.edge_index[1, ids] - first_row
            out_dtype = output_dtype(x2d, self.edge_weight)
            # scatter-add accumulates in its dtype (float32 for half); BLAS accumulates in
            # float32 by itself, so the dense product runs in the output dtype
            dtype = accumulation_dtype(out_dtype) if self.impl == "scatter" else out_dtype
            with no_autocast(x.device):
                w = self._effective_weight()[ids].to(dtype)
                x2d = x2d.to(dtype)
                if self.impl == "scatter":
                    edge_index = torch.stack([cols, dst])
                    out = self.propagate(
                        edge_index,
                        x=x2d,
                        edge_weight=w,
                        plan=None,
                        add_to=None,
                        size=(rows, out_rows),
                    )
                else:
                    dense = x2d.new_zeros(out_rows, rows).index_put((dst, cols), w)
                    out = dense @ x2d
                if add2d is not None:
                    out = add2d.to(dtype) + out
            out = out.to(out_dtype)
        return out.view(out_rows, *trailing)

    @torch.no_grad()
    def accumulate_(
        self, out: Tensor, x: Tensor, group: int | None = None, *, first_row: int = 0
    ) -> Tensor:
        """``out += self(x, group=group, first_row=first_row)`` in place and without autograd (for
        inference: no output buffer, no separate addition).

        Args:
            out (Tensor): ``[N - first_row, *]``, updated in place.
            x (Tensor): as for :meth:`forward`.

        Returns:
            Tensor: ``out``.
        """
        if self.impl != "sparse" or not out.is_contiguous():  # rounded as forward() rounds
            return out.copy_(self(x, group=group, first_row=first_row, add_to=out))
        rows = self.num_nodes if group is None else self.group_sizes[group]
        if x.size(0) != rows or out.size(0) != self.num_nodes - first_row:
            raise ValueError(
                f"'x' must have {rows} rows and 'out' {self.num_nodes - first_row} "
                f"(got {tuple(x.shape)} and {tuple(out.shape)})"
            )
        plan = self.plan(group, first_row)
        accumulate_(out.view(out.size(0), -1), x.reshape(rows, -1), plan)
        return out

    def _effective_weight(self) -> Tensor:
        """Masked weights whose gradient follows the strategy's rule (non-fused paths)."""
        mask = self.active_mask().to(self.edge_weight.dtype)
        w = self.edge_weight
        if self.all_candidate_grad:
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
