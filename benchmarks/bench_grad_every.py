"""Cheaper exploration: ``WiringConv(grad_every=n)``, step time and accuracy against n.

With ``grad_every=n`` the backward pass forms the all-candidate straight-through gradient
(a sampled product over every candidate edge) only on every n-th optimizer step and the
selected edges' gradient in between.  Measured:

* **step time**: the mean of 16 consecutive training steps (n divides 16, so every n sees
  the same share of full steps), medians over rounds with the variants interleaved, for
  ``mnist1d_static`` and ``mnist1d_discrete`` (batch 128) and one ``WiringConv`` over a large
  random DAG (20,000 nodes, 2,000,000 candidates, 100,000 selected, ``x`` [20000, 256]);
* **accuracy**: ``mnist1d_static`` trained a few epochs per n on MNIST-1D (4,000 / 1,000
  signals generated in-process; SGD lr 0.1, momentum 0.9, weight decay 1e-4, cosine
  schedule, no gradient clipping, as in the demo; three seeds).

Run: ``python benchmarks/bench_grad_every.py [--write] [--epochs 20] [--seeds 3] [--threads 1]
[--device cuda]`` (``--write`` updates the ``bench_grad_every`` section of
``docs/benchmarks.md``, ``bench_grad_every-cuda`` on a GPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from statistics import median

import torch
import torch.nn.functional as F
from _common import device_name, for_device, table, timed_ms, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_wiring import random_dag_edges  # noqa: E402

from dnwgraph import WiringConv, create_model  # noqa: E402

NS = (1, 2, 4, 8, 16)
CYCLE = 16


def model_steps(name: str, n: int, device: torch.device, batch: int = 128):
    """A closure running one training step of preset ``name`` with ``grad_every=n``."""
    torch.manual_seed(0)
    model = create_model(name, grad_every=n).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *model.input_shape, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def layer_steps(wiring, n: int, device: torch.device, k: int = 100_000, features: int = 256):
    torch.manual_seed(0)
    conv = WiringConv(wiring, k, grad_every=n).to(device)
    opt = torch.optim.SGD(conv.parameters(), lr=1e-6)
    x = torch.randn(wiring.num_nodes, features, device=device, requires_grad=True)
    g = torch.randn(wiring.num_nodes, features, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (conv(x) * g).sum().backward()
        opt.step()

    return step


def cycle_ms(steps: dict[int, object], rounds: int, device: torch.device) -> dict[int, float]:
    """Median over ``rounds`` of the mean step time over a cycle of 16 steps, interleaved."""
    for step in steps.values():
        for _ in range(CYCLE):  # warm-up: plans, caches, allocator
            step()
    times: dict[int, list[float]] = {n: [] for n in steps}
    for _ in range(rounds):
        for n, step in steps.items():

            def cycle(step=step) -> None:
                for _ in range(CYCLE):
                    step()

            times[n].append(timed_ms(cycle, device) / CYCLE)
    return {n: median(v) for n, v in times.items()}


def mnist1d() -> tuple[torch.Tensor, ...]:
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    x, xt = (torch.tensor(data[k], dtype=torch.float32) for k in ("x", "x_test"))
    y, yt = (torch.tensor(data[k]).long() for k in ("y", "y_test"))
    return x, y, xt, yt


def accuracy(n: int, epochs: int, data, device: torch.device, seed: int = 0) -> tuple[float, float]:
    x, y, xt, yt = (t.to(device) for t in data)
    torch.manual_seed(seed)
    model = create_model("mnist1d_static", grad_every=n).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x)).to(device)
        for i in range(0, len(x), 128):
            idx = perm[i : i + 128]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean()) * 100
    return acc, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]

    cases = {
        "mnist1d_static (batch 128)": lambda n: model_steps("mnist1d_static", n, device),
        "mnist1d_discrete (batch 128)": lambda n: model_steps("mnist1d_discrete", n, device),
    }
    if not args.skip_large:
        wiring = random_dag_edges(20_000, 2_000_000)
        cases["WiringConv, 20k nodes, 2M candidates, 100k selected"] = lambda n: layer_steps(
            wiring, n, device
        )
    rows = []
    for label, make in cases.items():
        t = cycle_ms({n: make(n) for n in NS}, args.rounds, device)
        rows.append([label, *(f"{t[n]:.1f} ({t[1] / t[n]:.2f}x)" for n in NS)])
        print(rows[-1], flush=True)
    speed = table(["case", *(f"n={n}" for n in NS)], rows)

    data = mnist1d()
    acc_rows = []
    for n in (1, 4, 16):
        runs = [accuracy(n, args.epochs, data, device, seed) for seed in range(args.seeds)]
        accs = [a for a, _ in runs]
        acc_rows.append(
            [
                n,
                f"{sum(accs) / len(accs):.1f} ({min(accs):.1f}-{max(accs):.1f})",
                f"{median(s for _, s in runs):.1f}",
            ]
        )
        print(acc_rows[-1], flush=True)
    acc_table = table(
        ["grad_every", "test accuracy %, mean (range)", "training time s, median"], acc_rows
    )
    load_end = os.getloadavg()[0]

    cmd = f"python benchmarks/bench_grad_every.py --write --epochs {args.epochs}"
    if args.seeds != 3:
        cmd += f" --seeds {args.seeds}"
    if args.threads != 1:
        cmd += f" --threads {args.threads}"
    if device.type != "cpu":
        cmd += f" --device {args.device}"
    body = (
        f"{device_name(device)}, torch {torch.__version__}; 1-minute load average "
        f"{load_start:.1f} "
        f"at the start and {load_end:.1f} at the end. Command: `{cmd}`.\n\n"
        f"Mean training-step time in ms over a cycle of {CYCLE} steps (speed-up against "
        f"n=1 in brackets), median of {args.rounds} interleaved rounds:\n\n{speed}\n\n"
        f"`mnist1d_static` on MNIST-1D, {args.epochs} epochs per n, seeds 0-{args.seeds - 1} "
        f"(the accuracies compare the variants; the default recipe, no clipping):\n\n"
        f"{acc_table}\n"
    )
    print(body)
    if args.write:
        write_section(for_device("bench_grad_every", device), body)


if __name__ == "__main__":
    main()
