import pytest
import torch
import torch.nn.functional as F

from dnwgraph.nn.node_ops import (
    ChannelNodeOp,
    NeuronNodeOp,
    concat_node_ops,
    create_node_op,
    list_node_ops,
    regroup_node_ops,
)


def randomize(op):
    """Non-trivial affine parameters (the initial ones are 1 and 0)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in op.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return op


def per_node_reference(op, x, order=("norm", "act", "conv")):
    """Each node alone, with torch.nn.functional: the grouped op must match it."""
    outs = []
    for v in range(x.size(0)):
        h = x[v].unsqueeze(1)  # [B, 1, *S]
        for step in order:
            if step == "norm":
                h = F.instance_norm(
                    h,
                    weight=op.norm.weight[v : v + 1],
                    bias=op.norm.bias[v : v + 1],
                    eps=op.config["eps"],
                )
            elif step == "act":
                h = F.gelu(h) if op.config["activation"] == "gelu" else F.relu(h)
            else:
                conv = F.conv1d if x.dim() == 3 else F.conv2d
                h = conv(h, op.conv.weight[v : v + 1], padding=1)
        outs.append(h.squeeze(1))
    return torch.stack(outs)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("order", [("norm", "act", "conv"), ("act", "conv", "norm"), ("conv",)])
def test_grouped_op_equals_per_node_loop(dim, order):
    n, shape = 5, (3, 7) if dim == 1 else (3, 4, 6)
    op = randomize(create_node_op(f"conv{dim}d", n, order=order))
    x = torch.randn(n, *shape, dtype=torch.float32)
    expected = per_node_reference(op, x, order)
    assert torch.allclose(op(x), expected, atol=1e-5)
    assert op(x).shape == x.shape


def test_batch_norm_is_per_node_over_batch_and_space():
    op = create_node_op("conv2d", 3, norm="batch", order=("norm",), eps=1e-5)
    x = torch.randn(3, 4, 5, 5) * 3 + 2
    out = op(x)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.var(dim=(1, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)


def test_no_input_gives_zero_output_and_no_parameter_gradient():
    # A node whose input is identically zero outputs conv(act(beta)) = 0 at beta = 0 (the
    # initial shift) after IN -> GELU -> conv; with a zero output gradient none of its
    # parameters receives a gradient.
    op = create_node_op("conv2d", 2)
    x = torch.randn(2, 3, 4, 4)
    x[1] = 0
    out = op(x)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    out.pow(2).sum().backward()
    assert op.conv.weight.grad[1].abs().sum() == 0
    assert op.norm.weight.grad[1] == 0 and op.norm.bias.grad[1] == 0
    assert op.conv.weight.grad[0].abs().sum() > 0


def test_neuron_op_by_hand():
    op = NeuronNodeOp(3, activation="relu")
    with torch.no_grad():
        op.bias.copy_(torch.tensor([1.0, -1.0, 0.5]))
    x = torch.tensor([[-0.5, 2.0], [0.5, 3.0], [-1.0, 0.0]])
    assert op(x).tolist() == [[0.5, 3.0], [0.0, 2.0], [0.0, 0.5]]
    tanh = create_node_op("neuron", 2, activation="tanh", bias=False)
    assert torch.allclose(tanh(torch.ones(2, 1)), torch.tanh(torch.ones(2, 1)))


@pytest.mark.parametrize("name,shape", [("conv2d", (2, 4, 4)), ("neuron", (2,))])
def test_select_and_concat_copy_the_nodes(name, shape):
    a = randomize(create_node_op(name, 4))
    b = randomize(create_node_op(name, 3))
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    xa, xb = torch.randn(4, *shape), torch.randn(3, *shape)
    merged = concat_node_ops([(a, torch.tensor([3, 0])), (b, torch.tensor([2]))])
    assert merged.num_nodes == 3
    out = merged(torch.stack([xa[3], xa[0], xb[2]]))
    assert torch.allclose(out[:2], a(xa)[[3, 0]], atol=1e-6)
    assert torch.allclose(out[2], b(xb)[2], atol=1e-6)
    assert torch.allclose(a.select([1])(xa[1:2]), a(xa)[1:2], atol=1e-6)


def test_concat_batch_norm_keeps_running_stats():
    op = create_node_op("conv1d", 3, norm="batch")
    op(torch.randn(3, 4, 5) + torch.arange(3.0).view(3, 1, 1))
    part = op.select([2, 0])
    assert torch.equal(part.norm.running_mean, op.norm.running_mean[[2, 0]])
    assert int(part.norm.num_batches_tracked) == 1


def test_registry_and_errors():
    assert {"conv1d", "conv2d", "neuron"} <= set(list_node_ops())
    assert isinstance(create_node_op("conv1d", 2), ChannelNodeOp)
    with pytest.raises(ValueError, match="unknown node op 'conv3d'; choose one of"):
        create_node_op("conv3d", 2)
    with pytest.raises(ValueError, match="'norm' must be one of"):
        create_node_op("conv2d", 2, norm="layer")
    with pytest.raises(ValueError, match="'order' must list distinct steps"):
        create_node_op("conv2d", 2, order=("act", "act"))
    with pytest.raises(ValueError, match="'order' must list distinct steps"):
        create_node_op("conv2d", 2, order=("pool",))
    with pytest.raises(ValueError, match="'kernel_size' must be odd"):
        create_node_op("conv2d", 2, kernel_size=2)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        create_node_op("neuron", 2, activation="swish")
    with pytest.raises(ValueError, match="'num_nodes' must be a positive int"):
        create_node_op("neuron", 0)
    with pytest.raises(ValueError, match=r"'x' must have shape \[n, B, H, W\] with n=2"):
        create_node_op("conv2d", 2)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="cannot concatenate node ops of different kinds"):
        concat_node_ops(
            [
                (create_node_op("conv2d", 2), torch.tensor([0])),
                (create_node_op("conv2d", 2, norm="batch"), torch.tensor([0])),
            ]
        )


def test_channel_node_op_eps_reaches_the_norm():
    from dnwgraph.nn.node_ops import NORM_EPS

    assert ChannelNodeOp(3, dim=1).norm.eps == NORM_EPS
    op = ChannelNodeOp(3, dim=1, eps=0.5, order=("norm",), affine=False)
    assert op.norm.eps == 0.5
    x = torch.randn(3, 4, 10)
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    assert torch.allclose(op(x), (x - mean) / (var + 0.5).sqrt(), atol=1e-6)


def test_channel_node_op_eps_bounds_the_gradient_of_a_silent_node():
    # A node whose input is (almost) zero: the norm's backward divides by sqrt(var + eps).
    x = (1e-4 * torch.randn(1, 2, 10)).requires_grad_()
    grads = {}
    for eps in (1e-5, 0.1):
        op = ChannelNodeOp(1, dim=1, eps=eps, order=("norm",), affine=False)
        (g,) = torch.autograd.grad((op(x) * torch.randn(1, 2, 10)).sum(), x)
        grads[eps] = float(g.abs().max())
    assert grads[0.1] < 10.0 < grads[1e-5]


@pytest.mark.parametrize("eps", [0, -1.0, "1", True])
def test_channel_node_op_bad_eps(eps):
    with pytest.raises(ValueError, match="'eps' must be a positive number"):
        ChannelNodeOp(2, eps=eps)


def test_concat_refuses_an_op_changed_after_it_was_built():
    op = create_node_op("conv1d", 3)
    assert concat_node_ops([(op, torch.tensor([1]))]).num_nodes == 1
    op.act = torch.nn.Tanh()  # its tensors alone cannot say so
    with pytest.raises(ValueError, match="changed after it was built"):
        op.select([0, 2])
    op = create_node_op("conv1d", 3, norm="batch")
    op.norm.eps = 1.0
    with pytest.raises(ValueError, match="changed after it was built"):
        op.select([0])


def test_regroup_gathers_each_node_from_its_op_and_keeps_kinds_apart():
    groups = [torch.tensor([0, 3, 5]), torch.tensor([1, 4]), torch.tensor([2, 6])]
    ops = [randomize(create_node_op("neuron", 3)), randomize(create_node_op("neuron", 2))]
    ops.append(randomize(create_node_op("neuron", 2, activation="tanh")))
    x = torch.randn(7, 4)
    ref = torch.empty(7, 4)
    for op, g in zip(ops, groups, strict=True):
        ref[g] = op(x[g])
    new_groups = [torch.tensor([4, 0]), torch.tensor([5, 1, 3]), torch.tensor([6, 2])]
    for op, g in zip(regroup_node_ops(ops, groups, new_groups), new_groups, strict=True):
        torch.testing.assert_close(op(x[g]), ref[g])
    with pytest.raises(ValueError, match=r"'new_groups\[0\]' mixes node ops of different kinds"):
        regroup_node_ops(ops, groups, [torch.tensor([2, 0])])
    with pytest.raises(ValueError, match=r"'new_groups\[0\]' must hold nodes of 'groups' only"):
        regroup_node_ops(ops, groups, [torch.tensor([7])])
    with pytest.raises(ValueError, match=r"'new_groups\[1\]' must hold at least one node"):
        regroup_node_ops(ops, groups, [torch.tensor([0]), torch.tensor([], dtype=torch.long)])
