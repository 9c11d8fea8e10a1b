r"""Inference of a deep static wiring by the levels of its selected edges.

A :class:`~dnwgraph.nn.LevelExecutor` runs the topological levels of the *candidates*, since
any of them may be selected after the next step.  In inference the selection is fixed, and the
selected edges :math:`\mathcal{A}` alone form a far shallower DAG: a random DAG of 8,192 nodes
whose candidates have 480 levels keeps 35 with 5 % of its edges.  With hundreds of small
levels, each level's fixed cost (a node op call, a copy, a bag sum) is most of an evaluation,
so an evaluation by the levels :math:`L'_0, L'_1, \dots` of :math:`\mathcal{A}` computes

.. math::
    Z_{L'_j} = f_{L'_j}\big(I_{L'_j}\big), \qquad
    I_v = X_v + \sum_{(u, v) \in \mathcal{A}} w_{uv} Z_u

with the same nodes, weights and node parameters: the same outputs, up to the order of the
sums.  :class:`SelectedLevels` is that evaluation: an executor over the same nodes whose
candidates are the selected edges (all kept), built once per weight state, and node ops that
regroup the owner's nodes by the new levels (:func:`~dnwgraph.nn.regroup_node_ops`), whose
parameters and buffers are copied from the owner's at every call (a few gathers: the node ops
may have changed since, e.g. trained with the wiring fixed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrize import ParametrizationList

from dnwgraph.errors import DNWGraphError
from dnwgraph.graph import Wiring
from dnwgraph.nn.node_ops import NodeOp, regroup_node_ops, stacked_rows

#: The selected edges run by their own levels when those are at most ``1 / MIN_SHRINK`` of
#: the candidates' executed levels.
MIN_SHRINK = 4


class NodeOpState(NamedTuple):
    """What a run by the selected levels reads of the owner's node ops at every call."""

    modules: tuple[nn.Module, ...]  #: every module of every op, in the order of a walk
    tensors: list[list[Tensor]]  #: every op's parameters and buffers, in one order for all


def node_op_state(ops: Sequence[nn.Module]) -> NodeOpState | None:
    """The modules and tensors of the node ops, or ``None`` when they cannot be regrouped:
    not all :class:`~dnwgraph.nn.NodeOp` of one kind and configuration, a module in
    training mode (a norm updating its statistics), with forward hooks (they would see
    other calls than the levels') or a parametrization (its tensors are computed)."""
    first = ops[0] if ops else None
    if not isinstance(first, NodeOp):
        return None
    kind, config = type(first), first.config
    modules: list[nn.Module] = []
    tensors = []
    for op in ops:
        if type(op) is not kind or op.config != config:  # type: ignore[attr-defined]
            return None
        found = _walk(op, modules)
        if found is None:
            return None
        tensors.append(found)
    return NodeOpState(tuple(modules), tensors)


def _walk(module: nn.Module, modules: list[nn.Module]) -> list[Tensor] | None:
    # the module's own dicts, read directly: this runs at every call, for every level's op
    found: list[Tensor] = []
    stack = [module]
    while stack:
        m = stack.pop()
        parametrized = type(m) is ParametrizationList  # under a parametrized module
        if m.training or m._forward_hooks or m._forward_pre_hooks or parametrized:
            return None
        modules.append(m)
        for t in m._parameters.values():
            if t is not None:
                found.append(t)
        for b in m._buffers.values():
            if b is not None:
                found.append(b)
        if m._modules:
            stack.extend(c for c in m._modules.values() if c is not None)
    return found


class SelectedLevels:
    r"""The selected edges of one weight state, run by their own levels over the same nodes.

    Args:
        owner (LevelExecutor): the executor whose selection is run (not changed).
        mask (BoolTensor): its selected candidates ``[E]``.
        wiring (Wiring): the selected edges over the owner's nodes.
        make (callable): ``make(wiring, spec, node_ops=...)`` builds an executor (the
            owner's class).
        state (NodeOpState): the owner's node ops now.

    Calling it is :meth:`LevelExecutor.forward <dnwgraph.nn.LevelExecutor.forward>` for
    every node's inputs ``x`` ``[N, B, *S]`` (with ``rows`` and ``pool``), after
    :meth:`refresh` with the owner's node ops' state.

    Example:
        >>> from dnwgraph import Wiring, WiringSpec
        >>> from dnwgraph.nn import LevelExecutor
        >>> edges = [(i, i + 1) for i in range(11)] + [(0, k) for k in range(2, 12)]
        >>> ex = LevelExecutor(Wiring(edges, 12), WiringSpec(11, node_op="neuron")).eval()
        >>> with torch.no_grad():  # node 0's edges selected: 1 level of the candidates' 11
        ...     _ = ex.conv.edge_weight.copy_((ex.conv.edge_index[0] == 0) + 0.1)
        >>> x = torch.randn(12, 2)
        >>> with torch.no_grad():
        ...     first, second = ex(x), ex(x)  # the candidates' levels, then the selected ones
        >>> selected = ex.conv.plan_cache.plans["selected levels"]
        >>> len(selected.executor.node_ops) < len(ex.node_ops), torch.allclose(first, second)
        (True, True)
    """

    @classmethod
    def build(
        cls, owner: Any, mask: Tensor, make: Callable[..., Any], state: NodeOpState
    ) -> SelectedLevels | None:
        """The run of ``owner``'s selected edges ``mask``, or ``None`` when they have more
        than ``1 /`` :data:`MIN_SHRINK` of its executed levels (the fewer levels would not
        pay for the regrouping and the every-node inputs) or a node op cannot be regrouped
        (:func:`~dnwgraph.nn.concat_node_ops`: changed after it was built)."""
        wiring = Wiring(owner.conv.edge_index[:, mask].cpu(), owner.num_nodes)
        operating = wiring.out_degree().cpu() > 0
        depth = sum(1 for level in wiring.levels() if bool(operating[level].any()))
        if MIN_SHRINK * depth > len(owner.groups):
            return None
        try:
            with torch.random.fork_rng(devices=[]):  # built, then overwritten: no draws
                return cls(owner, mask, wiring, make, state)
        except DNWGraphError:  # an op changed after it was built: not regrouped faithfully
            return None

    def __init__(
        self, owner: Any, mask: Tensor, wiring: Wiring, make: Callable[..., Any], state: Any
    ) -> None:
        weight = owner.conv.edge_weight.detach()
        spec = owner.spec.replace(ratio=1.0, selection="complete", scope=None, selection_options={})
        self.executor = ex = make(wiring, spec, node_ops=lambda n: [nn.Identity()] * len(n))
        ex.node_ops = nn.ModuleList(regroup_node_ops(list(owner.node_ops), owner.groups, ex.groups))
        ex.to(weight.device).eval().conv.to(weight.dtype)
        with torch.no_grad():
            ex.conv.edge_weight.copy_(weight[mask][ex.conv.edge_perm])
        row = stacked_rows(owner.groups, owner.num_nodes)  # in the owner's ops, in order
        self.rows = [row[g.cpu()].to(weight.device) for g in ex.groups]
        self.modules = state.modules  # the owner's node ops it was built for
        self.tensors = cast(NodeOpState, node_op_state(list(ex.node_ops))).tensors

    @torch.no_grad()
    def refresh(self, state: NodeOpState) -> None:
        """Copy the owner's node parameters and buffers into the new ops: one concatenation
        per tensor of an op and one gather per new op (a scalar, e.g. BatchNorm's step
        count, is the first op's)."""
        for slot, per_op in enumerate(zip(*state.tensors, strict=True)):
            every = torch.cat(per_op) if per_op[0].dim() else None
            for rows, mine in zip(self.rows, self.tensors, strict=True):
                if every is None:
                    mine[slot].copy_(per_op[0])
                else:
                    torch.index_select(every, 0, rows, out=mine[slot])

    def __call__(self, x: Tensor, rows: Any, pool: Any) -> Tensor:
        return self.executor(x, rows, pool)
