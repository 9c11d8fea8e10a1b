"""Rebuilding a saved model as it was built, after a preset's default changed.

A saved model — a pretrained folder's ``config.json``, a run's ``checkpoint.pt`` — records the
registered name and the keywords its user passed, not the defaults those keywords left alone,
and the version of dnwgraph whose defaults it was built with (``dnwgraph_version``). When a
release changes a preset's default, it adds one :class:`Migration` here; every place that
rebuilds a saved model (:func:`~dnwgraph.models.from_pretrained`,
:func:`~dnwgraph.runs.checkpoint.load_model`, resuming a run, starting one from it with
``init.from_run``) passes the keywords through
:func:`migrate_kwargs` with the version that saved them, so a model saved before the change is
rebuilt with the default it had. The version is raised in the commit that changes the first
default of a release, so that no saved model records the new version with the old defaults.

A model saved by a *newer* dnwgraph may rely on defaults this one does not know:
:func:`warn_if_newer` says so when it is loaded, and a run written by a newer dnwgraph is not
resumed. A checkpoint without a version is taken as 0.2's (:data:`OLDEST`); one of 0.1 (the
reference code's defaults, ``fan_in="candidates"``, norm epsilon 1e-5, ReLU) cannot be told
apart and needs those keywords spelt out.

========  ===============  ==============================================================
version   models           what changed
========  ===============  ==============================================================
0.3.0     ``tiny_static``  node norms' epsilon 0.1 -> 1e-5 (``presets.PRESET_NODE_OPS``)
========  ===============  ==============================================================
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dnwgraph._version import __version__
from dnwgraph.errors import DNWGraphError

__all__ = [
    "Migration",
    "MIGRATIONS",
    "OLDEST",
    "migrate_kwargs",
    "parse_version",
    "is_version",
    "is_newer",
    "warn_if_newer",
]

#: The version a saved model without a ``dnwgraph_version`` was written by: checkpoints
#: recorded none before 0.3.0.
OLDEST = "0.2.0"


@dataclass(frozen=True)
class Migration:
    """The defaults ``models`` had before ``version``.

    Attributes:
        version (str): the first version with the new defaults.
        models (tuple of str): the registered names whose defaults changed.
        defaults (dict): keyword -> the default it had before ``version``.  A saved model
            that did not pass the keyword gets it; one that passed a mapping (such as
            ``node_op_options``) gets the old mapping with its own entries laid over it.
    """

    version: str
    models: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)


#: Every change of a preset's defaults, oldest first.
MIGRATIONS: tuple[Migration, ...] = (
    Migration("0.3.0", ("tiny_static",), {"node_op_options": {"eps": 0.1}}),
)


#: ``MAJOR.MINOR[.PATCH]``, then a pre-release (``a1``, ``b2``, ``rc1``, ``.dev3``) and a
#: post-release or local part (``.post1``, ``+local``), as PEP 440 spells them.
_VERSION = re.compile(
    r"(\d{1,9})\.(\d{1,9})(?:\.(\d{1,9}))?"
    r"(?P<pre>(?:a|b|rc)\d{1,9}|\.?dev\d{0,9})?"
    r"(?:\.post\d{1,9})?(?:\+[0-9A-Za-z.]{1,64})?",
    re.ASCII,
)


def parse_version(version: object) -> tuple[int, int, int, int]:
    """``"0.2.0"`` -> ``(0, 2, 0, 1)``: major, minor, patch, and 0 for a pre-release (which
    comes before its release, as in PEP 440) or 1.

    Raises:
        DNWGraphError: ``version`` is not a version string.

    Examples:
        >>> parse_version("0.3.0"), parse_version("1.2"), parse_version("0.4.0.dev1")
        ((0, 3, 0, 1), (1, 2, 0, 1), (0, 4, 0, 0))
        >>> parse_version("0.3.0rc1") < parse_version("0.3.0") <= parse_version("0.3.0.post1")
        True
    """
    found = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if found is None:
        raise DNWGraphError(f"expected a dnwgraph version such as '0.3.0' (got {version!r:.80})")
    major, minor, patch = found.group(1), found.group(2), found.group(3) or "0"
    return int(major), int(minor), int(patch), int(found.group("pre") is None)


def is_version(version: object) -> bool:
    """Whether :func:`parse_version` reads ``version``."""
    try:
        parse_version(version)
    except DNWGraphError:
        return False
    return True


def is_newer(saved_by: str) -> bool:
    """Whether version ``saved_by`` is newer than this dnwgraph (whose defaults it may not
    know).

    Examples:
        >>> is_newer("0.2.0"), is_newer("99.0")
        (False, True)
    """
    return parse_version(saved_by) > parse_version(__version__)


def warn_if_newer(saved_by: str, what: str, stacklevel: int = 3) -> None:
    """Warn that ``what`` was saved by a newer dnwgraph, whose defaults may differ
    (``stacklevel`` as :func:`warnings.warn` counts it from the caller's caller: 3 points at
    whoever called the function that calls this one)."""
    if is_newer(saved_by):
        warnings.warn(
            f"{what} was saved by dnwgraph {saved_by}, newer than this one ({__version__}): a "
            "default changed since would build another model; upgrade dnwgraph to load it as "
            "it was trained",
            UserWarning,
            stacklevel=stacklevel,
        )


def migrate_kwargs(name: str, kwargs: Mapping[str, Any], saved_by: str) -> dict[str, Any]:
    """The keywords that rebuild model ``name`` as version ``saved_by`` built it from
    ``kwargs``: every later change of its defaults undone, the user's own keywords kept.

    Raises:
        DNWGraphError: ``saved_by`` is not a version string.

    Examples:
        >>> migrate_kwargs("tiny_static", {"node_op_options": {"activation": "relu"}}, "0.2.0")
        {'node_op_options': {'eps': 0.1, 'activation': 'relu'}}
        >>> migrate_kwargs("tiny_static", {}, "0.3.0")
        {}
    """
    saved = parse_version(saved_by)
    out = dict(kwargs)
    for migration in MIGRATIONS:
        if name not in migration.models or saved >= parse_version(migration.version):
            continue
        for key, old in migration.defaults.items():
            mine = out.get(key)
            if key not in out or mine is None:
                out[key] = old
            elif isinstance(old, Mapping) and isinstance(mine, Mapping):
                out[key] = {**old, **mine}
    return out
