"""A model's build arguments as JSON plus tensors, and back (the ``args``/``kwargs`` of a
pretrained folder's ``config.json``).

JSON values stay as they are (tuples become lists: every constructor takes sequences);
tensors go to the safetensors file and are named in JSON as ``{"$tensor": KEY}``; a
:class:`~dnwgraph.Wiring` and a :class:`~dnwgraph.nn.WiringSpec` are written field by field as
``{"$wiring": {...}}`` / ``{"$spec": {...}}``; a stem made by one of dnwgraph's stem builders
(:func:`stem_builder`) as ``{"$stem": {"name", "kwargs"}}``. Decoding knows these four tags
and nothing else: it never imports a module or calls anything named in the file but these
builders, so a config cannot run code.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError
from dnwgraph.graph import Wiring
from dnwgraph.nn import WiringSpec
from dnwgraph.registry import Registry

#: Prefix of the argument tensors' keys in ``model.safetensors``.
TENSOR_PREFIX = "__args__."
_WIRING_FIELDS = (
    "edge_index",
    "num_nodes",
    "input_nodes",
    "output_nodes",
    "acyclic",
    "self_loops",
    "edge_weight",
)
_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(WiringSpec))
_MAX_DEPTH = 32
_TAGS = ("$tensor", "$wiring", "$spec", "$stem")
#: dnwgraph's stem builders by name: the only modules a config may name.
_STEMS: Registry[Callable[..., nn.Module]] = Registry("stem")

B = TypeVar("B", bound=Callable[..., nn.Module])


def stem_builder(fn: B) -> B:
    """Decorator for dnwgraph's stem builders: the module built remembers its builder and
    arguments (``module.stem_spec``), so a model holding it saves with ``save_pretrained``.

    Examples:
        >>> @stem_builder
        ... def doc_stem(width: int = 2) -> nn.Module:
        ...     return nn.Linear(width, width)
        >>> doc_stem(3).stem_spec
        {'name': 'doc_stem', 'kwargs': {'width': 3}}
    """
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def build(*args: Any, **kwargs: Any) -> nn.Module:
        module = fn(*args, **kwargs)
        bound = dict(signature.bind(*args, **kwargs).arguments)
        setattr(module, "stem_spec", {"name": fn.__name__, "kwargs": bound})  # noqa: B010
        return module

    _STEMS.register(fn.__name__, build, replace=True)
    return build  # type: ignore[return-value]


def encode(value: Any, path: str, tensors: dict[str, Tensor], depth: int = 0) -> Any:
    """``value`` as JSON; its tensors are added to ``tensors``.

    Raises:
        DNWGraphError: a value of another type (named by its ``path``, e.g. ``kwargs.stem``).

    Examples:
        >>> tensors = {}
        >>> encode({"ratio": 0.5, "mask": torch.ones(2, dtype=torch.bool)}, "kwargs", tensors)
        {'ratio': 0.5, 'mask': {'$tensor': '__args__.kwargs.mask'}}
    """
    if depth > _MAX_DEPTH:
        raise DNWGraphError(f"{path!r} is nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DNWGraphError(f"{path!r} must be a finite number (got {value!r})")
        return value
    if isinstance(value, (list, tuple)):
        return [encode(v, f"{path}.{i}", tensors, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str) or k.startswith("$")]
        if bad:
            raise DNWGraphError(
                f"{path!r} must have string keys not starting with '$' (got {bad[0]!r})"
            )
        return {k: encode(v, f"{path}.{k}", tensors, depth + 1) for k, v in value.items()}
    if isinstance(value, Tensor):
        key = TENSOR_PREFIX + path
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"$tensor": key}
    if isinstance(value, Wiring):
        fields = {name: getattr(value, name) for name in _WIRING_FIELDS}
        return {"$wiring": encode(fields, path, tensors, depth + 1)}
    if isinstance(value, WiringSpec):
        fields = {name: getattr(value, name) for name in _SPEC_FIELDS}
        return {"$spec": encode(fields, path, tensors, depth + 1)}
    stem = getattr(value, "stem_spec", None) if isinstance(value, nn.Module) else None
    if isinstance(stem, dict) and stem.get("name") in _STEMS:
        return {"$stem": encode(stem, path, tensors, depth + 1)}
    what = "an nn.Module" if isinstance(value, nn.Module) else "of another type"
    raise DNWGraphError(
        f"save_pretrained stores the model's arguments in config.json: {path!r} must be "
        f"JSON, a tensor, a Wiring, a WiringSpec or a dnwgraph stem (got a "
        f"{type(value).__name__}, {what}); build the model with create_model from a registered "
        "factory that makes it"
    )


def decode(value: Any, path: str, tensors: dict[str, Tensor], used: set[str]) -> Any:
    """The inverse of :func:`encode`; the tensor keys read are added to ``used``.

    Raises:
        DNWGraphError: an unknown ``$`` tag, a tensor key not in ``tensors``, or a Wiring or
            WiringSpec its constructor refuses (named by ``path``).

    Examples:
        >>> decode({"$wiring": {"edge_index": [[0], [1]], "num_nodes": 2}}, "args", {}, set())
        Wiring(num_nodes=2, num_edges=1, inputs=1, outputs=1, acyclic=True)
    """
    if isinstance(value, list):
        return [decode(v, f"{path}.{i}", tensors, used) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    tags = [k for k in value if k.startswith("$")]
    if not tags:
        return {k: decode(v, f"{path}.{k}", tensors, used) for k, v in value.items()}
    if len(value) != 1 or tags[0] not in _TAGS:
        raise DNWGraphError(
            f"{path!r} must be a value or a one-key mapping tagged {list(_TAGS)} "
            f"(got keys {sorted(value)})"
        )
    tag, body = tags[0], value[tags[0]]
    if tag == "$tensor":
        if not isinstance(body, str) or body not in tensors:
            raise DNWGraphError(
                f"{path!r} names the tensor {body!r}, which model.safetensors does not hold"
            )
        used.add(body)
        return tensors[body]
    fields = {"$wiring": _WIRING_FIELDS, "$spec": _SPEC_FIELDS, "$stem": ("name", "kwargs")}[tag]
    if not isinstance(body, dict) or not set(body) <= set(fields):
        got = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise DNWGraphError(f"{path!r}: a {tag} takes the fields {list(fields)} (got {got})")
    kwargs = decode(body, path, tensors, used)
    return _build(tag, kwargs, path)


def _build(tag: str, kwargs: dict[str, Any], path: str) -> Any:
    try:
        if tag == "$spec":
            return WiringSpec(**kwargs)
        if tag == "$stem":
            if kwargs.get("name") not in _STEMS or not isinstance(kwargs.get("kwargs"), dict):
                raise DNWGraphError(
                    f"a stem is {{'name': one of {sorted(_STEMS)}, 'kwargs': {{...}}}} "
                    f"(got {kwargs.get('name')!r})"
                )
            return _STEMS.get(kwargs["name"])(**kwargs["kwargs"])
        if "edge_index" not in kwargs:
            raise DNWGraphError("a Wiring needs its 'edge_index'")
        edge_index = kwargs.pop("edge_index")
        if isinstance(edge_index, list):  # a hand-written list of [sources, targets]
            edge_index = torch.tensor(edge_index, dtype=torch.long)
        return Wiring(edge_index, **kwargs)
    except (DNWGraphError, TypeError, ValueError, RuntimeError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DNWGraphError(f"{path!r} is not a valid {tag[1:]}: {msg}") from None
