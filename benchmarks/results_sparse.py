"""Sparse CNN on MNIST-1D: DNW-sparse training vs a fixed random mask at the same density.

A small 1-D CNN (three convolutions with BatchNorm, a linear classifier) is trained three
ways on MNIST-1D (generated with ``mnist1d.data.make_dataset``, nothing downloaded):

* ``dense``: all weights (reference),
* ``dnw``: :func:`dnwgraph.sparsify` at ``--ratio`` (top-k by magnitude per layer every step,
  straight-through gradient to every weight),
* ``random``: a fixed random mask per layer with the same number of weights
  (``torch.nn.utils.prune.random_unstructured``; gradients reach only the kept weights).

Every setting runs over the same seeds (same data, same initial weights per seed); the table
gives the final test accuracy, mean and standard deviation over seeds.

Usage::

    python benchmarks/results_sparse.py            # prints the table
    python benchmarks/results_sparse.py --write    # and updates docs/results.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import table, write_section
from torch import nn
from torch.nn.utils import prune
from tqdm import tqdm

from dnwgraph.models.sparsify import density, sparsify

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def make_data(seed: int = 42) -> tuple[torch.Tensor, ...]:
    """MNIST-1D (4,000 train / 1,000 test sequences of length 40), generated locally."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)
    x, xt = (torch.tensor(data[k], dtype=torch.float32).unsqueeze(1) for k in ("x", "x_test"))
    y, yt = (torch.tensor(data[k], dtype=torch.long) for k in ("y", "y_test"))
    return x, y, xt, yt


def make_cnn(width: int = 64) -> nn.Module:
    """A small 1-D CNN: 1 -> w -> w -> w channels, then a linear classifier."""

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv1d(cin, cout, 5, stride, 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(1, width, 1),
        *block(width, width, 2),
        *block(width, width, 2),
        nn.Flatten(),
        nn.Linear(width * 10, 10),
    )


def random_mask(model: nn.Module, ratio: float, seed: int) -> nn.Module:
    """Fixed random mask keeping ``ratio`` of every conv/linear weight (the baseline)."""
    torch.manual_seed(10_000 + seed)
    for layer in model.modules():
        if isinstance(layer, (nn.Conv1d, nn.Linear)):
            prune.random_unstructured(layer, "weight", amount=1.0 - ratio)
    return model


def train(
    x: torch.Tensor,
    y: torch.Tensor,
    xt: torch.Tensor,
    yt: torch.Tensor,
    mode: str,
    seed: int,
    ratio: float,
    epochs: int,
    lr: float,
) -> tuple[float, float]:
    """Train one model; return (test accuracy in %, density of the conv/linear weights)."""
    torch.manual_seed(seed)
    model = make_cnn()
    if mode == "dnw":
        sparsify(model, ratio)
    elif mode == "random":
        random_mask(model, ratio, seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    steps = epochs * ((len(x) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(128):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item() * 100
        weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
        dens = sum(int((w != 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    if mode == "dnw":
        assert all(abs(d - ratio) < 0.01 for d in density(model).values())
    return acc, dens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.1, help="fraction of weights kept")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="update docs/results.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y, xt, yt = make_data()
    modes = ("dense", "dnw", "random")
    accs: dict[str, list[float]] = {m: [] for m in modes}
    dens: dict[str, float] = {}
    start = time.perf_counter()
    runs = [(m, s) for s in args.seeds for m in modes]
    for mode, seed in tqdm(runs, desc="runs"):
        acc, dens[mode] = train(x, y, xt, yt, mode, seed, args.ratio, args.epochs, args.lr)
        accs[mode].append(acc)
    minutes = (time.perf_counter() - start) / 60
    labels = {
        "dense": "dense (all weights)",
        "dnw": "DNW-sparse (`sparsify`, top-k per layer, straight-through)",
        "random": "fixed random mask (same per-layer density)",
    }
    rows = []
    for mode in modes:
        a = accs[mode]
        sd = statistics.stdev(a) if len(a) > 1 else 0.0
        rows.append(
            (labels[mode], f"{dens[mode]:.3f}", f"{statistics.mean(a):.1f} ± {sd:.1f}",
             ", ".join(f"{v:.1f}" for v in a))
        )  # fmt: skip
    gap = statistics.mean(accs["dnw"]) - statistics.mean(accs["random"])
    body = "\n".join(
        [
            f"Small 1-D CNN (3 conv + BN layers of 64 channels, linear head; "
            f"{sum(p.numel() for p in make_cnn().parameters()):,} parameters) on MNIST-1D "
            f"(4,000 train / 1,000 test, generated), {args.epochs} epochs, SGD "
            f"(momentum 0.9, one-cycle lr {args.lr}, wd 5e-4), batch 128, "
            f"{args.ratio:.0%} of the weights of every conv/linear layer kept. "
            f"Test accuracy (%) at the end of training over seeds {args.seeds} "
            f"(mean ± sample std).",
            "",
            table(["weights", "density", "test acc. (%)", "per seed"], rows),
            "",
            f"DNW-sparse minus random mask: {gap:+.1f} points. "
            f"Measured on {torch.get_num_threads()} CPU thread(s) in {minutes:.1f} min with "
            f"`python benchmarks/results_sparse.py --write`.",
        ]
    )
    print(body)
    if args.write:
        write_section("results-sparse", body, path=RESULTS)


if __name__ == "__main__":
    main()
