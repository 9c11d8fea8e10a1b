"""Optimizers and schedulers by name, a model / dataset object instead of names, callbacks,
logging."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from tiny_training import LayeredMLP, make_blobs
from torch import nn

from dnwgraph.train import Callback, ConfigError, load_checkpoint, train
from dnwgraph.train.config import load_config
from dnwgraph.train.optim import (
    build_optimizer,
    build_scheduler,
    optimizer_names,
    resolve_optimizer,
    scheduler_names,
)


@pytest.mark.parametrize("name, cls", [("sgd", "SGD"), ("Adam", "Adam"), ("adamw", "AdamW")])
def test_optimizers_by_name(name, cls):
    cfg = {"name": name, "lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}
    opt = build_optimizer([nn.Parameter(torch.zeros(2))], {**cfg, "kwargs": {}})
    assert type(opt).__name__ == cls and opt.param_groups[0]["lr"] == 0.01
    # momentum goes only to the optimizers that take it
    assert ("momentum" in opt.param_groups[0]) == (cls == "SGD")
    opt = build_optimizer([nn.Parameter(torch.zeros(2))], {**cfg, "kwargs": {"lr": 0.5}})
    assert opt.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match=r"optim.name must be one of \[.*'SGD'"):
        resolve_optimizer("sdg")


def test_adamw_run_trains_with_adamw(tmp_path: Path, tiny_config) -> None:
    tiny_config["optim"] = {"name": "adamw", "lr": 0.01, "weight_decay": 0.01, "kwargs": {}}
    tiny_config["schedule"] = {"name": "constant"}
    tiny_config["train"]["epochs"] = 1
    tiny_config["train"]["snapshots"] = False
    ckpt_dir = tmp_path / "run"
    result = train(tiny_config, ckpt_dir, progress=False)
    ckpt = load_checkpoint(ckpt_dir)
    assert ckpt["optimizer_state"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert result["history"][0]["lr"] == 0.01


def test_torch_scheduler_by_name_steps_per_epoch_and_resumes(tmp_path: Path, tiny_config) -> None:
    tiny_config["schedule"] = {"name": "StepLR", "kwargs": {"step_size": 1, "gamma": 0.5}}
    tiny_config["train"]["epochs"] = 3
    hist = train(tiny_config, tmp_path / "a", progress=False)["history"]
    # the lr of an epoch is the one its steps used: 0.05, then halved after every epoch
    assert [round(r["lr"], 6) for r in hist] == [0.05, 0.025, 0.0125]
    state = load_checkpoint(tmp_path / "a")["scheduler_state"]["state"]
    assert state["last_epoch"] == 3
    # two epochs then a resume to three gives the same run
    tiny_config["train"]["epochs"] = 2
    train(tiny_config, tmp_path / "b", progress=False)
    ckpt = load_checkpoint(tmp_path / "b")
    ckpt["config"]["train"]["epochs"] = 3
    from dnwgraph.runs import Run
    from dnwgraph.runs.checkpoint import save_checkpoint

    # a longer run: the checkpoint and config.yaml must agree (else resume refuses)
    save_checkpoint(tmp_path / "b" / "checkpoint.pt", ckpt)
    Run(tmp_path / "b").write_config(ckpt["config"])
    resumed = train({}, tmp_path / "b", resume=True, progress=False)["history"]
    assert [round(r["lr"], 6) for r in resumed] == [0.05, 0.025, 0.0125]


def test_one_cycle_per_step_gets_its_defaults() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    s = build_scheduler(opt, {"name": "onecyclelr", "interval": "step", "kwargs": {}}, 5, 4)
    assert type(s).__name__ == "OneCycleLR" and s.total_steps == 20
    cosine = build_scheduler(opt, {"name": "cosine", "warmup_epochs": 1}, 5, 4)
    assert type(cosine).__name__ == "StepSchedule" and cosine.warmup_steps == 5
    assert cosine.total_steps == 20


def test_config_errors(tmp_path: Path, tiny_config) -> None:
    tiny_config["schedule"] = {"name": "steplr", "kwargs": {"bogus": 1}}
    with pytest.raises(ConfigError, match=r"schedule: StepLR\(\{'bogus': 1\}\) failed"):
        train(tiny_config, tmp_path / "a", progress=False)
    tiny_config["schedule"] = {"name": "cosine"}
    tiny_config["optim"] = {"name": "adam", "kwargs": {"betas": "fast"}}
    with pytest.raises(ConfigError, match=r"optim.kwargs.betas must be two numbers in \[0, 1\)"):
        train(tiny_config, tmp_path / "b", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before


@pytest.mark.parametrize("name", optimizer_names())
def test_every_listed_optimizer_runs_in_train(tmp_path: Path, tiny_config, name: str) -> None:
    tiny_config["optim"] = {"name": name, "lr": 0.01}
    tiny_config["train"]["epochs"] = 1
    history = train(tiny_config, tmp_path / "run", progress=False)["history"]
    assert len(history) == 1 and history[0]["train_loss"] > 0
    assert (
        type(build_optimizer([nn.Parameter(torch.zeros(2))], {"name": name, "lr": 0.1})).__name__
        == name
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [("lbfgs", "needs a closure"), ("SparseAdam", "sparse gradients"), ("Muon", "2-D")],
)
def test_optimizers_train_cannot_run_are_not_listed(name: str, why: str) -> None:
    assert name.lower() not in [n.lower() for n in optimizer_names()]
    with pytest.raises(ConfigError, match=rf"optim.name must be one of .*\(got '{name}'; .*{why}"):
        load_config(None, [f"optim.name={name}"])


@pytest.mark.parametrize(
    ("name", "why"), [("LambdaLR", "a Python function"), ("SequentialLR", "other schedulers")]
)
def test_schedulers_a_config_cannot_build_are_not_listed(name: str, why: str) -> None:
    assert name not in scheduler_names()
    with pytest.raises(ConfigError, match=rf"schedule.name must be one of .*{why}"):
        load_config(None, [f"schedule.name={name}"])


def test_one_cycle_with_too_few_total_steps_is_refused_before_the_run(tmp_path: Path, tiny_config):
    tiny_config["schedule"] = {
        "name": "OneCycleLR",
        "kwargs": {"total_steps": 5},
        "interval": "step",
    }
    with pytest.raises(ConfigError, match=r"OneCycleLR has total_steps=5, but the run steps it"):
        train(tiny_config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_train_begin(self, model, config) -> None:
        self.calls.append(("begin", type(model).__name__, config.train.epochs))

    def on_epoch_end(self, row, model) -> None:
        self.calls.append(("epoch", row["epoch"], row["test_acc"]))

    def on_train_end(self, history) -> None:
        self.calls.append(("end", len(history)))


def test_model_and_dataset_objects_callbacks_and_logging(tmp_path: Path, tiny_config, caplog):
    torch.manual_seed(0)
    model = LayeredMLP(num_classes=3, ratio=0.5)  # not built through the registry
    data = (make_blobs(96, 0), make_blobs(48, 1))
    rec = Recorder()
    tiny_config["train"]["epochs"] = 2
    with caplog.at_level(logging.INFO, logger="dnwgraph"):
        result = train(
            tiny_config,
            tmp_path / "run",
            progress=False,
            model=model,
            dataset=data,
            callbacks=[rec],
        )
    hist = result["history"]
    assert rec.calls == [
        ("begin", "LayeredMLP", 2),
        ("epoch", 1, hist[0]["test_acc"]),
        ("epoch", 2, hist[1]["test_acc"]),
        ("end", 2),
    ]
    # the object passed in is the one trained
    ckpt = load_checkpoint(tmp_path / "run")
    assert torch.equal(ckpt["model_state"]["conv.edge_weight"], model.conv.edge_weight.detach())
    assert ckpt["model"]["name"] == "<LayeredMLP>"
    records = [r.getMessage() for r in caplog.records if r.name == "dnwgraph.train.loop"]
    assert len(records) == 2 and records[0].startswith("epoch 1/2  loss ")
    # a silenced library logger records nothing
    caplog.clear()
    logging.getLogger("dnwgraph").setLevel(logging.WARNING)
    try:
        train(tiny_config, tmp_path / "quiet", progress=False, dataset=data)
    finally:
        logging.getLogger("dnwgraph").setLevel(logging.NOTSET)
    assert not [r for r in caplog.records if r.name.startswith("dnwgraph")]


def test_bad_dataset_object(tmp_path: Path, tiny_config) -> None:
    with pytest.raises(ConfigError, match=r"'dataset' must be a DataSplits or a \(train, test\)"):
        train(tiny_config, tmp_path / "run", progress=False, dataset=[1, 2, 3])
