"""Parameters and multiply-adds of MobileNetV1-DNW by the paper's formula, and the counters
that make :func:`~dnwgraph.count_params` / :func:`~dnwgraph.count_macs` use it."""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import Tensor, nn

from dnwgraph.models.counting import Counter, register_counter
from dnwgraph.models.mobilenet.budget import _check_input_size, stem_stride
from dnwgraph.models.mobilenet.model import MobileNetV1DNW
from dnwgraph.models.mobilenet.stages import DepthwiseNodeOp, DNWClassifier, DNWStage


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
