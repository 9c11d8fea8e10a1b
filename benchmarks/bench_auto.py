"""``impl="auto"`` against every backend, from a 15-node DAG model to 20,000 nodes.

For each case the training step (forward, cross-entropy or squared loss, backward, SGD with
momentum: the weights change, so the top-k and the plans are rebuilt every step) and then
inference (``eval()``, ``no_grad``: the plans of the fixed weights reused) are timed for
``impl`` in ``sparse``, ``dense``, ``scatter`` and ``auto``, interleaved in one process (a
change of load hits every variant), medians, at each of ``--threads``.  The table gives
``auto``'s time over the fastest backend's: the rule (``dnwgraph/nn/kernels/auto.py``) aims at
1.15 or less everywhere.

Cases:

* ``dag15``: a ``StaticNeuralGraph`` on a 15-node random DAG (neuron node op, batch 128);
* ``mnist1d_static``, ``mnist1d_discrete``, ``tiny_static``: the presets (their batches);
* ``dag2048``: a ``StaticNeuralGraph`` on a 2,048-node random DAG (neuron op, 5 % kept);
* ``conv48``, ``conv144``: one ``WiringConv`` over a 48-node random DAG with 16 features (a
  dense product of 36,864 multiply-adds: ``auto`` trains it densely) and over a 144-node one
  with 128 features (2.65 million, just above the bound: ``auto`` runs it sparse);
* ``conv20k``: one ``WiringConv`` over a 20,000-node random DAG (200k candidates, 64 features);
  the dense backend is left out there (two 20,000 x 20,000 matrices: 3.2 GB).

Run: ``python benchmarks/bench_auto.py [--write] [--threads 1 2] [--repeat 7] [--cases ...]``
(``--write`` updates the ``bench_auto`` section of ``docs/benchmarks.md``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from statistics import median

import torch
import torch.nn.functional as F
from _common import device_name, table, timed_ms, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnwgraph import StaticNeuralGraph, Wiring, WiringConv, WiringSpec, create_model  # noqa: E402

IMPLS = ("sparse", "dense", "scatter", "auto")


def random_dag(n: int, p: float, seed: int = 0) -> Wiring:
    """Every pair u < v a candidate with probability ``p``; inputs: nodes without in-edges."""
    gen = torch.Generator().manual_seed(seed)
    edges = ((torch.rand(n, n, generator=gen) < p).triu(1)).nonzero().t()
    return Wiring(edges, num_nodes=n)


def dag_model(n: int, p: float, ratio: float, impl: str) -> tuple[torch.nn.Module, tuple]:
    torch.manual_seed(0)
    wiring = random_dag(n, p)
    model = StaticNeuralGraph(
        wiring, WiringSpec(ratio, impl=impl, node_op="neuron"), input_shape=(16,)
    )
    x, y = torch.randn(128, 16), torch.randint(0, 10, (128,))
    return model, (x, y)


def preset(name: str, impl: str) -> tuple[torch.nn.Module, tuple]:
    torch.manual_seed(0)
    model = create_model(name, impl=impl)
    shape = (64, 3, 32, 32) if name.startswith("tiny") else (128, 40)
    return model, (torch.randn(*shape), torch.randint(0, 10, (shape[0],)))


def small_conv(n: int, features: int, impl: str) -> tuple[torch.nn.Module, tuple]:
    """One ``WiringConv`` over an ``n``-node random DAG (30 % of the pairs candidates, 10 %
    of those kept): a layer a custom model might hold."""
    torch.manual_seed(0)
    model = torch.nn.Module()
    model.conv = WiringConv(random_dag(n, 0.3), ratio=0.1, impl=impl)
    return model, (torch.randn(n, features), None)


def conv20k(impl: str) -> tuple[torch.nn.Module, tuple]:
    torch.manual_seed(0)
    n, e = 20_000, 200_000
    src = torch.randint(0, n - 1, (e,))
    dst = src + 1 + (torch.rand(e) * (n - 1 - src)).long()
    edges = torch.unique(torch.stack([src, dst]), dim=1)
    model = torch.nn.Module()
    model.conv = WiringConv(Wiring(edges, num_nodes=n), ratio=0.05, impl=impl)
    return model, (torch.randn(n, 64), None)


CASES = {
    "dag15": lambda impl: dag_model(15, 0.5, 0.5, impl),
    "mnist1d_static": lambda impl: preset("mnist1d_static", impl),
    "mnist1d_discrete": lambda impl: preset("mnist1d_discrete", impl),
    "tiny_static": lambda impl: preset("tiny_static", impl),
    "dag2048": lambda impl: dag_model(2048, 0.12, 0.05, impl),
    "conv48": lambda impl: small_conv(48, 16, impl),
    "conv144": lambda impl: small_conv(144, 128, impl),
    "conv20k": conv20k,
}


def make_step(model: torch.nn.Module, batch: tuple):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = batch

    def step() -> None:
        if y is None:
            loss = model.conv(x).square().mean()
        else:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def make_inference(model: torch.nn.Module, batch: tuple):
    x, y = batch
    forward = model.conv if y is None else model

    @torch.no_grad()
    def infer() -> None:
        forward(x)

    return infer


WORKLOADS = {"train step": make_step, "inference": make_inference}

#: A timed run lasts at least this long: a workload faster than that (inference of the small
#: cases takes well under a millisecond) is timed as a loop of calls, divided by their count.
MIN_RUN_MS = 10.0


def calls_of(run, calls: int) -> None:
    for _ in range(calls):
        run()


def measure(case: str, repeat: int) -> dict[str, dict[str, float]]:
    """Per workload, per backend: the median ms of ``repeat`` runs, the backends interleaved
    (inference after the training steps, on the weights they left, in ``eval()`` mode)."""
    impls = [i for i in IMPLS if not (case == "conv20k" and i == "dense")]
    models = {impl: CASES[case](impl) for impl in impls}
    cpu = torch.device("cpu")
    out = {}
    for workload, make in WORKLOADS.items():
        if workload == "inference":
            for model, _ in models.values():
                model.eval()
        runs = {impl: make(*models[impl]) for impl in impls}
        times: dict[str, list[float]] = {impl: [] for impl in impls}
        warm = [timed_ms(run, cpu) for run in runs.values()]  # warm-up: plans, allocator
        calls = max(1, math.ceil(MIN_RUN_MS / min(warm)))  # the same count for every backend
        for r in range(repeat):
            # each round starts at the next backend, and a timed loop of several calls follows
            # the same loop untimed: a short workload run right after ``scatter`` (tens of
            # megabytes of messages on conv20k) found its caches cold, 1.2-1.5x its time
            for impl in impls[r % len(impls) :] + impls[: r % len(impls)]:
                run = runs[impl]
                if calls > 1:
                    calls_of(run, calls)
                times[impl].append(timed_ms(lambda r=run, n=calls: calls_of(r, n), cpu) / calls)
        out[workload] = {impl: median(t) for impl, t in times.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    header = ["threads", "case", "workload", *[f"{i} (ms)" for i in IMPLS]]
    header += ["fastest", "auto / fastest"]
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for case in args.cases:
            for workload, ms in measure(case, args.repeat).items():
                best = min((i for i in ms if i != "auto"), key=ms.__getitem__)
                cells = [f"{ms[i]:.2f}" if i in ms else "—" for i in IMPLS]
                rows.append([threads, case, workload, *cells, best, f"{ms['auto'] / ms[best]:.2f}"])
                print(table(header, rows[-1:]).splitlines()[-1], flush=True)
    worst = max(rows, key=lambda r: float(r[-1]))
    within = sum(float(r[-1]) <= 1.15 for r in rows)
    cmd = "python benchmarks/bench_auto.py --write --threads " + " ".join(map(str, args.threads))
    if args.repeat != 7:
        cmd += f" --repeat {args.repeat}"
    if args.cases != list(CASES):
        cmd += " --cases " + " ".join(args.cases)
    body = (
        f"Medians of {args.repeat} interleaved runs in ms, {device_name().split(',')[0]}, "
        f"1-minute load average {os.getloadavg()[0]:.1f} at the end (`{cmd}`). Train step: "
        "forward, loss, backward, SGD with momentum (new plans at every step); inference: "
        "`eval()`, `no_grad`, the weights the training steps left. A workload under "
        f"{MIN_RUN_MS:.0f} ms is timed as a loop of calls (the same count for every backend), "
        "divided by the count, after the same loop untimed.\n\n"
        + table(header, rows)
        + f"\n\n`auto` is within 15 % of the fastest backend in {within} of {len(rows)} rows; "
        f"its worst: {worst[-1]} ({worst[1]}, {worst[2]}, {worst[0]} thread(s)).\n"
    )
    print(body)
    if args.write:
        write_section("bench_auto", body)


if __name__ == "__main__":
    main()
