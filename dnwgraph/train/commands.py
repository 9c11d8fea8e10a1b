"""Handler of ``dnwgraph train`` (argument parsing: cli.py; ``dnwgraph demo``: dnwgraph.demo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["train_command"]


def _error(message: str) -> int:
    print(f"dnwgraph: error: {message}", file=sys.stderr)
    return 2


def train_command(args: argparse.Namespace) -> int:
    """``dnwgraph train --config FILE [--set k=v ...] [--out DIR] [--resume DIR]``.

    User errors (:class:`~dnwgraph.errors.DNWGraphError`) propagate to :func:`dnwgraph.cli.main`,
    which prints them as one line with exit code 2; a diverged run exits with code 1.
    """
    from dnwgraph.runs.rundir import check_new_run
    from dnwgraph.train.config import load_config
    from dnwgraph.train.loop import TrainingDiverged, train

    if args.resume is not None:
        if args.config is not None or args.set:
            return _error("--resume continues a run with its saved config; drop --config/--set")
        if args.overwrite:
            return _error("--resume continues a run and --overwrite replaces it; choose one")
        out = Path(args.resume)
        config: dict = {}
    else:
        if args.config is None:
            return _error("give --config FILE (or --resume DIR)")
        config = load_config(args.config, args.set)
        out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
        # never replace the folder that holds the config being used
        check_new_run(out, args.overwrite, config_file=args.config)
    options = {
        "resume": args.resume is not None,
        "overwrite": args.overwrite,
        "progress": not args.quiet,
    }
    nproc = getattr(args, "nproc", 1)
    try:
        if nproc > 1:
            from dnwgraph.train.launch import WorkerFailed, launch

            try:
                launch(train, nproc, config, out, **options)
            except WorkerFailed as err:
                print(f"dnwgraph: training stopped: {err}", file=sys.stderr)
                return 1
            result = _summary(out)
        else:
            result = train(config, out, **options)
    except TrainingDiverged as err:
        print(f"dnwgraph: training stopped: {err}", file=sys.stderr)
        return 1
    last = result["history"][-1] if result["history"] else None
    if last is not None:
        print(
            f"done: {result['run_dir']}  test accuracy {100 * last['test_acc']:.2f}%  "
            f"selected edges {last['selected_edges']}  parameters {result['params']}"
        )
    return 0


def _summary(out: Path) -> dict:
    """What :func:`~dnwgraph.train.loop.train` returns, read back from a finished run dir."""
    from dnwgraph.models import count_params
    from dnwgraph.runs import Run

    run = Run(out)
    return {"run_dir": out, "history": run.metrics(), "params": count_params(run.load_model())}
