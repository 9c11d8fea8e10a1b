"""Helpers of the analysis tests: a wiring snapshot and a fake run folder that follows the
run-dir contract (``config.yaml``, ``checkpoint.pt``, ``metrics.csv``, ``wiring/epoch_XXXX.pt``).
"""

from __future__ import annotations

import csv

import matplotlib
import torch
import yaml

from dnwgraph import create_model

matplotlib.use("Agg")

COLUMNS = (
    "epoch,train_loss,train_acc,test_loss,test_acc,lr,selected_edges,swapped_in,swapped_out,"
    "no_input_nodes,no_output_nodes,epoch_time_s"
).split(",")
MODEL_KWARGS = {"ratio": 0.02}


def snapshot(model: torch.nn.Module) -> dict:
    from dnwgraph.nn import WiringConv

    return {
        name: {
            "edge_index": m.edge_index.clone(),
            "edge_weight": m.edge_weight.detach().clone(),
            "active": m.active_mask().clone(),
            "num_nodes": m.num_nodes,
        }
        for name, m in model.named_modules()
        if isinstance(m, WiringConv)
    }


def make_run(path, epochs: int = 3, seed: int = 0):
    """A run of ``mnist1d_static`` whose edge weights drift between epochs (a stand-in for
    training), written exactly as the trainer writes its run folder."""
    torch.manual_seed(seed)
    model = create_model("mnist1d_static", **MODEL_KWARGS)
    config = {
        "model": {"name": "mnist1d_static", "kwargs": MODEL_KWARGS},
        "data": {"name": "mnist1d", "batch_size": 32},
        "optim": {"name": "sgd", "lr": 0.1},
        "schedule": {"name": "cosine"},
        "train": {"epochs": epochs, "seed": seed},
    }
    (path / "wiring").mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save(snapshot(model), path / "wiring" / "epoch_0000.pt")
    rows = []
    for epoch in range(1, epochs + 1):
        with torch.no_grad():
            w = model.conv.edge_weight
            w.add_(0.3 * w.abs().mean() * torch.randn_like(w))
        torch.save(snapshot(model), path / "wiring" / f"epoch_{epoch:04d}.pt")
        rows.append([epoch, 2.0 / epoch, 0.2 * epoch, 2.2 / epoch, 0.18 * epoch, 0.1])
        rows[-1] += [int(model.conv.active_mask().sum()), 5, 5, 0, 0, 1.5]
    with open(path / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    torch.save(
        {
            "format": "dnwgraph-checkpoint/1",
            "model": {"name": "mnist1d_static", "kwargs": MODEL_KWARGS},
            "model_state": model.state_dict(),
            "optimizer_state": {},
            "scheduler_state": {},
            "epoch": epochs,
            "step": 10 * epochs,
            "rng": {},
            "config": config,
        },
        path / "checkpoint.pt",
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
