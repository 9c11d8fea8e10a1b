"""sparsify / unsparsify: exact densities, straight-through gradients, state dicts, wiring."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn

import dnwgraph
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.models.sparsify import (
    density,
    sparse_wiring,
    sparsifiable_layers,
    sparsified_layers,
    sparsify,
    unsparsify,
)


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 7), nn.ReLU(), nn.Linear(7, 4))


def _nonzero(w: torch.Tensor) -> int:
    return int((w != 0).sum())


def test_public_names():
    assert dnwgraph.sparsify is sparsify and dnwgraph.unsparsify is unsparsify


@pytest.mark.parametrize("ratio", [0.1, 0.37, 1.0])
def test_layer_scope_exact_density(ratio):
    model = sparsify(_cnn(), ratio)
    for _, layer in sparsified_layers(model):
        n = layer.weight.numel()
        assert _nonzero(layer.weight) == max(1, round(ratio * n))
        # the kept weights are exactly the largest |w| of the trainable tensor
        raw = layer.parametrizations.weight.original.detach().view(layer.weight.shape)
        kept = raw.abs()[layer.weight != 0]
        dropped = raw.abs()[layer.weight == 0]
        if dropped.numel():
            assert kept.min() >= dropped.max()
        torch.testing.assert_close(layer.weight[layer.weight != 0], raw[layer.weight != 0])


def test_conv1d_density():
    model = sparsify(nn.Sequential(nn.Conv1d(4, 6, 5), nn.ReLU(), nn.Conv1d(6, 2, 3)), 0.1)
    assert [_nonzero(model[i].weight) for i in (0, 2)] == [12, 4]
    assert model(torch.randn(2, 4, 9)).shape == (2, 2, 3)


def test_int_ratio_keeps_that_many_per_layer():
    model = sparsify(_mlp(), 5)
    assert [_nonzero(model[i].weight) for i in (0, 2)] == [5, 5]


def test_global_scope_exact_total_and_threshold():
    model = sparsify(_cnn(), 0.2, scope="model")
    layers = [layer for _, layer in sparsified_layers(model)]
    total = sum(layer.weight.numel() for layer in layers)
    assert sum(_nonzero(layer.weight) for layer in layers) == round(0.2 * total)
    raw = torch.cat([layer.parametrizations.weight.original.detach().flatten() for layer in layers])
    eff = torch.cat([layer.weight.detach().flatten() for layer in layers])
    assert raw.abs()[eff != 0].min() >= raw.abs()[eff == 0].max()
    # densities differ per layer (the budget is shared), unlike scope="per_layer"
    assert len({round(d, 3) for d in density(model).values()}) > 1


def test_global_scope_mask_follows_weight_updates():
    model = sparsify(_mlp(), 4, scope="model")
    first, second = model[0], model[2]
    with torch.no_grad():
        second.parametrizations.weight.original.fill_(0.0)
        first.parametrizations.weight.original.fill_(1.0)
    assert _nonzero(first.weight) == 4 and _nonzero(second.weight) == 0


def test_bn_and_bias_untouched():
    model = _cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sparsify(model, 0.1)
    assert {n for n, _ in sparsified_layers(model)} == {"0", "3", "8"}
    for name, layer in model.named_modules():
        if isinstance(layer, nn.BatchNorm2d):
            assert not hasattr(layer, "parametrizations")
            torch.testing.assert_close(layer.weight, before[f"{name}.weight"])
    torch.testing.assert_close(model[0].bias, before["0.bias"])
    assert _nonzero(model[0].bias) == 8


def test_straight_through_gradient_reaches_pruned_weights():
    torch.manual_seed(1)
    dense, sparse = _mlp(), sparsify(_mlp(), 0.2)
    x = torch.randn(5, 6)
    # the gradient of every raw weight equals the gradient w.r.t. the effective (masked) weight
    eff = [sparse[i].weight.detach().clone().requires_grad_() for i in (0, 2)]
    out = torch.nn.functional.linear(
        torch.relu(torch.nn.functional.linear(x, eff[0], sparse[0].bias)), eff[1], sparse[2].bias
    )
    out.square().sum().backward()
    sparse(x).square().sum().backward()
    for i, e in zip((0, 2), eff, strict=True):
        raw = sparse[i].parametrizations.weight.original
        torch.testing.assert_close(raw.grad, e.grad.flatten())
        pruned = sparse[i].weight.flatten() == 0
        assert (raw.grad[pruned] != 0).any()  # pruned weights get a gradient
    del dense


def test_pruned_weight_swaps_in_after_an_update():
    model = sparsify(nn.Sequential(nn.Linear(2, 1, bias=False)), 1)
    with torch.no_grad():
        model[0].parametrizations.weight.original.copy_(torch.tensor([1.0, 0.5]))
    assert model[0].weight.tolist() == [[1.0, 0.0]]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    # loss = -2 * w_2 * x_2 pushes the pruned weight up past the kept one
    loss = -(model(torch.tensor([[0.0, 2.0]])).sum())
    loss.backward()
    opt.step()
    assert model[0].weight.tolist() == [[0.0, 2.5]]


def test_include_exclude_dense_first():
    names = [n for n, _ in sparsifiable_layers(_cnn())]
    assert names == ["0", "3", "8"]
    assert [n for n, _ in sparsifiable_layers(_cnn(), dense_first=True)] == ["3", "8"]
    assert [n for n, _ in sparsifiable_layers(_cnn(), exclude=nn.Linear)] == ["0", "3"]
    assert [n for n, _ in sparsifiable_layers(_cnn(), include=["8", "3"])] == ["3", "8"]
    model = sparsify(_cnn(), 0.1, dense_first=True)
    assert not hasattr(model[0], "parametrizations") and _nonzero(model[0].weight) == 8 * 27
    assert set(density(model)) == {"3", "8"}


def test_optimizer_before_and_after_sparsify_share_parameters():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    params_before = list(model.parameters())
    sparsify(model, 0.5)
    assert {id(p) for p in model.parameters()} == {id(p) for p in params_before}
    model(torch.randn(3, 6)).sum().backward()
    opt.step()  # momentum buffers are keyed by the same Parameter objects
    assert all(opt.state[p] for p in params_before)


def test_state_dict_round_trip_into_fresh_sparsified_model():
    a = sparsify(_cnn(), 0.3)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(torch.randn_like(p))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    assert any(k.endswith("parametrizations.weight.original") for k in a.state_dict())
    b = sparsify(_cnn(seed=123), 0.3)  # different initial weights
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    a.eval(), b.eval()
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(a(x), b(x))
    assert all(
        torch.equal(la.weight, lb.weight)
        for (_, la), (_, lb) in zip(sparsified_layers(a), sparsified_layers(b), strict=True)
    )


def test_unsparsify_keeps_outputs_and_bakes_masks():
    model = sparsify(_cnn(), 0.25).eval()
    x = torch.randn(2, 3, 5, 5)
    before = model(x)
    counts = {n: _nonzero(layer.weight) for n, layer in sparsified_layers(model)}
    unsparsify(model)
    assert sparsified_layers(model) == []
    torch.testing.assert_close(model(x), before)
    for name, layer in model.named_modules():
        if name in counts:
            assert type(layer.weight) is nn.Parameter and _nonzero(layer.weight) == counts[name]
    assert "0.weight" in model.state_dict()


@pytest.mark.parametrize("groups", [1, 2])
def test_a_transposed_convolution_counts_and_wires_by_hand(groups):
    """Through ``include=``: its weight is [C_in, C_out / groups, *K] (the other way round), so
    the output units are its dim 1: per-unit budgets, edges and MACs follow them."""
    from dnwgraph import count_macs, count_params
    from dnwgraph.models.sparsify import unit_edges

    torch.manual_seed(0)
    layer = nn.ConvTranspose1d(2, 4, 3, groups=groups, bias=False)  # 2 -> 4 units
    edge_index, num_nodes = unit_edges(layer)
    assert num_nodes == 2 + 4
    w = torch.arange(layer.weight.numel()).view(layer.weight.shape)
    for e, (src, dst) in enumerate(edge_index.t().tolist()):
        c_in, j, _ = (w == e).nonzero()[0].tolist()
        assert (src, dst) == (c_in, 2 + c_in // (2 // groups) * (4 // groups) + j)
    model = sparsify(nn.Sequential(layer), 1, include=nn.ConvTranspose1d, scope="per_node")
    kept = edge_index[1][(layer.weight != 0).reshape(-1)]
    assert torch.bincount(kept, minlength=6).tolist() == [0, 0, 1, 1, 1, 1]  # one per output
    assert count_params(model) == 4
    # each kept weight multiplies every input value of its input channel: 5 per channel
    assert count_macs(model, (1, 2, 5)) == 4 * 5


def test_errors():
    with pytest.raises(
        ValueError, match=r"'scope' must be one of \['per_layer', 'per_node', 'model'\]"
    ):
        sparsify(_mlp(), 0.1, scope="per_unit")
    with pytest.raises(ValueError, match="fraction of edges to keep"):
        sparsify(_mlp(), 1.5)
    with pytest.raises(ValueError, match="no layer to sparsify"):
        sparsify(_mlp(), 0.1, exclude=nn.Linear)
    with pytest.raises(TypeError, match="name patterns"):
        sparsify(_mlp(), 0.1, include=[3])
    model = sparsify(_mlp(), 0.1)
    with pytest.raises(ValueError, match="already sparsified"):
        sparsify(model, 0.1)
    with pytest.raises(ValueError, match="call sparsify"):
        unsparsify(_mlp())
    # an int budget larger than a layer is rejected before any layer changes
    fresh = _mlp()
    with pytest.raises(ValueError, match=r"\[1, 28\]"):
        sparsify(fresh, 30)
    assert sparsified_layers(fresh) == []


def test_sparse_wiring_of_an_mlp():
    model = sparsify(_mlp(), 0.25)
    wiring = sparse_wiring(model)
    assert wiring.num_nodes == 6 + 7 + 4
    assert wiring.num_edges == round(0.25 * 42) + round(0.25 * 28)
    assert wiring.input_nodes.tolist() == list(range(6))
    assert wiring.output_nodes.tolist() == list(range(13, 17))
    src, dst = wiring.edge_index
    w0 = model[0].weight
    first = dst < 13
    assert all(
        w0[d - 6, s] != 0 for s, d in zip(src[first].tolist(), dst[first].tolist(), strict=True)
    )
    full = sparse_wiring(model, all_candidates=True)
    assert full.num_edges == 42 + 28
    nx = pytest.importorskip("networkx")
    graph = dnwgraph.to_networkx(wiring)
    assert isinstance(graph, nx.DiGraph) and graph.number_of_edges() == wiring.num_edges
    with pytest.raises(ValueError, match="must chain"):
        sparse_wiring(nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2)))
    with pytest.raises(ValueError, match="no nn.Linear"):
        sparse_wiring(nn.Conv2d(1, 1, 1))


def test_sparsify_mobilenet_baseline_pointwise_density():
    from dnwgraph.models.mobilenet import MobileNetV1

    model = sparsify(MobileNetV1(0.25), 0.1, include=["features.*"], dense_first=True)
    dens = density(model)
    assert "classifier" not in dens and "features.0" not in dens
    for name, d in dens.items():
        layer = dict(model.named_modules())[name]
        assert d == max(1, round(0.1 * layer.weight.numel())) / layer.weight.numel()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert math.isfinite(float(model.classifier.weight.grad.sum()))


def test_count_params_and_macs_count_kept_weights():
    from dnwgraph import count_macs, count_params

    model = sparsify(_cnn(), 0.25)
    kept = sum(_nonzero(layer.weight) for _, layer in sparsified_layers(model))
    bn = 2 * 8 + 2 * 8
    assert count_params(model) == kept + bn + 8 + 5  # conv bias 8, linear bias 5
    x_shape = (2, 3, 6, 6)
    conv0, conv3, lin = model[0], model[3], model[8]
    expect = 36 * (_nonzero(conv0.weight) + 8) + 36 * _nonzero(conv3.weight)
    expect += 2 * 36 * 8  # the two BatchNorms, one MAC per element
    expect += _nonzero(lin.weight) + 5
    assert count_macs(model, x_shape) == expect
    unsparsify(model)
    assert count_params(model) == sum(p.numel() for p in model.parameters())


def test_deepcopy_keeps_its_own_global_budget():
    import copy

    model = sparsify(_mlp(), 5, scope="model")
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone[0].parametrizations.weight.original.fill_(1.0)
    # the clone re-selects on its own weights; the original is unaffected
    assert _nonzero(clone[0].weight) == 5 and _nonzero(clone[2].weight) == 0
    assert sum(_nonzero(model[i].weight) for i in (0, 2)) == 5
    assert not torch.equal(model[0].weight, clone[0].weight)


@pytest.mark.parametrize("fn", [sparsify, unsparsify])
def test_a_model_name_is_not_a_model(fn) -> None:
    with pytest.raises(TypeError, match=r"'module' must be an nn.Module \(got str 'model'\)"):
        fn("model") if fn is unsparsify else fn("model", 0.1)


@pytest.mark.parametrize("old", ["layer", "global"])
def test_the_0_2_scope_names_are_refused(old):
    """``scope`` names say which unit shares one budget: ``per_layer``, ``per_node`` or the
    ``model`` (the 0.2 names ``layer`` / ``global`` clashed with WiringConv's ``global``, one
    layer, and are gone: no alias)."""
    with pytest.raises(
        DNWGraphError,
        match=rf"'scope' must be one of \['per_layer', 'per_node', 'model'\] \(got '{old}'\)",
    ):
        sparsify(_mlp(), 4, scope=old)


def test_a_selections_global_scope_says_which_scope_of_sparsify_it_is():
    """sparsify's ``scope`` took the name of the selections' own option, so a selection's
    ``scope`` could not be passed: one name, sparsify's vocabulary, and a one-line pointer for
    the selections' word."""
    with pytest.raises(
        DNWGraphError,
        match=r"\(got 'global'\); a selection's 'global' budget over one layer is "
        r"scope='per_layer'$",
    ):
        sparsify(_mlp(), 0.5, scope="global")


@pytest.mark.parametrize("selection", ["dnw", "random", "rigl", "td"])
def test_per_node_scope_gives_every_output_unit_its_budget(selection):
    """``scope="per_node"`` is the selections' per-node budget: each output unit (a row of the
    weight) keeps its share of its fan-in, as a WiringConv node does."""
    model = sparsify(_mlp(), 0.5, selection, scope="per_node").eval()  # td drops in training
    model(torch.randn(3, 6))
    rows = [(model[0].weight != 0).sum(1).tolist(), (model[2].weight != 0).sum(1).tolist()]
    assert rows == [[3] * 7, [4] * 4]  # round(0.5 * 6), round(0.5 * 7) (half to even)
    assert "scope='per_node'" in repr(model[0].parametrizations.weight[0])
    model = sparsify(_cnn(), 2, selection, scope="per_node").eval()
    model(torch.randn(2, 3, 5, 5))
    for _, layer in sparsified_layers(model):
        assert (layer.weight != 0).flatten(1).sum(1).tolist() == [2] * layer.weight.size(0)
    with pytest.raises(DNWGraphError, match=r"^layer '0': 'ratio' as an int .* \[1, 6\] \(got 7\)"):
        sparsify(_mlp(), 7, selection, scope="per_node")  # more than a unit of layer '0' has


# ------------------------------------------------------- the mask cache: keyed on values


@pytest.fixture
def selections(monkeypatch):
    """Counts the top-k selections sparsify makes (a spy on the dnw selection's forward)."""
    from dnwgraph.select.strategies import DNW

    calls = []
    real = DNW.forward

    def spy(self, edge_weight):
        calls.append(edge_weight.numel())
        return real(self, edge_weight)

    monkeypatch.setattr(DNW, "forward", spy)
    return calls


def _expected(raw: torch.Tensor, k: int) -> torch.Tensor:
    """``raw`` with all but its k largest |values| zeroed, computed here."""
    keep = torch.zeros(raw.numel(), dtype=torch.bool)
    keep[raw.detach().abs().flatten().argsort(descending=True, stable=True)[:k]] = True
    return raw.detach() * keep.view_as(raw)


@pytest.mark.parametrize("change", ["mul_", "copy_", "data.copy_", "load_state_dict"])
def test_a_changed_weight_selects_again_an_unchanged_one_does_not(change, selections):
    model = sparsify(_mlp(), 5)
    layer = model[0]
    w = layer.parametrizations.weight.original
    x = torch.randn(3, 6)
    model(x)
    model(x)
    _ = layer.weight
    assert len(selections) == 2  # one per layer, reused since
    other = torch.randn_like(w)
    with torch.no_grad():
        if change == "mul_":
            w.mul_(-2)
        elif change == "copy_":
            w.copy_(other)
        elif change == "data.copy_":  # bypasses autograd's version counter
            w.data.copy_(other)
        else:
            state = model.state_dict()
            state["0.parametrizations.weight.original"] = other
            model.load_state_dict(state)
    torch.testing.assert_close(layer.weight, _expected(w, 5).view(7, 6), rtol=0, atol=0)
    assert len(selections) == 3  # that layer only
    model(x)
    assert len(selections) == 3


def test_the_model_budget_sees_any_layer_change_and_compares_once_per_pass(monkeypatch):
    import dnwgraph.nn.kernels.cache as plans

    model = sparsify(_cnn(), 0.2, scope="model")
    layers = [layer for _, layer in sparsified_layers(model)]
    raws = [layer.parametrizations.weight.original for layer in layers]
    x = torch.randn(2, 3, 6, 6)
    model(x)
    compared = []
    real = plans._same_values
    monkeypatch.setattr(plans, "_same_values", lambda a, b: compared.append(1) or real(a, b))
    model(x)
    # one comparison of every weight for the pass (not one per layer per layer)
    assert len(compared) == len(layers) == 3
    compared.clear()
    _ = layers[0].weight  # outside a forward pass: compared again, in full
    assert len(compared) == 3
    with torch.no_grad():
        raws[-1].data.copy_(10 * torch.randn_like(raws[-1]))  # the last layer only
    # the first layer's mask (read first) already sees the change of the last one
    total = sum(r.numel() for r in raws)
    flat = _expected(torch.cat([r.flatten() for r in raws]), round(0.2 * total))
    got = torch.cat([layer.weight.detach().flatten() for layer in layers])
    torch.testing.assert_close(got, flat, rtol=0, atol=0)


def test_unsparsify_a_model_budget_bakes_every_mask_and_removes_its_hooks():
    model = sparsify(_mlp(), 4, scope="model")
    assert len(model._forward_pre_hooks) == len(model._forward_hooks) == 1
    clone = copy.deepcopy(model)
    x = torch.randn(2, 6)
    assert clone(x).shape == (2, 4)  # (before: a copy shares parametrize's class with model)
    effective = [model[i].weight.detach().clone() for i in (0, 2)]
    params = [model[i].parametrizations.weight.original for i in (0, 2)]
    unsparsify(model)  # each layer's mask needs the other layer's weights: all read first
    for i, weight, param in zip((0, 2), effective, params, strict=True):
        assert model[i].weight is param and torch.equal(model[i].weight, weight)
    assert sum(_nonzero(model[i].weight) for i in (0, 2)) == 4
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert len(clone._forward_pre_hooks) == 1  # the copy keeps its own
    assert model(x).shape == (2, 4)


def test_a_forward_that_fails_closes_its_hold():
    model = sparsify(_mlp(), 4, scope="model")
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 5))  # wrong width
    budget = model[0].parametrizations.weight[0]._shared
    assert budget._open == [] and budget.key._holds == 0
    with torch.no_grad():
        model[2].parametrizations.weight.original.fill_(5.0)
    assert _nonzero(model[2].weight) == 4  # not a stale mask


# ------------------------------------------- every selection, through the Selection protocol

#: The registered selections of the package (tests register their own under '_...').
NAMES = ["dnw", "dnw_no_update", "random", "complete", "fixed", "td", "reg_td"]
NAMES += ["dnw_periodic", "rigl", "set", "gmp", "snip", "edge_popup"]
#: Options that make each method change its mask within the few steps of a test.
FAST = {
    "dnw_periodic": {"frequency": 2},
    "rigl": {"frequency": 2, "drop_fraction": 0.5},
    "set": {"frequency": 2, "drop_fraction": 0.5, "seed": 3},
    "gmp": {"begin_step": 1, "end_step": 4, "frequency": 1},
}


def test_every_package_selection_is_tested():
    assert sorted(n for n in dnwgraph.list_selections() if not n.startswith("_")) == sorted(NAMES)


def test_unit_edges_of_grouped_and_kernel_weights():
    from dnwgraph.models.sparsify import unit_edges

    edge_index, n = unit_edges(nn.Conv2d(4, 2, 1, groups=2))
    assert edge_index.tolist() == [[0, 1, 2, 3], [4, 4, 5, 5]] and n == 6
    edge_index, n = unit_edges(nn.Conv1d(2, 2, 2))  # one edge per kernel tap
    assert edge_index.tolist() == [[0, 0, 1, 1, 0, 0, 1, 1], [2, 2, 2, 2, 3, 3, 3, 3]]


def _twins(name: str, ratio: int = 4):
    """A sparsified Linear(4, 3) and a WiringConv over the same 12 unit edges, the same
    weights and the same selection state."""
    from dnwgraph.models.sparsify import unit_edges

    torch.manual_seed(0)
    lin = sparsify(nn.Sequential(nn.Linear(4, 3, bias=False)), ratio, name, **FAST.get(name, {}))
    edge_index, n = unit_edges(lin[0])
    conv = dnwgraph.WiringConv(dnwgraph.Wiring(edge_index, n), ratio, name, **FAST.get(name, {}))
    assert conv.edge_perm.tolist() == list(range(12))  # the same edge order
    part = lin[0].parametrizations.weight[0]
    with torch.no_grad():
        conv.edge_weight.copy_(part.edge_weight)
    conv.selection.load_state_dict(part.selection.state_dict())
    return lin, conv, part


@pytest.mark.parametrize("name", NAMES)
def test_the_mask_and_weights_match_a_wiring_conv_over_the_same_edges(name):
    """Two paths: the selection hosted by sparsify on a Linear and by WiringConv on the
    Linear's wiring train to the same masks and weights in the plain loop."""
    lin, conv, part = _twins(name)
    opts = [torch.optim.SGD(m.parameters(), lr=0.2, momentum=0.9) for m in (lin, conv)]
    g = torch.Generator().manual_seed(1)
    changed = False
    first = part.mask(part.edge_weight).clone()
    for step in range(6):
        x, y = torch.randn(5, 4, generator=g), torch.randn(5, 3, generator=g)
        if name in ("td", "reg_td"):  # random in training: compare in evaluation
            lin.eval(), conv.eval()
        nodes = torch.cat([x.T, torch.zeros(3, 5)])
        outs = [lin(x), conv(nodes)[4:].T]
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
        for out, opt in zip(outs, opts, strict=True):
            opt.zero_grad()
            (out - y).square().sum().backward()
            opt.step()
        torch.testing.assert_close(part.edge_weight, conv.edge_weight, rtol=1e-5, atol=1e-6)
        mask = part.mask(part.edge_weight)
        assert torch.equal(mask, conv.active_mask()), step
        changed |= not torch.equal(mask, first)
    if name in ("dnw", "dnw_periodic", "rigl", "set", "gmp", "snip", "edge_popup"):
        assert changed  # the method did choose again within the test


def test_rigl_update_matches_its_rule_computed_here():
    """Step 0: top-4 of |w|; the update at step 2 drops round(0.5 * 4) = 2 active weights
    with the smallest |w| and grows the 2 others with the largest |g| of step 1, at zero."""
    torch.manual_seed(0)
    lin = sparsify(nn.Sequential(nn.Linear(4, 3, bias=False)), 4, "rigl", **FAST["rigl"])
    w = lin[0].parametrizations.weight.original
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    x, y = torch.randn(5, 4), torch.randn(5, 3)
    mask0 = torch.zeros(12, dtype=torch.bool)
    mask0[w.detach().abs().argsort(descending=True)[:4]] = True
    assert torch.equal(lin[0].weight.detach().flatten() != 0, mask0)
    for _ in range(2):  # steps 0 and 1; the gradient of step 1 feeds the update of step 2
        dense = (w.detach() * lin[0].parametrizations.weight[0].mask(w)).view(3, 4)
        dense.requires_grad_(True)
        (x @ dense.T - y).square().sum().backward()  # the gradient of every weight, by hand
        grad = dense.grad.flatten()
        opt.zero_grad()
        (lin(x) - y).square().sum().backward()
        torch.testing.assert_close(w.grad, grad * mask0)  # the optimizer: active weights only
        opt.step()
    before = w.detach().clone()
    active = torch.where(mask0, before.abs(), -math.inf)
    keep = torch.zeros(12, dtype=torch.bool)
    keep[active.argsort(descending=True)[:2]] = True
    grown = torch.zeros(12, dtype=torch.bool)
    grown[torch.where(keep, -math.inf, grad.abs()).argsort(descending=True)[:2]] = True
    effective = lin[0].weight.detach().flatten()  # selects: the update of step 2
    mask = lin[0].parametrizations.weight[0].mask(w)
    assert torch.equal(mask, keep | grown) and int(mask.sum()) == 4
    assert (w.detach()[grown & ~mask0] == 0).all() and (effective[grown & ~mask0] == 0).all()
    torch.testing.assert_close(effective[keep], before[keep])


def test_edge_popup_trains_scores_only_with_the_straight_through_rule():
    torch.manual_seed(0)
    lin = sparsify(nn.Sequential(nn.Linear(4, 3, bias=False)), 5, "edge_popup")
    part = lin[0].parametrizations.weight[0]
    w, score = part.edge_weight, part.selection.score
    assert not w.requires_grad and [n for n, p in lin.named_parameters() if p.requires_grad] == [
        "0.parametrizations.weight.0.selection.score"
    ]
    w0 = w.detach().clone()
    x = torch.randn(2, 4)
    lin(x).sum().backward()
    # by hand: dL/dW~[o, c] = sum over the batch of x[:, c]; dL/ds = sign(s) w dL/dW~
    g = x.sum(0).repeat(3)
    torch.testing.assert_close(score.grad, torch.sign(score.detach()) * w0 * g)
    keep = torch.zeros(12, dtype=torch.bool)
    keep[score.detach().abs().argsort(descending=True)[:5]] = True
    assert torch.equal(lin[0].weight.detach().flatten() != 0, keep)
    torch.optim.SGD(lin.parameters(), lr=1.0).step()
    _ = lin(x)
    assert torch.equal(w, w0)  # never trained


@pytest.mark.parametrize("name", ["dnw_periodic", "rigl", "snip", "edge_popup", "gmp", "set"])
def test_a_checkpoint_resumes_exactly(name):
    """6 steps in one go equal 3 steps, a state_dict (model and optimizer) loaded into a fresh
    sparsified model built from other weights, and 3 more steps."""

    def build(seed):
        torch.manual_seed(seed)
        model = sparsify(_mlp(), 0.3, name, **FAST.get(name, {}))
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def train(model, opt, steps, start):
        for step in range(start, start + steps):
            g = torch.Generator().manual_seed(step)
            loss = model(torch.randn(8, 6, generator=g)).square().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

    whole, opt = build(0)
    train(whole, opt, 6, 0)
    first, opt = build(0)
    train(first, opt, 3, 0)
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    resumed, opt = build(7)
    resumed.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    train(resumed, opt, 3, 3)
    x = torch.randn(4, 6)
    assert torch.equal(whole(x), resumed(x))
    for a, b in zip(whole.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert a[0] == b[0] and torch.equal(a[1], b[1]), a[0]


def test_unsparsify_then_save_pretrained_round_trips(tmp_path):
    """A sparsified model is refused by save_pretrained (tests/models/test_pretrained.py);
    unsparsified, its trained masks baked in, it saves and loads with the same outputs."""
    from dnwgraph.models import create_model, from_pretrained, save_pretrained

    torch.manual_seed(0)
    model = sparsify(create_model("mnist1d_static"), 0.5, "rigl", include=nn.Linear, frequency=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 40)).square().sum().backward()
        opt.step()
    model.eval()
    x = torch.randn(3, 40)
    before = model(x)
    part = model.head.parametrizations.weight[0]
    assert int(part.mask(part.edge_weight).sum()) == 160  # grown weights may still be zero
    kept = _nonzero(model.head.weight)
    unsparsify(model)
    assert model.head.weight.shape == (10, 32) and _nonzero(model.head.weight) == kept
    loaded = from_pretrained(save_pretrained(model, tmp_path / "m")).eval()
    torch.testing.assert_close(loaded(x), before)


def test_a_model_budget_with_a_selection_that_reads_the_weights():
    model = sparsify(_cnn(), 0.2, "random", scope="model", seed=1)
    layers = [layer for _, layer in sparsified_layers(model)]
    total = sum(layer.weight.numel() for layer in layers)
    assert sum(_nonzero(layer.weight) for layer in layers) == round(0.2 * total)
    again = sparsify(_cnn(), 0.2, "random", scope="model", seed=1)
    assert all(
        torch.equal(a.weight != 0, b.weight != 0)
        for (_, a), (_, b) in zip(sparsified_layers(model), sparsified_layers(again), strict=True)
    )


def test_bad_selections_and_options_are_one_line_errors():
    from dnwgraph.errors import DNWGraphTypeError

    cases = [
        (dict(selection="nope"), DNWGraphError, r"unknown selection 'nope'; choose one of \["),
        (dict(selection="rigl", frequncy=3), DNWGraphTypeError, "has no option 'frequncy'"),
        (dict(selection="rigl", frequency=0), DNWGraphError, r"'frequency' must be an int >= 1"),
        (dict(selection="gmp", begin_step=5, end_step=5), DNWGraphError, "'end_step' must be"),
        (dict(selection=3), DNWGraphTypeError, "'selection' must be a name"),
        (dict(selection="rigl", scope="model"), DNWGraphError, "scope='model' takes a selection"),
    ]
    for kwargs, error, message in cases:
        fresh = _mlp()
        with pytest.raises(error, match=message) as info:
            sparsify(fresh, 0.2, **kwargs)
        assert "\n" not in str(info.value)
        assert sparsified_layers(fresh) == []
    # a method that needs gradients on weights without them: refused, every layer restored
    fresh = _mlp()
    fresh[2].weight.requires_grad_(False)
    shapes = {n: p.shape for n, p in fresh.named_parameters()}
    with pytest.raises(DNWGraphError, match="needs the gradient of the edge weights"):
        sparsify(fresh, 0.2, "rigl")
    assert sparsified_layers(fresh) == []
    assert {n: p.shape for n, p in fresh.named_parameters()} == shapes


def test_compact_is_for_wirings_a_sparsified_model_bakes_its_masks_instead():
    from dnwgraph import compact

    model = sparsify(_mlp(), 0.5, "rigl", frequency=1)
    with pytest.raises(TypeError, match=r"compact needs a WiringConv .* \(got Sequential\)"):
        compact(model)
    x = torch.randn(2, 6)
    before = model(x)
    torch.testing.assert_close(unsparsify(model)(x), before)


# ------------------------------------------------------- found by the red team


def _state(model: nn.Module) -> list[tuple[str, torch.Tensor, bool]]:
    """Names (in order), values and requires_grad of every parameter and buffer."""
    params = [(n, p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()]
    return params + [(n, b.clone(), False) for n, b in model.named_buffers()]


def _same_state(a: list, b: list) -> bool:
    return [(n, g) for n, _, g in a] == [(n, g) for n, _, g in b] and all(
        torch.equal(x, y) for (_, x, _), (_, y, _) in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("which", ["copy", "original"])
def test_unsparsify_one_of_two_deep_copies_leaves_the_other_working(which):
    """torch's deep copy of a parametrized layer shares its class, from which the removal
    deleted the ``weight`` property: the other copy's ``weight`` was gone."""
    model = sparsify(_cnn(), 0.3)
    clone = copy.deepcopy(model)
    x = torch.randn(2, 3, 5, 5)
    model.eval(), clone.eval()
    before = model(x)
    unsparsify(clone if which == "copy" else model)
    kept = model if which == "copy" else clone
    assert sparsified_layers(kept) != []
    torch.testing.assert_close(kept(x), before)
    torch.testing.assert_close((clone if which == "copy" else model)(x), before)
    unsparsify(kept)
    torch.testing.assert_close(kept(x), before)


def test_a_mask_chosen_for_one_call_is_not_reused_in_eval():
    """td draws a new mask at every training call (no cache key); the next eval call must use
    the top-k, not the last training draw kept under the key of an earlier eval call."""
    for scope in ["per_layer", "model"]:
        model = sparsify(_mlp(), 0.2, "td", scope=scope, drop_rate=0.5)
        model.eval()
        topk = [layer.weight != 0 for _, layer in sparsified_layers(model)]
        model.train()
        _ = [layer.weight for _, layer in sparsified_layers(model)]  # a training draw
        model.eval()
        again = [layer.weight != 0 for _, layer in sparsified_layers(model)]
        assert all(torch.equal(a, b) for a, b in zip(topk, again, strict=True)), scope


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(include=3), DNWGraphTypeError, r"'include' must hold .* \(got int 3\)"),
        (dict(exclude=1.5), DNWGraphTypeError, r"'exclude' must hold .* \(got float 1.5\)"),
        (dict(dense_first="yes"), DNWGraphError, r"'dense_first' must be True or False"),
        (
            dict(include="0", dense_first=True),
            DNWGraphError,
            r"no layer to sparsify: expected .* \(got Sequential with include='0', "
            r"exclude=None, dense_first=True\)",
        ),
        (dict(selection="td", drop_rate="x"), DNWGraphError, r"'drop_rate' .* \(got 'x'\)"),
        (dict(selection="fixed", mask="x"), DNWGraphTypeError, r"'mask' must be a BoolTensor"),
        (dict(selection="complete", ratio=0), DNWGraphError, r"must be in \[1, 42\] \(got 0\)"),
        (dict(selection="complete", ratio=float("nan")), DNWGraphError, r"\(got nan\)"),
    ],
)
def test_more_bad_arguments_are_one_line_errors_and_change_nothing(kwargs, error, message):
    fresh = _mlp()
    before = _state(fresh)
    kwargs = {"ratio": 0.2, **kwargs}
    with pytest.raises(error, match=message) as info:
        sparsify(fresh, **kwargs)
    assert "\n" not in str(info.value)
    assert sparsified_layers(fresh) == [] and _same_state(_state(fresh), before)


def test_a_refused_sparsify_and_unsparsify_keep_the_parameter_order():
    """A layer's ``weight`` came back after its ``bias``: other state-dict and parameter order
    than before (an optimizer state saved from the dense model then maps to other tensors)."""
    fresh = _mlp()
    fresh[2].weight.requires_grad_(False)
    before = _state(fresh)
    with pytest.raises(DNWGraphError, match="needs the gradient"):
        sparsify(fresh, 0.2, "rigl")
    assert _same_state(_state(fresh), before)
    model = _cnn()
    names = [n for n, _ in model.named_parameters()]
    assert [n for n, _ in unsparsify(sparsify(model, 0.2)).named_parameters()] == names
    assert list(model.state_dict()) == list(_cnn().state_dict())


def _hooks(model: nn.Module) -> list[str]:
    """The parameters of ``model`` holding a gradient hook."""
    return [n for n, p in model.named_parameters() if p._backward_hooks]


def test_a_refused_sparsify_leaves_no_gradient_hook():
    """rigl hooked layer '0''s weight before layer '2' was refused; the hook stayed on the
    plain layer after the refusal."""
    fresh = _mlp()
    fresh[2].weight.requires_grad_(False)
    with pytest.raises(DNWGraphError, match="needs the gradient"):
        sparsify(fresh, 0.2, "rigl")
    assert _hooks(fresh) == []


@pytest.mark.parametrize(
    "selection, options", [("rigl", {"frequency": 1}), ("set", {"frequency": 1}), ("snip", {})]
)
def test_unsparsify_removes_the_gradient_hooks(selection, options):
    """The selection's hook stayed on the weight after unsparsify: rigl's then multiplied the
    dense gradient by its flat mask (a RuntimeError at every backward), snip's kept zeroing."""
    model = sparsify(_mlp(), 0.5, selection, **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(5, 6)
    for _ in range(3):
        opt.zero_grad()
        model(x).square().sum().backward()
        opt.step()
    unsparsify(model)
    assert _hooks(model) == []
    plain = _mlp()
    plain.load_state_dict(model.state_dict())
    model.zero_grad()
    model(x).square().sum().backward()
    plain(x).square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


@pytest.mark.parametrize("selection", ["dnw", "rigl", "edge_popup"])
def test_tied_weights_are_refused(selection):
    """Two layers sharing one weight got two selections changing one tensor (rigl: masks that
    differ, neither of the budget's size)."""
    torch.manual_seed(0)
    tied = nn.Sequential(nn.Linear(7, 7), nn.ReLU(), nn.Linear(7, 7))
    tied[2].weight = tied[0].weight
    before = _state(tied)
    with pytest.raises(DNWGraphError, match=r"layers '0' and '2' share one weight tensor"):
        sparsify(tied, 0.2, selection)
    assert _same_state(_state(tied), before)
    with pytest.raises(DNWGraphError, match=r"'2.weight', which is not sparsified"):
        sparsify(tied, 0.2, selection, exclude="2")  # '2' would read the unmasked weight
    assert _same_state(_state(tied), before)
    tied[2].weight = nn.Parameter(tied[0].weight.detach().clone())  # the way out: untie
    sparsify(tied, 0.2, selection)


class _TiedEmbedding(nn.Module):
    """A language-model head tied to its embedding (the usual weight tying)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(9, 4)
        self.head = nn.Linear(4, 9, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(ids))


def test_a_weight_tied_to_a_module_not_sparsified_is_refused():
    """The head was sparsified and the embedding kept reading the unmasked weight: one tensor,
    two values, silently."""
    torch.manual_seed(0)
    model = _TiedEmbedding()
    before = _state(model)
    with pytest.raises(
        DNWGraphError,
        match=r"^layer 'head': its weight is also 'emb.weight', which is not sparsified and "
        r"would read the unmasked weight \(tied weights\); untie them",
    ) as info:
        sparsify(model, 0.25)
    assert "\n" not in str(info.value)
    assert _same_state(_state(model), before) and sparsified_layers(model) == []


def test_a_lazy_layer_is_a_one_line_error():
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(DNWGraphError, match=r"layer '0' is lazy.*run one forward pass"):
        sparsify(model, 0.5)
    model(torch.randn(1, 3))
    assert [n for n, _ in sparsified_layers(sparsify(model, 0.5))] == ["0", "2"]


def test_a_weight_with_another_parametrization_is_not_called_sparsified():
    """weight_norm's layer was "already sparsified; call unsparsify() first", and unsparsify
    then found no sparsified layer."""
    from torch.nn.utils.parametrizations import weight_norm

    model = nn.Sequential(weight_norm(nn.Linear(4, 4)), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(DNWGraphError, match=r"layer '0' has a parametrization of its weight"):
        sparsify(model, 0.5)
    assert [n for n, _ in sparsified_layers(sparsify(model, 0.5, exclude="0"))] == ["2"]


def test_unsparsify_keeps_a_parametrization_of_the_bias():
    from torch.nn.utils import parametrize

    class Twice(nn.Module):
        def forward(self, x):
            return 2 * x

    model = _mlp()
    parametrize.register_parametrization(model[0], "bias", Twice())
    x = torch.randn(3, 6)
    before = sparsify(model, 0.5)(x)
    unsparsify(model)
    assert parametrize.is_parametrized(model[0], "bias")
    assert not parametrize.is_parametrized(model[0], "weight")
    torch.testing.assert_close(model(x), before)


def test_a_budget_that_does_not_fit_one_layer_names_it():
    """An int budget fits some layers and not others: the message said the range, not whose."""
    fresh = _mlp()  # 42 and 28 weights
    with pytest.raises(
        DNWGraphError, match=r"^layer '2': 'ratio' as an int .* \[1, 28\] \(got 30\)$"
    ):
        sparsify(fresh, 30)
    assert sparsified_layers(fresh) == []
    with pytest.raises(DNWGraphTypeError, match=r"^selection 'rigl' has no option 'alpha'"):
        sparsify(fresh, 0.2, "rigl", alpha=1)  # the same for every layer: no layer named
    with pytest.raises(DNWGraphError, match=r"^unknown selection 'dwn'; .*did you mean 'dnw'\?$"):
        sparsify(fresh, 0.2, "dwn")
    with pytest.raises(DNWGraphError, match=r"^'frequency' must be an int >= 1 \(got 0\)$"):
        sparsify(fresh, 0.2, "rigl", frequency=0)


def test_unsparsify_after_edge_popup_trains_the_weights_again():
    """edge_popup stops the weights' gradient; the plain layers of unsparsify kept it stopped,
    so fine-tuning them silently trained only the biases."""
    model = _mlp()
    model[2].weight.requires_grad_(False)  # frozen by the user: stays frozen
    sparsify(model, 0.5, "edge_popup")
    assert not any(layer.parametrizations.weight.original.requires_grad for layer in model[::2])
    unsparsify(model)
    assert model[0].weight.requires_grad and not model[2].weight.requires_grad
