"""``dnwgraph demo``: a discovered wiring against a random wiring with the same edges, on MNIST-1D.

Trains ``mnist1d_static`` twice on the generated MNIST-1D (4,000 train / 1,000 test samples),
once with DNW (top-k edges by magnitude, straight-through gradient to every candidate) and once
with a fixed random graph with the same number of edges, prints a comparison table and writes,
under ``runs/demo/`` (``--out``):

* ``dnw/`` and ``random/``: run directories (``config.yaml``, ``checkpoint.pt``,
  ``metrics.csv``, ``wiring/epoch_*.pt`` snapshots, ``figures/``);
* ``wiring.graphml``: the discovered wiring (selected edges with their weights);
* ``summary.md``: the comparison table.

Running the demo again replaces ``dnw/``, ``random/``, ``wiring.graphml`` and ``summary.md`` in
the output folder, by design.

The demo trains (:mod:`dnwgraph.train`) and then draws and exports (:mod:`dnwgraph.analysis`),
so it sits above both, beside the CLI.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from dnwgraph._atomic import atomic_write_bytes
from dnwgraph.analysis import save_wiring
from dnwgraph.analysis.plots import plot_run
from dnwgraph.errors import DNWGraphError
from dnwgraph.runs.checkpoint import load_model
from dnwgraph.runs.rundir import check_new_run
from dnwgraph.train.config import ModelSection, TrainConfig, load_config
from dnwgraph.train.loop import train
from dnwgraph.typing import PathLikeStr

__all__ = ["run_demo", "demo_command", "DEMO_EPOCHS"]

#: Default epochs per run: both runs, the GraphML file and the figures finish in a few minutes
#: on 2 CPU cores (see docs/training.md for the measured time).  20 epochs is the budget of
#: the robustness benchmark (docs/results.md), whose gaps the demo then shows on one seed.
DEMO_EPOCHS = 20
GRAPHS = {"dnw": "DNW (discovered wiring)", "random": "random graph, same edges"}


def _config(graph: str, epochs: int, seed: int, num_samples: int) -> TrainConfig:

    kwargs = {"selection": graph, **({"seed": seed} if graph == "random" else {})}
    config = load_config(
        None,
        [
            f"train.epochs={epochs}",
            f"train.seed={seed}",
            f"data.num_samples={num_samples}",
        ],
    )
    return replace(config, model=ModelSection(name="mnist1d_static", kwargs=kwargs))


def run_demo(
    out: PathLikeStr = "runs/demo",
    epochs: int | None = None,
    seed: int = 0,
    progress: bool = True,
    num_samples: int = 5000,
) -> dict[str, dict[str, Any]]:
    """Train ``mnist1d_static`` with DNW and with a random graph; write runs, GraphML, figures.

    Args:
        out (path, optional): output folder; its ``dnw/`` and ``random/`` sub-folders are
            replaced. (default: ``"runs/demo"``)
        epochs (int, optional): epochs per run (default: :data:`DEMO_EPOCHS`).
        seed (int, optional): training seed, also the random graph's mask seed. (default: ``0``)
        progress (bool, optional): progress bars and the per-epoch lines. (default: ``True``)
        num_samples (int, optional): MNIST-1D samples generated, split 80/20.
            (default: ``5000``)

    Returns:
        dict: ``{"dnw": row, "random": row}`` with ``test_acc`` (%), ``edges``, ``params``,
        ``time_s`` and ``run_dir``.

    Raises:
        DNWGraphError: if ``epochs`` or ``num_samples`` is out of range, or ``out`` cannot hold
            the runs (a file, or a folder holding other things under ``dnw/`` / ``random/``).

    Examples:
        >>> rows = run_demo("runs/demo", epochs=1, progress=False)  # doctest: +SKIP
        >>> sorted(rows)  # doctest: +SKIP
        ['dnw', 'random']
    """
    import time

    epochs = DEMO_EPOCHS if epochs is None else epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise DNWGraphError(f"'epochs' must be a positive int (got {epochs!r})")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DNWGraphError(f"the demo folder {str(out)!r} is a file, not a folder")
    for graph in GRAPHS:  # both, before the first run starts
        check_new_run(out / graph, overwrite=True)
    rows: dict[str, dict[str, Any]] = {}
    for graph, label in GRAPHS.items():
        if progress:
            print(f"== {label}: mnist1d_static, {epochs} epochs on MNIST-1D", flush=True)
        t0 = time.perf_counter()
        result = train(
            _config(graph, epochs, seed, num_samples),
            out / graph,
            overwrite=True,
            progress=progress,
        )
        last = result["history"][-1]
        rows[graph] = {
            "label": label,
            "test_acc": 100 * last["test_acc"],
            "edges": last["selected_edges"],
            "params": result["params"],
            "time_s": time.perf_counter() - t0,
            "run_dir": out / graph,
        }

    model = load_model(out / "dnw")
    graphml = _save_graphml(model, out / "wiring.graphml")
    figures = _plots([out / g for g in GRAPHS])
    text = _table(rows, epochs)
    atomic_write_bytes(out / "summary.md", (text + "\n").encode())
    print("\n" + text)
    print(f"\ndiscovered wiring: {graphml}")
    print(f"figures: {figures}" if isinstance(figures, str) else f"figures: {len(figures)} files")
    print(f"runs: {out / 'dnw'}, {out / 'random'}")
    return rows


def _save_graphml(model: Any, path: Path) -> Path:

    return Path(save_wiring(model, path))


def _plots(run_dirs: list[Path]) -> list[Path] | str:
    files: list[Path] = []
    try:
        for run_dir in run_dirs:
            files += plot_run(run_dir)
    except ImportError as err:  # matplotlib is a core dependency; this is a broken install
        return f"not written ({err})"
    return files


def _table(rows: dict[str, dict[str, Any]], epochs: int) -> str:
    lines = [
        f"MNIST-1D, mnist1d_static, {epochs} epochs",
        "",
        "| wiring | test acc. (%) | selected edges | parameters | time (s) |",
        "|---|---|---|---|---|",
    ]
    for row in rows.values():
        lines.append(
            f"| {row['label']} | {row['test_acc']:.1f} | {row['edges']:,} | {row['params']:,} | "
            f"{row['time_s']:.0f} |"
        )
    gap = rows["dnw"]["test_acc"] - rows["random"]["test_acc"]
    lines += ["", f"DNW minus random graph: {gap:+.1f} points."]
    return "\n".join(lines)


def demo_command(args: argparse.Namespace) -> int:
    """``dnwgraph demo``: DNW vs a random graph on MNIST-1D (see :func:`run_demo`)."""
    run_demo(out=args.out, epochs=args.epochs, seed=args.seed, progress=not args.quiet)
    return 0
