"""The run directory: its layout, what may be replaced, and how a run starts and restarts.

A run directory holds (see :mod:`dnwgraph.train.loop`)::

    config.yaml  init.pt  checkpoint.pt  metrics.csv  wiring/  tensorboard/

plus what the tools write into it (``figures/``, ``analysis/``).  This module is the one place
that knows these names; the training loop asks it to start, restart or replace a run, and
``export`` / ``plot`` / ``analyze`` ask it whether an output path would write over a run's own
files.

Safety rules (``docs/guarantees.md``):

* a run is created atomically: its folder appears (renamed from ``.NAME.tmp``) already holding
  ``config.yaml``, so a run killed at any moment can be resumed;
* ``--overwrite`` replaces a folder only if it is *recognisably a dnwgraph run* (it holds
  ``config.yaml`` or ``checkpoint.pt`` and, at any depth, nothing but what dnwgraph writes
  there: :func:`is_run_dir`), and never the working directory or one of its parents, the home
  directory or one of its parents, the file system root, or a folder holding the config file
  in use;
* files are removed one by one by name, never a folder with what it holds: nothing else is
  ever deleted;
* one writer at a time: a writer holds the folder's lock (:mod:`dnwgraph.runs.lock`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from dnwgraph._atomic import TMP_SUFFIX, untmp_name
from dnwgraph.errors import DNWGraphError
from dnwgraph.runs.lock import LOCK, RunLock, RunLockedError, holder
from dnwgraph.typing import PathLikeStr

__all__ = [
    "CONFIG",
    "INIT",
    "CHECKPOINT",
    "METRICS",
    "WIRING",
    "TENSORBOARD",
    "LOCK",
    "RunExistsError",
    "RunLockedError",
    "is_run_dir",
    "owning_run",
    "check_not_run_file",
    "check_new_run",
    "start_run",
    "clear_outputs",
    "remove_stale_run_tmp",
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
#: What the tools write into a run folder; replaced along with the run.
TOOL_FOLDERS: tuple[str, ...] = ("figures", "analysis")
#: The files ``dnwgraph plot`` (``figures/``) and ``dnwgraph analyze`` (``analysis/``, its
#: ``figures/``) write into a run: a run folder holds these and nothing else of theirs.
FIGURES: tuple[str, ...] = (
    "wiring.png", "adjacency.png", "degrees.png", "training_curves.png", "churn.png",
    "weights.png", "wiring.gif",
)  # fmt: skip
REPORT: tuple[str, ...] = ("report.md", "metrics.json")
REPORT_FIGURES: tuple[str, ...] = ("wiring.png", "adjacency.png", "degrees.png")
#: the sub-folders of a run, by the folder holding them ("" is the run itself)
_OWNED_FOLDERS: dict[str, tuple[str, ...]] = {
    "": RUN_FOLDERS + TOOL_FOLDERS,
    "analysis": ("figures",),
}
_SNAPSHOT = re.compile(r"epoch_\d{4,}\.pt")
_EVENTS = re.compile(r"events\.out\.tfevents\..+")


class RunExistsError(DNWGraphError, FileExistsError):
    """The output directory already holds a run (use ``--resume`` or ``--overwrite``)."""


def _owned_name(where: str, name: str) -> bool:
    """Whether a file ``name`` in the run's sub-folder ``where`` ("" for the run itself) is
    one dnwgraph writes there (or the temporary file of one)."""
    base = untmp_name(name) or name
    if where == "":
        return base in RUN_FILES or name == LOCK
    if where == WIRING:
        return bool(_SNAPSHOT.fullmatch(base))
    if where == TENSORBOARD:
        return bool(_EVENTS.fullmatch(name))
    owned = {"figures": FIGURES, "analysis": REPORT, "analysis/figures": REPORT_FIGURES}
    return base in owned.get(where, ())


def _leftover(p: Path) -> bool:
    """A stale file a killed run leaves in its top folder: the lock, or a temporary file."""
    own_tmp = untmp_name(p.name) is not None and _owned_name("", p.name)
    return p.is_file() and not p.is_symlink() and (p.name == LOCK or own_tmp)


def _foreign(folder: Path, where: str = "") -> list[str]:
    """What in ``folder`` (recursively, as paths relative to the run) dnwgraph did not write:
    any other name, a link, an own name of the wrong kind (a folder called ``init.pt``)."""
    out = []
    for p in sorted(folder.iterdir()):
        rel = f"{where}/{p.name}" if where else p.name
        if p.is_symlink():
            out.append(rel)
        elif p.is_dir() and p.name in _OWNED_FOLDERS.get(where, ()):
            out += _foreign(p, rel)
        elif not (p.is_file() and _owned_name(where, p.name)):
            out.append(rel + ("/" if p.is_dir() else ""))
    return out


def is_run_dir(path: PathLikeStr) -> bool:
    """Whether ``path`` is recognisably a dnwgraph run: a folder holding ``config.yaml`` or
    ``checkpoint.pt`` and nothing that dnwgraph does not write, at any depth (its
    ``figures/`` and ``analysis/`` hold only what ``plot`` and ``analyze`` write there).

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

    ``out`` may be missing (it is created), an empty folder (a stale lock or temporary file
    of a killed run aside: a hidden file of yours makes it not empty), or, with
    ``overwrite``, a folder that :func:`is_run_dir` recognises and that is not protected
    (see the module doc).  No other process may be writing it.

    Raises:
        RunExistsError: ``out`` holds a run and ``overwrite`` is false.
        RunLockedError: another process is writing ``out``.
        DNWGraphError: ``out`` is a file, is under a file or an unwritable folder, holds
            anything but a run, or is protected.
    """
    out = Path(out)
    if out.is_dir():
        who = holder(out)
        if who is not None:
            raise RunLockedError(
                f"the run folder {str(out)!r} is being written by {who}; wait until it ends "
                "or choose another --out"
            )
    _check_contents(out, overwrite, config_file)


def _check_contents(out: Path, overwrite: bool, config_file: PathLikeStr | None) -> None:
    """:func:`check_new_run` but for the lock (its caller may hold it)."""
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise DNWGraphError(
                f"the run directory {str(out)!r} is a file, not a folder; choose another --out"
            )
        if all(_leftover(p) for p in out.iterdir()):
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


def _remove_owned(folder: Path, where: str) -> None:
    """Delete the files dnwgraph wrote in ``folder`` (a sub-folder of a run) and below, then
    the folders left empty; links are never followed, other files never touched."""
    for p in sorted(folder.iterdir()):
        if p.is_symlink():
            continue
        rel = f"{where}/{p.name}"
        if p.is_dir() and p.name in _OWNED_FOLDERS.get(where, ()):
            _remove_owned(p, rel)
        elif p.is_file() and _owned_name(where, p.name):
            p.unlink()
    with contextlib.suppress(OSError):  # not empty: it holds something of yours
        folder.rmdir()


def clear_outputs(out: PathLikeStr, *, keep_config: bool = True, tools: bool = True) -> None:
    """Delete what a run wrote into ``out``, first the checkpoint (so that a kill half-way
    leaves a run that restarts from its config), then the rest; ``config.yaml`` stays when
    ``keep_config``, and what the tools wrote (``figures/``, ``analysis/``) goes too when
    ``tools``.  Files are removed by name (those of
    :func:`is_run_dir`), never a whole folder: a file of yours anywhere inside is kept."""
    out = Path(out)
    with contextlib.suppress(FileNotFoundError):
        (out / CHECKPOINT).unlink()
    for name in RUN_FILES:
        if name != CHECKPOINT and (name != CONFIG or not keep_config):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    for name in RUN_FOLDERS + (TOOL_FOLDERS if tools else ()):
        p = out / name
        if p.is_dir() and not p.is_symlink():
            _remove_owned(p, name)
    remove_stale_run_tmp(out)


def remove_stale_run_tmp(out: PathLikeStr) -> list[Path]:
    """Delete the temporary files a killed writer left in the run ``out`` (its own names
    only: ``.checkpoint.tmp.pt``, ``wiring/.epoch_0003.0a1b2c3d.tmp.pt``, ...; a hidden file
    of yours stays); the removed paths."""
    out = Path(out)
    removed = []
    for where in ("", WIRING, *TOOL_FOLDERS, "analysis/figures"):
        folder = out / where if where else out
        if not folder.is_dir() or folder.is_symlink():
            continue
        for p in folder.iterdir():
            if untmp_name(p.name) is not None and p.is_file() and _owned_name(where, p.name):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                removed.append(p)
    return sorted(removed)


def _staging(out: Path) -> Path:
    """A new, unique name to assemble the run ``out`` under, beside it."""
    return out.with_name(f".{out.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def _remove_stale_staging(out: Path) -> None:
    """Delete the folders a run killed while it was being created left beside ``out``: they
    hold only a config and a lock that no live process holds."""
    pattern = re.compile(rf"\.{re.escape(out.name)}(\.[0-9a-f]{{8}})?{re.escape(TMP_SUFFIX)}")
    for p in out.parent.iterdir():
        if not pattern.fullmatch(p.name) or p.is_symlink() or not p.is_dir():
            continue
        names = {q.name for q in p.iterdir()}
        if all(n in (CONFIG, LOCK) or untmp_name(n) == CONFIG for n in names) and holder(p) is None:
            shutil.rmtree(p)


def start_run(
    out: PathLikeStr,
    write_config: Callable[[Path], None],
    overwrite: bool,
    lock: RunLock | None = None,
) -> None:
    """Create (or, with ``overwrite``, replace) the run folder ``out`` holding ``config.yaml``,
    and take its lock.

    A new folder is assembled under a unique temporary name beside ``out`` (holding the lock
    and ``write_config(folder)``'s ``config.yaml``) and renamed to ``out``, so ``out`` never
    exists without its config, and of two runs started into one new folder at once, one
    renames and the other is refused.  An existing folder is locked, then checked again
    (:func:`check_new_run`: another process may have started a run there since); an empty
    one gets the config written into it; a run loses its checkpoint first, then gets the new
    config, then loses the rest (:func:`clear_outputs`).

    Args:
        lock (RunLock, optional): holds the folder's lock afterwards (the caller releases
            it); without one the lock is released on return.

    Raises:
        RunExistsError: another process created a run in ``out`` meanwhile.
        RunLockedError: another process is writing ``out``.
        DNWGraphError: the folder cannot be created (the message names it and why).
    """
    out = Path(out)
    own = lock is None
    lock = RunLock() if lock is None else lock
    try:
        if out.is_dir():
            _start_in(out, write_config, overwrite, lock)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(out)
        staging = _staging(out)
        staging.mkdir()
        lock.acquire(staging)
        write_config(staging)
        _rename_into_place(staging, out, lock)
    except OSError as err:  # unwritable, a read-only or special file system, a full disk
        if isinstance(err, DNWGraphError):  # RunExistsError is a FileExistsError too
            raise
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(out) else ""
        raise DNWGraphError(
            f"cannot create the run directory {str(out)!r}: {err.strerror or err}{where}"
        ) from None
    finally:
        if own:
            lock.release()


def _start_in(
    out: Path, write_config: Callable[[Path], None], overwrite: bool, lock: RunLock
) -> None:
    """:func:`start_run` into the existing folder ``out``."""
    lock.acquire(out)
    _check_contents(out, overwrite, None)
    if any(not _leftover(p) for p in out.iterdir()):  # a run, checked for overwrite
        with contextlib.suppress(FileNotFoundError):
            (out / CHECKPOINT).unlink()
        write_config(out)
        clear_outputs(out, keep_config=True)
    else:
        remove_stale_run_tmp(out)
        write_config(out)


def _rename_into_place(staging: Path, out: Path, lock: RunLock) -> None:
    try:
        os.rename(staging, out)
    except OSError:
        if not out.exists():
            raise
        lock.release()
        shutil.rmtree(staging)  # ours alone: its unique name, our config
        raise RunExistsError(
            f"{str(out)!r} was created by another process while this run was starting; "
            "nothing was written: continue that run with --resume, or choose another --out"
        ) from None
    lock.moved(out)
