"""optim.grad_clip: checked once, and bounds every update of the training loop."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_training import resume_config

from dnwgraph.runs.run import Run
from dnwgraph.train import ConfigError, train
from dnwgraph.train.config import resolve_config


@pytest.mark.parametrize("bad", [0, -1.0, "x", True])
def test_bad_grad_clip_is_a_clear_error(bad):
    cfg = resume_config(epochs=1, num_samples=48)
    cfg["optim"]["grad_clip"] = bad
    with pytest.raises(ConfigError, match=r"optim.grad_clip must be a positive number or null"):
        resolve_config(cfg)


def test_clipping_bounds_the_step(tmp_path):
    cfg = resume_config(epochs=1, num_samples=48)
    cfg["optim"] = {"lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "grad_clip": 1e-3}
    cfg["schedule"] = {"name": "constant"}
    clipped = copy.deepcopy(cfg)
    free = copy.deepcopy(cfg)
    free["optim"]["grad_clip"] = None
    train(clipped, tmp_path / "clipped", progress=False)
    train(free, tmp_path / "free", progress=False)

    def moved(run):
        init = Run(run).initial_weights()
        final = torch.load(run / "checkpoint.pt", weights_only=True)["model_state"]
        return sum((final[k] - init[k]).norm() ** 2 for k in init if init[k].is_floating_point())

    steps = 48 // cfg["data"]["batch_size"]
    # plain SGD with lr 1: each clipped step moves the parameters by at most 1e-3
    assert moved(tmp_path / "clipped").sqrt() <= steps * 1e-3 + 1e-6
    assert moved(tmp_path / "free").sqrt() > 10 * steps * 1e-3
