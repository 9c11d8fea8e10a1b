r"""The static neural graph: a DAG of channel-nodes computed level by level."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError
from dnwgraph.graph import Wiring
from dnwgraph.models._graph import NeuralGraphClassifier
from dnwgraph.nn.levels import LevelExecutor
from dnwgraph.nn.node_ops import regroup_node_ops
from dnwgraph.nn.spec import WiringSpec, check_spec


class StaticNeuralGraph(NeuralGraphClassifier):
    r"""A static neural graph from *Discovering Neural Wirings* (Wortsman, Farhadi & Rastegari,
    NeurIPS 2019, https://arxiv.org/abs/1906.00586), section 2.1.

    Every node :math:`v` of an acyclic :class:`~dnwgraph.Wiring` is a channel.  The stem
    feeds the input nodes; a node's input and output are

    .. math::
        I_v = [v \in \text{inputs}]\, \mathrm{stem}(x)_v
              + \sum_{(u, v) \in \mathcal{A}} w_{uv} Z_u,
        \qquad Z_v = f_{\theta_v}(I_v)

    over the selected edges :math:`\mathcal{A}` (top-k by :math:`|w|` under ``dnw``).  Nodes
    run level by level (:class:`~dnwgraph.nn.levels.LevelExecutor`: one grouped node op and one
    fused sparse aggregation per topological level).  Output nodes are read as their aggregated
    inputs :math:`I_v` (no node op), pooled (:class:`~dnwgraph.models._graph.Readout`) and
    classified by a linear head.  Nodes without outgoing candidates have no node op.

    A node with no selected incoming edge (and no stem input) outputs
    :math:`\mathrm{conv}(\mathrm{gelu}(\beta_v))` with the default InstanceNorm → GELU → conv
    node op: zero while its norm shift :math:`\beta_v` is at its start, 0, so its outgoing
    edges get no gradient; :math:`\mathrm{gelu}'(0) = 1/2` still lets the straight-through
    gradient reach the candidate edges into it.

    Args:
        wiring (Wiring): acyclic candidate wiring with input and output nodes.
        spec (WiringSpec): the learned wiring's parameters: edge budget ``ratio`` (``int``:
            edges kept; ``float`` in (0, 1]: fraction of the candidates kept), ``selection``
            (``dnw``, ``dnw_no_update``, ``random``, ``complete``, ``fixed``, ``td`` or
            ``reg_td``) and its options (``seed`` for ``random``, ``mask`` for ``fixed``: a
            BoolTensor aligned with ``model.conv.edge_index``, ``drop_rate`` for ``td``),
            ``scope``, ``impl``, ``fan_in``, ``grad_every``, and the ``node_op`` of every node
            (e.g. ``"conv2d"``, ``"conv1d"``, ``"neuron"``) with its ``node_op_options``.
        stem (nn.Module, optional): ``[B, *]`` → ``[B, n_in, *S]``; ``None``: identity.
        num_classes (int, optional): outputs of the head. (default: ``10``)
        readout (str, optional): ``"mean"``, ``"max"`` or ``"centre"``. (default: ``"mean"``)
        input_shape (sequence of int, optional): per-sample input shape to check.

    Shapes:
        - **input:** :math:`[B, *]` (what the stem takes)
        - **output:** :math:`[B, \text{num\_classes}]`

    Raises:
        ValueError: a cyclic wiring, an unknown readout, a bad ratio, or (in forward) an input
            of the wrong shape.
        TypeError: a ``spec`` that is not a :class:`~dnwgraph.nn.WiringSpec`.

    Examples:
        >>> from dnwgraph import Wiring, WiringSpec
        >>> wiring = Wiring([(0, 2), (1, 2), (0, 3), (2, 3)])
        >>> model = StaticNeuralGraph(wiring, WiringSpec(3, node_op="neuron"), num_classes=2)
        >>> model(torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        wiring: Any,
        spec: WiringSpec,
        *,
        stem: nn.Module | None = None,
        num_classes: int = 10,
        readout: str = "mean",
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__(
            wiring, stem=stem, num_classes=num_classes, readout=readout, input_shape=input_shape
        )
        self.spec = check_spec(spec)
        #: the level-by-level run of the nodes
        self.executor = LevelExecutor(wiring, self.spec)
        # the input nodes are (among) the first level of a chain: the executor starts from
        # that level's features alone (the other nodes' zero inputs are never materialised)
        ex = self.executor
        first = ex.groups[0].cpu() if ex.chain is not None and ex.groups else None
        rows = _positions(self.input_nodes.cpu(), first)
        self._from_inputs = rows is not None
        #: the input nodes' rows among the first level's, when it has other nodes too
        self._input_rows: Tensor | None
        whole = rows is not None and rows.numel() == first.numel()  # type: ignore[union-attr]
        self.register_buffer("_input_rows", None if whole else rows, persistent=False)
        # the output nodes as a node range, when they are one (read without indexing)
        out = self.output_nodes
        lo = int(out[0]) if out.numel() else 0
        contiguous = out.numel() > 0 and torch.equal(out, torch.arange(lo, lo + out.numel()))
        self._output_rows = slice(lo, lo + out.numel()) if contiguous else None

    @property
    def conv(self) -> nn.Module:
        """The learned wiring (a :class:`~dnwgraph.WiringConv`)."""
        return self.executor.conv

    def forward(self, x: Tensor) -> Tensor:
        # only the output nodes' rows are assembled (and get a gradient buffer); a linear
        # readout is applied before the sums into them, which then run on pooled features
        x0 = self._first_level_inputs(x) if self._from_inputs else self.initial_state(x)
        rows = self.output_nodes if self._output_rows is None else self._output_rows
        if self.readout.linear:
            return self.head(self.executor(x0, rows=rows, pool=self.readout).t())
        return self.read_outputs(self.executor(x0, rows=rows))

    def _first_level_inputs(self, x: Tensor) -> Tensor:
        """The first level's initial features ``[|L_0|, B, *S]``: the stem output at the
        input nodes, zero at the level's other nodes."""
        s = self.input_features(x)
        if self._input_rows is None:  # the input nodes are the whole level
            return s
        size = self.executor.conv.source_groups.sizes[0]
        return s.new_zeros(size, *s.shape[1:]).index_copy_(0, self._input_rows, s)

    def node_outputs(self, x: Tensor) -> Tensor:
        """Every node's output :math:`Z_v` for the input ``x``, ``[N, B, *S]`` (nodes without a
        node op, such as the output nodes, give zeros)."""
        return self.executor.node_outputs(self.initial_state(x))

    def node_inputs(self, x: Tensor) -> Tensor:
        """What every node reads from its in-edges, :math:`I_v` (node-first ``[N, B, *]``)."""
        return self.executor(self.initial_state(x))

    # ------------------------------------------------------------------- compaction
    @torch.no_grad()
    def subgraph(self, node_mask: Tensor) -> StaticNeuralGraph:
        r"""The model restricted to the kept nodes, over the currently selected edges only.

        The new model's wiring holds exactly the selected edges whose two ends are kept
        (nodes renumbered level by level, ascending within a level, and the output nodes without
        out-edges last, so that every level is a range of ids and the executor runs the levels
        as a chain), with selection ``"complete"`` on it: a fixed sparse graph
        whose every edge is used.  Edge weights, node ops, stem and head are copied.  Removed
        input nodes leave their stem channel unused (the stem is kept whole; ``stem_index``
        records which channels feed the kept input nodes); removed output nodes drop their
        column of the head.  If the removed nodes cannot change the kept output nodes (e.g.
        nodes whose output is always zero, or that reach no output), the new model gives the
        same outputs in eval mode.  Nodes whose node op is no longer needed (no kept outgoing
        edge) lose it.

        Args:
            node_mask (BoolTensor): ``[N]``, ``True`` for the nodes to keep.

        Returns:
            StaticNeuralGraph: a new model (same device, dtype and train/eval mode).

        Raises:
            ValueError: a mask of the wrong shape or dtype, no kept input or output node, or no
                selected edge left among the kept nodes.

        Examples:
            >>> from dnwgraph import Wiring, WiringSpec
            >>> wiring = Wiring([(0, 2), (1, 2), (0, 3), (2, 3)])
            >>> spec = WiringSpec(4, node_op="neuron")
            >>> model = StaticNeuralGraph(wiring, spec, num_classes=2).eval()
            >>> small = model.subgraph(torch.tensor([True, True, True, True]))
            >>> x = torch.randn(3, 2)
            >>> torch.allclose(small(x), model(x))
            True
        """
        n = self.num_nodes
        mask = torch.as_tensor(node_mask)
        if mask.dtype != torch.bool or mask.shape != (n,):
            raise DNWGraphError(
                f"'node_mask' must be a BoolTensor of shape [{n}] "
                f"(got {mask.dtype} {tuple(mask.shape)})"
            )
        mask = mask.cpu()
        in_pos = mask[self.input_nodes.cpu()].nonzero().view(-1)
        out_pos = mask[self.output_nodes.cpu()].nonzero().view(-1)
        if in_pos.numel() == 0 or out_pos.numel() == 0:
            raise DNWGraphError(
                "'node_mask' must keep at least one input node and one output node (got "
                f"{in_pos.numel()} and {out_pos.numel()}; from compact(): no output node "
                "depends on an input node through the selected edges)"
            )
        conv = self.executor.conv
        active = conv.active_mask().cpu()
        ei = conv.edge_index.cpu()
        keep_e = active & mask[ei[0]] & mask[ei[1]]
        if not bool(keep_e.any()):
            raise DNWGraphError("no selected edge is left among the kept nodes")
        kept, new_id = _chain_numbering(mask, ei[:, keep_e], self.output_nodes.cpu())
        edge_index = new_id[ei[:, keep_e]]
        weights = conv.edge_weight.detach().cpu()[keep_e]
        wiring = Wiring(
            edge_index,
            int(kept.numel()),
            input_nodes=new_id[self.input_nodes.cpu()[in_pos]],
            output_nodes=new_id[self.output_nodes.cpu()[out_pos]],
        )
        # every kept edge is used: the budget and the selection's own options go
        spec = self.spec.replace(ratio=1.0, selection="complete", scope=None, selection_options={})
        new = StaticNeuralGraph(
            wiring,
            spec,
            stem=copy.deepcopy(self.stem),
            num_classes=self.num_classes,
            readout=self.readout.kind,
            input_shape=self.input_shape,
        )
        param = next(self.parameters())
        new.to(device=param.device, dtype=param.dtype)
        # the wiring holds its input and output nodes by ascending id: the new numbering may
        # order them unlike the old one, and their stem channels and head columns follow them
        in_pos = in_pos[torch.argsort(new_id[self.input_nodes.cpu()[in_pos]])]
        out_pos = out_pos[torch.argsort(new_id[self.output_nodes.cpu()[out_pos]])]
        new.stem_index.copy_(self.stem_index.cpu()[in_pos])
        new.executor.conv.edge_weight.copy_(weights[new.executor.conv.edge_perm.cpu()])
        new.head.weight.copy_(self.head.weight[:, out_pos.to(param.device)])
        new.head.bias.copy_(self.head.bias)

        olds = [kept[g.cpu()] for g in new.executor.groups]  # every new level's old ids
        ops = regroup_node_ops(self.executor.node_ops, self.executor.groups, olds)
        new.executor.node_ops = nn.ModuleList(ops).to(device=param.device, dtype=param.dtype)
        return new.train(self.training)


def _chain_numbering(mask: Tensor, edge_index: Tensor, outputs: Tensor) -> tuple[Tensor, Tensor]:
    """New numbering of the nodes of ``mask`` (``edge_index``: the edges among them, old ids):
    level by level (topological generations of these edges), ascending old id within a level,
    the output nodes without out-edges last.  Returns the old id of every new node and the new
    id of every old node (``-1`` for a node not kept)."""
    kept = mask.nonzero().view(-1)
    local = torch.cumsum(mask.long(), 0) - 1
    level = Wiring(local[edge_index], int(kept.numel())).node_level()
    last = torch.zeros(mask.numel(), dtype=torch.bool)
    last[outputs] = True
    last[edge_index[0]] = False
    level = torch.where(last[kept], int(level.max()) + 1, level)
    kept = kept[torch.argsort(level, stable=True)]
    new_id = torch.full((mask.numel(),), -1, dtype=torch.long)
    new_id[kept] = torch.arange(kept.numel())
    return kept, new_id


def _positions(nodes: Tensor, level: Tensor | None) -> Tensor | None:
    """The positions of ``nodes`` (ascending ids) among those of ``level`` (ascending ids),
    or ``None`` when some node is not in it."""
    if level is None or nodes.numel() > level.numel():
        return None
    pos = torch.searchsorted(level, nodes)
    inside = bool((pos < level.numel()).all())
    return pos if inside and torch.equal(level[pos], nodes) else None
