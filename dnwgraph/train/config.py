"""Training configuration: the YAML schema, its defaults, ``--set key=value`` overrides, checks.

A config file is a plain nested mapping (what ``yaml.safe_load`` returns);
:func:`resolve_config` applies the ``--set`` overrides to it and builds a :class:`TrainConfig`,
a tree of frozen dataclasses, one per section, whose fields carry the defaults and check every
value once, so the loop can trust it.  :meth:`TrainConfig.to_dict` gives the plain mapping back
(for the checkpoint, and the run's config file written by :class:`dnwgraph.runs.Run`, whose
YAML reader also reads the files given here).

Schema (defaults in brackets)::

    model:    {name [mnist1d_static], kwargs [{}]}
    data:     {name [mnist1d], dir [null], batch_size [128], test_batch_size [1000],
               augment [null: the dataset's default], num_workers [0],
               ...dataset options (e.g. num_samples)}
    optim:    {name [sgd] (a torch.optim optimizer: adam, adamw, ...; not LBFGS, SparseAdam,
               Muon), lr [0.1], momentum [0.9] (in [0, 1)), nesterov [false],
               weight_decay [5e-4] (for the optimizers that take them),
               kwargs [{}] (more optimizer keywords, e.g. betas),
               grad_clip [null: off] (max L2 norm of all gradients before each step)}
    schedule: {name [cosine] | multistep | constant | any torch.optim.lr_scheduler class
               (StepLR, OneCycleLR, ...), milestones [[]], gamma [0.1], warmup_epochs [0]
               (built-in schedules), kwargs [{}] and interval [epoch] | step (torch
               schedulers)}
    train:    {epochs [40], seed [0] (below 2**32), label_smoothing [0.0],
               device [cpu] (or cuda, auto), tensorboard [false], snapshots [true]}
    init:     {from_run [null], mode [null] | finetune | lottery}
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from dnwgraph.errors import DNWGraphError
from dnwgraph.runs import config_file
from dnwgraph.typing import PathLikeStr

__all__ = [
    "TrainConfig",
    "ModelSection",
    "DataSection",
    "OptimSection",
    "ScheduleSection",
    "TrainSection",
    "InitSection",
    "ConfigError",
    "load_config",
    "resolve_config",
    "apply_overrides",
]

INIT_MODES = ("finetune", "lottery")
#: ``train.seed`` is below this (NumPy's seeds are 32-bit; the loop derives seeds from it).
SEED_LIMIT = 2**32


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


def load_config(path: PathLikeStr | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config file (optional), apply ``key=value`` overrides, resolve and check it.

    Args:
        path (path, optional): YAML file following the schema above (a run's ``config.yaml``
            too: its ``run_id`` is left out); ``None`` starts from the defaults.  Read by
            :func:`dnwgraph.runs.config_file.read_config_file`, the reader
            of a run's ``config.yaml``.
        overrides (list of str, optional): ``"section.key=value"`` strings; the value is parsed
            as YAML (``lr=0.05``, ``milestones=[80,120]``, ``dir=null``).

    Returns:
        TrainConfig: the checked config (defaults for what the file leaves out).

    Raises:
        ConfigError: on a missing or unparsable file, an unknown key or a bad value.

    Examples:
        >>> cfg = load_config(None, ["optim.lr=0.05", "train.epochs=3"])
        >>> cfg.optim.lr, cfg.train.epochs, cfg.model.name
        (0.05, 3, 'mnist1d_static')
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = config_file.read_config_file(path)
        except DNWGraphError as err:
            raise ConfigError(str(err)) from None
        # a run's config.yaml starts a new run: its run id names the old run, not a setting
        raw.pop("run_id", None)
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


# ----------------------------------------------------------------------------- field checks
# A check takes the dotted key and the value, and returns the value to keep (normalised) or
# raises a one-line ConfigError "KEY must be EXPECTED (got VALUE)".

Check = Callable[[str, Any], Any]


def _type_error(key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{key} must be {expected} (got {value!r})")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(low: float = 0.0, below: float | None = None) -> Check:
    """A finite number ``>= low`` (and ``< below`` when given)."""
    expected = f"a number >= {low:g}" if below is None else f"a number in [{low:g}, {below:g})"

    def check(key: str, value: Any) -> float:
        if not _is_number(value) or not math.isfinite(value) or value < low:
            raise _type_error(key, expected, value)
        if below is not None and value >= below:
            raise _type_error(key, expected, value)
        return float(value)

    return check


def _integer(low: int = 0, below: int | None = None) -> Check:
    """An int ``>= low`` (and ``< below`` when given)."""
    expected = f"an int >= {low:g}" if below is None else f"an int in [{low}, {below})"

    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise _type_error(key, expected, value)
        if below is not None and value >= below:
            raise _type_error(key, expected, value)
        return value

    return check


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _type_error(key, "true or false", value)
    return value


def _text(expected: str) -> Check:
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _type_error(key, expected, value)
        return value

    return check


def _or_null(inner: Check) -> Check:
    def check(key: str, value: Any) -> Any:
        return None if value is None else inner(key, value)

    return check


def _mapping(expected: str) -> Check:
    def check(key: str, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _type_error(key, expected, value)
        return dict(value)

    return check


def _positive_or_null(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise _type_error(key, "a positive number or null", value)
    return float(value)


def _milestones(key: str, value: Any) -> list[int]:
    ms = [] if value is None else value
    if not isinstance(ms, list) or not all(
        isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in ms
    ):
        raise _type_error(key, "a list of positive epoch numbers", ms)
    return sorted(ms)


def _choice(choices: tuple[str, ...]) -> Check:
    def check(key: str, value: Any) -> Any:
        if value not in choices:
            raise ConfigError(f"{key} must be one of {list(choices)} (got {value!r})")
        return value

    return check


def _resolvable(what: str) -> Check:
    """A name that :mod:`dnwgraph.train.optim` resolves (``optimizer`` or ``scheduler``)."""

    def check(key: str, value: Any) -> Any:
        from dnwgraph.train import optim

        resolve = optim.resolve_optimizer if what == "optimizer" else optim.resolve_scheduler
        try:
            resolve(value)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return value

    return check


def _intervals(key: str, value: Any) -> str:
    from dnwgraph.train.optim import INTERVALS

    return _choice(INTERVALS)(key, value)


def _field(default: Any, check: Check | None = None) -> Any:
    """A section field: its default (a fresh copy per instance) and its check."""
    metadata = {} if check is None else {"check": check}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# --------------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class _Section:
    """A config section: every field is checked (and normalised) when it is built."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                key = f"{self.SECTION}.{f.name}"
                object.__setattr__(self, f.name, check(key, getattr(self, f.name)))
        self._check_together()

    def _check_together(self) -> None:
        """Checks that read more than one field (none by default)."""

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Any:
        """The section holding ``values`` (defaults for the keys not given).

        Raises:
            ConfigError: an unknown key (the message lists the valid ones) or a bad value.
        """
        known = cls.keys()
        for key in values:
            if key not in known:
                raise ConfigError(
                    f"unknown key {cls.SECTION}.{key}; {cls.SECTION!r} takes {sorted(known)}"
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The section as a plain mapping (a copy)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class ModelSection(_Section):
    """``model``: the registered model and its keyword arguments."""

    SECTION: ClassVar[str] = "model"
    name: str = _field("mnist1d_static", _text("a registered model name"))
    kwargs: dict[str, Any] = _field({}, _mapping("a mapping of keyword arguments"))


@dataclass(frozen=True)
class DataSection(_Section):
    """``data``: the dataset, its batch sizes, and its own options (``options``: the keys
    that are not fields, e.g. ``num_samples``, checked against the dataset when training)."""

    SECTION: ClassVar[str] = "data"
    name: str = _field("mnist1d", _text("a dataset name"))
    dir: str | None = _field(None, _or_null(_text("a folder path or null")))
    batch_size: int = _field(128, _integer(1))
    test_batch_size: int = _field(1000, _integer(1))
    augment: bool | None = _field(None, _or_null(_flag))
    num_workers: int = _field(0, _integer(0))
    options: dict[str, Any] = _field({})

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "options"]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DataSection:
        known = cls.keys()
        options = {k: v for k, v in values.items() if k not in known}
        return cls(**{k: v for k, v in values.items() if k in known}, options=options)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        options = out.pop("options")
        return {**out, **options}


@dataclass(frozen=True)
class OptimSection(_Section):
    """``optim``: the torch optimizer by name, its common keywords, gradient clipping."""

    SECTION: ClassVar[str] = "optim"
    name: str = _field("sgd", _resolvable("optimizer"))
    lr: float = _field(0.1, _number())
    momentum: float = _field(0.9, _number(0.0, 1.0))
    nesterov: bool = _field(False, _flag)
    weight_decay: float = _field(5e-4, _number())
    grad_clip: float | None = _field(None, _positive_or_null)
    kwargs: dict[str, Any] = _field({}, _mapping("a mapping of keywords"))

    def _check_together(self) -> None:
        from dnwgraph.train.optim import check_optimizer

        if self.nesterov and self.momentum <= 0:
            raise ConfigError("optim.nesterov needs optim.momentum > 0")
        try:  # every option, against the optimizer itself: one step over one parameter
            check_optimizer(self.to_dict())
        except ValueError as err:
            raise ConfigError(str(err)) from None


@dataclass(frozen=True)
class ScheduleSection(_Section):
    """``schedule``: a built-in schedule or a torch scheduler (:mod:`dnwgraph.train.optim`)."""

    SECTION: ClassVar[str] = "schedule"
    name: str = _field("cosine", _resolvable("scheduler"))
    milestones: list[int] = _field([], _milestones)
    gamma: float = _field(0.1, _number())
    warmup_epochs: int = _field(0, _integer(0))
    kwargs: dict[str, Any] = _field({}, _mapping("a mapping of keywords"))
    interval: str = _field("epoch", _intervals)

    def _check_together(self) -> None:
        from dnwgraph.train.optim import BUILTIN_SCHEDULES

        if self.name in BUILTIN_SCHEDULES and self.kwargs:
            raise ConfigError(
                f"schedule.kwargs {sorted(self.kwargs)} would be ignored: they go to a torch "
                f"scheduler, and {self.name!r} is built in (it takes schedule.milestones, "
                "gamma and warmup_epochs)"
            )


def _label_smoothing(key: str, value: Any) -> float:
    value = _number()(key, value)
    if value >= 1:
        raise _type_error(key, "a number in [0, 1)", value)
    return value


@dataclass(frozen=True)
class TrainSection(_Section):
    """``train``: epochs, seed, loss, device and what is written besides the checkpoint."""

    SECTION: ClassVar[str] = "train"
    epochs: int = _field(40, _integer(1))
    seed: int = _field(0, _integer(0, SEED_LIMIT))
    label_smoothing: float = _field(0.0, _label_smoothing)
    device: str = _field("cpu", _text("'cpu', 'cuda', 'cuda:N' or 'auto'"))
    tensorboard: bool = _field(False, _flag)
    snapshots: bool = _field(True, _flag)


@dataclass(frozen=True)
class InitSection(_Section):
    """``init``: start from another run's wiring (``finetune``) or its wiring and initial
    weights (``lottery``)."""

    SECTION: ClassVar[str] = "init"
    from_run: str | None = _field(None, _or_null(_text("a run directory")))
    mode: str | None = _field(None, _or_null(_choice(INIT_MODES)))

    def _check_together(self) -> None:
        if (self.mode is None) != (self.from_run is None):
            raise ConfigError(
                "init.from_run and init.mode go together (got from_run="
                f"{self.from_run!r}, mode={self.mode!r})"
            )


@dataclass(frozen=True)
class TrainConfig:
    """A checked training config: one frozen dataclass per section (schema in the module doc).

    Build it from a mapping with :func:`resolve_config` (or :meth:`from_dict`), from a file
    with :func:`load_config`; :meth:`to_dict` gives the plain mapping back.  With ``init.mode``
    set, ``model.kwargs.selection`` is ``'fixed'``.

    Raises:
        ConfigError: ``init.mode`` with a model whose ``selection`` is not ``'fixed'``.

    Examples:
        >>> cfg = TrainConfig(optim=OptimSection(lr=0.05))
        >>> cfg.optim.lr, cfg.train.epochs, cfg.to_dict()["optim"]["lr"]
        (0.05, 40, 0.05)
    """

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    train: TrainSection = field(default_factory=TrainSection)
    init: InitSection = field(default_factory=InitSection)

    def __post_init__(self) -> None:
        if self.init.mode is not None:
            selection = self.model.kwargs.get("selection", "fixed")
            if selection != "fixed":
                raise ConfigError(
                    f"init.mode={self.init.mode!r} trains a frozen wiring: "
                    f"model.kwargs.selection must be 'fixed' (got {selection!r})"
                )
            kwargs = {**self.model.kwargs, "selection": "fixed"}
            object.__setattr__(self, "model", replace(self.model, kwargs=kwargs))
        self._check_schedule()

    def _check_schedule(self) -> None:
        """The schedule, built over the configured optimizer and stepped once."""
        from dnwgraph.train.optim import check_scheduler

        try:
            check_scheduler(self.optim.to_dict(), self.schedule.to_dict(), self.train.epochs)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> TrainConfig:
        """The config a mapping of sections describes (defaults for what it leaves out).

        Raises:
            ConfigError: an unknown section or key (the message lists the valid ones), a
                section that is not a mapping, or a value of the wrong type or range.
        """
        names = [f.name for f in fields(cls)]
        sections: dict[str, Any] = {}
        for name, values in (raw or {}).items():
            if name not in names:
                raise ConfigError(f"unknown config section {name!r}; choose one of {names}")
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ConfigError(
                    f"config section {name!r} must be a mapping (got {type(values).__name__})"
                )
            sections[name] = values
        types = {f.name: f.default_factory for f in fields(cls)}
        return cls(**{k: types[k].from_dict(v) for k, v in sections.items()})  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The config as a plain nested mapping (what ``config.yaml`` holds)."""
        return {f.name: getattr(self, f.name).to_dict() for f in fields(self)}


def resolve_config(
    raw: Mapping[str, Any] | None, overrides: list[str] | None = None
) -> TrainConfig:
    """Apply ``overrides`` to ``raw`` (a mapping of sections) and build the checked config.

    Raises:
        ConfigError: on an unknown section or key (the message lists the valid ones) or a
            value of the wrong type or range.

    Examples:
        >>> resolve_config({"optim": {"lr": 1}}, ["train.epochs=3"]).optim.lr
        1.0
    """
    return TrainConfig.from_dict(apply_overrides(dict(raw or {}), overrides or []))
