r"""Candidate wiring generators: the paper's block DAG, dense layers, complete and random graphs.

Edge counts, for block/layer sizes :math:`s_0, \dots, s_{B-1}` and :math:`N` nodes:

* :func:`block_dag`: :math:`E = \sum_{i<j} s_i s_j = ((\sum_i s_i)^2 - \sum_i s_i^2) / 2`
* :func:`layered`: :math:`E = \sum_{i=0}^{B-2} s_i s_{i+1}`
* :func:`complete`: :math:`E = N(N-1)`, or :math:`N^2` with self loops
* :func:`random_dag`: ER :math:`E \sim \mathrm{Binomial}(N(N-1)/2, p)`; WS :math:`E = Nk/2`
  (rewiring moves edges, never adds or removes them); BA :math:`E = m(N-m)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.graph._checks import check_int
from dnwgraph.graph.wiring import Wiring
from dnwgraph.registry import Registry


def _sizes(sizes: Sequence[int], name: str = "sizes") -> np.ndarray:
    if isinstance(sizes, (str, bytes)) or not isinstance(
        sizes, (Sequence, np.ndarray, torch.Tensor)
    ):
        raise DNWGraphTypeError(f"'{name}' must be a list of ints (got {type(sizes).__name__})")
    items = list(sizes.tolist() if isinstance(sizes, (np.ndarray, torch.Tensor)) else sizes)
    if len(items) < 2:
        raise DNWGraphError(f"'{name}' must list at least two block sizes (got {items!r})")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in items):
        raise DNWGraphTypeError(f"'{name}' must hold positive ints (got {items!r})")
    if min(items) <= 0:
        raise DNWGraphError(f"'{name}' must hold positive ints (got {items!r})")
    return np.asarray(items, dtype=np.int64)


def _blocks_to(sizes: np.ndarray, consecutive: bool) -> np.ndarray:
    # Edges block by block, source-major: from block i to blocks i+1.. (or only i+1).
    off = np.concatenate([[0], np.cumsum(sizes)])
    src, dst = [], []
    for i in range(sizes.size - 1):
        lo, hi = off[i + 1], off[i + 2] if consecutive else off[-1]
        src.append(np.repeat(np.arange(off[i], off[i + 1]), hi - lo))
        dst.append(np.tile(np.arange(lo, hi), sizes[i]))
    return np.stack([np.concatenate(src), np.concatenate(dst)])


def block_dag(sizes: Sequence[int]) -> Wiring:
    r"""The static graph of the DNW paper: every node feeds every node of every later block.

    Nodes are numbered block by block; block :math:`b` holds nodes
    :math:`[\sum_{i<b} s_i, \sum_{i\le b} s_i)`. The candidate edges are all :math:`(u, v)` with
    :math:`\mathrm{block}(u) < \mathrm{block}(v)`, so
    :math:`E = \sum_{i<j} s_i s_j`. Inputs are the first block, outputs the last; the levels are
    the blocks. The paper's CIFAR-10 setting ``[32, 192, 192, 192, 192]`` gives 800 nodes and
    245,760 candidate edges.

    Args:
        sizes: nodes per block, at least two blocks.

    Raises:
        ValueError: fewer than two blocks, or a size that is not a positive int.

    Examples:
        >>> w = block_dag([2, 3, 1])
        >>> w.num_nodes, w.num_edges, w.input_nodes.tolist(), w.output_nodes.tolist()
        (6, 11, [0, 1], [5])
    """
    s = _sizes(sizes)
    n = int(s.sum())
    return Wiring(
        torch.from_numpy(_blocks_to(s, consecutive=False)),
        n,
        input_nodes=torch.arange(int(s[0])),
        output_nodes=torch.arange(n - int(s[-1]), n),
    )


def layered(sizes: Sequence[int]) -> Wiring:
    r"""Dense layers as a wiring: every node of layer :math:`i` feeds every node of layer
    :math:`i+1`, so :math:`E = \sum_i s_i s_{i+1}`.

    Inputs are the first layer, outputs the last. With all edges kept this is an ordinary MLP.

    Args:
        sizes: nodes per layer, at least two layers.

    Raises:
        ValueError: fewer than two layers, or a size that is not a positive int.

    Examples:
        >>> w = layered([2, 3, 1])
        >>> w.num_edges, [lvl.tolist() for lvl in w.levels()]
        (9, [[0, 1], [2, 3, 4], [5]])
    """
    s = _sizes(sizes)
    n = int(s.sum())
    return Wiring(
        torch.from_numpy(_blocks_to(s, consecutive=True)),
        n,
        input_nodes=torch.arange(int(s[0])),
        output_nodes=torch.arange(n - int(s[-1]), n),
    )


def complete(
    num_nodes: int,
    *,
    self_loops: bool = False,
    input_nodes: Sequence[int] | torch.Tensor | None = None,
    output_nodes: Sequence[int] | torch.Tensor | None = None,
) -> Wiring:
    r"""All ordered pairs :math:`(u, v)`, for the recurrent (discrete/continuous time) settings.

    :math:`E = N(N-1)`, or :math:`N^2` with ``self_loops=True``; edges in row-major order
    :math:`(0,1), (0,2), \dots`. The wiring is cyclic (``acyclic=False``); inputs and outputs
    default to all nodes.

    Args:
        num_nodes: :math:`N \ge 2` (:math:`\ge 1` with self loops).
        self_loops: include the :math:`N` edges :math:`(v, v)`. (default: ``False``)
        input_nodes: nodes fed with data (default: all).
        output_nodes: nodes read out (default: all).

    Raises:
        ValueError: ``num_nodes`` too small for a single edge.

    Examples:
        >>> w = complete(3)
        >>> w.num_edges, w.acyclic, w.edge_index[:, :2].tolist()
        (6, False, [[0, 0], [1, 2]])
    """
    num_nodes = check_int(
        num_nodes,
        "num_nodes",
        low=1 if self_loops else 2,
        what=f" for a complete graph with self_loops={self_loops}",
    )
    u, v = np.divmod(np.arange(num_nodes * num_nodes), num_nodes)
    keep = slice(None) if self_loops else u != v
    return Wiring(
        torch.from_numpy(np.stack([u[keep], v[keep]])),
        num_nodes,
        input_nodes=input_nodes,
        output_nodes=output_nodes,
        acyclic=False,
        self_loops=self_loops,
    )


# -- random DAGs (RandWire, Xie et al. 2019) ---------------------------------------------------


def _prob(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DNWGraphTypeError(
            f"'{name}' must be a probability, a float in [0, 1] (got {type(value).__name__})"
        )
    if not 0 <= value <= 1:
        raise DNWGraphError(f"'{name}' must be a probability in [0, 1] (got {value!r})")
    return float(value)


def _count(name: str, value: Any, lo: int, hi: int, n: int) -> int:
    value = check_int(value, name, low=lo, what=f" for num_nodes={n}")
    if value >= hi:
        raise DNWGraphError(
            f"'{name}' must be an int in [{lo}, {hi}) for num_nodes={n} (got {value!r})"
        )
    return int(value)


def _er(n: int, seed: int, p: Any = 0.2) -> Any:
    import networkx as nx

    return nx.erdos_renyi_graph(n, _prob("p", p), seed=seed)


def _ws(n: int, seed: int, k: Any = 4, p: Any = 0.75) -> Any:
    import networkx as nx

    k = _count("k", k, 2, n, n)
    if k % 2:
        raise DNWGraphError(f"'k' must be even for a Watts-Strogatz ring lattice (got {k})")
    return nx.connected_watts_strogatz_graph(n, k, _prob("p", p), tries=200, seed=seed)


def _ba(n: int, seed: int, m: Any = 5) -> Any:
    import networkx as nx

    return nx.barabasi_albert_graph(n, _count("m", m, 1, n, n), seed=seed)


#: RandWire's random graphs by kind: ``(build(n, seed, **params), parameter names)``.
RANDOM_KINDS: Registry[tuple[Callable[..., Any], tuple[str, ...]]] = Registry("random graph kind")
RANDOM_KINDS.register("er", (_er, ("p",)))
RANDOM_KINDS.register("ws", (_ws, ("k", "p")))
RANDOM_KINDS.register("ba", (_ba, ("m",)))


def random_dag(kind: str, num_nodes: int, *, seed: int, **kwargs: Any) -> Wiring:
    r"""A random DAG as in RandWire: an undirected random graph, every edge oriented low → high id.

    Orienting :math:`\{u, v\}` as :math:`(\min, \max)` makes the node ids a topological order, so
    the result is always a DAG. Inputs are the nodes of in-degree 0, outputs those of out-degree
    0 (an isolated node is both). Edge counts:

    * ``"er"`` (Erdős–Rényi, ``p=0.2``): each of the :math:`N(N-1)/2` pairs with probability
      :math:`p`, :math:`\mathbb{E}[E] = pN(N-1)/2`.
    * ``"ws"`` (connected Watts–Strogatz, ``k=4, p=0.75``): a ring where each node joins its
      :math:`k` nearest neighbours, each edge rewired with probability :math:`p`;
      :math:`E = Nk/2` exactly.
    * ``"ba"`` (Barabási–Albert, ``m=5``): each new node attaches to :math:`m` existing nodes;
      :math:`E = m(N - m)` exactly.

    Args:
        kind: ``"er"``, ``"ws"`` or ``"ba"``.
        num_nodes: :math:`N \ge 2`.
        seed: random seed; the same seed gives the same wiring.
        **kwargs: the parameters of ``kind`` (defaults as in RandWire).

    Raises:
        ValueError: unknown ``kind`` (lists the valid ones), an unknown or out-of-range
            parameter, or a draw with no edge at all.

    Examples:
        >>> w = random_dag("ba", 10, seed=0, m=2)
        >>> w.num_edges, w.acyclic
        (16, True)
    """
    build, params = RANDOM_KINDS.get(kind)
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise DNWGraphError(
            f"random_dag(kind={kind!r}) got unknown parameter(s) {unknown} "
            f"(valid: {', '.join(params)})"
        )
    num_nodes = check_int(num_nodes, "num_nodes", low=2)
    g = build(num_nodes, seed, **kwargs)
    edges = sorted((min(u, v), max(u, v)) for u, v in g.edges())
    if not edges:
        raise DNWGraphError(
            f"random_dag({kind!r}, {num_nodes}, seed={seed}, **{kwargs}) drew no edge; "
            "raise the edge probability or change the seed"
        )
    return Wiring(edges, int(num_nodes))
