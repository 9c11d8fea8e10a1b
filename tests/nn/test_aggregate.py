import pytest
import torch

import dnwgraph.nn.aggregate as agg
from dnwgraph.nn.aggregate import EdgeSet, sddmm


def random_edges(n_rows, n_cols, num, seed):
    gen = torch.Generator().manual_seed(seed)
    key = torch.randperm(n_rows * n_cols, generator=gen)[:num].sort().values
    return EdgeSet(key // n_cols, key % n_cols, torch.arange(num))


@pytest.mark.parametrize("dense_factor, max_elems", [(10**9, 2**25), (10**9, 7), (0, 2**25)])
def test_sddmm_paths_agree(monkeypatch, dense_factor, max_elems):
    """Dense (one block), dense in row blocks, and chunked dot products give the same values."""
    monkeypatch.setattr(agg, "DENSE_FACTOR", dense_factor)
    monkeypatch.setattr(agg, "MAX_DENSE_ELEMENTS", max_elems)
    monkeypatch.setattr(agg, "CHUNK_ELEMENTS", 16)
    a = torch.randn(9, 5, dtype=torch.float64)
    b = torch.randn(7, 5, dtype=torch.float64)
    edges = random_edges(9, 7, 30, seed=0)
    assert edges.dense == (dense_factor > 0)
    expected = (a[edges.rows] * b[edges.cols]).sum(1)
    torch.testing.assert_close(sddmm(a, b, edges), expected)


def test_edge_set_chooses_dense_for_dense_candidates():
    assert random_edges(20, 20, 300, 0).dense
    assert not EdgeSet(torch.arange(1000), torch.arange(1000), torch.arange(1000)).dense
