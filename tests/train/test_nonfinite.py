"""Non-finite state and data stop a run with an error that names what and where: parameters
and buffers (BatchNorm's running statistics), the loss of either split, NaN in the data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_training import make_blobs
from torch import nn

from dnwgraph.train import TrainingDiverged, train
from dnwgraph.train.datasets import ArrayDataset, DataError

CONFIG = {"data": {"batch_size": 16, "test_batch_size": 32}, "train": {"epochs": 2}}


def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)
    )


def _scaled(data: ArrayDataset, factor: float) -> ArrayDataset:
    return ArrayDataset(data.x * factor, data.y)


def test_infinite_running_statistics_stop_the_run(tmp_path: Path) -> None:
    data = (_scaled(make_blobs(96, 0), 1e30), make_blobs(48, 1))  # finite, but var = 1e60
    with pytest.raises(
        TrainingDiverged,
        match=r"the buffer 2.running_var holds NaN or infinite values after epoch 1",
    ):
        train(CONFIG, tmp_path / "run", model=_bn_model(), dataset=data, progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def _with_nan(data: ArrayDataset, index: int, value: float) -> ArrayDataset:
    x = data.x.clone()
    x[index, 0, 3] = value
    return ArrayDataset(x, data.y)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("split", ["train", "test"])
def test_a_nan_in_the_data_names_the_split_and_the_sample(
    tmp_path: Path, split: str, value: float
) -> None:
    train_set, test_set = make_blobs(96, 0), make_blobs(48, 1)
    if split == "train":
        train_set = _with_nan(train_set, 37, value)
    else:
        test_set = _with_nan(test_set, 41, value)
    sample = 37 if split == "train" else 41
    with pytest.raises(
        DataError, match=rf"^the {split} data holds NaN or infinite values \(sample {sample}, "
    ):
        train(CONFIG, tmp_path / "run", model=_bn_model(), dataset=(train_set, test_set))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


class InfAtTest(nn.Module):
    """Finite while training, infinite logits in evaluation."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.flatten(1))
        return out if self.training else out * float("inf")


def test_a_non_finite_test_loss_stops_the_run(tmp_path: Path) -> None:
    data = (make_blobs(96, 0), make_blobs(48, 1))
    with pytest.raises(TrainingDiverged, match=r"^the test loss became (nan|inf) after epoch 1;"):
        train(CONFIG, tmp_path / "run", model=InfAtTest(), dataset=data, progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_label_the_model_has_no_output_for_names_the_split_and_sample(
    tmp_path: Path, split: str
) -> None:
    train_set, test_set = make_blobs(96, 0), make_blobs(48, 1)
    data = train_set if split == "train" else test_set
    y = data.y.clone()
    y[29] = 7
    data = ArrayDataset(data.x, y)
    pair = (data, test_set) if split == "train" else (train_set, data)
    with pytest.raises(
        DataError, match=rf"^the {split} data has label 7 at sample 29, but the model has 3 "
    ):
        train(CONFIG, tmp_path / "run", model=_bn_model(), dataset=pair, progress=False)
