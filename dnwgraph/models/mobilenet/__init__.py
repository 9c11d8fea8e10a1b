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

The package: :mod:`~dnwgraph.models.mobilenet.budget` (the stage table and the budget),
:mod:`~dnwgraph.models.mobilenet.stages` (:class:`DNWStage`, :class:`DNWClassifier`),
:mod:`~dnwgraph.models.mobilenet.model` (:class:`MobileNetV1DNW`),
:mod:`~dnwgraph.models.mobilenet.counts` (:func:`paper_counts` and the counters),
:mod:`~dnwgraph.models.mobilenet.baseline` (:class:`MobileNetV1`) and
:mod:`~dnwgraph.models.mobilenet.presets` (the registered models).

Features run **node-first** (``[channels, batch, H, W]``) through the whole body: the
:class:`~dnwgraph.WiringConv` aggregates rows of that tensor directly, and BatchNorm and the
depthwise convolution work on views of it, so no permute is paid per level.
"""

from dnwgraph.models.mobilenet import presets as _presets  # noqa: F401  (registers the presets)
from dnwgraph.models.mobilenet.baseline import MobileNetV1
from dnwgraph.models.mobilenet.budget import STAGES, pointwise_weights, stage_budget, stem_stride
from dnwgraph.models.mobilenet.counts import paper_counts
from dnwgraph.models.mobilenet.model import MobileNetV1DNW
from dnwgraph.models.mobilenet.stages import DepthwiseNodeOp, DNWClassifier, DNWStage

__all__ = [
    "MobileNetV1DNW",
    "MobileNetV1",
    "DNWStage",
    "DNWClassifier",
    "DepthwiseNodeOp",
    "STAGES",
    "pointwise_weights",
    "stage_budget",
    "stem_stride",
    "paper_counts",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
