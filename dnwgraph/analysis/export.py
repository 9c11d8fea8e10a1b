"""Export a discovered wiring: one ``networkx.DiGraph`` and files other graph tools read.

networkx is imported lazily, inside the functions.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnwgraph._atomic import atomic_path
from dnwgraph.analysis._views import WiringView, wiring_views
from dnwgraph.errors import DNWGraphError
from dnwgraph.typing import PathLikeStr

if TYPE_CHECKING:
    import networkx as nx


def to_networkx(obj: Any, all_candidates: bool = False) -> nx.DiGraph:
    r"""The learned wiring of ``obj`` as one ``networkx.DiGraph``.

    ``obj`` is a :class:`~dnwgraph.Wiring`, a :class:`~dnwgraph.WiringConv`, a model (every
    ``WiringConv`` inside it, found through ``model.modules()``) or a wiring snapshot of a
    training run. By default the graph holds the **selected** edges only (the top-k edges the
    forward pass uses); every node of every wiring is kept, even one without selected edges.

    The wirings of a model become one graph: module :math:`m` with :math:`N_m` nodes gets the
    integer ids :math:`o_m, \dots, o_m + N_m - 1` with :math:`o_m = \sum_{m' < m} N_{m'}`
    (modules in ``named_modules`` order), so ids are unique and a single-wiring model keeps its
    own node ids.

    Node attributes: ``module`` (name of the module, ``""`` for a bare wiring or layer),
    ``local_id`` (the id inside its module), ``role`` (``"input"``, ``"hidden"``, ``"output"``;
    a node that is both input and output is ``"input"``), ``is_input``, ``is_output`` and
    ``level`` (topological level in the candidate wiring; absent when the candidates have a
    cycle). Edge attributes: ``weight`` (the learned :math:`w_{uv}`; ``1.0`` for a bare
    ``Wiring``), ``index`` (position among all candidates) and, with ``all_candidates=True``,
    ``selected`` (bool). Graph attributes: ``acyclic``, ``self_loops``, ``num_modules``.

    Args:
        obj: a Wiring, WiringConv, model or snapshot dict.
        all_candidates: keep every candidate edge (with ``selected``) instead of the selected
            ones. (default: ``False``)

    Returns:
        networkx.DiGraph: :math:`\sum_m N_m` nodes and :math:`\sum_m k_m` edges (or
        :math:`\sum_m E_m` with ``all_candidates``).

    Raises:
        TypeError: ``obj`` is not one of the accepted kinds.
        ValueError: a model without ``WiringConv`` modules or a malformed snapshot.

    Example:
        >>> import torch
        >>> from dnwgraph import Wiring, WiringConv
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=2)
        >>> g = to_networkx(conv)
        >>> g.number_of_nodes(), g.number_of_edges(), g.nodes[3]["role"], g.nodes[2]["level"]
        (4, 2, 'output', 1)
        >>> to_networkx(conv, all_candidates=True).number_of_edges()
        4
    """
    import networkx as nx

    views = wiring_views(obj)
    g = nx.DiGraph(
        acyclic=all(v.acyclic for v in views),
        self_loops=any(v.self_loops for v in views),
        num_modules=len(views),
    )
    node_offset = edge_offset = 0
    for view in views:
        _add_view(g, view, node_offset, edge_offset, all_candidates)
        node_offset += view.num_nodes
        edge_offset += view.num_edges
    return g


def _add_view(
    g: nx.DiGraph, view: WiringView, node_offset: int, edge_offset: int, all_candidates: bool
) -> None:
    roles = view.role()
    is_in = view.node_mask(view.input_nodes).tolist()
    is_out = view.node_mask(view.output_nodes).tolist()
    level = None if view.level is None else view.level.tolist()
    for v in range(view.num_nodes):
        attrs: dict[str, Any] = {
            "module": view.module,
            "local_id": v,
            "role": roles[v],
            "is_input": is_in[v],
            "is_output": is_out[v],
        }
        if level is not None:
            attrs["level"] = level[v]
        g.add_node(node_offset + v, **attrs)
    src, dst = view.edge_index.tolist()
    weight = [1.0] * view.num_edges if view.weight is None else view.weight.tolist()
    active = view.active.tolist()
    for i in range(view.num_edges):
        if not (all_candidates or active[i]):
            continue
        attrs = {"weight": weight[i], "index": edge_offset + i}
        if all_candidates:
            attrs["selected"] = active[i]
        g.add_edge(node_offset + src[i], node_offset + dst[i], **attrs)


def _write_graphml(g: nx.DiGraph, path: Path) -> None:
    import networkx as nx

    nx.write_graphml(g, path)


def _write_gexf(g: nx.DiGraph, path: Path) -> None:
    import networkx as nx

    nx.write_gexf(g, path)


def _write_json(g: nx.DiGraph, path: Path) -> None:
    import networkx as nx

    path.write_text(json.dumps(nx.node_link_data(g, edges="links")), encoding="utf-8")


def _write_csv(g: nx.DiGraph, path: Path) -> None:
    edges = sorted(g.edges(data=True), key=lambda e: e[2]["index"])
    extra = ["selected"] if any("selected" in d for _, _, d in edges) else []
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(
            f"# dnwgraph wiring: num_nodes={g.number_of_nodes()} (isolated nodes and node roles "
            "are not stored in CSV; use .graphml/.gexf/.json to keep them)\n"
        )
        writer = csv.writer(f)
        writer.writerow(["source", "target", "weight", "module", *extra])
        for u, v, d in edges:
            row = [u, v, repr(float(d["weight"])), g.nodes[u]["module"]]
            writer.writerow(row + ([int(bool(d["selected"]))] if extra else []))


WRITERS: dict[str, Callable[[nx.DiGraph, Path], None]] = {
    ".graphml": _write_graphml,
    ".gexf": _write_gexf,
    ".json": _write_json,
    ".csv": _write_csv,
}


def save_wiring(obj: Any, path: PathLikeStr, all_candidates: bool = False) -> Path:
    """Write the learned wiring of ``obj`` to a file, the format chosen by the extension.

    The graph written is :func:`to_networkx` ``(obj, all_candidates)``:

    * ``.graphml`` / ``.gexf`` — every node and edge attribute (Gephi, Cytoscape, yEd, networkx);
    * ``.json`` — networkx node-link JSON (``{"nodes": [...], "links": [...]}``), every attribute;
    * ``.csv`` — one edge per row, ``source,target,weight,module`` (``selected`` added with
      ``all_candidates``), after one ``#`` comment line; nodes without edges and node roles are
      not stored (pass ``num_nodes``/``input_nodes``/``output_nodes`` when reading back).

    Each file reads back with networkx (``read_graphml``, ``read_gexf``,
    ``node_link_graph(..., edges="links")``, or any CSV reader) and with
    :meth:`dnwgraph.Wiring.from_file`, which turns a discovered wiring into the candidate set of
    a new model (or, with the ``fixed`` selection, a frozen wiring).

    Args:
        obj: a Wiring, WiringConv, model or snapshot dict (see :func:`to_networkx`).
        path: the file to write; its parent folder is created.
        all_candidates: write every candidate edge instead of the selected ones.

    Returns:
        Path: ``path``.

    Raises:
        ValueError: an unknown extension (the message lists the supported ones).
        TypeError: ``obj`` is not one of the accepted kinds.

    Example:
        >>> import tempfile, pathlib
        >>> from dnwgraph import Wiring, WiringConv
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=3)
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "wiring.graphml"
        >>> Wiring.from_file(save_wiring(conv, path)).num_edges
        3
    """
    path = Path(path)
    _writer(path)  # check the extension before any work
    return write_graph(to_networkx(obj, all_candidates=all_candidates), path)


def _writer(path: Path) -> Callable[[nx.DiGraph, Path], None]:
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise DNWGraphError(
            f"cannot write a wiring to '{path}': unknown extension '{path.suffix}' "
            f"(supported: {', '.join(sorted(WRITERS))})"
        )
    return writer


def write_graph(g: nx.DiGraph, path: PathLikeStr) -> Path:
    """Write a graph made by :func:`to_networkx` to ``path`` (format by extension, as in
    :func:`save_wiring`).

    The file is written atomically (a temporary file renamed over ``path``), and never over a
    training run's own files (``config.yaml``, ``checkpoint.pt``, ``metrics.csv``, ``init.pt``,
    ``wiring/``, ``tensorboard/``).

    Raises:
        DNWGraphError: an unknown extension (the message lists the supported ones), or a
            ``path`` that is a file of a training run.

    Example:
        >>> import tempfile, pathlib
        >>> from dnwgraph import Wiring
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.json"
        >>> write_graph(to_networkx(Wiring([(0, 1), (1, 2)])), path).stat().st_size > 0
        True
    """
    from dnwgraph.train.rundir import check_not_run_file

    path = Path(path)
    writer = _writer(path)
    check_not_run_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        writer(g, tmp)
    return path
