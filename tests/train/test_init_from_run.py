"""Starting a run from another one (init.mode finetune / lottery): apply_init on a model.

End-to-end finetune and lottery runs are in test_loop.py; these are the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_training import LayeredMLP

from dnwgraph.runs import Run
from dnwgraph.train import CheckpointError, ConfigError, train
from dnwgraph.train.config import InitSection
from dnwgraph.train.init_from_run import apply_init


@pytest.fixture
def source(tmp_path: Path, tiny_config) -> Path:
    tiny_config["train"]["epochs"] = 1
    tiny_config["model"]["kwargs"] = {"ratio": 1.0}
    train(tiny_config, tmp_path / "source", progress=False)
    return tmp_path / "source"


def test_finetune_freezes_the_trained_topk_in_place(source: Path) -> None:
    model = LayeredMLP(num_classes=3, ratio=5, selection="fixed")
    apply_init(model, InitSection(from_run=str(source), mode="finetune"))
    trained = Run(source).checkpoint()["model_state"]["conv.edge_weight"]
    assert torch.equal(model.conv.edge_weight.detach(), trained)
    expected = torch.zeros_like(trained, dtype=torch.bool)
    expected[trained.abs().topk(5).indices] = True
    assert torch.equal(model.conv.active_mask(), expected)


def test_lottery_needs_the_source_initial_weights(source: Path) -> None:
    Run(source).init_path.unlink()
    model = LayeredMLP(num_classes=3, ratio=5, selection="fixed")
    with pytest.raises(CheckpointError, match=r"init.mode='lottery' needs .*init\.pt"):
        apply_init(model, InitSection(from_run=str(source), mode="lottery"))


def test_a_source_of_another_model_is_refused(source: Path) -> None:
    model = LayeredMLP(num_classes=3, ratio=5, selection="fixed", hidden=7)
    with pytest.raises(ConfigError, match=r"does not fit LayeredMLP: size mismatch for "):
        apply_init(model, InitSection(from_run=str(source), mode="finetune"))


def test_a_selection_that_cannot_freeze_is_refused(source: Path) -> None:
    model = LayeredMLP(num_classes=3, ratio=5, selection="dnw")
    with pytest.raises(ConfigError, match=r"init.mode needs selection 'fixed' \(conv uses 'dnw'\)"):
        apply_init(model, InitSection(from_run=str(source), mode="finetune"))
