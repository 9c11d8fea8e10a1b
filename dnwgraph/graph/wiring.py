"""The candidate wiring graph: which edges a DNW layer may choose from."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.graph._checks import (
    CycleError,
    as_edge_index,
    check_edge_weight,
    check_edges,
    check_num_nodes,
    mask_nodes,
    node_set,
    sparse_size,
    topological_levels,
)
from dnwgraph.graph.convert import as_flag, networkx_to_data
from dnwgraph.graph.formats import read_data
from dnwgraph.graph.formats.base import naming
from dnwgraph.typing import EdgeIndexLike, EdgeList, NodesLike, PathLikeStr

if TYPE_CHECKING:
    import networkx as nx


class Wiring:
    r"""Candidate wiring of `Discovering Neural Wirings <https://arxiv.org/abs/1906.00586>`_.

    Every channel is a node :math:`v`; every candidate edge :math:`(u, v)` may carry a learned
    weight :math:`w_{uv}`, and a DNW layer computes :math:`I_v = \sum_{(u,v)} w_{uv} Z_u` over the
    top-k candidates. The wiring fixes the candidates, the input nodes (fed with data) and the
    output nodes (read out). In the static setting it is a DAG computed level by level: level 0
    holds the nodes with no incoming edge and level :math:`l+1` the nodes whose last predecessor
    is in level :math:`l` (``networkx.topological_generations``).

    Converts from a :class:`torch_geometric.data.Data` (:meth:`from_data`), a networkx graph
    (:meth:`from_networkx`) and a file (:meth:`from_file`), and back with
    :func:`dnwgraph.to_data`, :func:`dnwgraph.to_networkx` and :func:`dnwgraph.save_wiring`,
    keeping edges, weights and roles. The input is validated once, here; the object is treated
    as immutable afterwards.

    Args:
        edge_index: candidate edges, a LongTensor ``[2, E]`` (row 0 = source, row 1 = target;
            a :class:`torch_geometric.EdgeIndex` too), an integer numpy array ``[2, E]``, a list
            of ``(source, target)`` pairs, a torch sparse adjacency ``[N, N]`` (COO, CSR or CSC;
            every stored entry ``(u, v)`` is the edge ``u -> v``, whatever its value, in
            row-major order) or a :class:`torch_geometric.data.Data` (its ``edge_index``,
            ``num_nodes``, ``input_mask``/``output_mask`` and ``edge_weight`` when present; the
            other arguments win). The order is kept.
        num_nodes: number of nodes; default: the ``N`` of a sparse adjacency or of an
            ``EdgeIndex``'s ``sparse_size``, else ``max id + 1``.
        input_nodes: nodes fed with data. Default: nodes of in-degree 0 when ``acyclic``,
            else all nodes.
        output_nodes: nodes read out. Default: nodes of out-degree 0 when ``acyclic``, else all
            nodes. A node may be both (e.g. an isolated node of a DAG).
        acyclic: the wiring must be a DAG (static setting); ``False`` for discrete/continuous
            time, where :meth:`levels` is unavailable. (default: ``True``)
        self_loops: allow edges ``(v, v)``; they are cycles, so they need ``acyclic=False``.
            (default: ``False``)
        edge_weight: optional weight per edge ``[E]``, aligned with ``edge_index`` (e.g. the
            learned weights of an exported wiring); :meth:`dnwgraph.WiringConv.from_wiring`
            starts from them. (default: ``None``)

    Shapes:
        - edge_index: :math:`[2, E]`; input_nodes: :math:`[N_{in}]`; output_nodes:
          :math:`[N_{out}]` (sorted, unique)
        - levels(): list of :math:`[N_l]`; node_level(), in_degree(), out_degree(): :math:`[N]`
        - edge_weight: :math:`[E]` or ``None``

    Raises:
        TypeError: ``edge_index`` of an unsupported type.
        DNWGraphError: (a ``ValueError``) ``edge_index`` not ``[2, E]``, not integer, empty;
            a sparse adjacency that is not square; a node id outside ``[0, num_nodes)`` or
            above ``2**26``; ``acyclic`` or ``self_loops`` not a bool; a duplicate edge; a self
            loop with ``self_loops=False``; a bad ``input_nodes``/``output_nodes`` list; an
            ``edge_weight`` that is not ``[E]`` or not finite.
        CycleError: a cycle while ``acyclic=True`` (names a node on it and the cycle).

    Examples:
        >>> w = Wiring([(0, 2), (1, 2), (2, 3), (0, 3)])
        >>> w
        Wiring(num_nodes=4, num_edges=4, inputs=2, outputs=1, acyclic=True)
        >>> [lvl.tolist() for lvl in w.levels()]
        [[0, 1], [2], [3]]
    """

    def __init__(
        self,
        edge_index: EdgeIndexLike | np.ndarray,
        num_nodes: int | None = None,
        *,
        input_nodes: NodesLike | None = None,
        output_nodes: NodesLike | None = None,
        acyclic: bool = True,
        self_loops: bool = False,
        edge_weight: Tensor | Sequence[float] | None = None,
    ) -> None:
        for name, flag in (("acyclic", acyclic), ("self_loops", self_loops)):
            if not isinstance(flag, (bool, np.bool_)):
                raise DNWGraphError(f"'{name}' must be True or False (got {flag!r})")
        if isinstance(edge_index, Data):
            data = edge_index
            edge_index = _data_edge_index(data)
            if num_nodes is None:
                num_nodes = data.num_nodes
            if input_nodes is None and "input_mask" in data:
                input_nodes = mask_nodes(data.input_mask, int(num_nodes), "input_mask")
            if output_nodes is None and "output_mask" in data:
                output_nodes = mask_nodes(data.output_mask, int(num_nodes), "output_mask")
            if edge_weight is None and "edge_weight" in data:
                edge_weight = data.edge_weight
        if num_nodes is None:
            num_nodes = sparse_size(edge_index)
        ei = as_edge_index(edge_index)
        n = check_num_nodes(num_nodes, ei)
        check_edges(ei, n, self_loops)
        # Kahn's algorithm both checks acyclicity and yields the levels: do it once, here.
        level = topological_levels(ei, n) if acyclic else None
        self.edge_index: Tensor = torch.from_numpy(ei)
        self.num_nodes: int = n
        self.acyclic: bool = bool(acyclic)
        self.self_loops: bool = bool(self_loops)
        self._node_level = None if level is None else torch.from_numpy(level)
        self._levels: list[Tensor] | None = None
        self.edge_weight: Tensor | None = (
            None if edge_weight is None else check_edge_weight(edge_weight, ei.shape[1])
        )
        if input_nodes is not None:
            self.input_nodes = node_set(input_nodes, n, "input_nodes")
        elif acyclic:
            indeg = np.bincount(ei[1], minlength=n)
            self.input_nodes = torch.from_numpy(np.flatnonzero(indeg == 0))
        else:
            self.input_nodes = torch.arange(n)
        if output_nodes is not None:
            self.output_nodes = node_set(output_nodes, n, "output_nodes")
        elif acyclic:
            self.output_nodes = torch.from_numpy(
                np.flatnonzero(np.bincount(ei[0], minlength=n) == 0)
            )
        else:
            self.output_nodes = torch.arange(n)

    # -- structure ---------------------------------------------------------------------------

    @property
    def num_edges(self) -> int:
        """Number of candidate edges ``E``."""
        return int(self.edge_index.shape[1])

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    @property
    def hidden_nodes(self) -> Tensor:
        """Nodes that are neither input nor output, sorted."""
        mask = ~(self._mask(self.input_nodes) | self._mask(self.output_nodes))
        return mask.nonzero().view(-1)

    def _mask(self, nodes: Tensor) -> Tensor:
        mask = torch.zeros(self.num_nodes, dtype=torch.bool, device=self.device)
        mask[nodes] = True
        return mask

    def in_degree(self) -> Tensor:
        """Number of candidate edges entering each node, LongTensor ``[N]``."""
        return torch.bincount(self.edge_index[1], minlength=self.num_nodes)

    def out_degree(self) -> Tensor:
        """Number of candidate edges leaving each node, LongTensor ``[N]``."""
        return torch.bincount(self.edge_index[0], minlength=self.num_nodes)

    def node_level(self) -> Tensor:
        """Topological level of every node, LongTensor ``[N]`` (see :meth:`levels`).

        Raises:
            ValueError: for a wiring built with ``acyclic=False``.
        """
        if self._node_level is None:
            raise DNWGraphError(
                "levels are defined only for an acyclic wiring (this one has acyclic=False)"
            )
        return self._node_level

    def levels(self) -> list[Tensor]:
        """Topological generations: ``levels()[l]`` holds the nodes of level ``l``, sorted.

        Computed once by a vectorised Kahn's algorithm when the wiring is built; equal (as sets)
        to ``networkx.topological_generations``. Nodes of one level never feed each other, so a
        level is one batched step of a static network.

        Raises:
            ValueError: for a wiring built with ``acyclic=False``.
        """
        if self._levels is None:
            node_level = self.node_level()
            order = torch.argsort(node_level, stable=True)  # ascending node ids within a level
            sizes = torch.bincount(node_level).tolist()
            self._levels = list(torch.split(order, sizes))
        return self._levels

    @property
    def num_levels(self) -> int:
        """Number of topological levels (the depth of the DAG plus one)."""
        return int(self.node_level().max()) + 1

    @classmethod
    def from_data(
        cls,
        data: Data,
        *,
        input_nodes: NodesLike | None = None,
        output_nodes: NodesLike | None = None,
        acyclic: bool | None = None,
        self_loops: bool | None = None,
    ) -> Wiring:
        """Build from a :class:`torch_geometric.data.Data` (inverse of :func:`dnwgraph.to_data`).

        Reads ``edge_index`` (a LongTensor or :class:`torch_geometric.EdgeIndex`), ``num_nodes``,
        the node roles ``input_mask``/``output_mask`` (BoolTensors ``[N]``) and ``edge_weight``
        when present: the names of :func:`dnwgraph.to_data`, of the node and edge attributes of
        :func:`dnwgraph.to_networkx` and of every wiring file, so a ``Data`` made by PyG's
        ``from_networkx`` of an exported graph reads back with its roles and weights.
        ``acyclic``/``self_loops`` default to the attributes of that name (``True``/``False``,
        a one-element bool tensor, or the text ``"true"``/``"false"``), else to what the graph
        is (a DAG, has self loops). Nodes without a mask get the constructor's defaults.

        Args:
            data: the graph.
            input_nodes: override ``input_mask``. (default: ``None``)
            output_nodes: override ``output_mask``. (default: ``None``)
            acyclic: override the ``acyclic`` attribute. (default: ``None``)
            self_loops: override the ``self_loops`` attribute. (default: ``None``)

        Returns:
            Wiring: the wiring, with ``edge_weight`` when ``data`` has one.

        Raises:
            TypeError: ``data`` is not a ``Data``.
            ValueError: no ``edge_index``; masks that are not BoolTensors ``[N]``; an
                ``acyclic``/``self_loops`` attribute that is not true or false; or any check of
                the constructor.

        Examples:
            >>> import torch
            >>> from torch_geometric.data import Data
            >>> d = Data(edge_index=torch.tensor([[0, 1, 2], [2, 2, 3]]), num_nodes=4,
            ...          output_mask=torch.tensor([False, False, True, True]))
            >>> Wiring.from_data(d).output_nodes.tolist()
            [2, 3]
        """
        if not isinstance(data, Data):
            raise DNWGraphTypeError(
                f"'data' must be a torch_geometric Data (got {type(data).__name__})"
            )
        ei = as_edge_index(_data_edge_index(data))
        if self_loops is None:
            self_loops = (
                as_flag(data.self_loops, "'data.self_loops'")
                if "self_loops" in data
                else _has_self_loops(ei)
            )
        if acyclic is None:
            acyclic = (
                as_flag(data.acyclic, "'data.acyclic'")
                if "acyclic" in data
                else _is_dag(ei, data.num_nodes)
            )
        return cls(
            data,
            input_nodes=input_nodes,
            output_nodes=output_nodes,
            acyclic=acyclic,
            self_loops=self_loops,
        )

    def to(self, device: torch.device | str) -> Wiring:
        """A copy with every tensor on ``device`` (no re-validation)."""
        new = object.__new__(Wiring)
        new.__dict__.update(self.__dict__)
        new.edge_index = self.edge_index.to(device)
        new.input_nodes = self.input_nodes.to(device)
        new.output_nodes = self.output_nodes.to(device)
        if self.edge_weight is not None:
            new.edge_weight = self.edge_weight.to(device)
        if self._node_level is not None:
            new._node_level = self._node_level.to(device)
        new._levels = None
        return new

    def __repr__(self) -> str:
        return (
            f"Wiring(num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
            f"inputs={self.input_nodes.numel()}, outputs={self.output_nodes.numel()}, "
            f"acyclic={self.acyclic}{', weighted=True' if self.edge_weight is not None else ''})"
        )

    # -- constructors and conversion -----------------------------------------------------------

    @classmethod
    def from_edge_list(cls, pairs: EdgeList, num_nodes: int | None = None, **kwargs: Any) -> Wiring:
        """Build from ``(source, target)`` pairs; ``kwargs`` as in the constructor.

        Examples:
            >>> Wiring.from_edge_list([(0, 1), (1, 2)]).num_edges
            2
        """
        return cls(pairs, num_nodes, **kwargs)

    @classmethod
    def from_file(
        cls,
        path: PathLikeStr,
        *,
        num_nodes: int | None = None,
        input_nodes: NodesLike | None = None,
        output_nodes: NodesLike | None = None,
        acyclic: bool | None = None,
        self_loops: bool | None = None,
        edge_weight: Tensor | Sequence[float] | None = None,
    ) -> Wiring:
        """Read a wiring file, the format chosen by the extension.

        ``.csv``, ``.txt``/``.edgelist``, ``.json``, ``.graphml``, ``.gexf`` and every format
        added with :func:`dnwgraph.graph.register_format` (see :mod:`dnwgraph.graph.formats`).
        The keyword arguments override what the file says; ``num_nodes`` adds nodes without
        edges that the file does not name (a CSV stores edges only). What neither says gets
        the defaults of :meth:`from_data`.

        Raises:
            FileNotFoundError: the file does not exist.
            DNWGraphError: an unknown extension (lists the supported ones); a folder, FIFO or
                device; a malformed file (the message names the file, and the line for a text
                format); or any check of the constructor.
            CycleError: ``acyclic=True`` for a file with a cycle.

        Examples:
            >>> import os, tempfile
            >>> path = os.path.join(tempfile.mkdtemp(), "edges.txt")
            >>> _ = open(path, "w").write("0 2 0.5\\n1 2 -1.5\\n2 3 2.0\\n")
            >>> Wiring.from_file(path).edge_weight.tolist()
            [0.5, -1.5, 2.0]
        """
        path = Path(path)
        data = read_data(path, num_nodes)
        if edge_weight is not None:
            data.edge_weight = edge_weight
        with naming(path):
            return cls.from_data(
                data,
                input_nodes=input_nodes,
                output_nodes=output_nodes,
                acyclic=acyclic,
                self_loops=self_loops,
            )

    @classmethod
    def from_networkx(
        cls,
        g: nx.DiGraph,
        *,
        input_nodes: Sequence[Hashable] | None = None,
        output_nodes: Sequence[Hashable] | None = None,
        acyclic: bool | None = None,
        self_loops: bool | None = None,
    ) -> Wiring:
        """Build from a directed networkx graph (inverse of :func:`dnwgraph.to_networkx`).

        Nodes may be any hashables: they are relabelled ``0..N-1`` in sorted order when sortable,
        else in insertion order. Edges keep the graph's order, or the order of their ``e_id``
        attribute when every edge has one. ``input_nodes``/``output_nodes`` use the graph's own
        labels; when ``None`` they come from the ``input_mask``/``output_mask`` node attributes
        (else ``role``), else the defaults of the constructor. ``acyclic``/``self_loops``
        default to the graph attributes of that name, else to what the graph is.
        ``edge_weight`` comes from the edge attribute ``edge_weight``, else ``weight``, else it
        is ``None``. The names are those of :mod:`dnwgraph.graph.convert`.

        Args:
            g: a directed graph.
            input_nodes: input nodes, by the graph's labels. (default: from the attributes)
            output_nodes: output nodes, by the graph's labels. (default: from the attributes)
            acyclic: see the constructor. (default: the graph attribute, else whether a DAG)
            self_loops: see the constructor. (default: the graph attribute, else whether any)

        Returns:
            Wiring: nodes ``0..N-1`` in the order above.

        Raises:
            TypeError: ``g`` is not a networkx graph.
            ValueError: an undirected graph, a node list naming an unknown node, an attribute
                that is not true/false or not a number, or any check of the constructor.

        Examples:
            >>> import networkx as nx
            >>> Wiring.from_networkx(nx.DiGraph([("a", "b", {"weight": 0.5})])).edge_weight
            tensor([0.5000])
        """
        data, ids = networkx_to_data(g)
        return cls.from_data(
            data,
            input_nodes=None if input_nodes is None else _map(input_nodes, ids, "input_nodes"),
            output_nodes=None if output_nodes is None else _map(output_nodes, ids, "output_nodes"),
            acyclic=acyclic,
            self_loops=self_loops,
        )


def _map(nodes: Sequence[Hashable], ids: dict[Hashable, int], name: str) -> list[int]:
    try:
        return [ids[v] for v in nodes]
    except (KeyError, TypeError) as err:
        node = err.args[0] if isinstance(err, KeyError) else nodes
        raise DNWGraphError(f"'{name}' names node {node!r}, which is not in the graph") from None


def _data_edge_index(data: Data) -> Tensor:
    ei = data.edge_index if "edge_index" in data else None
    if ei is None:
        raise DNWGraphError(
            f"'data' must hold an 'edge_index' [2, E] (got attributes {sorted(data.keys())})"
        )
    return ei


def _has_self_loops(ei: np.ndarray) -> bool:
    return bool((ei[0] == ei[1]).any())


def _is_dag(ei: np.ndarray, num_nodes: int | None) -> bool:
    if _has_self_loops(ei):
        return False
    try:
        topological_levels(ei, check_num_nodes(num_nodes, ei))
    except CycleError:
        return False
    return True


def read_wiring(path: PathLikeStr, **kwargs: Any) -> Wiring:
    """Read a wiring file: the same as :meth:`Wiring.from_file` (the keyword arguments win
    over the file).

    Examples:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "edges.csv")
        >>> _ = open(path, "w").write("source,target\\n0,2\\n1,2\\n2,3\\n")
        >>> read_wiring(path)
        Wiring(num_nodes=4, num_edges=3, inputs=2, outputs=1, acyclic=True)
    """
    return Wiring.from_file(path, **kwargs)
