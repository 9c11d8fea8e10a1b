r"""MobileNetV1 with learned 1x1 wiring (the ImageNet model of *Discovering Neural Wirings*).

Wortsman, Farhadi & Rastegari, NeurIPS 2019 (https://arxiv.org/abs/1906.00586), Section 4.2.
Every resolution stage of MobileNetV1, given as ``(in, out, stride, levels)``::

    (32, 64, 1, 1), (64, 128, 2, 2), (128, 256, 2, 2), (256, 512, 2, 6), (512, 1024, 2, 2)

becomes **one wiring graph over full-width channel nodes** that replaces all of that stage's
pointwise (1x1) convolutions.  Nodes are the ``in`` input channels, then ``levels`` blocks of
``out`` channels (:func:`~dnwgraph.block_dag` with sizes ``[in, out, ..., out]``): candidate
edges go from the input nodes to every level and from every level to every later level, so a
stage has

.. math::
    E_{\text{cand}} = \ell \cdot c_{in} c_{out} + \tfrac{\ell(\ell-1)}{2} c_{out}^2

candidates.  The node operation is BatchNorm :math:`\to` ReLU :math:`\to` depthwise 3x3 (the
input nodes use the stage's strided depthwise convolution); the last level has no node
operation inside the stage (the next stage's input nodes apply it).  A stem convolution
3 :math:`\to` 32 comes first, BatchNorm :math:`\to` ReLU :math:`\to` global pooling
:math:`\to` classifier last.

**Edge budget, "x d".**  A stage keeps as many edges as MobileNetV1 at width :math:`d` has
pointwise weights in that stage, both channel counts scaled by :math:`d`:

.. math::
    k = \big\lceil d^2 \,\big(c_{in} c_{out} + (\ell - 1)\, c_{out}^2\big) \big\rceil

(the reference code's convention, ``prune_rate = 1 - d``).  The ``small`` variants make the
classifier a DNW graph too, keeping :math:`\lceil d \cdot 1024 \cdot C\rceil` of its weights.

Features run **node-first** (``[channels, batch, H, W]``) through the whole body: the
:class:`~dnwgraph.WiringConv` aggregates rows of that tensor directly, and BatchNorm and the
depthwise convolution work on views of it, so no permute is paid per level.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dnwgraph.graph import Wiring, block_dag, layered
from dnwgraph.models._graph import check_batch
from dnwgraph.models.counting import Counter, register_counter
from dnwgraph.models.pretrained import PretrainedMixin
from dnwgraph.models.registry import register_model
from dnwgraph.nn import WiringConv

#: MobileNetV1's resolution stages: (in channels, out channels, stride, levels).
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (32, 64, 1, 1),
    (64, 128, 2, 2),
    (128, 256, 2, 2),
    (256, 512, 2, 6),
    (512, 1024, 2, 2),
)
#: MobileNetV1's layers after the stem: (out channels, stride), width 1.
_DENSE_LAYERS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    *((512, 1),) * 5,
    (1024, 2),
    (1024, 1),
)


def _check_width(ratio: Any, name: str = "ratio") -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ValueError(
            f"'{name}' is the width d of the 'x d' budget and must be a float in (0, 1] "
            f"(got {ratio!r})"
        )
    return float(ratio)


def _check_input_size(input_size: Any) -> int:
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 32:
        raise ValueError(
            f"'input_size' must be an int >= 32, e.g. 32 (CIFAR) or 224 (ImageNet) "
            f"(got {input_size!r})"
        )
    return input_size


def stem_stride(input_size: int) -> int:
    """Stride of the stem: 1 for small images (<= 64 px, CIFAR), 2 otherwise (ImageNet)."""
    return 1 if input_size <= 64 else 2


def pointwise_weights(in_channels: int, out_channels: int, levels: int) -> int:
    r"""Pointwise weights of one MobileNetV1 stage at width 1:
    :math:`c_{in} c_{out} + (\ell - 1) c_{out}^2`.

    Examples:
        >>> pointwise_weights(256, 512, 6)
        1441792
    """
    return in_channels * out_channels + (levels - 1) * out_channels**2


def stage_budget(in_channels: int, out_channels: int, levels: int, width: float) -> int:
    r"""Edge budget of a stage in the "x d" convention:
    :math:`k = \lceil d^2 (c_{in} c_{out} + (\ell-1) c_{out}^2) \rceil`.

    Args:
        in_channels (int): :math:`c_{in}`.
        out_channels (int): :math:`c_{out}`.
        levels (int): :math:`\ell`, the stage's pointwise convolutions.
        width (float): :math:`d` in (0, 1].

    Raises:
        ValueError: if ``width`` is not in (0, 1].

    Examples:
        >>> stage_budget(32, 64, 1, 0.225)
        104
    """
    d = _check_width(width, "width")
    # 1e-9: 0.225**2 * P is not exact in binary; an integer product must not round up.
    return math.ceil(d * d * pointwise_weights(in_channels, out_channels, levels) - 1e-9)


class DepthwiseNodeOp(nn.Module):
    r"""Node operation of MobileNetV1-DNW, applied to node-first features:
    :math:`Z_v = \mathrm{DWConv}_{3\times 3}(\mathrm{ReLU}(\mathrm{BN}(I_v)))`.

    BatchNorm sees ``x`` as a ``[1, C, B*H, W]`` view (statistics over batch and space, as
    ``BatchNorm2d`` on ``[B, C, H, W]``); the depthwise convolution runs as one grouped
    convolution with ``C*B`` groups on a ``[1, C*B, H, W]`` view, its ``[C, 1, 3, 3]`` kernel
    repeated per sample.  Both give exactly the channel-major result without a permute.

    Args:
        channels (int): number of nodes :math:`C`.
        stride (int, optional): stride of the depthwise convolution. (default: ``1``)

    Shapes:
        - **input:** :math:`[C, B, H, W]`
        - **output:** :math:`[C, B, \lceil H/s \rceil, \lceil W/s \rceil]`

    Examples:
        >>> op = DepthwiseNodeOp(4, stride=2)
        >>> op(torch.randn(4, 2, 8, 8)).shape
        torch.Size([4, 2, 4, 4])
    """

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        self.norm = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(
            channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        c, b, h, w = x.shape
        y = F.relu(self.norm(x.reshape(1, c, b * h, w)))
        weight = self.conv.weight.repeat_interleave(b, dim=0) if b > 1 else self.conv.weight
        y = F.conv2d(y.view(1, c * b, h, w), weight, None, self.stride, 1, 1, c * b)
        return y.view(c, b, y.size(-2), y.size(-1))


class DNWStage(nn.Module):
    r"""One MobileNetV1 stage as a learned wiring over full-width channel nodes.

    Node :math:`v` computes :math:`I_v = \sum_{(u,v) \in \mathcal{A}} w_{uv} Z_u` over the
    selected edges of a :func:`~dnwgraph.block_dag` with sizes ``[in, out x levels]``, level by
    level; input nodes and all levels but the last apply :class:`DepthwiseNodeOp` (the input
    nodes with the stage's stride).  The last level's :math:`I_v` is the stage output.

    Args:
        in_channels (int): input nodes :math:`c_{in}`.
        out_channels (int): nodes per level :math:`c_{out}`.
        stride (int): stride of the input nodes' depthwise convolution.
        levels (int): :math:`\ell \ge 1`.
        ratio (int or float): edge budget of the stage's :class:`~dnwgraph.WiringConv`.
        selection (str, optional): selection strategy. (default: ``"dnw"``)
        impl (str, optional): ``"sparse"`` (fused sparse aggregation per level, the
            default), ``"scatter"`` (per-edge messages, a test oracle) or ``"dense"`` (the
            reference code's computation: one dense masked :math:`N \times N` weight per
            forward pass, dense 1x1 products per level; a baseline, slower on a CPU, see
            ``docs/benchmarks.md``). (default: ``"sparse"``)
        **selection_options: strategy options (``seed``, ``drop_rate``, ...).

    Shapes:
        - **input:** node-first :math:`[c_{in}, B, H, W]`
        - **output:** node-first :math:`[c_{out}, B, H/s, W/s]`

    Examples:
        >>> stage = DNWStage(4, 6, stride=2, levels=2, ratio=20)
        >>> stage(torch.randn(4, 2, 8, 8)).shape, stage.wiring.num_edges
        (torch.Size([6, 2, 4, 4]), 84)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        levels: int,
        ratio: int | float,
        selection: str = "dnw",
        *,
        impl: str = "sparse",
        **selection_options: Any,
    ) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"'levels' must be >= 1 (got {levels})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.levels = stride, levels
        self.wiring: Wiring = block_dag([in_channels] + [out_channels] * levels)
        groups = self.wiring.levels()
        self.conv = WiringConv(
            self.wiring, ratio, selection, source_groups=groups[:-1], impl=impl,
            fan_in="candidates", **selection_options,
        )  # fmt: skip
        self.input_op = DepthwiseNodeOp(in_channels, stride)
        self.level_ops = nn.ModuleList(DepthwiseNodeOp(out_channels) for _ in range(levels - 1))

    def _rows(self, level: int) -> slice:
        start = self.in_channels + (level - 1) * self.out_channels
        return slice(start, start + self.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.size(0) != self.in_channels:
            raise ValueError(
                f"'x' must be node-first [{self.in_channels}, B, H, W] (got {tuple(x.shape)})"
            )
        if self.conv.impl == "dense":
            return self._forward_dense(x)
        agg = self.conv(self.input_op(x), group=0)
        for i, op in enumerate(self.level_ops, start=1):
            agg = agg + self.conv(op(agg[self._rows(i)]), group=i)
        return agg[self._rows(self.levels)]

    def _forward_dense(self, x: Tensor) -> Tensor:
        """The stage as the reference code computes it: the masked weight as one dense
        ``[N, N]`` matrix per call, then a dense product per level."""
        conv = self.conv
        mask = conv.active_mask()
        w = conv.edge_weight
        if conv.selection.straight_through:  # value w*m, gradient 1 for every candidate
            eff = torch.where(mask, w, w - w.detach())
        else:
            eff = w * mask
        src, dst = conv.edge_index
        dense = w.new_zeros(conv.num_nodes, conv.num_nodes).index_put((dst, src), eff)
        z = self.input_op(x)
        cin, cout = self.in_channels, self.out_channels
        agg = dense[:, :cin] @ z.reshape(cin, -1)
        for i, op in enumerate(self.level_ops, start=1):
            rows = self._rows(i)
            zi = op(agg[rows].view(cout, *z.shape[1:]))
            agg = agg + dense[:, rows] @ zi.reshape(cout, -1)
        return agg[self._rows(self.levels)].view(cout, *z.shape[1:])

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"stride={self.stride}, levels={self.levels}"
        )


class DNWClassifier(nn.Module):
    r"""A classifier whose weights are a learned wiring: :func:`~dnwgraph.layered`
    ``[in_features, num_classes]`` (a bipartite graph, no bias), the ``small`` variants' head.

    Args:
        in_features (int): input nodes.
        num_classes (int): output nodes.
        ratio (int or float): edge budget.
        selection (str, optional): selection strategy. (default: ``"dnw"``)
        impl (str, optional): ``WiringConv`` implementation. (default: ``"sparse"``)
        **selection_options: strategy options.

    Shapes:
        - **input:** node-first :math:`[\text{in\_features}, B]`
        - **output:** :math:`[B, \text{num\_classes}]`

    Examples:
        >>> head = DNWClassifier(8, 3, ratio=0.5)
        >>> head(torch.randn(8, 2)).shape, head.conv.k
        (torch.Size([2, 3]), 12)
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        ratio: int | float,
        selection: str = "dnw",
        *,
        impl: str = "sparse",
        **selection_options: Any,
    ) -> None:
        super().__init__()
        self.in_features, self.num_classes = in_features, num_classes
        self.wiring: Wiring = layered([in_features, num_classes])
        self.conv = WiringConv(
            self.wiring, ratio, selection, source_groups=self.wiring.levels()[:1], impl=impl,
            fan_in="candidates", **selection_options,
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x, group=0)[self.in_features :].t()


def _selection_ratio(k: int, num_edges: int, selection: str, options: dict[str, Any]) -> Any:
    # A per-node scope takes a fraction per node, not a total.
    if selection == "reg_td" or options.get("scope") == "per_node":
        return k / num_edges
    return k


class MobileNetV1DNW(PretrainedMixin, nn.Module):
    r"""MobileNetV1 whose pointwise convolutions are learned wirings, one graph per stage.

    See the module docstring for the construction and the "x d" budget.

    Args:
        ratio (float, optional): the width :math:`d` of the budget: stage :math:`s` keeps
            :math:`\lceil d^2 P_s \rceil` edges, :math:`P_s` its pointwise weights in
            MobileNetV1. (default: ``0.225``)
        num_classes (int, optional): classes. (default: ``10``)
        selection (str, optional): selection strategy of every wiring (``dnw``, ``random``,
            ``dnw_no_update``, ``complete``, ``fixed``, ``td``, ``reg_td``). (default: ``"dnw"``)
        impl (str, optional): ``"sparse"``, ``"scatter"`` or ``"dense"`` (each stage as the
            reference code computes it, see :class:`DNWStage`). (default: ``"sparse"``)
        input_size (int, optional): image side; <= 64 gives a stride-1 stem (CIFAR), larger a
            stride-2 stem (ImageNet). (default: ``32``)
        small (bool, optional): the classifier is a DNW graph keeping
            :math:`\lceil d \cdot 1024 C \rceil` edges. (default: ``False``)
        stages (sequence, optional): ``(in, out, stride, levels)`` per stage.
            (default: :data:`STAGES`)
        **selection_options: strategy options (``seed`` for ``random``, ``drop_rate``, ...).

    Shapes:
        - **input:** :math:`[B, 3, H, W]`
        - **output:** :math:`[B, C]`

    Raises:
        ValueError: on a ratio outside (0, 1], an input size below 32, or stages whose
            channels do not chain.

    Examples:
        >>> model = MobileNetV1DNW(0.225, num_classes=10, input_size=32)
        >>> [stage.conv.k for stage in model.stages]
        [104, 1245, 4977, 72991, 79627]
        >>> tiny = MobileNetV1DNW(0.5, stages=((4, 6, 1, 1), (6, 8, 2, 2)))
        >>> tiny(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        ratio: float = 0.225,
        num_classes: int = 10,
        selection: str = "dnw",
        impl: str = "sparse",
        input_size: int = 32,
        small: bool = False,
        stages: Sequence[tuple[int, int, int, int]] = STAGES,
        **selection_options: Any,
    ) -> None:
        super().__init__()
        self.width = _check_width(ratio)
        self.input_size = _check_input_size(input_size)
        self.num_classes, self.small = num_classes, small
        stages = tuple(tuple(s) for s in stages)  # type: ignore[misc]
        for (_, out, _, _), (nxt, *_) in zip(stages[:-1], stages[1:], strict=True):
            if out != nxt:
                raise ValueError(f"'stages' must chain: a stage ends with {out}, next takes {nxt}")
        self.stage_config = stages
        first, last = stages[0][0], stages[-1][1]
        self.stem = nn.Conv2d(3, first, 3, stride=stem_stride(input_size), padding=1, bias=False)
        blocks = []
        for cin, cout, stride, levels in stages:
            k = stage_budget(cin, cout, levels, self.width)
            wiring_edges = levels * cin * cout + levels * (levels - 1) // 2 * cout**2
            r = _selection_ratio(k, wiring_edges, selection, selection_options)
            blocks.append(
                DNWStage(cin, cout, stride, levels, r, selection, impl=impl, **selection_options)
            )
        self.stages = nn.ModuleList(blocks)
        self.norm = nn.BatchNorm2d(last)
        self.classifier: nn.Module
        if small:
            k = math.ceil(self.width * last * num_classes - 1e-9)
            r = _selection_ratio(k, last * num_classes, selection, selection_options)
            self.classifier = DNWClassifier(
                last, num_classes, r, selection, impl=impl, **selection_options
            )
        else:
            self.classifier = nn.Linear(last, num_classes)

    @property
    def wirings(self) -> list[Wiring]:
        """The candidate wiring of every stage (and of the classifier when ``small``)."""
        mods = [*self.stages, self.classifier] if self.small else list(self.stages)
        return [m.wiring for m in mods]  # type: ignore[misc]

    def compact_wirings(self) -> MobileNetV1DNW:
        """A copy for inference whose wirings hold only their selected edges (same nodes, same
        weights, ``complete`` selection: no top-k per call, E candidates shrink to k), made
        with :func:`dnwgraph.compact` per wiring.  Outputs are unchanged.

        Examples:
            >>> model = MobileNetV1DNW(0.5, stages=((4, 6, 1, 1), (6, 8, 2, 2))).eval()
            >>> small = model.compact_wirings()
            >>> x = torch.randn(2, 3, 32, 32)
            >>> small.stages[1].conv.num_edges, torch.allclose(small(x), model(x))
            (28, True)
        """
        from dnwgraph.analysis import compact  # analysis builds on models: import lazily

        model = copy.deepcopy(self)  # a copied PlanCache drops its plans (sparse tensors)
        for stage in model.stages:
            stage.conv = compact(stage.conv)
        if self.small:
            head = cast(DNWClassifier, model.classifier)
            head.conv = compact(head.conv)
        return model

    def forward_features(self, x: Tensor) -> Tensor:
        """Node-first features after the last stage's BN and ReLU, ``[1024, B, h, w]``."""
        check_batch(x, next(self.parameters()).dtype, "[B, 3, H, W]")
        if x.dim() != 4 or x.size(1) != 3:
            raise ValueError(f"'x' must have shape [B, 3, H, W] (got {tuple(x.shape)})")
        z = self.stem(x).transpose(0, 1).contiguous()
        for stage in self.stages:
            z = stage(z)
        c, b, h, w = z.shape
        return F.relu(self.norm(z.reshape(1, c, b * h, w))).view(c, b, h, w)

    def forward(self, x: Tensor) -> Tensor:
        z = self.forward_features(x).mean(dim=(2, 3))  # [C, B]
        if self.small:
            return self.classifier(z)
        return self.classifier(z.t())


def paper_counts(model: MobileNetV1DNW, input_size: int | None = None) -> dict[str, int]:
    r"""Parameters and multiply-adds of a :class:`MobileNetV1DNW` by the paper's formula.

    The reference code's profiling rule, per stage at its output resolution :math:`s`:
    every selected edge costs 1 parameter and :math:`s^2` MACs; the depthwise 3x3 of a node
    costs 9 parameters and :math:`9 s^2` MACs, counted only when the node has a selected
    outgoing edge (a node without one is dead and removed by compaction); the stem counts only
    the first stage's input nodes that have an output, the global pool one add per pixel of
    every final node with an input, the classifier its used weights (no bias, no BatchNorm).

    Args:
        model (MobileNetV1DNW): the model.
        input_size (int, optional): image side; default: the model's ``input_size``.

    Returns:
        dict: ``params``, ``macs``, ``edges`` (selected edges of all wirings) and
        ``candidates`` (candidate edges of all wirings).

    Examples:
        >>> counts = paper_counts(MobileNetV1DNW(0.225, num_classes=1000, input_size=224))
        >>> counts["edges"]
        158944
    """
    size = model.input_size if input_size is None else _check_input_size(input_size)
    spatial = math.ceil(size / stem_stride(size))
    params = macs = edges = candidates = 0
    final_alive: Tensor | None = None
    for i, module in enumerate(model.stages):
        stage = cast(DNWStage, module)
        spatial = math.ceil(spatial / stage.stride)
        conv = stage.conv
        active = conv.active_mask()
        src, dst = conv.edge_index[:, active]
        n = conv.num_nodes
        has_out = torch.bincount(src, minlength=n) > 0
        has_in = torch.bincount(dst, minlength=n) > 0
        k = int(active.sum())
        with_op = int(has_out[: n - stage.out_channels].sum())
        params += k + 9 * with_op
        macs += (k + 9 * with_op) * spatial**2
        edges, candidates = edges + k, candidates + conv.num_edges
        if i == 0:
            stem_out = int(has_out[: stage.in_channels].sum())
            stem_macs_per_px = model.stem.in_channels * 9 * stem_out
            params += stem_macs_per_px
            macs += stem_macs_per_px * math.ceil(size / stem_stride(size)) ** 2
        final_alive = has_in[n - stage.out_channels :]
    assert final_alive is not None
    alive = int(final_alive.sum())
    macs += alive * spatial**2
    if model.small:
        head = cast(DNWClassifier, model.classifier).conv
        k = int(head.active_mask().sum())
        edges, candidates = edges + k, candidates + head.num_edges
    else:
        k = alive * model.num_classes
    params += k
    macs += k
    return {"params": params, "macs": macs, "edges": edges, "candidates": candidates}


@register_counter(MobileNetV1DNW)
class _MobileNetV1DNWCounter(Counter):
    """:func:`~dnwgraph.count_params` / :func:`~dnwgraph.count_macs` of a MobileNetV1-DNW
    follow the paper's formula (:func:`paper_counts`) at the input's resolution."""

    def params(self, module: nn.Module) -> int:
        return paper_counts(module)["params"]  # type: ignore[arg-type]

    def macs(
        self, module: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> int:
        x: Tensor = inputs[0]
        return paper_counts(module, x.size(-1))["macs"] * x.size(0)  # type: ignore[arg-type]


@register_counter(DepthwiseNodeOp)
class _DepthwiseNodeOpCounter(Counter):
    """Every parameter; MACs: the depthwise 3x3 (9 per output element) and the affine
    BatchNorm (1 per input element), as for the equivalent ``nn`` modules."""

    def macs(
        self, module: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> int:
        return 9 * output.numel() + inputs[0].numel()


class MobileNetV1(PretrainedMixin, nn.Module):
    r"""Plain MobileNetV1 (Howard et al., 2017) with a width multiplier: the paper's baseline.

    Stem 3x3 conv, then 13 depthwise-separable blocks (depthwise 3x3 → BN → ReLU → pointwise
    1x1 → BN → ReLU), global pooling and a linear classifier.  At width 0.25 on 224 px it has
    0.47M parameters and 41M multiply-adds with 1000 classes (the paper's "MobileNetV1 x0.25").
    A natural target for :func:`~dnwgraph.sparsify`.

    Args:
        width (float, optional): channel multiplier. (default: ``1.0``)
        num_classes (int, optional): classes. (default: ``10``)
        input_size (int, optional): image side; <= 64 gives a stride-1 stem. (default: ``32``)

    Shapes:
        - **input:** :math:`[B, 3, H, W]`
        - **output:** :math:`[B, C]`

    Raises:
        ValueError: on a width outside (0, 1] or an input size below 32.

    Examples:
        >>> MobileNetV1(0.25)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, width: float = 1.0, num_classes: int = 10, input_size: int = 32) -> None:
        super().__init__()
        self.width = _check_width(width, "width")
        self.input_size = _check_input_size(input_size)
        c = int(32 * width)
        layers: list[nn.Module] = [
            nn.Conv2d(3, c, 3, stride=stem_stride(input_size), padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        ]
        for out, stride in _DENSE_LAYERS:
            out = int(out * width)
            layers += [
                nn.Conv2d(c, c, 3, stride=stride, padding=1, groups=c, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, out, 1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            c = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


# ------------------------------------------------------------------------------- presets
def _dnw_preset(
    default_ratio: float, *, small: bool = False, default_selection: str = "dnw"
) -> Any:
    def factory(
        num_classes: int = 10,
        selection: str = default_selection,
        ratio: float = default_ratio,
        impl: str = "sparse",
        input_size: int = 32,
        **selection_options: Any,
    ) -> MobileNetV1DNW:
        return MobileNetV1DNW(
            ratio, num_classes, selection, impl, input_size, small=small, **selection_options
        )

    head = "a DNW-graph classifier" if small else "a dense linear classifier"
    factory.__doc__ = (
        f"MobileNetV1-DNW x{default_ratio} ({default_selection} wiring, {head}); "
        f"see :class:`MobileNetV1DNW`."
    )
    return factory


for _name, _ratio, _small, _sel in (
    ("mobilenetv1_dnw_x225", 0.225, False, "dnw"),
    ("mobilenetv1_dnw_x3", 0.3, False, "dnw"),
    ("mobilenetv1_dnw_x49", 0.49, False, "dnw"),
    ("mobilenetv1_dnw_small_x15", 0.15, True, "dnw"),
    ("mobilenetv1_dnw_small_x225", 0.225, True, "dnw"),
    ("mobilenetv1_random_x225", 0.225, False, "random"),
    ("mobilenetv1_random_x49", 0.49, False, "random"),
):
    register_model(_name)(_dnw_preset(_ratio, small=_small, default_selection=_sel))


@register_model("mobilenetv1_x25")
def mobilenetv1_x25(
    num_classes: int = 10, input_size: int = 32, width: float = 0.25
) -> MobileNetV1:
    """Plain MobileNetV1 x0.25, the paper's baseline; see :class:`MobileNetV1`."""
    return MobileNetV1(width, num_classes, input_size)
