"""Fixtures of the training tests; the tiny model and data live in ``tiny_training``."""

from __future__ import annotations

import pytest
from tiny_training import DATA, MODEL


@pytest.fixture
def tiny_config() -> dict:
    return {
        "model": {"name": MODEL, "kwargs": {"ratio": 0.5}},
        "data": {"name": DATA, "batch_size": 16, "test_batch_size": 32},
        "optim": {"lr": 0.05},
        "schedule": {"name": "cosine"},
        "train": {"epochs": 3, "seed": 0},
    }
