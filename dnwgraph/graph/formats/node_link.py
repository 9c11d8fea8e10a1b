"""``.json``: networkx node-link JSON, the one JSON layout of a wiring.

Written by ``networkx.node_link_data(g, edges="edges")`` of the graph of
:func:`~dnwgraph.graph.convert.data_to_networkx`, so plain ``networkx.node_link_graph(doc)``
reads it::

    {"directed": true, "multigraph": false, "graph": {"acyclic": true, "self_loops": false},
     "nodes": [{"id": 0, "input_mask": true, "output_mask": false, "role": "input"}, ...],
     "edges": [{"source": 0, "target": 2, "edge_weight": -0.5, "weight": 0.5, "e_id": 0}, ...]}

Read strictly: an object with ``nodes`` (each an object with an ``id``) and ``edges`` (each an
object with ``source`` and ``target`` naming listed nodes; networkx's older key ``links`` is
read too), optionally ``directed`` (``true``), ``multigraph`` and ``graph``. Node ids are
integers (kept as ids; ``10.0`` is 10) or names (numbered in sorted order), never both; a key
given twice in an object, an unknown top-level key or nesting deeper than networkx writes are
refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch_geometric.data import Data

from dnwgraph._json import loads as strict_json
from dnwgraph.errors import DNWGraphError
from dnwgraph.graph.convert import data_to_networkx, networkx_to_data
from dnwgraph.graph.formats.base import text_lines

_TOP_KEYS = ("directed", "multigraph", "graph", "nodes", "edges", "links")


class NodeLinkFormat:
    """Reader and writer of node-link ``.json`` (see the module docstring).

    Example:
        >>> import tempfile
        >>> from dnwgraph import Wiring, to_data
        >>> path = Path(tempfile.mkdtemp()) / "wiring.json"
        >>> fmt = NodeLinkFormat()
        >>> fmt.write(to_data(Wiring([(0, 2), (1, 2)], edge_weight=[0.5, -1.0])), path)
        >>> data = fmt.read(path)
        >>> data.edge_index.tolist(), data.edge_weight.tolist()
        ([[0, 1], [2, 2]], [0.5, -1.0])
    """

    def read(self, path: Path) -> Data:
        import networkx as nx

        doc = strict_json("\n".join(text_lines(path)))
        if not isinstance(doc, dict):
            raise DNWGraphError(f"expected a JSON object (got {type(doc).__name__})")
        unknown = [k for k in doc if k not in _TOP_KEYS]
        if unknown or "nodes" not in doc or ("edges" in doc) == ("links" in doc):
            raise DNWGraphError(
                "expected networkx node-link JSON, an object with 'nodes' and 'edges' (or "
                "'links') and optionally 'directed', 'multigraph', 'graph' (got keys "
                f"{sorted(doc)})"
            )
        if doc.get("directed", True) is not True:
            raise DNWGraphError(
                f"'directed' must be true: a wiring is a directed graph (got {doc['directed']!r})"
            )
        g = nx.MultiDiGraph(**_object(doc.get("graph", {}), "'graph'"))
        for i, node in enumerate(_list(doc, "nodes")):
            attrs = _object(node, f"node {i}")
            if "id" not in attrs:
                raise DNWGraphError(f"node {i} has no 'id' (got keys {sorted(attrs)})")
            v = _id(attrs.pop("id"), f"node {i}")
            if v in g:
                raise DNWGraphError(f"node id {v!r} is listed twice")
            g.add_node(v, **attrs)
        links = "edges" if "edges" in doc else "links"
        for i, edge in enumerate(_list(doc, links)):
            attrs = _object(edge, f"edge {i}")
            ends = [attrs.pop(key, None) for key in ("source", "target")]
            attrs.pop("key", None)  # a multigraph's edge key
            ids = [None if end is None else _id(end, f"edge {i}") for end in ends]
            if any(v is None or v not in g for v in ids):
                raise DNWGraphError(
                    f"edge {i} must have 'source' and 'target' naming listed nodes "
                    f"(got {ends[0]!r} -> {ends[1]!r})"
                )
            g.add_edge(*ids, **attrs)
        if g.number_of_edges() == 0:
            raise DNWGraphError("no edges found; a wiring needs at least one candidate edge")
        data = networkx_to_data(g, keep_ids=True)[0]
        data.named_nodes = g.number_of_nodes()  # the ids' gaps are nodes: read_data checks them
        return data

    def write(self, data: Data, path: Path) -> None:
        import networkx as nx

        doc = nx.node_link_data(data_to_networkx(data), edges="edges")
        path.write_text(json.dumps(doc), encoding="utf-8")


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    if not isinstance(doc[key], list):
        raise DNWGraphError(f"'{key}' must be a list (got {type(doc[key]).__name__})")
    return doc[key]


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DNWGraphError(f"{what} must be a JSON object (got {type(value).__name__})")
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            raise DNWGraphError(
                f"{what}: attribute {key!r} must be a number, a string or a bool (got a "
                f"{type(item).__name__})"
            )
    return dict(value)


def _id(value: Any, what: str) -> Any:
    """A node id: an integer (``10.0`` is 10, as numpy arrays are written) or a name."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DNWGraphError(f"{what}: a node id is an integer or a name (got {value!r})")
    return value
