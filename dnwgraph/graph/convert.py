"""Conversion between :class:`~dnwgraph.graph.Wiring` and ``networkx.DiGraph``.

networkx is imported lazily: building and training a wiring never needs it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError

if TYPE_CHECKING:
    import networkx as nx

    from dnwgraph.graph.wiring import Wiring


def to_networkx(wiring: Wiring) -> nx.DiGraph:
    """See :meth:`Wiring.to_networkx`.

    Examples:
        >>> from dnwgraph import Wiring
        >>> g = to_networkx(Wiring([(0, 1), (1, 2)]))
        >>> g.nodes[0]["role"], g.nodes[2]["role"], g.nodes[1]["level"], list(g.edges(data="index"))
        ('input', 'output', 1, [(0, 1, 0), (1, 2, 1)])
    """
    import networkx as nx

    n = wiring.num_nodes
    is_in = [False] * n
    is_out = [False] * n
    for v in wiring.input_nodes.tolist():
        is_in[v] = True
    for v in wiring.output_nodes.tolist():
        is_out[v] = True
    level = wiring.node_level().tolist() if wiring.acyclic else None
    g = nx.DiGraph(acyclic=wiring.acyclic, self_loops=wiring.self_loops)
    for v in range(n):
        role = "input" if is_in[v] else "output" if is_out[v] else "hidden"
        attrs: dict[str, Any] = {"role": role, "is_input": is_in[v], "is_output": is_out[v]}
        if level is not None:
            attrs["level"] = level[v]
        g.add_node(v, **attrs)
    # a DiGraph iterates edges grouped by source, so the position in edge_index travels along
    edges = wiring.edge_index.t().tolist()
    if wiring.edge_weight is None:
        g.add_edges_from((u, v, {"index": i}) for i, (u, v) in enumerate(edges))
    else:
        w = wiring.edge_weight.tolist()
        g.add_edges_from(
            (u, v, {"index": i, "weight": abs(w[i]), "signed_weight": w[i]})
            for i, (u, v) in enumerate(edges)
        )
    return g


def edge_weights(triples: Sequence[tuple[Any, Any, dict[str, Any]]]) -> list[float] | None:
    """The signed weight of every edge: ``signed_weight`` when every edge has one, else
    ``weight`` when every edge has one (files written before ``signed_weight`` existed, or by
    other tools), else ``None``."""
    for key in ("signed_weight", "weight"):
        if triples and all(key in d for _, _, d in triples):
            return [float(d[key]) for _, _, d in triples]
    return None


def _relabel(g: nx.Graph) -> dict[Hashable, int]:
    nodes = list(g.nodes)
    try:
        nodes = sorted(nodes)
    except TypeError:  # mixed or unorderable labels: keep insertion order
        pass
    return {v: i for i, v in enumerate(nodes)}


ROLES: tuple[str, ...] = ("input", "hidden", "output")


def _pick(g: nx.Graph, attr: str, role: str) -> list[Hashable] | None:
    data = g.nodes(data=True)
    if any(attr in d for _, d in data):
        return [v for v, d in data if _truthy(d.get(attr, False), f"node {v!r}: {attr!r}")]
    if any("role" in d for _, d in data):
        for v, d in data:
            if "role" in d and d["role"] not in ROLES:
                raise DNWGraphError(
                    f"node {v!r} has role {d['role']!r}; a role is one of {list(ROLES)}"
                )
        return [v for v, d in data if d.get("role") == role]
    return None


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no", "")


def _truthy(value: Any, what: str = "value") -> bool:
    # graphml/gexf readers may hand booleans back as strings
    if isinstance(value, str):
        text = value.strip().lower()
        if text not in _TRUE + _FALSE:
            raise DNWGraphError(f"{what} must be true or false (got {value!r})")
        return text in _TRUE
    return bool(value)


def _map(nodes: Sequence[Hashable], ids: dict[Hashable, int], name: str) -> list[int]:
    try:
        return [ids[v] for v in nodes]
    except KeyError as err:
        node = err.args[0]
        raise DNWGraphError(f"'{name}' names node {node!r}, which is not in the graph") from None


def from_networkx(
    g: nx.DiGraph,
    *,
    input_nodes: Sequence[Hashable] | None = None,
    output_nodes: Sequence[Hashable] | None = None,
    acyclic: bool | None = None,
    self_loops: bool | None = None,
    cls: type[Wiring],
) -> Wiring:
    """See :meth:`Wiring.from_networkx`; ``cls`` is the class to build.

    Examples:
        >>> import networkx as nx
        >>> from dnwgraph import Wiring
        >>> w = from_networkx(nx.DiGraph([("a", "c"), ("b", "c")]), cls=Wiring)
        >>> w.edge_index.tolist(), w.output_nodes.tolist()
        ([[0, 1], [2, 2]], [2])
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
    ids = _relabel(g)
    triples = list(g.edges(data=True))
    if triples and all("index" in d for _, _, d in triples):
        triples.sort(key=lambda t: int(t[2]["index"]))  # restore the order of to_networkx
    edges = [(ids[u], ids[v]) for u, v, _ in triples]
    if acyclic is None:
        acyclic = g.graph.get("acyclic")
        acyclic = nx.is_directed_acyclic_graph(g) if acyclic is None else _truthy(acyclic)
    if self_loops is None:
        self_loops = g.graph.get("self_loops")
        self_loops = nx.number_of_selfloops(g) > 0 if self_loops is None else _truthy(self_loops)
    inputs = _pick(g, "is_input", "input") if input_nodes is None else input_nodes
    outputs = _pick(g, "is_output", "output") if output_nodes is None else output_nodes
    return cls(
        edges,
        len(ids),
        input_nodes=None if inputs is None else _map(inputs, ids, "input_nodes"),
        output_nodes=None if outputs is None else _map(outputs, ids, "output_nodes"),
        acyclic=acyclic,
        self_loops=self_loops,
        edge_weight=edge_weights(triples),
    )
