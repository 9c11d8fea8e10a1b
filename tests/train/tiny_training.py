"""A tiny registered model and a tiny dataset, so the loop is tested without the presets.

Imported by name (``from tiny_training import ...``) from tests and from worker processes;
a uniquely named module, because every test folder may have a ``conftest``.
"""

from __future__ import annotations

import torch
from torch import nn

from dnwgraph.graph import layered
from dnwgraph.models import list_models, register_model
from dnwgraph.nn import WiringConv
from dnwgraph.train.datasets import ArrayDataset, DataSplits, list_datasets, register_dataset

MODEL = "_test_layered_mlp"
DATA = "_test_blobs"


class LayeredMLP(nn.Module):
    """Linear embedding into the input nodes of a layered wiring, ReLU nodes level by level, the
    output nodes are the logits."""

    def __init__(
        self,
        num_classes: int = 3,
        selection: str = "dnw",
        ratio: int | float = 0.5,
        in_features: int = 8,
        hidden: int = 6,
        **selection_options,
    ) -> None:
        super().__init__()
        self.wiring = layered([4, hidden, hidden, num_classes])
        self.embed = nn.Linear(in_features, 4)
        self.conv = WiringConv(self.wiring, ratio, selection, **selection_options)
        self.levels = self.wiring.levels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        h = x.new_zeros(self.wiring.num_nodes, x.size(0))
        h = h.index_copy(0, self.levels[0], self.embed(x).t())
        for level in self.levels[1:]:
            agg = self.conv(h)[level]
            h = h.index_copy(0, level, torch.relu(agg) if level is not self.levels[-1] else agg)
        return h[self.levels[-1]].t()


class NaNAfter(LayeredMLP):
    """:class:`LayeredMLP` whose output turns NaN after ``nan_after`` training forward passes."""

    def __init__(self, nan_after: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.nan_after, self.calls = nan_after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls > self.nan_after:
                out = out * float("nan")
        return out


class NaNWeightAfter(LayeredMLP):
    """:class:`LayeredMLP` whose first edge weight turns NaN after ``nan_after`` training
    forward passes, as a huge learning rate does: the loss stays finite, because a NaN weight
    used to drop out of the top-k silently."""

    def __init__(self, nan_after: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.nan_after, self.calls = nan_after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls > self.nan_after:
                with torch.no_grad():
                    self.conv.edge_weight[0] = float("nan")
        return super().forward(x)


NAN_MODEL = "_test_nan_after"
NAN_WEIGHT_MODEL = "_test_nan_weight_after"
if MODEL not in list_models():
    register_model(MODEL)(LayeredMLP)
    register_model(NAN_MODEL)(NaNAfter)
    register_model(NAN_WEIGHT_MODEL)(NaNWeightAfter)


def make_blobs(n: int, seed: int, in_features: int = 8, classes: int = 3) -> ArrayDataset:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, in_features, generator=torch.Generator().manual_seed(7)) * 2
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, in_features, generator=g)
    return ArrayDataset(x.unsqueeze(1), y)


if DATA not in list_datasets():

    @register_dataset(DATA)
    def _blobs(*, dir=None, augment=False, num_samples: int = 96) -> DataSplits:
        return DataSplits(make_blobs(num_samples, 0), make_blobs(48, 1), 3, (1, 8))


def resume_config(epochs: int, num_samples: int) -> dict:
    """A tiny config with momentum, weight decay, label smoothing and a multistep schedule."""
    return {
        "model": {"name": MODEL, "kwargs": {"ratio": 0.4}},
        "data": {"name": DATA, "batch_size": 8, "num_samples": num_samples},
        "optim": {"lr": 0.05, "nesterov": True, "weight_decay": 1e-3},
        "schedule": {"name": "multistep", "milestones": [2], "gamma": 0.5},
        "train": {"epochs": epochs, "seed": 3, "label_smoothing": 0.1},
    }
