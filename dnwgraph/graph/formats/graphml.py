"""``.graphml`` and ``.gexf``: the XML formats of Gephi, Cytoscape and yEd, through networkx.

Written by ``networkx.write_graphml`` / ``write_gexf`` of the graph of
:func:`~dnwgraph.graph.convert.data_to_networkx`: every node and edge attribute (GEXF has no
graph attributes, so ``acyclic``/``self_loops`` are found from the graph when it is read).

Read through networkx. Node ids that are plain integers are kept as the ids (``"10"`` or
``"10.0"`` is node 10, after node 9; an id missing from the file is a node without edges); ids
that are all names are numbered in sorted order; a mix of both, a node or edge id listed
twice, an attribute key declared twice or a value given twice for one key of a node or edge
are refused (networkx would keep one of them silently). An undirected graph is refused.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from torch_geometric.data import Data

from dnwgraph.errors import DNWGraphError
from dnwgraph.graph.convert import data_to_networkx, networkx_to_data

# element -> attribute that must be unique among its siblings of that element
# (an edge id is networkx's multigraph key: a second edge with it would replace the first)
_UNIQUE = {"graphml": {"node": "id", "edge": "id", "key": "id", "data": "key"}}
_UNIQUE["gexf"] = {"node": "id", "edge": "id", "attribute": "id", "attvalue": "for"}


class XMLFormat:
    """Reader and writer of GraphML or GEXF (see the module docstring).

    Args:
        name: ``"graphml"`` or ``"gexf"``.

    Example:
        >>> import tempfile
        >>> from dnwgraph import Wiring, to_data
        >>> path = Path(tempfile.mkdtemp()) / "wiring.graphml"
        >>> fmt = XMLFormat("graphml")
        >>> fmt.write(to_data(Wiring([(0, 2), (1, 2)], edge_weight=[0.5, -1.0])), path)
        >>> data = fmt.read(path)
        >>> data.edge_index.tolist(), data.edge_weight.tolist()
        ([[0, 1], [2, 2]], [0.5, -1.0])
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def read(self, path: Path) -> Data:
        import networkx as nx

        label = {"graphml": "GraphML", "gexf": "GEXF"}[self.name]
        _check_unique(path, _UNIQUE[self.name], label)
        reader: Callable[[Path], nx.Graph] = (
            nx.read_graphml if self.name == "graphml" else (nx.read_gexf)
        )
        try:
            g = reader(path)
        except (ET.ParseError, nx.NetworkXError, KeyError, TypeError, ValueError) as err:
            raise DNWGraphError(f"malformed {label} ({type(err).__name__}: {err})") from None
        if g.number_of_edges() == 0:
            raise DNWGraphError("no edges found; a wiring needs at least one candidate edge")
        data = networkx_to_data(g, keep_ids=True)[0]
        data.named_nodes = g.number_of_nodes()  # the ids' gaps are nodes: read_data checks them
        return data

    def write(self, data: Data, path: Path) -> None:
        import networkx as nx

        g = data_to_networkx(data)
        (nx.write_graphml if self.name == "graphml" else nx.write_gexf)(g, path)


def _check_unique(path: Path, unique: dict[str, str], label: str) -> None:
    """Refuse what networkx would merge silently: ids and keys given twice (``label``: the
    format's name, for messages)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DNWGraphError(f"malformed {label}: not XML ({err})") from None
    except RecursionError:
        raise DNWGraphError("XML nested too deeply to be a wiring") from None
    for parent in root.iter():
        seen: dict[tuple[str, str], int] = {}
        for child in parent:
            tag = child.tag.rpartition("}")[2]
            attr = unique.get(tag)
            if attr is None or child.get(attr) is None:
                continue
            key = (tag, child.get(attr, ""))
            if key in seen:
                raise DNWGraphError(f"<{tag} {attr}={key[1]!r}> appears twice in one element")
            seen[key] = 1
