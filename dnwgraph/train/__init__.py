"""Training: datasets, configs and the loop behind ``dnwgraph train`` (run files: dnwgraph.runs)."""

from dnwgraph.runs.checkpoint import CheckpointError, load_checkpoint, load_model
from dnwgraph.train.config import ConfigError, TrainConfig, load_config
from dnwgraph.train.datasets import DataError, create_dataset, list_datasets, register_dataset
from dnwgraph.train.loop import RunExistsError, TrainingDiverged, train
from dnwgraph.train.optim import Callback

__all__ = [
    "train",
    "Callback",
    "load_model",
    "load_config",
    "TrainConfig",
    "load_checkpoint",
    "create_dataset",
    "list_datasets",
    "register_dataset",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "RunExistsError",
    "TrainingDiverged",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
