"""Plain MobileNetV1 with a width multiplier, the paper's baseline."""

from __future__ import annotations

from torch import Tensor, nn

from dnwgraph.models.mobilenet.budget import _check_input_size, _check_width, stem_stride
from dnwgraph.models.pretrained import PretrainedMixin

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
        >>> import torch
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
