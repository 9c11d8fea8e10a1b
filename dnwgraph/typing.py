"""Type aliases shared across dnwgraph."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any, Literal, Protocol, runtime_checkable

from torch import Tensor

#: ``int`` keeps exactly that many edges; ``float`` in (0, 1] keeps that fraction (density).
Ratio = int | float
#: Where the top-k budget applies: over all candidate edges, or per target node (in-degree).
Scope = Literal["global", "per_node"]
#: A list of ``(source, target)`` pairs.
EdgeList = Sequence[tuple[int, int]]
#: Anything a :class:`~dnwgraph.Wiring` can be built from.
EdgeIndexLike = Tensor | EdgeList
PathLikeStr = str | PathLike[str]
#: A set of node ids: a 1-D LongTensor or a sequence of ints.
NodesLike = Tensor | Sequence[int]


@runtime_checkable
class WiringLike(Protocol):
    """What a layer needs of a wiring: ``edge_index`` ``[2, E]`` and ``num_nodes``
    (:class:`~dnwgraph.Wiring` or a :class:`torch_geometric.data.Data`)."""

    edge_index: Any
    num_nodes: Any
