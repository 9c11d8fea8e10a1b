"""The package's error types: one for every user mistake, so that the CLI can tell them from bugs.

Every check of user input (arguments, config values, files, checkpoints, data) raises
:class:`DNWGraphError` or a subclass of it.  It is a :class:`ValueError`, so
``except ValueError`` catches it.  ``dnwgraph`` on the command line turns it into one line on
stderr and exit code 2; any other exception is a bug and keeps its traceback.

This module imports nothing from the package, so every layer can raise these.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator

__all__ = [
    "DNWGraphError",
    "DNWGraphTypeError",
    "NonFiniteError",
    "MissingDependencyError",
    "one_line",
    "warnings_as_lines",
]


class DNWGraphError(ValueError):
    """A user mistake: a bad argument, config value, file, checkpoint or data set.

    The message says what was expected and what came, on one line.

    Examples:
        >>> from dnwgraph import Wiring
        >>> try:
        ...     Wiring([(0, 1)], acyclic="yes")
        ... except DNWGraphError as err:
        ...     print(err)
        'acyclic' must be True or False (got 'yes')
    """


class DNWGraphTypeError(DNWGraphError, TypeError):
    """A user mistake of type: a list where a tensor or a :class:`~dnwgraph.Wiring` belongs,
    a string where a model belongs.  Also a :class:`TypeError`."""


class NonFiniteError(DNWGraphError):
    """Edge weights (or other parameters) hold NaN or infinity, so the top-k is undefined.

    Raised instead of silently selecting fewer than ``k`` edges; the training loop turns it
    into :class:`~dnwgraph.train.TrainingDiverged`.
    """


class MissingDependencyError(DNWGraphError, ImportError):
    """An optional dependency (an extra such as ``vision`` or ``tensorboard``) is not installed.

    Also an :class:`ImportError`, so ``except ImportError`` keeps catching it.
    """


def one_line(err: BaseException) -> str:
    """``str(err)`` on one line (newlines folded into ``" | "``), for the CLI.

    Examples:
        >>> one_line(ValueError("first\\nsecond"))
        'first | second'
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return " | ".join(lines) if lines else type(err).__name__


@contextlib.contextmanager
def warnings_as_lines(quiet: bool = False) -> Iterator[None]:
    """Inside, every warning prints once, as ``dnwgraph: warning: MESSAGE`` on one line
    (the command line's way, without Python's source line); ``quiet`` drops them (the
    processes of a distributed run other than its first, which would repeat its warnings).
    """
    seen: set[str] = set()

    def show(message: Warning | str, *_: object, **__: object) -> None:
        text = one_line(message) if isinstance(message, Warning) else str(message)
        if not quiet and text not in seen:
            seen.add(text)
            print(f"dnwgraph: warning: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
