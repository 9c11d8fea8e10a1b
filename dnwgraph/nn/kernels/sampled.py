r"""The edge gradient of an aggregation as a sampled dense-dense matmul (SDDMM):
:math:`o_e = \langle a_{r_e}, b_{c_e} \rangle` for every edge :math:`e` of an :class:`EdgeSet`.

When the edges are dense in their rows and columns, :math:`A B^{\top}` is formed with BLAS
(in row blocks of bounded memory, which start where the targets start to see other sources,
so a block DAG's blocks are complete) and gathered at the edges; when they are sparse, one
sampled matmul (:func:`torch.sparse.sampled_addmm`) at the CSR pattern of the edges.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

#: A row block's dense :math:`G X^\top` is used when (rows x cols) <= DENSE_FACTOR x (its
#: edges): BLAS does ~8-10x more multiply-adds per second than the sampled matmul on a CPU
#: (a random 2M-edge DAG over 10k nodes: 218 ms per step at 32, 29 ms at 8).
DENSE_FACTOR = 8
#: Rows per block: each block takes only the columns its own edges touch, so a block DAG (whose
#: later targets see more sources) does not pay for the union of all columns.
ROW_BLOCK = 128
#: Rows with the same columns from which a run is a band with row blocks of its own.
MIN_BAND = 8
#: Largest dense block of :math:`G X^\top` formed at once, in elements (128 MB in float32).
MAX_DENSE_ELEMENTS = 2**25


@dataclass
class _Block:
    """Edges ``[e0, e1)`` of an :class:`EdgeSet`, with what its kernel needs.

    Dense blocks: their unique ``rows`` and ``cols`` and the position ``flat`` of each edge in
    the ``[rows, cols]`` product; ``complete`` when the edges are every (row, col) pair in
    row-major order (the product is then the output itself).  Sparse ranges: their unique
    ``rows`` and the CSR row pointer ``crow`` of the range (columns are the edge set's own).
    ``row_range``/``col_range`` (start, length) when the unique rows/cols are consecutive:
    the operands are then views, not gathers.
    """

    e0: int
    e1: int
    rows: Tensor
    cols: Tensor | None = None
    flat: Tensor | None = None
    crow: Tensor | None = None
    row_range: tuple[int, int] | None = None
    col_range: tuple[int, int] | None = None
    complete: bool = False

    @property
    def dense(self) -> bool:
        return self.flat is not None


def as_range(ids: Tensor) -> tuple[int, int] | None:
    """``(start, length)`` if the ascending ``ids`` are consecutive integers, else ``None``.

    Example:
        >>> as_range(torch.tensor([3, 4, 5])), as_range(torch.tensor([3, 5]))
        ((3, 3), None)
    """
    n = ids.numel()
    if n and int(ids[-1]) - int(ids[0]) + 1 == n:
        return int(ids[0]), n
    return None


def _merge(blocks: list[_Block]) -> list[_Block]:
    """Join consecutive complete blocks over consecutive rows and the same column range into
    one GEMM (bounded by :data:`MAX_DENSE_ELEMENTS`)."""
    out: list[_Block] = []
    for b in blocks:
        p = out[-1] if out else None
        if (
            p is not None
            and p.complete
            and b.complete
            and p.e1 == b.e0
            and p.col_range == b.col_range is not None
            and p.row_range is not None
            and b.row_range is not None
            and p.row_range[0] + p.row_range[1] == b.row_range[0]
            and (p.row_range[1] + b.row_range[1]) * p.col_range[1] <= MAX_DENSE_ELEMENTS
        ):
            rows = torch.cat([p.rows, b.rows])
            flat = torch.arange(b.e1 - p.e0, device=rows.device)
            row_range = (p.row_range[0], p.row_range[1] + b.row_range[1])
            out[-1] = _Block(
                p.e0, b.e1, rows, p.cols, flat, None, row_range, p.col_range, complete=True
            )
        else:
            out.append(b)
    return out


def _block_starts(row_pos: Tensor, cols: Tensor, n_r: int, step: int) -> list[int]:
    """First (unique) row of each row block, and ``n_r``.

    A band of at least :data:`MIN_BAND` rows whose columns have the same span and count (in
    a block DAG, the targets that see the same blocks of sources) starts and ends blocks of
    its own, so that its edges fill each block's rows x columns: no product is formed for a
    pair without an edge.  Rows outside such bands are cut every ``step`` rows, as are bands.
    """
    dev = row_pos.device
    count = torch.bincount(row_pos, minlength=n_r)
    lo = torch.zeros(n_r, dtype=cols.dtype, device=dev)
    lo = lo.scatter_reduce(0, row_pos, cols, "amin", include_self=False)
    hi = torch.zeros_like(lo).scatter_reduce(0, row_pos, cols, "amax", include_self=False)
    change = (count[1:] != count[:-1]) | (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    seg = torch.cat([row_pos.new_zeros(1), torch.nonzero(change).view(-1) + 1])
    band = torch.diff(seg, append=seg.new_tensor([n_r])) >= MIN_BAND
    # a region starts at a band and right after one; runs of short segments form one region
    keep = band | torch.cat([band.new_ones(1), band[:-1]])
    start = seg[keep]
    size = torch.diff(start, append=start.new_tensor([n_r]))
    cuts = (size + step - 1) // step
    first = torch.repeat_interleave(start, cuts)
    nth = torch.arange(first.numel(), device=dev) - torch.repeat_interleave(
        torch.cumsum(cuts, 0) - cuts, cuts
    )
    return [*(first + nth * step).tolist(), n_r]


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
    _covers: bool | None = field(default=None, init=False, repr=False)

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
        if 4 * num >= n_r * n_cols:  # dense enough for bands of rows alike (a DAG's candidates)
            starts = _block_starts(row_pos, self.cols, n_r, step)
        else:  # (e.g. the selected edges alone: no band, and a cut per selection to pay for)
            starts = [*range(0, n_r, step), n_r]
        bounds = torch.searchsorted(row_pos, torch.tensor(starts, device=row_pos.device))
        bounds = bounds.tolist()
        sparse_from: tuple[int, int] | None = None  # (first edge, first row) of a sparse run
        for i, r0 in enumerate(starts[:-1]):
            e0, e1 = bounds[i], bounds[i + 1]
            ucols, col_pos = torch.unique(self.cols[e0:e1], return_inverse=True)
            block_rows = urows[r0 : starts[i + 1]]
            if block_rows.numel() * ucols.numel() <= DENSE_FACTOR * (e1 - e0):
                if sparse_from is not None:
                    self._add_sparse(*sparse_from, e0, r0, urows, row_pos)
                    sparse_from = None
                flat = (row_pos[e0:e1] - r0) * ucols.numel() + col_pos
                complete = flat.numel() == block_rows.numel() * ucols.numel() and bool(
                    (flat == torch.arange(flat.numel(), device=flat.device)).all()
                )
                self._blocks.append(
                    _Block(
                        e0,
                        e1,
                        block_rows,
                        ucols,
                        flat,
                        row_range=as_range(block_rows),
                        col_range=as_range(ucols),
                        complete=complete,
                    )
                )
            elif sparse_from is None:
                sparse_from = (e0, r0)
        if sparse_from is not None:
            self._add_sparse(*sparse_from, num, n_r, urows, row_pos)
        self._blocks = _merge(self._blocks)

    def _add_sparse(
        self, e0: int, r0: int, e1: int, r1: int, urows: Tensor, row_pos: Tensor
    ) -> None:
        counts = torch.bincount(row_pos[e0:e1] - r0, minlength=r1 - r0)
        crow = counts.new_zeros(r1 - r0 + 1)
        torch.cumsum(counts, 0, out=crow[1:])
        rows = urows[r0:r1]
        self._blocks.append(_Block(e0, e1, rows, crow=crow, row_range=as_range(rows)))

    def covers(self, num_weights: int) -> bool:
        """Whether ``ids`` is ``0, 1, ..., num_weights - 1`` (checked once)."""
        if self._covers is None:
            ids = self.ids
            self._covers = ids.numel() == num_weights and bool(
                (ids == torch.arange(num_weights, device=ids.device)).all()
            )
        return self._covers

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
        a_rows = _rows(a, blk.rows, blk.row_range)
        if blk.dense:
            b_cols = _rows(b, blk.cols, blk.col_range)  # type: ignore[arg-type]
            if blk.complete:  # the product is the output
                torch.mm(a_rows, b_cols.t(), out=out[blk.e0 : blk.e1].view(a_rows.size(0), -1))
            else:
                prod = a_rows @ b_cols.t()
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


def _rows(t: Tensor, index: Tensor, rng: tuple[int, int] | None) -> Tensor:
    """Rows ``index`` of ``t``: a view when they are the range ``rng``."""
    return t.narrow(0, *rng) if rng is not None else t.index_select(0, index)


def csr_pattern(crow: Tensor, cols: Tensor, like: Tensor, size: tuple[int, int]) -> Tensor:
    """A CSR tensor with the given structure and zero values of ``like``'s dtype and device."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        values = like.new_zeros(cols.numel())
        return torch.sparse_csr_tensor(crow, cols, values, size, check_invariants=False)
