"""LevelExecutor: the level-range chain against the general level loop and another impl."""

import copy

import pytest
import torch

from dnwgraph import Wiring, block_dag
from dnwgraph.nn import LevelExecutor


def randomize(ex, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ex.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return ex


def run(ex, x, g, rows=None):
    x = x.clone().requires_grad_(True)
    out = ex(x) if rows is None else ex(x, rows=rows)
    (out * g).sum().backward()
    return out, x.grad, [p.grad for p in ex.parameters()]


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
@pytest.mark.parametrize("sizes", [[3, 4, 4, 2], [2, 3], [4, 1, 5, 3, 2]])
def test_chain_equals_general_loop(sizes, impl):
    torch.manual_seed(0)
    wiring = block_dag(sizes)
    ex = LevelExecutor(wiring, ratio=0.6, impl=impl).double()
    randomize(ex)
    assert ex._chain
    general = copy.deepcopy(ex)
    general._chain = False
    oracle = copy.deepcopy(general)  # another implementation of the aggregation
    oracle.conv.impl = "scatter" if impl != "scatter" else "dense"
    x = torch.randn(wiring.num_nodes, 2, 3, 3, dtype=torch.float64)
    g = torch.randn_like(x)
    out, gx, gp = run(ex, x, g)
    for other in (general, oracle):
        ref, rx, rp = run(other, x, g)
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(gx, rx)
        for a, b in zip(gp, rp, strict=True):
            torch.testing.assert_close(a, b)


def test_chain_needs_level_ranges_reaching_forward():
    # level 0 is {0, 2}, level 1 is {1}: not node ranges, so the general loop runs
    wiring = Wiring([(0, 1), (2, 1), (1, 3)], num_nodes=4)
    ex = LevelExecutor(wiring, ratio=3, node_op="neuron")
    assert not ex._chain
    x = torch.randn(4, 2)
    assert ex(x).shape == (4, 2)
    assert LevelExecutor(block_dag([2, 2]), ratio=3, node_op="neuron")._chain


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("impl", ["sparse", "scatter"])
def test_inference_chain_in_place_equals_autograd_chain(impl, dtype):
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 4, 2])
    ex = randomize(LevelExecutor(wiring, ratio=0.6, impl=impl).double()).to(dtype)
    x = torch.randn(wiring.num_nodes, 2, 3, 3, dtype=dtype)
    keep = x.clone()
    with torch.no_grad():
        inplace = ex(x)
    assert torch.equal(x, keep)  # the input is not modified
    ref = ex(x)  # autograd on: the out-of-place chain
    assert ref.requires_grad and not inplace.requires_grad
    tol = {} if dtype == torch.float64 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(inplace, ref.detach(), **tol)


@pytest.mark.parametrize("chain", [True, False])
@pytest.mark.parametrize("rows", [[12, 11], [0, 12, 5]])  # last block only / anywhere
def test_rows_equal_indexing_the_full_result(rows, chain):
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 4, 2])
    ex = randomize(LevelExecutor(wiring, ratio=0.6).double())
    ex._chain = chain
    rows = torch.tensor(rows)
    x = torch.randn(wiring.num_nodes, 2, 3, 3, dtype=torch.float64)
    g = torch.randn(len(rows), 2, 3, 3, dtype=torch.float64)
    full = copy.deepcopy(ex)
    out, gx, gp = run(ex, x, g, rows=rows)
    ref, rx, rp = run(
        full, x, torch.zeros(wiring.num_nodes, 2, 3, 3).double().index_copy(0, rows, g)
    )
    torch.testing.assert_close(out, ref[rows])
    torch.testing.assert_close(gx, rx)
    for a, b in zip(gp, rp, strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        torch.testing.assert_close(ex(x, rows=rows), ref[rows].detach())


def test_chain_gradients_over_two_backward_passes():
    """The chain's gradient workspace is fresh per backward pass (retain_graph)."""
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 4, 2])
    ex = randomize(LevelExecutor(wiring, ratio=0.6).double())
    general = copy.deepcopy(ex)
    general._chain = False
    x = torch.randn(wiring.num_nodes, 2, 3, 3, dtype=torch.float64)
    g = torch.randn_like(x)
    grads = []
    for model in (ex, general):
        xr = x.clone().requires_grad_(True)
        out = model(xr)
        (out * g).sum().backward(retain_graph=True)
        first = xr.grad.clone()
        (out * g).sum().backward()
        torch.testing.assert_close(xr.grad, 2 * first)
        grads.append((xr.grad, [p.grad for p in model.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b)


class CentreMean:
    """A linear pool written independently of the readout: the mean of the centre 2 x 2."""

    def pool(self, x):
        return x[:, :, 1:3, 1:3].mean((2, 3))

    def pool_adjoint_(self, grad, h):
        grad[:, :, 1:3, 1:3] += h[:, :, None, None] / 4
        return grad


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
@pytest.mark.parametrize("sizes", [[3, 4, 4, 2], [2, 3, 1], [4, 5, 3, 2, 3]])
def test_pooled_sinks_equal_pooling_the_full_rows(sizes, impl):
    # the products into the trailing sinks run on pooled features: same values, same
    # gradients (inputs, edge weights, node ops) as pooling the assembled rows
    torch.manual_seed(0)
    wiring = block_dag(sizes)
    ex = randomize(LevelExecutor(wiring, ratio=0.6, impl=impl).double())
    n, last = wiring.num_nodes, sizes[-1]
    assert ex._sink_start == n - last
    rows = torch.arange(n - last, n).flip(0)
    x = torch.randn(n, 2, 4, 4, dtype=torch.float64)
    g = torch.randn(len(rows), 2, dtype=torch.float64)
    full = copy.deepcopy(ex)
    pool = CentreMean()
    xa = x.clone().requires_grad_(True)
    out = ex(xa, rows=rows, pool=pool)
    (out * g).sum().backward()
    xb = x.clone().requires_grad_(True)
    ref = pool.pool(full(xb, rows=rows))
    (ref * g).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(xa.grad, xb.grad)
    for a, b in zip(ex.parameters(), full.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    with torch.no_grad():  # the in-place inference chain
        torch.testing.assert_close(ex(x, rows=rows, pool=pool), ref.detach())


def test_pool_falls_back_for_rows_that_are_not_sinks():
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 2])
    ex = randomize(LevelExecutor(wiring, ratio=0.6).double())
    x = torch.randn(wiring.num_nodes, 2, 4, 4, dtype=torch.float64)
    rows = torch.tensor([8, 4])  # node 4 has out-edges
    pool = CentreMean()
    torch.testing.assert_close(ex(x, rows=rows, pool=pool), pool.pool(ex(x, rows=rows)))
    with pytest.raises(ValueError, match="'pool' needs 'rows'"):
        ex(x, pool=pool)
