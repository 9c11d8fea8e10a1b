"""The run directory: its layout, what may be replaced, and how a run starts and restarts.

A run directory holds (see :mod:`dnwgraph.train.loop`)::

    config.yaml  init.pt  checkpoint.pt  metrics.csv  wiring/  tensorboard/

plus what the tools write into it (``figures/``, ``analysis/``, the demo's
``wiring.graphml``).  This module is the one place that knows these names; the training loop
asks it to start, restart or replace a run, and ``export`` / ``plot`` / ``analyze`` ask it
whether an output path would write over a run's own files.

Safety rules (``docs/guarantees.md``):

* a run is created atomically: its folder appears (renamed from ``.NAME.tmp``) already holding
  ``config.yaml``, so a run killed at any moment can be resumed;
* ``--overwrite`` replaces a folder only if it is *recognisably a dnwgraph run* (it holds
  ``config.yaml`` or ``checkpoint.pt`` and nothing but the entries above), and never the
  working directory or one of its parents, the home directory or one of its parents, the file
  system root, or a folder holding the config file in use;
* nothing else is ever deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from dnwgraph._atomic import TMP_SUFFIX, is_tmp_name, remove_stale_tmp
from dnwgraph.errors import DNWGraphError
from dnwgraph.typing import PathLikeStr

__all__ = [
    "CONFIG",
    "INIT",
    "CHECKPOINT",
    "METRICS",
    "WIRING",
    "TENSORBOARD",
    "RunExistsError",
    "is_run_dir",
    "owning_run",
    "check_not_run_file",
    "check_new_run",
    "start_run",
    "clear_outputs",
]

CONFIG = "config.yaml"
INIT = "init.pt"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
WIRING = "wiring"
TENSORBOARD = "tensorboard"

#: Files and folders a training run writes (never written by export / plot / analyze).
RUN_FILES: tuple[str, ...] = (CONFIG, INIT, CHECKPOINT, METRICS)
RUN_FOLDERS: tuple[str, ...] = (WIRING, TENSORBOARD)
#: What the tools and the demo write into a run folder; replaced along with the run.
TOOL_FILES: tuple[str, ...] = ("wiring.graphml",)
TOOL_FOLDERS: tuple[str, ...] = ("figures", "analysis")


class RunExistsError(DNWGraphError, FileExistsError):
    """The output directory already holds a run (use ``--resume`` or ``--overwrite``)."""


def _is_tmp(p: Path) -> bool:
    return is_tmp_name(p.name)


def _foreign(folder: Path) -> list[str]:
    """Names in ``folder`` that a run does not write (its own files must be plain files and
    its own folders plain folders, not links)."""
    out = []
    for p in sorted(folder.iterdir()):
        name = p.name
        if p.is_symlink():
            out.append(name)
        elif name in RUN_FILES + TOOL_FILES or _is_tmp(p):
            if not p.is_file():
                out.append(name)
        elif name in RUN_FOLDERS + TOOL_FOLDERS:
            if not p.is_dir():
                out.append(name)
        else:
            out.append(name)
    return out


def is_run_dir(path: PathLikeStr) -> bool:
    """Whether ``path`` is recognisably a dnwgraph run: a folder holding ``config.yaml`` or
    ``checkpoint.pt`` and nothing that a run does not write.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "config.yaml").write_text("{}")
        >>> is_run_dir(d)
        True
        >>> _ = (d / "thesis.txt").write_text("years of work")
        >>> is_run_dir(d)
        False
    """
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return False
    has_run = (path / CONFIG).is_file() or (path / CHECKPOINT).is_file()
    return has_run and not _foreign(path)


def owning_run(path: PathLikeStr) -> Path | None:
    """The run folder whose own file ``path`` is (``config.yaml``, ``init.pt``,
    ``checkpoint.pt``, ``metrics.csv``, or anything under ``wiring/`` or ``tensorboard/``),
    else ``None``.  A run folder here is one holding ``config.yaml`` or ``checkpoint.pt``."""
    path = Path(os.path.abspath(path))
    parent = path.parent
    candidates = []
    if path.name in RUN_FILES:
        candidates.append(parent)
    for folder in RUN_FOLDERS:
        if folder in path.parent.parts:
            # the run is the parent of the innermost wiring/ or tensorboard/ above path
            idx = len(path.parent.parts) - 1 - path.parent.parts[::-1].index(folder)
            candidates.append(Path(*path.parent.parts[:idx]))
    if path.name in RUN_FOLDERS:
        candidates.append(parent)
    for run in candidates:
        if (run / CONFIG).is_file() or (run / CHECKPOINT).is_file():
            return run
    return None


def check_not_run_file(path: PathLikeStr, what: str = "output") -> None:
    """Refuse an output path that would write over a run's own files.

    Raises:
        DNWGraphError: ``path`` is (or is inside) a file or folder a training run owns.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "config.yaml").write_text("{}")
        >>> check_not_run_file(d / "wiring.csv")
        >>> check_not_run_file(d / "metrics.csv")
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphError: the output ... is a file of the run ...
    """
    run = owning_run(path)
    if run is not None:
        owned = ", ".join([*RUN_FILES, *(f"{f}/" for f in RUN_FOLDERS)])
        raise DNWGraphError(
            f"the {what} {str(path)!r} is a file of the run {str(run)!r} (its {owned} belong "
            f"to training); write it elsewhere, e.g. "
            f"{str(run / ('export' + Path(path).suffix))!r}"
        )


def _protected(out: Path, config_file: PathLikeStr | None) -> str | None:
    """Why ``out`` must never be replaced, or ``None``."""
    real = Path(os.path.realpath(out))
    cwd = Path(os.path.realpath(Path.cwd()))
    home = Path(os.path.realpath(Path.home()))
    if real == Path(real.anchor):
        return "it is the root of the file system"
    if cwd == real or real in cwd.parents:
        return "it is the working directory" + ("" if cwd == real else " or holds it")
    if home == real or real in home.parents:
        return "it is the home directory" + ("" if home == real else " or holds it")
    if config_file is not None:
        cfg = Path(os.path.realpath(config_file))
        if real in cfg.parents:
            return f"it holds the config file in use ({str(config_file)!r})"
    return None


def _first_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_new_run(
    out: PathLikeStr, overwrite: bool = False, config_file: PathLikeStr | None = None
) -> None:
    """Check, before any work, that a new run may be written to ``out``.

    ``out`` may be missing (it is created), an empty folder, or, with ``overwrite``, a folder
    that :func:`is_run_dir` recognises and that is not protected (see the module doc).

    Raises:
        RunExistsError: ``out`` holds a run and ``overwrite`` is false.
        DNWGraphError: ``out`` is a file, is under a file or an unwritable folder, holds
            anything but a run, or is protected.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise DNWGraphError(
                f"the run directory {str(out)!r} is a file, not a folder; choose another --out"
            )
        entries = [p for p in out.iterdir() if not _is_tmp(p)]
        if not entries:
            _check_writable(out, out)
            return
        if not is_run_dir(out):
            has_run = (out / CONFIG).is_file() or (out / CHECKPOINT).is_file()
            foreign = _foreign(out)
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            if has_run:
                raise DNWGraphError(
                    f"{str(out)!r} holds a run and files that are not part of it ({shown}); "
                    "dnwgraph replaces only a folder holding nothing but a run: move those "
                    "files out, continue the run with --resume, or choose another --out"
                )
            raise DNWGraphError(
                f"{str(out)!r} is not empty and is not a dnwgraph run (it holds {shown}); "
                "a run needs a new or empty folder: choose another --out"
            )
        if not overwrite:
            raise RunExistsError(
                f"{str(out)!r} already holds a run; continue it with --resume {out}, "
                f"or replace it with --overwrite"
            )
        why = _protected(out, config_file)
        if why is not None:
            raise DNWGraphError(f"--overwrite will not replace {str(out)!r}: {why}")
        _check_writable(out, out)
        return
    _check_writable(out, _first_existing(out.parent))


def _check_writable(out: Path, folder: Path) -> None:
    if not folder.is_dir():
        raise DNWGraphError(
            f"cannot create the run directory {str(out)!r}: {str(folder)!r} is a file, not a folder"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DNWGraphError(
            f"cannot create the run directory {str(out)!r}: {str(folder)!r} is not writable"
        )


def clear_outputs(out: PathLikeStr, *, keep_config: bool = True, tools: bool = True) -> None:
    """Delete what a run wrote into ``out``, first the checkpoint (so that a kill half-way
    leaves a run that restarts from its config), then the rest; ``config.yaml`` stays when
    ``keep_config``, and what the tools wrote (``figures/``, ``analysis/``, the demo's
    ``wiring.graphml``) goes too when ``tools``.  Only the names of the run layout are
    touched."""
    out = Path(out)
    with contextlib.suppress(FileNotFoundError):
        (out / CHECKPOINT).unlink()
    files = RUN_FILES + (TOOL_FILES if tools else ())
    for name in files:
        if name != CHECKPOINT and (name != CONFIG or not keep_config):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    for name in RUN_FOLDERS + (TOOL_FOLDERS if tools else ()):
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
    remove_stale_tmp(out, recursive=False)


def _stale_creation(out: Path) -> Path:
    return out.with_name(f".{out.name}{TMP_SUFFIX}")


def start_run(out: PathLikeStr, write_config: Callable[[Path], None], overwrite: bool) -> None:
    """Create (or, with ``overwrite``, replace) the run folder ``out`` holding ``config.yaml``.

    A new folder is assembled as ``.NAME.tmp`` beside ``out`` and renamed to ``out`` once
    ``write_config(folder)`` has written ``config.yaml`` into it, so ``out`` never exists
    without its config.  An empty existing folder gets the config written into it; an
    existing run (after :func:`check_new_run`) loses its checkpoint first, then gets the new
    config, then loses the rest (:func:`clear_outputs`).

    Raises:
        DNWGraphError: the folder cannot be created (the message names it and why).
    """
    out = Path(out)
    try:
        if out.is_dir():
            if any(not _is_tmp(p) for p in out.iterdir()):  # a run, checked for overwrite
                with contextlib.suppress(FileNotFoundError):
                    (out / CHECKPOINT).unlink()
                write_config(out)
                clear_outputs(out, keep_config=True)
            else:
                remove_stale_tmp(out, recursive=False)
                write_config(out)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = _stale_creation(out)
        if staging.is_dir() and not staging.is_symlink():
            # left by a run killed while it was being created: it can hold only its config
            names = {p.name for p in staging.iterdir()}
            if all(n == CONFIG or is_tmp_name(n) for n in names):
                shutil.rmtree(staging)
        staging.mkdir()
        write_config(staging)
        os.rename(staging, out)
    except OSError as err:  # unwritable, a read-only or special file system, a full disk
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(out) else ""
        raise DNWGraphError(
            f"cannot create the run directory {str(out)!r}: {err.strerror or err}{where}"
        ) from None
