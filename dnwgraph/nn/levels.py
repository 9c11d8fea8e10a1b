r"""Level-by-level execution of a static neural graph (a DAG of node operations).

For a wiring with topological levels :math:`L_0, L_1, \dots` the node inputs are accumulated in
one tensor :math:`I` (``[N, B, *S]``) and every level is one batched step:

.. math::
    Z_{L_l} = f_{L_l}\big(I_{L_l}\big), \qquad I \leftarrow I + A_{:, L_l}\, Z_{L_l}

where :math:`f_{L_l}` is the level's node op (one grouped operation over its nodes) and
:math:`A_{:, L_l} Z_{L_l}` is the fused sparse aggregation of the edges leaving the level
(:class:`~dnwgraph.WiringConv` with ``source_groups`` = the levels, ``forward(z, group=l)``):
no per-edge messages are formed.  Nodes never feed nodes of their own level, so when level
:math:`l` runs, :math:`I_{L_l}` already holds every contribution it will ever receive.

::

    I = x at the input nodes, 0 elsewhere      [N, B, *S]
    for l, nodes in enumerate(levels):          (nodes with outgoing candidates only)
        z = node_op[l](I[nodes])               one grouped op over the level
        I = I + conv(z, group=l)               fused sparse matmul, [N, B, *S]
    return I                                    read at the output nodes
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dnwgraph._tracing import static_shape
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.nn.kernels import LevelChain, LinearPool, as_range, hooked
from dnwgraph.nn.node_ops import create_node_op
from dnwgraph.nn.selected_levels import SelectedLevels, node_op_state
from dnwgraph.nn.spec import WiringSpec, check_spec
from dnwgraph.nn.wiring_conv import WiringConv

#: Prebuilt node ops: one module per executed level, or a function of the levels' sizes
#: returning them (called after the wiring layer is built).
NodeOps = Sequence[nn.Module] | Callable[[list[int]], Sequence[nn.Module]]


class LevelExecutor(nn.Module):
    r"""Runs the nodes of a static wiring level by level, aggregating through a learned wiring.

    Only nodes with at least one outgoing candidate edge get a node op (the others' outputs
    would be unused); node :math:`v` of level :math:`l` is node ``groups[l].index(v)`` of
    ``node_ops[l]``.

    Args:
        wiring (Wiring): an acyclic candidate wiring.
        spec (WiringSpec): the learned wiring's parameters: the edge budget, selection,
            backend and initialisation of the :class:`~dnwgraph.WiringConv`, and the node op
            of every node (:func:`~dnwgraph.nn.node_ops.list_node_ops`).
        node_ops (sequence of nn.Module or callable, optional): the node ops themselves, one
            module per executed level (in place of ``spec.node_op``, which is then unused), or
            a function of the executed levels' sizes returning them, called after the wiring
            layer is built (so that a seeded model draws its parameters in that order).
            (default: ``None``)

    Shapes:
        - **input:** initial node inputs :math:`[N, B, *S]`; for a *chain* wiring (the levels
          are ascending node ranges whose edges reach later ranges, e.g. a
          :func:`~dnwgraph.block_dag`) also the inputs of the first level only,
          :math:`[|L_0|, B, *S]` (the other nodes start at zero; the first level's node op
          may change the spatial size :math:`S \to S'`)
        - **output:** accumulated node inputs :math:`[N, B, *S]`; from first-level inputs,
          those of the nodes after the first level, :math:`[N - \mathrm{hi}_0, B, *S']`
          (:math:`\mathrm{hi}_0` the node after the first level); with ``rows``, those rows

    Raises:
        ValueError: for a cyclic wiring, bad options, a count of ``node_ops`` that is not
            the number of executed levels, or a wiring of :data:`MAX_LEVELS` executed levels
            or more, or whose level plans would not fit in the memory available (the
            message states the estimate).
        TypeError: a ``spec`` that is not a :class:`~dnwgraph.nn.WiringSpec`.

    Examples:
        >>> from dnwgraph import Wiring, block_dag
        >>> wiring = Wiring([(0, 2), (1, 2), (2, 3), (0, 3)])
        >>> ex = LevelExecutor(wiring, WiringSpec(3, node_op="neuron"))
        >>> ex(torch.randn(4, 5)).shape
        torch.Size([4, 5])
        >>> pool = LevelExecutor(block_dag([2, 3, 3]), WiringSpec(10), node_ops=[
        ...     nn.MaxPool2d(2), nn.ReLU()])  # level 0 halves the image
        >>> pool(torch.randn(2, 4, 8, 8)).shape  # the first level's inputs only
        torch.Size([6, 4, 4, 4])
        >>> pool(torch.randn(2, 4, 8, 8), rows=slice(5, 8)).shape  # the last level
        torch.Size([3, 4, 4, 4])
    """

    def __init__(self, wiring: Any, spec: WiringSpec, *, node_ops: NodeOps | None = None) -> None:
        super().__init__()
        spec = check_spec(spec)
        self.spec = spec
        if not getattr(wiring, "acyclic", True):
            raise DNWGraphError(
                "a static neural graph needs an acyclic wiring (got acyclic=False); use "
                "DiscreteTimeNeuralGraph or ContinuousTimeNeuralGraph for cyclic wirings"
            )
        self.num_nodes = int(wiring.num_nodes)
        operating = wiring.out_degree().cpu() > 0
        groups = [lvl[operating[lvl]] for lvl in wiring.levels()]
        groups = [g.cpu() for g in groups if g.numel()]
        # contiguous levels (the block DAGs of the paper) are read with a cheap narrow()
        self.ranges = [as_range(g) for g in groups]
        #: the fused execution of the levels: in the node ids for a chain wiring, else with
        #: the nodes numbered level by level (the layer and every public id keep the
        #: caller's numbering)
        self.chain = LevelChain.of(wiring.edge_index, self.ranges, self.num_nodes)
        if self.chain is None:
            self.chain = LevelChain.renumbered(groups, self.num_nodes)
        _check_depth(self.chain, int(wiring.edge_index.shape[1]), spec.impl)
        self.conv = WiringConv(
            wiring, spec.ratio, spec.selection, source_groups=groups, **spec.conv_kwargs()
        )
        sizes = [g.numel() for g in groups]
        if node_ops is None:
            opts = spec.node_op_options
            ops: Sequence[nn.Module] = [create_node_op(spec.node_op, n, **opts) for n in sizes]
        else:
            ops = _check_node_ops(node_ops(sizes) if callable(node_ops) else node_ops, sizes)
        self.node_ops = nn.ModuleList(ops)
        for i, g in enumerate(groups):
            self.register_buffer(f"group_{i}", g, persistent=False)

    def train(self, mode: bool = True) -> LevelExecutor:
        if not mode and self.chain is not None:  # the kept gradient memory is given back
            self.chain.forget_memory()
        return super().train(mode)

    @property
    def groups(self) -> list[Tensor]:
        """Node ids of every executed level (nodes with outgoing candidates), ascending."""
        return [getattr(self, f"group_{i}") for i in range(len(self.node_ops))]

    def forward(
        self,
        x: Tensor,
        rows: Tensor | slice | None = None,
        pool: LinearPool | None = None,
    ) -> Tensor:
        r"""Run every level on the initial inputs ``x``.

        Args:
            x (Tensor): initial node inputs ``[N, B, *S]``; for a chain wiring also the
                inputs of the first level only, ``[|L_0|, B, *S]`` (see the class docstring).
            rows (LongTensor or slice, optional): return only the accumulated inputs of these
                nodes, ``[len(rows), B, *S]`` (e.g. the output nodes: the other rows are then
                never assembled, nor their zero gradients); a ``slice`` of node ids (step 1)
                is read as a view, without indexing.  From first-level inputs, only nodes
                after the first level. (default: ``None``, every node; from first-level
                inputs, every node after the first level)
            pool (LinearPool, optional): a map :math:`P` of node features ``[n, B, *S]`` to
                ``[n, B, *R]``, node by node, that is **linear** (e.g. the mean over the
                spatial positions of a readout, :class:`LinearPool`).  The result is then
                :math:`P(I_{\text{rows}})`.  When the rows are trailing nodes without
                out-edges (a model's output nodes) it is computed as
                :math:`P(x_{\text{rows}}) + \sum_l A_{\text{rows}, L_l} P(Z_{L_l})`: the
                products into those rows (and their edge gradients) run on the pooled
                features only. (default: ``None``)

        Raises:
            ValueError: ``x`` of another shape, first-level inputs for a wiring that is not a
                chain, ``rows`` that the result does not hold, or ``pool`` without ``rows``.
        """
        first = self._first_level_only(x)
        chain = self.chain
        if isinstance(rows, slice):
            in_ids = first and chain is not None and chain.order is None
            rows = self._check_slice(rows, chain.first_level_end if in_ids else 0)
        if pool is not None and rows is None:
            raise DNWGraphError("'pool' needs 'rows' (the nodes whose inputs are pooled)")
        with self.conv.plan_cache.hold():  # one weight state per pass
            selected = self._selected_levels(x)  # inference by the selected edges' levels
            if selected is None and chain is not None and chain.runs(self.conv):
                return chain.run(self.conv, self.node_ops, self, x, rows, pool, first)
            if first:  # every node's inputs; by default the nodes after the first level
                rows = self._after_first_level() if rows is None else rows
                x = self._every_node(x)
            if selected is not None:  # as the pull chain, in the promoted dtype
                dtype = torch.promote_types(x.dtype, self.conv.edge_weight.dtype)
                return selected(x.to(dtype), rows, pool)
            out = self.plain_forward(x)
            out = out if rows is None else out[rows]
            return out if pool is None else pool.pool(out)

    def _selected_levels(self, x: Tensor) -> SelectedLevels | None:
        r"""The run of the selected edges by their own levels
        (:class:`~dnwgraph.nn.selected_levels.SelectedLevels`), for inference of a deep
        wiring: in eval mode without autograd, for a wiring that runs as a pull chain and
        whose selected edges have at most a quarter of its levels.  It is built at the second
        call for one state of the edge weights (kept with the layer's plans), so a loop that
        evaluates once per training step never builds it, and rebuilt when the node ops'
        modules change.  Not with hooks on the node ops or the layer, node ops that cannot be
        regrouped (:func:`~dnwgraph.nn.selected_levels.node_op_state`), a frozen plan cache,
        a selection that draws at every call or keeps every candidate, or under autocast,
        tracing or compilation: the candidates' levels run then."""
        if self.training or torch.is_grad_enabled() or self.chain is None:
            return None
        conv, ops = self.conv, list(self.node_ops)
        # first, as it reads no tensor under tracing: also a selection that keeps its mask
        if not self.chain.pulls_now(conv, x):
            return None
        if not ops or conv.plan_cache.frozen or conv.k >= conv.num_edges:
            return None
        mask = conv.active_mask()  # selects for the current weights (the plans reset then)
        plans = conv.plan_cache.plans
        selected = plans.get("selected levels")
        if selected == "candidates":  # decided for this weight state
            return None
        state = None if hooked(ops[0]) else node_op_state(ops)  # hooked: also global hooks
        if state is None:
            return None
        if selected is None:  # the first call at this weight state: the candidates' levels
            plans["selected levels"] = "seen"
            return None
        if selected == "seen" or selected.modules != state.modules:
            selected = SelectedLevels.build(self, mask, LevelExecutor, state) or "candidates"
            plans["selected levels"] = selected
            if not isinstance(selected, SelectedLevels):
                return None
        selected.refresh(state)  # the node ops' tensors as they are now
        return selected

    def plain_forward(self, x: Tensor) -> Tensor:
        r"""The level loop as the maths reads, for every node's inputs ``x`` ``[N, B, *S]``:
        :math:`I \leftarrow I + A_{:, L_l} f_l(I_{L_l})` level by level (the oracle of the
        fused chain)."""
        acc, groups = x, self.groups
        for i, op in enumerate(self.node_ops):
            rng = self.ranges[i]  # a view where the level is a node range
            inputs = acc.narrow(0, *rng) if rng else acc.index_select(0, groups[i])
            acc = acc + self.conv(op(inputs), group=i)
        return acc

    def _every_node(self, x: Tensor) -> Tensor:
        """Every node's inputs from the first level's (the other nodes at zero)."""
        full = x.new_zeros(self.num_nodes, *x.shape[1:])
        return full.index_copy(0, self.get_buffer("group_0").to(x.device), x)

    def _after_first_level(self) -> Tensor:
        """The nodes after the first level, ascending."""
        after = torch.ones(self.num_nodes, dtype=torch.bool)
        first = self.get_buffer("group_0")
        after[first.cpu()] = False
        return after.nonzero().view(-1).to(first.device)

    def _first_level_only(self, x: Tensor) -> bool:
        """Whether ``x`` holds the first level's inputs only (checked: else every node's)."""
        n = self.num_nodes
        first = self.conv.source_groups.sizes[0] if len(self.conv.source_groups) else None
        shape = static_shape(x)  # a choice that a trace fixes: not recorded
        if len(shape) >= 2 and shape[0] == n:
            return False
        if len(shape) >= 2 and shape[0] == first:
            if self.chain is None:
                raise DNWGraphError(
                    f"'x' holds the inputs of the first level only ([{first}, B, *]), which "
                    "needs a chain wiring (levels that are ascending node ranges whose edges "
                    "reach later ranges, e.g. a block_dag); give every node's input "
                    f"[{n}, B, *] (got {tuple(x.shape)})"
                )
            return True
        also = f", or [{first}, B, *] (the first level's inputs)" if self.chain is not None else ""
        raise DNWGraphError(
            f"'x' must have shape [N, B, *] with N={n}{also} (got {tuple(x.shape)})"
        )

    def _check_slice(self, rows: slice, base: int) -> slice:
        lo, hi, step = rows.indices(self.num_nodes)
        if step != 1 or lo < base or hi < lo:
            held = f"[{base}, {self.num_nodes})"
            raise DNWGraphError(
                f"'rows' as a slice must be ascending node ids with step 1 within {held} "
                f"(got {rows})"
            )
        return slice(lo, hi)

    def node_outputs(self, x: Tensor) -> Tensor:
        r"""Every node's output :math:`Z` ``[N, B, *S]`` (zero for nodes without a node op),
        for analysis: the same computation as :meth:`forward`, from every node's input
        ``x`` ``[N, B, *S]``."""
        if x.dim() < 2 or x.size(0) != self.num_nodes:
            raise DNWGraphError(
                f"'x' must have shape [N, B, *] with N={self.num_nodes} (got {tuple(x.shape)})"
            )
        acc, z, groups = x, torch.zeros_like(x), self.groups
        with self.conv.plan_cache.hold():  # one weight state per pass
            for i, op in enumerate(self.node_ops):
                g = groups[i]
                out = op(acc.index_select(0, g))
                z = z.index_copy(0, g, out)
                acc = acc + self.conv(out, group=i)
        return z


#: The most executed levels a static wiring may have (each level is one step of the chain).
MAX_LEVELS = 100_000


def _check_depth(chain: LevelChain, num_edges: int, impl: str) -> None:
    """Refuse a wiring of too many levels, or whose level plans cannot be held, before
    building anything: the estimate is that of the chain that will run
    (:meth:`LevelChain.plan_bytes`: a pull chain's grows with the candidates and the nodes
    only, a push chain's also with levels x nodes)."""
    levels, n = len(chain.ranges), chain.num_nodes
    need, free = chain.plan_bytes(num_edges, impl), _available_memory()
    if levels < MAX_LEVELS and (free is None or need <= free):
        return
    kind, per_feature, per = "push", "", chain.pass_bytes(impl)
    if per is not None:  # a pull chain's passes: the same per feature whatever the depth
        per_feature = f", and {per / 2**10:.0f} KiB per feature of a batch in training"
        kind = "pull"
    raise DNWGraphError(
        f"a static wiring with {levels} executed levels over {n} nodes and {num_edges} "
        f"candidates needs about {need / 2**30:.1f} GiB of level plans per weight state as a "
        f"{kind} chain{per_feature} (expected fewer than {MAX_LEVELS} levels and plans "
        f"within the {_gib(free)} of memory available)"
    )


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux ``/proc/meminfo``), ``None`` elsewhere."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _gib(free: int | None) -> str:
    return "unknown amount" if free is None else f"{free / 2**30:.1f} GiB"


def _check_node_ops(ops: Sequence[nn.Module], sizes: list[int]) -> list[nn.Module]:
    ops = list(ops)
    if len(ops) != len(sizes):
        raise DNWGraphError(
            f"'node_ops' must hold one module per executed level: {len(sizes)} (the levels "
            f"with outgoing candidate edges, of sizes {sizes}) (got {len(ops)})"
        )
    for i, op in enumerate(ops):
        if not isinstance(op, nn.Module):
            raise DNWGraphTypeError(
                f"'node_ops[{i}]' must be an nn.Module (got {type(op).__name__})"
            )
    return ops
