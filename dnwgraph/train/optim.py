"""Optimizers and learning-rate schedulers by name, and training callbacks.

``optim.name`` is any :mod:`torch.optim` optimizer (``sgd``, ``adam``, ``adamw``, ...; case does
not matter) and ``schedule.name`` one of the built-in per-step schedules (``cosine``,
``multistep``, ``constant``, see :func:`dnwgraph.train.loop.lr_at`) or any
:mod:`torch.optim.lr_scheduler` class (``StepLR``, ``OneCycleLR``, ``ReduceLROnPlateau``, ...)
built with ``schedule.kwargs`` and stepped every epoch (``schedule.interval: epoch``) or every
optimisation step (``interval: step``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from dnwgraph.errors import DNWGraphError

__all__ = [
    "BUILTIN_SCHEDULES",
    "Callback",
    "optimizer_names",
    "scheduler_names",
    "resolve_optimizer",
    "resolve_scheduler",
    "build_optimizer",
    "build_scheduler",
]

BUILTIN_SCHEDULES: tuple[str, ...] = ("cosine", "multistep", "constant")
INTERVALS: tuple[str, ...] = ("epoch", "step")


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


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule_cfg: dict[str, Any],
    steps_per_epoch: int,
    epochs: int,
) -> Any | None:
    """The configured :mod:`torch.optim.lr_scheduler` scheduler, or ``None`` for a built-in
    schedule (the loop sets the learning rate of every step itself).

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
        return None
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
        """Before the first epoch, with the model and the resolved config."""

    def on_epoch_end(self, row: dict[str, Any], model: nn.Module) -> None:
        """After every epoch, with its metric row (the columns of ``metrics.csv``)."""

    def on_train_end(self, history: list[dict[str, Any]]) -> None:
        """After the last epoch, with every metric row."""
