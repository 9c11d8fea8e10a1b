"""Wiring files: one module per format, each a reader and a writer, found by suffix.

================  =====================================  ==========================================
suffix            module                                 what it holds
================  =====================================  ==========================================
``.csv``          :mod:`~.csv_edges`                      one edge per row, endpoint roles, weights
``.txt``,         :mod:`~.edgelist`                       ``networkx.write_edgelist`` lines; node
``.edgelist``                                            count and roles in comments
``.json``         :mod:`~.node_link`                      networkx node-link JSON, every attribute
``.graphml``,     :mod:`~.graphml`                        GraphML / GEXF through networkx, every
``.gexf``                                                attribute
================  =====================================  ==========================================

A new format is a :class:`WiringFormat` (``read(path) -> Data``, ``write(data, path)``) given to
:func:`register_format`; see ``docs/wiring.md``.
"""

from __future__ import annotations

from dnwgraph.graph.formats.base import (
    FORMATS,
    WiringFormat,
    find_format,
    list_formats,
    read_data,
    register_format,
    write_data,
)
from dnwgraph.graph.formats.csv_edges import CSVFormat
from dnwgraph.graph.formats.edgelist import EdgeListFormat
from dnwgraph.graph.formats.graphml import XMLFormat
from dnwgraph.graph.formats.node_link import NodeLinkFormat

register_format(".csv", CSVFormat())
register_format(".txt", EdgeListFormat())
register_format(".edgelist", EdgeListFormat())
register_format(".json", NodeLinkFormat())
register_format(".graphml", XMLFormat("graphml"))
register_format(".gexf", XMLFormat("gexf"))

__all__ = [
    "FORMATS",
    "WiringFormat",
    "register_format",
    "list_formats",
    "find_format",
    "read_data",
    "write_data",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
