"""Checkpoints: atomic writes, checksummed safe loads, RNG state, and :func:`load_model`.

A checkpoint (``DIR/checkpoint.pt``) is a dict of tensors and plain values, loadable with
``torch.load(weights_only=True)``::

    {"format": "dnwgraph-checkpoint/1", "model": {"name", "kwargs"}, "model_state",
     "optimizer_state", "scheduler_state", "epoch", "step", "rng", "config", "history",
     "run_id", "dnwgraph_version", "checksum"}

``dnwgraph_version`` is the version whose defaults the model was built with (a resumed run
keeps its first one); :func:`load_model` rebuilds the model with them
(:mod:`dnwgraph.models.migrations`), and warns where a newer dnwgraph wrote it. Checkpoints
written before 0.3.0 have none and are taken as 0.2's; those of 0.1 (the reference code's
defaults) cannot be told apart and need those keywords spelt out.

``checksum`` is ``"sha256:<hex>"`` of every other entry (:func:`state_digest`: tensors by
dtype, shape and bytes, plain values by ``repr``), so a checkpoint whose bytes were damaged
after it was written fails to load instead of loading wrong weights.  (Checkpoints written
before the checksum was added have none and load unchecked.)

It is written to a temporary file in the same folder and renamed over the old one
(:func:`os.replace` is atomic), so a run killed at any moment leaves either the previous or the
new checkpoint, never a partial one.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dnwgraph._atomic import atomic_write_bytes
from dnwgraph._version import __version__
from dnwgraph.errors import DNWGraphError
from dnwgraph.models.migrations import OLDEST, is_version, migrate_kwargs, warn_if_newer
from dnwgraph.models.pretrained import check_map_location, from_pretrained, is_pretrained_dir
from dnwgraph.models.registry import create_model
from dnwgraph.models.state_dict import load_state_dict
from dnwgraph.runs.rundir import CHECKPOINT
from dnwgraph.typing import PathLikeStr

__all__ = [
    "FORMAT",
    "CheckpointError",
    "new_checkpoint",
    "atomic_write_bytes",
    "save_checkpoint",
    "load_checkpoint",
    "safe_torch_load",
    "state_digest",
    "rng_state",
    "set_rng_state",
    "load_model",
    "built_by",
    "is_pretrained_source",
]

FORMAT = "dnwgraph-checkpoint/1"
REQUIRED = ("format", "model", "model_state", "epoch", "config")


class CheckpointError(DNWGraphError):
    """A checkpoint is missing, corrupt, truncated, of an unknown format, or of another run."""


def _digest_into(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            _digest_into(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
        for item in obj:
            _digest_into(h, item)
    else:
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())


def state_digest(state: dict[str, Any]) -> str:
    """``"sha256:<hex>"`` of every entry of ``state`` but ``checksum`` (see the module doc).

    Examples:
        >>> a = state_digest({"w": torch.ones(2), "epoch": 1})
        >>> a == state_digest({"epoch": 1, "w": torch.ones(2)})
        True
        >>> a == state_digest({"w": torch.zeros(2), "epoch": 1})
        False
    """
    h = hashlib.sha256()
    _digest_into(h, {k: v for k, v in state.items() if k != "checksum"})
    return f"sha256:{h.hexdigest()}"


def safe_torch_load(
    path: PathLikeStr, what: str = "file", map_location: str | torch.device = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)`` with failures as one line naming the file.

    Raises:
        CheckpointError: the file cannot be read, is truncated or corrupt (a damaged archive
            or pickle stream), or holds Python objects that a weights-only load refuses
            (it was not written by dnwgraph; such files are never loaded).
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as err:
        raise CheckpointError(
            f"cannot read the {what} {str(path)!r}: {err.strerror or err}"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises several types for one bad file
        detail = _load_failure(err)
        if detail.startswith("Unsupported global"):
            name = detail.split("Unsupported global:", 1)[-1].split(" was not")[0].strip()
            raise CheckpointError(
                f"the {what} {str(path)!r} holds Python objects that a safe (weights-only) load "
                f"refuses ({name}); dnwgraph writes only tensors and plain values, so this file "
                "was not written by dnwgraph or is damaged, and it is not loaded"
            ) from None
        raise CheckpointError(
            f"the {what} {str(path)!r} is not a readable torch file: it is corrupt or truncated "
            f"and cannot be loaded ({detail[:200]}); start a new run or restore a copy"
        ) from None


def _load_failure(err: Exception) -> str:
    """The cause in torch's message, on one line, without its multi-line advice."""
    text = str(err)
    if "WeightsUnpickler error:" in text:  # a weights-only refusal: the cause follows the tag
        cause = text.split("WeightsUnpickler error:", 1)[1]
        cause = cause.split("Check the documentation of torch.load", 1)[0]
        cause = " ".join(cause.split())
        if cause.startswith("Unsupported global"):
            return cause
        return f"damaged pickle stream: {cause or type(err).__name__}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def new_checkpoint(
    *,
    model: dict[str, Any],
    model_state: dict[str, Any],
    optimizer_state: dict[str, Any],
    scheduler_state: dict[str, Any],
    epoch: int,
    step: int,
    config: dict[str, Any],
    history: list[dict[str, Any]],
    run_id: str | None = None,
    dnwgraph_version: str = __version__,
) -> dict[str, Any]:
    """A checkpoint (format in the module doc) holding the given entries and the state of the
    global generators now (:func:`rng_state`); :func:`save_checkpoint` adds the checksum.

    Args:
        model (dict): ``{"name", "kwargs"}``, what :func:`load_model` rebuilds.
        model_state (dict): the model's ``state_dict()``.
        optimizer_state (dict): the optimizer's ``state_dict()``.
        scheduler_state (dict): ``{"name", "step", "steps_per_epoch", "state"}`` (``state``:
            the scheduler's ``state_dict()``).
        epoch (int): epochs done.
        step (int): optimisation steps done.
        config (dict): the resolved config, a plain nested mapping.
        history (list of dict): the metric rows so far.
        run_id (str, optional): the run's id (:func:`dnwgraph.runs.run.new_run_id`).
        dnwgraph_version (str, optional): the version whose defaults built the model (a
            resumed run passes its checkpoint's :func:`built_by`). (default: this version)

    Examples:
        >>> ckpt = new_checkpoint(model={"name": "m", "kwargs": {}}, model_state={},
        ...                       optimizer_state={}, scheduler_state={}, epoch=1, step=3,
        ...                       config={}, history=[])
        >>> ckpt["format"], ckpt["epoch"], sorted(ckpt["rng"])
        ('dnwgraph-checkpoint/1', 1, ['numpy', 'python', 'torch'])
    """
    return {
        "format": FORMAT,
        "model": model,
        "model_state": model_state,
        "optimizer_state": optimizer_state,
        "scheduler_state": scheduler_state,
        "epoch": epoch,
        "step": step,
        "rng": rng_state(),
        "config": config,
        "history": history,
        "run_id": run_id,
        "dnwgraph_version": dnwgraph_version,
    }


def save_checkpoint(path: PathLikeStr, state: dict[str, Any]) -> None:
    """Serialise ``state`` with :func:`torch.save` and write it atomically to ``path``.

    A dnwgraph checkpoint (a ``state`` with a ``format`` entry) gets its ``checksum``
    (:func:`state_digest`) added first.

    Examples:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> save_checkpoint(f"{d}/c.pt", {"epoch": 1})
        >>> torch.load(f"{d}/c.pt", weights_only=True)
        {'epoch': 1}
    """
    if "format" in state:
        state = {**state, "checksum": state_digest(state)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: PathLikeStr, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a dnwgraph checkpoint (``weights_only=True``), check its format and checksum.

    Args:
        path (path): ``checkpoint.pt`` or a run directory holding one.
        map_location (str or torch.device, optional): where tensors go. (default: ``"cpu"``)

    Raises:
        CheckpointError: if the file is missing, truncated or corrupt (its checksum does not
            match), or not a dnwgraph checkpoint (the message names the file and what was
            wrong).
    """
    path = Path(path)
    if os.path.isdir(path):  # os.path: False for any OSError (a name too long), as Path's is not
        path = path / CHECKPOINT
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    state = safe_torch_load(path, "checkpoint", map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a dnwgraph checkpoint (expected format {FORMAT!r}, got {got!r})"
        )
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks the key(s) {missing}")
    if "checksum" in state and state["checksum"] != state_digest(state):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt: its contents do not match its checksum (the "
            "file was damaged after it was written); restore a copy or start a new run"
        )
    if not is_version(built_by(state)):
        raise CheckpointError(
            f"checkpoint {str(path)!r}: 'dnwgraph_version' must be a version string (got "
            f"{state['dnwgraph_version']!r:.80})"
        )
    return state


def built_by(state: dict[str, Any]) -> Any:
    """The version whose defaults built a checkpoint's model (:data:`OLDEST` for a checkpoint
    written before versions were recorded).

    Examples:
        >>> built_by({}), built_by({"dnwgraph_version": "0.3.0"})
        ('0.2.0', '0.3.0')
    """
    return state.get("dnwgraph_version", OLDEST)


def rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's global generators (CUDA too, if used), as
    tensors and plain values (``weights_only``-loadable).

    Examples:
        >>> state = rng_state()
        >>> a = torch.rand(2)
        >>> set_rng_state(state)
        >>> torch.equal(a, torch.rand(2))
        True
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {
            "version": version,
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state` (see its example).

    Raises:
        KeyError: if ``state`` lacks one of the ``python``, ``numpy``, ``torch`` entries.
    """
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(
        (
            nps["name"],
            nps["keys"].numpy().astype(np.uint32),
            nps["pos"],
            nps["has_gauss"],
            nps["cached"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def is_pretrained_source(path: PathLikeStr) -> bool:
    """Whether :func:`load_model` reads ``path`` as a pretrained-model folder: a folder that
    ``save_pretrained`` wrote and that is not a run (no ``checkpoint.pt``).  What the analysis
    writes by default goes beside such a folder, never into it.

    Examples:
        >>> is_pretrained_source(".")
        False
    """
    path = Path(path)
    return os.path.isdir(path) and not os.path.isfile(path / CHECKPOINT) and is_pretrained_dir(path)


def load_model(path: PathLikeStr, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained model from a run directory, a ``checkpoint.pt`` or a pretrained-model
    folder, in eval mode.

    The model is created with ``create_model(name, **kwargs)`` from the checkpoint, with the
    defaults of the version that built it (:func:`built_by`), and its state dict (weights,
    and the masks of ``random`` / ``fixed`` selections) is loaded exactly.
    A folder written by ``model.save_pretrained(dir)`` (``config.json`` and
    ``model.safetensors``, no ``checkpoint.pt``) is read by
    :func:`dnwgraph.models.from_pretrained`.

    Args:
        path (path): a run directory (``dnwgraph train --out DIR``), a checkpoint file or a
            pretrained-model folder.
        map_location (str or torch.device, optional): device of the returned model.
            (default: ``"cpu"``)

    Returns:
        nn.Module: the model, in ``eval()`` mode.

    Raises:
        CheckpointError: if the checkpoint is missing, corrupt or not a dnwgraph checkpoint.
        ValueError: an unusable pretrained-model folder.

    Examples:
        >>> model = load_model("runs/demo/dnw")  # doctest: +SKIP
        >>> model(torch.randn(8, 40)).shape  # doctest: +SKIP
        torch.Size([8, 10])
    """
    check_map_location(map_location)
    if is_pretrained_source(path):
        return from_pretrained(path, map_location=map_location)

    state = load_checkpoint(path, map_location=map_location)
    spec = state["model"]
    name = spec.get("name") if isinstance(spec, dict) else None
    warn_if_newer(built_by(state), f"checkpoint {str(path)!r}")
    try:
        kwargs = migrate_kwargs(str(name), dict(spec.get("kwargs") or {}), built_by(state))
        model = create_model(str(name), **kwargs)
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds model {name!r}, which cannot be rebuilt here "
            f"({type(err).__name__}: {str(err).strip().splitlines()[0][:200]})"
        ) from None
    try:
        load_state_dict(model, state["model_state"], what=f"checkpoint {str(path)!r}")
    except DNWGraphError as err:
        raise CheckpointError(str(err)) from None
    return model.to(map_location).eval()
