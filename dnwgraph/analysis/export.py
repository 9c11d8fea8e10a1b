"""Export a discovered wiring: one ``networkx.DiGraph``, one PyG ``Data``, and files other
graph tools read.

networkx is imported lazily, inside the functions.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch_geometric.data import Data

from dnwgraph._atomic import atomic_path
from dnwgraph.errors import DNWGraphError
from dnwgraph.models.views import WiringView, wiring_views
from dnwgraph.runs.rundir import check_not_run_file
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
    cycle). Edge attributes: ``weight`` (the strength :math:`|w_{uv}|`, never negative, so that
    ``pagerank``, Dijkstra and the other weighted networkx algorithms accept it; ``1.0`` for a
    ``Wiring`` without ``edge_weight``), ``signed_weight`` (the learned :math:`w_{uv}` itself),
    ``index`` (position among all candidates) and, with ``all_candidates=True``, ``selected``
    (bool). Graph attributes: ``acyclic``, ``self_loops``, ``num_modules``.

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

    Examples:
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
        attrs = {"weight": abs(weight[i]), "signed_weight": weight[i], "index": edge_offset + i}
        if all_candidates:
            attrs["selected"] = active[i]
        g.add_edge(node_offset + src[i], node_offset + dst[i], **attrs)


def to_data(obj: Any, all_candidates: bool = False) -> Data:
    r"""The learned wiring of ``obj`` as one :class:`torch_geometric.data.Data`.

    The same graph as :func:`to_networkx` (same node ids, edges in the order of their
    ``index``), as tensors: ``edge_index [2, k]``, ``edge_weight [k]`` (the learned signed
    :math:`w_{uv}`; ones for a :class:`~dnwgraph.Wiring` without weights), ``e_id [k]`` (the
    position of each edge among all candidates), ``num_nodes``, the node roles
    ``input_mask``/``output_mask [N]`` (bool), ``node_level [N]`` (when every wiring is
    acyclic), ``module_index [N]`` (which wiring a node belongs to, an index into the list
    ``module_names``) and the flags ``acyclic`` and ``self_loops``; with
    ``all_candidates=True`` every candidate edge is kept and ``selected [E]`` (bool) marks the
    ones the forward pass uses.

    :meth:`dnwgraph.Wiring.from_data` reads it back (roles and weights included), and
    :meth:`dnwgraph.WiringConv.from_wiring` turns that into a layer with the same outputs.

    Args:
        obj: a Wiring, WiringConv, model or snapshot dict (see :func:`to_networkx`).
        all_candidates: keep every candidate edge (with ``selected``) instead of the selected
            ones. (default: ``False``)

    Returns:
        Data: :math:`\sum_m N_m` nodes and :math:`\sum_m k_m` edges (or :math:`\sum_m E_m`).

    Raises:
        TypeError: ``obj`` is not one of the accepted kinds.
        ValueError: a model without ``WiringConv`` modules or a malformed snapshot.

    Examples:
        >>> import torch
        >>> from dnwgraph import Wiring, WiringConv
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=2)
        >>> data = to_data(conv)
        >>> data.num_edges, data.input_mask.tolist(), data.node_level.tolist()
        (2, [True, True, False, False], [0, 0, 1, 2])
        >>> to_data(conv, all_candidates=True).selected.sum().item()
        2
    """
    views = wiring_views(obj)
    edges, weights, e_ids, selected = [], [], [], []
    inputs, outputs, levels, modules = [], [], [], []
    node_offset = edge_offset = 0
    for m, view in enumerate(views):
        keep = torch.ones_like(view.active) if all_candidates else view.active
        ids = keep.nonzero().view(-1)
        weight = torch.ones(view.num_edges) if view.weight is None else view.weight
        edges.append(view.edge_index.index_select(1, ids) + node_offset)
        weights.append(weight.index_select(0, ids))
        e_ids.append(ids + edge_offset)
        selected.append(view.active.index_select(0, ids))
        inputs.append(view.node_mask(view.input_nodes))
        outputs.append(view.node_mask(view.output_nodes))
        levels.append(view.level)
        modules.append(torch.full((view.num_nodes,), m, dtype=torch.long))
        node_offset += view.num_nodes
        edge_offset += view.num_edges
    data = Data(
        edge_index=torch.cat(edges, 1),
        edge_weight=torch.cat(weights),
        e_id=torch.cat(e_ids),
        num_nodes=node_offset,
        input_mask=torch.cat(inputs),
        output_mask=torch.cat(outputs),
        module_index=torch.cat(modules),
    )
    if all(lvl is not None for lvl in levels):
        data.node_level = torch.cat(levels)  # type: ignore[arg-type]
    if all_candidates:
        data.selected = torch.cat(selected)
    data.module_names = [v.module for v in views]
    data.acyclic = all(v.acyclic for v in views)
    data.self_loops = any(v.self_loops for v in views)
    return data


def _write_graphml(g: nx.DiGraph, path: Path) -> None:
    import networkx as nx

    nx.write_graphml(g, path)


def _write_gexf(g: nx.DiGraph, path: Path) -> None:
    import networkx as nx

    nx.write_gexf(g, path)


def _write_json(g: nx.DiGraph, path: Path) -> None:
    import networkx as nx

    # the current node-link key ("edges", networkx >= 3.4); Wiring.from_file reads "links" too
    path.write_text(json.dumps(nx.node_link_data(g, edges="edges")), encoding="utf-8")


def _write_csv(g: nx.DiGraph, path: Path) -> None:
    edges = sorted(g.edges(data=True), key=lambda e: e[2]["index"])
    extra = ["selected"] if any("selected" in d for _, _, d in edges) else []
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(
            f"# dnwgraph wiring: num_nodes={g.number_of_nodes()} (isolated nodes and node roles "
            "are not stored in CSV; use .graphml/.gexf/.json to keep them)\n"
        )
        writer = csv.writer(f)
        writer.writerow(["source", "target", "weight", "signed_weight", "module", *extra])
        for u, v, d in edges:
            w = float(d.get("signed_weight", d["weight"]))
            row = [u, v, repr(abs(w)), repr(w), g.nodes[u]["module"]]
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

    * ``.graphml`` — every node, edge and graph attribute (Gephi, Cytoscape, yEd, networkx);
    * ``.gexf`` — every node and edge attribute; GEXF has no graph attributes, so ``acyclic``,
      ``self_loops`` and ``num_modules`` are not stored (:meth:`~dnwgraph.Wiring.from_file`
      finds ``acyclic``/``self_loops`` from the graph itself);
    * ``.json`` — networkx node-link JSON in the current format (``{"nodes": [...], "edges":
      [...]}``), every attribute;
    * ``.csv`` — one edge per row, ``source,target,weight,signed_weight,module`` (``selected``
      added with ``all_candidates``), after one ``#`` comment line; nodes without edges and
      node roles are not stored (pass ``num_nodes``/``input_nodes``/``output_nodes`` when
      reading back).

    ``weight`` is the strength :math:`|w|` and ``signed_weight`` the learned :math:`w`. Each
    file reads back with plain networkx (``read_graphml(path, node_type=int)``,
    ``read_gexf(path, node_type=int)``, ``node_link_graph(json.load(f))``, or any CSV reader)
    and with :meth:`dnwgraph.Wiring.from_file`, which keeps the node ids, the roles and the
    learned weights: :meth:`dnwgraph.WiringConv.from_wiring` rebuilds a layer with the same
    selected edges and outputs, and the wiring can also become the candidate set of a new
    model (or, with the ``fixed`` selection, a frozen wiring).

    Args:
        obj: a Wiring, WiringConv, model or snapshot dict (see :func:`to_networkx`).
        path: the file to write; its parent folder is created.
        all_candidates: write every candidate edge instead of the selected ones.

    Returns:
        Path: ``path``.

    Raises:
        ValueError: an unknown extension (the message lists the supported ones).
        TypeError: ``obj`` is not one of the accepted kinds.

    Examples:
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

    Examples:
        >>> import tempfile, pathlib
        >>> from dnwgraph import Wiring
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.json"
        >>> write_graph(to_networkx(Wiring([(0, 1), (1, 2)])), path).stat().st_size > 0
        True
    """
    path = Path(path)
    writer = _writer(path)
    check_not_run_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        writer(g, tmp)
    return path
