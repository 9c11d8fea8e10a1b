"""Config: defaults, --set overrides, and a clear error for every bad key or value."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnwgraph.train.config import (
    ConfigError,
    OptimSection,
    TrainConfig,
    apply_overrides,
    load_config,
    resolve_config,
)


def test_defaults_and_file_and_overrides(tmp_path: Path) -> None:
    defaults = load_config()
    assert defaults == TrainConfig()
    assert defaults.to_dict()["optim"] == {
        "name": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 5e-4,
        "grad_clip": None,
        "kwargs": {},
    }
    assert (defaults.model.name, defaults.data.batch_size, defaults.train.epochs) == (
        "mnist1d_static",
        128,
        40,
    )
    path = tmp_path / "c.yaml"
    path.write_text("optim: {lr: 0.2}\nschedule: {name: multistep, milestones: [8, 4]}\n")
    cfg = load_config(
        path,
        [
            "train.epochs=7",
            "data.num_samples=300",
            "model.kwargs.ratio=64",
            "optim.nesterov=true",
            "data.dir=null",
        ],
    )
    assert cfg.optim.lr == 0.2 and cfg.optim.nesterov is True
    assert cfg.schedule.milestones == [4, 8]
    assert cfg.train.epochs == 7 and cfg.data.options == {"num_samples": 300}
    assert cfg.model.kwargs == {"ratio": 64} and cfg.data.dir is None
    assert isinstance(load_config(None, ["optim.lr=1"]).optim.lr, float)
    # the plain mapping round-trips, the dataset's own options flat in 'data'
    assert cfg.to_dict()["data"]["num_samples"] == 300
    assert resolve_config(cfg.to_dict()) == cfg


def test_apply_overrides_parses_yaml_values() -> None:
    out = apply_overrides({}, ["a.b=[1, 2]", "a.c=text", "d=0.5"])
    assert out == {"a": {"b": [1, 2], "c": "text"}, "d": 0.5}


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            ["optim.lrr=0.1"],
            r"unknown key optim.lrr; 'optim' takes \['grad_clip', 'kwargs', 'lr', ",
        ),
        (["optimizer.lr=0.1"], r"unknown config section 'optimizer'; choose one of"),
        (["optim.lr"], r"'--set' expects section.key=value \(got 'optim.lr'\)"),
        (["=3"], r"'--set' expects section.key=value"),
        (["optim.lr=-1"], r"optim.lr must be a number >= 0 \(got -1\)"),
        (["optim.lr=fast"], r"optim.lr must be a number >= 0 \(got 'fast'\)"),
        (["train.epochs=2.5"], r"train.epochs must be an int >= 1"),
        (["train.epochs=true"], r"train.epochs must be an int >= 1"),
        (["schedule.name=step"], r"schedule.name must be one of \['cosine', 'multistep'"),
        (["schedule.milestones=[0]"], r"schedule.milestones must be a list of positive"),
        (["optim.name=adamm"], r"optim.name must be one of \[.*'AdamW'.*\] \(got 'adamm'\)"),
        (["schedule.interval=batch"], r"schedule.interval must be one of \['epoch', 'step'\]"),
        (["optim.kwargs=3"], r"optim.kwargs must be a mapping of keywords \(got 3\)"),
        (["optim.momentum=0", "optim.nesterov=true"], r"nesterov needs optim.momentum > 0"),
        (["train.label_smoothing=1"], r"label_smoothing must be a number in \[0, 1\)"),
        (["data.augment=maybe"], r"data.augment must be true or false"),
        (["init.mode=lottery"], r"init.from_run and init.mode go together"),
        (["init.mode=prune", "init.from_run=x"], r"init.mode must be one of \['finetune'"),
        (
            ["init.mode=finetune", "init.from_run=x", "model.kwargs.selection=dnw"],
            r"model.kwargs.selection must be 'fixed' \(got 'dnw'\)",
        ),
        (["optim=3"], r"config section 'optim' must be a mapping"),
        (["optim.momentum=2"], r"optim.momentum must be a number in \[0, 1\) \(got 2\)"),
        (["optim.momentum=1"], r"optim.momentum must be a number in \[0, 1\)"),
        (["optim.lr=.nan"], r"optim.lr must be a number >= 0 \(got nan\)"),
        (["optim.lr=.inf"], r"optim.lr must be a number >= 0 \(got inf\)"),
        (["optim.weight_decay=.inf"], r"optim.weight_decay must be a number >= 0"),
        (["optim.grad_clip=.nan"], r"optim.grad_clip must be a positive number or null"),
        (["schedule.gamma=.nan"], r"schedule.gamma must be a number >= 0"),
        (["optim.name=adam", "optim.kwargs.betas=[0.9]"], r"betas must be two numbers in \[0, 1\)"),
        (["optim.name=adam", "optim.kwargs.betas=[0.9, 1.5]"], r"betas must be two numbers"),
        (["optim.name=adam", "optim.kwargs.amsgrad=false_"], r"amsgrad must be true or false"),
        (["optim.name=adam", "optim.kwargs.eps=.nan"], r"eps must be a finite number"),
        (["optim.name=adam", "optim.kwargs.eps=-1"], r"optim: Adam\(.*\) failed: ValueError"),
        (["optim.name=adam", "optim.kwargs.betass=1"], r"betass is not a keyword of Adam \(it "),
        (["optim.name=rmsprop", "optim.kwargs.alpha=fast"], r"optim: RMSprop.* TypeError"),
        (["optim.kwargs.dampening=[1]"], r"optim: SGD.*(failed|cannot take a step)"),
        (["schedule.name=StepLR"], r"schedule: StepLR\(\{\}\) failed: TypeError: .*step_size"),
        (["schedule.name=StepLR", "schedule.kwargs.step_size=[1]"], r"schedule: StepLR"),
        (["train.seed=4294967296"], r"train.seed must be an int in \[0, 4294967296\)"),
        (["train.seed=" + "9" * 40], r"train.seed must be an int in \[0, 4294967296\) \(got 9"),
        (["train.seed=-1"], r"train.seed must be an int in \[0, 4294967296\)"),
        (["schedule.kwargs.step_size=0"], r"schedule.kwargs \['step_size'\] would be ignored"),
        (["optim.lr=0.1", "optim.lr.x=3"], r"'lr' is a value, not a section"),
    ],
)
def test_bad_overrides_are_clear_errors(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1e6", 1e6), ("5e-4", 5e-4), ("-2E+3", -2000.0), ("1.5e2", 150.0), (".5", 0.5)],
)
def test_yaml_numbers_in_exponent_form_are_numbers(tmp_path: Path, text: str, expected) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"optim:\n  weight_decay: {text.lstrip('-')}\nschedule:\n  gamma: {text}\n")
    if expected >= 0:
        cfg = load_config(path)
        assert cfg.optim.weight_decay == expected and cfg.schedule.gamma == expected
    assert load_config(None, [f"optim.lr={text.lstrip('-')}"]).optim.lr == abs(expected)


def test_init_mode_sets_the_fixed_selection() -> None:
    cfg = load_config(None, ["init.mode=finetune", "init.from_run=runs/x"])
    assert cfg.model.kwargs["selection"] == "fixed"


def test_a_section_built_in_code_is_checked_too() -> None:
    assert TrainConfig(optim=OptimSection(lr=1)).optim.lr == 1.0
    with pytest.raises(ConfigError, match=r"optim.lr must be a number >= 0 \(got -1\)"):
        OptimSection(lr=-1)
    with pytest.raises(ConfigError, match="nesterov needs optim.momentum > 0"):
        OptimSection(momentum=0, nesterov=True)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("optim: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_config(tmp_path / "list.yaml")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("optim:\n  lr: 0.1\n  lr: 0.5\n", r"duplicate key 'lr' on lines 2 and 3 of .*c\.yaml"),
        ("train: {epochs: 1}\ntrain: {epochs: 2}\n", "duplicate key 'train' on lines 1 and 2"),
        ("optim: {lr: 0.1, lr: 0.2}\n", "duplicate key 'lr' on lines 1 and 1"),
    ],
)
def test_a_duplicate_key_is_an_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_a_binary_config_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\x80\x81PK\x03\x04")
    with pytest.raises(ConfigError, match=r"c\.yaml' is not UTF-8 text"):
        load_config(path)
