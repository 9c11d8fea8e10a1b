"""Build a candidate wiring: edge lists, files, networkx graphs and generators."""

from __future__ import annotations

from dnwgraph.graph._checks import CycleError
from dnwgraph.graph.formats import WiringFormat, list_formats, register_format
from dnwgraph.graph.generators import block_dag, complete, layered, random_dag
from dnwgraph.graph.wiring import Wiring, read_wiring

__all__ = [
    "Wiring",
    "CycleError",
    "block_dag",
    "layered",
    "complete",
    "random_dag",
    "read_wiring",
    "WiringFormat",
    "register_format",
    "list_formats",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
