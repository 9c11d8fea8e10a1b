"""dnw_periodic, rigl, set, gmp, snip and edge_popup against their definitions on
hand-computed graphs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dnwgraph import Wiring, WiringConv, block_dag
from dnwgraph.models import create_model
from dnwgraph.select import GMP, create_selection

TARGET = torch.tensor([1, 1, 2, 2, 2, 3])
WEIGHT = [0.1, -0.9, 0.5, -0.4, 0.2, 0.05]


class Host(nn.Module):
    """The part of a layer a selection reads: the weights it is attached to."""

    def __init__(self, weight: list[float], grad_every: int = 1) -> None:
        super().__init__()
        self.edge_weight = nn.Parameter(torch.tensor(weight))
        self.edge_index = torch.stack([torch.zeros_like(TARGET), TARGET])
        self.num_nodes, self.grad_every = 4, grad_every


def attached(name: str, ratio=3, weight=WEIGHT, **options):
    host = Host(weight)
    sel = create_selection(name, ratio, target=TARGET, num_nodes=4, **options)
    sel.attach(host)
    return sel, host.edge_weight


def backward_with(w: torch.Tensor, grad: list[float]) -> None:
    """A backward pass whose gradient for every candidate is ``grad``."""
    (w * torch.tensor(grad)).sum().backward()


def test_dnw_periodic_holds_the_mask_between_choices_and_gives_every_gradient():
    sel, w = attached("dnw_periodic", frequency=2)
    assert sel(w).tolist() == [False, True, True, True, False, False]  # state 0: top-3 |w|
    for state, new in [(1, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]), (2, [1.0, 0.0, 0.0, 0.0, 0.9, 0.0])]:
        assert sel.all_gradients(state)
        backward_with(w, [0.5, 1.0, 0.0, 2.0, -3.0, 0.0])
        # straight-through: every candidate, selected or not, gets its gradient untouched
        assert w.grad.tolist() == [0.5, 1.0, 0.0, 2.0, -3.0, 0.0]
        w.grad = None
        with torch.no_grad():
            w.copy_(torch.tensor(new))  # a new weight state
        if state == 1:  # not a multiple of 2: the old mask, though edge 0 now leads
            assert sel(w).tolist() == [False, True, True, True, False, False]
    # state 2 chooses again: the top-3 of [1, 0, 0, 0, 0.9, 0] (ties to the lower id)
    assert sel(w).tolist() == [True, True, False, False, True, False]
    assert int(sel.step) == 2


def test_dnw_periodic_every_step_is_dnw():
    """Two paths: frequency=1 trains to the same weights and masks as dnw."""
    convs = []
    for name, options in [("dnw", {}), ("dnw_periodic", {"frequency": 1})]:
        torch.manual_seed(0)
        convs.append(WiringConv(block_dag([3, 4, 3]), 6, name, **options))
    opts = [torch.optim.SGD(c.parameters(), lr=0.5, momentum=0.9) for c in convs]
    g = torch.Generator().manual_seed(0)
    masks = set()
    for _ in range(8):
        x = torch.randn(10, 5, generator=g)
        for conv, opt in zip(convs, opts, strict=True):
            opt.zero_grad()
            conv(x).sin().sum().backward()
            opt.step()
        torch.testing.assert_close(convs[0].edge_weight, convs[1].edge_weight)
        assert torch.equal(convs[0].active_mask(), convs[1].active_mask())
        masks.add(tuple(convs[0].active_mask().tolist()))
    assert len(masks) > 1  # the wiring did change


def test_rigl_drops_the_smallest_active_and_grows_the_largest_gradient():
    sel, w = attached("rigl", frequency=1, drop_fraction=1 / 3)
    assert sel(w).tolist() == [False, True, True, True, False, False]  # top-3 |w|
    assert sel.all_gradients(1)  # step 1 updates: the backward of step 0 gives every gradient
    backward_with(w, [0.0, 1.0, 0.0, 0.0, -3.0, 2.0])
    assert w.grad.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # the optimizer: active only
    with torch.no_grad():
        w -= 0.1 * w.grad  # an optimizer step: a new weight state
    # drop 1 of 3: the smallest |w| among the active (edge 3); grow the largest |g| (edge 4)
    assert sel(w).tolist() == [False, True, True, False, True, False]
    assert w.tolist() == pytest.approx([0.1, -1.0, 0.5, -0.4, 0.0, 0.05])  # grown at zero
    assert int(sel.step) == 1 and sel.pending is None
    assert sel(w).tolist() == [False, True, True, False, True, False]  # same state: no update


def test_rigl_schedule_cosine_decay_and_end():
    sel, _ = attached("rigl", frequency=100, end_step=400)
    assert [sel.updates_at(t) for t in (0, 99, 100, 300, 400, 500)] == [
        False,
        False,
        True,
        True,
        False,
        False,
    ]
    assert sel.fraction_at(100) == pytest.approx(0.15 * (1 + math.cos(math.pi / 4)))
    assert [sel.wants_gradients(t) for t in (98, 99, 100)] == [False, True, False]
    assert attached("rigl")[0].fraction_at(10_000) == 0.3  # no end: alpha for ever


def test_rigl_per_node_scope_drops_and_grows_within_each_node():
    sel, w = attached("rigl", 2, scope="per_node", frequency=1, drop_fraction=0.5)
    # node 1: both edges, node 2: 0.5 and -0.4, node 3: its only edge
    assert sel(w).tolist() == [True, True, True, True, False, True]
    backward_with(w, [0.0, 0.0, 0.0, 0.0, 5.0, 0.0])
    with torch.no_grad():
        w += 0.01
    # node 1: drop 1 (0.11), grow back the best of itself; node 2: drop -0.39, grow edge 4
    assert sel(w).tolist() == [True, True, True, False, True, True]


def test_set_drops_like_rigl_and_grows_at_random_seeded():
    def run(seed):
        sel, w = attached("set", frequency=1, drop_fraction=1 / 3, seed=seed)
        sel(w)
        with torch.no_grad():
            w *= 1.5
        return sel(w), w

    mask, w = run(0)
    assert mask[[1, 2]].all() and not mask[3] and int(mask.sum()) == 3  # edge 3 dropped
    grown = int(torch.nonzero(mask & ~torch.tensor([0, 1, 1, 1, 0, 0], dtype=torch.bool)))
    assert w[grown] == 0.0
    assert torch.equal(run(0)[0], mask)  # seeded
    assert len({tuple(run(s)[0].tolist()) for s in range(8)}) > 1


def test_gmp_cubic_schedule_values():
    sel = GMP(2, target=torch.zeros(10, dtype=torch.long), num_nodes=1, end_step=4, frequency=2)
    # k_t = 2 + 8 (1 - t/4)^3 at t = 0, 2, 4; no pruning at odd steps
    assert [sel.kept_at(t) for t in (0, 2, 4, 9)] == [10, 3, 2, 2]
    assert [sel.updates_at(t) for t in range(6)] == [True, False, True, False, True, False]
    late = GMP(2, target=torch.zeros(10, dtype=torch.long), num_nodes=1, begin_step=2, end_step=5)
    assert [late.updates_at(t) for t in (1, 2, 3, 5, 6)] == [False, True, False, True, False]


def test_gmp_prunes_the_smallest_weights_on_schedule():
    target = torch.zeros(10, dtype=torch.long)
    weight = [0.1, -1.0, 0.2, 0.9, -0.3, 0.8, 0.4, -0.7, 0.5, 0.6]
    host = Host(weight)
    sel = GMP(2, target=target, num_nodes=1, end_step=4, frequency=2)
    masks = []
    for _ in range(5):
        masks.append(sel(host.edge_weight).clone())
        with torch.no_grad():
            host.edge_weight[0] += 0.01  # a new weight state (edge 0 stays the smallest)
    assert [int(m.sum()) for m in masks] == [10, 10, 3, 3, 2]
    assert torch.nonzero(masks[2]).view(-1).tolist() == [1, 3, 5]
    assert torch.nonzero(masks[4]).view(-1).tolist() == [1, 3]


def test_snip_chooses_once_by_connection_sensitivity():
    sel, w = attached("snip")
    assert sel(w).all()  # the first step uses every candidate
    backward_with(w, [4.0, 0.1, 1.0, -2.0, 0.0, 1.0])
    assert w.grad.tolist() == [0.0] * 6  # the weights wait at their initial values
    # |w g| = [0.4, 0.09, 0.5, 0.8, 0, 0.05]: edges 0, 2, 3
    chosen = [True, False, True, True, False, False]
    assert sel(w).tolist() == chosen
    w.grad = None
    backward_with(w, [9.0] * 6)
    assert w.grad is None or w.grad.tolist() == [9.0] * 6  # no longer intercepted
    with torch.no_grad():
        w.mul_(-3)
    assert sel(w).tolist() == chosen  # fixed


def test_snip_scores_and_keeps_the_initial_weights_under_weight_decay():
    """The optimizer sees a zero gradient at step 0, but Adam's weight decay still moved
    every weight by about its learning rate: SNIP ranked |w1 g| (not |w0 g|) and trained from
    w1 (found by the red team)."""
    sel, w = attached("snip")
    w0 = w.detach().clone()
    opt = torch.optim.Adam([w], lr=0.3, weight_decay=0.1)
    assert sel(w).all()
    backward_with(w, [4.0, 0.1, 1.0, -2.0, 0.0, 1.0])
    opt.step()
    assert not torch.equal(w.detach(), w0)  # decayed: [0.1 - 0.3, ...] changes the ranking
    assert sel(w).tolist() == [True, False, True, True, False, False]  # |w0 g|, as above
    assert torch.equal(w.detach(), w0)  # training starts from w0


@pytest.mark.parametrize("impl", ["sparse", "dense", "scatter"])
def test_edge_popup_trains_scores_straight_through_and_never_the_weights(impl):
    wiring = block_dag([3, 3, 2])
    conv = WiringConv(wiring, 5, "edge_popup", impl=impl, seed=1)
    w0 = conv.edge_weight.detach().clone()
    assert not conv.edge_weight.requires_grad
    x = torch.randn(8, 4, dtype=torch.float32)
    out = conv(x)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    src, dst = conv.edge_index
    g = (x[src] * grad_out[dst]).sum(1)  # straight-through: every candidate
    s = conv.selection.score
    torch.testing.assert_close(s.grad, torch.sign(s.detach()) * w0 * g)
    mask = conv.active_mask()
    assert torch.equal(mask, conv.selection.topk(s))
    expected = torch.zeros_like(out).index_add_(0, dst[mask], x[src[mask]] * w0[mask, None])
    torch.testing.assert_close(out, expected)
    opt = torch.optim.SGD(conv.parameters(), lr=1.0, weight_decay=0.1, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        conv(torch.randn(8, 4)).pow(2).sum().backward()
        opt.step()
    assert torch.equal(conv.edge_weight, w0) and conv.edge_weight.grad is None


def test_edge_popup_signed_constant():
    conv = WiringConv(block_dag([4, 4, 4]), 8, "edge_popup", signed_constant=True)
    magnitude = conv.edge_weight.abs()
    assert torch.allclose(magnitude, magnitude[0]) and (conv.edge_weight > 0).any()
    assert (conv.edge_weight < 0).any()


@pytest.mark.parametrize("name", ["dnw_periodic", "rigl", "set", "gmp", "snip", "edge_popup"])
def test_every_method_through_a_preset(name):
    fast = {"gmp": {"end_step": 4, "frequency": 2}, "rigl": {"frequency": 2}}
    options = {**fast, "dnw_periodic": {"frequency": 2}}.get(name, {})
    model = create_model("mnist1d_static", selection=name, **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(6):
        model(torch.randn(16, 40)).logsumexp(1).mean().backward()
        opt.step()
        opt.zero_grad()
    conv = model.conv
    assert conv.selection.name == name and int(conv.active_mask().sum()) == conv.k


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match=r"selection 'rigl' has no option 'alpha' \(valid: drop"):
        attached("rigl", alpha=0.3)
    with pytest.raises(TypeError, match=r"'frequncy' .* did you mean 'frequency'\?"):
        create_model("mnist1d_static", selection="rigl", frequncy=5)
    with pytest.raises(ValueError, match=r"'end_step' must be after 'begin_step'=5 \(got 5\)"):
        attached("gmp", begin_step=5, end_step=5)
    with pytest.raises(ValueError, match=r"'frequency' must be an int >= 1 \(got 0\)"):
        attached("set", frequency=0)
    with pytest.raises(ValueError, match=r"'frequency' must be an int >= 1 \(got 2.5\)"):
        attached("dnw_periodic", frequency=2.5)
    with pytest.raises(ValueError, match=r"'ratio' as an int .* must be in \[1, 6\] \(got 7\)"):
        attached("snip", 7)
    with pytest.raises(ValueError, match=r"'initial_ratio' must keep at least the budget of 3"):
        attached("gmp", initial_ratio=2)
    with pytest.raises(ValueError, match=r"'drop_fraction' must be a float in \[0, 1\]"):
        attached("rigl", drop_fraction=1.5)
    host = Host(WEIGHT)
    host.edge_weight.requires_grad_(False)
    sel = create_selection("rigl", 3, target=TARGET, num_nodes=4)
    with pytest.raises(ValueError, match=r"selection 'rigl' needs the gradient of the edge"):
        sel.attach(host)
    with pytest.raises(ValueError, match=r"'grad_every' applies to dnw and complete"):
        WiringConv(Wiring([(0, 1), (0, 2)]), 1, "snip", grad_every=2)
