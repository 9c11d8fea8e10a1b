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
from dnwgraph.nn.aggregate import AggregationPlan, EdgeSet, wiring_matmul
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
        impl (str, optional): ``"sparse"`` (fused CSR matmul, the default), ``"scatter"``
            (per-edge messages via :meth:`message`, the oracle) or ``"dense"`` (a dense
            masked :math:`N \times N` matrix, as in the reference code).
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
        **selection_options: Any,
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        if impl not in IMPLS:
            raise ValueError(f"'impl' must be one of {list(IMPLS)} (got {impl!r})")
        if fan_in not in FAN_INS:
            raise ValueError(f"'fan_in' must be one of {list(FAN_INS)} (got {fan_in!r})")
        self.impl = impl
        self.fan_in = fan_in
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
        # cached plans hold sparse CSR tensors (not deep-copyable) and are cheap to rebuild
        state = self.__dict__.copy()
        state.update(_cache={}, _cache_key=None, _static={})
        return state

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> WiringConv:
        super()._apply(fn, *args, **kwargs)
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

    def _all_edges(self, group: int | None) -> EdgeSet:
        """Gradient set of straight-through strategies: every candidate leaving ``group``."""
        key = ("all", group)
        if key not in self._static:
            ids, cols = self._group_edges(group)
            self._static[key] = EdgeSet(self.edge_index[1, ids], cols, ids)
        return self._static[key]

    def plan(self, group: int | None = None) -> AggregationPlan:
        """The :class:`~dnwgraph.nn.aggregate.AggregationPlan` for the current weights."""
        self._refresh()
        if group not in self._cache:
            ids, cols = self._group_edges(group)
            keep = self._cache["mask"][ids]
            sel_ids = ids[keep]
            selected = EdgeSet(self.edge_index[1, sel_ids], cols[keep], sel_ids)
            grad = self._all_edges(group) if self.selection.straight_through else selected
            self._cache[group] = AggregationPlan(
                selected=selected,
                grad=grad,
                values=self.edge_weight.detach()[sel_ids],
                num_nodes=self.num_nodes,
                num_src=self.num_nodes if group is None else self.group_sizes[group],
                num_weights=self.num_edges,
            )
        return self._cache[group]

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
        self, x: Tensor, edge_index: Tensor | None = None, group: int | None = None
    ) -> Tensor:
        """Aggregate ``x`` over the selected edges.

        Args:
            x (Tensor): node features ``[N, *]`` (``[|g_i|, *]`` with ``group=i``).
            edge_index (Tensor, optional): the candidate edges ``[2, E]`` in any order, as a
                PyG layer is called (``conv(x, edge_index)``); checked against the layer's own
                candidates and otherwise unused: the layer always aggregates over the edges it
                selects among them. (default: ``None``)
            group (int, optional): aggregate only the edges leaving source group ``group``.
                (default: ``None``)

        Returns:
            Tensor: ``[N, *]``.

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
        x2d = x.reshape(rows, -1)
        if self.impl == "sparse":
            plan = self.plan(group)
            out = self.propagate(plan.adj, x=x2d, edge_weight=self.edge_weight, plan=plan)
        else:
            ids, cols = self._group_edges(group)
            w = self._effective_weight()[ids]
            dst = self.edge_index[1, ids]
            if self.impl == "scatter":
                edge_index = torch.stack([cols, dst])
                out = self.propagate(
                    edge_index, x=x2d, edge_weight=w, plan=None, size=(rows, self.num_nodes)
                )
            else:
                dense = x2d.new_zeros(self.num_nodes, rows).index_put((dst, cols), w)
                out = dense @ x2d
        return out.view(self.num_nodes, *trailing)

    def _effective_weight(self) -> Tensor:
        """Masked weights whose gradient follows the strategy's rule (non-fused paths)."""
        mask = self.active_mask().to(self.edge_weight.dtype)
        w = self.edge_weight
        if self.selection.straight_through:
            # value w*m, gradient 1 for every candidate
            return w * mask + (w - w.detach()) * (1 - mask)
        return w * mask

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(
        self, edge_index: Tensor, x: Tensor, edge_weight: Tensor, plan: AggregationPlan | None
    ) -> Tensor:
        assert plan is not None, "the fused path is reached through forward()"
        return wiring_matmul(x, edge_weight, plan)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_nodes={self.num_nodes}, "
            f"num_edges={self.num_edges}, k={self.k}, selection={self.selection.name!r}, "
            f"impl={self.impl!r})"
        )
