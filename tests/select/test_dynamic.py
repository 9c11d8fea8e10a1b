"""ScheduledSelection in a plain training loop: zero_grad anywhere, any optimizer, exact
resume from a state dict, two processes agreeing on the wiring, and training to accuracy."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from dnwgraph import WiringConv, block_dag
from dnwgraph.models import create_model

METHODS = {
    "dnw_periodic": {"frequency": 2},
    "rigl": {"frequency": 2},
    "set": {"frequency": 2, "seed": 3},
    "gmp": {"end_step": 6, "frequency": 2},
    "snip": {},
    "edge_popup": {"seed": 2},
}


class Tiny(nn.Module):
    def __init__(self, selection: str, **options) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = WiringConv(block_dag([4, 6, 3]), 10, selection, **options)
        self.readout = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x.t(), x.new_zeros(9, x.size(0))])  # node features [13, B]
        for lo, hi in ((4, 10), (10, 13)):  # the block DAG level by level
            h = torch.cat([h[:lo], torch.tanh(self.conv(h)[lo:hi]), h[hi:]])
        return self.readout(h[10:].t())


def batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(8, 4, generator=gen), torch.randint(0, 2, (8,), generator=gen))
        for _ in range(n)
    ]


def train(model, opt, data, zero_grad_first: bool = True, record=True) -> list[torch.Tensor]:
    masks = []
    for x, y in data:
        if zero_grad_first:
            opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if not zero_grad_first:
            opt.zero_grad()
        if record:  # selects for the new weights
            masks.append(model.conv.active_mask().clone())
    return masks


@pytest.mark.parametrize("name", list(METHODS))
def test_zero_grad_before_or_after_gives_the_same_run(name):
    runs = []
    for first in (True, False):
        model = Tiny(name, **METHODS[name])
        opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        runs.append((train(model, opt, batches(9), first), model.state_dict()))
    (masks_a, state_a), (masks_b, state_b) = runs
    assert all(torch.equal(a, b) for a, b in zip(masks_a, masks_b, strict=True))
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    changed = sum(int((a ^ b).sum()) for a, b in zip(masks_a, masks_a[1:], strict=False))
    # the wiring moved (rigl/set: updates at steps 2, 4, ...); snip chose once, before;
    # dnw_periodic, as dnw, keeps its top-k in these 9 steps (tests/models/test_sparsify.py
    # sees it move)
    if name != "dnw_periodic":
        assert changed > 0 if name != "snip" else changed == 0
    assert int(masks_a[-1].sum()) == 10  # the budget (gmp: from its end_step on)


@pytest.mark.parametrize("name", list(METHODS))
def test_resume_from_a_state_dict_continues_exactly(name):
    data = batches(11)
    model = Tiny(name, **METHODS[name])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    reference = train(model, opt, data)
    # interrupted after 4 steps, the new weights not yet selected (rigl: the gradient of
    # step 3 captured and not yet used)
    model = Tiny(name, **METHODS[name])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    train(model, opt, data[:3])
    train(model, opt, data[3:4], record=False)
    if name == "rigl":
        assert model.conv.selection.pending is not None
    saved = copy.deepcopy((model.state_dict(), opt.state_dict()))
    model = Tiny(name, **METHODS[name])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    model.load_state_dict(saved[0])
    opt.load_state_dict(saved[1])
    resumed = train(model, opt, data[4:])
    assert all(torch.equal(a, b) for a, b in zip(reference[4:], resumed, strict=True))
    reference_state = Tiny(name, **METHODS[name]).state_dict()
    assert model.state_dict().keys() == reference_state.keys()


def test_a_deep_copy_hooks_its_own_weights():
    model = Tiny("rigl", frequency=1)
    model(torch.randn(2, 4))
    twin = copy.deepcopy(model)
    train(twin, torch.optim.SGD(twin.parameters(), lr=0.1), batches(3))
    assert twin.conv.selection.pending is None and int(twin.conv.selection.step) == 3
    assert int(model.conv.selection.step) == 0  # the original is untouched


def _ddp_masks(name: str, rank: int) -> torch.Tensor:
    model = Tiny(name, **METHODS[name])
    net = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
    masks = []
    for x, y in batches(7):
        half = slice(4 * rank, 4 * rank + 4)  # each process its half of the batch
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[half]), y[half]).backward()
        opt.step()
        masks.append(model.conv.active_mask().clone())
    return torch.stack(masks)  # DDP is gone before the process group (launch destroys it)


def _ddp_worker(name: str, out: str) -> None:
    from dnwgraph.train.distributed import DistEnv

    env = DistEnv.from_environment()
    torch.save(_ddp_masks(name, env.rank), Path(out) / f"rank{env.rank}.pt")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rigl", "snip", "edge_popup"])
def test_two_processes_agree_with_one(tmp_path, name):
    from dnwgraph.train.launch import launch

    launch(_ddp_worker, 2, name, str(tmp_path))
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(rank0, rank1)
    # the averaged gradient of two halves is the gradient of the whole batch
    model = Tiny(name, **METHODS[name])
    one = torch.stack(train(model, torch.optim.SGD(model.parameters(), 0.2, 0.9), batches(7)))
    assert torch.equal(rank0, one)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHODS))
def test_trains_mnist1d_static_well_above_chance(name):
    from dnwgraph.train.datasets import create_dataset

    splits = create_dataset("mnist1d", num_samples=3000)
    (xs, ys), (xt, yt) = splits.train[:], splits.test[:]
    options = {"gmp": {"end_step": 200, "frequency": 50}, "rigl": {"end_step": 300}}
    # dnw_periodic swaps many edges at each re-selection: at lr 0.1 its loss jumps to 6-17
    # there and the run is chaotic (rounding decides: 0.56 on the dense backend, 0.105 on the
    # sparse one, NaN with frequency 150); docs/methods.md says so. At 0.05 both reach 0.46+
    lr = 0.05 if name == "dnw_periodic" else 0.1
    torch.manual_seed(0)
    model = create_model("mnist1d_static", selection=name, **options.get(name, {}))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):
        idx = torch.randint(0, xs.size(0), (64,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(xs[idx]), ys[idx]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean())
    assert acc > 0.35, acc  # chance: 0.10
    assert int(model.conv.active_mask().sum()) == model.conv.k
