"""One real (tiny) training run read back by the analysis: the run-dir contract end to end."""

from __future__ import annotations

import torch

from dnwgraph.analysis import analyze, churn_series, load_snapshots, to_networkx
from dnwgraph.train import load_model, train


def test_tiny_training_run_is_analysed(tmp_path):
    config = {
        "model": {"name": "mnist1d_static", "kwargs": {"ratio": 0.02}},
        "data": {"name": "mnist1d", "batch_size": 20, "num_samples": 100},
        "optim": {"lr": 0.1},
        "train": {"epochs": 2, "seed": 0},
    }
    run = tmp_path / "run"
    train(config, run, progress=False)
    model = load_model(run)
    snaps = load_snapshots(run)
    assert [e for e, _ in snaps] == [0, 1, 2]
    # the last snapshot is the trained model's wiring, and the trainer's swap counts agree
    final = snaps[-1][1]["executor.conv"]
    assert torch.equal(final["active"], model.conv.active_mask())
    rows = churn_series(snaps)
    metrics = (run / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    swapped = [int(r.split(",")[header.index("swapped_in")]) for r in metrics[1:]]
    assert [int(r["swapped_in"]) for r in rows] == swapped
    assert to_networkx(model).number_of_edges() == model.conv.k
    _, report = analyze(run, num_random=0, figures=False)
    assert "## Edge churn" in report.read_text()
