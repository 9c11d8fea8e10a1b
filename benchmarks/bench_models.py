"""Neural-graph models: the fused sparse level executor vs the same model on the dense layer.

Cases (float32, same process, medians):

* ``tiny_static`` (800 nodes, 254,960 candidates, 32,000 selected edges), batch 64 of CIFAR-10
  shaped input: forward (training mode: the selection is re-chosen because the weights
  changed) and a training step (forward, backward, SGD with momentum), with ``impl="sparse"``
  (one fused CSR matmul per level, SDDMM edge gradient) against ``impl="dense"`` (a dense
  masked N x n_l matrix per level, as in the paper's code), after checking that both give
  the same outputs and edge gradients for the same weights;
* one epoch of 4,000 MNIST-1D shaped samples (batch 128, SGD) for the ``mnist1d_*`` presets.

Run: ``python benchmarks/bench_models.py [--write] [--threads 1 2] [--repeat 7]
[--device cuda]`` (``--write`` updates the ``bench_models`` section of ``docs/benchmarks.md``,
``bench_models-cuda`` on a GPU).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from statistics import median

import torch
from _common import device_name, for_device, table, timed_ms, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnwgraph import create_model  # noqa: E402


def sgd_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x, y) -> None:
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bump(model: torch.nn.Module) -> None:
    """Change the edge weights in place, as an optimizer step does (invalidates the cache)."""
    with torch.no_grad():
        model.conv.edge_weight.mul_(1.0)


def bench_tiny(
    repeat: int, device: torch.device, batch: int = 64
) -> tuple[list[list[object]], float, float]:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    models = {
        impl: create_model("tiny_static", impl=impl).to(device) for impl in ("sparse", "dense")
    }
    models["dense"].load_state_dict(models["sparse"].state_dict())
    # equal outputs and edge gradients for equal weights
    outs, grads = [], []
    for model in models.values():
        out = model(x)
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append(model.conv.edge_weight.grad.clone())
        model.zero_grad()
    out_err = float((outs[0] - outs[1]).abs().max())
    grad_err = float((grads[0] - grads[1]).abs().max())

    # Interleave the two variants so that a change of load on a shared machine hits both.
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in models.items()}
    fwd: dict[str, list[float]] = {k: [] for k in models}
    step: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(repeat + 2):
        for impl, model in models.items():
            bump(model)
            with torch.no_grad():
                fwd[impl].append(timed_ms(lambda model=model: model(x), device))
            step[impl].append(timed_ms(lambda m=model, o=opts[impl]: sgd_step(m, o, x, y), device))
    med = {k: (median(fwd[k][2:]), median(step[k][2:])) for k in models}
    rows = []
    for impl, (f, s) in med.items():
        speed_f, speed_s = med["dense"][0] / f, med["dense"][1] / s
        rows.append([f"tiny_static, impl={impl!r}", f, s, f"{speed_f:.2f}x", f"{speed_s:.2f}x"])
    return rows, out_err, grad_err


def bench_epochs(device: torch.device, epochs: int = 3) -> list[list[object]]:
    rows = []
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 40, generator=gen).to(device)
    y = torch.randint(0, 10, (4000,), generator=gen).to(device)
    for name in ("mnist1d_static", "mnist1d_discrete", "mnist1d_continuous"):
        torch.manual_seed(0)
        model = create_model(name).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        times = []
        for _ in range(epochs):

            def epoch(model=model, opt=opt) -> None:
                for i in range(0, 4000, 128):
                    sgd_step(model, opt, x[i : i + 128], y[i : i + 128])

            times.append(timed_ms(epoch, device) / 1e3)
        rows.append([name, min(times), sorted(times)[len(times) // 2]])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    load_start = os.getloadavg()[0]
    tiny_rows, epoch_rows, errs = [], [], []
    for threads in args.threads:
        torch.set_num_threads(threads)
        rows, out_err, grad_err = bench_tiny(args.repeat, device)
        tiny_rows += [[threads, *r] for r in rows]
        errs.append((out_err, grad_err))
        epoch_rows += [[threads, *r] for r in bench_epochs(device, args.epochs)]
    load_end = os.getloadavg()[0]
    out_err = max(e[0] for e in errs)
    grad_err = max(e[1] for e in errs)
    tiny = table(
        ["threads", "model", "forward ms", "train step ms", "forward speed-up", "step speed-up"],
        tiny_rows,
    )
    epochs = table(["threads", "preset", "best epoch s", "median epoch s"], epoch_rows)
    threads = " ".join(str(t) for t in args.threads)
    on = "" if device.type == "cpu" else f" --device {args.device}"
    body = (
        f"{device_name(device)} (thread counts below), torch {torch.__version__}; 1-minute load "
        f"average {load_start:.1f} at the start and {load_end:.1f} at the end (other jobs "
        f"shared the 2 cores: read ratios, not absolute times). Command: "
        f"`python benchmarks/bench_models.py --write --threads {threads}{on}`.\n\n"
        f"`tiny_static`, batch 64 of [3, 32, 32]: the fused sparse level executor "
        f"(`impl='sparse'`) against the same model on the dense masked layer (`impl='dense'`), "
        f"interleaved, medians of {args.repeat}; speed-up = dense time / this time. The same "
        f"weights give the same outputs (max |diff| {out_err:.1e}) and edge gradients "
        f"(max |diff| {grad_err:.1e}).\n\n{tiny}\n\n"
        f"One epoch of 4,000 MNIST-1D shaped samples, batch 128, SGD ({args.epochs} epochs; "
        f"the continuous model uses dopri5 with tolerances 1e-3: about 32 function "
        f"evaluations per forward at the start of training):\n\n{epochs}\n"
    )
    print(body)
    if args.write:
        write_section(for_device("bench_models", device), body)


if __name__ == "__main__":
    main()
