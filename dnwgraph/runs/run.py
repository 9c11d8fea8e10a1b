"""A training run on disk: :class:`Run`, its metrics table and its wiring snapshots.

A run directory holds::

    config.yaml            the resolved config (:meth:`Run.config`, :meth:`Run.write_config`)
    init.pt                the weights at initialisation
    checkpoint.pt          the latest checkpoint (:mod:`dnwgraph.runs.checkpoint`)
    metrics.csv            one row per epoch, columns :data:`COLUMNS`
    wiring/epoch_NNNN.pt   wiring snapshots (epoch 0 = at initialisation)
    tensorboard/           event files, when enabled

``dnwgraph.train`` writes these files (:meth:`Run.start`, :meth:`Run.save_init`,
:meth:`Run.save_snapshot`, :meth:`Run.save_checkpoint`, :meth:`Run.write_metrics`) and
``dnwgraph.analysis`` reads them, both through this module (and :mod:`~dnwgraph.runs.rundir`
for the names and the rules on replacing a run): neither knows the other.

Every run has a *run id* (32 hex digits, :func:`new_run_id`), written as ``run_id`` at the top
of its ``config.yaml`` and into each of its torch files.  ``init.pt`` and each snapshot are a
record ``{"format", "run_id", <payload>, "checksum"}`` (``format`` ``dnwgraph-init/1`` with
the ``state`` dict, ``dnwgraph-snapshot/1`` with the ``epoch`` and its ``snapshot``, the dict of
:func:`dnwgraph.models.views.check_snapshot`: ``{module: {"edge_index", "edge_weight",
"active", "num_nodes"}}``), checksummed like the checkpoint
(:func:`~dnwgraph.runs.checkpoint.state_digest`), saved with ``torch.save`` and read back with
``torch.load(weights_only=True)``: a damaged file, or one of another run, is refused in one
line (:class:`ForeignFileError` for the latter).  A bare snapshot dict saved by hand is still
read by :func:`load_snapshot` (it has no checksum to check).
"""

from __future__ import annotations

import csv
import io
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dnwgraph._atomic import atomic_write_bytes
from dnwgraph.errors import DNWGraphError
from dnwgraph.models.views import check_snapshot
from dnwgraph.runs.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    new_checkpoint,
    safe_torch_load,
    save_checkpoint,
    state_digest,
)
from dnwgraph.runs.config_file import read_config_file, write_config_file
from dnwgraph.runs.lock import RunLock
from dnwgraph.runs.rundir import (
    CHECKPOINT,
    CONFIG,
    INIT,
    METRICS,
    TENSORBOARD,
    WIRING,
    clear_outputs,
    start_run,
)
from dnwgraph.typing import PathLikeStr

__all__ = [
    "COLUMNS",
    "Run",
    "write_metrics_csv",
    "read_metrics_csv",
    "metrics_columns",
    "snapshot_name",
    "save_tensors",
    "load_snapshot",
    "load_snapshots",
    "new_run_id",
    "ForeignFileError",
    "INIT_FORMAT",
    "SNAPSHOT_FORMAT",
]

INIT_FORMAT = "dnwgraph-init/1"
SNAPSHOT_FORMAT = "dnwgraph-snapshot/1"
#: the key of the run id at the top of ``config.yaml`` (beside the config's sections)
RUN_ID = "run_id"


class ForeignFileError(CheckpointError):
    """A file of the run folder was written by another run (its run id differs)."""


def new_run_id() -> str:
    """A fresh run id: 32 random hex digits.

    Examples:
        >>> len(new_run_id()), new_run_id() != new_run_id()
        (32, True)
    """
    return secrets.token_hex(16)


def _record(fmt: str, run_id: str | None, payload_key: str, payload: Any, **extra: Any) -> dict:
    """A checksummed record: ``{"format", "run_id", **extra, payload_key: payload, "checksum"}``."""
    record = {"format": fmt, "run_id": run_id, **extra, payload_key: payload}
    return {**record, "checksum": state_digest(record)}


def _open_record(obj: Any, fmt: str, path: Path, what: str, run_id: str | None) -> dict:
    """The record ``obj`` read from ``path``, its format, checksum and run id checked.

    Raises:
        CheckpointError: not a record of ``fmt``, or its checksum does not match.
        ForeignFileError: its run id is not ``run_id`` (when both are known).
    """
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"the {what} {str(path)!r} is not a dnwgraph {what} file (expected format {fmt!r}, "
            f"got {got!r}; a file written before its checksum was added, or another file)"
        )
    if obj.get("checksum") != state_digest(obj):
        raise CheckpointError(
            f"the {what} {str(path)!r} is corrupt: its contents do not match its checksum "
            "(the file was damaged after it was written)"
        )
    theirs = obj.get("run_id")
    if run_id is not None and theirs != run_id:
        raise ForeignFileError(
            f"the {what} {str(path)!r} belongs to another run (run id {theirs!r}, this run is "
            f"{run_id!r}): it was copied from another run folder"
        )
    return obj


#: Columns of ``metrics.csv``, in order.
COLUMNS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "lr",
    "selected_edges",
    "swapped_in",
    "swapped_out",
    "no_input_nodes",
    "no_output_nodes",
    "epoch_time_s",
)
#: Columns that hold counts (read back as ``int``).
INT_COLUMNS = frozenset(
    ("epoch", "selected_edges", "swapped_in", "swapped_out", "no_input_nodes", "no_output_nodes")
)


# ------------------------------------------------------------------------------- metrics.csv


def write_metrics_csv(path: PathLikeStr, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (dicts with the :data:`COLUMNS`) to ``path`` atomically.

    Raises:
        KeyError: if a row lacks one of the :data:`COLUMNS`.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "metrics.csv"
        >>> write_metrics_csv(path, [dict.fromkeys(COLUMNS, 1)])
        >>> read_metrics_csv(path)[0]["epoch"], read_metrics_csv(path)[0]["test_acc"]
        (1, 1.0)
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row[k]) for k in COLUMNS})
    atomic_write_bytes(path, buffer.getvalue().encode())


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _number(column: str, text: str | None) -> float | int:
    if text in ("", None):
        return math.nan
    value = float(text)
    return int(value) if column in INT_COLUMNS and value.is_integer() else value


def read_metrics_csv(path: PathLikeStr) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv``: ``{column: number}`` (counts such as ``epoch`` as
    ``int``, empty cells as ``nan``); ``path`` may be the run directory.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no ``epoch`` column, or a non-numeric cell (names the line and column).

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "metrics.csv"
        >>> _ = path.write_text("epoch,test_acc\\n1,0.5\\n2,\\n")
        >>> read_metrics_csv(path)
        [{'epoch': 1, 'test_acc': 0.5}, {'epoch': 2, 'test_acc': nan}]
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: '{path}'")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "epoch" not in reader.fieldnames:
            raise DNWGraphError(f"{path}: expected a header with an 'epoch' column")
        rows = []
        for lineno, row in enumerate(reader, start=2):
            out = {}
            for k, v in row.items():
                try:
                    out[k] = _number(k, v)
                except (TypeError, ValueError):
                    raise DNWGraphError(
                        f"{path} line {lineno}: column {k!r} must be a number (got {v!r})"
                    ) from None
            rows.append(out)
    return rows


def metrics_columns(path: PathLikeStr) -> dict[str, list[float]]:
    """The columns of a run's ``metrics.csv`` as float lists (the rows of
    :func:`read_metrics_csv`, transposed).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: as :func:`read_metrics_csv`, or a file without rows.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "metrics.csv"
        >>> _ = path.write_text("epoch,test_acc\\n1,0.5\\n2,0.75\\n")
        >>> metrics_columns(path)
        {'epoch': [1.0, 2.0], 'test_acc': [0.5, 0.75]}
    """
    rows = read_metrics_csv(path)
    if not rows:
        raise DNWGraphError(f"{path}: no rows")
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


# ------------------------------------------------------------------------ wiring snapshots


def snapshot_name(epoch: int) -> str:
    """The snapshot file of ``epoch``, relative to the run: ``wiring/epoch_NNNN.pt``."""
    return f"{WIRING}/epoch_{epoch:04d}.pt"


def save_tensors(path: PathLikeStr, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a snapshot, the initial weights)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_snapshot(path: PathLikeStr, run_id: str | None = None) -> dict[str, dict[str, Any]]:
    """Load one wiring snapshot ``wiring/epoch_XXXX.pt`` (``torch.load(weights_only=True)``):
    a run's checksummed record (checked, and of the run ``run_id`` when given), or a bare
    snapshot dict saved by hand.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: the file is not a torch file, is damaged (its checksum), or
            (:class:`ForeignFileError`) belongs to another run than ``run_id``.
        ValueError: the snapshot does not follow the snapshot format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"wiring snapshot not found: '{path}'")
    obj = safe_torch_load(path, "wiring snapshot")
    if isinstance(obj, dict) and "format" in obj and "checksum" in obj:
        obj = _open_record(obj, SNAPSHOT_FORMAT, path, "wiring snapshot", run_id)["snapshot"]
    check_snapshot(obj, str(path))
    return obj


def _snapshot_files(run_dir: PathLikeStr) -> list[tuple[int, Path]]:
    out = []
    for f in sorted(Path(run_dir, WIRING).glob("epoch_*.pt")):
        try:
            epoch = int(f.stem.split("_", 1)[1])
        except ValueError:
            raise DNWGraphError(f"{f}: snapshot names must be epoch_XXXX.pt") from None
        out.append((epoch, f))
    return sorted(out, key=lambda t: t[0])


def load_snapshots(run_dir: PathLikeStr) -> list[tuple[int, dict[str, dict[str, Any]]]]:
    """All wiring snapshots of a run, ``[(epoch, snapshot), ...]`` sorted by epoch, each
    checked (:func:`load_snapshot`, against the run id of the run's ``config.yaml``).

    Raises:
        FileNotFoundError: the run has no ``wiring/epoch_*.pt`` file.
        ValueError: a snapshot is malformed, damaged or of another run (see
            :func:`load_snapshot`).

    Examples:
        >>> [epoch for epoch, _ in load_snapshots("runs/demo/dnw")]  # doctest: +SKIP
        [0, 1, 2, 3]
    """
    files = _snapshot_files(run_dir)
    if not files:
        raise FileNotFoundError(f"no wiring snapshots in '{Path(run_dir, WIRING)}'")
    run_id = Run(run_dir).run_id()
    return [(epoch, load_snapshot(f, run_id)) for epoch, f in files]


# ------------------------------------------------------------------------------------ Run


@dataclass(frozen=True)
class Run:
    """A run directory: every path of a run, and every read and write of its files.

    Args:
        path (path): the run directory (``dnwgraph train --out DIR``).

    Examples:
        >>> import tempfile
        >>> run = Run(tempfile.mkdtemp())
        >>> run.snapshot_path(3).relative_to(run.path).as_posix()
        'wiring/epoch_0003.pt'
        >>> run.is_run()
        False
    """

    path: Path

    def __init__(self, path: PathLikeStr) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def init_path(self) -> Path:
        return self.path / INIT

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def wiring_dir(self) -> Path:
        return self.path / WIRING

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD

    def snapshot_path(self, epoch: int) -> Path:
        return self.path / snapshot_name(epoch)

    def is_run(self) -> bool:
        """Whether the folder holds a checkpoint (a run that finished at least one epoch)."""
        return self.checkpoint_path.is_file()

    def config(self) -> dict[str, Any]:
        """The run's ``config.yaml``: the resolved config training wrote, a plain nested dict
        of sections, without the run id (:meth:`run_id`); training checks it again when it
        resumes (:mod:`dnwgraph.train.config` has the schema).

        Raises:
            ValueError: the file is missing, not valid YAML or not a mapping (the message
                names the file).

        Examples:
            >>> import tempfile
            >>> run = Run(tempfile.mkdtemp())
            >>> run.write_config({"train": {"epochs": 2}})
            >>> run.config()
            {'train': {'epochs': 2}}
        """
        raw = read_config_file(self.config_path, "run config")
        raw.pop(RUN_ID, None)
        return raw

    def run_id(self) -> str | None:
        """The run id in ``config.yaml`` (``None``: no readable config, or none in it)."""
        try:
            value = read_config_file(self.config_path, "run config").get(RUN_ID)
        except DNWGraphError:
            return None
        return value if isinstance(value, str) else None

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write ``config`` (a nested dict of plain values; a run's has its ``run_id`` at the
        top, see :meth:`start`) as the run's ``config.yaml``, atomically
        (:mod:`dnwgraph._atomic`).

        Raises:
            TypeError: ``config`` is not a mapping.
        """
        write_config_file(self.config_path, config)

    def metrics(self) -> list[dict[str, float]]:
        """The rows of ``metrics.csv`` (see :func:`read_metrics_csv`)."""
        return read_metrics_csv(self.metrics_path)

    def metrics_columns(self) -> dict[str, list[float]]:
        """The columns of ``metrics.csv`` (see :func:`metrics_columns`)."""
        return metrics_columns(self.metrics_path)

    def snapshots(self) -> list[tuple[int, dict[str, dict[str, Any]]]]:
        """Every wiring snapshot, ``[(epoch, snapshot), ...]`` (see :func:`load_snapshots`)."""
        return load_snapshots(self.path)

    def checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """The checksummed checkpoint (see :func:`~dnwgraph.runs.checkpoint.load_checkpoint`)."""
        return load_checkpoint(self.checkpoint_path, map_location=map_location)

    def load_model(self, map_location: str | torch.device = "cpu") -> nn.Module:
        """The trained model in eval mode (see :func:`~dnwgraph.runs.checkpoint.load_model`)."""
        return load_model(self.path, map_location=map_location)

    def initial_weights(self, run_id: str | None = None) -> dict[str, Any]:
        """The model's state dict at initialisation (``init.pt``, for lottery tickets),
        checked: its format, its checksum, and its run id against ``run_id`` (default: the
        run id in ``config.yaml``).

        Raises:
            CheckpointError: the file is missing, unreadable, damaged, or
                (:class:`ForeignFileError`) of another run.
        """
        if not self.init_path.is_file():
            raise CheckpointError(f"no initial weights at {str(self.init_path)!r}")
        obj = safe_torch_load(self.init_path, "initial weights")
        run_id = self.run_id() if run_id is None else run_id
        state = _open_record(obj, INIT_FORMAT, self.init_path, "initial weights", run_id)["state"]
        if not isinstance(state, dict):
            raise CheckpointError(
                f"{str(self.init_path)!r} holds no state dict (got {type(state).__name__})"
            )
        return state

    def snapshot(self, epoch: int, run_id: str | None = None) -> dict[str, dict[str, Any]]:
        """The wiring snapshot of ``epoch``, checked (:func:`load_snapshot`; its run id against
        ``run_id``, default: the run id in ``config.yaml``)."""
        run_id = self.run_id() if run_id is None else run_id
        return load_snapshot(self.snapshot_path(epoch), run_id)

    def snapshot_files(self) -> list[tuple[int, Path]]:
        """The snapshot files of the run, ``[(epoch, path), ...]`` sorted by epoch."""
        return _snapshot_files(self.path)

    # ------------------------------------------------------------------- written by training

    def start(
        self,
        config: Mapping[str, Any],
        overwrite: bool = False,
        lock: RunLock | None = None,
        run_id: str | None = None,
    ) -> None:
        """Create (or, with ``overwrite``, replace) the run folder, which appears holding its
        ``config.yaml`` (with ``run_id`` at its top, when given) and locked by ``lock``
        (:func:`~dnwgraph.runs.rundir.start_run`).

        Raises:
            RunExistsError: another process created a run there meanwhile.
            RunLockedError: another process is writing the folder.
            DNWGraphError: the folder cannot be created.
        """
        if run_id is not None:
            config = {RUN_ID: run_id, **config}
        start_run(self.path, lambda folder: Run(folder).write_config(config), overwrite, lock)

    def restart(self, config: Mapping[str, Any], run_id: str | None = None) -> None:
        """Delete what the run wrote (checkpoint first), then write ``config`` again (with
        ``run_id``, when given): a run stopped before its first checkpoint starts over."""
        clear_outputs(self.path, keep_config=True, tools=False)
        self.write_config(config if run_id is None else {RUN_ID: run_id, **config})

    def save_init(self, state: Mapping[str, torch.Tensor], run_id: str | None = None) -> None:
        """Write the model's state dict at initialisation (``init.pt``, on the CPU), as a
        checksummed record of the run ``run_id``."""
        cpu = {k: v.detach().cpu() for k, v in state.items()}
        save_tensors(self.init_path, _record(INIT_FORMAT, run_id, "state", cpu))

    def save_snapshot(
        self, epoch: int, snapshot: dict[str, dict[str, Any]], run_id: str | None = None
    ) -> None:
        """Write the wiring snapshot of ``epoch`` (``wiring/epoch_NNNN.pt``), as a
        checksummed record of the run ``run_id``."""
        self.wiring_dir.mkdir(exist_ok=True)
        record = _record(SNAPSHOT_FORMAT, run_id, "snapshot", snapshot, epoch=epoch)
        save_tensors(self.snapshot_path(epoch), record)

    def has_snapshot(self, epoch: int) -> bool:
        return self.snapshot_path(epoch).is_file()

    def save_checkpoint(self, **entries: Any) -> None:
        """Write the checkpoint (``checkpoint.pt``) atomically, with the generators' state and
        a checksum; ``entries`` are those of
        :func:`~dnwgraph.runs.checkpoint.new_checkpoint`."""
        save_checkpoint(self.checkpoint_path, new_checkpoint(**entries))

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Write ``metrics.csv`` (one row per epoch, :data:`COLUMNS`) atomically."""
        write_metrics_csv(self.metrics_path, rows)
