"""Model registry: ``register_model`` / ``create_model`` / ``list_models`` (timm style)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from dnwgraph.errors import DNWGraphTypeError
from dnwgraph.registry import Registry

F = TypeVar("F", bound=Callable[..., nn.Module])

#: Model factories by name.
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def register_model(name: str | None = None) -> Callable[[F], F]:
    """Decorator registering a model factory (a function or class returning an ``nn.Module``).

    Args:
        name (str, optional): registry name; defaults to the factory's ``__name__``.

    Examples:
        >>> @register_model("doc_example_linear")
        ... def _linear(in_features: int = 4) -> nn.Module:
        ...     return nn.Linear(in_features, 2)
        >>> create_model("doc_example_linear", in_features=3).in_features
        3
    """

    def wrap(fn: F) -> F:
        MODELS.register(name or fn.__name__, fn)
        return fn

    return wrap


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by a glob ``pattern``.

    Examples:
        >>> isinstance(list_models("*"), list)
        True
    """
    return MODELS.list(pattern)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` with keyword arguments.

    The model records how it was built as ``model.model_spec = {"name": name, "kwargs":
    kwargs}``; :func:`~dnwgraph.models.save_pretrained` writes it to ``config.json``.

    Raises:
        ValueError: for an unknown name (the message lists the registered ones).
        TypeError: for a keyword the model does not take (the message lists those it takes).

    Examples:
        >>> import torch
        >>> model = create_model("mnist1d_static", selection="random", seed=0)
        >>> model(torch.randn(2, 40)).shape
        torch.Size([2, 10])
        >>> model.model_spec
        {'name': 'mnist1d_static', 'kwargs': {'selection': 'random', 'seed': 0}}
    """
    factory = MODELS.get(name)
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise DNWGraphTypeError(
                f"model {name!r} got unknown argument(s) {unknown}; it takes {sorted(params)}"
            )
    model = factory(**kwargs)
    model.model_spec = {"name": name, "kwargs": dict(kwargs)}
    return model
