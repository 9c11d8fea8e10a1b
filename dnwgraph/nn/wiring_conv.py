"""The learned wiring as a message-passing layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing

from dnwgraph._tracing import static_shape
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.nn import kernels
from dnwgraph.nn.kernels import AggregationPlan, PlanCache, Rows, SourceGroups
from dnwgraph.select import Selection, create_selection
from dnwgraph.typing import Ratio, Scope, WiringLike

#: Fan-ins of the initialisation (:meth:`WiringConv.reset_parameters`).
FAN_INS: tuple[str, ...] = ("selected", "candidates")


def impls() -> list[str]:
    """The backends a :class:`WiringConv` takes: ``"auto"`` and every registered kernel."""
    return ["auto", *kernels.KERNELS.list()]


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
    :attr:`plan_cache` (a :class:`~dnwgraph.nn.kernels.PlanCache`, keyed on the weights'
    values; ``invalidate()``, ``freeze()``); how the aggregation is computed is the kernel
    interface's business (:mod:`dnwgraph.nn.kernels`).  The layer works under
    :func:`torch.compile` (one opaque operator: whole graphs, ``fullgraph=True``),
    :func:`torch.jit.trace` (inference) and ``torch_geometric.explain``;
    ``docs/interop.md`` says how, and what does not work.

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
        impl (str, optional): the backend (:data:`~dnwgraph.nn.kernels.KERNELS`):
            ``"auto"`` (the default) picks one per call by size and device
            (``dnwgraph/nn/kernels/auto.py``); ``"sparse"`` (fused sparse matmul),
            ``"scatter"`` (per-edge messages, the oracle) or ``"dense"`` (a dense masked
            matrix, as in the reference code).  Every ``impl``
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
          optional ``edge_index`` :math:`[2, E]` (the candidates, any order), as PyG calls
          a layer: ``conv(x, edge_index)``
        - **output:** node features :math:`[N, *]`

    Raises:
        ValueError: on an unknown ``impl`` or strategy, a bad budget, overlapping or
            out-of-range ``source_groups``, an ``x`` with the wrong number of rows, or an
            ``edge_index`` that is not this layer's candidate set, or an ``edge_weight``
            (the layer learns its own).

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
        impl: str = "auto",
        fan_in: str = "selected",
        grad_every: int = 1,
        **selection_options: Any,
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        if impl not in impls():
            raise DNWGraphError(f"'impl' must be one of {impls()} (got {impl!r})")
        if fan_in not in FAN_INS:
            raise DNWGraphError(f"'fan_in' must be one of {list(FAN_INS)} (got {fan_in!r})")
        if isinstance(grad_every, bool) or not isinstance(grad_every, int) or grad_every < 1:
            raise DNWGraphError(f"'grad_every' must be a positive int (got {grad_every!r})")
        if not isinstance(wiring, WiringLike):
            raise DNWGraphTypeError(
                "'wiring' must be a Wiring (or anything with edge_index [2, E] and num_nodes) "
                f"(got {type(wiring).__name__}); build one with Wiring(pairs)"
            )
        self.impl, self.fan_in, self.grad_every = impl, fan_in, grad_every
        self.num_nodes = int(wiring.num_nodes)
        edge_index = torch.as_tensor(wiring.edge_index).long().cpu()
        # sorted by (target, source): the selected edges form CSR rows without a sort
        perm = torch.argsort(edge_index[1] * self.num_nodes + edge_index[0], stable=True)
        self.register_buffer("edge_index", edge_index[:, perm].contiguous())
        self.register_buffer("edge_perm", perm)
        self.edge_weight = Parameter(torch.empty(perm.numel()))
        self.selection = self._make_selection(selection, ratio, scope, selection_options)
        #: the node sets ``forward(x, group=i)`` takes ``x`` for
        self.source_groups = SourceGroups(self.edge_index, self.num_nodes, source_groups)
        #: the selection and aggregation plans of the current weights (explicit, see
        #: :class:`~dnwgraph.nn.kernels.PlanCache`)
        self.plan_cache = PlanCache()
        self.reset_parameters()
        self.selection.attach(self)  # a strategy may hook the weights or keep state of its own

    def _make_selection(
        self, selection: str | Selection, ratio: Ratio, scope: Scope | None, options: Any
    ) -> Selection:
        if not isinstance(selection, Selection):
            target, n = self.edge_index[1], self.num_nodes
            return create_selection(
                selection, ratio, target=target, num_nodes=n, scope=scope, **options
            )
        if selection.num_edges != self.num_edges:
            raise DNWGraphError(
                f"'selection' was built for {selection.num_edges} edges "
                f"(got a wiring with {self.num_edges})"
            )
        return selection

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
    def active_mask(self) -> Tensor:
        r"""Boolean mask ``[E]`` of the selected edges :math:`\mathcal{A}` for the current
        weights: the plan cache's, or selected anew when the weights or the selection's
        state changed."""
        cache, w = self.plan_cache, self.edge_weight
        if not cache.matches(w, self.selection.cache_key()):
            cache.store(w, self.selection(w), self.selection.cache_key())
        return cache.mask  # type: ignore[return-value]

    @property
    def weight_updates(self) -> int:
        """Distinct weight states seen (one per optimizer step); drives ``grad_every``."""
        return self.plan_cache.weight_states

    @property
    def straight_through_now(self) -> bool:
        """Whether the weight state of the last selection gives every candidate its
        straight-through gradient (the strategy's :meth:`~dnwgraph.Selection.all_gradients`:
        for ``dnw``, every ``grad_every``-th state)."""
        return self.selection.all_gradients(self.weight_updates)

    @property
    def all_candidate_grad(self) -> bool:
        """Whether the current weights' backward pass gives every candidate its
        straight-through gradient (``False``: only the selected edges get a gradient)."""
        if self.selection.straight_through:
            self.active_mask()  # not otherwise: a random selection would draw again
        return self.straight_through_now

    def plan(
        self, group: int | None = None, first_row: int = 0, last_row: int | None = None
    ) -> AggregationPlan:
        """The :class:`~dnwgraph.nn.kernels.AggregationPlan` of a call for the current
        weights (output rows: the nodes ``first_row, ..., last_row - 1``)."""
        return kernels.build_plan(self, self.source_groups.check(group, first_row, last_row))

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

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        x: Tensor,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
        *,
        group: int | None = None,
        first_row: int = 0,
        last_row: int | None = None,
        add_to: Tensor | None = None,
    ) -> Tensor:
        r"""Aggregate ``x`` over the selected edges: :math:`\mathrm{out} = \mathrm{add\_to} +
        A_{\mathcal{A}} x`.

        Args:
            x (Tensor): features of every node ``[N, *]``, or of the nodes of group
                ``group`` ``[|g|, *]``.
            edge_index (Tensor, optional): the candidate edges ``[2, E]`` in any order, as a
                PyG layer is called (``conv(x, edge_index)``); checked against the layer's own
                candidates and otherwise unused: the layer always aggregates over the edges it
                selects among them. (default: ``None``)
            edge_weight (Tensor, optional): refused: the layer learns its own weights
                (:attr:`edge_weight`); PyG's third argument is accepted only as ``None``.
            group (int, optional): source group of ``x`` (see ``source_groups``).
                (default: ``None``)
            first_row (int, optional): compute only the output rows of nodes
                ``first_row, ..., N - 1`` (every candidate edge leaving the group must reach
                one of them, e.g. the nodes after a level of a DAG numbered level by level).
                (default: ``0``)
            last_row (int, optional): compute the output rows ``first_row, ..., last_row - 1``
                as a range of their own: the edges reaching nodes outside it are left out and
                get no gradient from this call. (default: ``None``: up to :math:`N - 1`,
                every edge of the group included)
            add_to (Tensor, optional): ``[last_row - first_row, *]``, summed inside the
                product (one pass instead of two).

        Returns:
            Tensor: ``[last_row - first_row, *]``.

        Raises:
            ValueError: ``x`` with the wrong number of rows, ``group`` out of range, an
                ``edge_index`` other than the candidate set, or an ``edge_weight``.
        """
        if edge_index is not None and group is not None:
            raise DNWGraphError("pass either 'edge_index' or 'group', not both")
        rows = self.source_groups.check(group, first_row, last_row)
        order = self._check_call(x, edge_index, edge_weight, rows, add_to)
        x2d, out_rows = x.reshape(x.size(0), -1), rows.last - rows.first
        add2d = None if add_to is None else add_to.reshape(out_rows, -1)
        out = kernels.aggregate(self, x2d, rows, add2d, edge_index, order)
        return out.view(out_rows, *x.shape[1:])

    def _check_call(
        self,
        x: Any,
        edge_index: Any,
        edge_weight: Any,
        rows: Rows,
        add_to: Tensor | None,
    ) -> Tensor | None:
        """Check a call's inputs; the layer's edge id of each edge of ``edge_index``."""
        if edge_weight is not None:
            raise DNWGraphError(
                "WiringConv learns its own edge weights (conv.edge_weight) and takes no "
                f"'edge_weight' (got {type(edge_weight).__name__}); call conv(x, edge_index)"
            )
        n_src = self.source_groups.rows(rows.group)
        if not isinstance(x, Tensor):
            raise DNWGraphTypeError(f"'x' must be a Tensor [N, *] (got {type(x).__name__})")
        shape = static_shape(x)  # checks a trace need not record
        if len(shape) < 1 or shape[0] != n_src:
            what = "one per node" if rows.group is None else f"one per node of group {rows.group}"
            raise DNWGraphError(f"'x' must have {n_src} rows ({what}) (got shape {shape})")
        expected = (rows.last - rows.first, *shape[1:])
        if add_to is not None and static_shape(add_to) != expected:
            raise DNWGraphError(f"'add_to' must have shape {expected} (got {tuple(add_to.shape)})")
        if edge_index is None or torch.compiler.is_compiling():  # compiled: checked when run
            return None
        return kernels.candidate_order(self.edge_index, edge_index, self.num_nodes)

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
        rows = self.source_groups.check(group, first_row, last_row)
        self._check_call(x, None, None, rows, out)
        if not out.is_contiguous():  # no in-place view of it: the functional path
            return out.copy_(
                self(x, group=group, first_row=first_row, last_row=last_row, add_to=out)
            )
        kernels.accumulate_(self, out.view(out.size(0), -1), x.reshape(x.size(0), -1), rows)
        return out

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_nodes={self.num_nodes}, "
            f"num_edges={self.num_edges}, k={self.k}, selection={self.selection.name!r}, "
            f"impl={self.impl!r}"
            + (f", grad_every={self.grad_every})" if self.grad_every > 1 else ")")
        )
