"""The explicit plan cache of WiringConv: its key is the weights (by value) and the selection's
state, it sees every way of changing them, and invalidate()/freeze() do what they say."""

import copy
import pickle

import pytest
import torch

from dnwgraph import WiringConv, block_dag, complete
from dnwgraph.errors import DNWGraphError
from dnwgraph.nn.kernels import PlanCache, ValueKey


def layer(**kwargs):
    torch.manual_seed(0)
    return WiringConv(complete(6), ratio=8, **kwargs)


def test_a_plan_is_reused_while_the_weights_are_unchanged():
    conv = layer()
    assert isinstance(conv.plan_cache, PlanCache) and conv.plan_cache.mask is None
    x = torch.randn(6, 3)
    conv(x)
    plan = conv.plan()
    conv(x)
    assert conv.plan() is plan and conv.plan_cache.plans[(None, 0, conv.num_nodes)] is plan
    assert torch.equal(conv.plan_cache.weights, conv.edge_weight.detach())
    assert conv.plan_cache.weights.data_ptr() != conv.edge_weight.data_ptr()  # a copy


@pytest.mark.parametrize(
    "change",
    [
        "optimizer",
        "in_place",
        "data_assignment",
        "load_state_dict",
    ],
)
def test_every_change_of_the_weights_is_seen(change):
    conv = layer()
    x = torch.randn(6, 3)
    conv(x).sum().backward()
    plan, states = conv.plan(), conv.weight_updates
    if change == "optimizer":
        torch.optim.SGD(conv.parameters(), lr=1.0).step()
    elif change == "in_place":
        with torch.no_grad():
            conv.edge_weight[0] += 5.0  # the same storage, new values
    elif change == "data_assignment":
        conv.edge_weight.data = conv.edge_weight.data.flip(0).clone()
    else:
        state = {k: v.clone() for k, v in conv.state_dict().items()}
        state["edge_weight"] = torch.randn_like(state["edge_weight"])
        conv.load_state_dict(state)
    new = conv.plan()
    assert new is not plan and conv.weight_updates == states + 1
    assert torch.equal(new.values, conv.edge_weight.detach()[new.selected.ids])
    assert torch.equal(conv.active_mask(), conv.selection(conv.edge_weight))


def test_unchanged_values_are_not_a_new_state():
    conv = layer(grad_every=2)
    conv(torch.randn(6, 3))
    plan = conv.plan()
    with torch.no_grad():
        conv.edge_weight.copy_(conv.edge_weight.clone())  # written, but the same values
    assert conv.plan() is plan and conv.weight_updates == 1


def test_a_new_dtype_rebuilds_the_plans_but_is_not_a_new_state():
    conv = layer(grad_every=2)
    conv(torch.randn(6, 3))
    plan = conv.plan()
    conv.double()
    new = conv.plan()
    assert new is not plan and new.values.dtype == torch.float64
    assert conv.weight_updates == 1 and conv.all_candidate_grad


def test_a_frozen_mask_buffer_is_part_of_the_key():
    mask = torch.zeros(30, dtype=torch.bool)
    mask[:8] = True
    conv = WiringConv(complete(6), ratio=8, selection="fixed", mask=mask)
    assert conv.active_mask().nonzero().view(-1).tolist() == list(range(8))
    with torch.no_grad():
        conv.selection.mask.copy_(mask.flip(0))  # in place: same storage, other edges
    assert conv.active_mask().nonzero().view(-1).tolist() == list(range(22, 30))
    assert conv.weight_updates == 1  # the selection's state changed, not the weights


def test_invalidate_selects_again():
    conv = layer()
    conv(torch.randn(6, 3))
    plan = conv.plan()
    conv.plan_cache.invalidate()
    assert conv.plan_cache.mask is None and conv.plan_cache.plans == {}
    assert conv.plan() is not plan and conv.weight_updates == 1  # same weights, same state


def test_freeze_keeps_the_plans_whatever_the_weights_become():
    conv = layer()
    with pytest.raises(DNWGraphError, match="run the layer"):
        conv.plan_cache.freeze()
    x = torch.randn(6, 3)
    before = conv(x)
    conv.plan_cache.freeze()
    with torch.no_grad():
        conv.edge_weight.mul_(-3.0)
    assert conv.plan_cache.frozen and torch.equal(conv(x), before)
    conv.plan_cache.invalidate()
    assert not conv.plan_cache.frozen
    torch.testing.assert_close(conv(x), -3.0 * before)


def test_copies_drop_the_plans_and_keep_the_key():
    conv = WiringConv(block_dag([2, 3, 2]), ratio=6, source_groups=[torch.arange(2)])
    conv(torch.randn(7, 4))
    conv(torch.randn(2, 4), group=0)
    copied = copy.deepcopy(conv)
    assert copied.plan_cache.plans == {} and copied.plan_cache.by_group is None
    assert torch.equal(copied.plan_cache.mask, conv.plan_cache.mask)
    assert copied.plan_cache is not conv.plan_cache and copied.weight_updates == 1
    loaded = pickle.loads(pickle.dumps(conv))
    x = torch.randn(7, 4)
    torch.testing.assert_close(loaded(x), conv(x))
    torch.testing.assert_close(copied(x), conv(x))
    assert loaded.weight_updates == 1


def test_structure_follows_the_device_of_the_edges():
    conv = WiringConv(block_dag([2, 3, 2]), ratio=6)
    conv(torch.randn(7, 2))
    assert conv.plan_cache.structure(torch.device("cpu")) is conv.plan_cache.structure(
        torch.device("cpu")
    )
    assert conv.plan_cache.structure(torch.device("meta")) == {}


def test_a_lost_backward_plan_is_one_clear_error():
    cache = PlanCache()
    token = cache.record("plan")
    assert cache.recorded(token) == "plan"
    cache.invalidate()
    with pytest.raises(DNWGraphError, match="lost the plan of its forward pass"):
        cache.recorded(token)


def test_hold_compares_once_per_block():
    conv = layer()
    conv(torch.randn(6, 3))
    plan = conv.plan()
    with conv.plan_cache.hold():
        assert conv.plan() is plan  # compared here ...
        with torch.no_grad():
            conv.edge_weight.mul_(2.0)
        assert conv.plan() is plan  # ... and trusted for the rest of the block
    assert conv.plan() is not plan  # after it, compared again


def test_a_static_model_compares_its_weights_once_per_forward(monkeypatch):
    from dnwgraph import create_model
    from dnwgraph.nn.kernels import cache as plans

    model = create_model("mnist1d_static").eval()
    x = torch.randn(2, 40)
    with torch.no_grad():
        model(x)
        calls = []
        real, num_edges = plans._same_values, model.conv.num_edges

        def counted(a, b):
            calls.append(a.numel() == num_edges)
            return real(a, b)

        monkeypatch.setattr(plans, "_same_values", counted)
        model(x)
    assert sum(calls) == 1  # five levels, one comparison of the weights


def test_weights_selected_under_inference_mode_then_trained():
    """Evaluating under torch.inference_mode and training on: the cache's copy of the weights
    from inference mode is replaced, not written into (which torch forbids)."""
    torch.manual_seed(0)
    conv = WiringConv(block_dag([2, 3, 2]), ratio=4)
    x = torch.randn(7, 3)
    with torch.inference_mode():
        conv(x)
    with torch.no_grad():
        conv.edge_weight.mul_(2)
    conv(x).sum().backward()
    assert conv.edge_weight.grad is not None
    ref = WiringConv(block_dag([2, 3, 2]), ratio=4)
    ref.load_state_dict(conv.state_dict())
    assert torch.equal(conv.active_mask(), ref.active_mask())


@pytest.mark.parametrize("change", ["in_place", "data", "to_double", "other_tensor"])
def test_a_value_key_sees_every_change_of_its_tensors(change):
    w, key = torch.ones(4), ValueKey()
    key.store([w, "scope"])
    assert key.matches([w, "scope"]) and not key.matches([w, "other"]) and key.unequal == 1
    if change == "in_place":
        w.mul_(2)
    elif change == "data":
        w.data[0] = 5.0
    elif change == "to_double":
        w = w.double()  # the same values, another dtype
    else:
        w = torch.ones(4)  # another tensor, the same values: still a match
    assert key.matches([w, "scope"]) is (change == "other_tensor")
    assert key.unequal == (None if change == "other_tensor" else 0)


def test_a_value_key_compares_once_per_hold_and_reuses_its_copies():
    w, key = torch.ones(4), ValueKey()
    key.store([w])
    copy_ = key.values[0]
    with key.hold():
        assert key.matches([w])
        w.mul_(2)
        assert key.matches([w])  # trusted inside the block
    assert not key.matches([w])
    key.store([w])
    assert key.values[0] is copy_ and torch.equal(copy_, w)  # written into, not reallocated
    key.invalidate()
    assert not key.matches([w])


class Transpose(torch.nn.Module):
    def forward(self, x):
        return x.T


def _layer_or_model(model, impl="auto"):
    """A layer, or a model taking samples as columns (so that vmap maps over columns), and an
    input."""
    from dnwgraph import create_model

    if model == "conv":
        return layer(impl=impl), torch.randn(6, 3)
    torch.manual_seed(0)
    return torch.nn.Sequential(Transpose(), create_model(model, impl=impl).eval()), torch.randn(
        40, 3
    )


@pytest.mark.parametrize("transform", ["grad", "jacrev", "vmap"])
@pytest.mark.parametrize("model", ["conv", "mnist1d_static"])
def test_transforms_of_the_weights_are_refused_in_one_line(transform, model):
    """Before: torch's "Cannot access data pointer of Tensor that doesn't have storage" (the
    cache reading a wrapped tensor's values) or its setup_context message."""
    m, x = _layer_or_model(model)
    m(x)  # a plan cached first, as in a real script
    params = dict(m.named_parameters())

    def f(p):
        return torch.func.functional_call(m, p, (x,))

    run = {
        "grad": lambda: torch.func.grad(lambda p: f(p).sum())(params),
        "jacrev": lambda: torch.func.jacrev(lambda p: f(p).sum())(params),
        "vmap": lambda: torch.func.vmap(f)({k: v.expand(2, *v.shape) for k, v in params.items()}),
    }[transform]
    with pytest.raises(DNWGraphError, match=r"^dnwgraph's layers do not run under torch\.func"):
        run()
    assert torch.equal(f(params), m(x))  # functional_call alone works, same outputs


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("impl", ["auto", "scatter", "dense"])
@pytest.mark.parametrize("model", ["conv", "mnist1d_static", "mnist1d_discrete"])
def test_vmap_and_jacrev_over_the_inputs_equal_a_loop_and_autograd(model, impl, frozen):
    """Transforms of the inputs run (auto runs scatter under them; a static model's chain,
    a hand-written autograd.Function, gives way to the level loop)."""
    m, x = _layer_or_model(model, impl)
    m(x)
    if frozen:
        for module in m.modules():
            if hasattr(module, "plan_cache"):
                module.plan_cache.freeze()
    batched = torch.func.vmap(lambda xi: m(xi.unsqueeze(1)), in_dims=1)(x)
    looped = torch.stack([m(x[:, i : i + 1]) for i in range(x.size(1))])
    torch.testing.assert_close(batched, looped)
    jac = torch.func.jacrev(lambda xx: m(xx).square().sum())(x)
    torch.testing.assert_close(
        jac, torch.autograd.functional.jacobian(lambda xx: m(xx).square().sum(), x)
    )


def test_sparse_under_a_transform_is_one_line_naming_what_runs():
    conv, x = _layer_or_model("conv", "sparse")
    with pytest.raises(
        DNWGraphError, match=r"^impl='sparse' runs a hand-written autograd\.Function"
    ):
        torch.func.vmap(lambda xi: conv(xi.unsqueeze(1)), in_dims=1)(x)
