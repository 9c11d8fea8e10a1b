"""Helpers of the analysis tests: a run folder written by the package's own run writer
(:mod:`dnwgraph.runs`: ``config.yaml``, ``checkpoint.pt``, ``metrics.csv``,
``wiring/epoch_XXXX.pt``), with metrics rows computed from the snapshots they sit beside.
"""

from __future__ import annotations

import matplotlib
import torch

from dnwgraph import create_model
from dnwgraph.runs import Run
from dnwgraph.runs.checkpoint import FORMAT, save_checkpoint
from dnwgraph.runs.run import save_tensors, write_metrics_csv
from dnwgraph.train.metrics import wiring_snapshot, wiring_stats

matplotlib.use("Agg")

MODEL_KWARGS = {"ratio": 0.02}


def snapshot(model: torch.nn.Module) -> dict:
    """The trainer's snapshot of every wiring of ``model``."""
    return wiring_snapshot(model)


def make_run(path, epochs: int = 3, seed: int = 0):
    """A run of ``mnist1d_static`` whose edge weights drift between epochs (a stand-in for
    training), written through the trainer's own writers."""
    torch.manual_seed(seed)
    model = create_model("mnist1d_static", **MODEL_KWARGS)
    config = {
        "model": {"name": "mnist1d_static", "kwargs": MODEL_KWARGS},
        "data": {"name": "mnist1d", "batch_size": 32},
        "optim": {"name": "sgd", "lr": 0.1},
        "schedule": {"name": "cosine"},
        "train": {"epochs": epochs, "seed": seed},
    }
    run = Run(path)
    run.wiring_dir.mkdir(parents=True)
    run.write_config(config)
    save_tensors(run.snapshot_path(0), wiring_snapshot(model))
    _, previous = wiring_stats(model)
    rows = []
    for epoch in range(1, epochs + 1):
        with torch.no_grad():
            w = model.conv.edge_weight
            w.add_(0.3 * w.abs().mean() * torch.randn_like(w))
        save_tensors(run.snapshot_path(epoch), wiring_snapshot(model))
        stats, previous = wiring_stats(model, previous)
        losses = {"train_loss": 2.0 / epoch, "train_acc": 0.2 * epoch}
        losses |= {"test_loss": 2.2 / epoch, "test_acc": 0.18 * epoch, "lr": 0.1}
        rows.append({"epoch": epoch, **losses, **stats, "epoch_time_s": 1.5})
    write_metrics_csv(run.metrics_path, rows)
    save_checkpoint(
        run.checkpoint_path,
        {
            "format": FORMAT,
            "model": {"name": "mnist1d_static", "kwargs": MODEL_KWARGS},
            "model_state": model.state_dict(),
            "optimizer_state": {},
            "scheduler_state": {},
            "epoch": epochs,
            "step": 10 * epochs,
            "rng": {},
            "config": config,
            "history": rows,
        },
    )
    return model.eval()


_RUN: dict = {}


def shared_fake_run(tmp_path_factory) -> tuple:
    """``(run_dir, model)``: one fake run per test session, for every module's ``fake_run``
    fixture (there is no conftest.py here, so that this folder does not shadow another
    folder's ``conftest`` module)."""
    if "run" not in _RUN:
        path = tmp_path_factory.mktemp("runs") / "fake"
        _RUN["run"] = (path, make_run(path))
    return _RUN["run"]
