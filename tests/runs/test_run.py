"""The run format: one writer, one reader, used by training and analysis alike."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dnwgraph import Wiring, WiringConv
from dnwgraph.errors import DNWGraphError
from dnwgraph.runs import Run
from dnwgraph.runs.run import (
    COLUMNS,
    load_snapshot,
    load_snapshots,
    metrics_columns,
    read_metrics_csv,
    save_tensors,
    write_metrics_csv,
)
from dnwgraph.train.metrics import wiring_snapshot


def _rows(n: int) -> list[dict]:
    return [
        {c: (e if c in ("epoch", "selected_edges") else 0.5 * e) for c in COLUMNS}
        | {"swapped_in": 0, "swapped_out": 0, "no_input_nodes": 1, "no_output_nodes": 2}
        for e in range(1, n + 1)
    ]


def test_metrics_round_trip_rows_and_columns(tmp_path: Path) -> None:
    rows = _rows(3)
    write_metrics_csv(tmp_path / "metrics.csv", rows)
    assert read_metrics_csv(tmp_path / "metrics.csv") == rows
    assert read_metrics_csv(tmp_path) == rows  # the run folder works too
    cols = metrics_columns(tmp_path)
    assert list(cols) == list(COLUMNS)
    assert cols["epoch"] == [1.0, 2.0, 3.0] and cols["test_acc"] == [0.5, 1.0, 1.5]
    assert isinstance(read_metrics_csv(tmp_path)[0]["epoch"], int)


def test_metrics_reader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="metrics file not found"):
        read_metrics_csv(tmp_path / "none.csv")
    (tmp_path / "a.csv").write_text("step,loss\n1,2\n")
    with pytest.raises(DNWGraphError, match="'epoch' column"):
        read_metrics_csv(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("epoch,loss\n1,abc\n")
    with pytest.raises(DNWGraphError, match=r"line 2: column 'loss' must be a number \(got 'abc"):
        read_metrics_csv(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("epoch,loss\n")
    assert read_metrics_csv(tmp_path / "c.csv") == []
    with pytest.raises(DNWGraphError, match="no rows"):
        metrics_columns(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_text("epoch,loss\n1,\n")
    assert math.isnan(read_metrics_csv(tmp_path / "d.csv")[0]["loss"])


def test_snapshots_written_by_the_trainer_writer_read_back(tmp_path: Path) -> None:
    conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=2)
    run = Run(tmp_path)
    run.wiring_dir.mkdir()
    for epoch in (2, 0, 1):
        with torch.no_grad():
            conv.edge_weight.add_(epoch)
        save_tensors(run.snapshot_path(epoch), wiring_snapshot(torch.nn.Sequential(conv)))
    snaps = run.snapshots()
    assert [e for e, _ in snaps] == [0, 1, 2]
    last = load_snapshot(run.snapshot_path(1))
    assert torch.equal(last["0"]["active"], snaps[1][1]["0"]["active"])
    again = load_snapshots(tmp_path)
    assert [e for e, _ in again] == [0, 1, 2]
    assert torch.equal(again[1][1]["0"]["edge_weight"], conv.edge_weight.detach())  # written last


def test_a_malformed_snapshot_is_one_line(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.wiring_dir.mkdir()
    save_tensors(run.snapshot_path(0), {"conv": {"edge_index": torch.zeros(2, 1)}})
    with pytest.raises(DNWGraphError, match="must hold keys"):
        run.snapshots()
    with pytest.raises(FileNotFoundError, match="no wiring snapshots"):
        Run(tmp_path / "nothing").snapshots()


def test_run_names_its_files(tmp_path: Path) -> None:
    run = Run(tmp_path)
    names = [
        p.relative_to(tmp_path).as_posix()
        for p in (run.config_path, run.init_path, run.checkpoint_path, run.metrics_path)
    ]
    assert names == ["config.yaml", "init.pt", "checkpoint.pt", "metrics.csv"]
    assert run.wiring_dir.name == "wiring" and run.tensorboard_dir.name == "tensorboard"
    assert not run.is_run()


def test_run_writes_every_file_it_names(tmp_path: Path) -> None:
    from dnwgraph.runs.checkpoint import CheckpointError, load_checkpoint

    run = Run(tmp_path / "run")
    run.start({"train": {"epochs": 1}})
    assert run.config() == {"train": {"epochs": 1}}
    with pytest.raises(CheckpointError, match=r"no initial weights at .*init\.pt"):
        run.initial_weights()
    run.save_init({"w": torch.ones(2, requires_grad=True)})
    assert torch.equal(run.initial_weights()["w"], torch.ones(2))
    conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=2)
    run.save_snapshot(0, wiring_snapshot(torch.nn.Sequential(conv)))
    assert run.has_snapshot(0) and not run.has_snapshot(1)
    assert [epoch for epoch, _ in run.snapshots()] == [0]
    run.write_metrics([dict.fromkeys(COLUMNS, 2)])
    assert run.metrics()[0]["epoch"] == 2
    run.save_checkpoint(
        model={"name": "m", "kwargs": {}},
        model_state={"w": torch.zeros(1)},
        optimizer_state={},
        scheduler_state={},
        epoch=1,
        step=4,
        config={"train": {"epochs": 1}},
        history=[],
    )
    ckpt = load_checkpoint(run.path)
    assert (ckpt["epoch"], ckpt["step"], ckpt["checksum"].startswith("sha256:")) == (1, 4, True)
    assert sorted(p.name for p in run.path.iterdir()) == [
        "checkpoint.pt",
        "config.yaml",
        "init.pt",
        "metrics.csv",
        "wiring",
    ]
    run.restart({"train": {"epochs": 2}})  # everything but the new config goes
    assert sorted(p.name for p in run.path.iterdir()) == ["config.yaml"]
    assert run.config() == {"train": {"epochs": 2}}
