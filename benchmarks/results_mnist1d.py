"""DNW vs a random graph with the same edges on MNIST-1D: static, discrete and continuous time.

Trains ``examples/configs/mnist1d_<setting>_<dnw|random>.yaml`` for every seed (the random
graph's mask seed follows the seed), prints a table of the final test accuracy (mean ± sample
std over seeds) with parameter and edge counts, and with ``--write`` replaces the
``results-mnist1d`` section of ``docs/results.md``.  Runs go to ``--out`` (default
``runs/results``); a run that was interrupted is resumed, a finished one is read back, so the
script can be stopped and rerun at any time.

    python benchmarks/results_mnist1d.py --settings static --epochs 40 6 6 --out results40 --write
    python benchmarks/results_mnist1d.py --settings static --epochs 15 6 6 --out results \
        --section results-mnist1d-short --write
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from _common import table, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dnwgraph.models import count_params  # noqa: E402
from dnwgraph.train import load_checkpoint, load_config, load_model, train  # noqa: E402

SETTINGS = ("static", "discrete", "continuous")
GRAPHS = ("dnw", "random")
LABEL = {"dnw": "DNW (discovered)", "random": "random graph, same edges"}


def run_one(setting: str, graph: str, seed: int, epochs: int, out: Path) -> dict:
    run_dir = out / f"{setting}_{graph}_s{seed}"
    overrides = [f"train.seed={seed}", f"train.epochs={epochs}"]
    if graph == "random":
        overrides.append(f"model.kwargs.seed={seed}")
    config = load_config(
        ROOT / "examples" / "configs" / f"mnist1d_{setting}_{graph}.yaml", overrides
    )
    done = (run_dir / "checkpoint.pt").exists() and load_checkpoint(run_dir)["epoch"] >= epochs
    if not done:
        t0 = time.perf_counter()
        train(config, run_dir, resume=run_dir.exists(), progress=False)
        print(f"{run_dir.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    history = load_checkpoint(run_dir)["history"]
    model = load_model(run_dir)
    return {
        "clip": config.optim.grad_clip,
        "acc": 100 * history[-1]["test_acc"],
        "edges": history[-1]["selected_edges"],
        "params": count_params(model),
        "time": sum(r["epoch_time_s"] for r in history),
    }


def fmt(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {std:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--epochs",
        nargs=3,
        type=int,
        default=[15, 6, 6],
        metavar=("STATIC", "DISCRETE", "CONTINUOUS"),
        help="epochs per setting (default: 15 6 6; the configs say 40)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "runs" / "results",
        help="run folder (default: runs/results; a bare name goes under runs/)",
    )
    parser.add_argument("--write", action="store_true", help="update docs/results.md")
    parser.add_argument(
        "--section",
        default="results-mnist1d",
        help="section of docs/results.md to replace (default: results-mnist1d)",
    )
    args = parser.parse_args()
    if len(args.out.parts) == 1:
        args.out = ROOT / "runs" / args.out
    epochs = dict(zip(SETTINGS, args.epochs, strict=True))
    start = time.perf_counter()
    rows, gaps, train_s = [], [], 0.0
    for setting in args.settings:
        means = {}
        for graph in GRAPHS:
            res = [run_one(setting, graph, s, epochs[setting], args.out) for s in args.seeds]
            accs = [r["acc"] for r in res]
            train_s += sum(r["time"] for r in res)
            means[graph] = statistics.mean(accs)
            rows.append(
                [
                    setting,
                    epochs[setting],
                    LABEL[graph],
                    res[0]["params"],
                    res[0]["edges"],
                    fmt(accs),
                    ", ".join(f"{a:.1f}" for a in accs),
                ]
            )
        gaps.append(f"{setting} {means['dnw'] - means['random']:+.1f}")
        # the table so far, so that a long sweep leaves its finished settings in the docs
        clip = res[0]["clip"]
        body = _body(args, rows, gaps, (time.perf_counter() - start) / 60, train_s / 60, clip)
        print(body, flush=True)
        if args.write:
            write_section(args.section, body, ROOT / "docs" / "results.md")


def _body(
    args: argparse.Namespace,
    rows: list,
    gaps: list[str],
    minutes: float,
    train_minutes: float,
    clip: float | None,
) -> str:
    clipping = "no gradient clipping" if clip is None else f"gradient norm clipped at {clip}"
    return (
        "MNIST-1D (generated, 4,000 train / 1,000 test), 320 channel-nodes (the presets' node "
        "ops), 2,048 selected edges in every model; SGD (lr 0.1, momentum 0.9, wd 5e-4, "
        f"{clipping}, "
        "cosine per iteration), batch 128; continuous time integrated with Euler, step 0.2. "
        f"Final test accuracy (%), mean ± sample std over seeds {args.seeds}; parameters count "
        "selected edges only.\n\n"
        + table(
            ["setting", "epochs", "graph", "params", "edges", "test acc. (%)", "per seed"], rows
        )
        + f"\n\nDNW minus random graph (points): {', '.join(gaps)}. Measured on "
        f"{torch.get_num_threads()} CPU thread(s) shared with other jobs: the runs trained for "
        f"{train_minutes:.1f} min in all (sum of epoch times); this invocation took "
        f"{minutes:.1f} min (runs already on disk are read back, not retrained). Reproduce with "
        f"`python benchmarks/results_mnist1d.py --epochs {' '.join(map(str, args.epochs))} "
        f"--settings {' '.join(args.settings)} --out {args.out.name} --section {args.section} "
        f"--write` (`--out` relative to `runs/`)."
    )


if __name__ == "__main__":
    main()
