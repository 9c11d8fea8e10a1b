r"""Fused sparse aggregation with DNW's straight-through gradient (the functional form).

Forward, over the selected edges :math:`\mathcal{A}`:

.. math::
    \mathrm{out}_v = \sum_{(u, v) \in \mathcal{A}} w_{uv}\, x_u
    \qquad\text{i.e.}\qquad \mathrm{OUT} = A_{\mathcal{A}}\, X

computed as one sparse-CSR times dense matmul: per-edge messages :math:`[E, F]` are never
materialised.  Backward, with :math:`G = \partial L / \partial\,\mathrm{OUT}`:

.. math::
    \frac{\partial L}{\partial X} = A_{\mathcal{A}}^{\top} G, \qquad
    \frac{\partial L}{\partial w_{uv}} = \langle x_u, G_v \rangle
    \quad\text{for every edge } (u, v) \text{ of the gradient set}

The gradient set is every candidate (straight-through, DNW) or the selected edges only.  The
edge gradient is a sampled dense-dense matmul (SDDMM): when the gradient set is dense in its
rows and columns, :math:`G X^{\top}` is formed with BLAS (in row blocks of bounded memory) and
gathered at the edges; when it is sparse, one sampled matmul
(:func:`torch.sparse.sampled_addmm`) at the CSR pattern of the edges.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

#: A row block's dense :math:`G X^\top` is used when (rows x cols) <= DENSE_FACTOR x (its
#: edges): BLAS does ~8-10x more multiply-adds per second than the sampled matmul on a CPU
#: (a random 2M-edge DAG over 10k nodes: 218 ms per step at 32, 29 ms at 8).
DENSE_FACTOR = 8
#: Rows per block: each block takes only the columns its own edges touch, so a block DAG (whose
#: later targets see more sources) does not pay for the union of all columns.
ROW_BLOCK = 128
#: Largest dense block of :math:`G X^\top` formed at once, in elements (128 MB in float32).
MAX_DENSE_ELEMENTS = 2**25


@dataclass
class _Block:
    """Edges ``[e0, e1)`` of an :class:`EdgeSet`, with what its kernel needs.

    Dense blocks: their unique ``rows`` and ``cols`` and the position ``flat`` of each edge in
    the ``[rows, cols]`` product.  Sparse ranges: their unique ``rows`` and the CSR row pointer
    ``crow`` of the range (columns are the edge set's own).
    """

    e0: int
    e1: int
    rows: Tensor
    cols: Tensor | None = None
    flat: Tensor | None = None
    crow: Tensor | None = None

    @property
    def dense(self) -> bool:
        return self.flat is not None


@dataclass
class EdgeSet:
    """A set of edges given by target row, source column and edge id, sorted by row.

    ``rows``/``cols`` index the rows of :math:`G` and of :math:`X`; ``ids`` index the weight
    vector.  The edges are cut once into blocks of consecutive rows; a block whose edges are
    dense among the rows and columns it touches is computed with one small GEMM, the others
    with chunked dot products (see :func:`sddmm`).
    """

    rows: Tensor
    cols: Tensor
    ids: Tensor
    _blocks: list[_Block] | None = field(default=None, init=False, repr=False)

    @property
    def blocks(self) -> list[_Block]:
        """The row blocks, cut on first use (the forward pass never needs them)."""
        if self._blocks is None:
            self._blocks = []
            self._cut()
        return self._blocks

    def _cut(self) -> None:
        num = self.ids.numel()
        if num == 0:
            return
        urows, row_pos = torch.unique_consecutive(self.rows, return_inverse=True)
        n_r = urows.numel()
        n_cols = int(torch.unique(self.cols).numel())
        step = max(1, min(ROW_BLOCK, MAX_DENSE_ELEMENTS // n_cols))
        starts = torch.arange(0, n_r + step, step, device=self.rows.device).clamp(max=n_r)
        bounds = torch.searchsorted(row_pos, starts).tolist()
        sparse_from: tuple[int, int] | None = None  # (first edge, first row) of a sparse run
        for i, r0 in enumerate(range(0, n_r, step)):
            e0, e1 = bounds[i], bounds[i + 1]
            ucols, col_pos = torch.unique(self.cols[e0:e1], return_inverse=True)
            block_rows = urows[r0 : r0 + step]
            if block_rows.numel() * ucols.numel() <= DENSE_FACTOR * (e1 - e0):
                if sparse_from is not None:
                    self._add_sparse(*sparse_from, e0, r0, urows, row_pos)
                    sparse_from = None
                flat = (row_pos[e0:e1] - r0) * ucols.numel() + col_pos
                self._blocks.append(_Block(e0, e1, block_rows, ucols, flat))
            elif sparse_from is None:
                sparse_from = (e0, r0)
        if sparse_from is not None:
            self._add_sparse(*sparse_from, num, n_r, urows, row_pos)

    def _add_sparse(
        self, e0: int, r0: int, e1: int, r1: int, urows: Tensor, row_pos: Tensor
    ) -> None:
        counts = torch.bincount(row_pos[e0:e1] - r0, minlength=r1 - r0)
        crow = counts.new_zeros(r1 - r0 + 1)
        torch.cumsum(counts, 0, out=crow[1:])
        self._blocks.append(_Block(e0, e1, urows[r0:r1], crow=crow))

    @property
    def dense(self) -> bool:
        """Whether every block uses the dense (GEMM) path."""
        return all(b.dense for b in self.blocks)


def sddmm(a: Tensor, b: Tensor, edges: EdgeSet) -> Tensor:
    r"""Sampled dense-dense matmul: :math:`o_e = \langle a_{r_e}, b_{c_e} \rangle`.

    Args:
        a (Tensor): shape ``[N, F]``.
        b (Tensor): shape ``[M, F]``.
        edges (EdgeSet): rows into ``a``, columns into ``b``, sorted by row.

    Returns:
        Tensor: shape ``[len(edges.ids)]``.

    Examples:
        >>> a, b = torch.eye(2), torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> edges = EdgeSet(torch.tensor([0, 1]), torch.tensor([1, 1]), torch.arange(2))
        >>> sddmm(a, b, edges).tolist()
        [3.0, 4.0]
    """
    out = a.new_empty(edges.ids.numel())
    for blk in edges.blocks:
        a_rows = a.index_select(0, blk.rows)
        if blk.dense:
            prod = a_rows @ b.index_select(0, blk.cols).t()
            torch.index_select(prod.view(-1), 0, blk.flat, out=out[blk.e0 : blk.e1])
        else:
            # sampled matmul at the CSR pattern of the range: one fused kernel, no gathers
            pattern = csr_pattern(
                blk.crow, edges.cols[blk.e0 : blk.e1], a, (a_rows.size(0), b.size(0))
            )
            out[blk.e0 : blk.e1] = torch.sparse.sampled_addmm(
                pattern, a_rows, b.t(), beta=0.0
            ).values()
    return out


def csr_pattern(crow: Tensor, cols: Tensor, like: Tensor, size: tuple[int, int]) -> Tensor:
    """A CSR tensor with the given structure and zero values of ``like``'s dtype and device."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        values = like.new_zeros(cols.numel())
        return torch.sparse_csr_tensor(crow, cols, values, size, check_invariants=False)


def csr(rows: Tensor, cols: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    """Sparse CSR matrix from row-sorted ``rows``/``cols``/``values``."""
    crow = rows.new_zeros(size[0] + 1)
    torch.cumsum(torch.bincount(rows, minlength=size[0]), 0, out=crow[1:])
    with warnings.catch_warnings():  # "CSR support is in beta": true, and not the user's concern
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, size, check_invariants=False)


@dataclass
class AggregationPlan:
    """What one fused aggregation needs: the selected edges and the gradient set.

    Built once per selection (i.e. per weight update) and per source group, and reused while
    the weights are unchanged (e.g. the T steps of a discrete-time model, or inference).

    Args:
        selected (EdgeSet): edges used forward (rows: targets, cols: source rows of ``x``).
        grad (EdgeSet): edges that receive a gradient.
        values (Tensor): weights of the selected edges (detached), aligned with ``selected``.
        num_nodes (int): rows of the output.
        num_src (int): rows of ``x``.
        num_weights (int): length of the edge-weight vector.
    """

    selected: EdgeSet
    grad: EdgeSet
    values: Tensor
    num_nodes: int
    num_src: int
    num_weights: int
    _adj: Tensor | None = None
    _adj_t: Tensor | None = None

    @property
    def adj(self) -> Tensor:
        """Sparse CSR :math:`A` of shape ``[num_nodes, num_src]``."""
        if self._adj is None:
            sel = self.selected
            self._adj = csr(sel.rows, sel.cols, self.values, (self.num_nodes, self.num_src))
        return self._adj

    @property
    def adj_t(self) -> Tensor:
        """Sparse CSR :math:`A^\\top` of shape ``[num_src, num_nodes]`` (built on demand)."""
        if self._adj_t is None:
            sel = self.selected
            perm = torch.argsort(sel.cols, stable=True)
            self._adj_t = csr(
                sel.cols[perm], sel.rows[perm], self.values[perm], (self.num_src, self.num_nodes)
            )
        return self._adj_t


class _WiringMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, edge_weight: Tensor, plan: AggregationPlan) -> Tensor:  # type: ignore[override]
        ctx.plan = plan
        ctx.save_for_backward(x)
        return torch.sparse.mm(plan.adj, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        plan: AggregationPlan = ctx.plan
        grad_out = grad_out.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.sparse.mm(plan.adj_t, grad_out)
        if ctx.needs_input_grad[1]:
            grad_w = grad_out.new_zeros(plan.num_weights)
            grad_w.index_copy_(0, plan.grad.ids, sddmm(grad_out, x, plan.grad))
        return grad_x, grad_w, None


def wiring_matmul(x: Tensor, edge_weight: Tensor, plan: AggregationPlan) -> Tensor:
    r"""Fused :math:`A_{\mathcal{A}} X` with the straight-through edge gradient of ``plan``.

    Args:
        x (Tensor): node features, shape ``[num_src, F]``.
        edge_weight (Tensor): all candidate weights, shape ``[E]`` (gradient flows here).
        plan (AggregationPlan): selected edges and gradient set.

    Returns:
        Tensor: shape ``[num_nodes, F]``.

    The plan carries the selected weights (its sparse matrix is built from them once); the
    ``edge_weight`` argument is where the gradient goes.  :meth:`WiringConv.plan
    <dnwgraph.WiringConv.plan>` returns the plan of the current weights.

    Examples:
        >>> from dnwgraph import Wiring, WiringConv
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2)]), ratio=1)
        >>> with torch.no_grad():
        ...     _ = conv.edge_weight.copy_(torch.tensor([0.5, 3.0]))
        >>> x = torch.ones(3, 1, requires_grad=True)
        >>> wiring_matmul(x, conv.edge_weight, conv.plan()).view(-1).tolist()
        [0.0, 0.0, 3.0]
    """
    return _WiringMatmul.apply(x, edge_weight, plan)
