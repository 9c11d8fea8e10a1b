"""Output paths the user names (``-o FILE``, ``-o DIR``, ``save_wiring(obj, path)``): refused in
one line, before any work, when they cannot be written as meant.

A file path that ends with a separator (``out.csv/``) or names an existing folder, a folder
path that names an existing file, and any path below an existing file (``notes.txt/out.csv``)
raise :class:`~dnwgraph.errors.DNWGraphError` saying what was expected and what is there;
the operating system would otherwise answer with the name of a temporary file, or write
``out.csv`` for ``out.csv/``.

Private: used by the writers of :mod:`dnwgraph.graph.formats` and :mod:`dnwgraph.analysis`.
"""

from __future__ import annotations

import os
from pathlib import Path

from dnwgraph.errors import DNWGraphError
from dnwgraph.typing import PathLikeStr

__all__ = ["check_output_file", "check_output_folder"]


def check_output_file(path: PathLikeStr, what: str = "output file") -> Path:
    """``path`` as a :class:`~pathlib.Path`, once it is known to name a file that can be
    written (it may exist; its missing parent folders can be created).

    Raises:
        DNWGraphError: an empty path, a path ending with a separator, an existing folder, or
            a path below an existing file.

    Examples:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> check_output_file(f"{d}/sub/w.csv").name
        'w.csv'
        >>> check_output_file(d, "export")
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphError: expected a file path for the export (got '...', a folder)
    """
    text = _text(path, what)
    if text.endswith(("/", os.sep, os.altsep or "/")):
        raise DNWGraphError(
            f"expected a file path for the {what} (got {text!r}, a folder path: it ends with "
            f"{text[-1]!r})"
        )
    out = Path(text)
    if out.is_dir():
        raise DNWGraphError(f"expected a file path for the {what} (got {text!r}, a folder)")
    _check_parents(out, text, what)
    return out


def check_output_folder(path: PathLikeStr, what: str = "output folder") -> Path:
    """``path`` as a :class:`~pathlib.Path`, once it is known to name a folder that exists or
    can be created.

    Raises:
        DNWGraphError: an empty path, an existing file, or a path below an existing file.

    Examples:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> check_output_folder(f"{d}/figures/").name
        'figures'
    """
    text = _text(path, what)
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise DNWGraphError(f"expected a folder for the {what} (got {text!r}, a file)")
    _check_parents(out, text, what)
    return out


def _text(path: PathLikeStr, what: str) -> str:
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise DNWGraphError(f"expected a path for the {what} (got {path!r})")
    return text


def _check_parents(out: Path, text: str, what: str) -> None:
    """Refuse ``out`` when its nearest existing ancestor is not a folder."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DNWGraphError(
                    f"cannot write the {what} {text!r}: {str(parent)!r} is a file, not a folder"
                )
            return
