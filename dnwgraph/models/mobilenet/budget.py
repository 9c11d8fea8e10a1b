r"""The "x d" edge budget of MobileNetV1-DNW and the stage table it is computed from.

A stage keeps as many edges as MobileNetV1 at width :math:`d` has pointwise weights in that
stage, both channel counts scaled by :math:`d`:

.. math::
    k = \big\lceil d^2 \,\big(c_{in} c_{out} + (\ell - 1)\, c_{out}^2\big) \big\rceil

(the reference code's convention, ``prune_rate = 1 - d``).
"""

from __future__ import annotations

import math
from typing import Any

from dnwgraph.errors import DNWGraphError

#: MobileNetV1's resolution stages: (in channels, out channels, stride, levels).
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (32, 64, 1, 1),
    (64, 128, 2, 2),
    (128, 256, 2, 2),
    (256, 512, 2, 6),
    (512, 1024, 2, 2),
)


def _check_width(width: Any, name: str = "width") -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise DNWGraphError(
            f"'{name}' is the width d of the 'x d' budget and must be a float in (0, 1] "
            f"(got {width!r})"
        )
    return float(width)


def _check_input_size(input_size: Any) -> int:
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 32:
        raise DNWGraphError(
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
