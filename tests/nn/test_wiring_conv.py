import dataclasses

import pytest
import torch

from dnwgraph import Wiring, WiringConv, block_dag, complete, random_dag


def dense_reference(wiring, edge_weight, edge_index, x, k, straight_through=True):
    """Independent dense straight-through layer, as in the reference code: a dense N x N
    weight, a top-k mask over the candidates, a matmul."""
    n = wiring.num_nodes
    src, dst = edge_index
    weight = torch.zeros(n, n, dtype=edge_weight.dtype).index_put((dst, src), edge_weight)
    weight.requires_grad_(True)
    cand = torch.zeros(n, n, dtype=torch.bool)
    cand[dst, src] = True
    score = torch.where(cand, weight.detach().abs(), torch.full_like(weight, -1.0))
    order = sorted(range(n * n), key=lambda i: -float(score.view(-1)[i]))  # ties irrelevant
    mask = torch.zeros(n * n, dtype=weight.dtype)
    mask[order[:k]] = 1
    mask = mask.view(n, n)
    if straight_through:
        effective = weight * mask + (weight - weight.detach()) * (1 - mask)
    else:
        effective = weight * mask
    out = effective @ x.reshape(n, -1)
    return out.view_as(x), weight, mask


def hand_wiring():
    # caller's order differs from the stored (target, source) order
    return Wiring([(2, 3), (0, 2), (0, 3), (1, 2)], num_nodes=4)


def set_weights(conv, by_edge):
    with torch.no_grad():
        for e, (u, v) in enumerate(conv.edge_index.t().tolist()):
            conv.edge_weight[e] = by_edge[(u, v)]


def test_hand_computed_forward_and_gradients():
    wiring = hand_wiring()
    conv = WiringConv(wiring, ratio=2)
    assert conv.edge_index.tolist() == [[0, 1, 0, 2], [2, 2, 3, 3]]
    assert torch.equal(conv.edge_index, wiring.edge_index[:, conv.edge_perm])
    set_weights(conv, {(0, 2): 0.5, (1, 2): -2.0, (0, 3): 0.1, (2, 3): 1.0})
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]], requires_grad=True)
    out = conv(x)
    assert out.tolist() == [[0.0], [0.0], [-4.0], [3.0]]
    assert conv.active_mask().tolist() == [False, True, False, True]
    g = torch.tensor([[0.0], [0.0], [1.0], [10.0]])
    (out * g).sum().backward()
    # d/dw_uv = x_u * g_v for EVERY candidate, selected or not
    assert conv.edge_weight.grad.tolist() == [1.0, 2.0, 10.0, 30.0]
    # d/dx_u = sum over selected (u, v) of w_uv g_v
    assert x.grad.view(-1).tolist() == [0.0, -2.0, 10.0, 0.0]


@pytest.mark.parametrize(
    "selection, unselected_grad", [("dnw_no_update", 0.0), ("fixed", 0.0), ("dnw", None)]
)
def test_gradient_rule_per_strategy(selection, unselected_grad):
    conv = WiringConv(hand_wiring(), ratio=2, selection=selection)
    set_weights(conv, {(0, 2): 0.5, (1, 2): -2.0, (0, 3): 0.1, (2, 3): 1.0})
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    (conv(x) * torch.tensor([[0.0], [0.0], [1.0], [10.0]])).sum().backward()
    grad = conv.edge_weight.grad
    assert grad[1].item() == 2.0 and grad[3].item() == 30.0  # selected edges
    if unselected_grad is None:
        assert grad[0].item() == 1.0 and grad[2].item() == 10.0
    else:
        assert grad[0].item() == 0.0 and grad[2].item() == 0.0


def test_random_selection_gets_no_gradient_outside_mask():
    conv = WiringConv(complete(6), ratio=5, selection="random", seed=4)
    x = torch.randn(6, 3)
    conv(x).square().sum().backward()
    mask = conv.active_mask()
    assert int(mask.sum()) == 5
    assert (conv.edge_weight.grad[~mask] == 0).all()
    assert (conv.edge_weight.grad[mask] != 0).any()


WIRINGS = {
    "block_dag": lambda: block_dag([3, 4, 5]),
    "random_dag": lambda: random_dag("er", 12, seed=1, p=0.4),
    "complete": lambda: complete(7),
}


@pytest.mark.parametrize("name", sorted(WIRINGS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("selection", ["dnw", "dnw_no_update"])
def test_matches_dense_reference(name, dtype, selection):
    torch.manual_seed(0)
    wiring = WIRINGS[name]()
    k = max(1, wiring.num_edges // 3)
    conv = WiringConv(wiring, ratio=k, selection=selection).to(dtype)
    x = torch.randn(wiring.num_nodes, 2, 3, dtype=dtype, requires_grad=True)
    g = torch.randn(wiring.num_nodes, 2, 3, dtype=dtype)
    out = conv(x)
    (out * g).sum().backward()

    x_ref = x.detach().clone().requires_grad_(True)
    ref, weight, mask = dense_reference(
        wiring,
        conv.edge_weight.detach(),
        conv.edge_index,
        x_ref,
        k,
        straight_through=selection == "dnw",
    )
    (ref * g).sum().backward()
    src, dst = conv.edge_index
    tol = {"atol": 1e-12, "rtol": 1e-10} if dtype == torch.float64 else {}
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol)
    torch.testing.assert_close(conv.edge_weight.grad, weight.grad[dst, src], **tol)
    assert torch.equal(conv.active_mask(), mask[dst, src].bool())
    unselected = ~conv.active_mask()
    if selection == "dnw":  # unselected edges get <x_u, g_v> by value
        expected = (x.detach()[src] * g[dst]).flatten(1).sum(1)
        torch.testing.assert_close(conv.edge_weight.grad[unselected], expected[unselected], **tol)
        assert (conv.edge_weight.grad[unselected].abs() > 0).all()
    else:
        assert (conv.edge_weight.grad[unselected] == 0).all()


@pytest.mark.parametrize("selection", ["dnw", "random", "complete", "td"])
def test_fused_scatter_dense_paths_agree(selection):
    torch.manual_seed(1)
    wiring = random_dag("ws", 16, seed=2, k=4, p=0.5)
    convs = {}
    for impl in ("sparse", "scatter", "dense"):
        torch.manual_seed(2)
        conv = WiringConv(wiring, ratio=0.3, selection=selection, impl=impl).double()
        conv.eval()  # td: deterministic top-k in eval
        convs[impl] = conv
    x = torch.randn(16, 5, dtype=torch.float64)
    g = torch.randn(16, 5, dtype=torch.float64)
    outs, grads, xgrads = {}, {}, {}
    for impl, conv in convs.items():
        xi = x.clone().requires_grad_(True)
        out = conv(xi)
        (out * g).sum().backward()
        outs[impl], grads[impl], xgrads[impl] = out, conv.edge_weight.grad, xi.grad
    for impl in ("scatter", "dense"):
        torch.testing.assert_close(outs[impl], outs["sparse"])
        torch.testing.assert_close(grads[impl], grads["sparse"])
        torch.testing.assert_close(xgrads[impl], xgrads["sparse"])


def test_gradcheck_float64():
    torch.manual_seed(0)
    wiring = random_dag("er", 8, seed=3, p=0.5)
    # fixed mask: the function is smooth in x
    conv = WiringConv(wiring, ratio=0.5, selection="fixed").double()
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: conv(x), (x,))
    # and the DNW layer's input gradient
    dnw = WiringConv(wiring, ratio=0.5).double()
    assert torch.autograd.gradcheck(lambda x: dnw(x), (x,))
    # edge weights through the functional form: with every edge selected the straight-through
    # gradient is the true derivative, so finite differences must agree with it
    from dnwgraph.nn.kernels.fused import wiring_matmul

    full = WiringConv(wiring, ratio=1.0, selection="fixed").double()
    plan = full.plan()
    w = full.edge_weight.detach().clone().requires_grad_(True)

    def fn(x, w):  # a plan carries the selected values, so rebuild it for each perturbed w
        fresh = dataclasses.replace(plan, values=w.detach()[plan.selected.ids])
        return wiring_matmul(x, w, fresh)

    assert torch.autograd.gradcheck(fn, (x, w))


def test_source_groups_sum_to_full_aggregation():
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 4, 2])
    levels = wiring.levels()
    conv = WiringConv(wiring, ratio=12, source_groups=levels).double()
    x = torch.randn(wiring.num_nodes, 2, 2, dtype=torch.float64, requires_grad=True)
    g = torch.randn(wiring.num_nodes, 2, 2, dtype=torch.float64)
    (conv(x) * g).sum().backward()
    full_w, full_x = conv.edge_weight.grad.clone(), x.grad.clone()
    conv.edge_weight.grad = None
    x.grad = None
    out = sum(conv(x[nodes], group=i) for i, nodes in enumerate(levels))
    (out * g).sum().backward()
    torch.testing.assert_close(out, conv(x))
    torch.testing.assert_close(conv.edge_weight.grad, full_w)
    torch.testing.assert_close(x.grad, full_x)


def test_selection_is_cached_until_weights_change():
    conv = WiringConv(complete(5), ratio=6)
    x = torch.randn(5, 2)
    conv(x)
    plan = conv.plan()
    conv(x)
    assert conv.plan() is plan  # unchanged weights: same selection and matrices
    opt = torch.optim.SGD(conv.parameters(), lr=0.1)
    conv(x).sum().backward()
    opt.step()
    assert conv.plan() is not plan
    with torch.no_grad():
        conv.edge_weight.mul_(-1)  # in-place change is seen too
    assert conv.plan().values.tolist() != plan.values.tolist()


def test_unused_edge_swaps_in():
    """The DNW property: an unselected edge that would lower the loss grows and swaps in."""
    torch.manual_seed(0)
    wiring = Wiring([(0, 2), (1, 2)], num_nodes=3)
    results = {}
    for selection in ("dnw", "dnw_no_update"):
        conv = WiringConv(wiring, ratio=1, selection=selection)
        with torch.no_grad():
            conv.edge_weight.copy_(torch.tensor([0.01, 0.5]))  # (0,2) useful but unselected
        opt = torch.optim.SGD(conv.parameters(), lr=0.05)
        for _ in range(50):
            x = torch.randn(3, 64)
            # node 0 is the better input; node 1 alone is still worth keeping (optimum 0.5)
            loss = (conv(x)[2] - 2 * x[0] - 0.5 * x[1]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        results[selection] = (conv.active_mask().tolist(), conv.edge_weight.detach().clone())
    assert results["dnw"][0] == [True, False]
    assert results["dnw"][1][0] > 1.0  # grew while unselected, then took over
    assert results["dnw_no_update"][0] == [False, True]
    assert results["dnw_no_update"][1][0].item() == pytest.approx(0.01)  # never updated


def test_float64_and_trailing_dims():
    conv = WiringConv(block_dag([2, 3]), ratio=4).double()
    out = conv(torch.randn(5, 2, 3, 4, dtype=torch.float64))
    assert out.shape == (5, 2, 3, 4) and out.dtype == torch.float64


def test_errors():
    wiring = block_dag([2, 3])
    with pytest.raises(
        ValueError, match=r"'impl' must be one of \['auto', 'dense', .*'scatter', 'sparse'.*\]"
    ):
        WiringConv(wiring, 2, impl="cuda")
    with pytest.raises(ValueError, match=r"unknown selection 'dwn'"):
        WiringConv(wiring, 2, selection="dwn")
    with pytest.raises(ValueError, match=r"'ratio' as an int .* in \[1, 6\] \(got 7\)"):
        WiringConv(wiring, 7)
    conv = WiringConv(wiring, 2, source_groups=wiring.levels())
    with pytest.raises(
        ValueError, match=r"'x' must have 5 rows \(one per node\) \(got shape \(4, 3\)\)"
    ):
        conv(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"'x' must have 2 rows \(one per node of group 0\)"):
        conv(torch.randn(5, 3), group=0)
    with pytest.raises(ValueError, match=r"'group' must be in \[0, 2\) \(got 2\)"):
        conv(torch.randn(3, 3), group=2)
    with pytest.raises(ValueError, match="must be disjoint"):
        WiringConv(wiring, 2, source_groups=[torch.tensor([0, 1]), torch.tensor([1])])
    with pytest.raises(ValueError, match=r"holds node 9, outside \[0, 5\)"):
        WiringConv(wiring, 2, source_groups=[torch.tensor([9])])


def test_state_dict_round_trip_keeps_wiring():
    torch.manual_seed(0)
    a = WiringConv(complete(6), ratio=8, selection="random", seed=3)
    b = WiringConv(complete(6), ratio=8, selection="random", seed=4)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.active_mask(), b.active_mask())
    x = torch.randn(6, 2)
    torch.testing.assert_close(a(x), b(x))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    wiring = block_dag([8, 16, 16, 8])
    conv = WiringConv(wiring, ratio=0.2)
    x = torch.randn(wiring.num_nodes, 4, 4)
    g = torch.randn_like(x)
    (conv(x) * g).sum().backward()
    gpu = WiringConv(wiring, ratio=0.2).cuda()
    gpu.load_state_dict(conv.state_dict())
    xg = x.cuda()
    out = gpu(xg)
    (out * g.cuda()).sum().backward()
    torch.testing.assert_close(out.cpu(), conv(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        gpu.edge_weight.grad.cpu(), conv.edge_weight.grad, rtol=1e-4, atol=1e-4
    )


def test_deepcopy_and_pickle_after_forward():
    import copy
    import pickle

    conv = WiringConv(block_dag([2, 3, 2]), ratio=5)
    x = torch.randn(7, 4)
    out = conv(x)
    conv(x).sum().backward()  # plans and gradient sets are cached now
    for clone in (copy.deepcopy(conv), pickle.loads(pickle.dumps(conv))):
        torch.testing.assert_close(clone(x), out)
        assert torch.equal(clone.active_mask(), conv.active_mask())
        assert clone.edge_weight is not conv.edge_weight


def test_inference_never_cuts_gradient_blocks():
    conv = WiringConv(block_dag([3, 4, 4]), ratio=10)
    with torch.no_grad():
        conv(torch.randn(11, 2))
    plan = conv.plan()
    assert plan.selected._blocks is None and plan.grad._blocks is None


# ------------------------------------------------------------------ initialisation
def test_init_selected_fan_in_bound():
    wiring = block_dag([16, 32, 32, 16])
    conv = WiringConv(wiring, ratio=0.1)
    targets = int((torch.bincount(conv.edge_index[1], minlength=wiring.num_nodes) > 0).sum())
    bound = 1.0 / (conv.k / targets) ** 0.5
    w = conv.edge_weight.detach().abs()
    assert float(w.max()) <= bound
    assert float(w.max()) > 0.95 * bound  # uniform over the whole range


def test_init_candidates_fan_in_is_the_reference_bound():
    wiring = block_dag([16, 32, 32, 16])
    conv = WiringConv(wiring, ratio=0.1, fan_in="candidates")
    d_max = int(torch.bincount(conv.edge_index[1], minlength=wiring.num_nodes).max())
    assert d_max == 80
    w = conv.edge_weight.detach().abs()
    assert float(w.max()) <= 1 / d_max**0.5 and float(w.max()) > 0.95 / d_max**0.5


def test_init_selected_fan_in_keeps_the_scale_of_the_features():
    # Var(out_v) = sum over the selected inputs of w_uv^2 for independent unit inputs; the
    # mean over nodes that receive is about 1 with the selected fan-in, about k/E with the
    # reference one.
    torch.manual_seed(0)
    wiring = complete(200, self_loops=True)
    x = torch.randn(200, 20_000)
    for fan_in, low, high in (("selected", 0.85, 1.05), ("candidates", 0.01, 0.05)):
        conv = WiringConv(wiring, ratio=0.02, fan_in=fan_in)
        out = conv(x)
        receives = torch.bincount(conv.edge_index[1, conv.active_mask()], minlength=200) > 0
        measured = float(out.detach()[receives].var(1).mean())
        mask = conv.active_mask()
        w2 = torch.zeros(200).index_add_(
            0, conv.edge_index[1, mask], conv.edge_weight.detach()[mask] ** 2
        )
        assert measured == pytest.approx(float(w2[receives].mean()), rel=0.03)
        assert low < measured < high, (fan_in, measured)


def test_init_bad_fan_in():
    with pytest.raises(ValueError, match=r"'fan_in' must be one of \['selected', 'candidates'\]"):
        WiringConv(hand_wiring(), ratio=2, fan_in="he")


# -- PyG calling convention and seeding from a saved wiring ------------------------------------


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_pyg_call_with_own_edge_index_any_order(impl):
    torch.manual_seed(0)
    wiring = hand_wiring()
    conv = WiringConv(wiring, ratio=3, impl=impl)
    x = torch.randn(4, 5)
    expected = conv(x)
    for ei in (wiring.edge_index, conv.edge_index, wiring.edge_index[:, [3, 1, 0, 2]]):
        torch.testing.assert_close(conv(x, ei), expected)
    # the call every PyG model makes
    from torch_geometric.nn import Sequential

    model = Sequential("x, edge_index", [(conv, "x, edge_index -> x"), torch.nn.ReLU()])
    torch.testing.assert_close(model(x, wiring.edge_index), expected.relu())


def test_pyg_call_explains_a_foreign_edge_index():
    conv = WiringConv(hand_wiring(), ratio=3)
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"expected its 4 candidate edges, got 3 edges"):
        conv(x, torch.tensor([[0, 0, 1], [2, 3, 2]]))
    with pytest.raises(ValueError, match=r"edge \(1, 3\) at position 3 is not a candidate"):
        conv(x, torch.tensor([[2, 0, 0, 1], [3, 2, 3, 3]]))
    with pytest.raises(ValueError, match="repeats an edge"):
        conv(x, torch.tensor([[2, 0, 0, 0], [3, 2, 3, 3]]))
    with pytest.raises(ValueError, match=r"node ids must lie in \[0, 4\)"):
        conv(x, torch.tensor([[2, 0, 0, 7], [3, 2, 3, 2]]))
    with pytest.raises(ValueError, match=r"'edge_index' must have shape \[2, E\]"):
        conv(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="either 'edge_index' or 'group'"):
        conv(x, hand_wiring().edge_index, group=0)


def test_from_wiring_seeds_the_learned_weights():
    torch.manual_seed(0)
    wiring = hand_wiring()
    conv = WiringConv(wiring, ratio=3)
    pairs = map(tuple, conv.edge_index.t().tolist())
    by_edge = dict(zip(pairs, conv.edge_weight.tolist(), strict=True))
    weights = [by_edge[e] for e in map(tuple, wiring.edge_index.t().tolist())]
    seeded = Wiring(wiring.edge_index, 4, edge_weight=weights)
    clone = WiringConv.from_wiring(seeded, ratio=3)
    assert torch.equal(clone.edge_weight, conv.edge_weight)
    assert torch.equal(clone.active_mask(), conv.active_mask())
    x = torch.randn(4, 3)
    torch.testing.assert_close(clone(x), conv(x))
    assert WiringConv.from_wiring(seeded).k == 4  # every edge by default
    with pytest.raises(ValueError, match="must carry edge weights"):
        WiringConv.from_wiring(wiring)


def test_a_list_is_not_a_wiring_nor_an_input():
    from dnwgraph.errors import DNWGraphTypeError

    with pytest.raises(DNWGraphTypeError, match=r"'wiring' must be a Wiring .*\(got list\)"):
        WiringConv([(0, 1), (1, 2)], ratio=1)
    conv = WiringConv(Wiring([(0, 1), (1, 2)]), ratio=1)
    with pytest.raises(TypeError, match=r"'x' must be a Tensor \[N, \*\] \(got list\)"):
        conv([1.0, 2.0, 3.0])


def test_nan_edge_weight_never_silently_shrinks_the_active_set():
    from dnwgraph.errors import NonFiniteError

    conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=3)
    with torch.no_grad():
        conv.edge_weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="4 of 4 edge weights are NaN"):
        conv.active_mask()
    with pytest.raises(NonFiniteError):
        conv(torch.randn(4, 2))


def test_random_selection_seed_must_be_an_int():
    with pytest.raises(ValueError, match=r"'seed' must be an int .*\(got 'x'\)"):
        WiringConv(Wiring([(0, 1), (1, 2)]), ratio=1, selection="random", seed="x")


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_first_row_and_add_to_equal_slicing_and_adding(impl):
    """conv(z, group=g, first_row=r, add_to=y) == y + conv(z, group=g)[r:], values and gradients."""
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 5])
    levels = wiring.levels()
    conv = WiringConv(wiring, ratio=20, source_groups=levels, impl=impl).double()
    z = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 2, 3, dtype=torch.float64)
    out = conv(z, group=1, first_row=7, add_to=y)
    (out * g).sum().backward()
    grads = (z.grad.clone(), y.grad.clone(), conv.edge_weight.grad.clone())
    z.grad = y.grad = conv.edge_weight.grad = None
    ref = y + conv(z, group=1)[7:]
    (ref * g).sum().backward()
    torch.testing.assert_close(out, ref)
    for a, b in zip(grads, (z.grad, y.grad, conv.edge_weight.grad), strict=True):
        torch.testing.assert_close(a, b)
    assert conv(z, group=1, first_row=7).shape == (5, 2, 3)


def test_first_row_errors():
    wiring = block_dag([3, 4, 5])
    conv = WiringConv(wiring, ratio=20, source_groups=wiring.levels())
    z = torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"'first_row'=4 drops node 3, which a candidate edge"):
        conv(z, group=0, first_row=4)
    with pytest.raises(ValueError, match=r"'first_row' must be an int in \[0, 12\]"):
        conv(z, group=0, first_row=13)
    with pytest.raises(ValueError, match=r"'add_to' must have shape \(9, 2\)"):
        conv(z, group=0, first_row=3, add_to=torch.zeros(12, 2))


@pytest.mark.parametrize("grad_every", [1, 2])
@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_row_ranges_split_the_output_and_the_edge_gradient(impl, grad_every):
    """Rows [3, 9) and [9, 12) as two ranges == one call over [3, 12): values, and the edge
    gradients of the two calls sum to the full call's (each range its own edges)."""
    torch.manual_seed(0)
    wiring = block_dag([3, 4, 5])  # level 0 (nodes 0-2) reaches nodes 3-11
    conv = WiringConv(
        wiring, ratio=20, source_groups=wiring.levels(), impl=impl, grad_every=grad_every
    ).double()
    z = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(9, 2, 3, dtype=torch.float64)
    y = torch.randn(3, 2, 3, dtype=torch.float64)
    low = conv(z, group=0, first_row=3, last_row=9)
    high = conv(z, group=0, first_row=9, last_row=12, add_to=y)
    assert low.shape == (6, 2, 3) and high.shape == (3, 2, 3)
    (low * g[:6]).sum().backward()
    (high * g[6:]).sum().backward()
    grads = (z.grad.clone(), conv.edge_weight.grad.clone())
    z.grad = conv.edge_weight.grad = None
    full = conv(z, group=0, first_row=3)
    (full * g).sum().backward()
    torch.testing.assert_close(torch.cat([low, high - y]), full)
    torch.testing.assert_close(grads[0], z.grad)
    torch.testing.assert_close(grads[1], conv.edge_weight.grad)
    # each range gives a gradient only to the edges reaching it
    conv.edge_weight.grad = None
    (conv(z, group=0, first_row=9, last_row=12) * g[6:]).sum().backward()
    src, dst = conv.edge_index
    reaching = (src < 3) & (dst >= 9)
    assert not conv.edge_weight.grad[~reaching].any() and conv.edge_weight.grad[reaching].any()
    out = y.clone()
    with torch.no_grad():
        conv.accumulate_(out, z, group=0, first_row=9, last_row=12)
    torch.testing.assert_close(out, high.detach())


def test_last_row_errors():
    wiring = block_dag([3, 4, 5])
    conv = WiringConv(wiring, ratio=20, source_groups=wiring.levels())
    z = torch.randn(3, 2)
    for bad in (3, 13, 2.5, True):
        with pytest.raises(ValueError, match=r"'last_row' must be an int in \(3, 12\]"):
            conv(z, group=0, first_row=3, last_row=bad)
    with pytest.raises(ValueError, match=r"'add_to' must have shape \(2, 2\)"):
        conv(z, group=0, first_row=3, last_row=5, add_to=torch.zeros(9, 2))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_accumulate_in_place_equals_forward(impl, dtype, threads):
    """On one CPU thread the sparse path adds with torch's COO kernel into the buffer, on
    more with the bag sum and an addition: both equal the forward pass plus the buffer."""
    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _check_accumulate(impl, dtype)
    finally:
        torch.set_num_threads(before)


def _check_accumulate(impl, dtype):
    wiring = block_dag([3, 4, 5])
    conv = WiringConv(wiring, ratio=20, source_groups=wiring.levels(), impl=impl).to(dtype)
    z = torch.randn(4, 2, 3, dtype=dtype)
    y = torch.randn(5, 2, 3, dtype=dtype)
    ref = y + conv(z, group=1, first_row=7).detach()
    out = y.clone()
    assert conv.accumulate_(out, z, group=1, first_row=7) is out
    tol = {} if dtype == torch.float64 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(out, ref, **tol)


def test_groups_without_edges_and_nodes_outside_groups():
    """Plans of every group, gathered in one pass, equal a per-group selection by hand."""
    torch.manual_seed(0)
    wiring = Wiring([(0, 3), (1, 3), (2, 4), (3, 4), (0, 4)], num_nodes=5)
    groups = [torch.tensor([4]), torch.tensor([0, 2]), torch.tensor([3])]  # group 0: no edge
    conv = WiringConv(wiring, ratio=3, source_groups=groups)
    mask = conv.active_mask()
    src, dst = conv.edge_index
    for g, nodes in enumerate(groups):
        plan = conv.plan(g)
        ids = [e for e in range(5) if bool(mask[e]) and int(src[e]) in nodes.tolist()]
        assert plan.selected.ids.tolist() == ids
        assert plan.selected.rows.tolist() == dst[ids].tolist()
        local = {int(v): i for i, v in enumerate(nodes)}
        assert plan.selected.cols.tolist() == [local[int(src[e])] for e in ids]


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_features_without_columns(impl):
    """An empty batch ([N, 0, *S]): empty outputs and gradients, forward, backward and
    in-place accumulation alike (the CPU bag sum has no kernel for rows without columns)."""
    conv = WiringConv(Wiring([(i, j) for j in range(6) for i in range(j)]), ratio=1.0, impl=impl)
    x = torch.randn(6, 0, 4, requires_grad=True)
    out = conv(x)
    assert out.shape == (6, 0, 4)
    out.sum().backward()
    assert x.grad.shape == (6, 0, 4)
    acc = torch.zeros(6, 0, 4)
    assert conv.accumulate_(acc, x.detach()).shape == (6, 0, 4)


def test_accumulate_into_a_non_contiguous_buffer():
    torch.manual_seed(0)
    conv = WiringConv(block_dag([2, 2]), ratio=3)
    x = torch.randn(4, 2, 3)
    out = torch.zeros(4, 3, 2).transpose(1, 2)  # [4, 2, 3], not contiguous
    with torch.no_grad():
        conv.accumulate_(out, x)
        torch.testing.assert_close(out, conv(x))
