"""Export a discovered wiring: one PyG ``Data``, one ``networkx.DiGraph``, and files other
graph tools read.

:func:`to_data` turns a model (or a layer, a wiring, a snapshot) into the layout of
:mod:`dnwgraph.graph.convert`; :func:`to_networkx` and :func:`save_wiring` hand that to the one
networkx conversion and the file formats of :mod:`dnwgraph.graph.formats`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch_geometric.data import Data

from dnwgraph._outputs import check_output_file
from dnwgraph.errors import DNWGraphError
from dnwgraph.graph.convert import data_to_networkx
from dnwgraph.graph.formats import find_format, write_data
from dnwgraph.models.views import wiring_views
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

    It is :func:`to_data` of ``obj`` in networkx form, with the names of
    :mod:`dnwgraph.graph.convert`, so PyG's ``from_networkx`` gives that ``Data`` back and
    :meth:`~dnwgraph.Wiring.from_networkx` (or :meth:`~dnwgraph.Wiring.from_data` of it) reads
    the roles and weights. Node attributes: ``input_mask``, ``output_mask`` (bools), ``role``
    (``"input"``, ``"hidden"``, ``"output"``; a node both input and output is ``"input"``),
    ``node_level`` (topological level in the candidate wiring; absent when the candidates have
    a cycle), ``module`` (name of the module, ``""`` for a bare wiring or layer) and
    ``local_id`` (the id inside its module). Edge attributes: ``edge_weight`` (the learned
    :math:`w_{uv}`), ``weight`` (the strength :math:`|w_{uv}|`, never negative, so that
    ``pagerank``, Dijkstra and the other weighted networkx algorithms accept it; both absent
    for a ``Wiring`` without ``edge_weight``), ``e_id`` (position among all candidates) and,
    with ``all_candidates=True``, ``selected`` (bool). Graph attributes: ``acyclic``,
    ``self_loops``, ``num_modules``.

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
        >>> g.number_of_nodes(), g.number_of_edges(), g.nodes[3]["role"], g.nodes[2]["node_level"]
        (4, 2, 'output', 1)
        >>> to_networkx(conv, all_candidates=True).number_of_edges()
        4
    """
    return data_to_networkx(to_data(obj, all_candidates=all_candidates))


def to_data(obj: Any, all_candidates: bool = False) -> Data:
    r"""The learned wiring of ``obj`` as one :class:`torch_geometric.data.Data`.

    The layout of :mod:`dnwgraph.graph.convert`, the one :func:`to_networkx` and
    :func:`save_wiring` start from: ``edge_index [2, k]``, ``edge_weight [k]`` (the learned
    signed :math:`w_{uv}`; absent for a :class:`~dnwgraph.Wiring` without weights),
    ``e_id [k]`` (the position of each edge among all candidates), ``num_nodes``, the node roles
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
        weight = torch.ones(view.num_edges) if view.weight is None else view.weight.float()
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
        e_id=torch.cat(e_ids),
        num_nodes=node_offset,
        input_mask=torch.cat(inputs),
        output_mask=torch.cat(outputs),
        module_index=torch.cat(modules),
    )
    if any(v.weight is not None for v in views):
        data.edge_weight = torch.cat(weights)
    if all(lvl is not None for lvl in levels):
        data.node_level = torch.cat(levels)  # type: ignore[arg-type]
    if all_candidates:
        data.selected = torch.cat(selected)
    data.module_names = [v.module for v in views]
    data.acyclic = all(v.acyclic for v in views)
    data.self_loops = any(v.self_loops for v in views)
    return data


def save_wiring(obj: Any, path: PathLikeStr, all_candidates: bool = False) -> Path:
    """Write the learned wiring of ``obj`` to a file, the format chosen by the extension.

    What is written is :func:`to_data` ``(obj, all_candidates)``, by the format of the suffix
    (:mod:`dnwgraph.graph.formats`; ``dnwgraph.graph.list_formats()`` names them):

    * ``.graphml`` / ``.gexf`` — every node, edge and graph attribute of :func:`to_networkx`
      (Gephi, Cytoscape, yEd, networkx; GEXF has no graph attributes);
    * ``.json`` — networkx node-link JSON, every attribute (``nx.node_link_graph(doc)``);
    * ``.csv`` — one edge per row: ``source,target,edge_weight,weight``, the roles of both
      endpoints (``source_input_mask``, ..., ``target_output_mask``), then ``module`` for a
      model and ``selected`` with ``all_candidates`` (``pandas.read_csv`` reads it); nodes
      without edges are not stored;
    * ``.txt`` / ``.edgelist`` — ``networkx.write_edgelist`` lines, the node count and the
      roles in comment lines.

    ``edge_weight`` is the learned :math:`w` and ``weight`` the strength :math:`|w|`.
    :meth:`dnwgraph.Wiring.from_file` reads every file back with its node ids, roles and learned
    weights: :meth:`dnwgraph.WiringConv.from_wiring` rebuilds a layer with the same selected
    edges and outputs. The file is written atomically (a temporary file renamed over ``path``,
    whose parent folder is created), never over a training run's own files.

    Args:
        obj: a Wiring, WiringConv, model or snapshot dict (see :func:`to_networkx`).
        path: the file to write.
        all_candidates: write every candidate edge instead of the selected ones.

    Returns:
        Path: ``path``.

    Raises:
        DNWGraphError: an unknown extension (the message lists the supported ones), a
            ``path`` that is a file of a training run, a folder, ends with a separator or lies
            below a file.
        TypeError: ``obj`` is not one of the accepted kinds.

    Examples:
        >>> import tempfile, pathlib
        >>> from dnwgraph import Wiring, WiringConv
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=3)
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "wiring.graphml"
        >>> Wiring.from_file(save_wiring(conv, path)).num_edges
        3
    """
    check_output(path)
    return write_data(to_data(obj, all_candidates=all_candidates), path)


def check_output(path: PathLikeStr, source: PathLikeStr | None = None) -> None:
    """Refuse a path that cannot be a file (a folder, ``out.csv/``, a path below a file), an
    unknown extension, a run's own file, or the file being read (``source``, under any spelling
    or through a link) before any work.

    Raises:
        DNWGraphError: as :func:`save_wiring`, or ``path`` is ``source``.
    """
    check_output_file(path, "export")
    find_format(path, "write")
    check_not_run_file(Path(path))
    if source is not None and os.path.exists(path) and os.path.exists(source):
        if os.path.samefile(path, source):
            raise DNWGraphError(
                f"the output {str(path)!r} is the file it reads ({str(source)!r}); write the "
                "export to another file"
            )
