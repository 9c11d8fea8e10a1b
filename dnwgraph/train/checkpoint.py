"""Deprecated: moved to :mod:`dnwgraph.runs.checkpoint` (the run format is below train).

Importing this module warns and re-exports the new module's names; it will be removed.
"""

import warnings

from dnwgraph.runs.checkpoint import *  # noqa: F403
from dnwgraph.runs.checkpoint import __all__  # noqa: F401

warnings.warn(
    "dnwgraph.train.checkpoint moved to dnwgraph.runs.checkpoint; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
