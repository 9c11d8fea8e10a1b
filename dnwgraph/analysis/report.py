"""The Markdown report of ``dnwgraph analyze`` (what it reads: :mod:`dnwgraph.analysis.source`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dnwgraph._atomic import atomic_write_bytes
from dnwgraph._outputs import check_output_folder
from dnwgraph.analysis.metrics import (
    WiringMetrics,
    churn_series,
    model_cost,
    wiring_metrics,
)
from dnwgraph.analysis.plots import (
    plot_adjacency,
    plot_degree_histogram,
    plot_run,
    plot_wiring,
    save_figure,
)
from dnwgraph.analysis.source import is_pretrained_source, load_source
from dnwgraph.runs.run import Run, load_snapshots
from dnwgraph.runs.rundir import check_not_run_file
from dnwgraph.typing import PathLikeStr


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"
    return str(value)


def metrics_table(m: WiringMetrics) -> str:
    """Markdown table of one wiring's metrics, learned vs random wiring with equal edges."""
    s, r = m.stats, m.random
    rows: list[tuple[str, Any, Any]] = [
        ("nodes", m.num_nodes, m.num_nodes),
        ("candidate edges", m.candidate_edges, m.candidate_edges),
        ("selected edges", m.selected_edges, None if r is None else r.selected_edges),
        ("density (selected / candidates)", m.density, None if r is None else m.density),
        ("depth (longest input→output path)", s.depth, None if r is None else r.depth),
        ("dead nodes (no input or no output)", m.dead, None if r is None else r.dead),
        ("in-degree mean", s.in_degree_mean, None if r is None else r.in_degree_mean),
        ("in-degree std", s.in_degree_std, None if r is None else r.in_degree_std),
        ("out-degree std", s.out_degree_std, None if r is None else r.out_degree_std),
        ("clustering (undirected)", s.clustering, None if r is None else r.clustering),
        ("average path length", s.avg_path_length, None if r is None else r.avg_path_length),
    ]
    lines = ["| metric | learned | random, same edges |", "|---|---|---|"]
    lines += [f"| {name} | {_fmt(a)} | {_fmt(b)} |" for name, a, b in rows]
    return "\n".join(lines)


def analyze(
    source: PathLikeStr,
    out_dir: PathLikeStr | None = None,
    *,
    num_random: int = 3,
    input_shape: Sequence[int] | None = None,
    figures: bool = True,
) -> tuple[str, Path]:
    """Measure a run, checkpoint, snapshot or wiring file and write ``report.md`` (+ figures).

    The report holds, per learned wiring, :func:`~dnwgraph.analysis.metrics.metrics_table`
    (learned vs ``num_random`` random wirings with as many edges), the width per level, the
    effective parameters and MACs (:func:`dnwgraph.count_params` / ``count_macs``; MACs need
    ``input_shape``, one sample without the batch dimension, or a model attribute
    ``input_shape``), the edge churn between snapshots of a run, the figures of
    :func:`~dnwgraph.analysis.plots.plot_run` and ``metrics.json`` with every number.

    Args:
        source: a run folder, checkpoint, pretrained-model folder, snapshot or wiring file (see
            :func:`load_source`).
        out_dir: where to write; default ``RUN/analysis`` (or ``<stem>_analysis`` beside a
            file or a pretrained-model folder).
        num_random: random wirings for the baseline (0 skips it).
        input_shape: one input sample's shape, for MACs.
        figures: write and embed the figures.

    Returns:
        tuple[str, Path]: the summary table (printed by the CLI) and the report's path.

    Raises:
        FileNotFoundError, ValueError: see :func:`load_source`.
        DNWGraphError: ``out_dir`` is a file, lies below a file or inside a run's own files.

    Examples:
        >>> table, report = analyze("runs/demo/dnw", input_shape=(40,))  # doctest: +SKIP
        >>> report.name  # doctest: +SKIP
        'report.md'
    """
    source = Path(source)
    if out_dir is None:
        inside = source.is_dir() and not is_pretrained_source(source)
        out_dir = source / "analysis" if inside else source.with_name(f"{source.stem}_analysis")
    out = check_output_folder(out_dir, "report")
    check_not_run_file(out)
    obj = load_source(source)
    out.mkdir(parents=True, exist_ok=True)
    metrics = wiring_metrics(obj, num_random=num_random)
    lines = [f"# Wiring analysis of `{source}`", ""]
    summary = []
    cost = _cost(obj, input_shape)
    if cost:
        lines += ["Effective size (selected edges only): "
                  + ", ".join(f"{k} {v:,}" for k, v in cost.items()), ""]  # fmt: skip
    for m in metrics:
        title = f"## Wiring `{m.module}`" if m.module else "## Wiring"
        table = metrics_table(m)
        summary.append((f"wiring {m.module!r}\n" if m.module else "") + table)
        lines += [title, "", table, ""]
        if m.width is not None:
            lines += [f"Width per level of the selected graph: {m.width}", ""]
        lines += [
            f"Nodes no input reaches: {m.unreached}; nodes that reach no output: {m.dead_ends}.",
            "",
        ]
    churn = _churn(source)
    if churn:
        first, last = churn[0], churn[-1]
        lines += [
            "## Edge churn",
            "",
            f"{len(churn) + 1} snapshots. Jaccard similarity of the selected edges with the "
            f"previous snapshot: {_fmt(first['jaccard'])} after epoch {int(first['epoch'])}, "
            f"{_fmt(last['jaccard'])} after epoch {int(last['epoch'])}; edges swapped in over "
            f"the run: {int(sum(r['swapped_in'] for r in churn))}.",
            "",
        ]
    if figures:
        paths = _figures(obj, source, out / "figures")
        if paths:
            lines += ["## Figures", ""]
            lines += [f"![{p.stem} ({p.suffix[1:]})](figures/{p.name})" for p in paths]
            lines.append("")
    report = out / "report.md"
    atomic_write_bytes(report, "\n".join(lines).encode("utf-8"))
    doc = {"source": str(source), "cost": cost, "wirings": [m.as_dict() for m in metrics]}
    doc["churn"] = churn
    atomic_write_bytes(out / "metrics.json", json.dumps(doc, indent=1).encode("utf-8"))
    return "\n\n".join(summary), report


def _cost(obj: Any, input_shape: Sequence[int] | None) -> dict[str, int]:
    if not isinstance(obj, torch.nn.Module):
        return {}
    shape = input_shape if input_shape is not None else getattr(obj, "input_shape", None)
    try:
        return model_cost(obj, shape)
    except (ImportError, AttributeError):  # counting not available in this installation
        return {}


def _churn(source: Path) -> list[dict[str, float]]:
    if not (source.is_dir() and Run(source).wiring_dir.is_dir()):
        return []
    try:
        snaps = load_snapshots(source)
    except FileNotFoundError:
        return []
    return churn_series(snaps) if len(snaps) >= 2 else []


def _figures(obj: Any, source: Path, out: Path) -> list[Path]:
    if source.is_dir():
        return plot_run(source, out)
    out.mkdir(parents=True, exist_ok=True)
    return [
        save_figure(lambda ax: plot_wiring(obj, ax), out / "wiring.png", (7.0, 4.5)),
        save_figure(lambda ax: plot_adjacency(obj, ax), out / "adjacency.png", (5.5, 4.5)),
        save_figure(lambda ax: plot_degree_histogram(obj, ax), out / "degrees.png", (5.5, 3.5)),
    ]
