"""Checkpoints: atomic writes, safe loads, RNG state, and :func:`load_model`.

A checkpoint (``DIR/checkpoint.pt``) is a dict of tensors and plain values, loadable with
``torch.load(weights_only=True)``::

    {"format": "dnwgraph-checkpoint/1", "model": {"name", "kwargs"}, "model_state",
     "optimizer_state", "scheduler_state", "epoch", "step", "rng", "config", "history"}

It is written to a temporary file in the same folder and renamed over the old one
(:func:`os.replace` is atomic), so a run killed at any moment leaves either the previous or the
new checkpoint, never a partial one.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dnwgraph.typing import PathLikeStr

__all__ = [
    "FORMAT",
    "CheckpointError",
    "atomic_write_bytes",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "load_model",
]

FORMAT = "dnwgraph-checkpoint/1"
CHECKPOINT = "checkpoint.pt"
REQUIRED = ("format", "model", "model_state", "epoch", "config")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated or of an unknown format."""


def atomic_write_bytes(path: PathLikeStr, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file, ``fsync``, then rename.

    Raises:
        OSError: if the folder is not writable.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "a.txt"
        >>> atomic_write_bytes(path, b"hello")
        >>> path.read_bytes(), sorted(p.name for p in path.parent.iterdir())
        (b'hello', ['a.txt'])
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: PathLikeStr, state: dict[str, Any]) -> None:
    """Serialise ``state`` with :func:`torch.save` and write it atomically to ``path``.

    Examples:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> save_checkpoint(f"{d}/c.pt", {"epoch": 1})
        >>> torch.load(f"{d}/c.pt", weights_only=True)
        {'epoch': 1}
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: PathLikeStr, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a dnwgraph checkpoint (``weights_only=True``) and check its format.

    Args:
        path (path): ``checkpoint.pt`` or a run directory holding one.
        map_location (str or torch.device, optional): where tensors go. (default: ``"cpu"``)

    Raises:
        CheckpointError: if the file is missing, truncated or corrupt, or not a dnwgraph
            checkpoint (the message names the file and what was wrong).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - every failure here means an unusable file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated and cannot be loaded "
            f"({type(err).__name__}: {first[:200]}); start a new run or restore a copy"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a dnwgraph checkpoint (expected format {FORMAT!r}, got {got!r})"
        )
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks the key(s) {missing}")
    return state


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


def load_model(path: PathLikeStr, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained model from a run directory, a ``checkpoint.pt`` or a pretrained-model
    folder, in eval mode.

    The model is created with ``create_model(name, **kwargs)`` from the checkpoint and its
    state dict (weights, and the masks of ``random`` / ``fixed`` selections) is loaded exactly.
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
    from dnwgraph.models import create_model
    from dnwgraph.models.pretrained import from_pretrained, is_pretrained_dir

    if Path(path).is_dir() and not (Path(path) / CHECKPOINT).exists() and is_pretrained_dir(path):
        return from_pretrained(path, map_location=map_location)

    state = load_checkpoint(path, map_location=map_location)
    spec = state["model"]
    model = create_model(spec["name"], **dict(spec.get("kwargs") or {}))
    model.load_state_dict(state["model_state"])
    return model.to(map_location).eval()
