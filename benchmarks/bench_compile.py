"""Eager against ``torch.compile`` on a whole preset: train step and eval forward.

Variants, each on its own copy of the same model (same initial weights), measured in one
process, interleaved (a change of load hits all), medians:

* **train step** (forward, cross-entropy, backward, SGD with momentum; the weights change, so
  the top-k is re-chosen every step): eager, and ``torch.compile(model, fullgraph=True)`` with
  the default Inductor backend;
* **eval forward** (``eval()``, ``no_grad``, fixed weights): eager, compiled with
  ``fullgraph=True``, and compiled with the selection frozen first
  (``conv.plan_cache.freeze()``: no per-call comparison of the weights).

The compiled graphs hold the whole model: the aggregation is one opaque operator
(``dnwgraph::wiring_conv``) that runs the layer's eager code, so Inductor compiles the stem,
the node ops, the readout and the head around it.  Compile time (the first calls, which
trace and compile) is reported separately; the script first checks that eager and compiled
give the same loss and edge gradients.

Run: ``python benchmarks/bench_compile.py [--write] [--threads 2] [--repeat 21]
[--presets mnist1d_static] [--device cuda]`` (``--write`` updates the ``bench_compile``
section of ``docs/interop.md``).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from statistics import median

import torch
import torch.nn.functional as F
from _common import device_name, for_device, table, timed_ms, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnwgraph import create_model  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "interop.md"
BATCH = {"mnist1d_static": 128, "mnist1d_discrete": 128, "tiny_static": 64}


def trainer(model, fn, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(fn(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def agreement(name: str, device: torch.device, x, y) -> tuple[float, float]:
    """Max |loss difference| and max |edge-gradient difference| / max |edge gradient| between
    eager and compiled, for three steps (the selection changes in between)."""
    torch.manual_seed(0)
    eager = create_model(name).to(device)
    compiled = copy.deepcopy(eager)
    fn = torch.compile(compiled, fullgraph=True)
    loss_err = grad_err = 0.0
    steps = trainer(eager, eager, x, y), trainer(compiled, fn, x, y)
    for _ in range(3):
        le, lc = steps[0](), steps[1]()
        ge, gc = eager.conv.edge_weight.grad, compiled.conv.edge_weight.grad
        loss_err = max(loss_err, float((le - lc).abs()))
        grad_err = max(grad_err, float((ge - gc).abs().max() / ge.abs().max().clamp_min(1e-30)))
    return loss_err, grad_err


def bench(name: str, repeat: int, device: torch.device) -> tuple[list[object], tuple]:
    batch = BATCH[name]
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    base = create_model(name).to(device)
    x = torch.randn(batch, *base.input_shape, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    errs = agreement(name, device, x, y)
    torch._dynamo.reset()

    # train step
    eager, compiled = base, copy.deepcopy(base)
    fn = torch.compile(compiled, fullgraph=True)
    steps = {"eager": trainer(eager, eager, x, y), "compiled": trainer(compiled, fn, x, y)}
    compile_train = timed_ms(steps["compiled"], device) + timed_ms(steps["compiled"], device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeat + 2):
        for k, step in steps.items():
            times[k].append(timed_ms(step, device))
    train = {k: median(v[2:]) for k, v in times.items()}

    # eval forward
    eager.eval()
    frozen = copy.deepcopy(eager)
    compiled = copy.deepcopy(eager)
    with torch.no_grad():
        frozen(x)
    for conv in frozen.wiring_convs:
        conv.plan_cache.freeze()
    calls = {
        "eager": eager,
        "compiled": torch.compile(compiled, fullgraph=True),
        "frozen": torch.compile(frozen, fullgraph=True),
    }
    with torch.no_grad():
        compile_eval = [
            timed_ms(lambda f=f: f(x), device) for k, f in calls.items() if k != "eager"
        ]
        ref = eager(x)
        for f in calls.values():
            torch.testing.assert_close(f(x), ref, rtol=1e-4, atol=1e-5)
        times = {k: [] for k in calls}
        for _ in range(repeat + 2):
            for k, f in calls.items():
                times[k].append(timed_ms(lambda f=f: f(x), device))
    evals = {k: median(v[2:]) for k, v in times.items()}
    torch._dynamo.reset()
    row = [
        name,
        batch,
        train["eager"],
        train["compiled"],
        f"{train['eager'] / train['compiled']:.2f}x",
        evals["eager"],
        evals["compiled"],
        evals["frozen"],
        f"{evals['eager'] / min(evals['compiled'], evals['frozen']):.2f}x",
        f"{compile_train / 1e3:.1f} / {max(compile_eval) / 1e3:.1f}",
    ]
    return row, errs


HEADER = [
    "preset",
    "batch",
    "train step, eager (ms)",
    "train step, compiled (ms)",
    "speed-up",
    "eval, eager (ms)",
    "eval, compiled (ms)",
    "eval, compiled + frozen plan (ms)",
    "best speed-up",
    "compile time, train / eval (s)",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/interop.md")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--presets", nargs="+", default=["mnist1d_static"], choices=list(BATCH))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    # compile times of a first run: no kernels or graphs from earlier runs
    torch._inductor.config.force_disable_caches = True

    load_start = os.getloadavg()[0]
    rows, notes = [], []
    for name in args.presets:
        row, errs = bench(name, args.repeat, device)
        rows.append(row)
        notes.append(errs)
        print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    load_end = os.getloadavg()[0]
    loss_err = max(n[0] for n in notes)
    grad_err = max(n[1] for n in notes)
    cmd = "python benchmarks/bench_compile.py --write"
    if device.type == "cpu":
        cmd += f" --threads {args.threads}"
    else:
        cmd += f" --device {args.device}"
    if args.presets != ["mnist1d_static"]:
        cmd += " --presets " + " ".join(args.presets)
    if args.repeat != 21:
        cmd += f" --repeat {args.repeat}"
    threads = f", {args.threads} threads" if device.type == "cpu" else ""
    body = (
        f"{device_name(device).split(',')[0]}{threads}, torch {torch.__version__}; 1-minute "
        f"load average {load_start:.1f} at the start and {load_end:.1f} at the end. Command: "
        f"`{cmd}`.\n\n"
        "Same process, the variants interleaved, medians of "
        f"{args.repeat} after 2 warm-up runs; compiled = `torch.compile(model, "
        "fullgraph=True)` with the default Inductor backend. Compile time: the first two "
        "train steps, and the first eval call, of the compiled variants, with Inductor's "
        "caches off (a first compile). Eager and compiled "
        f"compute the same function: over three training steps the losses differ by at most "
        f"{loss_err:.1e} and the edge gradients by {grad_err:.1e} of their largest value.\n\n"
        f"{table(HEADER, rows)}\n"
    )
    print(body)
    if args.write:
        section = for_device("bench_compile", device)
        write_section(section, body, DOC)


if __name__ == "__main__":
    main()
