import copy

import pytest
import torch
import torch.nn.functional as F

from dnwgraph import (
    StaticNeuralGraph,
    Wiring,
    WiringSpec,
    block_dag,
    complete,
    create_model,
    random_dag,
)
from dnwgraph.errors import DNWGraphTypeError


def randomize(model, seed=0):
    """Non-trivial norm affines (initially 1 and 0) so that the oracle tests all of them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for op in model.executor.node_ops:
            op.norm.weight.copy_(1 + 0.3 * torch.randn(op.norm.weight.shape, generator=gen))
            op.norm.bias.copy_(0.3 * torch.randn(op.norm.bias.shape, generator=gen))
    return model


def naive_forward(model, x):
    """Nodes one at a time in topological order, messages summed one edge at a time over all
    candidate edges with a straight-through masked weight (the oracle)."""
    wiring, conv = model.wiring, model.executor.conv
    mask = conv.active_mask().to(x.dtype)
    w = conv.edge_weight
    if conv.selection.straight_through:
        w_eff = w * mask + (w - w.detach()) * (1 - mask)
    else:
        w_eff = w * mask
    # per node: (op, row) computing it
    where = {}
    for op, g in zip(model.executor.node_ops, model.executor.groups, strict=True):
        for row, v in enumerate(g.tolist()):
            where[v] = (op, row)
    inputs = {v: torch.zeros_like(x[:, 0]) for v in range(wiring.num_nodes)}
    for i, v in enumerate(model.input_nodes.tolist()):
        inputs[v] = x[:, i]
    outputs = {}
    src, dst = conv.edge_index.tolist()
    order = sorted(range(wiring.num_nodes), key=lambda v: (int(wiring.node_level()[v]), v))
    for v in order:
        total = inputs[v]
        for e, (u, t) in enumerate(zip(src, dst, strict=True)):
            if t == v:
                total = total + w_eff[e] * outputs[u]
        inputs[v] = total
        if v in where:
            op, r = where[v]
            h = F.instance_norm(
                total.unsqueeze(1),
                weight=op.norm.weight[r : r + 1],
                bias=op.norm.bias[r : r + 1],
                eps=op.config["eps"],
            )
            h = F.conv2d(F.gelu(h), op.conv.weight[r : r + 1], padding=1)
            outputs[v] = h.squeeze(1)
    pooled = torch.stack([inputs[v].mean(dim=(1, 2)) for v in model.output_nodes.tolist()], 1)
    return model.head(pooled)


def small_model(selection="dnw", impl="sparse", seed=3, **kwargs):
    torch.manual_seed(seed)
    wiring = random_dag("er", 9, seed=seed, p=0.5)
    model = StaticNeuralGraph(wiring, WiringSpec(0.5, selection, impl=impl), **kwargs)
    return randomize(model)


@pytest.mark.parametrize("selection", ["dnw", "dnw_no_update", "random", "complete"])
def test_equals_naive_per_node_loop_with_edge_gradients(selection):
    model = small_model(selection)
    n_in = model.input_nodes.numel()
    x = torch.randn(3, n_in, 4, 4)
    target = torch.randn(3, 10)

    out = model(x)
    (out * target).sum().backward()
    grad = model.executor.conv.edge_weight.grad.clone()
    model.zero_grad()
    ref = naive_forward(model, x)
    (ref * target).sum().backward()
    ref_grad = model.executor.conv.edge_weight.grad

    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(grad, ref_grad, atol=1e-5)
    active = model.executor.conv.active_mask()
    if selection == "dnw":
        assert grad[~active].abs().sum() > 0  # hallucinated edges learn
    elif selection != "complete":
        assert torch.equal(grad[~active], torch.zeros_like(grad[~active]))


@pytest.mark.parametrize("impl", ["scatter", "dense"])
def test_sparse_equals_other_impls(impl):
    model = small_model(seed=5)
    other = small_model(seed=5, impl=impl)
    other.load_state_dict(model.state_dict())
    x = torch.randn(2, model.input_nodes.numel(), 3, 3)
    out, ref = model(x), other(x)
    out.sum().backward()
    ref.sum().backward()
    assert torch.allclose(out, ref, atol=1e-5)
    for (name, p), q in zip(model.named_parameters(), other.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-4), name


def test_non_contiguous_levels_and_vector_nodes_by_hand():
    # levels [0, 3], [1], [2]: node 1 is fed by 0, node 2 by 1 and 3; output 2
    wiring = Wiring([(0, 1), (1, 2), (3, 2)], num_nodes=4)
    model = StaticNeuralGraph(wiring, WiringSpec(3, node_op="neuron"), num_classes=1)
    with torch.no_grad():
        model.executor.conv.edge_weight.copy_(torch.tensor([2.0, 1.0, -1.0]))  # (0,1) (1,2) (3,2)
        for op in model.executor.node_ops:
            op.bias.fill_(-1.0)
        model.head.weight.fill_(1.0)
        model.head.bias.zero_()
    assert [g.tolist() for g in model.executor.groups] == [[0, 3], [1]]
    x = torch.tensor([[3.0, 0.5]])  # input nodes 0 and 3
    # Z0 = relu(3 - 1) = 2, Z3 = relu(0.5 - 1) = 0, I1 = 4, Z1 = 3, I2 = 3 * 1 + 0 * -1 = 3
    assert model(x).item() == pytest.approx(3.0)


def test_node_without_selected_input_outputs_zero_and_its_edges_get_no_gradient():
    # nodes 0, 1 input; 2 and 3 hidden; 4 output. The fixed mask leaves node 3 without input.
    wiring = Wiring([(0, 2), (1, 3), (2, 4), (3, 4), (0, 4)], num_nodes=5, output_nodes=[4])
    model = StaticNeuralGraph(wiring, WiringSpec(4, "dnw"))
    edges = model.executor.conv.edge_index.t().tolist()
    with torch.no_grad():
        w = torch.tensor([0.0 if e == [1, 3] else 1.0 + i for i, e in enumerate(edges)])
        model.executor.conv.edge_weight.copy_(w)
    active = model.executor.conv.active_mask()
    assert not active[edges.index([1, 3])]
    x = torch.randn(2, 2, 4, 4)
    z = model.node_outputs(x)
    assert torch.equal(z[3], torch.zeros_like(z[3]))
    assert z[2].abs().sum() > 0
    model(x).sum().backward()
    assert model.executor.conv.edge_weight.grad[edges.index([3, 4])] == 0
    assert model.executor.conv.edge_weight.grad[edges.index([2, 4])] != 0


def test_subgraph_by_hand():
    # 0, 1 inputs; 2, 3, 4 hidden; 5, 6 outputs. The top 7 leave out (1, 4), so node 4 gets no
    # input and outputs zero; output 6 reads only node 4; input 1 feeds only node 4.
    pairs = [(0, 2), (1, 4), (0, 3), (2, 3), (2, 5), (3, 5), (4, 5), (4, 6)]
    model = StaticNeuralGraph(Wiring(pairs, num_nodes=7), WiringSpec(7), num_classes=3)
    randomize(model)
    edges = model.executor.conv.edge_index.t().tolist()
    with torch.no_grad():
        w = torch.randn(len(edges)).abs() + 0.5
        w[edges.index([1, 4])] = 0.01
        model.executor.conv.edge_weight.copy_(w)
        # a node without input outputs conv(gelu(beta)): zero for a norm shift beta = 0
        level = [g.tolist() for g in model.executor.groups].index([2, 4])
        model.executor.node_ops[level].norm.bias[1] = 0.0
    model.eval()
    small = model.subgraph(torch.tensor([True, False, True, True, False, True, False]))
    x = torch.randn(4, 2, 5, 5)
    assert torch.allclose(small(x), model(x), atol=1e-6)
    assert small.num_nodes == 4
    assert sorted(map(tuple, small.wiring.edge_index.t().tolist())) == [
        (0, 1),
        (0, 2),
        (1, 2),
        (1, 3),
        (2, 3),
    ]
    assert small.executor.conv.selection.name == "complete"
    assert small.executor.conv.k == 5
    assert small.input_nodes.tolist() == [0] and small.stem_index.tolist() == [0]
    assert small.output_nodes.tolist() == [3]
    assert torch.equal(small.head.weight, model.head.weight[:, :1])
    assert not small.training
    # the kept node ops are the old ones: node 3 (old) is node 2 (new)
    old_op, new_op = model.executor.node_ops[2], small.executor.node_ops[2]
    assert torch.equal(new_op.conv.weight, old_op.conv.weight)


def test_subgraph_of_dead_nodes_keeps_outputs_identical():
    model = small_model(seed=7)
    model.eval()
    conv = model.executor.conv
    active = conv.active_mask()
    indeg = torch.bincount(conv.edge_index[1, active], minlength=model.num_nodes)
    dead = indeg == 0
    dead[model.input_nodes] = False
    assert dead.any(), "the test needs a dead node; change the seed"
    with torch.no_grad():  # zero output without input needs a norm shift <= 0
        for op in model.executor.node_ops:
            op.norm.bias.clamp_(max=0)
    small = model.subgraph(~dead)
    x = torch.randn(2, model.input_nodes.numel(), 4, 4)
    assert torch.allclose(small(x), model(x), atol=1e-5)
    assert small.num_nodes == model.num_nodes - int(dead.sum())
    # the whole graph, compacted to its selected edges, is the same model too
    assert torch.allclose(model.subgraph(torch.ones_like(dead))(x), model(x), atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="needs an acyclic wiring"):
        StaticNeuralGraph(complete(4), WiringSpec(3))
    with pytest.raises(ValueError, match="unknown selection 'best'"):
        StaticNeuralGraph(block_dag([2, 2]), WiringSpec(2, "best"))
    with pytest.raises(ValueError, match="'readout' must be one of"):
        StaticNeuralGraph(block_dag([2, 2]), WiringSpec(2), readout="median")
    with pytest.raises(ValueError, match="'num_classes' must be a positive int"):
        StaticNeuralGraph(block_dag([2, 2]), WiringSpec(2), num_classes=0)
    model = StaticNeuralGraph(block_dag([2, 2]), WiringSpec(2), input_shape=(2, 4, 4))
    with pytest.raises(
        ValueError, match=r"'x' must have shape \[B, 2, 4, 4\] \(got \(1, 3, 4, 4\)\)"
    ):
        model(torch.randn(1, 3, 4, 4))
    free = StaticNeuralGraph(block_dag([2, 2]), WiringSpec(2))
    with pytest.raises(ValueError, match="the stem must return"):
        free(torch.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"'node_mask' must be a BoolTensor of shape \[4\]"):
        model.subgraph(torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one input node"):
        model.subgraph(torch.tensor([False, False, True, True]))


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (
            torch.randn(2, 2, 4, 4, dtype=torch.float64),
            r"dtype torch.float32 \(got torch.float64\)",
        ),
        (torch.zeros(2, 2, 4, 4, dtype=torch.long), r"got torch.int64\); convert it with x.to"),
        (torch.zeros(0, 2, 4, 4), r"at least one sample \[B, \*\] \(got shape \(0, 2, 4, 4\)\)"),
        ([[0.0] * 4] * 2, r"'x' must be a Tensor \[B, \*\] \(got list\)"),
    ],
)
def test_model_input_is_checked_at_the_entry(x, match):
    model = StaticNeuralGraph(block_dag([2, 2]), WiringSpec(2))
    with pytest.raises(ValueError, match=match):
        model(x)
    model.double()
    assert model(torch.randn(2, 2, 4, 4, dtype=torch.float64)).dtype == torch.float64


# ------------------------------------------------------------------ model.executor


def _small_static():
    torch.manual_seed(0)
    wiring = block_dag([2, 3, 3, 2])
    return randomize(StaticNeuralGraph(wiring, WiringSpec(10, node_op="conv1d"), num_classes=3))


def test_executor_has_no_alias():
    model = _small_static()
    assert not hasattr(model, "graph")  # its name up to 0.2, gone: no alias
    assert model.conv is model.executor.conv
    keys = list(model.state_dict())
    assert "executor.conv.edge_weight" in keys and not any(k.startswith("graph.") for k in keys)


@pytest.mark.parametrize("kind", ["centre", "mean"])
def test_readout_adjoint_is_the_transpose_of_its_pool(kind):
    # <P x, h> == <x, P^T h>: the adjoint against autograd's vector-Jacobian product
    from dnwgraph.models._graph import Readout

    readout = Readout(kind)
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    h = torch.randn(3, 2, dtype=torch.float64)
    (vjp,) = torch.autograd.grad(readout.pool(x), x, h)
    grad = torch.ones_like(x)
    assert readout.pool_adjoint_(grad, h) is grad
    torch.testing.assert_close(grad - 1, vjp)
    assert readout.linear and not Readout("max").linear
    with pytest.raises(ValueError, match="not linear"):
        Readout("max").pool_adjoint_(grad, h)


@pytest.mark.parametrize("impl", ["sparse", "dense"])
def test_linear_readout_pooled_before_the_sums_equals_pooling_after(impl):
    # tiny_static reads its 100 output nodes at the centre: the forward pools before summing
    # into them; the plain path (assemble the output rows, then read them) gives the same
    torch.manual_seed(0)
    model = create_model("tiny_static", impl=impl).double()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    y = torch.tensor([1, 4, 7])
    other = copy.deepcopy(model)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    plain = other.read_outputs(other.executor(other.initial_state(x), rows=other.output_nodes))
    ref = F.cross_entropy(plain, y)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("deep", [False, True])
def test_input_nodes_among_the_first_level_start_the_chain_from_that_level(deep):
    # hidden nodes 1 and 3 have no in-edges: the first level is them and the input nodes 0,
    # 2 and 4; the model starts the executor from that level's features (zero at 3 and 4) and
    # equals the plain path from every node's initial state (values and every gradient)
    gen = torch.Generator().manual_seed(7)
    n = 60 if deep else 12
    if deep:  # a path through the hidden nodes and random shortcuts: a pull chain
        u = torch.randint(0, n - 3, (300,), generator=gen)
        v = torch.randint(5, n, (300,), generator=gen)
        pairs = [(a, b) for a, b in zip(u.tolist(), v.tolist(), strict=True) if a < b]
        pairs += [(i, i + 1) for i in range(4, n - 4)] + [(n - 4, t) for t in range(n - 3, n)]
    else:
        pairs = [(0, 5), (1, 5), (3, 6), (4, 6), (2, 7), (5, 8), (6, 8), (7, 9), (8, 9)]
        pairs += [(9, 10), (9, 11), (3, 10), (4, 11)]
    wiring = Wiring(sorted(set(pairs)), n, input_nodes=[0, 2, 4], output_nodes=range(n - 3, n))
    torch.manual_seed(0)
    model = StaticNeuralGraph(wiring, WiringSpec(0.7, node_op="neuron"), num_classes=2).double()
    first = model.executor.groups[0].tolist()
    assert first[:5] == [0, 1, 2, 3, 4] and model._input_rows.tolist() == [0, 2, 4]
    assert (model.executor.chain.pull_bounds is not None) == deep
    seen = []
    model.executor.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[0]))
    other = copy.deepcopy(model)
    x = torch.randn(4, 3, dtype=torch.float64)
    out = model(x)
    out.pow(2).sum().backward()
    state = other.initial_state(x)
    ref = other.read_outputs(other.executor(state, rows=other.output_nodes))
    ref.pow(2).sum().backward()
    assert seen[0] == len(first)  # the first level's rows only
    torch.testing.assert_close(out, ref)
    for (name, p), q in zip(model.named_parameters(), other.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref)


@pytest.mark.parametrize("wiring", ["edges.csv", [(0, 2), (1, 2)], None])
@pytest.mark.parametrize("family", ["static", "discrete", "continuous"])
def test_a_wiring_that_is_not_a_wiring_is_one_type_error(wiring, family):
    """Before: AttributeError: 'str' object has no attribute 'num_nodes'."""
    from dnwgraph import ContinuousTimeNeuralGraph, DiscreteTimeNeuralGraph, WiringSpec

    cls = {
        "static": StaticNeuralGraph,
        "discrete": DiscreteTimeNeuralGraph,
        "continuous": ContinuousTimeNeuralGraph,
    }[family]
    spec = WiringSpec(2, node_op="neuron")
    with pytest.raises(DNWGraphTypeError, match=r"^'wiring' must be a Wiring \(got \w+\); build"):
        cls(wiring, spec)
