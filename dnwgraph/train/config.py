"""Training configuration: the YAML schema, its defaults, ``--set key=value`` overrides, checks.

A config is a plain nested ``dict`` (what ``yaml.safe_load`` returns); :func:`resolve_config`
merges it over :data:`DEFAULTS`, applies the overrides and checks every key and value once, so
the loop can trust it.  The resolved config is saved beside the run (``config.yaml``, read and
written by :class:`dnwgraph.runs.Run`, whose YAML reader also reads the files given here).

Schema (defaults in brackets)::

    model:    {name [mnist1d_static], kwargs [{}]}
    data:     {name [mnist1d], dir [null], batch_size [128], test_batch_size [1000],
               augment [null: the dataset's default], num_workers [0],
               ...dataset options (e.g. num_samples)}
    optim:    {name [sgd] (any torch.optim optimizer: adam, adamw, ...), lr [0.1],
               momentum [0.9], nesterov [false] (for the optimizers that take them),
               weight_decay [5e-4], kwargs [{}] (more optimizer keywords, e.g. betas),
               grad_clip [null: off] (max L2 norm of all gradients before each step)}
    schedule: {name [cosine] | multistep | constant | any torch.optim.lr_scheduler class
               (StepLR, OneCycleLR, ...), milestones [[]], gamma [0.1], warmup_epochs [0]
               (built-in schedules), kwargs [{}] and interval [epoch] | step (torch
               schedulers)}
    train:    {epochs [40], seed [0], label_smoothing [0.0], device [cpu] (or cuda, auto),
               tensorboard [false], snapshots [true]}
    init:     {from_run [null], mode [null] | finetune | lottery}
"""

from __future__ import annotations

import copy
from typing import Any

from dnwgraph.errors import DNWGraphError
from dnwgraph.runs import config_file
from dnwgraph.typing import PathLikeStr

__all__ = ["DEFAULTS", "ConfigError", "load_config", "resolve_config", "apply_overrides"]

DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"name": "mnist1d_static", "kwargs": {}},
    "data": {
        "name": "mnist1d",
        "dir": None,
        "batch_size": 128,
        "test_batch_size": 1000,
        "augment": None,
        "num_workers": 0,
    },
    "optim": {
        "name": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 5e-4,
        "grad_clip": None,
        "kwargs": {},
    },
    "schedule": {
        "name": "cosine",
        "milestones": [],
        "gamma": 0.1,
        "warmup_epochs": 0,
        "kwargs": {},
        "interval": "epoch",
    },
    "train": {
        "epochs": 40,
        "seed": 0,
        "label_smoothing": 0.0,
        "device": "cpu",
        "tensorboard": False,
        "snapshots": True,
    },
    "init": {"from_run": None, "mode": None},
}

INIT_MODES = ("finetune", "lottery")
# Sections whose extra keys are passed through (dataset options; model keyword arguments).
_OPEN_SECTIONS = ("data",)


class ConfigError(DNWGraphError):
    """An unknown key, a bad value or an unreadable config file."""


def parse_yaml(text: str, name: str = "<string>") -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (the package's one YAML reader,
    :func:`dnwgraph.runs.config_file.parse_yaml`), with a :class:`ConfigError`.

    Raises:
        ConfigError: a key appears twice in one mapping (the message names both lines).
        yaml.YAMLError: malformed YAML.

    Examples:
        >>> parse_yaml("lr: 0.1\\nlr: 0.2\\n", "c.yaml")
        Traceback (most recent call last):
        ...
        dnwgraph.train.config.ConfigError: duplicate key 'lr' on lines 1 and 2 of c.yaml ...
    """
    try:
        return config_file.parse_yaml(text, name)
    except DNWGraphError as err:
        raise ConfigError(str(err)) from None


def load_config(
    path: PathLikeStr | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Read a YAML config file (optional), apply ``key=value`` overrides, resolve and check it.

    Args:
        path (path, optional): YAML file following the schema above; ``None`` starts from the
            defaults.  Read by :func:`dnwgraph.runs.config_file.read_config_file`, the reader
            of a run's ``config.yaml``.
        overrides (list of str, optional): ``"section.key=value"`` strings; the value is parsed
            as YAML (``lr=0.05``, ``milestones=[80,120]``, ``dir=null``).

    Returns:
        dict: the resolved config (every section and key present).

    Raises:
        ConfigError: on a missing or unparsable file, an unknown key or a bad value.

    Examples:
        >>> cfg = load_config(None, ["optim.lr=0.05", "train.epochs=3"])
        >>> cfg["optim"]["lr"], cfg["train"]["epochs"], cfg["model"]["name"]
        (0.05, 3, 'mnist1d_static')
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = config_file.read_config_file(path)
        except DNWGraphError as err:
            raise ConfigError(str(err)) from None
    return resolve_config(raw, overrides)


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``"a.b.c=value"`` overrides to a nested dict (in a copy); values parsed as YAML.

    Raises:
        ConfigError: for a string without ``=`` or with an empty key.

    Examples:
        >>> apply_overrides({"optim": {"lr": 0.1}}, ["optim.lr=0.2", "model.kwargs.ratio=64"])
        {'optim': {'lr': 0.2}, 'model': {'kwargs': {'ratio': 64}}}
    """
    import yaml

    out = copy.deepcopy(config)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"'--set' expects section.key=value (got {item!r})")
        try:
            value = parse_yaml(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"'--set {item}': {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def resolve_config(raw: dict[str, Any], overrides: list[str] | None = None) -> dict[str, Any]:
    """Merge ``raw`` (and ``overrides``) over :data:`DEFAULTS` and check it.

    Raises:
        ConfigError: on an unknown section or key (the message lists the valid ones) or a
            value of the wrong type or range.
    """
    raw = apply_overrides(raw or {}, overrides or [])
    cfg = copy.deepcopy(DEFAULTS)
    for section, values in raw.items():
        if section not in cfg:
            raise ConfigError(f"unknown config section {section!r}; choose one of {list(cfg)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(
                f"config section {section!r} must be a mapping (got {type(values).__name__})"
            )
        for key, value in values.items():
            if key not in cfg[section] and section not in _OPEN_SECTIONS:
                raise ConfigError(
                    f"unknown key {section}.{key}; {section!r} takes {sorted(cfg[section])}"
                )
            cfg[section][key] = value
    _check(cfg)
    return cfg


def _type_error(key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{key} must be {expected} (got {value!r})")


def _number(cfg: dict, section: str, key: str, *, low: float = 0.0, integer: bool = False) -> None:
    value = cfg[section][key]
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value < low:
        kind = "an int" if integer else "a number"
        raise _type_error(f"{section}.{key}", f"{kind} >= {low:g}", value)
    if not integer:
        cfg[section][key] = float(value)


def _flag(cfg: dict, section: str, key: str) -> None:
    if not isinstance(cfg[section][key], bool):
        raise _type_error(f"{section}.{key}", "true or false", cfg[section][key])


def _check(cfg: dict[str, Any]) -> None:
    model = cfg["model"]
    if not isinstance(model["name"], str):
        raise _type_error("model.name", "a registered model name", model["name"])
    if model["kwargs"] is None:
        model["kwargs"] = {}
    if not isinstance(model["kwargs"], dict):
        raise _type_error("model.kwargs", "a mapping of keyword arguments", model["kwargs"])

    data = cfg["data"]
    if not isinstance(data["name"], str):
        raise _type_error("data.name", "a dataset name", data["name"])
    if data["dir"] is not None and not isinstance(data["dir"], str):
        raise _type_error("data.dir", "a folder path or null", data["dir"])
    for key in ("batch_size", "test_batch_size"):
        _number(cfg, "data", key, low=1, integer=True)
    _number(cfg, "data", "num_workers", integer=True)
    if data["augment"] is not None:
        _flag(cfg, "data", "augment")

    from dnwgraph.train.optim import INTERVALS, resolve_optimizer, resolve_scheduler

    try:
        resolve_optimizer(cfg["optim"]["name"])
        resolve_scheduler(cfg["schedule"]["name"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for section in ("optim", "schedule"):
        if cfg[section]["kwargs"] is None:
            cfg[section]["kwargs"] = {}
        if not isinstance(cfg[section]["kwargs"], dict):
            raise _type_error(f"{section}.kwargs", "a mapping of keywords", cfg[section]["kwargs"])
    if cfg["schedule"]["interval"] not in INTERVALS:
        raise ConfigError(
            f"schedule.interval must be one of {list(INTERVALS)} "
            f"(got {cfg['schedule']['interval']!r})"
        )
    for key in ("lr", "momentum", "weight_decay"):
        _number(cfg, "optim", key)
    _flag(cfg, "optim", "nesterov")
    clip = cfg["optim"]["grad_clip"]
    if clip is not None:
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip <= 0:
            raise _type_error("optim.grad_clip", "a positive number or null", clip)
        cfg["optim"]["grad_clip"] = float(clip)
    if cfg["optim"]["nesterov"] and cfg["optim"]["momentum"] <= 0:
        raise ConfigError("optim.nesterov needs optim.momentum > 0")

    sched = cfg["schedule"]
    ms = sched["milestones"] if sched["milestones"] is not None else []
    if not isinstance(ms, list) or not all(
        isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in ms
    ):
        raise _type_error("schedule.milestones", "a list of positive epoch numbers", ms)
    sched["milestones"] = sorted(ms)
    _number(cfg, "schedule", "gamma")
    _number(cfg, "schedule", "warmup_epochs", integer=True)

    train = cfg["train"]
    _number(cfg, "train", "epochs", low=1, integer=True)
    _number(cfg, "train", "seed", integer=True)
    _number(cfg, "train", "label_smoothing")
    if train["label_smoothing"] >= 1:
        raise _type_error("train.label_smoothing", "a number in [0, 1)", train["label_smoothing"])
    if not isinstance(train["device"], str):
        raise _type_error("train.device", "'cpu', 'cuda', 'cuda:N' or 'auto'", train["device"])
    _flag(cfg, "train", "tensorboard")
    _flag(cfg, "train", "snapshots")

    init = cfg["init"]
    if init["mode"] is not None and init["mode"] not in INIT_MODES:
        raise ConfigError(f"init.mode must be one of {list(INIT_MODES)} (got {init['mode']!r})")
    if (init["mode"] is None) != (init["from_run"] is None):
        raise ConfigError(
            "init.from_run and init.mode go together (got from_run="
            f"{init['from_run']!r}, mode={init['mode']!r})"
        )
    if init["from_run"] is not None and not isinstance(init["from_run"], str):
        raise _type_error("init.from_run", "a run directory", init["from_run"])
    if init["mode"] is not None:
        selection = model["kwargs"].get("selection", "fixed")
        if selection != "fixed":
            raise ConfigError(
                f"init.mode={init['mode']!r} trains a frozen wiring: model.kwargs.selection "
                f"must be 'fixed' (got {selection!r})"
            )
        model["kwargs"]["selection"] = "fixed"
