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
    "steps_per_iteration",
]

BUILTIN_SCHEDULES: tuple[str, ...] = ("cosine", "multistep", "constant")
INTERVALS: tuple[str, ...] = ("epoch", "step")


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
    """Names of the :mod:`torch.optim` optimizers.

    Examples:
        >>> {"SGD", "Adam", "AdamW"} <= set(optimizer_names())
        True
    """
    return sorted(_classes(torch.optim, torch.optim.Optimizer))


def scheduler_names() -> list[str]:
    """Names of the :mod:`torch.optim.lr_scheduler` schedulers.

    Examples:
        >>> {"StepLR", "OneCycleLR", "ReduceLROnPlateau"} <= set(scheduler_names())
        True
    """
    sched = torch.optim.lr_scheduler
    found = _classes(sched, sched.LRScheduler)
    found["ReduceLROnPlateau"] = sched.ReduceLROnPlateau
    return sorted(found)


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
        raise DNWGraphError(f"optim.name must be one of {optimizer_names()} (got {name!r})")
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
        raise DNWGraphError(
            f"schedule.name must be one of {list(BUILTIN_SCHEDULES)} or a "
            f"torch.optim.lr_scheduler class {scheduler_names()} (got {name!r})"
        )
    return getattr(torch.optim.lr_scheduler, key)


def build_optimizer(
    params: Iterable[nn.Parameter], optim_cfg: dict[str, Any]
) -> torch.optim.Optimizer:
    """The configured optimizer over ``params``.

    ``lr`` and ``weight_decay`` go to every optimizer, ``momentum`` and ``nesterov`` to those
    that take them (SGD, RMSprop, ...), and ``optim.kwargs`` (e.g. ``betas``) win over all.

    Raises:
        ValueError: an unknown name or a keyword the optimizer does not take.

    Examples:
        >>> p = [nn.Parameter(torch.zeros(2))]
        >>> opt = build_optimizer(p, {"name": "adamw", "lr": 0.01, "weight_decay": 0.1,
        ...                           "momentum": 0.9, "nesterov": False, "kwargs": {}})
        >>> type(opt).__name__, opt.param_groups[0]["lr"]
        ('AdamW', 0.01)
    """
    cls = resolve_optimizer(optim_cfg["name"])
    takes = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {"lr": optim_cfg["lr"], "weight_decay": optim_cfg["weight_decay"]}
    for key in ("momentum", "nesterov"):
        if key in takes and key in optim_cfg:
            kwargs[key] = optim_cfg[key]
    kwargs.update(optim_cfg.get("kwargs") or {})
    try:
        return cls(params, **kwargs)
    except (TypeError, ValueError) as err:
        raise DNWGraphError(f"optim: {cls.__name__}({kwargs}) failed: {err}") from None


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
        return cls(optimizer, **kwargs)
    except (TypeError, ValueError) as err:
        raise DNWGraphError(f"schedule: {cls.__name__}({kwargs}) failed: {err}") from None


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
