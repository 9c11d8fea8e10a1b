"""LevelExecutor: the level-range chain against the general level loop and another impl."""

import copy
import gc

import pytest
import torch

from dnwgraph import Wiring, WiringSpec, block_dag
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
    ex = LevelExecutor(wiring, WiringSpec(0.6, impl=impl)).double()
    randomize(ex)
    assert ex.chain is not None
    general = copy.deepcopy(ex)
    general.chain = None
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


def test_a_dag_whose_levels_are_not_ranges_runs_renumbered():
    # level 0 is {0, 2}, level 1 is {1}: not node ranges, so the chain runs level by level
    # in the order 0, 2 | 1 | 3, and the layer keeps the caller's ids
    wiring = Wiring([(0, 1), (2, 1), (1, 3)], num_nodes=4)
    ex = LevelExecutor(wiring, WiringSpec(3, node_op="neuron"))
    assert ex.chain.order.order.tolist() == [0, 2, 1, 3]
    assert ex.chain.ranges == [(0, 2), (2, 1)]
    assert ex.conv.edge_index.tolist() == [[0, 2, 1], [1, 1, 3]]
    x = torch.randn(4, 2)
    torch.testing.assert_close(ex(x), ex.plain_forward(x))
    assert LevelExecutor(block_dag([2, 2]), WiringSpec(3, node_op="neuron")).chain.order is None


def random_wiring(n, p, seed):
    """A random DAG whose levels are not node ranges: edges u -> v (u < v in a random order)."""
    gen = torch.Generator().manual_seed(seed)
    rank = torch.randperm(n, generator=gen)
    u, v = torch.triu_indices(n, n, 1)
    keep = torch.rand(u.numel(), generator=gen) < p
    return Wiring(torch.stack([rank[u[keep]], rank[v[keep]]]), n)


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
@pytest.mark.parametrize(("n", "p", "seed"), [(12, 0.3, 0), (30, 0.15, 1), (40, 0.5, 2)])
def test_renumbered_chain_equals_the_plain_loop(n, p, seed, impl):
    wiring = random_wiring(n, p, seed)
    ex = randomize(
        LevelExecutor(wiring, WiringSpec(0.5, node_op="neuron", impl=impl)).double(), seed
    )
    assert ex.chain.order is not None and wiring.num_levels > 2
    plain = copy.deepcopy(ex)
    plain.chain = None
    x = torch.randn(n, 3, dtype=torch.float64)
    g = torch.randn_like(x)
    for _ in range(2):  # the gradient memory kept between passes changes nothing
        out, gx, gp = run(ex, x, g)
        ref, rx, rp = run(plain, x, g)
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(gx, rx)
        for a, b in zip(gp, rp, strict=True):
            torch.testing.assert_close(a, b)
        ex.zero_grad(), plain.zero_grad()
    rows = torch.tensor([n - 1, 0, n // 2])
    torch.testing.assert_close(run(ex, x, g[rows], rows)[0], ref[rows])
    torch.testing.assert_close(ex(x, rows=slice(2, n - 1)), ref[2 : n - 1])
    with torch.no_grad():  # the in-place chain
        torch.testing.assert_close(ex(x), ref)
        torch.testing.assert_close(ex(x, rows=rows), ref[rows])


def test_renumbered_chain_from_first_level_inputs_and_pooled_sinks():
    wiring = random_wiring(25, 0.3, 3)
    ex = randomize(LevelExecutor(wiring, WiringSpec(0.5)).double())
    plain = copy.deepcopy(ex)
    plain.chain = None
    first = ex.groups[0]
    x0 = torch.randn(first.numel(), 2, 4, 4, dtype=torch.float64)
    full = torch.zeros(25, 2, 4, 4, dtype=torch.float64).index_copy(0, first, x0)
    ref = plain(full)
    after = torch.tensor([v for v in range(25) if v not in first.tolist()])
    torch.testing.assert_close(ex(x0), ref[after])
    sinks = wiring.output_nodes
    torch.testing.assert_close(ex(x0, rows=sinks), ref[sinks])
    pool = CentreMean()
    g = torch.randn(sinks.numel(), 2, dtype=torch.float64)
    x0r = x0.clone().requires_grad_(True)
    (ex(x0r, rows=sinks, pool=pool) * g).sum().backward()
    fr = full.clone().requires_grad_(True)
    (plain(fr, rows=sinks, pool=pool) * g).sum().backward()
    torch.testing.assert_close(x0r.grad, fr.grad[first])
    for a, b in zip(ex.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    with pytest.raises(ValueError, match=f"outside the first level .*got node {int(first[0])}"):
        ex(x0, rows=first[:1])


def test_renumbered_chain_leaves_hooked_layers_to_the_plain_loop():
    wiring = random_wiring(15, 0.3, 4)
    ex = randomize(LevelExecutor(wiring, WiringSpec(0.5, node_op="neuron")).double())
    calls = []
    ex.conv.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    x = torch.randn(15, 2, dtype=torch.float64)
    out = ex(x)
    assert calls == [g.numel() for g in ex.groups]  # the layer's own calls, level by level
    torch.testing.assert_close(out, ex.plain_forward(x))
    first, sinks = ex.groups[0], wiring.output_nodes
    only_first = torch.zeros_like(x).index_copy(0, first, x[first])
    torch.testing.assert_close(ex(x[first], rows=sinks), ex.plain_forward(only_first)[sinks])


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("impl", ["sparse", "scatter"])
def test_inference_chain_in_place_equals_autograd_chain(impl, dtype):
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 4, 2])
    ex = randomize(LevelExecutor(wiring, WiringSpec(0.6, impl=impl)).double()).to(dtype)
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
    ex = randomize(LevelExecutor(wiring, WiringSpec(0.6)).double())
    ex.chain = ex.chain if chain else None
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
    ex = randomize(LevelExecutor(wiring, WiringSpec(0.6)).double())
    general = copy.deepcopy(ex)
    general.chain = None
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


# ------------------------------------------------ first-level inputs, prebuilt node ops


class Halve(torch.nn.Module):
    """A node op that changes the spatial size: 2x2 average pooling, scaled per node."""

    def __init__(self, nodes):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.linspace(0.5, 1.5, nodes, dtype=torch.float64))

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, 2) * self.scale.view(-1, 1, 1, 1)


def halving_executor(impl, sizes=(3, 4, 4, 2)):
    torch.manual_seed(0)
    wiring = block_dag(list(sizes))

    def ops(level_sizes):
        first, *rest = level_sizes
        return [Halve(first)] + [torch.nn.Tanh() for _ in rest]

    ex = LevelExecutor(wiring, WiringSpec(0.6, impl=impl), node_ops=ops).double()
    return randomize(ex), wiring


def first_level_oracle(ex, x):
    """The first level's inputs only, computed by the general loop of the levels: the first
    level by hand (its output at the smaller size), then every later level on all N rows."""
    hi = ex.groups[0].numel()
    acc = ex.conv(ex.node_ops[0](x), group=0)
    for i in range(1, len(ex.node_ops)):
        g = ex.groups[i]
        acc = acc + ex.conv(ex.node_ops[i](acc.index_select(0, g)), group=i)
    return acc[hi:]


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
@pytest.mark.parametrize("sizes", [(3, 4, 4, 2), (2, 3)])
def test_first_level_inputs_equal_the_general_loop(impl, sizes):
    ex, wiring = halving_executor(impl, sizes)
    x = torch.randn(sizes[0], 2, 6, 6, dtype=torch.float64)
    g = torch.randn(wiring.num_nodes - sizes[0], 2, 3, 3, dtype=torch.float64)
    oracle = copy.deepcopy(ex)
    out, gx, gp = run(ex, x, g)
    xr = x.clone().requires_grad_(True)
    ref = first_level_oracle(oracle, xr)
    (ref * g).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(gx, xr.grad)
    for a, b in zip(gp, [p.grad for p in oracle.parameters()], strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # the in-place inference chain
        torch.testing.assert_close(ex(x), ref.detach())


def test_first_level_inputs_read_rows_and_slices():
    ex, wiring = halving_executor("sparse")
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    full = ex(x)  # nodes 3..12
    rows = torch.tensor([12, 4, 11])
    torch.testing.assert_close(ex(x, rows=rows), full[rows - 3])
    torch.testing.assert_close(ex(x, rows=slice(11, 13)), full[8:])
    torch.testing.assert_close(ex(x, rows=slice(5, 9)), full[2:6])  # across blocks
    with torch.no_grad():
        torch.testing.assert_close(ex(x, rows=rows), full[rows - 3].detach())
        torch.testing.assert_close(ex(x, rows=slice(5, 9)), full[2:6].detach())
    with pytest.raises(ValueError, match=r"nodes after the first level \(>= 3\)"):
        ex(x, rows=torch.tensor([2, 5]))
    with pytest.raises(ValueError, match=r"within \[3, 13\)"):
        ex(x, rows=slice(0, 4))
    with pytest.raises(ValueError, match="step 1"):
        ex(x, rows=slice(4, 10, 2))


def test_rows_slice_equals_rows_tensor_for_every_node():
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 4, 2])
    ex = randomize(LevelExecutor(wiring, WiringSpec(0.6, node_op="neuron")).double())
    x = torch.randn(13, 5, dtype=torch.float64)
    for chain in (True, False):
        ex.chain = ex.chain if chain else None
        for lo, hi in ((0, 13), (11, 13), (2, 9)):
            torch.testing.assert_close(ex(x, rows=slice(lo, hi)), ex(x, rows=torch.arange(lo, hi)))


def test_first_level_inputs_are_checked():
    wiring = Wiring([(0, 1), (2, 1), (1, 3)], num_nodes=4)  # level 0 = {0, 2}
    ex = LevelExecutor(wiring, WiringSpec(3, node_op="neuron"))
    ex.chain = None  # the plain loop alone takes every node's inputs only
    with pytest.raises(ValueError, match=r"first level only \(\[2, B, \*\]\), which needs a chain"):
        ex(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"N=4 \(got \(3, 5\)\)"):
        ex(torch.randn(3, 5))
    chain = LevelExecutor(block_dag([2, 2]), WiringSpec(3, node_op="neuron"))
    with pytest.raises(ValueError, match=r"N=4, or \[2, B, \*\] \(the first level's inputs\)"):
        chain(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"node_outputs|N=4"):
        chain.node_outputs(torch.randn(2, 5))


def test_prebuilt_node_ops_are_checked():
    wiring = block_dag([2, 3, 2])  # executed levels: sizes [2, 3]
    with pytest.raises(ValueError, match=r"per executed level: 2 .*sizes \[2, 3\]\) \(got 1\)"):
        LevelExecutor(wiring, WiringSpec(4), node_ops=[torch.nn.ReLU()])
    with pytest.raises(TypeError, match=r"'node_ops\[1\]' must be an nn.Module \(got str\)"):
        LevelExecutor(wiring, WiringSpec(4), node_ops=[torch.nn.ReLU(), "relu"])
    ex = LevelExecutor(
        wiring, WiringSpec(4), node_ops=lambda sizes: [torch.nn.Identity() for _ in sizes]
    )
    assert len(ex.node_ops) == 2
    assert all(isinstance(op, torch.nn.Identity) for op in ex.node_ops)  # not spec.node_op's


def test_the_spec_reaches_the_wiring_layer():
    wiring = block_dag([2, 3, 2])
    spec = WiringSpec(4, "random", impl="dense", fan_in="candidates", grad_every=2)
    ex = LevelExecutor(wiring, spec.replace(selection_options={"seed": 5}))
    conv = ex.conv
    assert (conv.impl, conv.fan_in, conv.grad_every, conv.k) == ("dense", "candidates", 2, 4)
    assert conv.selection.name == "random" and conv.selection.seed == 5
    assert ex.spec.selection_options == {"seed": 5}
    # the fan-in the spec leaves to the model is the layer's default
    assert LevelExecutor(wiring, WiringSpec(4)).conv.fan_in == "selected"


def test_the_spec_is_one_argument():
    wiring = block_dag([2, 3, 2])
    with pytest.raises(TypeError, match=r"'spec' must be a WiringSpec, .* \(got int 4\)"):
        LevelExecutor(wiring, 4)
    with pytest.raises(TypeError, match="unexpected keyword argument 'impl'"):
        LevelExecutor(wiring, WiringSpec(4), impl="dense")


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
    ex = randomize(LevelExecutor(wiring, WiringSpec(0.6, impl=impl)).double())
    n, last = wiring.num_nodes, sizes[-1]
    assert ex.chain.sink_start == n - last
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
    ex = randomize(LevelExecutor(wiring, WiringSpec(0.6)).double())
    x = torch.randn(wiring.num_nodes, 2, 4, 4, dtype=torch.float64)
    rows = torch.tensor([8, 4])  # node 4 has out-edges
    pool = CentreMean()
    torch.testing.assert_close(ex(x, rows=rows, pool=pool), pool.pool(ex(x, rows=rows)))
    with pytest.raises(ValueError, match="'pool' needs 'rows'"):
        ex(x, pool=pool)


@pytest.mark.parametrize("impl", ["sparse", "scatter"])
def test_pooled_sinks_from_the_first_level_inputs(impl):
    # first-level inputs only (the others start at zero) and pooled sinks together
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 2, 3])
    ex = randomize(LevelExecutor(wiring, WiringSpec(0.6, impl=impl)).double())
    full = copy.deepcopy(ex)
    rows = torch.tensor([10, 9, 11])
    x0 = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    g = torch.randn(3, 2, dtype=torch.float64)
    pool = CentreMean()
    xa = x0.clone().requires_grad_(True)
    out = ex(xa, rows=rows, pool=pool)
    (out * g).sum().backward()
    xb = x0.clone().requires_grad_(True)
    padded = torch.cat([xb, xb.new_zeros(wiring.num_nodes - 3, 2, 4, 4)])
    ref = pool.pool(full(padded)[rows])
    (ref * g).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(xa.grad, xb.grad)
    for a, b in zip(ex.parameters(), full.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    with torch.no_grad():
        torch.testing.assert_close(ex(x0, rows=rows, pool=pool), ref.detach())
        torch.testing.assert_close(
            ex(x0, rows=slice(9, 12), pool=pool), pool.pool(full(padded)[9:])
        )


def first_level_executor():
    torch.manual_seed(0)
    return randomize(LevelExecutor(block_dag([3, 4, 4, 2]), WiringSpec(0.6)).double())


def steps(ex, xs, memory=True, lr=0.1):
    if not memory:
        ex.chain._memory = lambda conv, x: None
    opt = torch.optim.SGD(ex.parameters(), lr=lr)
    for x in xs:
        opt.zero_grad()
        (ex(x, rows=slice(7, 13)) ** 2).sum().backward()
        opt.step()
    return [p.detach().clone() for p in ex.parameters()]


def test_gradient_memory_is_kept_between_passes_and_changes_nothing():
    xs = [torch.randn(3, 2, 3, 3, dtype=torch.float64) for _ in range(4)]
    ex = first_level_executor()
    kept = steps(ex, xs[:1])
    gc.collect()
    storage = ex.chain.spare._storage
    assert storage is not None and ex.chain.spare._last() is None  # free between passes
    kept = steps(ex, xs[1:])
    assert ex.chain.spare._storage is storage  # the same memory served the later passes
    plain = steps(first_level_executor(), xs, memory=False)
    for a, b in zip(steps(first_level_executor(), xs), plain, strict=True):
        assert torch.equal(a, b)
    assert len(kept) == len(plain)


def test_gradient_memory_with_two_passes_in_flight_and_a_retained_graph():
    x1, x2 = (torch.randn(3, 2, 3, 3, dtype=torch.float64) for _ in range(2))
    ex = first_level_executor()
    steps(ex, [x1])  # memory kept
    ex.zero_grad()
    loss = (ex(x1, rows=slice(7, 13)) ** 2).sum() + (ex(x2, rows=slice(7, 13)) ** 3).sum()
    loss.backward(retain_graph=True)
    both = [p.grad.clone() for p in ex.parameters()]
    loss.backward()  # the retained graph again: twice the gradients
    for p, g in zip(ex.parameters(), both, strict=True):
        torch.testing.assert_close(p.grad, 2 * g)
    ref = first_level_executor()
    steps(ref, [x1], memory=False)  # the same weights, no kept memory
    ref.zero_grad()
    for x, power in ((x1, 2), (x2, 3)):
        (ref(x, rows=slice(7, 13)) ** power).sum().backward()
    for a, b in zip(both, ref.parameters(), strict=True):
        torch.testing.assert_close(a, b.grad)
    clone = copy.deepcopy(ex)  # a copy starts without the kept memory
    assert clone.chain.spare._storage is None and ex.chain.spare._storage is not None


def test_gradient_memory_is_handed_out_only_when_no_tensor_uses_it():
    from dnwgraph.nn.kernels.chain import SpareMemory

    memory, like = SpareMemory(), torch.zeros(1, dtype=torch.float64)
    first = memory.take((4, 3), like)
    view = first[1:]  # a view keeps the buffer in use
    del first
    second = memory.take((4, 3), like)
    assert second.data_ptr() != view.data_ptr() - 3 * 8  # not the memory still in use
    del view, second
    third = memory.take((2, 3), like)  # smaller fits in the kept memory
    again = memory.take((2, 3), like)  # third still alive: new memory
    assert third.untyped_storage().data_ptr() == memory._storage.data_ptr()
    assert again.untyped_storage().data_ptr() != memory._storage.data_ptr()
    assert memory.take((4, 3), torch.zeros(1)).dtype == torch.float32  # another dtype: new


def test_a_wiring_of_100000_levels_is_refused_before_anything_is_built(monkeypatch):
    from dnwgraph.nn import levels
    from dnwgraph.nn.kernels import LevelChain

    monkeypatch.setattr(levels, "_available_memory", lambda: 2**40)
    for depth, refused in ((99_999, False), (100_000, True)):  # a path: one node per level
        chain = LevelChain([(i, 1) for i in range(depth)], depth + 1, depth)
        if refused:
            with pytest.raises(ValueError, match=r"^a static wiring with 100000 executed levels"):
                levels._check_depth(chain, depth, "auto")
        else:
            levels._check_depth(chain, depth, "auto")
    path = Wiring(torch.stack([torch.arange(5), torch.arange(1, 6)]))  # 5 executed levels
    monkeypatch.setattr(levels, "MAX_LEVELS", 5)
    with pytest.raises(ValueError, match=r"5 executed levels over 6 nodes and 5 candidates"):
        LevelExecutor(path, WiringSpec(3, node_op="neuron"))


def test_the_estimate_is_that_of_the_chain_that_will_run(monkeypatch):
    # a path of 12 levels pulls with the sparse backend (plans of 80 bytes per candidate and
    # 32 per node, whatever the depth) and pushes with the scatter one (64 per candidate and
    # 8 per node and level); the memory available is set between the two estimates
    from dnwgraph.nn import levels

    path = Wiring(torch.stack([torch.arange(12), torch.arange(1, 13)]))  # 13 nodes, 12 edges
    pull_bytes, push_bytes = 80 * 12 + 32 * 13, 64 * 12 + 8 * 12 * 13
    assert pull_bytes < push_bytes
    monkeypatch.setattr(levels, "_available_memory", lambda: pull_bytes)
    ex = LevelExecutor(path, WiringSpec(3, node_op="neuron"))
    assert ex.chain.pulls_for("auto") and ex.chain.plan_bytes(12, "auto") == pull_bytes
    pattern = r"needs about 0\.0 GiB of level plans per weight state as a push chain \("
    with pytest.raises(ValueError, match=pattern):
        LevelExecutor(path, WiringSpec(3, node_op="neuron", impl="scatter"))
    monkeypatch.setattr(levels, "_available_memory", lambda: pull_bytes - 1)
    pattern = r"as a pull chain, and 0 KiB per feature of a batch in training \(expected"
    with pytest.raises(ValueError, match=pattern):
        LevelExecutor(path, WiringSpec(3, node_op="neuron"))
    # the pull chain's estimate does not grow with the levels, the push chain's does
    ten, twenty = chain_of_depth(40, 10), chain_of_depth(40, 20)
    assert ten.pulls_for("auto") and twenty.pulls_for("auto")
    assert ten.plan_bytes(100, "auto") == twenty.plan_bytes(100, "auto") == 80 * 100 + 32 * 40
    assert twenty.plan_bytes(100, "scatter") - ten.plan_bytes(100, "scatter") == 8 * 10 * 40


def chain_of_depth(num_nodes, depth):
    """A chain of ``depth`` levels tiling the nodes before one sink."""
    from dnwgraph.nn.kernels import LevelChain

    sizes = [1] * (depth - 1) + [num_nodes - depth]
    starts = [sum(sizes[:i]) for i in range(depth)]
    return LevelChain(list(zip(starts, sizes, strict=True)), num_nodes, num_nodes - 1)


@pytest.mark.parametrize("first", [False, True])
def test_pooled_sinks_are_one_product_per_pass(first):
    # every level's pooled outputs reach the sinks through one call (one plan, one product,
    # one edge gradient), not one call per level
    torch.manual_seed(0)
    ex = randomize(LevelExecutor(block_dag([3, 4, 2, 3]), WiringSpec(0.6)).double())
    x = torch.randn(3 if first else 12, 2, 4, 4, dtype=torch.float64)
    ex(x, rows=slice(9, 12), pool=CentreMean()).sum().backward()
    assert [r for r in ex.conv.plan_cache.plans if r.last > 9] == [(None, 9, 12)]


def test_pooled_sinks_of_a_chain_with_a_node_between_its_levels():
    # node 3 has no out-edge and is no sink: the levels [0, 1], [2], [4] are node ranges with
    # a gap, whose row of the pooled features of every node is zero
    edges = [(0, 2), (0, 3), (1, 3), (1, 4), (2, 4), (2, 5), (4, 5), (4, 6), (0, 6)]
    ex = randomize(LevelExecutor(Wiring(edges, 7), WiringSpec(0.8)).double())
    assert ex.chain.order is None and ex.ranges == [(0, 2), (2, 1), (4, 1)]
    plain = copy.deepcopy(ex)
    plain.chain = None
    rows, pool = torch.tensor([6, 5]), CentreMean()
    x = torch.randn(7, 2, 4, 4, dtype=torch.float64)
    g = torch.randn(2, 2, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = ex(xa, rows=rows, pool=pool)
    (out * g).sum().backward()
    ref = pool.pool(plain(xb)[rows])
    (ref * g).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(xa.grad, xb.grad)
    for a, b in zip(ex.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    with torch.no_grad():  # the in-place inference chain
        torch.testing.assert_close(ex(x, rows=rows, pool=pool), ref.detach())
