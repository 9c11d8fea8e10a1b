"""Deprecated: moved to :mod:`dnwgraph.runs.rundir` (the run format is below train).

Importing this module warns and re-exports the new module's names; it will be removed.
"""

import warnings

from dnwgraph.runs.rundir import *  # noqa: F403
from dnwgraph.runs.rundir import __all__  # noqa: F401

warnings.warn(
    "dnwgraph.train.rundir moved to dnwgraph.runs.rundir; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
