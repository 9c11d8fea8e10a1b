"""sparsify / unsparsify: exact densities, straight-through gradients, state dicts, wiring."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn

import dnwgraph
from dnwgraph.errors import DNWGraphError
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
        raw = layer.parametrizations.weight.original.detach()
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
        torch.testing.assert_close(raw.grad, e.grad)
        assert (raw.grad[sparse[i].weight == 0] != 0).any()  # pruned weights get a gradient
    del dense


def test_pruned_weight_swaps_in_after_an_update():
    model = sparsify(nn.Sequential(nn.Linear(2, 1, bias=False)), 1)
    with torch.no_grad():
        model[0].parametrizations.weight.original.copy_(torch.tensor([[1.0, 0.5]]))
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


def test_errors():
    with pytest.raises(ValueError, match=r"'scope' must be one of \['per_layer', 'model'\]"):
        sparsify(_mlp(), 0.1, scope="per_node")
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
    """``scope`` names say which unit shares one budget: ``per_layer`` or the ``model`` (the
    0.2 names ``layer`` / ``global`` clashed with WiringConv's ``global``, one layer, and are
    gone: no alias)."""
    with pytest.raises(
        DNWGraphError, match=rf"'scope' must be one of \['per_layer', 'model'\] \(got '{old}'\)"
    ):
        sparsify(_mlp(), 4, scope=old)


# ------------------------------------------------------- the mask cache: keyed on values


@pytest.fixture
def selections(monkeypatch):
    """Counts the top-k selections sparsify makes (a spy on its topk_mask)."""
    import importlib

    module = importlib.import_module("dnwgraph.models.sparsify")  # the name is the function's
    calls = []
    real = module.topk_mask

    def spy(score, k):
        calls.append(score.numel())
        return real(score, k)

    monkeypatch.setattr(module, "topk_mask", spy)
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
    torch.testing.assert_close(layer.weight, _expected(w, 5), rtol=0, atol=0)
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
