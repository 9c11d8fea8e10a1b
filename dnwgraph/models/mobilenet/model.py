"""MobileNetV1-DNW: the stem, the wired stages and the classifier (see the package docstring)."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.graph import Wiring
from dnwgraph.models._graph import check_batch
from dnwgraph.models.compact import compact
from dnwgraph.models.mobilenet.budget import (
    STAGES,
    _check_input_size,
    _check_width,
    stage_budget,
    stem_stride,
)
from dnwgraph.models.mobilenet.stages import DNWClassifier, DNWStage
from dnwgraph.models.pretrained import PretrainedMixin
from dnwgraph.nn.spec import WiringSpec, check_spec


def _budget(spec: WiringSpec, k: int, num_edges: int) -> WiringSpec:
    """``spec`` keeping ``k`` of ``num_edges`` edges; a per-node scope takes the same
    density per node, not a total."""
    if spec.selection == "reg_td" or spec.scope == "per_node":
        return spec.replace(ratio=k / num_edges)
    return spec.replace(ratio=k)


class MobileNetV1DNW(PretrainedMixin, nn.Module):
    r"""MobileNetV1 whose pointwise convolutions are learned wirings, one graph per stage.

    See the module docstring for the construction and the "x d" budget.

    Args:
        width (float, optional): the width :math:`d` of the budget: stage :math:`s` keeps
            :math:`\lceil d^2 P_s \rceil` edges, :math:`P_s` its pointwise weights in
            MobileNetV1 (the budget of a MobileNetV1 whose channels are all scaled by
            :math:`d`); the stages' own ``ratio`` is an edge budget, as everywhere else.
            (default: ``0.225``)
        num_classes (int, optional): classes. (default: ``10``)
        spec (WiringSpec, optional): the parameters of every wiring: ``selection`` (``dnw``,
            ``random``, ``dnw_no_update``, ``complete``, ``fixed``, ``td``, ``reg_td``) and its
            options (``seed`` for ``random``, ``drop_rate``, ...), ``scope``, ``impl``
            (``"dense"``: each stage as the reference code computes it, see
            :class:`DNWStage`), ``fan_in`` and ``grad_every``.  Its ``ratio`` is not used:
            every wiring's budget comes from ``width``. (default: ``None``,
            ``WiringSpec(1.0)``: ``dnw``, ``impl="auto"``)
        input_size (int, optional): image side; <= 64 gives a stride-1 stem (CIFAR), larger a
            stride-2 stem (ImageNet). (default: ``32``)
        small (bool, optional): the classifier is a DNW graph keeping
            :math:`\lceil d \cdot 1024 C \rceil` edges. (default: ``False``)
        stages (sequence, optional): ``(in, out, stride, levels)`` per stage.
            (default: :data:`STAGES`)

    Shapes:
        - **input:** :math:`[B, 3, H, W]`
        - **output:** :math:`[B, C]`

    Raises:
        ValueError: on a width outside (0, 1], an input size below 32, or stages whose
            channels do not chain.
        TypeError: a spec with ``node_op_options`` (the stages take none).

    Examples:
        >>> import torch
        >>> model = MobileNetV1DNW(0.225, num_classes=10, input_size=32)
        >>> [stage.conv.k for stage in model.stages]
        [104, 1245, 4977, 72991, 79627]
        >>> tiny = MobileNetV1DNW(0.5, stages=((4, 6, 1, 1), (6, 8, 2, 2)))
        >>> tiny(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        width: float = 0.225,
        num_classes: int = 10,
        spec: WiringSpec | None = None,
        *,
        input_size: int = 32,
        small: bool = False,
        stages: Sequence[tuple[int, int, int, int]] = STAGES,
    ) -> None:
        super().__init__()
        self.spec = spec = WiringSpec(1.0) if spec is None else check_spec(spec)
        if spec.node_op_options:  # its stages' operations are MobileNet's, not node ops
            raise DNWGraphTypeError(
                "MobileNetV1DNW takes no 'node_op_options': its stages are MobileNet's own "
                f"layers, not node ops (got {spec.node_op_options})"
            )
        self.width = _check_width(width)
        self.input_size = _check_input_size(input_size)
        self.num_classes, self.small = num_classes, small
        stages = tuple(tuple(s) for s in stages)  # type: ignore[misc]
        for (_, out, _, _), (nxt, *_) in zip(stages[:-1], stages[1:], strict=True):
            if out != nxt:
                raise DNWGraphError(
                    f"'stages' must chain: a stage ends with {out}, next takes {nxt}"
                )
        self.stage_config = stages
        first, last = stages[0][0], stages[-1][1]
        self.stem = nn.Conv2d(3, first, 3, stride=stem_stride(input_size), padding=1, bias=False)
        blocks = []
        for cin, cout, stride, levels in stages:
            k = stage_budget(cin, cout, levels, self.width)
            wiring_edges = levels * cin * cout + levels * (levels - 1) // 2 * cout**2
            blocks.append(DNWStage(cin, cout, stride, levels, _budget(spec, k, wiring_edges)))
        self.stages = nn.ModuleList(blocks)
        self.norm = nn.BatchNorm2d(last)
        self.classifier: nn.Module
        if small:
            k = math.ceil(self.width * last * num_classes - 1e-9)
            head = _budget(spec, k, last * num_classes)
            self.classifier = DNWClassifier(last, num_classes, head)
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
        with :func:`dnwgraph.models.compact.compact` per wiring.  Outputs are unchanged.

        Examples:
            >>> import torch
            >>> model = MobileNetV1DNW(0.5, stages=((4, 6, 1, 1), (6, 8, 2, 2))).eval()
            >>> small = model.compact_wirings()
            >>> x = torch.randn(2, 3, 32, 32)
            >>> small.stages[1].conv.num_edges, torch.allclose(small(x), model(x))
            (28, True)
        """
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
            raise DNWGraphError(f"'x' must have shape [B, 3, H, W] (got {tuple(x.shape)})")
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
