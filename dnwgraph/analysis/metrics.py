r"""What a discovered wiring looks like, in numbers.

Every function takes a :class:`~dnwgraph.Wiring`, a :class:`~dnwgraph.WiringConv`, a model or a
wiring snapshot (see :func:`dnwgraph.to_networkx`) and measures the **selected** edges. The
algorithms are vectorised with torch (fixed-point iterations over the edge list) so that they
scale to the 245,760-candidate wirings of the paper; networkx is their test oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from dnwgraph.errors import DNWGraphError
from dnwgraph.models.views import (
    WiringView,
    is_snapshot,
    liveness,
    wiring_views,
)

#: Graphs up to this many nodes use dense adjacency products (``N^2`` floats).
DENSE_LIMIT = 2048

# --------------------------------------------------------------------------- reachability


def live_node_mask(obj: Any) -> dict[str, Tensor]:
    """Nodes that can affect an output: they receive from an input **and** reach an output.

    The complement is the set of dead nodes: nodes that receive nothing (no selected path from
    an input) or reach no output. Removing a dead node can leave its neighbours dead, so the
    sets are fixed points (the reference code prunes a single pass).

    Returns:
        dict[str, BoolTensor]: ``{module_name: live [N]}``.

    Examples:
        >>> from dnwgraph import Wiring
        >>> w = Wiring([(0, 2), (2, 4), (1, 3), (3, 5)], num_nodes=6, input_nodes=[0],
        ...            output_nodes=[4, 5])
        >>> live_node_mask(w)[""].nonzero().view(-1).tolist()
        [0, 2, 4]
    """
    out = {}
    for view in wiring_views(obj):
        receives, reaches = liveness(view)
        out[view.module] = receives & reaches
    return out


def dead_nodes(obj: Any) -> dict[str, Tensor]:
    """Ids of the nodes that receive nothing or reach no output, per module (sorted).

    Examples:
        >>> from dnwgraph import Wiring
        >>> w = Wiring([(0, 2), (2, 4), (1, 3), (3, 5)], num_nodes=6, input_nodes=[0],
        ...            output_nodes=[4, 5])
        >>> dead_nodes(w)[""].tolist()
        [1, 3, 5]
    """
    return {m: (~live).nonzero().view(-1) for m, live in live_node_mask(obj).items()}


# --------------------------------------------------------------------------- graph statistics


def _longest_from(start: Tensor, src: Tensor, dst: Tensor, num_nodes: int) -> Tensor:
    """Longest path length from any ``start`` node to each node of a DAG (-1: unreachable)."""
    dist = torch.where(start, 0, -1)
    while True:
        ok = dist[src] >= 0
        cand = torch.full((num_nodes,), -1, dtype=torch.long).scatter_reduce_(
            0, dst[ok], dist[src[ok]] + 1, reduce="amax"
        )
        new = torch.maximum(dist, cand)
        if torch.equal(new, dist):
            return dist
        dist = new


def depth(obj: Any) -> dict[str, int | None]:
    """Longest input→output path (in edges) over the selected edges, per module.

    ``None`` for a wiring whose candidates have a cycle (no longest path) or when no output is
    reachable from an input.

    Examples:
        >>> from dnwgraph import Wiring
        >>> depth(Wiring([(0, 1), (1, 2), (0, 2)]))
        {'': 2}
    """
    out: dict[str, int | None] = {}
    for view in wiring_views(obj):
        out[view.module] = _depth(view)
    return out


def _depth(view: WiringView) -> int | None:
    if not view.acyclic:
        return None
    (src, dst), _ = view.selected()
    dist = _longest_from(view.node_mask(view.input_nodes), src, dst, view.num_nodes)
    best = int(dist[view.output_nodes].max()) if view.output_nodes.numel() else -1
    return None if best < 0 else best


def _widths(view: WiringView) -> list[int] | None:
    """Sizes of the topological generations of the selected graph (all nodes)."""
    if not view.acyclic:
        return None
    (src, dst), _ = view.selected()
    level = _longest_from(torch.ones(view.num_nodes, dtype=torch.bool), src, dst, view.num_nodes)
    return torch.bincount(level).tolist()


def _undirected(src: Tensor, dst: Tensor, num_nodes: int) -> Tensor:
    """Coalesced sparse 0/1 adjacency ``[N, N]`` of the undirected simple graph (no self
    loops)."""
    keep = src != dst
    pairs = torch.cat([torch.stack([src[keep], dst[keep]]), torch.stack([dst[keep], src[keep]])], 1)
    key = torch.unique(pairs[0] * num_nodes + pairs[1])
    index = torch.stack([key // num_nodes, key % num_nodes])
    return torch.sparse_coo_tensor(
        index, torch.ones(key.numel()), (num_nodes, num_nodes), check_invariants=True
    ).coalesce()


def average_clustering(edge_index: Tensor, num_nodes: int, chunk: int = 1 << 22) -> float:
    r"""Average clustering coefficient of the undirected simple graph of ``edge_index``.

    :math:`C_v = 2 T_v / (d_v (d_v - 1))` with :math:`T_v` the triangles through :math:`v` and
    :math:`d_v` its undirected degree (:math:`C_v = 0` when :math:`d_v < 2`), averaged over all
    nodes; equals ``networkx.average_clustering(g.to_undirected())``. :math:`2 T_v =
    \mathrm{rowsum}(A \odot A^2)_v`, with :math:`A^2` formed as sparse times dense, ``chunk``
    entries of it at a time.

    Examples:
        >>> average_clustering(torch.tensor([[0, 0, 1], [1, 2, 2]]), 4)
        0.75
    """
    if num_nodes == 0:
        return 0.0
    a = _undirected(edge_index[0], edge_index[1], num_nodes)
    deg = torch.zeros(num_nodes, dtype=torch.float64).index_add_(
        0, a.indices()[0], a.values().double()
    )
    dense = a.to_dense()
    tri2 = torch.zeros(num_nodes, dtype=torch.float64)
    step = max(1, chunk // num_nodes)
    for lo in range(0, num_nodes, step):
        cols = dense[:, lo : lo + step]
        tri2 += (torch.sparse.mm(a, cols) * cols).sum(1).double()
    pairs = deg * (deg - 1)
    coef = torch.where(pairs > 0, tri2 / pairs.clamp(min=1), torch.zeros((), dtype=torch.float64))
    return float(coef.sum() / num_nodes)


def average_path_length(
    edge_index: Tensor, num_nodes: int, max_sources: int = 1024, seed: int = 0
) -> float | None:
    r"""Mean shortest directed path length over the ordered pairs :math:`(u, v)`, :math:`u \ne v`,
    where :math:`v` is reachable from :math:`u`.

    A breadth-first search from all sources at once (a dense ``[S, N]`` frontier times the
    adjacency, dense up to ``DENSE_LIMIT`` nodes, sparse above). A DAG is never strongly
    connected, so the mean is over reachable pairs only (networkx's
    ``average_shortest_path_length`` would refuse it). With more than ``max_sources`` nodes,
    ``max_sources`` sources are drawn at random (seeded), an unbiased estimate.

    Returns:
        float or None: ``None`` when no pair is connected.

    Examples:
        >>> average_path_length(torch.tensor([[0, 1], [1, 2]]), 3)
        1.3333333333333333
    """
    src, dst = edge_index
    if num_nodes > max_sources:
        gen = torch.Generator().manual_seed(seed)
        sources = torch.randperm(num_nodes, generator=gen)[:max_sources]
    else:
        sources = torch.arange(num_nodes)
    if num_nodes <= DENSE_LIMIT:  # a dense [N, N] product is faster for small graphs
        adj_t = torch.zeros(num_nodes, num_nodes)
        adj_t[src, dst] = 1.0

        def hop(f: Tensor) -> Tensor:
            return f.float() @ adj_t > 0
    else:
        adj = torch.sparse_coo_tensor(
            torch.stack([dst, src]),
            torch.ones(src.numel()),
            (num_nodes, num_nodes),
            check_invariants=True,
        ).coalesce()

        def hop(f: Tensor) -> Tensor:
            return torch.sparse.mm(adj, f.float().t()).t() > 0

    visited = torch.zeros(sources.numel(), num_nodes, dtype=torch.bool)
    visited[torch.arange(sources.numel()), sources] = True
    frontier = visited.clone()
    total, pairs, d = 0, 0, 0
    while frontier.any():
        d += 1
        step = hop(frontier)  # [S, N]: one more edge from every source
        frontier = step & ~visited
        visited |= frontier
        count = int(frontier.sum())
        total += d * count
        pairs += count
    return None if pairs == 0 else total / pairs


@dataclass
class GraphStats:
    """Statistics of one selected graph (see :func:`wiring_metrics`)."""

    selected_edges: int
    in_degree_mean: float
    in_degree_std: float
    out_degree_mean: float
    out_degree_std: float
    clustering: float
    avg_path_length: float | None
    depth: float | None
    dead: float


@dataclass
class WiringMetrics:
    """Metrics of one learned wiring; ``random`` holds the same statistics for random wirings
    with the same number of selected edges (averaged over the draws).

    ``unreached`` counts the nodes that no input reaches and ``dead_ends`` those that reach no
    output, along paths of selected edges (the training metric ``no_input_nodes`` is another
    count: hidden nodes without a selected in-edge, one hop).
    """

    module: str
    num_nodes: int
    candidate_edges: int
    selected_edges: int
    density: float
    depth: int | None
    width: list[int] | None
    unreached: int
    dead_ends: int
    dead: int
    in_degree: list[int]
    out_degree: list[int]
    stats: GraphStats
    random: GraphStats | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _degree(view: WiringView) -> tuple[Tensor, Tensor]:
    (src, dst), _ = view.selected()
    n = view.num_nodes
    return torch.bincount(dst, minlength=n), torch.bincount(src, minlength=n)


def graph_stats(view: WiringView) -> GraphStats:
    """:class:`GraphStats` of the selected edges of one view."""
    (src, dst), _ = view.selected()
    ind, outd = _degree(view)
    receives, reaches = liveness(view)
    ei = torch.stack([src, dst])
    return GraphStats(
        selected_edges=int(src.numel()),
        in_degree_mean=float(ind.float().mean()),
        in_degree_std=float(ind.float().std(unbiased=False)),
        out_degree_mean=float(outd.float().mean()),
        out_degree_std=float(outd.float().std(unbiased=False)),
        clustering=average_clustering(ei, view.num_nodes),
        avg_path_length=average_path_length(ei, view.num_nodes),
        depth=_depth(view),
        dead=int((~(receives & reaches)).sum()),
    )


def random_view(view: WiringView, seed: int = 0) -> WiringView:
    """The same candidates with ``k`` edges drawn uniformly at random (``k`` = selected edges),
    the random-graph baseline of the paper.

    Examples:
        >>> from dnwgraph import Wiring, WiringConv
        >>> from dnwgraph.models.views import wiring_views
        >>> conv = WiringConv(Wiring([(0, 2), (1, 2), (0, 3), (2, 3)]), ratio=2)
        >>> random_view(wiring_views(conv)[0], seed=1).num_selected
        2
    """
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(view.num_edges, generator=gen)[: view.num_selected]
    active = torch.zeros(view.num_edges, dtype=torch.bool)
    active[pick] = True
    return WiringView(
        view.module,
        view.edge_index,
        view.weight,
        active,
        view.num_nodes,
        view.input_nodes,
        view.output_nodes,
        view.level,
    )


def _mean_stats(stats: Sequence[GraphStats]) -> GraphStats:
    def mean(values: list[Any]) -> Any:
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    fields = asdict(stats[0]).keys()
    merged = {f: mean([getattr(s, f) for s in stats]) for f in fields}
    merged["selected_edges"] = stats[0].selected_edges
    return GraphStats(**merged)


def wiring_metrics(obj: Any, num_random: int = 3, seed: int = 0) -> list[WiringMetrics]:
    r"""Measure every learned wiring of ``obj`` (one :class:`WiringMetrics` per module).

    * ``selected_edges``, ``density`` = selected / candidate edges;
    * ``in_degree`` / ``out_degree``: the selected degree of every node;
    * ``depth``: longest input→output path; ``width``: nodes per topological generation of the
      selected graph (``None`` for both when the candidates have a cycle);
    * ``unreached``: nodes no input reaches; ``dead_ends``: nodes that reach no output;
      ``dead``: nodes in either set;
    * ``stats``: degree mean/spread, clustering (undirected), average directed path length and
      depth, and ``random``: the same for ``num_random`` random wirings with as many edges drawn
      from the same candidates (what chance gives; see :func:`random_view`).

    Args:
        obj: a Wiring, WiringConv, model or snapshot dict.
        num_random: random wirings averaged for the baseline; ``0`` skips it. (default: 3)
        seed: seed of the first random wiring (then ``seed + 1``, ...).

    Raises:
        ValueError: ``num_random < 0``; see :func:`dnwgraph.to_networkx` for ``obj``.

    Examples:
        >>> from dnwgraph import Wiring
        >>> m = wiring_metrics(Wiring([(0, 1), (1, 2), (0, 2)]), num_random=0)[0]
        >>> m.selected_edges, m.depth, m.width, m.dead
        (3, 2, [1, 1, 1], 0)
    """
    if num_random < 0:
        raise DNWGraphError(f"'num_random' must be >= 0 (got {num_random})")
    out = []
    for view in wiring_views(obj):
        receives, reaches = liveness(view)
        ind, outd = _degree(view)
        rnd = [graph_stats(random_view(view, seed + i)) for i in range(num_random)]
        out.append(
            WiringMetrics(
                module=view.module,
                num_nodes=view.num_nodes,
                candidate_edges=view.num_edges,
                selected_edges=view.num_selected,
                density=view.num_selected / max(view.num_edges, 1),
                depth=_depth(view),
                width=_widths(view),
                unreached=int((~receives).sum()),
                dead_ends=int((~reaches).sum()),
                dead=int((~(receives & reaches)).sum()),
                in_degree=ind.tolist(),
                out_degree=outd.tolist(),
                stats=graph_stats(view),
                random=_mean_stats(rnd) if rnd else None,
            )
        )
    return out


def model_cost(model: torch.nn.Module, input_shape: Sequence[int] | None = None) -> dict[str, int]:
    """Effective parameters and MACs through :func:`dnwgraph.count_params` / ``count_macs``.

    Only selected edges count (see the models' counting rules). ``macs`` (per sample) is
    present when ``input_shape`` is given: one sample's shape, without the batch dimension,
    e.g. ``(40,)`` for MNIST-1D.

    Raises:
        ValueError: a non-positive ``input_shape``.

    Examples:
        >>> model_cost(torch.nn.Linear(4, 3), (4,))
        {'params': 15, 'macs': 15}
    """
    from dnwgraph.models import count_macs, count_params

    out = {"params": int(count_params(model))}
    if input_shape is not None:
        out["macs"] = int(count_macs(model, (1, *input_shape)))
    return out


# --------------------------------------------------------------------------- churn


def _edge_sets(obj: Any) -> dict[str, set[tuple[int, int]]]:
    """Selected edges per module; straight from a snapshot's tensors (no roles or levels)."""
    if is_snapshot(obj):
        pairs = {name: e["edge_index"][:, e["active"].bool()] for name, e in obj.items()}
    else:
        pairs = {v.module: v.selected()[0] for v in wiring_views(obj)}
    return {name: set(zip(*ei.tolist(), strict=True)) for name, ei in pairs.items()}


def edge_churn(before: Any, after: Any) -> dict[str, dict[str, float]]:
    r"""How the selected edges changed between two wirings, per module.

    ``jaccard`` :math:`= |A \cap B| / |A \cup B|` of the selected edge sets (1.0 = unchanged),
    ``swapped_in`` :math:`= |B \setminus A|`, ``swapped_out`` :math:`= |A \setminus B|`,
    ``kept`` :math:`= |A \cap B|`. ``before``/``after`` are snapshots, layers or models with the
    same module names.

    Raises:
        ValueError: the two hold different module names.

    Examples:
        >>> from dnwgraph import Wiring
        >>> edge_churn(Wiring([(0, 1), (1, 2)]), Wiring([(0, 1), (0, 2)]))['']['jaccard']
        0.3333333333333333
    """
    a = before if _is_sets(before) else _edge_sets(before)
    b = after if _is_sets(after) else _edge_sets(after)
    if set(a) != set(b):
        raise DNWGraphError(
            f"cannot compare wirings of different modules (got {sorted(a)} and {sorted(b)})"
        )
    out = {}
    for name in a:
        ea, eb = a[name], b[name]
        union = len(ea | eb)
        out[name] = {
            "jaccard": len(ea & eb) / union if union else 1.0,
            "swapped_in": float(len(eb - ea)),
            "swapped_out": float(len(ea - eb)),
            "kept": float(len(ea & eb)),
        }
    return out


def churn_series(snapshots: Sequence[tuple[int, Any]]) -> list[dict[str, float]]:
    """Edge churn between consecutive snapshots, summed over modules.

    Returns one row per snapshot after the first: ``epoch``, ``jaccard`` (with the previous
    snapshot, over all modules' edges), ``swapped_in``, ``swapped_out``, and
    ``jaccard_final`` (with the last snapshot).

    Examples:
        >>> from dnwgraph import Wiring
        >>> a, b = Wiring([(0, 1), (1, 2)]), Wiring([(0, 1), (0, 2)])
        >>> [r["swapped_in"] for r in churn_series([(0, a), (1, b), (2, b)])]
        [1.0, 0.0]
    """
    rows = []
    sets = [(epoch, _edge_sets(s)) for epoch, s in snapshots]
    final = sets[-1][1] if sets else None
    for (_, prev), (epoch, cur) in zip(sets, sets[1:], strict=False):
        step = edge_churn(prev, cur)
        last = edge_churn(cur, final)
        rows.append(
            {
                "epoch": float(epoch),
                "jaccard": _pooled(step),
                "swapped_in": sum(c["swapped_in"] for c in step.values()),
                "swapped_out": sum(c["swapped_out"] for c in step.values()),
                "jaccard_final": _pooled(last),
            }
        )
    return rows


def _is_sets(obj: Any) -> bool:
    return isinstance(obj, dict) and all(isinstance(v, set) for v in obj.values()) and bool(obj)


def _pooled(churn: dict[str, dict[str, float]]) -> float:
    kept = sum(c["kept"] for c in churn.values())
    union = sum(c["kept"] + c["swapped_in"] + c["swapped_out"] for c in churn.values())
    return kept / union if union else 1.0
