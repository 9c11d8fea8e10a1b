"""WiringConv(grad_every=n): the all-candidate gradient every n-th optimizer step."""

import copy

import pytest
import torch

from dnwgraph import WiringConv, block_dag, create_model


def sgd_steps(conv, steps, seed=0):
    """Edge gradients and masks of ``steps`` SGD steps on a fixed random regression."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(conv.num_nodes, 6, generator=gen, dtype=torch.float64)
    target = torch.randn(conv.num_nodes, 6, generator=gen, dtype=torch.float64)
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (conv(x) - target).square().sum().backward()
        out.append((conv.edge_weight.grad.clone(), conv.active_mask().clone()))
        opt.step()
    return out


def layer(impl="sparse", **kwargs):
    torch.manual_seed(0)
    return WiringConv(block_dag([4, 5, 5, 3]), ratio=15, impl=impl, **kwargs).double()


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_grad_every_one_is_plain_dnw(impl):
    for (a, ma), (b, mb) in zip(
        sgd_steps(layer(impl), 4), sgd_steps(layer(impl, grad_every=1), 4), strict=True
    ):
        assert torch.equal(a, b) and torch.equal(ma, mb)


@pytest.mark.parametrize("impl", ["sparse", "scatter", "dense"])
def test_off_steps_give_selected_edges_only(impl):
    conv = layer(impl, grad_every=3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(conv.num_nodes, 6, generator=gen, dtype=torch.float64)
    target = torch.randn(conv.num_nodes, 6, generator=gen, dtype=torch.float64)
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    for step in range(7):
        full = layer(impl)  # the same weights with the all-candidate gradient
        full.load_state_dict(conv.state_dict())
        (full(x) - target).square().sum().backward()
        opt.zero_grad()
        (conv(x) - target).square().sum().backward()
        grad, mask = conv.edge_weight.grad, conv.active_mask()
        assert conv.all_candidate_grad == (step % 3 == 0)
        assert torch.equal(mask, full.active_mask())
        if step % 3 == 0:
            torch.testing.assert_close(grad, full.edge_weight.grad)
        else:
            assert torch.equal(grad[~mask], torch.zeros_like(grad[~mask]))
            torch.testing.assert_close(grad[mask], full.edge_weight.grad[mask])
            assert full.edge_weight.grad[~mask].abs().sum() > 0  # DNW would have given some
        opt.step()


def test_eval_and_copies_do_not_shift_the_schedule():
    conv = layer(grad_every=2)
    x = torch.randn(conv.num_nodes, 2, dtype=torch.float64)
    conv(x)
    assert conv.all_candidate_grad and conv.weight_updates == 1
    with torch.no_grad():
        conv(x)  # same weights: same selection, same schedule
    assert copy.deepcopy(conv).all_candidate_grad
    conv.to(torch.float64)
    assert conv.all_candidate_grad and conv.weight_updates == 1
    with torch.no_grad():
        conv.edge_weight.mul_(1.5)
    assert not conv.all_candidate_grad and conv.weight_updates == 2


def test_grad_every_through_a_preset_and_errors():
    model = create_model("mnist1d_static", grad_every=4)
    assert model.conv.grad_every == 4 and "grad_every=4" in repr(model.conv)
    with pytest.raises(ValueError, match=r"'grad_every' must be a positive int \(got 0\)"):
        WiringConv(block_dag([2, 2]), ratio=2, grad_every=0)
    # strategies without the straight-through rule never give all candidates a gradient
    assert not WiringConv(block_dag([2, 2]), ratio=2, selection="random").all_candidate_grad
