"""Data-parallel training on torch.distributed (gloo, loopback, 2 processes) equals one process."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from tiny_training import LayeredMLP, resume_config  # also registers the tiny model and data

from dnwgraph.models import list_models, register_model
from dnwgraph.runs.run import load_snapshot
from dnwgraph.train import train
from dnwgraph.train.distributed import DistEnv
from dnwgraph.train.launch import WorkerFailed, launch


def _train_worker(config: dict, out: str) -> None:
    train(config, out, progress=False)


def _final_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model_state"]


CONFIG = resume_config(epochs=2, num_samples=96)  # global batch 8: 12 steps per epoch


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "two"
    launch(_train_worker, 2, copy.deepcopy(CONFIG), str(out))
    return out


def test_two_processes_match_one_process(tmp_path, two_process_run):
    # each of the 2 workers takes 4 samples per step; the model has no batch statistics, so the
    # all-reduced gradient equals the one-process gradient of the same global batch
    train(copy.deepcopy(CONFIG), tmp_path / "one", progress=False)
    (tmp_path / "two").symlink_to(two_process_run)

    one, two = _final_state(tmp_path / "one"), _final_state(tmp_path / "two")
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
    # same wiring, snapshot by snapshot (only rank 0 wrote them)
    for snap in sorted((tmp_path / "one" / "wiring").iterdir()):
        a = load_snapshot(snap)
        b = load_snapshot(tmp_path / "two" / "wiring" / snap.name)
        assert torch.equal(a["conv"]["active"], b["conv"]["active"]), snap.name
    lines_one = (tmp_path / "one" / "metrics.csv").read_text().splitlines()
    lines_two = (tmp_path / "two" / "metrics.csv").read_text().splitlines()
    assert len(lines_one) == len(lines_two) == 3  # header + one row per epoch, written once


class CrashAfter(LayeredMLP):
    """The tiny model, crashing after ``crash_after`` training forward passes of this process."""

    def __init__(self, crash_after: int = 13, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crash_after, self.calls = crash_after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls > self.crash_after:
                raise RuntimeError("simulated crash")
        return super().forward(x)


if "_test_crash_after" not in list_models():
    register_model("_test_crash_after")(CrashAfter)


def _resume_worker(out: str) -> None:
    train({}, out, resume=True, progress=False)


def test_resume_a_distributed_run(tmp_path, two_process_run):
    crashing = copy.deepcopy(CONFIG)
    crashing["model"] = {"name": "_test_crash_after", "kwargs": {**CONFIG["model"]["kwargs"]}}
    with pytest.raises(WorkerFailed, match="simulated crash"):
        launch(_train_worker, 2, crashing, str(tmp_path / "cut"))  # dies in epoch 2
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    launch(_resume_worker, 2, str(tmp_path / "cut"))  # the counter restarts: epoch 2 completes
    full, cut = _final_state(two_process_run), _final_state(tmp_path / "cut")
    assert full.keys() == cut.keys()
    for key in full:
        torch.testing.assert_close(cut[key], full[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("world_size", [1, 2])
def test_global_batch_is_split(world_size):
    env = DistEnv(rank=0, world_size=world_size)
    assert env.is_main and env.distributed == (world_size > 1)
    with pytest.raises(ValueError, match=r"'rank' must be in \[0, 2\) \(got 2\)"):
        DistEnv(rank=2, world_size=2)


def test_batchnorm_is_synchronised_on_cuda_only():
    from dnwgraph.train.distributed import sync_batchnorm

    def net():
        return torch.nn.Sequential(torch.nn.Conv1d(1, 4, 3), torch.nn.BatchNorm1d(4))

    cpu = sync_batchnorm(net(), torch.device("cpu"))
    assert type(cpu[1]) is torch.nn.BatchNorm1d
    model = net()
    keys = set(model.state_dict())
    cuda = sync_batchnorm(model, torch.device("cuda"))  # conversion itself needs no GPU
    assert cuda is model and type(cuda[1]) is torch.nn.SyncBatchNorm
    assert set(cuda.state_dict()) == keys  # checkpoints load into the plain model


def test_sync_batchnorm_refuses_a_bare_batch_norm_and_converts_children():
    from torch import nn

    from dnwgraph.train.distributed import sync_batchnorm

    cuda = torch.device("cuda")  # only the device type is read; no GPU is needed
    for bare in (nn.BatchNorm1d(2), nn.BatchNorm2d(2), nn.LazyBatchNorm1d(), nn.SyncBatchNorm(2)):
        with pytest.raises(ValueError, match="a bare BatchNorm module cannot be converted"):
            sync_batchnorm(bare, cuda)
    model = sync_batchnorm(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), cuda)
    assert type(model[1]) is nn.SyncBatchNorm
    cpu_model = nn.Sequential(nn.BatchNorm1d(2))
    assert type(sync_batchnorm(cpu_model, torch.device("cpu"))[0]) is nn.BatchNorm1d
