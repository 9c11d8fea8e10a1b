"""Input checks and the topological sort behind :class:`~dnwgraph.graph.Wiring`.

Private: the wiring validates once, in its constructor, through these functions. Everything is
vectorised with numpy so that a 20,000-node, 2M-edge wiring validates in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError

#: Node ids must lie below this (2**26 = 67,108,864): validating a wiring allocates a few
#: arrays of ``num_nodes`` entries, so a stray id of 10**12 must be refused, not allocated.
MAX_NODES = 2**26


#: A file that does not declare its node count has one node per position ``0..max id``; when
#: more than this many of those nodes (and more than it names) are named nowhere in the file, the
#: ids are labels rather than positions (or a typo), and the wiring would be mostly isolated
#: nodes: a 2-line file naming node 60,000,000 would allocate 60M nodes.
UNNAMED_NODES = 1000


def check_unnamed_nodes(num_nodes: int, named: int) -> None:
    """Check the node count ``num_nodes`` a file implies by its largest id (ids are
    positions; the file does not declare a count) against the ``named`` distinct ids it names.

    Raises:
        DNWGraphError: more than :data:`UNNAMED_NODES` nodes, and more than ``named``, would
            be named nowhere in the file.

    Examples:
        >>> check_unnamed_nodes(5, 3)  # ids 0, 2, 4: nodes 1 and 3 are nodes without edges
        >>> check_unnamed_nodes(1003, 2)  # 1,001 nodes unnamed
        Traceback (most recent call last):
        ...
        dnwgraph.errors.DNWGraphError: node id 1002 makes 1003 nodes, but the file names only 2 ...
    """
    unnamed = num_nodes - named
    if unnamed > max(named, UNNAMED_NODES):
        top = num_nodes - 1
        raise DNWGraphError(
            f"node id {top} makes {num_nodes} nodes, but the file names only {named} of them: "
            f"ids are positions 0..N-1, so {unnamed} nodes would be ones it never names "
            f"(relabel the nodes 0..{named - 1}, e.g. with "
            "networkx.convert_node_labels_to_integers, or declare the count: num_nodes=N in "
            "Python, a first line '# dnwgraph wiring: num_nodes=N' in an edge list)"
        )


class CycleError(DNWGraphError):
    """A wiring declared acyclic (``acyclic=True``) contains a directed cycle.

    The message names a node on the cycle and the cycle itself, e.g.
    ``"wiring contains a cycle through node 3 (3 -> 5 -> 3)"``. Attributes ``node`` and
    ``cycle`` (the node ids, first == last) hold the same facts for programs.
    """

    def __init__(self, node: int, cycle: list[int]) -> None:
        self.node = node
        self.cycle = cycle
        shown = cycle if len(cycle) <= 12 else cycle[:6] + ["..."] + cycle[-5:]
        path = " -> ".join(str(v) for v in shown)
        super().__init__(
            f"wiring contains a cycle through node {node} ({path}); a static wiring must be a "
            "DAG (pass acyclic=False for recurrent settings)"
        )


def sparse_size(edge_index: Any) -> int | None:
    """Number of nodes a graph object declares, or ``None`` when it declares none.

    A torch sparse adjacency (COO, CSR, CSC) of shape ``[N, N]`` declares ``N``; so does a
    :class:`torch_geometric.EdgeIndex` with a known ``sparse_size``.

    Raises:
        ValueError: a sparse adjacency or ``EdgeIndex`` that is not square.
    """
    if isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
        shape = tuple(edge_index.shape)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise DNWGraphError(
                f"a sparse adjacency must have shape [N, N] (row = source, column = target) "
                f"(got {shape})"
            )
        return int(shape[0])
    size = getattr(edge_index, "sparse_size", None)
    if callable(size):  # torch_geometric.EdgeIndex
        rows, cols = size()
        if rows is None and cols is None:
            return None
        if rows is not None and cols is not None and rows != cols:
            raise DNWGraphError(
                f"an EdgeIndex must have a square sparse_size (N, N) for a wiring (got "
                f"({rows}, {cols}))"
            )
        return int(rows if rows is not None else cols)
    return None


def as_edge_index(edge_index: Any) -> np.ndarray:
    """Coerce a tensor, numpy array or sequence of pairs to an ``int64`` array of shape [2, E].

    A torch sparse adjacency (COO, CSR, CSC) gives its stored entries, row-major: entry
    ``(u, v)`` is the edge ``u -> v`` whatever its value (``torch_geometric.utils.to_edge_index``
    reads it the same way).
    """
    if isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
        sparse_size(edge_index)  # square or a ValueError
        adj = edge_index.detach()
        adj = (adj if adj.layout == torch.sparse_coo else adj.to_sparse_coo()).coalesce()
        arr = adj.indices().cpu().numpy()
    elif isinstance(edge_index, Tensor):
        arr = edge_index.detach().cpu().numpy()
    elif isinstance(edge_index, np.ndarray):
        arr = edge_index
    elif isinstance(edge_index, Sequence) and not isinstance(edge_index, (str, bytes)):
        for i, pair in enumerate(edge_index):
            if not isinstance(pair, (Sequence, np.ndarray, Tensor)) or len(pair) != 2:
                raise DNWGraphError(
                    f"'edge_index' as a list must hold (source, target) pairs (got {pair!r} at "
                    f"position {i})"
                )
        arr = np.asarray(edge_index).reshape(-1, 2).T if len(edge_index) else np.empty((2, 0))
        if arr.dtype.kind in "OUS" or (arr.size and arr.dtype.kind == "f" and _all_int(edge_index)):
            # numpy could not hold the ids as int64: name the bad entry or the huge id
            _check_object_ids(np.asarray(edge_index, dtype=object).reshape(-1, 2).T)
    else:
        raise DNWGraphTypeError(
            "'edge_index' must be a LongTensor [2, E] (or a torch_geometric EdgeIndex), a torch "
            "sparse adjacency [N, N], a torch_geometric Data, a numpy array or a list of "
            f"(source, target) pairs (got {type(edge_index).__name__})"
        )
    if arr.ndim != 2 or arr.shape[0] != 2:
        hint = " (a list of pairs is transposed for you; a tensor is not)" if arr.ndim == 2 else ""
        raise DNWGraphError(f"'edge_index' must have shape [2, E] (got {tuple(arr.shape)}){hint}")
    if arr.shape[1] == 0:
        raise DNWGraphError(
            "a wiring needs at least one candidate edge (got 'edge_index' with E = 0)"
        )
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise DNWGraphError(
            f"'edge_index' must hold integer node ids (got dtype {_dtype(edge_index)})"
        )
    if arr.dtype.kind == "u" and int(arr.max()) >= MAX_NODES:
        _too_large(int(arr.max()))  # before the cast to int64 wraps it to a negative id
    return np.ascontiguousarray(arr, dtype=np.int64)


def _too_large(node: int) -> None:
    raise DNWGraphError(
        f"'edge_index' holds node id {node}, too large: ids must lie in [0, {MAX_NODES}) "
        "(node ids are positions 0..N-1, not labels; relabel them first, e.g. with "
        "networkx.convert_node_labels_to_integers, or build the wiring with "
        "Wiring.from_networkx)"
    )


def _all_int(pairs: Sequence[Any]) -> bool:
    return all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for p in pairs for v in p
    )


def _check_object_ids(arr: np.ndarray) -> None:
    """A list of pairs numpy could not turn into integers: name the first bad entry."""
    for col in range(arr.shape[1]):
        for v in arr[:, col]:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise DNWGraphError(
                    f"'edge_index' pairs must hold integer node ids (got {v!r} in pair "
                    f"{col}: ({arr[0, col]!r}, {arr[1, col]!r}))"
                )
    ids = [int(v) for v in arr.reshape(-1)]
    _too_large(max(ids, key=abs))


def check_int(value: Any, name: str, *, low: int, what: str = "") -> int:
    """``value`` as an ``int`` >= ``low``: a non-int (``bool`` included) is a
    :class:`~dnwgraph.errors.DNWGraphTypeError`, an int below ``low`` a
    :class:`~dnwgraph.errors.DNWGraphError`; ``what`` ends the range message."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DNWGraphTypeError(f"'{name}' must be an int (got {type(value).__name__} {value!r})")
    if value < low:
        raise DNWGraphError(f"'{name}' must be >= {low}{what} (got {value})")
    return int(value)


def _dtype(obj: Any) -> str:
    return str(obj.dtype) if hasattr(obj, "dtype") else str(np.asarray(obj).dtype)


def check_num_nodes(num_nodes: Any, ei: np.ndarray) -> int:
    """Return ``num_nodes`` (``max id + 1`` when ``None``) after checking ids lie in range."""
    lo, hi = int(ei.min()), int(ei.max())
    if num_nodes is None:
        num_nodes = hi + 1
    elif isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)):
        raise DNWGraphTypeError(f"'num_nodes' must be an int (got {type(num_nodes).__name__})")
    num_nodes = int(num_nodes)
    if num_nodes <= 0:
        raise DNWGraphError(f"'num_nodes' must be positive (got {num_nodes})")
    if num_nodes > MAX_NODES:
        if hi >= MAX_NODES:
            _too_large(hi)
        raise DNWGraphError(f"'num_nodes' must be at most {MAX_NODES} (got {num_nodes})")
    bad = lo if lo < 0 else hi if hi >= num_nodes else None
    if bad is not None:
        col = int(np.flatnonzero((ei == bad).any(axis=0))[0])
        raise DNWGraphError(
            f"'edge_index' holds node id {bad} (edge {col}: ({ei[0, col]}, {ei[1, col]})) outside "
            f"the valid range [0, {num_nodes}) given num_nodes={num_nodes}"
        )
    return num_nodes


def check_edges(ei: np.ndarray, num_nodes: int, self_loops: bool) -> None:
    """Reject self loops (unless allowed) and duplicate edges, naming the first offender."""
    if not self_loops:
        loops = np.flatnonzero(ei[0] == ei[1])
        if loops.size:
            v = int(ei[0, loops[0]])
            raise DNWGraphError(
                f"'edge_index' holds a self loop at node {v} (edge {int(loops[0])}); pass "
                "self_loops=True to allow them"
            )
    key = ei[0] * num_nodes + ei[1]
    ordered = np.sort(key)  # an unstable sort: 4x faster than unique's stable one
    if ordered.size and bool((ordered[1:] == ordered[:-1]).any()):
        _, first = np.unique(key, return_index=True)  # the first offender, stably
        is_first = np.zeros(key.size, dtype=bool)
        is_first[first] = True
        dup = int(np.flatnonzero(~is_first)[0])
        orig = int(np.flatnonzero(key == key[dup])[0])
        raise DNWGraphError(
            f"'edge_index' holds a duplicate edge ({ei[0, dup]}, {ei[1, dup]}) at positions "
            f"{orig} and {dup}"
        )


def check_edge_weight(edge_weight: Any, num_edges: int) -> Tensor:
    """Check per-edge weights ``[E]`` and return them as a float tensor (CPU, detached).

    Integer or boolean weights become ``float32``; floating ones keep their dtype.
    """
    w = torch.as_tensor(edge_weight).detach().cpu()
    if w.shape != (num_edges,):
        raise DNWGraphError(
            f"'edge_weight' must have shape [E] = [{num_edges}], one weight per edge "
            f"(got {tuple(w.shape)})"
        )
    if not w.is_floating_point():
        w = w.float()
    if not bool(torch.isfinite(w).all()):
        bad = int((~torch.isfinite(w)).nonzero()[0])
        raise DNWGraphError(f"'edge_weight' must be finite (got {w[bad].item()} at edge {bad})")
    return w


def mask_nodes(mask: Any, num_nodes: int, name: str) -> Tensor:
    """The node ids of a boolean node mask ``[N]`` (as a sorted LongTensor)."""
    m = torch.as_tensor(mask).detach().cpu()
    if m.dtype != torch.bool or m.shape != (num_nodes,):
        raise DNWGraphError(
            f"'{name}' must be a BoolTensor of shape [num_nodes] = [{num_nodes}] "
            f"(got {m.dtype} {tuple(m.shape)})"
        )
    return m.nonzero().view(-1)


def node_set(nodes: Any, num_nodes: int, name: str) -> Tensor:
    """Check a user-given node set and return it as a sorted LongTensor."""
    arr = nodes.detach().cpu().numpy() if isinstance(nodes, Tensor) else np.asarray(nodes)
    arr = arr.reshape(-1) if arr.ndim == 0 else arr
    if arr.ndim != 1:
        raise DNWGraphError(f"'{name}' must be a 1-D list of node ids (got shape {arr.shape})")
    if arr.size == 0:
        raise DNWGraphError(f"'{name}' must name at least one node (got an empty list)")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise DNWGraphError(f"'{name}' must hold integer node ids (got dtype {arr.dtype})")
    out = arr[(arr < 0) | (arr >= num_nodes)]
    if out.size:
        raise DNWGraphError(
            f"'{name}' holds node id {int(out[0])} outside the valid range [0, {num_nodes})"
        )
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise DNWGraphError(f"'{name}' lists node {int(uniq[counts > 1][0])} more than once")
    return torch.from_numpy(uniq.astype(np.int64))


def topological_levels(ei: np.ndarray, num_nodes: int) -> np.ndarray:
    """Level of every node by Kahn's algorithm, one vectorised step per level.

    Level 0 holds the nodes of in-degree 0; level ``l + 1`` the nodes whose last predecessor
    sits in level ``l`` (the same generations as ``networkx.topological_generations``).
    Cost: one sort of the edges, then per level O(edges leaving it · log) or O(N), whichever
    is less.

    Raises:
        CycleError: if the graph has a directed cycle.
    """
    src, dst = ei
    if num_nodes <= 2**16:  # NumPy radix-sorts 16-bit keys (stable: O(E))
        order = np.argsort(src.astype(np.uint16), kind="stable")
    else:  # any order of the targets within a source will do
        order = np.argsort(src.astype(np.int32 if num_nodes < 2**31 else np.int64))
    targets = dst[order]
    ptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=num_nodes), out=ptr[1:])
    indeg = np.bincount(dst, minlength=num_nodes)
    level = np.full(num_nodes, -1, dtype=np.int64)
    frontier = np.flatnonzero(indeg == 0)
    depth = 0
    while frontier.size:
        level[frontier] = depth
        starts, counts = ptr[frontier], ptr[frontier + 1] - ptr[frontier]
        total = int(counts.sum())
        if total == 0:
            break
        # concatenated CSR ranges [starts[i], starts[i] + counts[i]) without a Python loop
        shift = np.repeat(starts - np.cumsum(counts) + counts, counts)
        reached = targets[shift + np.arange(total)]
        if total * 16 < num_nodes:  # few edges: count them by sorting
            hit, times = np.unique(reached, return_counts=True)
            indeg[hit] -= times
            frontier = hit[indeg[hit] == 0]
        else:  # many: one count over all nodes, no sort
            times = np.bincount(reached, minlength=num_nodes)
            indeg -= times
            frontier = np.flatnonzero((indeg == 0) & (times > 0))
        depth += 1
    if (level < 0).any():
        raise _cycle_error(ei, level < 0)
    return level


def _cycle_error(ei: np.ndarray, left: np.ndarray) -> CycleError:
    # Every node Kahn left behind has a predecessor that was also left behind, so walking
    # predecessors from any of them must close a cycle within num_nodes steps.
    src, dst = ei
    keep = left[src] & left[dst]
    pred = np.full(left.size, -1, dtype=np.int64)
    pred[dst[keep]] = src[keep]
    seen: dict[int, int] = {}
    walk: list[int] = []
    v = int(np.flatnonzero(left)[0])
    while v not in seen:
        seen[v] = len(walk)
        walk.append(v)
        v = int(pred[v])
    cycle = walk[seen[v] :][::-1]  # predecessors walked backwards -> reverse to follow edges
    start = cycle.index(min(cycle))
    cycle = cycle[start:] + cycle[:start]
    return CycleError(cycle[0], cycle + [cycle[0]])
