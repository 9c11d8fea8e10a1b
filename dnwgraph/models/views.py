"""One read-only view per learned wiring, whatever the object it came from.

Compaction (:mod:`dnwgraph.models.compact`) and every analysis function accept a
:class:`~dnwgraph.Wiring`, a :class:`~dnwgraph.WiringConv`, a whole model (every ``WiringConv``
inside it) or a wiring snapshot of a training run
(``{module_name: {"edge_index", "edge_weight", "active", "num_nodes"}}``), and turns it into a
list of :class:`WiringView` here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.graph import CycleError, Wiring
from dnwgraph.nn import WiringConv

SNAPSHOT_KEYS: tuple[str, ...] = ("edge_index", "edge_weight", "active", "num_nodes")


@dataclass(frozen=True)
class WiringView:
    """The candidate edges of one learned wiring, their weights and the selected ones.

    Attributes:
        module: name of the module in its model (``""`` for a bare wiring or layer).
        edge_index: candidate edges ``[2, E]`` (CPU, int64).
        weight: edge weights ``[E]`` (float, CPU), ``None`` for a :class:`Wiring` without
            ``edge_weight``.
        active: selected edges ``[E]`` (bool); all ``True`` for a bare :class:`Wiring`.
        num_nodes: number of nodes ``N``.
        input_nodes: nodes fed with data (sorted LongTensor).
        output_nodes: nodes read out (sorted LongTensor).
        level: topological level of every node in the candidate wiring ``[N]``, ``None`` when
            the candidates have a cycle (recurrent settings).
    """

    module: str
    edge_index: Tensor
    weight: Tensor | None
    active: Tensor
    num_nodes: int
    input_nodes: Tensor
    output_nodes: Tensor
    level: Tensor | None

    @property
    def acyclic(self) -> bool:
        return self.level is not None

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.size(1))

    @property
    def num_selected(self) -> int:
        return int(self.active.sum())

    @property
    def self_loops(self) -> bool:
        return bool((self.edge_index[0] == self.edge_index[1]).any())

    def selected(self) -> tuple[Tensor, Tensor]:
        """Selected edges ``[2, k]`` and their weights ``[k]`` (ones for a bare wiring)."""
        return self._selected

    @cached_property
    def _selected(self) -> tuple[Tensor, Tensor]:
        ids = self.active.nonzero().view(-1)
        ei = self.edge_index.index_select(1, ids)
        w = torch.ones(ids.numel()) if self.weight is None else self.weight.index_select(0, ids)
        return ei, w

    def role(self) -> list[str]:
        """``"input"``, ``"hidden"`` or ``"output"`` per node (input wins when both)."""
        roles = ["hidden"] * self.num_nodes
        for v in self.output_nodes.tolist():
            roles[v] = "output"
        for v in self.input_nodes.tolist():
            roles[v] = "input"
        return roles

    def node_mask(self, nodes: Tensor) -> Tensor:
        mask = torch.zeros(self.num_nodes, dtype=torch.bool)
        mask[nodes] = True
        return mask


def _structure(edge_index: Tensor, num_nodes: int) -> Any:
    """The candidates as a :class:`Wiring` (roles by degree), acyclic when they are a DAG."""
    self_loops = bool((edge_index[0] == edge_index[1]).any())
    if not self_loops:
        try:
            return Wiring(edge_index, num_nodes)
        except CycleError:
            pass
    return Wiring(edge_index, num_nodes, acyclic=False, self_loops=self_loops)


def _from_wiring(wiring: Any, module: str = "") -> WiringView:
    return WiringView(
        module=module,
        edge_index=wiring.edge_index.cpu(),
        weight=None if wiring.edge_weight is None else wiring.edge_weight.detach().float().cpu(),
        active=torch.ones(wiring.num_edges, dtype=torch.bool),
        num_nodes=wiring.num_nodes,
        input_nodes=wiring.input_nodes.cpu(),
        output_nodes=wiring.output_nodes.cpu(),
        level=wiring.node_level().cpu() if wiring.acyclic else None,
    )


def _with_edges(
    base: Any, module: str, edge_index: Tensor, weight: Tensor, active: Tensor
) -> WiringView:
    """A view with the roles and levels of the wiring ``base`` and the given edges."""
    return WiringView(
        module=module,
        edge_index=edge_index.detach().long().cpu(),
        weight=weight.detach().float().cpu(),
        active=active.detach().bool().cpu(),
        num_nodes=int(base.num_nodes),
        input_nodes=base.input_nodes.cpu(),
        output_nodes=base.output_nodes.cpu(),
        level=base.node_level().cpu() if base.acyclic else None,
    )


def _matching_wiring(conv: WiringConv, wirings: list[Any]) -> Any | None:
    """The model's own :class:`Wiring` whose candidates are exactly ``conv``'s, if any."""
    for w in wirings:
        if (
            w.num_nodes == conv.num_nodes
            and w.num_edges == conv.num_edges
            and torch.equal(w.edge_index.cpu()[:, conv.edge_perm.cpu()], conv.edge_index.cpu())
        ):
            return w
    return None


def _from_conv(conv: WiringConv, module: str, wirings: list[Any]) -> WiringView:
    base = _matching_wiring(conv, wirings) or _structure(conv.edge_index.cpu(), conv.num_nodes)
    with torch.no_grad():
        active = conv.active_mask()
    return _with_edges(base, module, conv.edge_index, conv.edge_weight, active)


def is_snapshot(obj: Any) -> bool:
    """Whether ``obj`` follows the wiring-snapshot format of training runs."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(v, Mapping) and set(SNAPSHOT_KEYS) <= set(v) for v in obj.values())
    )


def check_snapshot(obj: Any, source: str = "snapshot") -> None:
    """Raise a ``ValueError`` naming what is wrong with a snapshot dictionary."""
    if not isinstance(obj, Mapping) or not obj:
        raise DNWGraphError(
            f"{source}: a wiring snapshot must be a non-empty dict {{module_name: {{...}}}} "
            f"(got {type(obj).__name__})"
        )
    for name, entry in obj.items():
        if not isinstance(entry, Mapping) or not set(SNAPSHOT_KEYS) <= set(entry):
            got = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
            raise DNWGraphError(
                f"{source}: module {name!r} must hold keys {list(SNAPSHOT_KEYS)} (got {got})"
            )
        ei, w, a = entry["edge_index"], entry["edge_weight"], entry["active"]
        if not (isinstance(ei, Tensor) and ei.dim() == 2 and ei.size(0) == 2):
            shape = tuple(ei.shape) if isinstance(ei, Tensor) else type(ei).__name__
            raise DNWGraphError(f"{source}: {name!r} 'edge_index' must be [2, E] (got {shape})")
        e = ei.size(1)
        for key, t in (("edge_weight", w), ("active", a)):
            if not (isinstance(t, Tensor) and tuple(t.shape) == (e,)):
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise DNWGraphError(
                    f"{source}: {name!r} {key!r} must have shape [{e}] (got {shape})"
                )
        n = int(entry["num_nodes"])
        if e and (int(ei.min()) < 0 or int(ei.max()) >= n):
            raise DNWGraphError(
                f"{source}: {name!r} 'edge_index' holds node ids outside [0, {n}) "
                f"(got {int(ei.min())}..{int(ei.max())})"
            )


def snapshot_views(
    snapshot: Mapping[str, Mapping[str, Any]], reference: list[WiringView] | None = None
) -> list[WiringView]:
    """Views of a training snapshot; roles and levels come from ``reference`` (the model's views,
    matched by module name and node count) or,
    failing that, from the candidates' degrees."""
    check_snapshot(snapshot)
    ref = {v.module: v for v in reference or []}
    views = []
    for name, entry in snapshot.items():
        ei = entry["edge_index"].long().cpu()
        n = int(entry["num_nodes"])
        r = ref.get(name)
        base: Any = r if r is not None and r.num_nodes == n else _structure(ei, n)
        if isinstance(base, WiringView):
            views.append(
                WiringView(
                    name,
                    ei,
                    entry["edge_weight"].detach().float().cpu(),
                    entry["active"].bool().cpu(),
                    n,
                    base.input_nodes,
                    base.output_nodes,
                    base.level,
                )
            )
        else:
            views.append(_with_edges(base, name, ei, entry["edge_weight"], entry["active"]))
    return views


def wiring_views(obj: Any) -> list[WiringView]:
    """Turn a Wiring, a WiringConv, a model or a snapshot into views (one per wiring).

    Raises:
        TypeError: ``obj`` is none of these.
        ValueError: a model without any ``WiringConv``; a malformed snapshot.
    """
    if isinstance(obj, list) and obj and all(isinstance(v, WiringView) for v in obj):
        return obj
    if isinstance(obj, WiringView):
        return [obj]
    if isinstance(obj, Wiring):
        return [_from_wiring(obj)]
    if isinstance(obj, WiringConv):
        return [_from_conv(obj, "", [])]
    if isinstance(obj, nn.Module):
        wirings = [w for m in obj.modules() if isinstance(w := getattr(m, "wiring", None), Wiring)]
        views = [
            _from_conv(m, name, wirings)
            for name, m in obj.named_modules()
            if isinstance(m, WiringConv)
        ]
        if not views:
            raise DNWGraphError(
                f"model {type(obj).__name__} holds no WiringConv module: there is no learned "
                "wiring to analyse"
            )
        return views
    if isinstance(obj, Mapping):
        return snapshot_views(obj)
    raise DNWGraphTypeError(
        "expected a Wiring, a WiringConv, a model holding WiringConv modules or a wiring "
        f"snapshot dict (got {type(obj).__name__})"
    )


# --------------------------------------------------------------------------- reachability


def propagate(start: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    """Nodes reachable from ``start`` along ``src -> dst``: iterate one hop to a fixed point."""
    reached = start.clone()
    while True:
        hits = torch.zeros(reached.numel(), dtype=torch.long).index_add_(
            0, dst, reached[src].long()
        )
        new = reached | (hits > 0)
        if torch.equal(new, reached):
            return reached
        reached = new


def liveness(view: WiringView) -> tuple[Tensor, Tensor]:
    """Which nodes receive from an input and which reach an output over the selected edges.

    ``receives[v]``: some input node reaches :math:`v` (inputs themselves count);
    ``reaches[v]``: :math:`v` reaches some output node (outputs themselves count). Both are
    computed by repeating one-hop propagation until nothing changes, which also handles cycles.

    Returns:
        tuple[BoolTensor, BoolTensor]: ``receives [N]`` and ``reaches [N]``.

    Examples:
        >>> from dnwgraph import Wiring
        >>> from dnwgraph.models.views import wiring_views
        >>> w = Wiring([(0, 1), (2, 3)], input_nodes=[0, 2], output_nodes=[1])
        >>> [t.tolist() for t in liveness(wiring_views(w)[0])]
        [[True, True, True, True], [True, True, False, False]]
    """
    (src, dst), _ = view.selected()
    receives = propagate(view.node_mask(view.input_nodes), src, dst)
    reaches = propagate(view.node_mask(view.output_nodes), dst, src)
    return receives, reaches
