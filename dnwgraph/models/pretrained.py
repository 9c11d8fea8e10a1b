"""Pretrained-model folders: ``save_pretrained`` / ``from_pretrained`` (Hugging Face layout).

A folder holds two files, the names and roles of the Hugging Face Hub conventions::

    DIR/config.json         {"format": "dnwgraph-pretrained/2", "model_type": "dnwgraph",
                             "architectures": [class name],
                             "name": registered model name, or null for a class-built model,
                             "class": null, or the dnwgraph class it was built from,
                             "args": [positional arguments], "kwargs": {keyword arguments},
                             "torch_dtype": "float32", "dnwgraph_version": ...,
                             "weights_sha256": SHA-256 of model.safetensors,
                             "config_sha256": SHA-256 of this config without this field}
    DIR/model.safetensors   the state dict (weights, and the masks of ``random``/``fixed``
                            selections), and the tensors among the arguments (``__args__.*``)

The model is rebuilt as ``create_model(name, *args, **kwargs)`` or ``Class(*args, **kwargs)``
for one of dnwgraph's own model classes (looked up by name among the classes dnwgraph defines,
never imported), and its state dict loaded exactly; a registered model gets the defaults of
the version that saved it (``dnwgraph_version``, ``dnwgraph/models/migrations.py``).
Arguments are JSON values, tensors, :class:`~dnwgraph.Wiring` and
:class:`~dnwgraph.nn.WiringSpec` (``dnwgraph/models/_arguments.py``).

Both files are checked before anything is built: the checksums, every field of the config,
the file kinds (``dnwgraph/models/_folder.py``); after loading, the stored masks must agree
with their budgets. ``save_pretrained`` writes both files whole to temporary files first, then
renames the weights, then the config: a save killed at any point leaves one whole model (the
old one, or the new weights and their config in ``.config.tmp.json``, which
:func:`from_pretrained` names). It refuses a folder that holds anything it did not write
unless ``overwrite=True``; it never deletes a file. This module
is the only one that reads or writes these folders. Hub ids and ``push_to_hub`` live in
``dnwgraph/models/hub.py`` (the ``hub`` extra).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from torch import Tensor, nn

from dnwgraph._atomic import atomic_write_files, folder_lock, tmp_path
from dnwgraph._version import __version__
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError, MissingDependencyError
from dnwgraph.models import _arguments, _folder, hub
from dnwgraph.models.migrations import is_version, migrate_kwargs, warn_if_newer
from dnwgraph.models.registry import create_model
from dnwgraph.models.state_dict import load_state_dict
from dnwgraph.registry import Registry
from dnwgraph.select import Selection
from dnwgraph.typing import PathLikeStr

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "FORMAT",
    "PretrainedMixin",
    "save_pretrained",
    "from_pretrained",
    "push_to_hub",
    "is_pretrained_dir",
    "check_map_location",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "dnwgraph-pretrained/2"
_KEYS = {
    "format",
    "model_type",
    "architectures",
    "name",
    "class",
    "args",
    "kwargs",
    "torch_dtype",
    "dnwgraph_version",
    "weights_sha256",
    "config_sha256",
}
_DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float16, torch.bfloat16)} | {
    "float32": torch.float32,
    "float64": torch.float64,
}
#: dnwgraph's own model classes by name: the only classes a config may name.
_CLASSES: Registry[type] = Registry("model class")

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
    """Whether ``path`` is a folder holding ``config.json`` or ``model.safetensors`` (of any
    kind: :func:`from_pretrained` names what is wrong with them).

    Examples:
        >>> is_pretrained_dir(".")
        False
    """
    path = Path(path)
    return os.path.isdir(path) and any(
        os.path.lexists(path / n) for n in (CONFIG_NAME, WEIGHTS_NAME)
    )


def check_map_location(map_location: Any) -> torch.device:
    """The device ``map_location`` names, checked: a ``str`` such as ``"cpu"`` or ``"cuda:0"``
    or a :class:`torch.device`, of a kind this machine has (not ``"meta"``, which holds no
    values).

    Raises:
        DNWGraphTypeError: another type.
        DNWGraphError: an unknown device name, or a device this machine does not have.

    Examples:
        >>> check_map_location("cpu")
        device(type='cpu')
    """
    if not isinstance(map_location, (str, torch.device)):
        raise DNWGraphTypeError(
            "'map_location' must be a str such as 'cpu' or 'cuda:0', or a torch.device "
            f"(got {type(map_location).__name__})"
        )
    try:
        device = torch.device(map_location)
    except RuntimeError:
        raise DNWGraphError(
            f"'map_location' must name a device such as 'cpu', 'cuda' or 'cuda:1' "
            f"(got {map_location!r})"
        ) from None
    if device.type == "meta":
        raise DNWGraphError("'map_location' cannot be 'meta': a meta tensor holds no weights")
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise DNWGraphError(
            f"'map_location' {str(device)!r} is not available here ({first})"
        ) from None
    return device


def _float_dtype(state: dict[str, Tensor]) -> str:
    for value in state.values():
        if value.is_floating_point():
            return str(value.dtype).removeprefix("torch.")
    return "float32"


def _build_spec(model: nn.Module) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    """``{"name", "class"}``, the args and the kwargs that rebuild ``model``."""
    spec = getattr(model, "model_spec", None)
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        return {"name": spec["name"], "class": None}, [], dict(spec.get("kwargs") or {})
    cls = type(model)
    built = model.__dict__.get("_pretrained_init")
    if _CLASSES.find(cls.__name__) is not cls or built is None:
        raise DNWGraphError(
            "save_pretrained needs a model built by dnwgraph.create_model or by one of "
            f"dnwgraph's model classes (got a {cls.__name__} from {cls.__module__!r}); "
            "register a factory with dnwgraph.register_model and build it with create_model"
        )
    args, kwargs = built
    return {"name": None, "class": cls.__name__}, list(args), dict(kwargs)


def _check_finite(state: dict[str, Tensor], where: str) -> None:
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise DNWGraphError(f"{where}: the tensor {key!r} holds NaN or infinite values")


def _check_masks(model: nn.Module, where: str) -> None:
    """Every stored mask (``random``, frozen ``fixed``) selects edges, and a ``random``
    mask exactly its budget (in total, or per target node)."""
    for name, sel in model.named_modules():
        mask = getattr(sel, "mask", None)
        if not isinstance(sel, Selection) or not isinstance(mask, Tensor):
            continue
        if sel.name == "fixed" and not bool(getattr(sel, "frozen", True)):
            continue
        mask = mask.cpu()
        if sel.name == "random" and sel.scope == "per_node":
            target = cast(Tensor, sel.target).cpu()
            used = torch.bincount(target[mask], minlength=sel.num_nodes)
            ok = torch.equal(used, torch.as_tensor(sel.budget).cpu())
        elif sel.name == "random":
            ok = int(mask.sum()) == int(sel.budget)
        else:
            ok = bool(mask.any())
        if not ok:
            raise DNWGraphError(
                f"{where}: the stored {sel.name!r} mask of {name!r} selects "
                f"{int(mask.sum())} of {mask.numel()} edges, but its budget is k={sel.k}"
            )


def _foreign(folder: Path) -> list[str]:
    """The entries of ``folder`` that :func:`save_pretrained` did not write (hidden ones too)."""
    ours_tmp = {tmp_path(folder / n).name for n in (CONFIG_NAME, WEIGHTS_NAME)}
    config_ours = False
    config = folder / CONFIG_NAME
    if config.is_file() and not config.is_symlink():
        try:
            data = _folder.read_json(config)
            config_ours = isinstance(data, dict) and str(data.get("format", "")).startswith(
                "dnwgraph-pretrained/"
            )
        except DNWGraphError:
            pass
    weights = folder / WEIGHTS_NAME
    weights_ours = weights.is_file() and not weights.is_symlink()
    if weights_ours and not config_ours:  # ours if a stopped save's config was made for it
        pending = None if config.exists() else _pending_config(folder, weights)
        weights_ours = pending is not None
    foreign = []
    for entry in sorted(os.listdir(folder)):
        if entry in ours_tmp or (entry == CONFIG_NAME and config_ours):
            continue
        if entry == WEIGHTS_NAME and weights_ours:
            continue
        foreign.append(entry)
    return foreign


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise DNWGraphError(f"save_pretrained needs a folder, and {str(folder)!r} is a file")
    if not folder.exists():
        try:
            folder.mkdir(parents=True)
        except (NotADirectoryError, FileExistsError):
            raise DNWGraphError(
                f"cannot create the folder {str(folder)!r}: a file is in the way"
            ) from None
        return
    foreign = _foreign(folder)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if name in foreign and (folder / name).is_dir() and not (folder / name).is_symlink():
            raise DNWGraphError(
                f"{str(folder / name)!r} is a folder; save_pretrained never removes one"
            )
    if foreign and not overwrite:
        shown = foreign[:5] + (["..."] if len(foreign) > 5 else [])
        raise DNWGraphError(
            f"{str(folder)!r} holds files save_pretrained did not write {shown}; save to a new "
            "or empty folder, or pass overwrite=True to replace config.json and "
            "model.safetensors (other files are left as they are)"
        )


def save_pretrained(
    model: nn.Module, save_directory: PathLikeStr, *, overwrite: bool = False
) -> Path:
    """Write ``model`` to a folder: ``config.json`` and ``model.safetensors``.

    Args:
        model (nn.Module): a model built by :func:`~dnwgraph.create_model`, or by one of
            dnwgraph's model classes (``StaticNeuralGraph(wiring, ...)``).
        save_directory (path): the folder; created if needed. A folder that a previous
            ``save_pretrained`` wrote is updated; one holding anything else is refused.
        overwrite (bool, optional): replace a ``config.json`` and a ``model.safetensors`` that
            ``save_pretrained`` did not write; other files stay. Nothing is ever deleted.
            (default: ``False``)

    Returns:
        Path: ``save_directory``.

    Raises:
        DNWGraphError: a model of another origin; an argument that is not JSON, a tensor, a
            Wiring or a WiringSpec; non-finite weights; a stored mask that disagrees with its
            budget; a folder holding other files (without ``overwrite``), or a file in the way.

    Examples:
        >>> import tempfile
        >>> from dnwgraph import create_model
        >>> model = create_model("mnist1d_static", selection="random", seed=0)
        >>> folder = save_pretrained(model, tempfile.mkdtemp())
        >>> sorted(p.name for p in folder.iterdir())
        ['config.json', 'model.safetensors']
    """
    if not isinstance(model, nn.Module):
        raise DNWGraphTypeError(f"'model' must be an nn.Module (got {type(model).__name__})")
    if not isinstance(overwrite, bool):
        raise DNWGraphError(f"'overwrite' must be True or False (got {overwrite!r})")
    builder, args, kwargs = _build_spec(model)
    tensors: dict[str, Tensor] = {}
    args_json = _arguments.encode(args, "args", tensors)
    kwargs_json = _arguments.encode(kwargs, "kwargs", tensors)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    _check_finite(state, "save_pretrained")
    _check_masks(model, "save_pretrained")
    clash = sorted(k for k in state if k in tensors)
    if clash:  # pragma: no cover - no module is named like that
        raise DNWGraphError(f"state-dict keys {clash} collide with the argument tensors")
    # safetensors refuses shared storage: every tensor has its own contiguous copy
    data = _safetensors().save({**tensors, **state}, metadata={"format": "pt", "dnwgraph": FORMAT})
    config: dict[str, Any] = {
        "format": FORMAT,
        "model_type": "dnwgraph",
        "architectures": [type(model).__name__],
        **builder,
        "args": args_json,
        "kwargs": kwargs_json,
        "torch_dtype": _float_dtype(state),
        "dnwgraph_version": __version__,
        "weights_sha256": _folder.sha256(data),
    }
    config["config_sha256"] = _folder.config_digest(config, "config_sha256")
    _check_rebuilds(model, config, tensors)
    given = os.fspath(save_directory) if isinstance(save_directory, (str, os.PathLike)) else None
    if not given or "\0" in given:  # Path("") would be the working folder
        raise DNWGraphError(f"'save_directory' must be a folder path (got {save_directory!r:.80})")
    folder = Path(save_directory)
    # both temporary files whole on disk first, then the weights renamed, then the config: a
    # kill between the renames leaves the new weights beside an old config that refuses them
    # and a whole new config in its temporary file, which from_pretrained names
    text = (json.dumps(config, indent=2) + "\n").encode()
    try:
        _prepare_folder(folder, overwrite)
        atomic_write_files([(folder / WEIGHTS_NAME, data), (folder / CONFIG_NAME, text)])
    except OSError as err:  # a read-only file system, a full disk (atomic_write_files says
        # what a failure leaves behind)
        where = f": {err.filename}" if err.filename and str(err.filename) != str(folder) else ""
        raise DNWGraphError(
            f"cannot save into {str(folder)!r} ({err.strerror or err}{where})"
        ) from None
    return folder


def _check_field(path: Path, config: dict[str, Any], key: str, ok: bool, expected: str) -> None:
    if not ok:
        raise DNWGraphError(
            f"{str(path)!r}: {key!r} must be {expected} (got {config.get(key)!r:.80})"
        )


def _read_config(path: Path, weights: bytes) -> dict[str, Any]:
    """``config.json``, every field checked, and both checksums verified."""
    config = _folder.read_json(path)
    got = config.get("format") if isinstance(config, dict) else type(config).__name__
    if got != FORMAT:
        old = (
            " (written before checksums; save the model again)"
            if got == "dnwgraph-pretrained/1"
            else ""
        )
        raise DNWGraphError(
            f"{str(path)!r} is not a dnwgraph pretrained config (expected format {FORMAT!r}, "
            f"got {got!r:.80}){old}"
        )
    unknown, missing = sorted(set(config) - _KEYS), sorted(_KEYS - set(config))
    if unknown or missing:
        raise DNWGraphError(f"{str(path)!r}: unknown keys {unknown}, missing keys {missing}")
    if config["config_sha256"] != _folder.config_digest(config, "config_sha256"):
        raise DNWGraphError(
            f"{str(path)!r} does not match its checksum: it was changed or damaged after "
            "save_pretrained wrote it"
        )
    if config["weights_sha256"] != _folder.sha256(weights):
        raise DNWGraphError(
            f"{str(path.parent / WEIGHTS_NAME)!r} does not match the checksum in "
            f"{CONFIG_NAME}: {_interrupted_save(path, weights)}"
        )
    name, cls = config["name"], config["class"]
    _check_field(path, config, "name", name is None or isinstance(name, str), "a str or null")
    _check_field(
        path,
        config,
        "class",
        cls is None or (isinstance(cls, str) and cls in _CLASSES),
        f"null or one of {sorted(_CLASSES)}",
    )
    _check_field(path, config, "name", (name is None) != (cls is None), "set when 'class' is null")
    _check_field(path, config, "args", isinstance(config["args"], list), "a list")
    _check_field(path, config, "kwargs", isinstance(config["kwargs"], dict), "a mapping")
    _check_field(
        path,
        config,
        "torch_dtype",
        isinstance(config["torch_dtype"], str) and config["torch_dtype"] in _DTYPES,
        f"one of {sorted(_DTYPES)}",
    )
    version = config["dnwgraph_version"]
    _check_field(path, config, "dnwgraph_version", is_version(version), "a version string")
    return config


def _pending_config(folder: Path, weights: bytes | Path) -> Path | None:
    """The temporary config of a save stopped between its two renames (the weights renamed,
    the config not yet), when it is whole and made for ``weights`` (bytes, or the file, read
    only if there is such a config); else ``None``."""
    pending = tmp_path(folder / CONFIG_NAME)
    try:
        config = _folder.read_json(pending) if os.path.lexists(pending) else None
    except DNWGraphError:
        config = None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        return None
    if isinstance(weights, Path):
        weights = _folder.read_bytes(weights)
    whole = config.get("config_sha256") == _folder.config_digest(config, "config_sha256")
    if whole and config.get("weights_sha256") == _folder.sha256(weights):
        return pending
    return None


def _interrupted_save(path: Path, weights: bytes) -> str:
    """Why the weights do not match ``config.json``: a save stopped between its two renames
    (its whole new config is still in the temporary file), or a change after the save."""
    pending = _pending_config(path.parent, weights)
    if pending is not None:
        return (
            f"they match {str(pending)!r}, the config of a save_pretrained that was stopped "
            f"before its last step; rename it to {CONFIG_NAME} to finish that save"
        )
    return "it was changed or damaged after save_pretrained wrote it"


def _read_folder(folder: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    if not os.path.isdir(folder):  # False for any OSError (a name too long), as Path's is not
        why = _folder.file_problem(folder) or "is a file"
        raise DNWGraphError(
            f"expected a local folder holding {CONFIG_NAME} and {WEIGHTS_NAME} ({str(folder)!r} "
            f"{why}); a Hub id 'owner/name' needs the 'hub' extra, and is read from the "
            "local Hugging Face cache unless local_files_only=False"
        )
    # a reader's lock: a save waits until both files are read (never the weights of one save
    # and the config of the next), and a save in progress is finished before they are looked at
    with folder_lock(folder, shared=True):
        problems = {n: _folder.file_problem(folder / n) for n in (CONFIG_NAME, WEIGHTS_NAME)}
        if problems[CONFIG_NAME] == "is missing" and not problems[WEIGHTS_NAME]:
            pending = _pending_config(folder, folder / WEIGHTS_NAME)  # a first save stopped?
            if pending is not None:
                raise DNWGraphError(
                    f"{str(folder)!r}: its {CONFIG_NAME} is missing, and its {WEIGHTS_NAME} "
                    f"matches {str(pending)!r}, the config of a save_pretrained that was "
                    f"stopped before its last step; rename it to {CONFIG_NAME} to finish "
                    "that save"
                )
        for name, problem in problems.items():
            if problem:
                raise DNWGraphError(
                    f"{str(folder)!r} is not a pretrained-model folder: its {name} {problem} "
                    f"(expected {CONFIG_NAME} and {WEIGHTS_NAME}, written by save_pretrained)"
                )
        weights = _folder.read_bytes(folder / WEIGHTS_NAME)
        config = _read_config(folder / CONFIG_NAME, weights)
    try:
        tensors = _safetensors().load(weights)
    except Exception as err:  # noqa: BLE001 - any failure means an unusable file
        raise DNWGraphError(
            f"{str(folder / WEIGHTS_NAME)!r} is corrupt or truncated ({type(err).__name__}: "
            f"{str(err)[:200]})"
        ) from None
    _check_finite(tensors, str(folder / WEIGHTS_NAME))
    return config, tensors


def _rebuild(config: dict[str, Any], tensors: dict[str, Tensor], where: str) -> nn.Module:
    """The model ``config`` describes (``where`` names the config in messages); the argument
    tensors are taken out of ``tensors``, which then holds the state dict."""
    used: set[str] = set()
    try:
        args = _arguments.decode(config["args"], "args", tensors, used)
        kwargs = _arguments.decode(config["kwargs"], "kwargs", tensors, used)
    except DNWGraphError as err:
        raise DNWGraphError(f"{where}: {err}") from None
    for key in used:
        tensors.pop(key)
    stray = sorted(k for k in tensors if k.startswith(_arguments.TENSOR_PREFIX))
    if stray:
        raise DNWGraphError(f"{where}: the weights hold tensors no argument names: {stray}")
    label = config["name"] or config["class"]
    warn_if_newer(config["dnwgraph_version"], where, stacklevel=4)  # from_pretrained's caller
    try:
        if config["name"] is not None:
            if args:
                raise DNWGraphError("a registered model takes keyword arguments only")
            kwargs = migrate_kwargs(config["name"], kwargs, config["dnwgraph_version"])
            return create_model(config["name"], **kwargs)
        return _CLASSES.get(config["class"])(*args, **kwargs)
    except (TypeError, ValueError, RuntimeError, KeyError, IndexError, OverflowError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise DNWGraphError(
            f"{where} does not build {label!r} ({type(err).__name__}: {first})"
        ) from None


def _check_rebuilds(model: nn.Module, config: dict[str, Any], tensors: dict[str, Tensor]) -> None:
    """What :func:`from_pretrained` will build from ``config`` takes ``model``'s state and has
    its structure (a model changed after it was built, e.g. sparsified, does not)."""
    with torch.random.fork_rng(devices=[]):  # the rebuild's initialisation draws numbers
        rebuilt = _rebuild(config, dict(tensors), "save_pretrained: the model's arguments")
    hint = (
        f"the {type(model).__name__} was changed after it was built (e.g. by sparsify, "
        "compact_wirings or by hand), so its arguments no longer rebuild it"
    )
    try:
        rebuilt.load_state_dict(model.state_dict(), strict=True)
    except RuntimeError as err:
        raise DNWGraphError(
            f"save_pretrained: {hint} ({str(err).strip().splitlines()[0]})"
        ) from None
    if repr(rebuilt) != repr(model):
        raise DNWGraphError(f"save_pretrained: {hint} (its modules differ)")


def from_pretrained(
    pretrained_model_name_or_path: PathLikeStr,
    *,
    map_location: str | torch.device = "cpu",
    strict: bool = True,
    revision: str | None = None,
    cache_dir: PathLikeStr | None = None,
    local_files_only: bool = True,
) -> nn.Module:
    """Rebuild a model written by :func:`save_pretrained`, in eval mode.

    Both files are verified first: ``model.safetensors`` against the SHA-256 in
    ``config.json``, ``config.json`` against its own, every field of the config, and after
    loading every stored mask against its budget. The model gets the saved dtype.

    Args:
        pretrained_model_name_or_path (path or str): a local folder, or a Hugging Face Hub id
            ``owner/name`` (the ``hub`` extra).
        map_location (str or torch.device, optional): device of the model. (default: ``"cpu"``)
        strict (bool, optional): the state dict must match exactly. (default: ``True``)
        revision (str, optional): the Hub revision (branch, tag or commit) of a Hub id.
        cache_dir (path, optional): the Hugging Face cache of a Hub id.
        local_files_only (bool, optional): read a Hub id from the local cache only; ``False``
            downloads it. (default: ``True``: offline)

    Returns:
        nn.Module: the model, with the saved state, in ``eval()`` mode.

    Raises:
        DNWGraphError: no such folder; a file that is missing, not a regular file, damaged
            (checksum), or malformed; a config naming an unknown model or class, or arguments
            it refuses; weights that do not fit; a stored mask that disagrees with its budget;
            a bad ``map_location`` or ``strict``; a Hub id not in the cache.
        MissingDependencyError: a Hub id without ``huggingface_hub``.

    Examples:
        >>> import tempfile
        >>> from dnwgraph import create_model
        >>> model = create_model("mnist1d_static", selection="random", seed=0).eval()
        >>> folder = save_pretrained(model, tempfile.mkdtemp())
        >>> x = torch.randn(2, 40)
        >>> torch.equal(from_pretrained(folder)(x), model(x))
        True
    """
    if not isinstance(pretrained_model_name_or_path, (str, os.PathLike)):
        raise DNWGraphTypeError(
            "'pretrained_model_name_or_path' must be a folder path or a Hub id "
            f"(got {type(pretrained_model_name_or_path).__name__})"
        )
    if os.fspath(pretrained_model_name_or_path) in ("", b""):  # Path("") is the working folder
        raise DNWGraphError(
            "'pretrained_model_name_or_path' must be a folder path or a Hub id (got '')"
        )
    if "\0" in os.fspath(pretrained_model_name_or_path):
        raise DNWGraphError("'pretrained_model_name_or_path' must not hold a NUL byte")
    device = check_map_location(map_location)
    if not isinstance(strict, bool):
        raise DNWGraphError(f"'strict' must be True or False (got {strict!r})")
    folder = Path(pretrained_model_name_or_path)
    name = str(pretrained_model_name_or_path)
    if not os.path.lexists(folder) and isinstance(pretrained_model_name_or_path, str):
        if hub.is_hub_id(name):
            folder = hub.hub_folder(
                name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
            )
    config, tensors = _read_folder(folder)
    model = _rebuild(config, tensors, repr(str(folder / CONFIG_NAME)))
    load_state_dict(model, tensors, strict=strict, what=repr(str(folder / WEIGHTS_NAME)))
    _check_masks(model, str(folder))
    return model.to(device=device, dtype=_DTYPES[config["torch_dtype"]]).eval()


def push_to_hub(model: nn.Module, repo_id: str, **kwargs: Any) -> str:
    """Upload ``model`` to the Hugging Face Hub repository ``repo_id`` as a pretrained folder
    (``config.json``, ``model.safetensors`` and a model card ``README.md``), through
    ``huggingface_hub.ModelHubMixin.push_to_hub`` (the ``hub`` extra; this is the only
    function of dnwgraph that goes online).

    Args:
        model (nn.Module): a model :func:`save_pretrained` takes.
        repo_id (str): ``owner/name``; created if needed.
        **kwargs: passed on (``private``, ``token``, ``commit_message``, ``branch``,
            ``create_pr``).

    Returns:
        str: the URL of the commit.

    Raises:
        MissingDependencyError: ``huggingface_hub`` is not installed.
        DNWGraphError: a bad ``repo_id``, or a model :func:`save_pretrained` refuses.

    Examples:
        >>> push_to_hub(model, "me/my-dnw-model")  # doctest: +SKIP
    """
    _build_spec(model)  # refuse an unsavable model before the hub is contacted
    return hub.push_to_hub(model, repo_id, save_pretrained, **kwargs)


class PretrainedMixin:
    """``model.save_pretrained(dir)`` and ``Model.from_pretrained(dir)``, as in Hugging Face.

    Mixed into the neural-graph classifiers and the MobileNets. It remembers the arguments a
    model was built with, so that a model built from its class saves as well as one built by
    :func:`~dnwgraph.create_model`; and it lists dnwgraph's own subclasses, the only classes
    a ``config.json`` may name.

    Examples:
        >>> import tempfile
        >>> from dnwgraph import StaticNeuralGraph, Wiring, WiringSpec
        >>> model = StaticNeuralGraph(Wiring([(0, 2), (1, 2)]), WiringSpec(2, node_op="neuron"))
        >>> folder = model.save_pretrained(tempfile.mkdtemp())
        >>> type(StaticNeuralGraph.from_pretrained(folder)).__name__
        'StaticNeuralGraph'
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.split(".")[0] == "dnwgraph":
            _CLASSES.register(cls.__name__, cls, replace=True)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        # the arguments of this construction (a copy or an unpickling passes none, and then
        # restores the original's); read by save_pretrained for a model built from its class
        object.__setattr__(self, "_pretrained_init", (args, dict(kwargs)))
        return self

    def save_pretrained(self, save_directory: PathLikeStr, *, overwrite: bool = False) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``save_directory`` (see
        :func:`save_pretrained`).

        Returns:
            Path: ``save_directory``.

        Raises:
            DNWGraphError: see :func:`save_pretrained`.
        """
        return save_pretrained(self, save_directory, overwrite=overwrite)  # type: ignore[arg-type]

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload to the Hugging Face Hub (see :func:`push_to_hub`).

        Returns:
            str: the URL of the commit.
        """
        return push_to_hub(self, repo_id, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(
        cls: type[M],
        pretrained_model_name_or_path: PathLikeStr,
        *,
        map_location: str | torch.device = "cpu",
        strict: bool = True,
        revision: str | None = None,
        cache_dir: PathLikeStr | None = None,
        local_files_only: bool = True,
    ) -> M:
        """Rebuild a model saved by :meth:`save_pretrained` (see :func:`from_pretrained`,
        for the arguments).

        Returns:
            the model, an instance of this class, in ``eval()`` mode.

        Raises:
            DNWGraphError: see :func:`from_pretrained`; also a folder holding another class.
        """
        model = from_pretrained(
            pretrained_model_name_or_path,
            map_location=map_location,
            strict=strict,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        if not isinstance(model, cls):
            raise DNWGraphError(
                f"{str(pretrained_model_name_or_path)!r} holds a {type(model).__name__}, not a "
                f"{cls.__name__}; use dnwgraph.models.from_pretrained to load any model"
            )
        return model
