"""End-to-end runs of the loop on a tiny synthetic dataset."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tiny_training import MODEL, NAN_MODEL, NAN_WEIGHT_MODEL

from dnwgraph.errors import DNWGraphError
from dnwgraph.runs.run import COLUMNS, Run, read_metrics_csv
from dnwgraph.train import (
    ConfigError,
    RunExistsError,
    TrainingDiverged,
    load_checkpoint,
    load_model,
    train,
)
from dnwgraph.train.optim import StepSchedule


def test_loss_decreases_and_run_dir_follows_the_contract(tmp_path: Path, tiny_config) -> None:
    tiny_config["train"]["epochs"] = 4
    result = train(tiny_config, tmp_path / "run", progress=False)
    hist = result["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["test_acc"] > 0.6  # three well-separated blobs; chance is 1/3
    run = tmp_path / "run"
    with open(run / "metrics.csv") as f:
        assert f.readline().strip() == ",".join(COLUMNS)
    assert [r["epoch"] for r in read_metrics_csv(run / "metrics.csv")] == [1, 2, 3, 4]
    assert sorted(p.name for p in (run / "wiring").iterdir()) == [
        f"epoch_{e:04d}.pt" for e in range(5)
    ]
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["format"] == "dnwgraph-checkpoint/1"
    assert {
        "model",
        "model_state",
        "optimizer_state",
        "scheduler_state",
        "epoch",
        "step",
        "rng",
        "config",
    } <= set(ckpt)
    assert ckpt["model"] == {"name": MODEL, "kwargs": {"ratio": 0.5, "num_classes": 3}}
    assert ckpt["epoch"] == 4 and ckpt["step"] == 4 * math.ceil(96 / 16)
    snap = Run(run).snapshot(4)
    model = load_model(run)
    assert not model.training
    assert torch.equal(snap["conv"]["active"], model.conv.active_mask())
    assert snap["conv"]["num_nodes"] == model.conv.num_nodes
    assert int(snap["conv"]["active"].sum()) == hist[-1]["selected_edges"] == model.conv.k


def test_same_seed_same_run_other_seed_other_run(tmp_path: Path, tiny_config) -> None:
    tiny_config["train"]["epochs"] = 1
    a = train(tiny_config, tmp_path / "a", progress=False)["history"][0]
    b = train(tiny_config, tmp_path / "b", progress=False)["history"][0]
    tiny_config["train"]["seed"] = 1
    c = train(tiny_config, tmp_path / "c", progress=False)["history"][0]
    a.pop("epoch_time_s"), b.pop("epoch_time_s"), c.pop("epoch_time_s")
    assert a == b and a != c


def test_existing_run_is_not_overwritten(tmp_path: Path, tiny_config) -> None:
    tiny_config["train"]["epochs"] = 1
    train(tiny_config, tmp_path / "run", progress=False)
    with pytest.raises(RunExistsError, match="--resume .*--overwrite"):
        train(tiny_config, tmp_path / "run", progress=False)
    # a file the user put into the run is never deleted: --overwrite refuses and names it
    (tmp_path / "run" / "marker").write_text("x")
    with pytest.raises(DNWGraphError, match=r"files that are not part of it \(marker\)"):
        train(tiny_config, tmp_path / "run", overwrite=True, progress=False)
    assert (tmp_path / "run" / "marker").read_text() == "x"
    (tmp_path / "run" / "marker").unlink()
    (tmp_path / "run" / "figures").mkdir()  # what `dnwgraph plot` adds is part of the run
    train(tiny_config, tmp_path / "run", overwrite=True, progress=False)
    assert not (tmp_path / "run" / "figures").exists()
    assert load_checkpoint(tmp_path / "run")["epoch"] == 1


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, tiny_config) -> None:
    tiny_config["model"] = {"name": NAN_MODEL, "kwargs": {"nan_after": 8}}  # 6 steps per epoch
    tiny_config["train"]["epochs"] = 3
    with pytest.raises(TrainingDiverged, match=r"became nan at epoch 2.*last good checkpoint"):
        train(tiny_config, tmp_path / "run", progress=False)
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["epoch"] == 1
    assert all(
        torch.isfinite(v).all() for v in ckpt["model_state"].values() if v.is_floating_point()
    )


def test_nan_edge_weight_stops_the_run_although_the_loss_stays_finite(
    tmp_path: Path, tiny_config
) -> None:
    tiny_config["model"] = {"name": NAN_WEIGHT_MODEL, "kwargs": {"nan_after": 8}}  # 6 steps/epoch
    tiny_config["train"]["epochs"] = 3
    with pytest.raises(
        TrainingDiverged, match=r"epoch 2: 1 of \d+ edge weights are NaN.*epoch 1\)"
    ):
        train(tiny_config, tmp_path / "run", progress=False)
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["epoch"] == 1
    assert all(
        torch.isfinite(v).all() for v in ckpt["model_state"].values() if v.is_floating_point()
    )
    assert sorted(p.name for p in (tmp_path / "run" / "wiring").iterdir()) == [
        "epoch_0000.pt",
        "epoch_0001.pt",
    ]


def test_a_non_finite_parameter_at_the_end_of_an_epoch_stops_the_run(
    tmp_path: Path, tiny_config
) -> None:
    tiny_config["model"] = {"name": NAN_WEIGHT_MODEL, "kwargs": {"nan_after": 5}}  # last step
    tiny_config["model"]["kwargs"]["selection"] = "random"  # the top-k never looks at weights
    tiny_config["train"]["epochs"] = 2
    with pytest.raises(TrainingDiverged, match=r"(loss became nan|conv.edge_weight holds NaN)"):
        train(tiny_config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_config_must_be_a_dict(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'config' must be a dict .*got NoneType.*\{\}"):
        train(None, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_progress_bars_stay_out_of_a_log(tmp_path: Path, tiny_config, capsys) -> None:
    tiny_config["train"]["epochs"] = 2
    train(tiny_config, tmp_path / "run", progress=True)
    out, err = capsys.readouterr()
    assert "\r" not in err and "it/s" not in err  # stderr is not a terminal here
    assert [line.split()[:2] for line in out.splitlines()] == [["epoch", "1/2"], ["epoch", "2/2"]]


def test_unknown_data_option_lists_choices(tmp_path: Path, tiny_config) -> None:
    tiny_config["data"]["num_sample"] = 5
    with pytest.raises(ConfigError, match=r"data.num_sample.*num_samples"):
        train(tiny_config, tmp_path / "run", progress=False)


def test_unknown_model_argument_is_a_config_error(tmp_path: Path, tiny_config) -> None:
    tiny_config["model"] = {"name": "no_such_model"}
    with pytest.raises(ConfigError, match="unknown model 'no_such_model'"):
        train(tiny_config, tmp_path / "run", progress=False)


def _lrs(name: str, base: float, spe: int, epochs: int, **options) -> list[float]:
    """The learning rate of every optimisation step under a StepSchedule."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched = StepSchedule(opt, name, spe, epochs, **options)
    out = []
    for _ in range(spe * epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("warmup", [0, 1])
def test_cosine_schedule_matches_torch(warmup: int) -> None:
    spe, epochs, base = 5, 4, 0.1
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    torch_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spe * (epochs - warmup))
    ours = _lrs("cosine", base, spe, epochs, warmup_epochs=warmup)
    expected = []
    for _ in range(spe * (epochs - warmup)):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        torch_sched.step()
    assert ours[: spe * warmup] == pytest.approx(
        [base * (t + 1) / spe for t in range(spe * warmup)]
    )
    assert ours[spe * warmup :] == pytest.approx(expected)


def test_multistep_schedule_matches_torch() -> None:
    spe, epochs, base = 3, 6, 0.1
    ours = _lrs("multistep", base, spe, epochs, milestones=[2, 4], gamma=0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    torch_sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.1)
    for epoch in range(epochs):
        for t in range(spe):
            assert ours[epoch * spe + t] == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        torch_sched.step()
    assert _lrs("constant", base, spe, epochs, warmup_epochs=2) == pytest.approx(
        [base * (t + 1) / (2 * spe) for t in range(2 * spe)] + [base] * (spe * (epochs - 2))
    )


def test_a_step_schedule_resumes_from_its_state() -> None:
    full = _lrs("cosine", 0.1, 4, 3, warmup_epochs=1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = StepSchedule(opt, "cosine", 4, 3, warmup_epochs=1)
    for _ in range(5):
        opt.step()
        sched.step()
    state = {"opt": opt.state_dict(), "sched": sched.state_dict()}
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched2 = StepSchedule(opt2, "cosine", 4, 3, warmup_epochs=1)
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    rest = []
    for _ in range(7):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert rest == full[5:]  # bit for bit


def _train_source(tmp_path: Path, tiny_config) -> Path:
    tiny_config["train"]["epochs"] = 2
    tiny_config["model"]["kwargs"] = {"ratio": 1.0}  # a trained complete graph
    train(tiny_config, tmp_path / "source", progress=False)
    return tmp_path / "source"


def test_finetune_freezes_the_topk_of_the_trained_weights(tmp_path: Path, tiny_config) -> None:
    source = _train_source(tmp_path, tiny_config)
    trained = load_model(source)
    k = 20
    expected = torch.zeros_like(trained.conv.edge_weight, dtype=torch.bool)
    expected[trained.conv.edge_weight.abs().topk(k).indices] = True
    tiny_config["model"]["kwargs"] = {"ratio": k}
    tiny_config["init"] = {"from_run": str(source), "mode": "finetune"}
    result = train(tiny_config, tmp_path / "ft", progress=False)
    assert [r["swapped_in"] for r in result["history"]] == [0, 0]
    init = Run(tmp_path / "ft").initial_weights()
    assert torch.equal(init["conv.edge_weight"], trained.conv.edge_weight)
    tuned = load_model(tmp_path / "ft")
    assert tuned.conv.selection.name == "fixed"
    assert torch.equal(tuned.conv.active_mask(), expected)
    assert not torch.equal(tuned.conv.edge_weight, trained.conv.edge_weight)


def test_lottery_resets_weights_to_the_source_init(tmp_path: Path, tiny_config) -> None:
    source = _train_source(tmp_path, tiny_config)
    trained = load_model(source)
    source_init = Run(source).initial_weights()
    tiny_config["model"]["kwargs"] = {"ratio": 20, "selection": "fixed"}
    tiny_config["init"] = {"from_run": str(source), "mode": "lottery"}
    train(tiny_config, tmp_path / "lt", progress=False)
    init = Run(tmp_path / "lt").initial_weights()
    for key, value in source_init.items():
        assert torch.equal(init[key], value), key
    expected = torch.zeros_like(trained.conv.edge_weight, dtype=torch.bool)
    expected[trained.conv.edge_weight.abs().topk(20).indices] = True
    assert torch.equal(init["conv.selection.mask"], expected)
    assert torch.equal(load_model(tmp_path / "lt").conv.active_mask(), expected)


def test_init_from_a_missing_run_is_a_clear_error(tmp_path: Path, tiny_config) -> None:
    tiny_config["init"] = {"from_run": str(tmp_path / "nope"), "mode": "finetune"}
    with pytest.raises(ValueError, match="no checkpoint at"):
        train(tiny_config, tmp_path / "run", progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"overwrite": "false"}, r"'overwrite' must be True or False \(got 'false'\)"),
        ({"resume": "no"}, r"'resume' must be True or False"),
        ({"progress": 1}, r"'progress' must be True or False"),
        ({"model": "abc"}, r"'model' must be an nn.Module \(got str\)"),
        ({"env": "cpu"}, r"'env' must be a DistEnv \(got str\)"),
        ({"callbacks": [1]}, r"'callbacks' must be a list of dnwgraph.train.Callback objects"),
        ({"out_dir": None}, r"'out_dir' must be a path \(got NoneType\)"),
    ],
)
def test_arguments_of_the_wrong_type_are_one_line(
    tmp_path: Path, tiny_config, kwargs: dict, match: str
) -> None:
    tiny_config["train"]["epochs"] = 1
    run = tmp_path / "run"
    train(tiny_config, run, progress=False)
    before = (run / "checkpoint.pt").read_bytes()
    out = kwargs.pop("out_dir", run)
    with pytest.raises(DNWGraphError, match=match):
        train(tiny_config, out, **kwargs)
    assert (run / "checkpoint.pt").read_bytes() == before  # overwrite="false" replaced nothing


def test_tensorboard_gets_the_epoch_scalars_and_a_histogram_per_wiring_layer(
    tmp_path: Path, tiny_config
) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tiny_config["train"] |= {"epochs": 2, "tensorboard": True}
    result = train(tiny_config, tmp_path / "run", progress=False)
    events = EventAccumulator(
        str(tmp_path / "run" / "tensorboard"), size_guidance={"histograms": 0}
    )
    events.Reload()
    assert events.Tags()["histograms"] == ["edge_weight_abs/conv"]
    histograms = events.Histograms("edge_weight_abs/conv")
    assert [h.step for h in histograms] == [1, 2]
    # the candidate edges of layered([4, 6, 6, 3]): 4*6 + 6*6 + 6*3
    assert [h.histogram_value.num for h in histograms] == [78, 78]
    (test_acc, _) = events.Scalars("test/acc_percent")
    assert test_acc.value == pytest.approx(100 * result["history"][0]["test_acc"])
