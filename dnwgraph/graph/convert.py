r"""The one conversion between a wiring's :class:`~torch_geometric.data.Data` and networkx.

A wiring travels as a ``Data`` in one layout (what :func:`dnwgraph.to_data` returns and
:meth:`~dnwgraph.Wiring.from_data` reads), and every other form uses the same names:

=================  ======  ==============================================================
name               on      meaning
=================  ======  ==============================================================
``input_mask``     node    bool: the node is fed with data
``output_mask``    node    bool: the node is read out
``node_level``     node    topological level (acyclic wirings only)
``edge_weight``    edge    the learned, signed weight :math:`w_{uv}`
``e_id``           edge    position of the edge among all candidates (keeps the order)
``selected``       edge    bool: a top-k edge (exports with ``all_candidates=True``)
``acyclic``        graph   bool: the wiring is a DAG
``self_loops``     graph   bool: edges ``(v, v)`` are allowed
=================  ======  ==============================================================

so that PyG's own ``torch_geometric.utils.from_networkx`` / ``to_networkx`` carry the roles and
weights too. networkx graphs add two derived attributes for graph tools: ``weight`` (the
strength :math:`|w_{uv}|`, never negative, what ``pagerank`` and Dijkstra expect) and ``role``
(``"input"``, ``"hidden"`` or ``"output"``; a node both input and output is ``"input"``). A
reader takes ``edge_weight``, else ``weight``, and the masks, else ``role``.

networkx is imported lazily: building and training a wiring never needs it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.graph._checks import MAX_NODES

if TYPE_CHECKING:
    import networkx as nx

ROLES: tuple[str, ...] = ("input", "hidden", "output")
#: Node ids a file may hold as text: decimal integers, no plus sign, no leading zero; ``10.0``
#: is 10 (pandas writes an integer column that holds a NaN that way).
PLAIN_INT = re.compile(r"-?(0|[1-9][0-9]*)(\.0+)?")


def plain_int(text: str) -> int | None:
    """The integer a node id written as text stands for, or ``None`` for a name.

    Examples:
        >>> plain_int("12"), plain_int("12.0"), plain_int("-3"), plain_int("1.5"), plain_int("01")
        (12, 12, -3, None, None)
    """
    if not PLAIN_INT.fullmatch(text):
        return None
    head = text.partition(".")[0]
    if len(head) > 20:  # int() of thousands of digits is refused; no node id is this long
        raise DNWGraphError(
            f"node id {text[:40]}... is too large: ids are positions 0..N-1 below {MAX_NODES}"
        )
    return int(head)


def as_flag(value: Any, what: str) -> bool:
    """``value`` as a bool: ``True``/``False`` (Python, numpy or a one-element bool tensor, as
    PyG's ``from_networkx`` makes them) or the text ``"true"``/``"false"`` of a file.

    Raises:
        DNWGraphError: anything else, naming ``what``.

    Examples:
        >>> as_flag("False", "'acyclic'"), as_flag(torch.tensor(True), "'acyclic'")
        (False, True)
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Tensor) and value.dtype == torch.bool and value.numel() == 1:
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise DNWGraphError(f"{what} must be true or false (got {value!r})")


def as_number(value: Any, what: str) -> float:
    """``value`` as a float: an int or float (not a bool), or the text of a number (no ``_``
    between digits, which Python's ``float`` would accept and no other reader does).

    Raises:
        DNWGraphError: anything else, or an integer beyond the float range, naming ``what``.
    """
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    ):
        try:
            return float(value)
        except OverflowError:  # an int of hundreds of digits
            raise DNWGraphError(
                f"{what} must be a number in the float range (got an integer of "
                f"{len(str(abs(int(value))))} digits)"
            ) from None
    if isinstance(value, str) and "_" not in value:
        try:
            return float(value)
        except ValueError:
            pass
    raise DNWGraphError(f"{what} must be a number (got {value!r:.80})")


def data_to_networkx(data: Data) -> nx.DiGraph:
    """A wiring's ``Data`` as a ``networkx.DiGraph`` with nodes ``0..N-1`` (module docstring).

    Edges are added in ``edge_index`` order; ``e_id`` is the position when ``data`` has none.
    A ``Data`` with ``module_index``/``module_names`` (several wirings of one model) adds the
    node attributes ``module`` (name) and ``local_id`` (id inside its module) and the graph
    attribute ``num_modules``.

    Examples:
        >>> d = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=3,
        ...          input_mask=torch.tensor([True, False, False]),
        ...          output_mask=torch.tensor([False, False, True]),
        ...          edge_weight=torch.tensor([0.5, -2.0]))
        >>> g = data_to_networkx(d)
        >>> g.nodes[0]["input_mask"], g.nodes[2]["role"], g.edges[1, 2]["weight"]
        (True, 'output', 2.0)
    """
    import networkx as nx

    g = nx.DiGraph()
    for key in ("acyclic", "self_loops"):
        if key in data:
            g.graph[key] = as_flag(data[key], f"'{key}'")
    n = int(data.num_nodes)
    for v, attrs in enumerate(_node_attrs(data, n)):
        g.add_node(v, **attrs)
    if "module_names" in data:
        g.graph["num_modules"] = len(data.module_names)
    edges = data.edge_index.tolist()
    columns = {"e_id": data.e_id.tolist() if "e_id" in data else list(range(len(edges[0])))}
    if data.edge_weight is not None:
        columns["edge_weight"] = data.edge_weight.tolist()
        columns["weight"] = [abs(w) for w in columns["edge_weight"]]
    if "selected" in data:
        columns["selected"] = [bool(s) for s in data.selected.tolist()]
    g.add_edges_from(
        (u, v, {k: col[i] for k, col in columns.items()})
        for i, (u, v) in enumerate(zip(*edges, strict=True))
    )
    return g


def _node_attrs(data: Data, n: int) -> list[dict[str, Any]]:
    empty = torch.zeros(n, dtype=torch.bool)
    is_in = (data.input_mask if "input_mask" in data else empty).tolist()
    is_out = (data.output_mask if "output_mask" in data else empty).tolist()
    nodes: list[dict[str, Any]] = []
    for v in range(n):
        role = "input" if is_in[v] else "output" if is_out[v] else "hidden"
        nodes.append({"input_mask": bool(is_in[v]), "output_mask": bool(is_out[v]), "role": role})
    if "node_level" in data and data.node_level is not None:
        for attrs, level in zip(nodes, data.node_level.tolist(), strict=True):
            attrs["node_level"] = level
    if "module_index" in data and "module_names" in data:
        index = data.module_index.tolist()
        first: dict[int, int] = {}
        for v, m in enumerate(index):
            first.setdefault(m, v)
            nodes[v]["module"] = data.module_names[m]
            nodes[v]["local_id"] = v - first[m]
    return nodes


def networkx_to_data(g: nx.Graph, *, keep_ids: bool = False) -> tuple[Data, dict[Hashable, int]]:
    """A directed networkx graph as a wiring's ``Data`` (the inverse of
    :func:`data_to_networkx`), and the map from the graph's labels to node ids.

    Node ids: with ``keep_ids`` (files), integer labels (ints, or text that is a plain decimal
    integer, ``10.0`` read as 10) are the ids themselves and ids missing from the graph are
    nodes without edges; labels that are all names (no integer among them) are numbered in
    sorted order; a mix is refused. Without ``keep_ids`` (Python graphs), labels are numbered
    ``0..N-1`` in sorted order, insertion order when they cannot be sorted.

    Edges keep the graph's order, or the order of ``e_id`` when every edge has one (no two the
    same). ``edge_weight`` comes from the edge attribute ``edge_weight``, else ``weight``; the masks
    from ``input_mask``/``output_mask`` (a node without one is ``False``), else from ``role``;
    ``acyclic``/``self_loops`` from the graph attributes. What the graph does not say is left
    out of the ``Data``.

    Raises:
        DNWGraphTypeError: ``g`` is not a networkx graph.
        DNWGraphError: an undirected or empty graph; a flag that is not true or false; a weight
            that is not a number, or only on some edges; a role outside ``ROLES``; node ids
            mixing integers and names; two edges with one ``e_id``, or a NaN one.

    Examples:
        >>> import networkx as nx
        >>> data, ids = networkx_to_data(nx.DiGraph([("a", "c"), ("b", "c")]))
        >>> data.edge_index.tolist(), ids
        ([[0, 1], [2, 2]], {'a': 0, 'b': 1, 'c': 2})
    """
    import networkx as nx

    if not isinstance(g, nx.Graph):
        raise DNWGraphTypeError(f"'g' must be a networkx graph (got {type(g).__name__})")
    if not g.is_directed():
        raise DNWGraphError(
            "'g' must be a directed graph (got an undirected one); orient its edges first, e.g. "
            "nx.DiGraph((min(e), max(e)) for e in g.edges) as random_dag does"
        )
    if g.number_of_nodes() == 0:
        raise DNWGraphError("'g' has no nodes; a wiring needs at least one candidate edge")
    ids = _file_ids(g) if keep_ids else _sorted_ids(g)
    n = max(ids.values()) + 1
    triples = list(g.edges(data=True))
    if triples and all("e_id" in d for _, _, d in triples):
        order = [as_number(d["e_id"], f"edge ({u!r}, {v!r}): 'e_id'") for u, v, d in triples]
        _check_e_ids(order, triples)
        triples = [t for _, t in sorted(zip(order, triples, strict=True), key=lambda p: p[0])]
    data = Data(
        edge_index=torch.tensor([[ids[u] for u, _, _ in triples], [ids[v] for _, v, _ in triples]]),
        num_nodes=n,
    )
    weight = edge_weight_of(triples)
    if weight is not None:
        data.edge_weight = weight
    for name in ("input_mask", "output_mask"):
        mask = _mask(g, ids, n, name)
        if mask is not None:
            data[name] = mask
    for key in ("acyclic", "self_loops"):
        if key in g.graph:
            data[key] = as_flag(g.graph[key], f"graph attribute '{key}'")
    return data, ids


def _check_e_ids(order: list[float], triples: list[tuple[Any, Any, Any]]) -> None:
    """``e_id`` orders the edges, so each is a finite number and no two edges share one."""
    seen: dict[float, tuple[Any, Any]] = {}
    for e, (u, v, _) in zip(order, triples, strict=True):
        if not math.isfinite(e):
            raise DNWGraphError(
                f"edge ({u!r}, {v!r}): 'e_id' must be a finite number, the position of the "
                f"edge among the candidates (got {e})"
            )
        if e in seen:
            raise DNWGraphError(
                f"edges {seen[e]!r} and {(u, v)!r} have the same 'e_id' {e:g}; 'e_id' is the "
                "position of an edge among the candidates, one per edge"
            )
        seen[e] = (u, v)


def _sorted_ids(g: nx.Graph) -> dict[Hashable, int]:
    nodes = list(g.nodes)
    try:
        nodes = sorted(nodes)
    except TypeError:  # mixed or unorderable labels: keep insertion order
        pass
    return {v: i for i, v in enumerate(nodes)}


def _file_ids(g: nx.Graph) -> dict[Hashable, int]:
    """Integer labels are ids; names are numbered in sorted order; a mix is refused."""
    ints, names = {}, []
    for v in g.nodes:
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            ints[v] = int(v)
        elif isinstance(v, str) and plain_int(v) is not None:
            ints[v] = plain_int(v)
        else:
            names.append(v)
    if ints and names:
        raise DNWGraphError(
            f"node ids must be all integers (kept as ids) or all names (numbered in sorted "
            f"order) (got {names[0]!r} beside the integer id {next(iter(ints))!r})"
        )
    if names:
        return _sorted_ids(g)
    negative = [v for v, i in ints.items() if i < 0]
    if negative:
        raise DNWGraphError(f"node ids must be >= 0 (got {negative[0]!r})")
    if len(set(ints.values())) != len(ints):
        seen: dict[int, Hashable] = {}
        for v, i in ints.items():
            if i in seen:
                raise DNWGraphError(f"node id {i} appears twice ({seen[i]!r} and {v!r})")
            seen[i] = v
    return _checked_ids(ints)


def _checked_ids(ids: dict[Hashable, int]) -> dict[Hashable, int]:
    top = max(ids.values())
    if top >= MAX_NODES:
        raise DNWGraphError(
            f"node id {top} is too large: ids are positions 0..N-1 below {MAX_NODES} (relabel "
            "the nodes, e.g. with networkx.convert_node_labels_to_integers)"
        )
    return ids


def edge_weight_of(triples: list[tuple[Any, Any, dict[str, Any]]]) -> Tensor | None:
    """The signed weight of every edge ``(u, v, attributes)``: ``edge_weight`` when the edges
    have one, else ``weight``, else ``None``.

    Raises:
        DNWGraphError: a weight on some edges only, not a number, or not finite (names the edge).
    """
    for key in ("edge_weight", "weight"):
        have = [key in d for _, _, d in triples]
        if not any(have):
            continue
        if not all(have):
            u, v, _ = triples[have.index(False)]
            raise DNWGraphError(
                f"edge ({u!r}, {v!r}) has no '{key}' while other edges have one; give every "
                "edge a weight or none"
            )
        w = [as_number(d[key], f"edge ({u!r}, {v!r}): '{key}'") for u, v, d in triples]
        if not all(map(math.isfinite, w)):
            bad = next(i for i, x in enumerate(w) if not math.isfinite(x))
            u, v, _ = triples[bad]
            raise DNWGraphError(f"edge ({u!r}, {v!r}): '{key}' must be finite (got {w[bad]})")
        return torch.tensor(w)  # float32, as the weights were written
    return None


def _mask(g: nx.Graph, ids: dict[Hashable, int], n: int, name: str) -> Tensor | None:
    data = list(g.nodes(data=True))
    if any(name in d for _, d in data):
        mask = torch.zeros(n, dtype=torch.bool)
        for v, d in data:
            if name in d:
                mask[ids[v]] = as_flag(d[name], f"node {v!r}: '{name}'")
        return mask
    if not any("role" in d for _, d in data):
        return None
    role = "input" if name == "input_mask" else "output"
    mask = torch.zeros(n, dtype=torch.bool)
    for v, d in data:
        if "role" in d and d["role"] not in ROLES:
            raise DNWGraphError(
                f"node {v!r} has role {d['role']!r}; a role is one of {list(ROLES)}"
            )
        mask[ids[v]] = d.get("role") == role
    return mask
