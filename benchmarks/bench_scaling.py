"""How WiringConv's time and memory scale with nodes, candidates, selected edges and batch.

Four sweeps around a base point (20,000 nodes, 2,000,000 random-DAG candidates, 100,000
selected edges, 256 features per node = batch x spatial size), one variable at a time.  Each
point runs in a fresh child process that reports the median forward time, the median training
step (forward + backward with the straight-through gradient of every candidate), and the peak
resident memory of a step above its inputs.

Run: ``python benchmarks/bench_scaling.py [--write] [--quick] [--device cuda]`` (``--write``
updates the tables and the figure of ``docs/scaling.md``: ``docs/img/scaling.png``; on a GPU
the ``scaling-cuda`` section and ``docs/img/scaling-cuda.png``; peak memory is then the
device's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from _common import device_name, median_ms, peak_memory_mb, reset_peak_memory, table, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASE = {"num_nodes": 20_000, "num_edges": 2_000_000, "k": 100_000, "features": 256}
SWEEPS = {
    "selected edges k": ("k", [12_500, 25_000, 50_000, 100_000, 200_000, 400_000]),
    "nodes N": ("num_nodes", [5_000, 10_000, 20_000, 40_000, 80_000]),
    "candidates E": ("num_edges", [250_000, 500_000, 1_000_000, 2_000_000, 4_000_000]),
    "features per node F (batch x space)": ("features", [64, 128, 256, 512, 1024]),
}


def child(spec: str) -> None:
    from bench_wiring import random_dag_edges

    from dnwgraph import WiringConv

    p = json.loads(spec)
    device = torch.device(p.get("device", "cpu"))
    torch.manual_seed(0)
    conv = WiringConv(random_dag_edges(p["num_nodes"], p["num_edges"]), p["k"]).to(device)
    x = torch.randn(p["num_nodes"], p["features"], device=device, requires_grad=True)
    g = torch.randn(p["num_nodes"], p["features"], device=device)
    opt = torch.optim.SGD(conv.parameters(), lr=1e-6)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (conv(x) * g).sum().backward()
        opt.step()

    if device.type == "cuda":  # the device's own peak
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
        step()
        peak = torch.cuda.max_memory_allocated(device) / 2**20 - base
    else:
        base = reset_peak_memory()
        step()
        peak = peak_memory_mb() - base

    def forward() -> None:
        with torch.no_grad():
            conv.edge_weight.add_(1e-7)  # a changed weight: selection + sparse matrix rebuilt
            conv(x)

    repeat = p.get("repeat", 7)
    result = {
        "forward": median_ms(forward, repeat=repeat),
        "step": median_ms(step, repeat=repeat),
        "peak_mb": peak,
    }
    print(json.dumps(result))


def measure(point: dict[str, int]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(point)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(results: dict[str, list[tuple[int, dict[str, float]]]], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.4))
    for ax, (label, points) in zip(axes, results.items(), strict=True):
        xs = [v for v, _ in points]
        ax.loglog(xs, [r["step"] for _, r in points], "o-", label="training step (ms)")
        ax.loglog(xs, [r["forward"] for _, r in points], "s-", label="forward (ms)")
        ax.loglog(xs, [max(r["peak_mb"], 1e-1) for _, r in points], "^--", label="peak MB")
        ax.set_xlabel(label)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "WiringConv scaling (base: N=20k, E=2M, k=100k, F=256; one variable at a time)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/scaling.md")
    parser.add_argument("--quick", action="store_true", help="three points per sweep")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    results: dict[str, list[tuple[int, dict[str, float]]]] = {}
    sections = []
    for label, (key, values) in SWEEPS.items():
        values = values[1:4] if args.quick else values
        rows, results[label] = [], []
        for v in values:
            r = measure({**BASE, key: v, "device": args.device})
            results[label].append((v, r))
            rows.append([f"{v:,}", r["forward"], r["step"], r["peak_mb"]])
            print(f"{label} = {v:,}: {r}", flush=True)
        sections.append(
            f"**{label}**\n\n"
            + table([key, "forward (ms)", "training step (ms)", "peak memory (MB)"], rows)
        )
    if args.write:
        cpu = torch.device(args.device).type == "cpu"
        image = "scaling.png" if cpu else "scaling-cuda.png"
        plot(results, ROOT / "docs" / "img" / image)
        on = "" if cpu else f" --device {args.device}"
        body = (
            f"Measured on {device_name(args.device)}, torch {torch.__version__}, float32, by "
            f"`python benchmarks/bench_scaling.py --write{on}`.\n\n"
            f"![WiringConv time and memory against each variable](img/{image})\n\n"
            + "\n\n".join(sections)
        )
        section = "scaling-cpu" if cpu else "scaling-cuda"
        write_section(section, body, ROOT / "docs" / "scaling.md")


if __name__ == "__main__":
    main()
