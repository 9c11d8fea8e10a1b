import pytest
import torch

from dnwgraph.nn.kernels import AggregationPlan, EdgeSet, dtypes, matmul, sampled
from dnwgraph.nn.kernels.matmul import spmm
from dnwgraph.nn.kernels.sampled import sddmm


def random_edges(n_rows, n_cols, num, seed):
    gen = torch.Generator().manual_seed(seed)
    key = torch.randperm(n_rows * n_cols, generator=gen)[:num].sort().values
    return EdgeSet(key // n_cols, key % n_cols, torch.arange(num))


@pytest.mark.parametrize("dense_factor, max_elems", [(10**9, 2**25), (10**9, 7), (0, 2**25)])
def test_sddmm_paths_agree(monkeypatch, dense_factor, max_elems):
    """Dense (one block), dense in row blocks, and chunked dot products give the same values."""
    monkeypatch.setattr(sampled, "DENSE_FACTOR", dense_factor)
    monkeypatch.setattr(sampled, "MAX_DENSE_ELEMENTS", max_elems)
    a = torch.randn(9, 5, dtype=torch.float64)
    b = torch.randn(7, 5, dtype=torch.float64)
    edges = random_edges(9, 7, 30, seed=0)
    assert edges.dense == (dense_factor > 0)
    expected = (a[edges.rows] * b[edges.cols]).sum(1)
    torch.testing.assert_close(sddmm(a, b, edges), expected)


def test_edge_set_chooses_dense_for_dense_candidates():
    assert random_edges(20, 20, 300, 0).dense
    assert not EdgeSet(torch.arange(1000), torch.arange(1000), torch.arange(1000)).dense


def test_row_blocks_take_only_their_own_columns(monkeypatch):
    """Block-DAG gradient sets: later targets see more sources; each row block pays only for
    the columns it touches, and the values still equal the plain dot products."""
    monkeypatch.setattr(sampled, "ROW_BLOCK", 2)
    rows = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3])
    cols = torch.tensor([0, 1, 0, 1, 0, 1, 2, 3, 0, 1, 2, 3])
    edges = EdgeSet(rows, cols, torch.arange(12))
    assert [b.cols.tolist() for b in edges.blocks] == [[0, 1], [0, 1, 2, 3]]
    a, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(sddmm(a, b, edges), (a[rows] * b[cols]).sum(1))


def test_mixed_dense_and_sparse_blocks(monkeypatch):
    monkeypatch.setattr(sampled, "ROW_BLOCK", 3)
    monkeypatch.setattr(sampled, "DENSE_FACTOR", 2)
    dense_part = random_edges(6, 4, 24, seed=1)  # rows 0-5, every cell
    diag = torch.arange(6, 300)
    rows = torch.cat([dense_part.rows, diag])
    cols = torch.cat([dense_part.cols, diag])
    edges = EdgeSet(rows, cols, torch.arange(rows.numel()))
    kinds = [b.dense for b in edges.blocks]
    # the two complete 3-row blocks of the dense part are merged into one GEMM
    assert kinds[0] is True and kinds[-1] is False and not edges.dense
    assert (edges.blocks[0].e0, edges.blocks[0].e1) == (0, 24) and edges.blocks[0].complete
    a, b = torch.randn(300, 5, dtype=torch.float64), torch.randn(300, 5, dtype=torch.float64)
    torch.testing.assert_close(sddmm(a, b, edges), (a[rows] * b[cols]).sum(1))


def test_complete_blocks_are_views_and_merge(monkeypatch):
    """Every (row, col) pair of consecutive ranges (a DNW gradient set of a block DAG): the row
    blocks merge into one GEMM over views of the operands, written straight into the output;
    the values equal the plain dot products."""
    monkeypatch.setattr(sampled, "ROW_BLOCK", 4)
    r, c = torch.meshgrid(torch.arange(3, 13), torch.arange(2, 7), indexing="ij")
    rows, cols = r.flatten(), c.flatten()
    edges = EdgeSet(rows, cols, torch.arange(rows.numel()))
    (blk,) = edges.blocks
    assert blk.complete and blk.row_range == (3, 10) and blk.col_range == (2, 5)
    a, b = torch.randn(14, 6, dtype=torch.float64), torch.randn(8, 6, dtype=torch.float64)
    torch.testing.assert_close(sddmm(a, b, edges), (a[rows] * b[cols]).sum(1))
    # incomplete blocks keep their gather (every third pair left out: no band of rows alike)
    part = torch.arange(rows.numel()) % 3 != 0
    edges = EdgeSet(rows[part], cols[part], torch.arange(int(part.sum())))
    assert edges.dense and not any(blk.complete for blk in edges.blocks)
    torch.testing.assert_close(sddmm(a, b, edges), (a[rows[part]] * b[cols[part]]).sum(1))


def test_bands_of_rows_alike_get_blocks_of_their_own(monkeypatch):
    """A block DAG's gradient set: targets 0-9 see sources 0-2, targets 10-24 see 0-6; with
    row blocks of 8 rows, the blocks still end where the sources change, every block is
    complete, and the blocks of a band merge into one GEMM."""
    monkeypatch.setattr(sampled, "ROW_BLOCK", 8)
    parts = [torch.cartesian_prod(torch.arange(0, 10), torch.arange(0, 3))]
    parts.append(torch.cartesian_prod(torch.arange(10, 25), torch.arange(0, 7)))
    rows, cols = torch.cat(parts).t()
    edges = EdgeSet(rows, cols, torch.arange(rows.numel()))
    assert [(blk.row_range, blk.col_range) for blk in edges.blocks] == [
        ((0, 10), (0, 3)),
        ((10, 15), (0, 7)),
    ]
    assert all(blk.complete for blk in edges.blocks)
    # rows that differ one from the next are cut every ROW_BLOCK rows, not row by row
    diag = EdgeSet(torch.arange(40), torch.arange(40), torch.arange(40))
    assert sampled._block_starts(torch.arange(40), torch.arange(40), 40, 8) == [
        0,
        8,
        16,
        24,
        32,
        40,
    ]
    a, b = torch.randn(40, 3, dtype=torch.float64), torch.randn(40, 3, dtype=torch.float64)
    torch.testing.assert_close(sddmm(a, b, diag), (a * b).sum(1))
    torch.testing.assert_close(sddmm(a, b, edges), (a[rows] * b[cols]).sum(1))


@pytest.mark.parametrize("with_add", [False, True])
@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_spmm_layouts_agree(layout, with_add):
    """The plan's COO and CSR (default) matrices give the dense product (+ the sum)."""
    gen = torch.Generator().manual_seed(0)
    dense = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    dense[dense.abs() < 0.8] = 0
    rows, cols = dense.nonzero().t()
    plan = AggregationPlan(
        selected=EdgeSet(rows, cols, torch.arange(rows.numel())),
        grad=EdgeSet(rows, cols, torch.arange(rows.numel())),
        values=dense[rows, cols],
        num_nodes=6,
        num_src=5,
        num_weights=rows.numel(),
    )
    x = torch.randn(5, 11, generator=gen, dtype=torch.float64)
    g = torch.randn(6, 11, generator=gen, dtype=torch.float64)
    add = torch.randn(6, 11, generator=gen, dtype=torch.float64) if with_add else None
    a = plan.matrix(torch.float64, layout=layout)
    assert a.layout == layout
    torch.testing.assert_close(matmul.spmm(a, x, add), dense @ x + (0 if add is None else add))
    at = plan.matrix(torch.float64, transpose=True, layout=layout)
    torch.testing.assert_close(matmul.spmm(at, g), dense.t() @ g)


def test_spmm_without_add_to_is_the_product_with_and_without_autograd():
    torch.manual_seed(0)
    dense = torch.randn(5, 4) * (torch.rand(5, 4) < 0.5)
    x = torch.randn(4, 3, requires_grad=True)
    for a in (dense.to_sparse(), dense.to_sparse_csr()):
        with torch.no_grad():
            torch.testing.assert_close(spmm(a, x), dense @ x)
        out = spmm(a, x)  # x needs a gradient: the autograd path
        (grad,) = torch.autograd.grad(out.sum(), x)
        torch.testing.assert_close(grad, dense.t() @ torch.ones(5, 3))


def test_spmm_rows_without_edges_are_zero_whatever_the_memory_held(monkeypatch):
    # new memory may hold anything: here every new buffer is handed out full of NaN
    new_empty = torch.Tensor.new_empty

    def dirty(self, *size, **kwargs):
        return new_empty(self, *size, **kwargs).fill_(float("nan"))

    monkeypatch.setattr(torch.Tensor, "new_empty", dirty)
    a = torch.sparse_coo_tensor(torch.tensor([[0], [1]]), torch.tensor([2.0]), (3, 2)).coalesce()
    out = spmm(a, torch.ones(2, 5))
    assert torch.equal(out[0], torch.full((5,), 2.0)) and torch.equal(out[1:], torch.zeros(2, 5))
    empty = torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (3, 2))
    assert torch.equal(spmm(empty.coalesce(), torch.ones(2, 5)), torch.zeros(3, 5))  # no edge
    for layout in (torch.sparse_coo, torch.sparse_csr):
        assert layout == torch.sparse_coo or matmul._sums_bags(
            empty.to_sparse_csr(), torch.ones(2, 5)
        )
        m = empty.coalesce() if layout == torch.sparse_coo else empty.to_sparse_csr()
        assert torch.equal(spmm(m, torch.ones(2, 5)), torch.zeros(3, 5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_spmm_bag_sum_is_torch_sparse_product(dtype):
    """The CPU CSR product as a weighted bag sum (embedding_bag) against torch's own sparse
    product of the same matrix: empty rows (first, middle, last), an addend, one column."""
    gen = torch.Generator().manual_seed(3)
    dense = torch.randn(9, 7, generator=gen, dtype=torch.float64)
    dense[dense.abs() < 0.9] = 0
    dense[[0, 4, 8]] = 0
    for f in (1, 13):
        x = torch.randn(7, f, generator=gen, dtype=torch.float64)
        add = torch.randn(9, f, generator=gen, dtype=torch.float64)
        a = dense.to(dtype).to_sparse_csr()
        assert matmul._sums_bags(a, x.to(dtype))
        expected = torch.sparse.mm(dense.to_sparse(), x).to(dtype)  # float64 COO kernel
        tol = {"atol": 5e-2, "rtol": 2e-2} if dtype in dtypes.HALF_DTYPES else {}  # two roundings
        torch.testing.assert_close(spmm(a, x.to(dtype)), expected, **tol)
        torch.testing.assert_close(
            spmm(a, x.to(dtype), add.to(dtype)), (expected.double() + add).to(dtype), **tol
        )
    assert not matmul._sums_bags(dense.float().to_sparse_csr(), x)  # values of another dtype
    idx32 = torch.sparse_csr_tensor(  # 32-bit indices
        a.crow_indices().int(), a.col_indices().int(), a.values(), a.shape
    )
    assert torch.equal(spmm(idx32, x.to(dtype)), spmm(a, x.to(dtype)))


def _runs_cost(crow: list[int], threads: int, front: int, back: int) -> int:
    """The largest run's work (entries + rows) when the padded rows are split into
    ``threads`` equal runs: plain Python, the oracle of bag_padding."""
    rows = len(crow) - 1
    lengths = [0] * front + [crow[i + 1] - crow[i] for i in range(rows)] + [0] * back
    per_run = -(-len(lengths) // threads)
    runs = [lengths[i : i + per_run] for i in range(0, threads * per_run, per_run)]
    return max(sum(r) + per_run for r in runs)


@pytest.mark.parametrize("threads", [2, 3, 4, 7])
def test_bag_padding_is_the_best_padding_found_by_brute_force(threads):
    gen = torch.Generator().manual_seed(threads)
    for shape in ("rising", "falling", "random", "uniform"):
        rows = 37
        if shape == "rising":
            lengths = torch.arange(rows) * 3
        elif shape == "falling":
            lengths = torch.arange(rows).flip(0) * 3
        elif shape == "random":
            lengths = torch.randint(0, 40, (rows,), generator=gen)
        else:
            lengths = torch.full((rows,), 5)
        crow = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        front, back = matmul.bag_padding(crow, threads)
        assert front == 0 or back == 0
        got = _runs_cost(crow.tolist(), threads, front, back)
        options = [(f, 0) for f in range(rows + 1)] + [(0, b) for b in range(rows + 1)]
        best = min(_runs_cost(crow.tolist(), threads, f, b) for f, b in options)
        assert got == best, (shape, front, back)
        if shape == "uniform" and rows % threads == 0:
            assert (front, back) == (0, 0)


def test_bag_padding_of_many_rows_searches_a_grid_and_helps():
    """Beyond 512 rows the paddings tried are a grid (bounded memory); the one found still
    evens out rows of rising length far better than none."""
    rows = 3000
    crow = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(rows).cumsum(0)])
    front, back = matmul.bag_padding(crow, 2)
    assert front == 0 and back > 0
    cost = _runs_cost(crow.tolist(), 2, front, back)
    assert cost < 0.8 * _runs_cost(crow.tolist(), 2, 0, 0)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_bag_matrix_padded_for_threads_is_the_plain_product(threads):
    """Rows of rising and falling length (a DAG and its transpose): the padded bags give the
    product of the unpadded ones bit for bit, and the padding is where it should be."""
    gen = torch.Generator().manual_seed(0)
    n = 300
    lower = torch.rand(n, n, generator=gen) < torch.linspace(0, 0.6, n)[:, None]
    dense = torch.randn(n, n, generator=gen) * torch.tril(lower, -1)
    x = torch.randn(n, 17, generator=gen)
    for a in (dense, dense.t()):
        csr = a.to_sparse_csr()
        assert csr._nnz() >= matmul.BALANCE_ENTRIES
        bags = matmul.BagMatrix.of(csr, threads)
        plain = matmul.BagMatrix(csr.crow_indices(), csr.col_indices(), csr.values(), n)
        if threads > 1:
            assert bags.offsets.numel() > n + 1  # padded: rows of unequal length
            assert (bags.front > 0) == (a is not dense)  # the long rows come first in A^T
        out = bags.mm(x)
        assert out.shape == (n, 17)
        assert torch.equal(out, plain.mm(x))
        torch.testing.assert_close(out, a @ x, rtol=1e-5, atol=1e-5)


def test_bag_sum_reads_strided_features():
    """``x`` as a transposed view or with a column stride: the product of its values."""
    gen = torch.Generator().manual_seed(5)
    dense = torch.randn(6, 5, generator=gen) * (torch.rand(6, 5, generator=gen) < 0.5)
    for x in (torch.randn(7, 5, generator=gen).t(), torch.randn(5, 14, generator=gen)[:, ::2]):
        assert not x.is_contiguous()
        torch.testing.assert_close(spmm(dense.to_sparse_csr(), x), dense @ x)


def test_bag_matrix_passes_the_gradient_to_x_when_recorded():
    a = torch.tensor([[0.0, 2.0], [1.0, 3.0]]).to_sparse_csr()
    x = torch.randn(2, 3, requires_grad=True)
    out = matmul.BagMatrix.of(a).mm(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(grad, a.to_dense().t() @ torch.ones(2, 3))


def test_plan_operand_is_kept_per_thread_count():
    rows, cols = torch.tensor([0, 1, 1]), torch.tensor([1, 0, 1])
    edges = EdgeSet(rows, cols, torch.arange(3))
    plan = AggregationPlan(edges, edges, torch.tensor([1.0, 2.0, 3.0]), 2, 2, 3)
    threads = torch.get_num_threads()
    first = plan.operand(torch.float32)
    assert isinstance(first, matmul.BagMatrix) and plan.operand(torch.float32) is first
    try:
        torch.set_num_threads(threads + 1)
        assert plan.operand(torch.float32) is not first
    finally:
        torch.set_num_threads(threads)
    x = torch.randn(2, 4)
    torch.testing.assert_close(
        spmm(plan.operand(torch.float32, transpose=True), x),
        plan.matrix(torch.float32, transpose=True).to_dense() @ x,
    )


def test_bag_matrix_says_what_it_needs():
    from dnwgraph.errors import DNWGraphError

    dense = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    with pytest.raises(TypeError, match=r"needs a sparse CSR tensor \(got torch.strided\)"):
        matmul.BagMatrix.of(dense)
    with pytest.raises(TypeError, match=r"needs a sparse CSR tensor \(got list\)"):
        matmul.BagMatrix.of([[1.0]])
    with pytest.raises(DNWGraphError, match=r"'x' must be a 2-D tensor \[S, F\] \(got \(2,\)\)"):
        matmul.BagMatrix.of(dense.to_sparse_csr()).mm(torch.ones(2))
