"""The blocks of MobileNetV1-DNW: a stage as one learned wiring, and the DNW classifier."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError
from dnwgraph.graph import Wiring, block_dag, layered
from dnwgraph.nn import LevelExecutor, WiringConv
from dnwgraph.nn.spec import WiringSpec, check_spec


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
        >>> import torch
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


def _reference_fan_in(spec: WiringSpec) -> WiringSpec:
    """``spec`` with the reference code's initial scale where it leaves ``fan_in`` to the
    model: a 1x1 convolution over all candidates (``fan_in="candidates"``)."""
    return spec.replace(fan_in="candidates") if spec.fan_in is None else spec


class DNWStage(LevelExecutor):
    r"""One MobileNetV1 stage as a learned wiring over full-width channel nodes.

    Node :math:`v` computes :math:`I_v = \sum_{(u,v) \in \mathcal{A}} w_{uv} Z_u` over the
    selected edges of a :func:`~dnwgraph.block_dag` with sizes ``[in, out x levels]``, level by
    level; input nodes and all levels but the last apply :class:`DepthwiseNodeOp` (the input
    nodes with the stage's stride).  The last level's :math:`I_v` is the stage output.

    The stage is a :class:`~dnwgraph.nn.LevelExecutor` whose node ops are these depthwise
    operations (``node_ops[0]`` the input nodes', ``node_ops[l]`` level :math:`l`'s), run from
    the input nodes' features only (the later nodes start at zero, at the strided resolution)
    and read at the last level.

    Args:
        in_channels (int): input nodes :math:`c_{in}`.
        out_channels (int): nodes per level :math:`c_{out}`.
        stride (int): stride of the input nodes' depthwise convolution.
        levels (int): :math:`\ell \ge 1`.
        spec (WiringSpec): the stage's :class:`~dnwgraph.WiringConv`: edge budget ``ratio``
            (``int``: edges kept; ``float`` in (0, 1]: fraction of the candidates kept),
            ``selection`` and its options, ``impl`` (``"auto"``: chosen by size;
            ``"sparse"``: fused sparse aggregation per level; ``"scatter"``: per-edge
            messages, a test oracle; ``"dense"``: the reference code's computation, one dense
            masked weight per level and dense 1x1 products, a baseline, slower on a CPU at
            paper scale, see ``docs/benchmarks.md``), ``fan_in`` (``None``: ``"candidates"``,
            the reference code's 1x1 convolution over all candidates) and ``grad_every``.
            Its node op is not used.

    Shapes:
        - **input:** node-first :math:`[c_{in}, B, H, W]`
        - **output:** node-first :math:`[c_{out}, B, H/s, W/s]`

    Examples:
        >>> import torch
        >>> from dnwgraph import WiringSpec
        >>> stage = DNWStage(4, 6, stride=2, levels=2, spec=WiringSpec(20))
        >>> stage(torch.randn(4, 2, 8, 8)).shape, stage.wiring.num_edges
        (torch.Size([6, 2, 4, 4]), 84)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        levels: int,
        spec: WiringSpec,
    ) -> None:
        spec = _reference_fan_in(check_spec(spec))
        if levels < 1:
            raise DNWGraphError(f"'levels' must be >= 1 (got {levels})")
        wiring = block_dag([in_channels] + [out_channels] * levels)

        def depthwise(sizes: list[int]) -> list[nn.Module]:
            ops: list[nn.Module] = [DepthwiseNodeOp(in_channels, stride)]
            return ops + [DepthwiseNodeOp(out_channels) for _ in sizes[1:]]

        super().__init__(wiring, spec, node_ops=depthwise)
        self.wiring: Wiring = wiring
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.levels = stride, levels

    def _rows(self, level: int) -> slice:
        start = self.in_channels + (level - 1) * self.out_channels
        return slice(start, start + self.out_channels)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if x.dim() != 4 or x.size(0) != self.in_channels:
            raise DNWGraphError(
                f"'x' must be node-first [{self.in_channels}, B, H, W] (got {tuple(x.shape)})"
            )
        # every impl (the reference code's dense masked weight included) is WiringConv's own
        return super().forward(x, rows=self._rows(self.levels))

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
        spec (WiringSpec): the :class:`~dnwgraph.WiringConv`'s edge budget ``ratio``
            (``int``: edges kept; ``float`` in (0, 1]: fraction of the candidates kept),
            selection, backend and initialisation (``fan_in=None``: ``"candidates"``); its
            node op is not used.

    Shapes:
        - **input:** node-first :math:`[\text{in\_features}, B]`
        - **output:** :math:`[B, \text{num\_classes}]`

    Examples:
        >>> import torch
        >>> from dnwgraph import WiringSpec
        >>> head = DNWClassifier(8, 3, WiringSpec(0.5))
        >>> head(torch.randn(8, 2)).shape, head.conv.k
        (torch.Size([2, 3]), 12)
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        spec: WiringSpec,
    ) -> None:
        super().__init__()
        self.spec = spec = _reference_fan_in(check_spec(spec))
        self.in_features, self.num_classes = in_features, num_classes
        self.wiring: Wiring = layered([in_features, num_classes])
        self.conv = WiringConv(
            self.wiring, spec.ratio, spec.selection, source_groups=self.wiring.levels()[:1],
            **spec.conv_kwargs(),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x, group=0)[self.in_features :].t()
