"""The candidate wiring graph: which edges a DNW layer may choose from."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from dnwgraph.errors import DNWGraphError
from dnwgraph.graph._checks import (
    as_edge_index,
    check_edges,
    check_num_nodes,
    node_set,
    topological_levels,
)
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

    A thin wrapper around a :class:`torch_geometric.data.Data` (see :attr:`data`). The input is
    validated once, here; the object is treated as immutable afterwards.

    Args:
        edge_index: candidate edges, a LongTensor ``[2, E]`` (row 0 = source, row 1 = target), an
            integer numpy array ``[2, E]`` or a list of ``(source, target)`` pairs. The order is
            kept.
        num_nodes: number of nodes; default ``max id + 1``.
        input_nodes: nodes fed with data. Default: nodes of in-degree 0 when ``acyclic``,
            else all nodes.
        output_nodes: nodes read out. Default: nodes of out-degree 0 when ``acyclic``, else all
            nodes. A node may be both (e.g. an isolated node of a DAG).
        acyclic: the wiring must be a DAG (static setting); ``False`` for discrete/continuous
            time, where :meth:`levels` is unavailable. (default: ``True``)
        self_loops: allow edges ``(v, v)``; they are cycles, so they need ``acyclic=False``.
            (default: ``False``)

    Shapes:
        - edge_index: :math:`[2, E]`; input_nodes: :math:`[N_{in}]`; output_nodes:
          :math:`[N_{out}]` (sorted, unique)
        - levels(): list of :math:`[N_l]`; node_level(), in_degree(), out_degree(): :math:`[N]`

    Raises:
        DNWGraphError: (a ``ValueError``) ``edge_index`` not ``[2, E]``, not integer, empty;
            a node id outside ``[0, num_nodes)`` or above ``2**26``; ``acyclic`` or
            ``self_loops`` not a bool; a duplicate edge; a self loop with
            ``self_loops=False``; a bad ``input_nodes``/``output_nodes`` list.
        CycleError: a cycle while ``acyclic=True`` (names a node on it and the cycle).

    Example:
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
    ) -> None:
        for name, flag in (("acyclic", acyclic), ("self_loops", self_loops)):
            if not isinstance(flag, (bool, np.bool_)):
                raise DNWGraphError(f"'{name}' must be True or False (got {flag!r})")
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

    @property
    def data(self) -> Data:
        """The wiring as a :class:`torch_geometric.data.Data`.

        Holds ``edge_index [2, E]``, ``num_nodes``, ``input_mask [N]`` and ``output_mask [N]``
        (bool); the tensors are shared, not copied.
        """
        return Data(
            edge_index=self.edge_index,
            num_nodes=self.num_nodes,
            input_mask=self._mask(self.input_nodes),
            output_mask=self._mask(self.output_nodes),
        )

    def to(self, device: torch.device | str) -> Wiring:
        """A copy with every tensor on ``device`` (no re-validation)."""
        new = object.__new__(Wiring)
        new.__dict__.update(self.__dict__)
        new.edge_index = self.edge_index.to(device)
        new.input_nodes = self.input_nodes.to(device)
        new.output_nodes = self.output_nodes.to(device)
        if self._node_level is not None:
            new._node_level = self._node_level.to(device)
        new._levels = None
        return new

    def __repr__(self) -> str:
        return (
            f"Wiring(num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
            f"inputs={self.input_nodes.numel()}, outputs={self.output_nodes.numel()}, "
            f"acyclic={self.acyclic})"
        )

    # -- constructors and conversion -----------------------------------------------------------

    @classmethod
    def from_edge_list(cls, pairs: EdgeList, num_nodes: int | None = None, **kwargs: Any) -> Wiring:
        """Build from ``(source, target)`` pairs; ``kwargs`` as in the constructor.

        Example:
            >>> Wiring.from_edge_list([(0, 1), (1, 2)]).num_edges
            2
        """
        return cls(pairs, num_nodes, **kwargs)

    @classmethod
    def from_file(cls, path: PathLikeStr, **kwargs: Any) -> Wiring:
        """Read a wiring from ``.csv``, ``.json``, ``.graphml`` or ``.gexf`` (by extension).

        See :func:`dnwgraph.graph.io.read_wiring` for the formats; ``kwargs`` (``num_nodes``,
        ``input_nodes``, ``output_nodes``, ``acyclic``, ``self_loops``) override what the file says.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: unknown extension (lists the supported ones) or a malformed row/document.
        """
        from dnwgraph.graph.io import read_wiring

        return read_wiring(path, **kwargs)

    def to_networkx(self) -> nx.DiGraph:
        """The wiring as a ``networkx.DiGraph`` with nodes ``0..N-1``.

        Edges are added in ``edge_index`` order and carry their position as attribute ``index``
        (a DiGraph iterates edges grouped by source; :meth:`from_networkx` sorts by ``index``).

        Node attributes: ``is_input``, ``is_output`` (bools, authoritative), ``role`` in
        ``{"input", "hidden", "output"}`` (a node that is both input and output gets ``"input"``),
        and ``level`` when acyclic. Graph attributes: ``acyclic``, ``self_loops``.
        """
        from dnwgraph.graph.convert import to_networkx

        return to_networkx(self)

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
        """Build from a directed networkx graph (inverse of :meth:`to_networkx`).

        Nodes may be any hashables: they are relabelled ``0..N-1`` in sorted order when sortable,
        else in insertion order. Edges keep the graph's order, or the order of their ``index``
        attribute when every edge has one. ``input_nodes``/``output_nodes`` use the graph's own
        labels; when ``None`` they come from the ``is_input``/``is_output`` (else ``role``) node
        attributes, else the defaults of the constructor. ``acyclic``/``self_loops`` default to
        the graph attributes of that name, else to what the graph is.

        Raises:
            ValueError: an undirected graph, a node list naming an unknown node, or any check of
                the constructor.
        """
        from dnwgraph.graph.convert import from_networkx

        return from_networkx(
            g,
            input_nodes=input_nodes,
            output_nodes=output_nodes,
            acyclic=acyclic,
            self_loops=self_loops,
            cls=cls,
        )
