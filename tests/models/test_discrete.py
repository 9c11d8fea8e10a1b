import pytest
import torch
import torch.nn.functional as F

from dnwgraph import DiscreteTimeNeuralGraph, WiringSpec, complete
from dnwgraph.models.discrete import GraphStep


def hand_step(model, z):
    """One synchronous step written out: Z' = IN(A @ conv(gelu(Z))) with a dense masked A."""
    conv = model.step.conv
    n = model.num_nodes
    mask = conv.active_mask()
    a = torch.zeros(n, n).index_put(
        (conv.edge_index[1, mask], conv.edge_index[0, mask]), conv.edge_weight[mask]
    )
    h = F.conv1d(F.gelu(z).transpose(0, 1), model.step.node_op.conv.weight, padding=1, groups=n)
    h = torch.einsum("vu,bul->bvl", a, h)
    norm = model.step.norm.norm
    eps = model.step.norm.config["eps"]
    return F.instance_norm(h, weight=norm.weight, bias=norm.bias, eps=eps).transpose(0, 1)


def small_model(steps, **kwargs):
    torch.manual_seed(0)
    wiring = complete(6, self_loops=True, input_nodes=[0, 1], output_nodes=[4, 5])
    model = DiscreteTimeNeuralGraph(wiring, WiringSpec(12, node_op="conv1d"), steps=steps, **kwargs)
    with torch.no_grad():
        norm = model.step.norm.norm
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize("steps", [1, 3])
def test_steps_equal_hand_computed_synchronous_updates(steps):
    model = small_model(steps)
    x = torch.randn(3, 2, 7)
    z = torch.zeros(6, 3, 7)
    z[:2] = x.transpose(0, 1)
    for _ in range(steps):
        z = hand_step(model, z)
    expected = model.head(z[[4, 5]].amax(-1).t())  # max readout
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_selection_is_shared_by_the_steps_and_unused_edges_learn():
    model = small_model(steps=4)
    out = model(torch.randn(2, 2, 7))
    out.sum().backward()
    conv = model.step.conv
    grad, active = conv.edge_weight.grad, conv.active_mask()
    assert int(active.sum()) == 12
    assert grad[~active].abs().sum() > 0
    assert conv.plan() is conv.plan()  # one cached plan for all steps


def test_vector_nodes_and_errors():
    wiring = complete(5, input_nodes=[0, 1], output_nodes=[4])
    model = DiscreteTimeNeuralGraph(wiring, WiringSpec(8, node_op="neuron"), norm="none", steps=2)
    assert model(torch.randn(3, 2)).shape == (3, 10)
    with pytest.raises(ValueError, match="'norm' must be 'none' for the node op 'neuron'"):
        DiscreteTimeNeuralGraph(wiring, WiringSpec(8, node_op="neuron"))
    with pytest.raises(ValueError, match="readout='mean' of instance-normalised node states"):
        DiscreteTimeNeuralGraph(wiring, WiringSpec(8, node_op="conv1d"), readout="mean")
    with pytest.raises(ValueError, match="'steps' must be a positive int"):
        DiscreteTimeNeuralGraph(wiring, WiringSpec(8), steps=0)
    with pytest.raises(ValueError, match="ratio"):
        GraphStep(wiring, WiringSpec(0))


def test_dense_impl_equals_sparse_and_macs_count_every_step():
    from dnwgraph import count_macs

    # with one selected input a node's InstanceNorm cancels its edge weight (scale invariance)
    # and the edge gradient is 0 up to rounding: select enough edges for real gradients
    wiring = complete(6, self_loops=True, input_nodes=[0, 1], output_nodes=[4, 5])
    sparse = DiscreteTimeNeuralGraph(wiring, WiringSpec(30, node_op="conv1d"), steps=3)
    dense = DiscreteTimeNeuralGraph(wiring, WiringSpec(30, impl="dense", node_op="conv1d"), steps=3)
    dense.load_state_dict(sparse.state_dict())
    x = torch.randn(2, 2, 7)
    target = torch.randn(2, 10)
    out_s, out_d = sparse(x), dense(x)
    (out_s * target).sum().backward()
    (out_d * target).sum().backward()
    assert torch.allclose(out_s, out_d, atol=1e-5)
    grad = sparse.conv.edge_weight.grad
    assert grad.abs().max() > 1e-3
    assert torch.allclose(grad, dense.conv.edge_weight.grad, atol=1e-5)
    # per step: 6 nodes x 7 x 3 (conv) + 30 edges x 7 + 6 x 7 (affine norm); head 10 x (2 + 1)
    assert count_macs(sparse, (1, 2, 7)) == 3 * (6 * 7 * 3 + 30 * 7 + 6 * 7) + 10 * 3
