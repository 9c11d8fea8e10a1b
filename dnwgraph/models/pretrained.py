"""Pretrained-model folders: ``save_pretrained`` / ``from_pretrained`` (Hugging Face layout).

A folder holds two files, the names and roles of the Hugging Face Hub conventions::

    DIR/config.json         {"format": "dnwgraph-pretrained/1", "model_type": "dnwgraph",
                             "architectures": [class name], "name": registered model name,
                             "kwargs": {its keyword arguments}, "tensor_kwargs": [names],
                             "dnwgraph_version": ...}
    DIR/model.safetensors   the state dict (weights, and the masks of ``random``/``fixed``
                            selections); tensor keyword arguments (e.g. a ``fixed`` mask) are
                            stored under ``__kwargs__.<name>``

The model is rebuilt as ``create_model(name, **kwargs)`` and its state dict loaded exactly, so
any model built by :func:`~dnwgraph.create_model` (every registered preset, and your own
registered factories) round-trips. Everything is local and offline: nothing is downloaded. This
module is the only one that reads or writes these folders; both files are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from dnwgraph._atomic import atomic_write_bytes
from dnwgraph.errors import DNWGraphError, MissingDependencyError
from dnwgraph.models.registry import create_model
from dnwgraph.typing import PathLikeStr

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "FORMAT",
    "PretrainedMixin",
    "save_pretrained",
    "from_pretrained",
    "is_pretrained_dir",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "dnwgraph-pretrained/1"
_KWARG_PREFIX = "__kwargs__."

M = TypeVar("M", bound="PretrainedMixin")


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:  # pragma: no cover - a core dependency
        raise MissingDependencyError(
            "save_pretrained/from_pretrained need the 'safetensors' package: "
            "pip install safetensors"
        ) from None
    return safetensors.torch


def is_pretrained_dir(path: PathLikeStr) -> bool:
    """Whether ``path`` is a folder holding ``config.json`` and ``model.safetensors``.

    Examples:
        >>> is_pretrained_dir(".")
        False
    """
    path = Path(path)
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def _spec(model: nn.Module) -> dict[str, Any]:
    spec = getattr(model, "model_spec", None)
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise DNWGraphError(
            "save_pretrained needs a model built by dnwgraph.create_model(name, **kwargs) "
            f"(got a {type(model).__name__} without 'model_spec'): config.json names the "
            "registered factory that rebuilds it; register yours with dnwgraph.register_model"
        )
    return spec


def save_pretrained(model: nn.Module, save_directory: PathLikeStr) -> Path:
    """Write ``model`` to a folder: ``config.json`` and ``model.safetensors``.

    Args:
        model (nn.Module): a model built by :func:`~dnwgraph.create_model` (it carries
            ``model_spec = {"name", "kwargs"}``).
        save_directory (path): the folder; created if needed, both files replaced atomically.

    Returns:
        Path: ``save_directory``.

    Raises:
        ValueError: a model not built by ``create_model``, or a keyword argument that is
            neither JSON (numbers, strings, lists, dicts, ``None``) nor a tensor.

    Examples:
        >>> import tempfile
        >>> from dnwgraph import create_model
        >>> model = create_model("mnist1d_static", selection="random", seed=0)
        >>> folder = save_pretrained(model, tempfile.mkdtemp())
        >>> sorted(p.name for p in folder.iterdir())
        ['config.json', 'model.safetensors']
    """
    from dnwgraph import __version__

    spec = _spec(model)
    kwargs: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    for key, value in dict(spec.get("kwargs") or {}).items():
        if isinstance(value, Tensor):
            tensors[_KWARG_PREFIX + key] = value.detach().cpu().contiguous()
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise DNWGraphError(
                f"save_pretrained stores the model's keyword arguments in config.json: "
                f"{key!r} must be JSON or a tensor (got {type(value).__name__})"
            ) from None
        kwargs[key] = value
    state = model.state_dict()
    clash = sorted(k for k in state if k.startswith(_KWARG_PREFIX))
    if clash:  # pragma: no cover - no module is named like that
        raise DNWGraphError(f"state-dict keys {clash} collide with the keyword-argument prefix")
    tensor_kwargs = sorted(k[len(_KWARG_PREFIX) :] for k in tensors)
    # safetensors refuses shared storage: every tensor gets its own contiguous copy
    tensors.update({k: v.detach().cpu().contiguous().clone() for k, v in state.items()})
    config = {
        "format": FORMAT,
        "model_type": "dnwgraph",
        "architectures": [type(model).__name__],
        "name": spec["name"],
        "kwargs": kwargs,
        "tensor_kwargs": tensor_kwargs,
        "dnwgraph_version": __version__,
    }
    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    data = _safetensors().save(tensors, metadata={"format": "pt"})
    atomic_write_bytes(folder / WEIGHTS_NAME, data)
    atomic_write_bytes(folder / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode())
    return folder


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DNWGraphError(f"{str(path)!r} is not readable JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise DNWGraphError(
            f"{str(path)!r} is not a dnwgraph pretrained config (expected format {FORMAT!r}, "
            f"got {got!r})"
        )
    if not isinstance(config.get("name"), str) or not isinstance(config.get("kwargs", {}), dict):
        raise DNWGraphError(f"{str(path)!r} must hold a model 'name' and a 'kwargs' mapping")
    return config


def from_pretrained(
    pretrained_model_name_or_path: PathLikeStr,
    *,
    map_location: str | torch.device = "cpu",
    strict: bool = True,
) -> nn.Module:
    """Rebuild a model written by :func:`save_pretrained`, in eval mode.

    Args:
        pretrained_model_name_or_path (path): a local folder (offline: a Hub id is refused).
        map_location (str or torch.device, optional): device of the model. (default: ``"cpu"``)
        strict (bool, optional): the state dict must match exactly. (default: ``True``)

    Returns:
        nn.Module: ``create_model(name, **kwargs)`` with the saved state, in ``eval()`` mode.

    Raises:
        ValueError: no such folder, a folder without both files, a config of another format,
            or weights that do not fit the model.

    Examples:
        >>> import tempfile
        >>> from dnwgraph import create_model
        >>> model = create_model("mnist1d_static", selection="random", seed=0).eval()
        >>> folder = save_pretrained(model, tempfile.mkdtemp())
        >>> x = torch.randn(2, 40)
        >>> torch.equal(from_pretrained(folder)(x), model(x))
        True
    """
    folder = Path(pretrained_model_name_or_path)
    if not folder.is_dir():
        raise DNWGraphError(
            f"expected a local folder holding {CONFIG_NAME} and {WEIGHTS_NAME} (got "
            f"{str(folder)!r}, which is not a folder); dnwgraph loads offline and downloads "
            "nothing: fetch a Hub repository first (e.g. huggingface_hub.snapshot_download)"
        )
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise DNWGraphError(
            f"{str(folder)!r} is not a pretrained-model folder: expected {CONFIG_NAME} and "
            f"{WEIGHTS_NAME}, missing {missing}"
        )
    config = _read_config(folder)
    try:
        tensors = _safetensors().load((folder / WEIGHTS_NAME).read_bytes())
    except Exception as err:  # noqa: BLE001 - any failure means an unusable file
        raise DNWGraphError(
            f"{str(folder / WEIGHTS_NAME)!r} is corrupt or truncated ({type(err).__name__}: "
            f"{str(err)[:200]})"
        ) from None
    kwargs = dict(config.get("kwargs") or {})
    for name in config.get("tensor_kwargs") or []:
        kwargs[name] = tensors.pop(_KWARG_PREFIX + name)
    model = create_model(config["name"], **kwargs)
    try:
        model.load_state_dict(tensors, strict=strict)
    except RuntimeError as err:
        raise DNWGraphError(
            f"the weights in {str(folder)!r} do not fit {config['name']!r}: "
            f"{str(err).strip().splitlines()[0]}"
        ) from None
    return model.to(map_location).eval()


class PretrainedMixin:
    """``model.save_pretrained(dir)`` and ``Model.from_pretrained(dir)``, as in Hugging Face.

    Mixed into the neural-graph classifiers and the MobileNets; the functions
    :func:`save_pretrained` / :func:`from_pretrained` do the same for any model built by
    :func:`~dnwgraph.create_model`.

    Examples:
        >>> import tempfile
        >>> from dnwgraph import StaticNeuralGraph, create_model
        >>> model = create_model("mnist1d_static")
        >>> folder = model.save_pretrained(tempfile.mkdtemp())
        >>> type(StaticNeuralGraph.from_pretrained(folder)).__name__
        'StaticNeuralGraph'
    """

    def save_pretrained(self, save_directory: PathLikeStr) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``save_directory`` (see
        :func:`save_pretrained`).

        Returns:
            Path: ``save_directory``.

        Raises:
            ValueError: a model not built by :func:`~dnwgraph.create_model`.
        """
        assert isinstance(self, nn.Module)
        return save_pretrained(self, save_directory)

    @classmethod
    def from_pretrained(
        cls: type[M],
        pretrained_model_name_or_path: PathLikeStr,
        *,
        map_location: str | torch.device = "cpu",
        strict: bool = True,
    ) -> M:
        """Rebuild a model saved by :meth:`save_pretrained` (see :func:`from_pretrained`).

        Returns:
            the model, an instance of this class, in ``eval()`` mode.

        Raises:
            ValueError: see :func:`from_pretrained`; also a folder holding another class.
        """
        model = from_pretrained(
            pretrained_model_name_or_path, map_location=map_location, strict=strict
        )
        if not isinstance(model, cls):
            raise DNWGraphError(
                f"{str(pretrained_model_name_or_path)!r} holds a {type(model).__name__}, not a "
                f"{cls.__name__}; use dnwgraph.models.from_pretrained to load any model"
            )
        return model
