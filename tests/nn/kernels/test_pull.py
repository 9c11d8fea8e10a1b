"""The pull chain of deep DAGs against the executor's plain level loop: values, every
gradient, inference, rows, pools, and the cases that stay with the push chain."""

import copy

import pytest
import torch

from dnwgraph import Wiring, WiringSpec, block_dag
from dnwgraph.errors import DNWGraphError
from dnwgraph.nn import LevelExecutor
from dnwgraph.nn.kernels import pull as pull_module
from dnwgraph.nn.kernels.pull_plan import PullSteps
from dnwgraph.nn.node_ops import NeuronNodeOp


def deep_wiring(n, seed, shuffle=True):
    """A random DAG of about n / 2 levels: u -> u + 1 with probability 1/2, u -> u + 2, and
    a few long edges, node ids shuffled (its levels are then no node ranges)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.arange(n - 1)
    near = torch.rand(n - 1, generator=gen) < 0.5
    src = [u[near], torch.arange(n - 2), torch.randint(0, n // 2, (n,), generator=gen)]
    dst = [u[near] + 1, torch.arange(2, n), torch.randint(n // 2, n, (n,), generator=gen)]
    key = torch.unique(torch.cat(src) * n + torch.cat(dst))
    rank = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
    return Wiring(torch.stack([rank[key // n], rank[key % n]]), n)


def executor(wiring, seed=0, **spec):
    spec = {"node_op": "neuron", **spec}
    ex = LevelExecutor(wiring, WiringSpec(0.5, **spec)).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ex.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return ex


class PlainLoop(torch.nn.Module):
    """The executor's own level loop (the oracle), whatever the input: every node's inputs,
    or the first level's (the other nodes at zero)."""

    def __init__(self, ex):
        super().__init__()
        self.ex = ex

    def forward(self, x, rows=None):
        ex = self.ex
        if x.size(0) != ex.num_nodes:
            x = x.new_zeros(ex.num_nodes, *x.shape[1:]).index_copy(0, ex.groups[0], x)
        out = ex.plain_forward(x)
        return out if rows is None else out[rows]


def grads(model, x, g, **kwargs):
    x = x.clone().requires_grad_(True)
    out = model(x, **kwargs)
    (out * g).sum().backward()
    return out, x.grad, [p.grad for p in model.parameters()]


def assert_same(a, b):
    for u, v in zip(a, b, strict=True):
        if isinstance(u, list):
            assert_same(u, v)
        else:
            torch.testing.assert_close(u, v)


@pytest.fixture
def pulled(monkeypatch):
    """Counts the pull chains run."""
    calls = []
    run = pull_module.pull_chain

    def counted(*args, **kwargs):
        calls.append(1)
        return run(*args, **kwargs)

    monkeypatch.setattr("dnwgraph.nn.kernels.chain.pull_chain", counted)
    return calls


@pytest.mark.parametrize(("n", "seed", "shuffle"), [(300, 0, True), (120, 1, False)])
def test_a_deep_chain_pulls_and_equals_the_plain_loop(n, seed, shuffle, pulled):
    wiring = deep_wiring(n, seed, shuffle)
    ex = executor(wiring, seed)
    assert len(ex.node_ops) > 40 and ex.chain.pull_bounds is not None
    assert (ex.chain.order is None) == (not shuffle)  # in the node ids, or renumbered
    plain = copy.deepcopy(ex)
    x, g = torch.randn(n, 3, dtype=torch.float64), torch.randn(n, 3, dtype=torch.float64)
    for _ in range(2):  # a second pass reuses the plans
        got, ref = grads(ex, x, g), grads(PlainLoop(plain), x, g)
        assert_same(got, ref)
        ex.zero_grad(), plain.zero_grad()
    assert len(pulled) == 2
    rows = torch.tensor([n - 1, 0, n // 2])
    assert_same(grads(ex, x, g[rows], rows=rows), grads(PlainLoop(plain), x, g[rows], rows=rows))
    with torch.no_grad():
        torch.testing.assert_close(ex(x), ref[0])
        torch.testing.assert_close(ex(x, rows=rows), ref[0][rows])
        torch.testing.assert_close(ex(x, rows=slice(3, n - 2)), ref[0][3 : n - 2])
    assert len(pulled) == 6


def test_the_first_level_inputs_and_pooled_sinks_of_a_deep_chain(pulled):
    wiring = deep_wiring(200, 2)
    ex = executor(wiring, 2, node_op="conv2d")
    plain = copy.deepcopy(ex)
    first, sinks = ex.groups[0], wiring.output_nodes
    x0 = torch.randn(first.numel(), 2, 4, 4, dtype=torch.float64)
    after = torch.tensor([v for v in range(200) if v not in set(first.tolist())])
    g = torch.randn(after.numel(), 2, 4, 4, dtype=torch.float64)
    assert_same(grads(ex, x0, g), grads(PlainLoop(plain), x0, g, rows=after))
    ex.zero_grad(), plain.zero_grad()
    pool = SpatialMean()
    gs = torch.randn(sinks.numel(), 2, dtype=torch.float64)
    got = grads(Pooled(ex, sinks, pool), x0, gs)
    ref = grads(Pooled(PlainLoop(plain), sinks, pool), x0, gs)
    assert_same(got, ref)
    with torch.no_grad():
        torch.testing.assert_close(ex(x0, rows=sinks, pool=pool), ref[0])
    assert len(pulled) == 3


class Pooled(torch.nn.Module):
    """The pooled inputs of the sinks: by the executor's ``pool`` argument, or by pooling
    the oracle's rows."""

    def __init__(self, model, sinks, pool):
        super().__init__()
        self.model, self.sinks, self.pool = model, sinks, pool

    def forward(self, x):
        if isinstance(self.model, LevelExecutor):
            return self.model(x, rows=self.sinks, pool=self.pool)
        return self.pool.pool(self.model(x, rows=self.sinks))


class SpatialMean:
    def pool(self, x):
        return x.mean((2, 3))

    def pool_adjoint_(self, grad, h):
        return grad.add_(h[:, :, None, None] / (grad.size(2) * grad.size(3)))


def test_only_the_selected_edges_get_a_gradient_between_straight_through_states(pulled):
    # grad_every=2: the second weight state gives the selected edges alone a gradient
    wiring = deep_wiring(150, 3)
    ex = executor(wiring, 3, grad_every=2)
    plain = copy.deepcopy(ex)
    x, g = torch.randn(150, 2, dtype=torch.float64), torch.randn(150, 2, dtype=torch.float64)
    for step in range(3):
        got, ref = grads(ex, x, g), grads(PlainLoop(plain), x, g)
        assert_same(got, ref)
        straight = ex.conv.straight_through_now
        assert straight == (step % 2 == 0)
        unselected = ~ex.conv.active_mask()
        assert bool((ex.conv.edge_weight.grad[unselected] != 0).any()) == straight
        for model in (ex, plain):
            with torch.no_grad():
                for p in model.parameters():
                    p.sub_(0.01 * p.grad)
            model.zero_grad()
    assert len(pulled) == 3


def test_retained_graphs_give_the_same_gradients_twice(pulled):
    wiring = deep_wiring(100, 4)
    ex = executor(wiring, 4)
    x = torch.randn(100, 2, dtype=torch.float64, requires_grad=True)
    g = torch.randn(100, 2, dtype=torch.float64)
    out = ex(x)
    (out * g).sum().backward(retain_graph=True)
    once = [x.grad.clone(), *(p.grad.clone() for p in ex.parameters())]
    (out * g).sum().backward()
    twice = [x.grad, *(p.grad for p in ex.parameters())]
    assert_same(twice, [2 * t for t in once])
    assert len(pulled) == 1


def test_a_second_derivative_is_refused(pulled):
    ex = executor(deep_wiring(60, 5), 5)
    x = torch.randn(60, 2, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(ex(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(DNWGraphError, match="level executor of a static model"):
        gx.sum().backward()


def test_edge_popup_scores_get_their_gradient_through_the_pull_chain(pulled):
    wiring = deep_wiring(120, 6)
    ex = executor(wiring, 6, selection="edge_popup")
    plain = copy.deepcopy(ex)
    x, g = torch.randn(120, 2, dtype=torch.float64), torch.randn(120, 2, dtype=torch.float64)
    assert_same(grads(ex, x, g), grads(PlainLoop(plain), x, g))
    assert len(pulled) == 1


@pytest.fixture
def without_autograd(monkeypatch):
    """Counts the pull chains run without autograd (:func:`pull.pull_levels`)."""
    calls = []
    run = pull_module.pull_levels

    def counted(*args, **kwargs):
        calls.append(1)
        return run(*args, **kwargs)

    monkeypatch.setattr(pull_module, "pull_levels", counted)
    return calls


@pytest.mark.parametrize(("n", "seed", "shuffle"), [(240, 10, True), (160, 11, False)])
def test_the_chain_without_autograd_equals_the_plain_loop(n, seed, shuffle, without_autograd):
    wiring = deep_wiring(n, seed, shuffle)
    ex = executor(wiring, seed)
    assert len(ex.node_ops) >= 40
    x = torch.randn(n, 3, dtype=torch.float64)
    sinks = wiring.output_nodes
    with torch.no_grad():
        ref = ex.plain_forward(x)
        torch.testing.assert_close(ex(x), ref)  # the inputs of every level are kept
        torch.testing.assert_close(ex(x, rows=sinks), ref[sinks])  # the sinks' only
    ex.requires_grad_(False)  # grad mode on, nothing to differentiate: no autograd either
    out = ex(x, rows=torch.tensor([n - 1, 0, n // 2]))
    assert out.grad_fn is None
    torch.testing.assert_close(out, ref[[n - 1, 0, n // 2]])
    assert len(without_autograd) == 3
    ex.requires_grad_(True)
    assert ex(x).grad_fn is not None and len(without_autograd) == 3


def test_the_chain_without_autograd_from_first_level_inputs_that_change_size(without_autograd):
    # the first level halves the images: the oracle is the push chain of the scatter
    # backend (which never pulls) and the pull chain with autograd
    wiring = deep_wiring(160, 12)

    def ops(sizes):
        return [torch.nn.MaxPool2d(2), *(NeuronNodeOp(k) for k in sizes[1:])]

    pulled = LevelExecutor(wiring, WiringSpec(0.5), node_ops=ops).double()
    pushed = LevelExecutor(wiring, WiringSpec(0.5, impl="scatter"), node_ops=ops).double()
    pushed.load_state_dict(pulled.state_dict())
    x0 = torch.randn(pulled.groups[0].numel(), 2, 4, 4, dtype=torch.float64)
    with_grad = pulled(x0)
    with torch.no_grad():
        out = pulled(x0)
        torch.testing.assert_close(out, pushed(x0))
        torch.testing.assert_close(out, with_grad)
        sinks = wiring.output_nodes  # rows of the result: the nodes after the first level
        after = torch.ones(160, dtype=torch.bool).index_fill(0, pulled.groups[0], False)
        at = torch.searchsorted(after.nonzero().view(-1), sinks)
        torch.testing.assert_close(pulled(x0, rows=sinks), with_grad[at])
    assert out.shape[-2:] == (2, 2) and len(without_autograd) == 2


@pytest.mark.parametrize("impl", ["scatter", "dense"])
def test_the_reference_backends_and_hooked_layers_stay_with_the_push_chain(impl, pulled):
    wiring = deep_wiring(80, 7)
    ex = executor(wiring, 7, impl=impl)
    hooked = executor(wiring, 7)
    hooked.conv.register_forward_hook(lambda *args: None)
    x, g = torch.randn(80, 2, dtype=torch.float64), torch.randn(80, 2, dtype=torch.float64)
    for model in (ex, hooked):
        assert_same(grads(model, x, g), grads(PlainLoop(copy.deepcopy(model)), x, g))
    assert pulled == []


def test_a_shallow_chain_pushes(pulled):
    ex = executor(block_dag([3, 4, 4, 2]), 8)
    assert ex.chain.pull_bounds is None
    ex(torch.randn(13, 2, dtype=torch.float64))
    assert pulled == []


@pytest.mark.parametrize("grad", [True, False])
def test_half_precision_is_pulled_in_float32(grad):
    # the oracle: the same rounded weights and inputs, in float64 (a float64 model's own
    # weights would add their rounding to bfloat16 to the error)
    wiring = deep_wiring(100, 9)
    half = executor(wiring, 9).to(torch.bfloat16)
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(9)).to(torch.bfloat16)
    ref = copy.deepcopy(half).double()(x.double())
    with torch.set_grad_enabled(grad):
        out = half(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref.detach(), rtol=0.05, atol=0.05)


def test_steps_tile_the_rows_after_the_first_level():
    # levels {0, 1} | {2} | {3, 4}, sinks {5}: three steps, edges sorted by target
    edge_index = torch.tensor([[1, 0, 2, 2, 3, 0], [2, 2, 3, 4, 5, 5]])
    steps = PullSteps.of(edge_index, [0, 2, 3, 5, 6])
    assert steps.num_steps == 3 and steps.cand == [0, 2, 4, 6]
    assert steps.dst.tolist() == [2, 2, 3, 4, 5, 5]
    assert steps.src.tolist() == [0, 1, 2, 2, 0, 3]
    assert steps.local.tolist() == [0, 0, 0, 1, 0, 0]
    assert steps.order.tolist() == [1, 0, 2, 3, 5, 4]
    # an edge into the first level: no pull chain
    assert PullSteps.of(torch.tensor([[2], [1]]), [0, 2, 3]) is None


@pytest.mark.parametrize("spec", [{"selection": "dnw_periodic"}, {"selection": "random"}])
def test_a_renumbered_chain_follows_new_weights_under_the_same_mask(spec, pulled):
    # these selections hand back the same mask object for new weights: the level-order
    # view must still build its plans anew (it kept the old weights' before)
    wiring = deep_wiring(150, 5)
    ex = executor(wiring, 5, **spec)
    assert ex.chain.order is not None  # renumbered
    x = torch.randn(150, 2, dtype=torch.float64)
    for _ in range(3):
        with torch.no_grad():
            ex.conv.edge_weight.mul_(1.5).add_(0.1)
        torch.testing.assert_close(ex(x), ex.plain_forward(x))
    assert len(pulled) == 3
