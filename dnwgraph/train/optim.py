"""Optimizers and learning-rate schedulers by name, and training callbacks.

``optim.name`` is any :mod:`torch.optim` optimizer (``sgd``, ``adam``, ``adamw``, ...; case does
not matter) and ``schedule.name`` one of the built-in per-step schedules
(:data:`BUILTIN_SCHEDULES`: ``cosine``, ``multistep``, ``constant``, each a
:class:`StepSchedule`) or any :mod:`torch.optim.lr_scheduler` class (``StepLR``, ``OneCycleLR``,
``ReduceLROnPlateau``, ...) built with ``schedule.kwargs``.  Every schedule is a torch
scheduler: the built-in ones are stepped after every optimisation step, the others every epoch
(``schedule.interval: epoch``) or every optimisation step (``interval: step``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from dnwgraph.errors import DNWGraphError

__all__ = [
    "BUILTIN_SCHEDULES",
    "INTERVALS",
    "StepSchedule",
    "Callback",
    "optimizer_names",
    "scheduler_names",
    "resolve_optimizer",
    "resolve_scheduler",
    "build_optimizer",
    "build_scheduler",
    "check_optimizer",
    "check_scheduler",
    "UNSUPPORTED_OPTIMIZERS",
    "UNSUPPORTED_SCHEDULERS",
    "steps_per_iteration",
]

BUILTIN_SCHEDULES: tuple[str, ...] = ("cosine", "multistep", "constant")
INTERVALS: tuple[str, ...] = ("epoch", "step")

#: torch optimizers that ``dnwgraph train`` cannot run, and why (they are not listed as valid).
UNSUPPORTED_OPTIMIZERS: dict[str, str] = {
    "LBFGS": "it needs a closure that evaluates the loss again",
    "SparseAdam": "it needs sparse gradients",
    "Muon": "it takes only 2-D parameters, and edge weights are 1-D",
}
#: torch schedulers that cannot be given in a config (they take functions or schedulers).
UNSUPPORTED_SCHEDULERS: dict[str, str] = {
    "LambdaLR": "it takes a Python function",
    "MultiplicativeLR": "it takes a Python function",
    "SequentialLR": "it takes other schedulers",
    "ChainedScheduler": "it takes other schedulers",
}
#: optimizer keywords that are flags (torch truth-tests them: ``"false"`` would be on).
_FLAGS = frozenset(
    ("amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused", "centered",
     "nesterov", "decoupled_weight_decay")
)  # fmt: skip


class StepSchedule(torch.optim.lr_scheduler.LRScheduler):
    r"""The built-in schedules as a torch scheduler, stepped after every optimisation step.

    At step :math:`t` (0-based; ``last_epoch`` counts steps here), with :math:`T` steps in
    all and :math:`W` warm-up steps:

    * ``cosine``: :math:`\eta_t = \tfrac12\eta_0(1 + \cos(\pi (t - W) / (T - W)))`;
    * ``multistep``: :math:`\eta_0\gamma^{m}` with :math:`m` the number of milestones
      (epochs) already reached;
    * ``constant``: :math:`\eta_0`;

    and a linear warm-up :math:`\eta_0 (t + 1) / W` over the first :math:`W` steps for every
    schedule.  Its state (``state_dict``) is plain values, like any torch scheduler's.

    Args:
        optimizer (torch.optim.Optimizer): its groups' ``lr`` is :math:`\eta_0`.
        name (str): one of :data:`BUILTIN_SCHEDULES`.
        steps_per_epoch (int): optimisation steps per epoch.
        epochs (int): epochs of the run.
        milestones (sequence of int, optional): epochs where ``multistep`` multiplies by
            ``gamma``. (default: ``()``)
        gamma (float, optional): the ``multistep`` factor. (default: ``0.1``)
        warmup_epochs (int, optional): epochs of linear warm-up. (default: ``0``)

    Examples:
        >>> opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> s = StepSchedule(opt, "multistep", 10, 4, milestones=[2], gamma=0.1)
        >>> lrs = []
        >>> for _ in range(21):
        ...     lrs.append(opt.param_groups[0]["lr"])
        ...     opt.step()
        ...     s.step()
        >>> [round(lrs[t], 3) for t in (0, 19, 20)]
        [1.0, 1.0, 0.1]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        name: str,
        steps_per_epoch: int,
        epochs: int,
        milestones: Sequence[int] = (),
        gamma: float = 0.1,
        warmup_epochs: int = 0,
    ) -> None:
        if name not in BUILTIN_SCHEDULES:
            raise DNWGraphError(
                f"StepSchedule takes one of {list(BUILTIN_SCHEDULES)} (got {name!r})"
            )
        self.name = name
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = steps_per_epoch * epochs
        self.warmup_steps = steps_per_epoch * int(warmup_epochs)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, step: int, base_lr: float) -> float:
        """The learning rate of optimisation step ``step`` for a group whose ``lr`` is
        ``base_lr`` (the formulas of the class doc)."""
        warm = self.warmup_steps
        if step < warm:
            return base_lr * (step + 1) / warm
        if self.name == "cosine":
            t = (step - warm) / max(self.total_steps - warm, 1)
            return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(t, 1.0)))
        if self.name == "multistep":
            epoch = step // self.steps_per_epoch
            reached = sum(1 for m in self.milestones if epoch >= m)
            return base_lr * self.gamma**reached
        return base_lr

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return [self.lr_at(self.last_epoch, base) for base in self.base_lrs]


def _classes(module: Any, base: type) -> dict[str, type]:
    return {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, base)
        and obj is not base
        and not name.startswith("_")
    }


def optimizer_names() -> list[str]:
    """Names of the :mod:`torch.optim` optimizers that ``dnwgraph train`` runs (all but
    :data:`UNSUPPORTED_OPTIMIZERS`).

    Examples:
        >>> {"SGD", "Adam", "AdamW"} <= set(optimizer_names()), "LBFGS" in optimizer_names()
        (True, False)
    """
    found = _classes(torch.optim, torch.optim.Optimizer)
    return sorted(n for n in found if n not in UNSUPPORTED_OPTIMIZERS)


def scheduler_names() -> list[str]:
    """Names of the :mod:`torch.optim.lr_scheduler` schedulers.

    Examples:
        >>> {"StepLR", "OneCycleLR", "ReduceLROnPlateau"} <= set(scheduler_names())
        True
    """
    sched = torch.optim.lr_scheduler
    found = _classes(sched, sched.LRScheduler)
    found["ReduceLROnPlateau"] = sched.ReduceLROnPlateau
    return sorted(n for n in found if n not in UNSUPPORTED_SCHEDULERS)


def resolve_optimizer(name: str) -> type[torch.optim.Optimizer]:
    """The :mod:`torch.optim` class called ``name`` (case-insensitive).

    Raises:
        ValueError: an unknown name (the message lists the valid ones).

    Examples:
        >>> resolve_optimizer("adamw").__name__
        'AdamW'
    """
    by_lower = {n.lower(): n for n in optimizer_names()}
    key = by_lower.get(str(name).lower())
    if key is None:
        why = {n.lower(): f"; {n} is not supported: {r}" for n, r in UNSUPPORTED_OPTIMIZERS.items()}
        raise DNWGraphError(
            f"optim.name must be one of {optimizer_names()} (got {name!r}"
            f"{why.get(str(name).lower(), '')})"
        )
    return getattr(torch.optim, key)


def resolve_scheduler(name: str) -> type | None:
    """The :mod:`torch.optim.lr_scheduler` class called ``name`` (case-insensitive), or
    ``None`` for a built-in schedule.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).

    Examples:
        >>> resolve_scheduler("steplr").__name__, resolve_scheduler("cosine")
        ('StepLR', None)
    """
    if name in BUILTIN_SCHEDULES:
        return None
    by_lower = {n.lower(): n for n in scheduler_names()}
    key = by_lower.get(str(name).lower())
    if key is None:
        why = {n.lower(): f"; {n} is not supported: {r}" for n, r in UNSUPPORTED_SCHEDULERS.items()}
        raise DNWGraphError(
            f"schedule.name must be one of {list(BUILTIN_SCHEDULES)} or a "
            f"torch.optim.lr_scheduler class {scheduler_names()} (got {name!r}"
            f"{why.get(str(name).lower(), '')})"
        )
    return getattr(torch.optim.lr_scheduler, key)


def build_optimizer(
    params: Iterable[nn.Parameter], optim_cfg: dict[str, Any]
) -> torch.optim.Optimizer:
    """The configured optimizer over ``params``.

    ``lr`` goes to every optimizer, ``weight_decay``, ``momentum`` and ``nesterov`` to those
    that take them (``momentum`` to SGD, RMSprop, ...; ``weight_decay`` to all but Rprop), and
    ``optim.kwargs`` (e.g. ``betas``) win over all.  Each keyword of ``optim.kwargs`` must be
    one the optimizer takes; flags must be booleans, ``betas`` a pair of numbers in [0, 1),
    numbers finite.

    Raises:
        ValueError: an unknown name, a keyword the optimizer does not take, or a value it
            refuses (one line, whatever torch raised).

    Examples:
        >>> p = [nn.Parameter(torch.zeros(2))]
        >>> opt = build_optimizer(p, {"name": "adamw", "lr": 0.01, "weight_decay": 0.1,
        ...                           "momentum": 0.9, "nesterov": False, "kwargs": {}})
        >>> type(opt).__name__, opt.param_groups[0]["lr"]
        ('AdamW', 0.01)
    """
    cls = resolve_optimizer(optim_cfg["name"])
    takes = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {"lr": optim_cfg["lr"]}
    for key in ("weight_decay", "momentum", "nesterov"):
        if key in takes and key in optim_cfg:
            kwargs[key] = optim_cfg[key]
    extra = dict(optim_cfg.get("kwargs") or {})
    for key, value in extra.items():
        _check_optimizer_keyword(cls, takes, key, value)
    kwargs.update(extra)
    try:
        return cls(params, **kwargs)
    except Exception as err:  # noqa: BLE001 - torch checks the user's values with several types
        raise DNWGraphError(f"optim: {cls.__name__}({kwargs}) failed: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_optimizer_keyword(cls: type, takes: Any, key: str, value: Any) -> None:
    """One ``optim.kwargs`` entry: a keyword ``cls`` takes, with a value of the right kind."""
    accepted = sorted(k for k in takes if k not in ("self", "params"))
    if key not in accepted:
        raise DNWGraphError(
            f"optim.kwargs.{key} is not a keyword of {cls.__name__} (it takes {accepted})"
        )
    if key in _FLAGS and value is not None and not isinstance(value, bool):
        raise DNWGraphError(f"optim.kwargs.{key} must be true or false (got {value!r:.80})")
    if key == "betas" and not (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(_finite(b) and 0 <= b < 1 for b in value)
    ):
        raise DNWGraphError(f"optim.kwargs.betas must be two numbers in [0, 1) (got {value!r:.80})")
    if isinstance(value, float) and not math.isfinite(value):
        raise DNWGraphError(f"optim.kwargs.{key} must be a finite number (got {value!r:.80})")


def check_optimizer(optim_cfg: dict[str, Any]) -> None:
    """Build the configured optimizer over one parameter and take two steps (some options are
    read only from the second one on), so that a value it refuses is found when the config is
    read, not when the run has started.

    Raises:
        ValueError: as :func:`build_optimizer`, or the step fails (one line).

    Examples:
        >>> check_optimizer({"name": "adam", "lr": 0.1, "kwargs": {"betas": [0.9]}})
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphError: optim.kwargs.betas must be two numbers in [0, 1) ...
    """
    param = nn.Parameter(torch.zeros(2))
    optimizer = build_optimizer([param], optim_cfg)
    param.grad = torch.ones(2)
    try:
        optimizer.step()
        optimizer.step()
    except Exception as err:  # noqa: BLE001 - as in build_optimizer
        name = type(optimizer).__name__
        raise DNWGraphError(f"optim: {name} cannot take a step: {_first_line(err)}") from None


def steps_per_iteration(name: str, interval: str) -> bool:
    """Whether the scheduler ``schedule.name`` steps after every optimisation step (the
    built-in schedules, and ``interval: step``) rather than after every epoch.

    Examples:
        >>> steps_per_iteration("cosine", "epoch"), steps_per_iteration("StepLR", "epoch")
        (True, False)
    """
    return name in BUILTIN_SCHEDULES or interval == "step"


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule_cfg: dict[str, Any],
    steps_per_epoch: int,
    epochs: int,
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """The configured scheduler: a :class:`StepSchedule` for a built-in schedule
    (``milestones``, ``gamma``, ``warmup_epochs``), else the :mod:`torch.optim.lr_scheduler`
    class built with ``schedule.kwargs``.

    ``OneCycleLR`` gets ``max_lr`` (the optimizer's ``lr``) and ``total_steps`` unless
    ``schedule.kwargs`` gives them; ``CosineAnnealingLR`` gets ``T_max`` (epochs, or steps with
    ``interval: step``).

    Raises:
        ValueError: an unknown name or keywords the scheduler does not accept.

    Examples:
        >>> opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> s = build_scheduler(opt, {"name": "StepLR", "kwargs": {"step_size": 1}}, 10, 3)
        >>> type(s).__name__
        'StepLR'
    """
    cls = resolve_scheduler(schedule_cfg["name"])
    if cls is None:
        return StepSchedule(
            optimizer,
            schedule_cfg["name"],
            steps_per_epoch,
            epochs,
            milestones=schedule_cfg.get("milestones") or (),
            gamma=schedule_cfg.get("gamma", 0.1),
            warmup_epochs=schedule_cfg.get("warmup_epochs", 0),
        )
    kwargs = dict(schedule_cfg.get("kwargs") or {})
    per_step = schedule_cfg.get("interval", "epoch") == "step"
    if cls.__name__ == "OneCycleLR":
        kwargs.setdefault("max_lr", optimizer.param_groups[0]["lr"])
        kwargs.setdefault("total_steps", steps_per_epoch * epochs if per_step else epochs)
    if cls.__name__ == "CosineAnnealingLR":
        kwargs.setdefault("T_max", steps_per_epoch * epochs if per_step else epochs)
    try:
        scheduler = cls(optimizer, **kwargs)
    except Exception as err:  # noqa: BLE001 - torch checks the user's values with several types
        raise DNWGraphError(
            f"schedule: {cls.__name__}({kwargs}) failed: {_first_line(err)}"
        ) from None
    steps = steps_per_epoch * epochs if per_step else epochs
    total = getattr(scheduler, "total_steps", None)
    if cls.__name__ == "OneCycleLR" and isinstance(total, int) and total < steps:
        raise DNWGraphError(
            f"schedule: OneCycleLR has total_steps={total}, but the run steps it {steps} times "
            f"({'every optimisation step' if per_step else 'every epoch'}); leave "
            "schedule.kwargs.total_steps unset to get the run's number"
        )
    return scheduler


def check_scheduler(optim_cfg: dict[str, Any], schedule_cfg: dict[str, Any], epochs: int) -> None:
    """Build the configured scheduler over the configured optimizer (one parameter, one step
    per epoch) and step it once, so that a value it refuses is found when the config is read.

    Raises:
        ValueError: as :func:`build_scheduler`, or the step fails (one line).

    Examples:
        >>> check_scheduler({"name": "sgd", "lr": 0.1}, {"name": "StepLR", "kwargs": {}}, 3)
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphError: schedule: StepLR({}) failed: TypeError: ...step_size...
    """
    optimizer = build_optimizer([nn.Parameter(torch.zeros(2))], optim_cfg)
    scheduler = build_scheduler(optimizer, schedule_cfg, 1, epochs)
    try:
        optimizer.step()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(0.0)
        else:
            scheduler.step()
    except Exception as err:  # noqa: BLE001 - as in build_scheduler
        name = type(scheduler).__name__
        raise DNWGraphError(f"schedule: {name} cannot take a step: {_first_line(err)}") from None


class Callback:
    """Hooks into :func:`dnwgraph.train.train` for your own logging; subclass and override.

    Called on the main process only. Every method does nothing by default.

    Examples:
        >>> class Rows(Callback):
        ...     def __init__(self):
        ...         self.rows = []
        ...     def on_epoch_end(self, row, model):
        ...         self.rows.append(row["test_acc"])
        >>> Rows().rows
        []
    """

    def on_train_begin(self, model: nn.Module, config: dict[str, Any]) -> None:
        """Before the first epoch, with the model and the checked config
        (:class:`~dnwgraph.train.config.TrainConfig`)."""

    def on_epoch_end(self, row: dict[str, Any], model: nn.Module) -> None:
        """After every epoch, with its metric row (the columns of ``metrics.csv``)."""

    def on_train_end(self, history: list[dict[str, Any]]) -> None:
        """After the last epoch, with every metric row."""
