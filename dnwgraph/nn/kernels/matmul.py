r"""Sparse times dense products :math:`A X`: torch's sparse kernels (COO, cuSPARSE CSR) and,
on a CPU, a weighted bag sum (:class:`BagMatrix`: one vectorised kernel per output row, rows
shared evenly in work among torch's threads)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.nn.kernels.dtypes import HALF_DTYPES


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
    most even (``bag_padding``); their output rows are dropped as a view (of a buffer
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


def csr(rows: Tensor, cols: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    """Sparse CSR matrix from row-sorted ``rows``/``cols``/``values``."""
    crow = rows.new_zeros(size[0] + 1)
    torch.cumsum(torch.bincount(rows, minlength=size[0]), 0, out=crow[1:])
    with warnings.catch_warnings():  # "CSR support is in beta": true, and not the user's concern
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, size, check_invariants=False)
