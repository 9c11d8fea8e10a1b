r"""What one aggregation needs, built once per selection: :class:`AggregationPlan` (the
selected edges, the gradient set, the selected weights, and the sparse matrices built from
them on first use)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dnwgraph.nn.kernels.dtypes import accumulation_dtype
from dnwgraph.nn.kernels.matmul import BagMatrix, csr
from dnwgraph.nn.kernels.sampled import EdgeSet


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

    Example:
        >>> edges = EdgeSet(torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([0, 1]))
        >>> plan = AggregationPlan(edges, edges, torch.tensor([2.0, 3.0]), 2, 2, 2)
        >>> plan.adj.to_dense().tolist()
        [[0.0, 2.0], [3.0, 0.0]]
    """

    selected: EdgeSet
    grad: EdgeSet
    values: Tensor
    num_nodes: int
    num_src: int
    num_weights: int
    _mats: dict[tuple[torch.dtype, bool, torch.layout], Tensor] = field(
        default_factory=dict, init=False, repr=False
    )
    _bags: dict[tuple[torch.dtype, bool, int], BagMatrix] = field(
        default_factory=dict, init=False, repr=False
    )
    _grad_values: Tensor | None = field(default=None, init=False, repr=False)

    def grad_set_values(self) -> Tensor:
        """The selected weights on the gradient set ``[len(grad.ids)]`` (zero for the edges
        that are not selected), built once.  Both sets are sorted by (row, column) and the
        selected edges are among the gradient set's, so each is found by a binary search
        (no :math:`[E]` scatter per call)."""
        if self.grad is self.selected:
            return self.values
        if self._grad_values is None:
            g, s = self.grad, self.selected
            pos = torch.searchsorted(g.rows * self.num_src + g.cols, s.rows * self.num_src + s.cols)
            zeros = self.values.new_zeros(g.ids.numel())
            self._grad_values = zeros.index_copy_(0, pos, self.values)
        return self._grad_values

    @property
    def adj(self) -> Tensor:
        """Sparse CSR :math:`A` of shape ``[num_nodes, num_src]``, in the accumulation dtype
        of the weights."""
        return self.matrix(accumulation_dtype(self.values.dtype), layout=torch.sparse_csr)

    @property
    def adj_t(self) -> Tensor:
        """Sparse CSR :math:`A^\\top` of shape ``[num_src, num_nodes]`` (built on demand)."""
        dtype = accumulation_dtype(self.values.dtype)
        return self.matrix(dtype, transpose=True, layout=torch.sparse_csr)

    def operand(self, dtype: torch.dtype, transpose: bool = False) -> Tensor | BagMatrix:
        """:math:`A` (or :math:`A^\\top`) with values of ``dtype`` in the form :func:`spmm`
        multiplies fastest on the plan's device: a :class:`BagMatrix` balanced for torch's
        current thread count on a CPU, the CSR matrix elsewhere; kept with the plan."""
        a = self.matrix(dtype, transpose)
        if a.device.type != "cpu":
            return a
        key = (dtype, transpose, torch.get_num_threads())
        if key not in self._bags:
            self._bags[key] = BagMatrix.of(a, key[2])
        return self._bags[key]

    def matrix(
        self, dtype: torch.dtype, transpose: bool = False, layout: torch.layout | None = None
    ) -> Tensor:
        """:math:`A` (or :math:`A^\\top`) as a sparse matrix with values of ``dtype``, built
        once per dtype and layout and kept with the plan.

        The default layout is CSR: :func:`spmm` multiplies it as a weighted bag sum on a CPU
        (as fast as torch's COO product on one thread and faster on more, faster than MKL's
        CSR product: ``benchmarks/bench_spmm.py``) and with cuSPARSE on a GPU.
        """
        if layout is None:
            layout = torch.sparse_csr
        key = (dtype, transpose, layout)
        if key not in self._mats:
            sel, values = self.selected, self.values.to(dtype)
            rows, cols, size = sel.rows, sel.cols, (self.num_nodes, self.num_src)
            if transpose:
                perm = torch.argsort(cols, stable=True)
                rows, cols, values = (t.index_select(0, perm) for t in (cols, rows, values))
                size = (self.num_src, self.num_nodes)
            if layout == torch.sparse_coo:  # (row, col) sorted and unique: coalesced
                self._mats[key] = torch.sparse_coo_tensor(
                    torch.stack([rows, cols]),
                    values,
                    size,
                    is_coalesced=True,
                    check_invariants=False,
                )
            else:
                self._mats[key] = csr(rows, cols, values, size)
        return self._mats[key]
