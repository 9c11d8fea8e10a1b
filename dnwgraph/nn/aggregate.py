r"""Fused sparse aggregation with DNW's straight-through gradient (the functional form).

Forward, over the selected edges :math:`\mathcal{A}`:

.. math::
    \mathrm{out}_v = \sum_{(u, v) \in \mathcal{A}} w_{uv}\, x_u
    \qquad\text{i.e.}\qquad \mathrm{OUT} = A_{\mathcal{A}}\, X

computed as one sparse times dense matmul: per-edge messages :math:`[E, F]` are never
materialised.  On a CPU the product is a weighted bag sum (:class:`BagMatrix`: one vectorised
kernel per output row, rows shared evenly in work among torch's threads), on a GPU cuSPARSE's
CSR product.  Backward, with :math:`G = \partial L / \partial\,\mathrm{OUT}`:

.. math::
    \frac{\partial L}{\partial X} = A_{\mathcal{A}}^{\top} G, \qquad
    \frac{\partial L}{\partial w_{uv}} = \langle x_u, G_v \rangle
    \quad\text{for every edge } (u, v) \text{ of the gradient set}

The gradient set is every candidate (straight-through, DNW) or the selected edges only.  The
edge gradient is a sampled dense-dense matmul (SDDMM): when the gradient set is dense in its
rows and columns, :math:`G X^{\top}` is formed with BLAS (in row blocks of bounded memory,
which start where the targets start to see other sources, so a block DAG's blocks are
complete) and gathered at the edges; when it is sparse, one sampled matmul
(:func:`torch.sparse.sampled_addmm`) at the CSR pattern of the edges.

Half precision: ``float16`` and ``bfloat16`` inputs are aggregated in ``float32`` (a half
running sum of many edges loses digits; MKL's CSR product has no half kernel on a CPU
either) and the results are rounded once, on every device.  Under :func:`torch.autocast` the
aggregation behaves like a matmul: ``x`` is cast to the autocast dtype, which is also the
output's; the weight gradient keeps the weight's dtype.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError

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


#: Dtypes aggregated in float32 (see the module docstring).
HALF_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype an aggregation of ``dtype`` features is computed in: ``float32`` for half
    types, else ``dtype`` itself.

    Example:
        >>> accumulation_dtype(torch.bfloat16), accumulation_dtype(torch.float64)
        (torch.float32, torch.float64)
    """
    return torch.float32 if dtype in HALF_DTYPES else dtype


def output_dtype(x: Tensor, weight: Tensor) -> torch.dtype:
    """Dtype of :math:`A X`: the autocast dtype when autocast is on for ``x``'s device (as for
    a matmul), else the promotion of the two dtypes."""
    device = x.device.type
    if x.is_floating_point() and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(x.dtype, weight.dtype)


def no_autocast(device: torch.device) -> Any:
    """A context without autocast on ``device`` (the kernels choose their dtypes)."""
    if not torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)


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


def _range(ids: Tensor) -> tuple[int, int] | None:
    """``(start, length)`` if the ascending ``ids`` are consecutive integers."""
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
                        row_range=_range(block_rows),
                        col_range=_range(ucols),
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
        self._blocks.append(_Block(e0, e1, rows, crow=crow, row_range=_range(rows)))

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


def spmm(a: Tensor | BagMatrix, x: Tensor, add_to: Tensor | None = None) -> Tensor:
    r""":math:`A X` (or :math:`Y + A X`) for a sparse :math:`A` ``[R, S]`` (a sparse tensor,
    or a :class:`BagMatrix`) and a dense :math:`X` ``[S, F]``.

    A CSR matrix on a CPU is multiplied as a weighted bag sum (:class:`BagMatrix`: output
    row :math:`r` sums :math:`a_{rc}\, x_c` over the row's entries, rows in parallel over
    torch's threads, a vectorised kernel per row) where no gradient is recorded through the
    product; otherwise by torch's sparse product.

    Example:
        >>> a = torch.tensor([[0.0, 2.0], [1.0, 0.0]]).to_sparse_csr()
        >>> spmm(a, torch.tensor([[1.0], [3.0]])).view(-1).tolist()
        [6.0, 1.0]
    """
    if isinstance(a, BagMatrix):
        out = a.mm(x)
        return out if add_to is None else out.add_(add_to)
    if torch.is_grad_enabled() and (a.requires_grad or x.requires_grad):
        return torch.sparse.mm(a, x) if add_to is None else torch.addmm(add_to, a, x)
    if a.layout == torch.sparse_csr and _sums_bags(a, x):
        return spmm(BagMatrix.of(a), x, add_to)
    if add_to is not None:
        return torch.addmm(add_to, a, x)
    if a.layout == torch.sparse_coo:
        # the product added into memory zeroed by a write (zero_): no second output buffer,
        # and no lazily zeroed pages read back by the COO kernel (torch.sparse.mm's output;
        # beta=0 would multiply the new memory by 0, NaN included, for a matrix without entries)
        out = x.new_empty(a.size(0), x.size(1)).zero_()
        return torch.addmm(out, a, x, out=out)
    return torch.sparse.mm(a, x)


def _sums_bags(a: Tensor, x: Tensor) -> bool:
    """Whether ``embedding_bag`` computes the CSR product ``a @ x``: a CPU, floating values of
    ``x``'s dtype and a 2-D ``x`` with a row per column of ``a``."""
    return (
        x.device.type == "cpu"
        and a.device.type == "cpu"
        and x.dim() == 2
        and x.size(0) == a.size(1)
        and a.dtype == x.dtype
        and x.dtype in (torch.float32, torch.float64, *HALF_DTYPES)
    )


#: Entries from which a :class:`BagMatrix` on several threads is padded for balance (below,
#: working out the padding costs more than the imbalance it removes).
BALANCE_ENTRIES = 2**14


@dataclass(frozen=True)
class BagMatrix:
    r"""A CSR matrix :math:`A` ``[R, S]`` laid out for the row-parallel kernel of
    :func:`torch.nn.functional.embedding_bag` (rows are bags, entries the weighted
    members), balanced over torch's threads.

    The kernel hands each of torch's :math:`T` threads an equal count of rows.  Rows of unequal
    length (a DAG's later nodes have more sources; in :math:`A^\top`, its earlier nodes have
    more targets) would leave one thread with most of the work, so empty rows are put before
    (``front``) or after the matrix's rows, as many as make the threads' shares of entries
    most even (:func:`bag_padding`); their output rows are dropped as a view (of a buffer
    that holds them: at most twice the output).  The result is the same either way.

    Args:
        offsets (Tensor): the row pointer with the empty rows, ``[front + R + back + 1]``.
        indices (Tensor): column of each entry, ``[nnz]``.
        weights (Tensor): value of each entry, ``[nnz]``.
        rows (int): :math:`R`.
        front (int): empty rows before the matrix's rows.

    Example:
        >>> a = torch.tensor([[0.0, 2.0], [1.0, 0.0]]).to_sparse_csr()
        >>> BagMatrix.of(a).mm(torch.tensor([[1.0], [3.0]])).view(-1).tolist()
        [6.0, 1.0]
    """

    offsets: Tensor
    indices: Tensor
    weights: Tensor
    rows: int
    front: int = 0

    @classmethod
    def of(cls, a: Tensor, threads: int | None = None) -> BagMatrix:
        """The bags of the CSR matrix ``a``, padded for ``threads`` threads (default: torch's
        current count) when it has at least :data:`BALANCE_ENTRIES` entries."""
        if not isinstance(a, Tensor) or a.layout != torch.sparse_csr:
            got = a.layout if isinstance(a, Tensor) else type(a).__name__
            raise DNWGraphTypeError(f"BagMatrix.of needs a sparse CSR tensor (got {got})")
        crow = a.crow_indices()
        threads = torch.get_num_threads() if threads is None else threads
        front = back = 0
        if threads > 1 and a.col_indices().numel() >= BALANCE_ENTRIES:
            front, back = bag_padding(crow, threads)
        offsets = crow
        if front:
            offsets = torch.cat([crow.new_zeros(front), crow])
        if back:
            offsets = torch.cat([crow, crow[-1:].expand(back)])
        return cls(offsets, a.col_indices(), a.values().detach(), crow.numel() - 1, front)

    def mm(self, x: Tensor) -> Tensor:
        """:math:`A X` for ``x`` ``[S, F]`` (a gradient reaches ``x`` when one is recorded)."""
        if not isinstance(x, Tensor) or x.dim() != 2:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise DNWGraphError(f"'x' must be a 2-D tensor [S, F] (got {got})")
        if x.size(1) == 0:  # no feature: embedding_bag fails on rows without columns
            return x.new_zeros(self.rows, 0) + x.sum() * 0  # (tied to x for autograd)
        if not (torch.is_grad_enabled() and x.requires_grad):
            x = x.detach()  # the kernel without the bookkeeping of a backward pass
        out = torch.nn.functional.embedding_bag(
            self.indices,
            x,
            self.offsets,
            mode="sum",
            per_sample_weights=self.weights,
            include_last_offset=True,
        )
        return out if out.size(0) == self.rows else out.narrow(0, self.front, self.rows)


def bag_padding(crow: Tensor, threads: int) -> tuple[int, int]:
    r"""Empty rows to put before and after the rows of the CSR row pointer ``crow`` (one of
    the two is 0) so that splitting all rows into ``threads`` equal runs, as torch's parallel
    loop does, gives each run about the same work.

    A run's work is counted as its entries plus its rows (each writes one output row); the
    padding with the smallest largest run wins, the least padding among equals.

    Example:
        >>> crow = torch.tensor([0, 0, 0, 0, 10, 20, 30, 40])  # 7 rows, the last 4 full
        >>> bag_padding(crow, 2)  # 2 empty rows after: runs of 5 rows, 20 entries each
        (0, 2)
    """
    rows = crow.numel() - 1
    # every padding up to 512 rows, a grid of 513 beyond (memory: [513, threads + 1])
    pad = torch.arange(0, rows + 1, max(1, rows // 512), device=crow.device)
    per_run = (rows + pad + threads - 1) // threads  # [P]
    cuts = torch.arange(threads + 1, device=crow.device) * per_run[:, None]  # [P, T + 1]
    best: tuple[int, int, int] | None = None  # (cost, front, back)
    for front in (True, False):
        at = (cuts - pad[:, None] if front else cuts).clamp(0, rows)
        cost = (crow[at].diff(dim=1) + per_run[:, None]).amax(1)
        i = int(cost.argmin())
        p = int(pad[i])
        option = (int(cost[i]), p if front else 0, 0 if front else p)
        if best is None or option[0] < best[0]:
            best = option
    assert best is not None
    return best[1], best[2]


def _rows(t: Tensor, index: Tensor, rng: tuple[int, int] | None) -> Tensor:
    """Rows ``index`` of ``t``: a view when they are the range ``rng``."""
    return t.narrow(0, *rng) if rng is not None else t.index_select(0, index)


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
    _mats: dict[tuple[torch.dtype, bool, torch.layout], Tensor] = field(
        default_factory=dict, init=False, repr=False
    )
    _bags: dict[tuple[torch.dtype, bool, int], BagMatrix] = field(
        default_factory=dict, init=False, repr=False
    )

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


def aggregate_forward(
    x: Tensor, plan: AggregationPlan, add_to: Tensor | None, out_dtype: torch.dtype
) -> Tensor:
    """:math:`A X` (or :math:`Y + A X`) in ``out_dtype``, summed in its accumulation dtype:
    the forward pass of :func:`wiring_matmul`, without autograd."""
    acc = accumulation_dtype(out_dtype)
    with no_autocast(x.device):
        # with add_to, the sum is the product's output buffer: one pass
        add = None if add_to is None else add_to.to(acc)
        out = spmm(plan.operand(acc), x.to(acc), add)
    return out.to(out_dtype)


def aggregate_backward(
    grad_out: Tensor,
    x: Tensor,
    plan: AggregationPlan,
    x_grad: bool,
    weight_grad: bool,
    weight_dtype: torch.dtype,
) -> tuple[Tensor | None, Tensor | None]:
    r"""Gradients of :func:`wiring_matmul` for ``x`` (:math:`A^\top G`) and for the edge
    weights (the SDDMM over the plan's gradient set, zero elsewhere), each only if asked."""
    acc = accumulation_dtype(grad_out.dtype)
    grad_x = grad_w = None
    with torch.no_grad(), no_autocast(x.device):
        g = grad_out.to(acc).contiguous()
        if x_grad:
            grad_x = spmm(plan.operand(acc, transpose=True), g).to(x.dtype)
        if weight_grad:
            values = sddmm(g, x.to(acc), plan.grad)
            if plan.grad.covers(plan.num_weights):  # every weight, in order
                grad_w = values
            else:
                grad_w = g.new_zeros(plan.num_weights).index_copy_(0, plan.grad.ids, values)
            grad_w = grad_w.to(weight_dtype)
    return grad_x, grad_w


#: Why :func:`wiring_matmul` has no second derivative, and what to use instead.
NO_DOUBLE_BACKWARD = (
    "the fused sparse aggregation of WiringConv (impl='sparse') has no second derivative "
    "(double backward, create_graph=True); build the layer with impl='scatter' or "
    "impl='dense', whose plain autograd ops have one"
)


class _FirstOrderOnly(torch.autograd.Function):
    """Identity on the gradients of :class:`_WiringMatmul`, tied to what they depend on; its
    backward raises: a second derivative through them is an error that says why, not a
    silent zero."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, grad_x: Tensor, grad_w: Tensor, *depends_on: Tensor
    ) -> tuple[Tensor, Tensor]:
        return grad_x.view_as(grad_x), grad_w.view_as(grad_w)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> None:  # type: ignore[override]
        raise DNWGraphError(NO_DOUBLE_BACKWARD)


class _WiringMatmul(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        x: Tensor,
        edge_weight: Tensor,
        add_to: Tensor | None,
        plan: AggregationPlan,
        out_dtype: torch.dtype,
    ) -> Tensor:
        ctx.plan = plan
        ctx.w_dtype = edge_weight.dtype
        ctx.add_dtype = None if add_to is None else add_to.dtype
        ctx.save_for_backward(x, edge_weight)
        return aggregate_forward(x, plan, add_to, out_dtype)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx, grad_out: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        x, edge_weight = ctx.saved_tensors
        need_x, need_w, need_add = ctx.needs_input_grad[:3]
        grad_x, grad_w = aggregate_backward(grad_out, x, ctx.plan, need_x, need_w, ctx.w_dtype)
        grad_add = grad_out.to(ctx.add_dtype) if need_add else None
        if torch.is_grad_enabled():  # create_graph=True: a second derivative must fail loudly
            empty = grad_out.new_empty(0)
            gx, gw = _FirstOrderOnly.apply(
                empty if grad_x is None else grad_x,
                empty if grad_w is None else grad_w,
                grad_out,
                x,
                edge_weight,
            )
            grad_x, grad_w = (g if need else None for g, need in ((gx, need_x), (gw, need_w)))
        return grad_x, grad_w, grad_add, None, None


@torch.no_grad()
def accumulate_(out: Tensor, x: Tensor, plan: AggregationPlan) -> Tensor:
    r""":math:`Y \leftarrow Y + A_{\mathcal{A}} X` in place, without autograd (inference).

    Args:
        out (Tensor): :math:`Y`, shape ``[num_nodes, F]``, updated in place.
        x (Tensor): node features, shape ``[num_src, F]``.
        plan (AggregationPlan): the selected edges.

    Returns:
        Tensor: ``out``.
    """
    acc = accumulation_dtype(out.dtype)
    with no_autocast(x.device):
        a, x = plan.operand(acc), x.to(acc)
        if out.dtype != acc:  # summed in the accumulation dtype and rounded once, as
            out.copy_(spmm(a, x, out.to(acc)))  # wiring_matmul does
        elif out.is_contiguous() and (isinstance(a, Tensor) or torch.get_num_threads() == 1):
            # the product adds into out's memory (no second pass over it, as the addition of
            # a bag sum's output is): cuSPARSE, or torch's COO kernel on one CPU thread
            if not isinstance(a, Tensor):
                a = plan.matrix(acc, layout=torch.sparse_coo)
            torch.addmm(out, a, x, out=out)
        else:
            out.add_(spmm(a, x))
    return out


def wiring_matmul(
    x: Tensor, edge_weight: Tensor, plan: AggregationPlan, *, add_to: Tensor | None = None
) -> Tensor:
    r"""Fused :math:`A_{\mathcal{A}} X` (or :math:`Y + A_{\mathcal{A}} X`) with the
    straight-through edge gradient of ``plan``.

    Args:
        x (Tensor): node features, shape ``[num_src, F]``.
        edge_weight (Tensor): all candidate weights, shape ``[E]`` (gradient flows here).
        plan (AggregationPlan): selected edges and gradient set.
        add_to (Tensor, optional): :math:`Y`, shape ``[num_nodes, F]``, summed into the
            product's output buffer (no separate addition pass). (default: ``None``)

    Returns:
        Tensor: shape ``[num_nodes, F]``.

    The plan carries the selected weights (its sparse matrix is built from them once); the
    ``edge_weight`` argument is where the gradient goes.  Half-precision features are
    aggregated in ``float32``; under :func:`torch.autocast` ``x`` is cast to the autocast dtype
    (the output's dtype).  :meth:`WiringConv.plan
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
    out_dtype = output_dtype(x, edge_weight)
    if x.is_floating_point() and torch.is_autocast_enabled(x.device.type):
        x = x.to(out_dtype)
    return _WiringMatmul.apply(x, edge_weight, add_to, plan, out_dtype)
