"""The training pipeline on a GPU (skipped without CUDA)."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_training import resume_config

from dnwgraph.train import load_model, train

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_train_on_cuda_matches_cpu(tmp_path):
    config = resume_config(epochs=2, num_samples=96)
    cpu = train(copy.deepcopy(config), tmp_path / "cpu", progress=False)
    config["train"]["device"] = "cuda"
    gpu = train(config, tmp_path / "gpu", progress=False)
    assert gpu["history"][-1]["selected_edges"] == cpu["history"][-1]["selected_edges"]
    a, b = load_model(tmp_path / "cpu"), load_model(tmp_path / "gpu")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(q.cpu(), p, rtol=1e-3, atol=1e-4, msg=name)
