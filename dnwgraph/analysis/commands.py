"""Handlers of ``dnwgraph export``, ``dnwgraph analyze`` and ``dnwgraph plot``.

Each takes the parsed ``argparse.Namespace`` and returns an exit code; a missing or malformed
input raises :class:`~dnwgraph.errors.DNWGraphError` (or an ``OSError``), which
:func:`dnwgraph.cli.main` prints as one ``dnwgraph: error: ...`` line with exit code 2.
"""

from __future__ import annotations

import argparse

from dnwgraph.errors import DNWGraphError


def _shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise DNWGraphError(f"'--input-shape' must be integers like 1,40 (got {text!r})") from None
    if not shape or min(shape) < 1:
        raise DNWGraphError(f"'--input-shape' must be positive integers like 1,40 (got {text!r})")
    return shape


def export(args: argparse.Namespace) -> int:
    from dnwgraph.analysis.export import check_output, to_data
    from dnwgraph.analysis.source import load_source
    from dnwgraph.graph.formats import write_data

    check_output(args.output, args.source)  # refused before the model loads
    data = to_data(load_source(args.source), all_candidates=args.all_candidates)
    path = write_data(data, args.output)
    what = "candidate" if args.all_candidates else "selected"
    print(f"wrote {path}: {data.num_nodes} nodes, {data.num_edges} {what} edges")
    return 0


def analyze(args: argparse.Namespace) -> int:
    from dnwgraph.analysis.report import analyze as run_analysis

    table, report = run_analysis(
        args.source,
        args.output,
        num_random=args.num_random,
        input_shape=_shape(args.input_shape),
        figures=not args.no_figures,
    )
    print(table)
    print(f"\nreport: {report}")
    return 0


def plot(args: argparse.Namespace) -> int:
    from dnwgraph.analysis.plots import plot_run

    for path in plot_run(args.source, args.output):
        print(path)
    return 0
