"""The run directory: its layout, its files and the rules for creating and replacing it.

``dnwgraph.train`` writes a run and ``dnwgraph.analysis`` reads it, both through this package,
which sits below both of them (they never import each other).
"""

from dnwgraph.runs.checkpoint import CheckpointError, load_checkpoint, load_model, safe_torch_load
from dnwgraph.runs.run import (
    COLUMNS,
    Run,
    load_snapshot,
    load_snapshots,
    metrics_columns,
    read_metrics_csv,
    write_metrics_csv,
)
from dnwgraph.runs.rundir import RunExistsError, is_run_dir

__all__ = [
    "Run",
    "COLUMNS",
    "read_metrics_csv",
    "metrics_columns",
    "write_metrics_csv",
    "load_snapshot",
    "load_snapshots",
    "load_checkpoint",
    "load_model",
    "safe_torch_load",
    "CheckpointError",
    "RunExistsError",
    "is_run_dir",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
