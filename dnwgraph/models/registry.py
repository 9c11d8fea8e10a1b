"""Model registry: ``register_model`` / ``create_model`` / ``list_models`` (timm style)."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.nn.spec import WiringSpec
from dnwgraph.registry import Registry
from dnwgraph.select import UnknownOptionError
from dnwgraph.select.strategies import SELECTIONS, selection_options

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

    Keywords are checked against the factory's signature; a factory that passes further
    keywords on (``**selection_options``) refuses, by name, one that nothing down the line
    takes.  The model records how it was built as ``model.model_spec = {"name": name,
    "kwargs": kwargs}``; :func:`~dnwgraph.models.save_pretrained` writes it to
    ``config.json``.

    Raises:
        ValueError: for an unknown name (the message lists the registered ones).
        TypeError: for a keyword the model does not take (a
            :class:`~dnwgraph.errors.DNWGraphTypeError`, also a ``ValueError``; the message
            names it, suggests close matches and lists the valid ones).

    Examples:
        >>> import torch
        >>> model = create_model("mnist1d_static", selection="random", seed=0)
        >>> model(torch.randn(2, 40)).shape
        torch.Size([2, 10])
        >>> model.model_spec
        {'name': 'mnist1d_static', 'kwargs': {'selection': 'random', 'seed': 0}}
        >>> create_model("mnist1d_static", ratoi=3)
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphTypeError: unknown keyword 'ratoi' for model 'mnist1d_static'; \
did you mean 'ratio'? (valid: impl, num_classes, ratio, selection, the options of selection \
'dnw' [scope] and the keywords of StaticNeuralGraph that it does not set)
    """
    factory = MODELS.get(name)
    params = inspect.signature(factory).parameters
    named = [n for n, p in params.items() if p.kind not in (_VAR_POSITIONAL, _VAR_KEYWORD)]
    passes_on = any(p.kind is _VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in named]
    if unknown and not passes_on:
        raise _unknown_keyword(name, unknown[0], factory, kwargs)
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        if isinstance(exc, UnknownOptionError):  # a selection's option
            bad: str | None = exc.option
        else:
            found = None if isinstance(exc, DNWGraphError) else _REFUSED.search(str(exc))
            bad = None if found is None else found[1]
        if bad is None or bad not in unknown:
            raise
        raise _unknown_keyword(name, bad, factory, kwargs) from exc
    model.model_spec = {"name": name, "kwargs": dict(kwargs)}
    return model


_VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
# what Python says when a call gets a keyword its callee does not take, or sets itself
_REFUSED = re.compile(
    r"(?:unexpected keyword argument|multiple values for (?:keyword )?argument) '(\w+)'"
)


def _unknown_keyword(
    name: str, bad: str, factory: Callable[..., Any], kwargs: dict[str, Any]
) -> DNWGraphTypeError:
    """The one-line error for keyword ``bad``: close matches first, then the valid ones."""
    params = inspect.signature(factory).parameters
    valid = sorted(n for n, p in params.items() if p.kind not in (_VAR_POSITIONAL, _VAR_KEYWORD))
    also, near = [], list(valid)
    if any(p.kind is _VAR_KEYWORD for p in params.values()):
        selection = kwargs.get("selection", getattr(params.get("selection"), "default", None))
        if isinstance(selection, str) and selection in SELECTIONS:
            options = selection_options(selection)
            also.append(f"the options of selection {selection!r} [{', '.join(options)}]")
            near += options
        built = _returned_class(factory)
        if built is not None:
            also.append(f"the keywords of {built.__name__} that it does not set")
            near += list(inspect.signature(built).parameters)
            if "spec" in near:  # the wiring keywords a preset puts in the model's spec
                near += [f.name for f in dataclasses.fields(WiringSpec)]
    matches = difflib.get_close_matches(bad, sorted(set(near) - {bad}), n=3)
    hint = f"; did you mean {' or '.join(map(repr, matches))}?" if matches else ""
    listed = ", ".join(valid + also[:1]) + (f" and {also[1]}" if len(also) > 1 else "")
    return DNWGraphTypeError(f"unknown keyword {bad!r} for model {name!r}{hint} (valid: {listed})")


def _returned_class(factory: Callable[..., Any]) -> type | None:
    """The class a factory says it returns (its return annotation), if it names one."""
    if isinstance(factory, type):
        return None
    try:
        built = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve says nothing
        return None
    return built if isinstance(built, type) and issubclass(built, nn.Module) else None
