"""What depth costs: a static model's training step, evaluation and peak memory against the
number of topological levels, at equal nodes and candidates, and the time to build the wiring
(``Wiring(...)`` with its topological levels).

Two wirings per size, with the same nodes, the same number of candidates and 10 input and 10
output nodes: a *random* DAG (every node draws its candidates uniformly from all earlier
nodes, hundreds of levels) and a *layered* one (a block DAG of 6 levels, the paper's shape,
its candidates drawn from the block DAG's edges).  The model is
``StaticNeuralGraph(wiring, WiringSpec(0.05, node_op="neuron"))`` with a linear stem, batch 128, one
thread, SGD; each case runs in a child process (its peak resident memory is its own) and
reports the median of ``--repeat`` steps (and evaluations) after one warm-up, the median of
the first evaluations after ``--repeat`` steps (a new weight state: the candidates' levels,
where repeated evaluations run by the selected edges' levels), and the median of 3 builds of
its wiring; the cases run in turn for ``--rounds`` rounds, and the table gives
the median over the rounds (a change of load on a shared machine hits every case alike).

The official code's computation pattern (a dense ``[N, N]`` masked weight and one 1x1
convolution per level) needs node ranges and conv node ops: it is compared in
``bench_official.py``, not here.

Run: ``python benchmarks/bench_depth.py [--write] [--repeat 3] [--rounds 3] [--quick]``
(``--write`` updates the ``depth`` section of ``docs/benchmarks.md`` and
``docs/img/depth.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import median_ms, peak_memory_mb, reset_peak_memory, table, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = [(320, 27_000), (2_048, 250_000), (8_192, 1_000_000)]
KINDS = ("random", "layered")
QUICK = [(320, 27_000), (1_024, 60_000)]
IO = 10
RATIOS = [
    "nodes",
    "levels",
    "step ratio",
    "eval ratio",
    "eval after a step ratio",
    "compact eval ratio",
]


def edges(kind: str, n: int, e: int, seed: int = 0) -> torch.Tensor:
    """``e`` candidates among ``n`` nodes: ``random`` (u < v uniformly, the first ``IO`` nodes
    without in-edges, the last ``IO`` without out-edges) or ``layered`` (6 blocks)."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "random":
        a = torch.randint(0, n - IO, (3 * e,), generator=gen)
        b = torch.randint(IO, n, (3 * e,), generator=gen)
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
        ok = (lo < hi) & (lo < n - IO) & (hi >= IO)
    else:
        bounds = torch.tensor([0, IO, *torch.linspace(IO, n - IO, 5).long()[1:-1], n - IO, n])
        block = torch.bucketize(torch.arange(n), bounds[1:], right=True)
        a = torch.randint(0, n - IO, (3 * e,), generator=gen)
        b = torch.randint(IO, n, (3 * e,), generator=gen)
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
        ok = block[lo] < block[hi]
    key = torch.unique(lo[ok] * n + hi[ok])
    key = key[torch.randperm(key.numel(), generator=gen)[:e]]
    return torch.stack([key // n, key % n])


def child(spec: str) -> None:
    from dnwgraph import Wiring, WiringSpec, compact
    from dnwgraph.models import StaticNeuralGraph

    kind, n, e, repeat = json.loads(spec)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    edge_index = edges(kind, n, e)

    def build() -> Wiring:
        w = Wiring(edge_index, n, input_nodes=range(IO), output_nodes=range(n - IO, n))
        w.levels()
        return w

    build_ms = median_ms(build, repeat=3, warmup=1)
    w = build()
    model = StaticNeuralGraph(
        w, WiringSpec(0.05, node_op="neuron"), num_classes=10, stem=torch.nn.Linear(20, IO)
    )
    x, y = torch.randn(128, 20), torch.randint(0, 10, (128,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    def evaluate() -> None:
        with torch.no_grad():
            model(x)

    base = reset_peak_memory()
    step_ms = median_ms(step, repeat=repeat, warmup=1)
    peak = peak_memory_mb() - base
    model.eval()
    eval_ms = median_ms(evaluate, repeat=repeat, warmup=1)  # one weight state: repeated

    def evaluate_after_step() -> float:  # a new weight state: its first evaluation
        model.train()
        step()
        model.eval()
        start = time.perf_counter()
        evaluate()
        return (time.perf_counter() - start) * 1e3

    first_ms = statistics.median(evaluate_after_step() for _ in range(repeat))
    small = compact(model)  # the selected wiring alone, levels of the selected edges

    def evaluate_compact() -> None:
        with torch.no_grad():
            small(x)

    compact_ms = median_ms(evaluate_compact, repeat=repeat, warmup=1)
    out = {"levels": w.num_levels, "build": build_ms, "step": step_ms, "eval": eval_ms}
    out |= {"compact": compact_ms, "compact_levels": len(small.executor.node_ops)}
    out["peak"], out["first_eval"] = peak, first_ms
    print(json.dumps(out))


def run_case(kind: str, n: int, e: int, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps([kind, n, e, repeat])]
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(rows: list[list], path: Path) -> None:
    """Training step, evaluation (eval mode, and the compacted model dashed) and peak memory
    against the nodes, random and layered."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, NullLocator

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = [(5, "training step (ms)"), (6, "evaluation (ms)"), (7, "peak memory of a step (MB)")]
    for kind, marker, colour in (("random", "o", "C0"), ("layered", "s", "C1")):
        pts = [r for r in rows if r[0] == kind]
        nodes = [r[1] for r in pts]
        for ax, (col, _) in zip(axes, panels, strict=True):
            ax.plot(nodes, [r[col] for r in pts], marker=marker, color=colour, label=kind)
        axes[1].plot(
            nodes, [r[9] for r in pts], marker=marker, color=colour, linestyle="--",
            label=f"{kind}, compact(model)",
        )  # fmt: skip
    sizes = sorted({r[1] for r in rows})
    for ax, (_, what) in zip(axes, panels, strict=True):
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.xaxis.set_major_locator(NullLocator()), ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.set_xlabel("nodes"), ax.set_ylabel(what), ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    cases = [(kind, n, e) for n, e in (QUICK if args.quick else SIZES) for kind in KINDS]
    runs: dict[tuple, list[dict]] = {case: [] for case in cases}
    for _ in range(args.rounds):  # a change of load hits every case alike
        for case in cases:
            runs[case].append(run_case(*case, args.repeat))
            print(case, runs[case][-1], flush=True)
    rows = []
    for case, done in runs.items():
        med = {key: statistics.median(r[key] for r in done) for key in done[0]}
        rows.append(
            [*case, done[0]["levels"], med["build"], med["step"], med["eval"], med["peak"]]
            + [done[0]["compact_levels"], med["compact"], med["first_eval"]]
        )
    header = [
        "wiring",
        "nodes",
        "candidates",
        "levels",
        "build ms",
        "step ms",
        "eval ms",
        "step peak MB",
        "compact levels",
        "compact eval ms",
        "eval after a step ms",
    ]
    ratios = []
    for n, _ in QUICK if args.quick else SIZES:
        rand, lay = (
            next(r for r in rows if r[0] == k and r[1] == n) for k in ("random", "layered")
        )
        ratios.append(
            [n, rand[3], rand[5] / lay[5], rand[6] / lay[6], rand[10] / lay[10], rand[9] / lay[9]]
        )
    body = (
        f"{table(header, rows)}\n\nrandom / layered, same nodes and candidates:\n\n"
        f"{table(RATIOS, ratios)}"
        "\n\n"
        "![depth](img/depth.png)\n\n"
        f"`python benchmarks/bench_depth.py --write --repeat {args.repeat} "
        f"--rounds {args.rounds}` (one thread, batch 128, 5 % kept, node op `neuron`; each "
        f"case in its own process, the cases in turn for {args.rounds} rounds; medians over "
        f"the rounds of each run's medians of {args.repeat} steps and evaluations after one "
        "warm-up (`eval ms`: repeated evaluations of one weight state; `eval after a step "
        f"ms`: the first evaluation after each of {args.repeat} training steps), and of 3 "
        "builds of the wiring (`Wiring(...)` with its levels); 1-minute "
        f"load average {os.getloadavg()[0]:.1f} at the end)"
    )
    print(body)
    if args.write:
        plot(rows, ROOT / "docs" / "img" / "depth.png")
        write_section("depth", body)


if __name__ == "__main__":
    main()
