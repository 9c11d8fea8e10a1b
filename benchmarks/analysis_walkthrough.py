"""Train the run that ``docs/analysis.md`` walks through, measure it, and write its numbers.

Trains ``examples/configs/mnist1d_static_analysis.yaml`` into ``--out`` (a finished run there is
read back, not retrained), measures its learned wiring against three random wirings with the
same edges (what ``dnwgraph analyze RUN --input-shape 40`` prints) and writes the table and the
numbers quoted around it between the ``analysis-walkthrough`` markers of the analysis page.

Run: ``python benchmarks/analysis_walkthrough.py --write``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from _common import write_section  # noqa: E402

from dnwgraph import compact, to_networkx  # noqa: E402
from dnwgraph.analysis import (  # noqa: E402
    churn_series,
    load_snapshots,
    model_cost,
    read_metrics_csv,
    wiring_metrics,
)
from dnwgraph.analysis.report import metrics_table  # noqa: E402
from dnwgraph.train import load_checkpoint, load_config, load_model, train  # noqa: E402

CONFIG = ROOT / "examples" / "configs" / "mnist1d_static_analysis.yaml"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "analysis_demo")
    parser.add_argument("--write", action="store_true", help="update docs/analysis.md")
    args = parser.parse_args(argv)
    config = load_config(CONFIG)
    epochs = config.train.epochs
    done = (args.out / "checkpoint.pt").exists() and load_checkpoint(args.out)["epoch"] >= epochs
    if not done:
        train(config, args.out, overwrite=args.out.exists(), progress=False)
    columns = read_metrics_csv(args.out)
    train_s = sum(columns["epoch_time_s"])
    model = load_model(args.out)
    (m,) = wiring_metrics(model, num_random=3)
    cost = model_cost(model, (40,))
    churn = churn_series(load_snapshots(args.out))
    first, last = churn[0], churn[-1]
    r = m.random
    assert r is not None
    body = (
        f"Written by `python benchmarks/analysis_walkthrough.py --write` (the commands above, "
        f"from Python; the training took {train_s / 60:.1f} min in all, sum of epoch times, on "
        f"{os.cpu_count()} CPU cores). The run's `metrics.csv` ends at "
        f"{100 * columns['test_acc'][-1]:.1f}% test accuracy after {epochs} epochs.\n\n"
        + metrics_table(m)
        + f"\n\nWidth per level of the selected graph: {m.width}. Effective size (selected "
        f"edges only, `dnwgraph.count_params` / `count_macs`): {cost['params']:,} parameters, "
        f"{cost['macs']:,} MACs per sample. Edge churn: Jaccard similarity with the previous "
        f"epoch {first['jaccard']:.3f} after epoch {int(first['epoch'])}, "
        f"{last['jaccard']:.3f} after epoch {int(last['epoch'])}; "
        f"{int(sum(row['swapped_in'] for row in churn)):,} edges swapped in over the run.\n\n"
        f"In this run, {m.dead} of {m.num_nodes} nodes are dead (no input reaches "
        f"{m.unreached}, {m.dead_ends} reach no output); random wirings of the same size leave "
        f"{r.dead:.0f} on average. In-degree spread: {m.stats.in_degree_std:.3f} learned, "
        f"{r.in_degree_std:.3f} random; clustering {m.stats.clustering:.3f} learned, "
        f"{r.clustering:.3f} random. The dead nodes are what `compact` removes (section 4)."
    )
    print(body)
    compacted = _compact(model, cost)
    print(compacted)
    if args.write:
        write_section("analysis-walkthrough", body, ROOT / "docs" / "analysis.md")
        write_section("analysis-compact", compacted, ROOT / "docs" / "analysis.md")


def _compact(model: torch.nn.Module, cost: dict[str, int]) -> str:
    """Sizes before and after :func:`dnwgraph.compact`, and the largest output difference on
    256 seeded random inputs."""
    model.eval()
    small = compact(model)
    before, after = to_networkx(model), to_networkx(small)
    small_cost = model_cost(small, (40,))
    x = torch.randn(256, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((small(x) - model(x)).abs().max())
    return (
        f"For the run above (same script): {before.number_of_nodes()} → "
        f"{after.number_of_nodes()} nodes, {before.number_of_edges()} → "
        f"{after.number_of_edges()} edges, {cost['params']:,} → {small_cost['params']:,} "
        f"parameters, {cost['macs']:,} → {small_cost['macs']:,} MACs per sample, largest output "
        f"difference {diff:.1e} on 256 random inputs (float32 summation order)."
    )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
