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

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.nn._node_first import _hooked, _records_grad
from dnwgraph.nn.aggregate import _range
from dnwgraph.nn.node_ops import create_node_op
from dnwgraph.nn.spec import WiringSpec, as_spec
from dnwgraph.nn.wiring_conv import WiringConv
from dnwgraph.typing import Ratio, Scope

#: Prebuilt node ops: one module per executed level, or a function of the levels' sizes
#: returning them (called after the wiring layer is built).
NodeOps = Sequence[nn.Module] | Callable[[list[int]], Sequence[nn.Module]]


class LinearPool(Protocol):
    r"""A linear map :math:`P` of every node's features, node by node (e.g. a readout's
    spatial mean), with its adjoint: what :meth:`LevelExecutor.forward` needs to pool the
    output nodes' inputs before summing them."""

    def pool(self, x: Tensor) -> Tensor:
        """:math:`P(x)`: ``[n, B, *S]`` to ``[n, B, *R]``."""
        ...

    def pool_adjoint_(self, grad: Tensor, h: Tensor) -> Tensor:
        """``grad += P^T(h)`` in place (``grad`` ``[n, B, *S]``, ``h`` ``[n, B, *R]``);
        returns ``grad``."""
        ...


class LevelExecutor(nn.Module):
    r"""Runs the nodes of a static wiring level by level, aggregating through a learned wiring.

    Only nodes with at least one outgoing candidate edge get a node op (the others' outputs
    would be unused); node :math:`v` of level :math:`l` is node ``groups[l].index(v)`` of
    ``node_ops[l]``.

    Args:
        wiring (Wiring): an acyclic candidate wiring.
        ratio (int or float or WiringSpec): edge budget of the :class:`~dnwgraph.WiringConv`
            (``int``: the number of edges kept; ``float`` in (0, 1]: the fraction of the
            candidates kept, PyG's ``TopKPooling`` convention), or a
            :class:`~dnwgraph.nn.WiringSpec` holding every argument below up to ``impl``
            and the selection options (then give none of them).
        selection (str, optional): selection strategy. (default: ``"dnw"``)
        node_op (str, optional): node op name (:func:`~dnwgraph.nn.node_ops.list_node_ops`).
            (default: ``"conv2d"``)
        node_op_options (dict, optional): keywords of the node op. (default: ``None``)
        scope (str, optional): selection scope. (default: ``None``)
        impl (str, optional): aggregation implementation of the wiring. (default: ``"sparse"``)
        node_ops (sequence of nn.Module or callable, optional): the node ops themselves, one
            module per executed level (in place of ``node_op``, which is then unused), or a
            function of the executed levels' sizes returning them, called after the wiring
            layer is built (so that a seeded model draws its parameters in that order).
            (default: ``None``)
        conv_options (dict, optional): more keywords of the
            :class:`~dnwgraph.WiringConv` (``fan_in``, ``grad_every``), also with a
            ``WiringSpec``. (default: ``None``)
        **selection_options: strategy options (``seed``, ``mask``, ``drop_rate``).

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
        ValueError: for a cyclic wiring, bad options or a count of ``node_ops`` that is not
            the number of executed levels.

    Examples:
        >>> from dnwgraph import Wiring, block_dag
        >>> wiring = Wiring([(0, 2), (1, 2), (2, 3), (0, 3)])
        >>> ex = LevelExecutor(wiring, ratio=3, node_op="neuron")
        >>> ex(torch.randn(4, 5)).shape
        torch.Size([4, 5])
        >>> LevelExecutor(wiring, WiringSpec(3, node_op="neuron")).spec.node_op
        'neuron'
        >>> pool = LevelExecutor(block_dag([2, 3, 3]), 10, node_ops=[
        ...     nn.MaxPool2d(2), nn.ReLU()])  # level 0 halves the image
        >>> pool(torch.randn(2, 4, 8, 8)).shape  # the first level's inputs only
        torch.Size([6, 4, 4, 4])
        >>> pool(torch.randn(2, 4, 8, 8), rows=slice(5, 8)).shape  # the last level
        torch.Size([3, 4, 4, 4])
    """

    def __init__(
        self,
        wiring: Any,
        ratio: Ratio | WiringSpec,
        selection: str = "dnw",
        *,
        node_op: str = "conv2d",
        node_op_options: Mapping[str, Any] | None = None,
        scope: Scope | None = None,
        impl: str = "sparse",
        node_ops: NodeOps | None = None,
        conv_options: Mapping[str, Any] | None = None,
        **selection_options: Any,
    ) -> None:
        super().__init__()
        spec = as_spec(
            ratio,
            selection,
            node_op=node_op,
            node_op_options=node_op_options,
            scope=scope,
            impl=impl,
            **selection_options,
        )
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
        kwargs = spec.conv_kwargs()
        twice = sorted(set(kwargs) & set(conv_options or {}))
        if twice:
            raise DNWGraphError(f"{twice} given twice: as a wiring parameter and in 'conv_options'")
        kwargs.update(conv_options or {})
        self.conv = WiringConv(wiring, spec.ratio, spec.selection, source_groups=groups, **kwargs)
        sizes = [g.numel() for g in groups]
        if node_ops is None:
            opts = dict(spec.node_op_options)
            ops: Sequence[nn.Module] = [create_node_op(spec.node_op, n, **opts) for n in sizes]
            self.node_op_name: str | None = spec.node_op
        else:
            ops = node_ops(sizes) if callable(node_ops) else node_ops
            ops, opts = _check_node_ops(ops, sizes), {}
            self.node_op_name = None
        self.node_ops = nn.ModuleList(ops)
        self.node_op_options = opts
        # Contiguous groups (the block DAGs of the paper) are read with a cheap narrow().
        self._ranges: list[tuple[int, int] | None] = []
        for i, g in enumerate(groups):
            self.register_buffer(f"group_{i}", g, persistent=False)
            self._ranges.append(_range(g))
        self._chain = self._is_chain()
        # the trailing nodes without out-edges (no node op; e.g. a model's output nodes)
        op_nodes = torch.cat(groups) if groups else torch.zeros(0, dtype=torch.long)
        self._sink_start = int(op_nodes.max()) + 1 if op_nodes.numel() else 0
        self._spare = _SpareMemory()

    def train(self, mode: bool = True) -> LevelExecutor:
        if not mode:  # the gradient memory kept between training steps is given back
            self._spare = _SpareMemory()
        return super().train(mode)

    def _gradient_memory(self, x: Tensor) -> _SpareMemory | None:
        """Where a chain's gradient buffer comes from when it never leaves the chain (the
        first product has no ``add_to``, no hooks see the gradients): memory kept from the
        last backward pass on a CPU (a fresh buffer there is paid in page faults), ``None``
        (a new buffer) otherwise."""
        return self._spare if x.device.type == "cpu" and not _hooked(self.conv) else None

    def _needs_grad(self, x: Tensor) -> bool:
        """Whether this pass records autograd (``x`` or a parameter needs a gradient)."""
        return _records_grad(self, x)

    def _is_chain(self) -> bool:
        """Whether the levels are ascending node ranges whose edges all reach later ranges:
        then the inputs of the nodes after level :math:`l` are all that level :math:`l`
        updates (the block DAGs of the paper, numbered level by level)."""
        start = 0
        src, dst = self.conv.edge_index.cpu()
        for rng in self._ranges:
            if rng is None or rng[0] < start:
                return False
            lo, size = rng
            leaving = (src >= lo) & (src < lo + size)
            if bool(leaving.any()) and int(dst[leaving].min()) < lo + size:
                return False
            start = lo + size
        return True

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
        base = self._first_level_end() if first else 0  # the first node of the result
        if isinstance(rows, slice):
            rows = self._check_slice(rows, base)
        if pool is not None and rows is None:
            raise DNWGraphError("'pool' needs 'rows' (the nodes whose inputs are pooled)")
        with self.conv.plan_cache.hold():  # one weight state per pass
            if pool is not None:
                if self._pools_sinks(rows):  # type: ignore[arg-type]
                    return self._forward_pooled(x, rows, pool, first, base)  # type: ignore[arg-type]
                return pool.pool(self.forward(x, rows))
            if self._chain:
                return self._forward_chain(x, rows, first, base)
            acc = x
            for i, op in enumerate(self.node_ops):
                rng = self._ranges[i]
                inputs = acc.narrow(0, *rng) if rng else acc.index_select(0, self.groups[i])
                acc = acc + self.conv(op(inputs), group=i)
            return self._read(acc, rows, base)

    def _first_level_end(self) -> int:
        lo, size = self._ranges[0]  # type: ignore[misc]
        return lo + size

    def _first_level_only(self, x: Tensor) -> bool:
        """Whether ``x`` holds the first level's inputs only (checked: else every node's)."""
        n = self.num_nodes
        first = self.conv.group_sizes[0] if self.conv.num_groups else None
        if x.dim() >= 2 and x.size(0) == n:
            return False
        if x.dim() >= 2 and x.size(0) == first:
            if not self._chain:
                raise DNWGraphError(
                    f"'x' holds the inputs of the first level only ([{first}, B, *]), which "
                    "needs a chain wiring (levels that are ascending node ranges whose edges "
                    "reach later ranges, e.g. a block_dag); give every node's input "
                    f"[{n}, B, *] (got {tuple(x.shape)})"
                )
            return True
        also = f", or [{first}, B, *] (the first level's inputs)" if self._chain else ""
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

    def _read(self, acc: Tensor, rows: Tensor | slice | None, base: int) -> Tensor:
        """``rows`` of ``acc``, the accumulated inputs of nodes ``base, ..., N - 1``."""
        if rows is None:
            return acc
        if isinstance(rows, slice):
            return acc[rows.start - base : rows.stop - base]
        if base:
            traced = torch.compiler.is_compiling() or torch.jit.is_tracing()
            if not traced and self._rows_from(rows) < base:
                raise DNWGraphError(
                    f"'rows' must be nodes after the first level (>= {base}) when 'x' holds "
                    f"the first level's inputs only (got node {self._rows_from(rows)})"
                )
            rows = rows - base
        return acc.index_select(0, rows)

    def _forward_chain(
        self, x: Tensor, rows: Tensor | slice | None, first: bool, base: int
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
        if not self._needs_grad(x) and not _hooked(self.conv) and not compiling:
            return self._read(self._forward_chain_inplace(x, first), rows, base)
        n = self.num_nodes
        done: list[Tensor] = []
        rest, start = x, 0  # rest: the inputs of nodes start, ..., n - 1
        levels = list(enumerate(self.node_ops))
        if first:
            rest = self.conv(self.node_ops[0](x), group=0, first_row=base)
            start, levels = base, levels[1:]
        workspace = _GradWorkspace(n, base, self._gradient_memory(x) if first else None)
        for i, op in levels:
            lo, size = self._ranges[i]  # type: ignore[misc]
            hi = lo + size
            if compiling:  # the compiler plans the gradient buffers itself
                before, inputs, tail = rest.split([lo - start, hi - lo, n - hi])
            else:
                before, inputs, tail = _ChainSplit.apply(rest, start, lo, hi, workspace)
            done += [before, inputs]
            rest = self.conv(op(inputs), group=i, first_row=hi, add_to=tail)
            start = hi
        if rows is None:
            return torch.cat([*done, rest]) if done else rest
        if isinstance(rows, slice) and rows.start >= start:  # all in the last block
            return rest[rows.start - start : rows.stop - start]
        if isinstance(rows, Tensor) and not compiling and self._rows_from(rows) >= start:
            return rest.index_select(0, rows - start)
        return self._read(torch.cat([*done, rest]) if done else rest, rows, base)

    def _pools_sinks(self, rows: Tensor | slice) -> bool:
        """Whether ``rows`` are all among the trailing nodes without out-edges of a chain,
        so that their products can run on pooled features (eager mode only)."""
        empty = rows.stop <= rows.start if isinstance(rows, slice) else rows.numel() == 0
        if not self._chain or self._sink_start >= self.num_nodes or empty:
            return False
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or _hooked(self.conv):
            return False
        return self._rows_from(rows) >= self._sink_start

    def _forward_pooled(
        self, x: Tensor, rows: Tensor | slice, pool: LinearPool, first: bool, base: int
    ) -> Tensor:
        r"""The chain (:meth:`_forward_chain`) over the nodes before the sinks
        :math:`[s, N)`, and the sinks' inputs pooled: every level adds
        :math:`A_{[s, N), L_l} P(Z_{L_l})` (a product over ``[N - s, B, *R]`` instead of
        ``[N - s, B, *S]``, exact since :math:`P` is linear).  With the first level's inputs
        only (``first``), every node after the first level starts from zero."""
        n, s = self.num_nodes, self._sink_start
        levels = list(enumerate(self.node_ops))
        if first:  # the first level's products start the others' inputs
            z, pooled = _PoolAlongside.apply(levels[0][1](x), pool)
            rest = self.conv(z, group=0, first_row=base, last_row=s) if base < s else None
            sinks = self.conv(pooled, group=0, first_row=s, last_row=n)
            levels = levels[1:]
        else:
            rest, x_sinks = x.split([s, n - s])  # one gradient buffer for x (a cat), no fills
            sinks = pool.pool(x_sinks)
        if not self._needs_grad(x):  # in place, as _forward_chain_inplace
            acc = rest if first else rest.clone(memory_format=torch.contiguous_format)
            sinks = sinks.contiguous()
            for i, op in levels:  # none when the first level is the last (acc is None)
                lo, size = self._ranges[i]  # type: ignore[misc]
                hi = lo + size
                z = op(acc[lo - base : hi - base])  # type: ignore[index]
                if hi < s:
                    out = acc[hi - base :]  # type: ignore[index]
                    self.conv.accumulate_(out, z, group=i, first_row=hi, last_row=s)
                self.conv.accumulate_(sinks, pool.pool(z), group=i, first_row=s, last_row=n)
            return self._read(sinks, rows, s)
        start = base  # rest: the inputs of nodes start, ..., s - 1
        # the gradient of x (not first) is a concatenation (split's backward): a new tensor
        workspace = _GradWorkspace(s, base, self._gradient_memory(x))
        for i, op in levels:
            lo, size = self._ranges[i]  # type: ignore[misc]
            hi = lo + size
            _, inputs, tail = _ChainSplit.apply(rest, start, lo, hi, workspace)
            z, pooled = _PoolAlongside.apply(op(inputs), pool)
            if hi < s:
                rest = self.conv(z, group=i, first_row=hi, last_row=s, add_to=tail)
            else:
                rest = tail
            sinks = self.conv(pooled, group=i, first_row=s, last_row=n, add_to=sinks)
            start = hi
        return self._read(sinks, rows, s)

    @staticmethod
    def _rows_from(rows: Tensor | slice) -> int:
        """The smallest of ``rows`` (for a tensor on a GPU, a synchronisation: models pass
        their output nodes as a ``slice`` when they are a node range)."""
        if isinstance(rows, slice):
            return rows.start
        return int(rows.min()) if rows.numel() else 0

    def _forward_chain_inplace(self, x: Tensor, first: bool) -> Tensor:
        """The chain without autograd: one copy of ``x`` (with the first level's inputs only,
        the first level's product), every level added into it in place (no per-level output
        buffers, no concatenation)."""
        levels = list(enumerate(self.node_ops))
        if first:
            base = self._first_level_end()
            acc = self.conv(self.node_ops[0](x), group=0, first_row=base)
            levels = levels[1:]
        else:
            base, acc = 0, x.clone(memory_format=torch.contiguous_format)
        for i, op in levels:
            lo, size = self._ranges[i]  # type: ignore[misc]
            hi = lo + size
            inputs = acc[lo - base : hi - base]
            self.conv.accumulate_(acc[hi - base :], op(inputs), group=i, first_row=hi)
        return acc

    def node_outputs(self, x: Tensor) -> Tensor:
        r"""Every node's output :math:`Z` ``[N, B, *S]`` (zero for nodes without a node op),
        for analysis: the same computation as :meth:`forward`, from every node's input
        ``x`` ``[N, B, *S]``."""
        if x.dim() < 2 or x.size(0) != self.num_nodes:
            raise DNWGraphError(
                f"'x' must have shape [N, B, *] with N={self.num_nodes} (got {tuple(x.shape)})"
            )
        acc, z = x, torch.zeros_like(x)
        with self.conv.plan_cache.hold():  # one weight state per pass
            for i, op in enumerate(self.node_ops):
                g = self.groups[i]
                out = op(acc.index_select(0, g))
                z = z.index_copy(0, g, out)
                acc = acc + self.conv(out, group=i)
        return z


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
    @once_differentiable
    def backward(
        ctx: Any, grad_z: Tensor | None, grad_pooled: Tensor | None
    ) -> tuple[Tensor | None, None]:  # type: ignore[override]
        if grad_pooled is None:
            return grad_z, None
        if grad_z is None:
            grad_z = grad_pooled.new_zeros(ctx.shape, dtype=ctx.dtype)
        return ctx.pool.pool_adjoint_(grad_z, grad_pooled.to(grad_z.dtype)), None


class _SpareMemory:
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

    def __deepcopy__(self, memo: dict[int, Any]) -> _SpareMemory:
        return _SpareMemory()

    def __reduce__(self) -> tuple[type[_SpareMemory], tuple[()]]:
        return (_SpareMemory, ())


class _GradWorkspace:
    """One ``[N - base, *]`` gradient buffer per backward pass of a chain (rows of the nodes
    ``base, ..., N - 1``): the gradient of every level's remaining inputs is a view of it (no
    per-level concatenation).  With ``memory``, the buffer is taken from it."""

    def __init__(self, num_nodes: int, base: int = 0, memory: _SpareMemory | None = None) -> None:
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
    @once_differentiable
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
