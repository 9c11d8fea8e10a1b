r"""The fused level chain of a static neural graph: the speed and memory machinery behind
:class:`~dnwgraph.nn.LevelExecutor`, tested against its plain level loop.

A *chain* wiring has levels that are ascending node ranges :math:`[lo_l, hi_l)` whose edges
reach only later ranges (the block DAGs of the paper, numbered level by level).  Then
level :math:`l` updates only the inputs of the nodes after it,

.. math::
    I_{\ge hi_l} \leftarrow I_{\ge hi_l} + A_{\ge hi_l,\, L_l}\, f_l(I_{L_l}),

one sparse product with the addition fused in; the rows before :math:`hi_l` are final.  No
level touches the :math:`[N, B, *S]` tensor as a whole:

* training: views of the remaining inputs (:class:`_ChainSplit`) whose gradients are written
  into one buffer per backward pass (:class:`_GradWorkspace`), kept between passes on a CPU
  (:class:`SpareMemory`);
* inference: every level added into one buffer in place (``accumulate_``);
* a linear readout (:class:`LinearPool`) of trailing sink nodes: their products run on the
  pooled features (:class:`_PoolAlongside`), exact since the pool is linear.

That *push* form pays, at every level, for the inputs of all later nodes (and for a
gradient of all the edge weights): right for a few wide levels (the block DAGs), not for a
deep DAG of hundreds of small levels.  A chain of more than :data:`SHORT_CHAIN` levels that
tile the nodes before the sinks runs as a *pull* chain instead (:mod:`.pull`: each level
gathers its inputs from the outputs so far, at the cost of its own edges), where the layer
allows it (:func:`~.pull.pulls`: a sparse or automatic backend, eager mode, no hooks).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from dnwgraph._tracing import in_func_transform
from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels.first_order import first_order
from dnwgraph.nn.kernels.level_order import LevelIds, LevelOrder
from dnwgraph.nn.kernels.node_first import hooked as _hooked
from dnwgraph.nn.kernels.node_first import records_grad as _records_grad
from dnwgraph.nn.kernels.pull import NO_DOUBLE_BACKWARD_LEVELS, PULLED_IMPLS, pull_chain, pulls


class LinearPool(Protocol):
    r"""A linear map :math:`P` of every node's features, node by node (e.g. a readout's
    spatial mean), with its adjoint: what :meth:`LevelExecutor.forward
    <dnwgraph.nn.LevelExecutor.forward>` needs to pool the output nodes' inputs before
    summing them."""

    def pool(self, x: Tensor) -> Tensor:
        """:math:`P(x)`: ``[n, B, *S]`` to ``[n, B, *R]``."""
        ...

    def pool_adjoint_(self, grad: Tensor, h: Tensor) -> Tensor:
        """``grad += P^T(h)`` in place (``grad`` ``[n, B, *S]``, ``h`` ``[n, B, *R]``);
        returns ``grad``."""
        ...


#: Levels up to which a chain pushes each level's products into the later nodes (deeper: it
#: pulls, see the module docstring; a push chain that cannot pull hands its node ops copies
#: of the level's rows, see :meth:`LevelChain._own`).
SHORT_CHAIN = 8

#: Bytes per node and feature of a batch that a pull chain's training pass holds: the
#: outputs of every level and their gradient, the pulled inputs' gradient, what the node ops
#: keep (measured: about 18 on the random DAG of 8,192 nodes of ``bench_depth.py``).
PULL_PASS_BYTES = 20


class LevelChain:
    """The fused execution of a chain wiring (see the module docstring).

    Args:
        ranges (list of (int, int)): ``(start, size)`` of every executed level's nodes.
        num_nodes (int): :math:`N`.
        sink_start (int): the first of the trailing nodes without a node op.
    """

    def __init__(
        self,
        ranges: list[tuple[int, int]],
        num_nodes: int,
        sink_start: int,
        order: LevelOrder | None = None,
    ) -> None:
        self.ranges, self.num_nodes, self.sink_start = ranges, num_nodes, sink_start
        #: the level-by-level numbering the chain runs in (``None``: the node ids themselves)
        self.order = order
        self.spare = SpareMemory()
        #: the level bounds of a deep chain whose levels tile the nodes before the sinks
        #: (``[0, hi_0, ..., hi_{L-1}, N]``: a pull chain), else ``None``
        self.pull_bounds: list[int] | None = None
        ends = [lo + size for lo, size in ranges]
        if len(ranges) > SHORT_CHAIN and [lo for lo, _ in ranges] == [0, *ends[:-1]]:
            self.pull_bounds = [0, *ends, num_nodes] if ends[-1] == sink_start else None

    @classmethod
    def of(
        cls, edge_index: Tensor, ranges: list[tuple[int, int] | None], num_nodes: int
    ) -> LevelChain | None:
        """The chain of levels ``ranges`` over the edges ``edge_index``, or ``None`` when
        they are not a chain (a level that is no range, or an edge into an earlier node).

        Example:
            >>> edge_index = torch.tensor([[0, 1, 2], [2, 2, 3]])  # levels {0, 1}, {2}, {3}
            >>> LevelChain.of(edge_index, [(0, 2), (2, 1)], 4).first_level_end
            2
            >>> backward = torch.tensor([[2], [1]])  # from the second level into the first
            >>> LevelChain.of(backward, [(0, 2), (2, 1)], 4) is None
            True
        """
        start = 0
        end = torch.full((num_nodes,), -1, dtype=torch.long)  # the end of each node's level
        for rng in ranges:
            if rng is None or rng[0] < start:
                return None
            lo, size = rng
            end[lo : lo + size] = lo + size
            start = lo + size
        src, dst = edge_index.cpu()
        if bool((dst < end[src]).any()):
            return None
        sink = start if ranges else 0
        return cls(ranges, num_nodes, sink)  # type: ignore[arg-type]

    @classmethod
    def renumbered(cls, groups: Sequence[Tensor], num_nodes: int) -> LevelChain:
        """The chain of any DAG, run with its nodes numbered level by level
        (``LevelOrder``): ``groups`` are the executed levels' nodes (ascending ids)."""
        order = LevelOrder(groups, num_nodes)
        ranges, start = [], 0
        for g in groups:
            ranges.append((start, g.numel()))
            start += g.numel()
        return cls(ranges, num_nodes, start, order)

    def runs(self, conv: nn.Module) -> bool:
        """Whether the chain runs ``conv`` now: always in the node ids themselves; in a level
        order, in eager mode without hooks or an explainer (which see the layer's own
        calls: the executor's plain loop runs then); never under a :mod:`torch.func`
        transform, which cannot enter its hand-written ``autograd.Function``."""
        if in_func_transform():
            return False
        if self.order is None:
            return True
        traced = torch.compiler.is_compiling() or torch.jit.is_tracing()
        return not (traced or _hooked(conv) or getattr(conv, "explain", False))

    def pulls_for(self, impl: str) -> bool:
        """Whether the chain runs as a pull chain for a layer of backend ``impl`` (as long
        as the layer allows it at the call, :func:`~.pull.pulls`: no hooks, autocast, ...)."""
        return self.pull_bounds is not None and impl in PULLED_IMPLS

    def pulls_now(self, conv: Any, x: Tensor) -> bool:
        """Whether a call of the chain over ``conv`` on ``x`` runs as a pull chain now
        (:meth:`pulls_for` the layer's backend, and eager mode without autocast, hooks on the
        layer or an explainer, a selection that keeps its mask per weight state)."""
        return self.pulls_for(conv.impl) and pulls(conv, x)

    def plan_bytes(self, num_edges: int, impl: str) -> int:
        r"""About how many bytes the plans of one weight state of the chain take for a
        layer of backend ``impl`` and ``num_edges`` candidates (:math:`E`), with :math:`N`
        nodes and :math:`L` levels: a pull chain's :math:`80 E + 32 N` whatever the depth
        (measured on the random DAGs of ``benchmarks/bench_depth.py``: the candidates sorted
        by target, the selected edges, the key's copy of the weights, the gradient's edge
        blocks), a push chain's :math:`64 E + 8 L N` (a row pointer of the nodes after each
        level).  A pull chain's training pass adds :data:`PULL_PASS_BYTES` per node and
        feature of a batch, as any model's activations do."""
        n, levels = self.num_nodes, len(self.ranges)
        if self.pulls_for(impl):
            return 80 * num_edges + 32 * n
        return 64 * num_edges + 8 * levels * n

    def pass_bytes(self, impl: str) -> int | None:
        """Bytes per feature of a batch that a training pass of the chain's pull form takes
        beyond the model's activations (:data:`PULL_PASS_BYTES` per node), or ``None`` for a
        push chain (its buffers are the activations')."""
        return PULL_PASS_BYTES * self.num_nodes if self.pulls_for(impl) else None

    @property
    def first_level_end(self) -> int:
        """The first node after the first level."""
        lo, size = self.ranges[0]
        return lo + size

    def forget_memory(self) -> None:
        """Give back the gradient memory kept between training passes."""
        self.spare = SpareMemory()

    def run(
        self,
        conv: Any,
        node_ops: Sequence[nn.Module],
        owner: nn.Module,
        x: Tensor,
        rows: Tensor | slice | None,
        pool: LinearPool | None,
        first: bool,
    ) -> Tensor:
        """:meth:`LevelExecutor.forward <dnwgraph.nn.LevelExecutor.forward>` of a chain:
        ``x`` every node's inputs, or the first level's (``first``); ``owner`` the module whose
        parameters decide whether autograd records."""
        base = self.first_level_end if first else 0
        back = None
        if self.order is not None:  # into the level order, and back at the end
            conv, x, rows, back = self.order.enter(conv, x, rows, first, base)
        pulled = self._pulled(conv, node_ops, owner, x, rows, first, base)
        if pulled is not None:
            out = pulled if pool is None else pool.pool(pulled)
        elif pool is None:
            out = self._chain(conv, node_ops, owner, x, rows, first, base)
        elif self._pools_sinks(conv, rows):  # type: ignore[arg-type]
            out = self._pooled(conv, node_ops, owner, x, rows, pool, first, base)  # type: ignore[arg-type]
        else:
            out = pool.pool(self._chain(conv, node_ops, owner, x, rows, first, base))
        return out if back is None else out.index_select(0, back)

    def _pulled(
        self,
        conv: Any,
        node_ops: Sequence[nn.Module],
        owner: nn.Module,
        x: Tensor,
        rows: Tensor | slice | None,
        first: bool,
        base: int,
    ) -> Tensor | None:
        """``rows`` of the inputs after a pull chain (:func:`~.pull.pull_chain`), or ``None``
        when the chain does not pull (see the module docstring)."""
        if self.pull_bounds is None or not pulls(conv, x):
            return None
        sinks_only = rows is not None and rows_from(rows) >= self.sink_start
        done = pull_chain(
            conv,
            self.pull_bounds,
            node_ops,
            x,
            first=first,
            keep=not sinks_only,
            grad=_records_grad(owner, x),
        )
        if done is None:
            return None
        levels, sinks = done
        if sinks_only:
            return self.read(sinks, rows, self.sink_start)
        return self.read(torch.cat([*levels, sinks]), rows, base)

    def _memory(self, conv: Any, x: Tensor) -> SpareMemory | None:
        """Where a chain's gradient buffer comes from when it never leaves the chain (the
        first product has no ``add_to``, no hooks see the gradients): memory kept from the
        last backward pass on a CPU (a fresh buffer there is paid in page faults), ``None``
        (a new buffer) otherwise."""
        return self.spare if x.device.type == "cpu" and not _hooked_layer(conv) else None

    def read(self, acc: Tensor, rows: Tensor | slice | None, base: int) -> Tensor:
        """``rows`` of ``acc``, the accumulated inputs of nodes ``base, ..., N - 1``."""
        if rows is None:
            return acc
        if isinstance(rows, slice):
            return acc[rows.start - base : rows.stop - base]
        if base:
            traced = torch.compiler.is_compiling() or torch.jit.is_tracing()
            if not traced and rows_from(rows) < base:
                raise DNWGraphError(
                    f"'rows' must be nodes after the first level (>= {base}) when 'x' holds "
                    f"the first level's inputs only (got node {rows_from(rows)})"
                )
            rows = rows - base
        return acc.index_select(0, rows)

    def _chain(
        self,
        conv: Any,
        node_ops: Sequence[nn.Module],
        owner: nn.Module,
        x: Tensor,
        rows: Tensor | slice | None,
        first: bool,
        base: int,
    ) -> Tensor:
        r"""The same sums when level :math:`l` is the node range :math:`[lo_l, hi_l)` and its
        edges reach only nodes :math:`\ge hi_l`: the inputs of the nodes after the level are
        updated as :math:`I_{\ge hi} \leftarrow I_{\ge hi} + A_{\ge hi, l}\, Z_l` in one
        sparse product (the addition fused in), and rows before :math:`hi_l` are final.  No
        level touches the :math:`[N, B, *S]` tensor as a whole; the result is concatenated
        once at the end.  With the first level's inputs only (``first``), the first product
        starts the inputs of nodes :math:`\ge hi_0` (``base``) from zero; the gradient buffer
        then never leaves the chain, and on a CPU its memory is kept for the next pass."""
        # compiled or traced: no Python-side state, no data-dependent branch
        compiling = torch.compiler.is_compiling() or torch.jit.is_tracing()
        # in place: accumulate_ would skip the conv's hooks; compiled: functional ops only
        if not _records_grad(owner, x) and not _hooked_layer(conv) and not compiling:
            return self.read(self._inplace(conv, node_ops, x, first), rows, base)
        n = self.num_nodes
        done: list[Tensor] = []
        # the rows before the last level are read only when asked for
        keep = compiling or rows is None or rows_from(rows) < self.sink_start
        rest, start = x, 0  # rest: the inputs of nodes start, ..., n - 1
        levels = list(enumerate(node_ops))
        if first:
            rest = conv(node_ops[0](x), group=0, first_row=base)
            start, levels = base, levels[1:]
        workspace = _GradWorkspace(n, base, self._memory(conv, x) if first else None)
        for i, op in levels:
            lo, size = self.ranges[i]  # type: ignore[misc]
            hi = lo + size
            if compiling:  # the compiler plans the gradient buffers itself
                before, inputs, tail = rest.split([lo - start, hi - lo, n - hi])
            else:
                before, inputs, tail = _ChainSplit.apply(rest, start, lo, hi, workspace)
            if keep:
                done += [before, inputs]
            rest = conv(op(self._own(inputs)), group=i, first_row=hi, add_to=tail)
            start = hi
        if rows is None:
            return torch.cat([*done, rest]) if done else rest
        if isinstance(rows, slice) and rows.start >= start:  # all in the last block
            return rest[rows.start - start : rows.stop - start]
        if isinstance(rows, Tensor) and not compiling and rows_from(rows) >= start:
            return rest.index_select(0, rows - start)
        return self.read(torch.cat([*done, rest]) if done else rest, rows, base)

    def _own(self, inputs: Tensor) -> Tensor:
        """A level's inputs as the node op sees them: in a deep chain a copy of their rows,
        so that what the op keeps for backward does not hold the remaining inputs of all
        later nodes alive (memory of nodes x levels); in a short chain the view itself."""
        return inputs.clone() if len(self.ranges) > SHORT_CHAIN else inputs

    def _pools_sinks(self, conv: Any, rows: Tensor | slice) -> bool:
        """Whether ``rows`` are all among the trailing nodes without out-edges of a chain,
        so that their products can run on pooled features (eager mode only)."""
        empty = rows.stop <= rows.start if isinstance(rows, slice) else rows.numel() == 0
        if self.sink_start >= self.num_nodes or empty:
            return False
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or _hooked_layer(conv):
            return False
        return rows_from(rows) >= self.sink_start

    def _pooled(
        self,
        conv: Any,
        node_ops: Sequence[nn.Module],
        owner: nn.Module,
        x: Tensor,
        rows: Tensor | slice,
        pool: LinearPool,
        first: bool,
        base: int,
    ) -> Tensor:
        r"""The chain (:meth:`_chain`) over the nodes before the sinks :math:`[s, N)`, and
        the sinks' inputs pooled,

        .. math::
            P(I_{[s, N)}) = P(X_{[s, N)}) + A_{[s, N),\, < s}\, P(Z),

        one product over every level's pooled outputs :math:`P(Z)` ``[s, B, *R]`` once the
        levels have run (exact since :math:`P` is linear): one plan, one sparse product and
        one edge gradient for the sinks per pass, on ``[*, B, *R]`` instead of
        ``[*, B, *S]``.  With the first level's inputs only (``first``), every node after
        the first level starts from zero."""
        n, s = self.num_nodes, self.sink_start
        levels = list(enumerate(node_ops))
        pooled: list[Tensor] = []  # P(Z) of every level, in level order
        sinks = None  # P(X) of the sinks (zero from the first level's inputs)
        if first:  # the first level's product starts the others' inputs
            z, p = _PoolAlongside.apply(levels[0][1](x), pool)
            rest = conv(z, group=0, first_row=base, last_row=s) if base < s else None
            pooled.append(p)
            levels = levels[1:]
        else:
            rest, x_sinks = x.split([s, n - s])  # one gradient buffer for x (a cat), no fills
            sinks = pool.pool(x_sinks)
        if not _records_grad(owner, x):  # in place, as _inplace
            acc = rest if first else rest.clone(memory_format=torch.contiguous_format)
            for i, op in levels:  # none when the first level is the last (acc is None)
                lo, size = self.ranges[i]  # type: ignore[misc]
                hi = lo + size
                z = op(acc[lo - base : hi - base])  # type: ignore[index]
                if hi < s:
                    out = acc[hi - base :]  # type: ignore[index]
                    conv.accumulate_(out, z, group=i, first_row=hi, last_row=s)
                pooled.append(pool.pool(z))
        else:
            start = base  # rest: the inputs of nodes start, ..., s - 1
            # the gradient of x (not first) is a concatenation (split's backward): a new tensor
            workspace = _GradWorkspace(s, base, self._memory(conv, x))
            for i, op in levels:
                lo, size = self.ranges[i]  # type: ignore[misc]
                hi = lo + size
                _, inputs, tail = _ChainSplit.apply(rest, start, lo, hi, workspace)
                z, p = _PoolAlongside.apply(op(self._own(inputs)), pool)
                rest = conv(z, group=i, first_row=hi, last_row=s, add_to=tail) if hi < s else tail
                pooled.append(p)
                start = hi
        if pooled:  # (a wiring without levels has no product into its sinks)
            every = self._every_node(pooled)
            sinks = conv(every, group=None, first_row=s, last_row=n, add_to=sinks)
        return self.read(sinks, rows, s)  # type: ignore[arg-type]

    def _every_node(self, per_level: list[Tensor]) -> Tensor:
        """Every node's rows ``[N, *]`` from those of the executed levels (in level order):
        zero for the nodes without a node op."""
        like, parts, end = per_level[0], [], 0
        for (lo, size), rows in zip(self.ranges, per_level, strict=True):  # type: ignore[misc]
            if lo > end:
                parts.append(like.new_zeros(lo - end, *like.shape[1:]))
            parts.append(rows)
            end = lo + size
        parts.append(like.new_zeros(self.num_nodes - end, *like.shape[1:]))
        return torch.cat(parts)

    def _inplace(self, conv: Any, node_ops: Sequence[nn.Module], x: Tensor, first: bool) -> Tensor:
        """The chain without autograd: one copy of ``x`` (with the first level's inputs only,
        the first level's product), every level added into it in place (no per-level output
        buffers, no concatenation)."""
        levels = list(enumerate(node_ops))
        if first:
            base = self.first_level_end
            acc = conv(node_ops[0](x), group=0, first_row=base)
            levels = levels[1:]
        else:
            base, acc = 0, x.clone(memory_format=torch.contiguous_format)
        for i, op in levels:
            lo, size = self.ranges[i]  # type: ignore[misc]
            hi = lo + size
            inputs = acc[lo - base : hi - base]
            conv.accumulate_(acc[hi - base :], op(inputs), group=i, first_row=hi)
        return acc


def _hooked_layer(conv: Any) -> bool:
    """Whether calling the layer runs hooks (a level-order view never does: the chain runs
    it only for a layer without hooks)."""
    return not isinstance(conv, LevelIds) and _hooked(conv)


def rows_from(rows: Tensor | slice) -> int:
    """The smallest of ``rows`` (for a tensor on a GPU, a synchronisation: models pass
    their output nodes as a ``slice`` when they are a node range)."""
    if isinstance(rows, slice):
        return rows.start
    return int(rows.min()) if rows.numel() else 0


class _PoolAlongside(torch.autograd.Function):
    r"""``(z, P(z))``: a level's outputs and their pooled features.  Backward adds
    :math:`P^\top` of the pooled features' gradient into the gradient of ``z`` in place
    (the gradient the level's own product returned for it: a fresh tensor), instead of
    autograd summing it with a full-size, mostly zero tensor."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, pool: LinearPool) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        ctx.pool = pool
        ctx.shape, ctx.dtype = z.shape, z.dtype
        return z.view_as(z), pool.pool(z.detach())

    @staticmethod
    @first_order(NO_DOUBLE_BACKWARD_LEVELS)
    def backward(
        ctx: Any, grad_z: Tensor | None, grad_pooled: Tensor | None
    ) -> tuple[Tensor | None, None]:  # type: ignore[override]
        if grad_pooled is None:
            return grad_z, None
        if grad_z is None:
            grad_z = grad_pooled.new_zeros(ctx.shape, dtype=ctx.dtype)
        return ctx.pool.pool_adjoint_(grad_z, grad_pooled.to(grad_z.dtype)), None


class SpareMemory:
    """The memory of a chain's last gradient buffer, kept for the next backward pass.

    It is handed out again only once no tensor uses the last buffer any more (a weak
    reference to it: views keep their base alive), so two passes in flight never share it;
    a copy of the module (``deepcopy``, pickling) starts without it.
    """

    def __init__(self) -> None:
        self._storage: Any = None
        self._dtype: torch.dtype | None = None
        self._last: weakref.ref[Tensor] | None = None
        self._lock = threading.Lock()

    def take(self, shape: Sequence[int], like: Tensor) -> Tensor:
        """A contiguous ``shape`` buffer of ``like``'s dtype and device (values undefined)."""
        with self._lock:
            # free: no tensor uses the kept memory (the buffer built on it has died)
            free = self._last is None or self._last() is None
            need = like.element_size() * int(torch.Size(shape).numel())
            fits = (
                self._storage is not None
                and self._dtype == like.dtype
                and self._storage.device == like.device
                and self._storage.nbytes() >= need
            )
            if free and fits:
                buf = like.new_empty(0).set_(self._storage, 0, tuple(shape))
            else:
                buf = like.new_empty(tuple(shape))
                if not free:  # in use by a pass still running: this one is not kept
                    return buf
                self._storage, self._dtype = buf.untyped_storage(), buf.dtype
            self._last = weakref.ref(buf)
            return buf

    def __deepcopy__(self, memo: dict[int, Any]) -> SpareMemory:
        return SpareMemory()

    def __reduce__(self) -> tuple[type[SpareMemory], tuple[()]]:
        return (SpareMemory, ())


class _GradWorkspace:
    """One ``[N - base, *]`` gradient buffer per backward pass of a chain (rows of the nodes
    ``base, ..., N - 1``): the gradient of every level's remaining inputs is a view of it (no
    per-level concatenation).  With ``memory``, the buffer is taken from it."""

    def __init__(self, num_nodes: int, base: int = 0, memory: SpareMemory | None = None) -> None:
        self.num_nodes = num_nodes
        self.base = base
        self.memory = memory
        self.splits = 0  # splits made in forward; the last one runs backward first
        self.buffer: Tensor | None = None


class _ChainSplit(torch.autograd.Function):
    """``rest`` (the inputs of nodes ``start..N-1``) as views ``[start, lo)``, ``[lo, hi)``,
    ``[hi, N)``.  Backward writes the three gradients into the chain's workspace, where the
    gradient of ``[hi, N)`` already lies when the next level's split wrote it, and returns
    the workspace rows ``[start, N)``: the gradients are assembled without a concatenation.
    The last level's split (the first to run backward) starts a fresh buffer."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, rest: Tensor, start: int, lo: int, hi: int, workspace: _GradWorkspace
    ) -> tuple[Tensor, Tensor, Tensor]:
        ctx.bounds = (start, lo, hi)
        ctx.workspace = workspace
        ctx.index = workspace.splits
        workspace.splits += 1
        n = workspace.num_nodes
        return rest.split([lo - start, hi - lo, n - hi])

    @staticmethod
    @first_order(NO_DOUBLE_BACKWARD_LEVELS)
    def backward(  # type: ignore[override]
        ctx: Any, *grads: Tensor | None
    ) -> tuple[Tensor, None, None, None, None]:
        start, lo, hi = ctx.bounds
        ws: _GradWorkspace = ctx.workspace
        like = next(g for g in grads if g is not None)
        if ctx.index == ws.splits - 1 or ws.buffer is None:  # a new backward pass
            shape = (ws.num_nodes - ws.base, *like.shape[1:])
            ws.buffer = ws.memory.take(shape, like) if ws.memory else like.new_empty(shape)
        buf, base = ws.buffer, ws.base
        for (a, b), g in zip(((start, lo), (lo, hi), (hi, ws.num_nodes)), grads, strict=True):
            if b == a:
                continue
            target = buf[a - base : b - base]
            if g is None:
                target.zero_()
            elif not (g.data_ptr() == target.data_ptr() and g.stride() == target.stride()):
                target.copy_(g)
        grad = buf[start - base :]
        if ctx.index == 0:  # the pass is over: only the gradients handed out hold the buffer
            ws.buffer = None
        return grad, None, None, None, None
