"""What every neural-graph classifier shares: stem → input nodes, output nodes → readout → head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dnwgraph._tracing import static_shape
from dnwgraph.errors import DNWGraphError, DNWGraphTypeError
from dnwgraph.graph import Wiring
from dnwgraph.models._arguments import stem_builder
from dnwgraph.models.pretrained import PretrainedMixin

READOUTS: tuple[str, ...] = ("mean", "max", "centre")


def check_batch(x: Any, dtype: torch.dtype, shape: str = "[B, *]") -> None:
    """Check a model input once, at its entry: a tensor of the parameters' floating dtype
    holding at least one sample.

    Raises:
        DNWGraphTypeError: ``x`` is not a tensor.
        DNWGraphError: an empty batch, or another dtype (float64 or integer input; the message
            says how to convert).
    """
    from dnwgraph.errors import DNWGraphError

    if not isinstance(x, Tensor):
        raise DNWGraphTypeError(f"'x' must be a Tensor {shape} (got {type(x).__name__})")
    if x.dim() == 0 or static_shape(x)[0] == 0:
        raise DNWGraphError(
            f"'x' must hold at least one sample {shape} (got shape {tuple(x.shape)})"
        )
    if x.dtype != dtype:
        how = f"x.to({dtype})" + ("" if not x.is_floating_point() else f" or model.to({x.dtype})")
        raise DNWGraphError(
            f"'x' must have the model's dtype {dtype} (got {x.dtype}); convert it with {how}"
        )


def _is_identity(index: Tensor) -> bool:
    """Whether ``index`` is ``0, 1, ..., n - 1`` (selecting with it changes nothing)."""
    return torch.equal(index, torch.arange(index.numel(), device=index.device))


class Readout(nn.Module):
    r"""Pools every output node's features to one number per sample.

    * ``"mean"``: the mean over all spatial positions (global average pooling).  Not after an
      InstanceNorm: the mean of an instance-normalised map is its shift :math:`\beta_v`,
      whatever the input;
    * ``"max"``: the maximum over all spatial positions (global max pooling; shift invariant
      like the mean, and informative after an InstanceNorm);
    * ``"centre"``: the mean over the 2 x 2 (2 in 1-D) patch starting at :math:`s/2 - 2` in
      every spatial dimension of size :math:`s` (rows and columns 2-3 of an 8 x 8 map).  This is
      what the reference code of the paper reads: a 3 x 3 crop at the centre followed by a
      stride-2 2 x 2 average pool, whose single window is that patch.

    Vector nodes (no spatial dimensions) are passed through.

    Args:
        kind (str, optional): ``"mean"``, ``"max"`` or ``"centre"``. (default: ``"mean"``)

    Shapes:
        - **input:** :math:`[n_{out}, B, *S]`
        - **output:** :math:`[B, n_{out}]`

    Raises:
        ValueError: for an unknown ``kind``.

    Examples:
        >>> Readout("centre")(torch.ones(5, 2, 8, 8)).shape
        torch.Size([2, 5])
    """

    def __init__(self, kind: str = "mean") -> None:
        super().__init__()
        if kind not in READOUTS:
            raise DNWGraphError(f"'readout' must be one of {list(READOUTS)} (got {kind!r})")
        self.kind = kind

    @property
    def linear(self) -> bool:
        """Whether :meth:`pool` is linear (``"mean"`` and ``"centre"``): a model may then
        pool the output nodes' inputs before summing them (see
        :meth:`LevelExecutor.forward <dnwgraph.nn.LevelExecutor.forward>`)."""
        return self.kind != "max"

    def _window(self, x: Tensor) -> Tensor:
        """The positions pooled: the centre patch (a view), or all of them."""
        if x.dim() > 2 and self.kind == "centre":
            shape = static_shape(x)  # the model's fixed input shape: constants of a trace
            for d in range(2, x.dim()):
                size = shape[d]
                start = max(size // 2 - 2, 0)
                x = x.narrow(d, start, min(2, size - start))
        return x

    def pool(self, x: Tensor) -> Tensor:
        """Every node's pooled features: ``[n, B, *S]`` to ``[n, B]`` (``forward`` without
        the transposition)."""
        x = self._window(x)
        if x.dim() == 2:
            return x
        x = x.flatten(2)
        return x.amax(-1) if self.kind == "max" else x.mean(-1)

    def pool_adjoint_(self, grad: Tensor, h: Tensor) -> Tensor:
        r"""``grad += P^T h`` in place for a :attr:`linear` readout: ``h`` ``[n, B]``
        spread evenly over the pooled positions of ``grad`` ``[n, B, *S]``.

        Examples:
            >>> g = torch.zeros(1, 1, 8, 8)
            >>> _ = Readout("centre").pool_adjoint_(g, torch.ones(1, 1))
            >>> g.sum().item(), g[0, 0, 2:4, 2:4].tolist()
            (1.0, [[0.25, 0.25], [0.25, 0.25]])
        """
        if not self.linear:
            raise DNWGraphError(f"the {self.kind!r} readout is not linear: it has no adjoint")
        window = self._window(grad)
        if window.dim() == 2:
            return grad.add_(h)
        count = window[0, 0].numel()
        window.add_(h.view(*h.shape, *([1] * (window.dim() - 2))), alpha=1.0 / count)
        return grad

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x).t()

    def extra_repr(self) -> str:
        return repr(self.kind)


class NeuralGraphClassifier(PretrainedMixin, nn.Module):
    r"""Base of the neural-graph classifiers: embeds the input and reads the output nodes.

    The stem maps the input ``[B, *]`` to ``[B, C, *S]``; stem channel ``stem_index[i]`` feeds
    input node ``input_nodes[i]``, every other node starts from zero.  After the graph has run,
    the output nodes are pooled by :class:`Readout` and classified by a linear head.
    ``save_pretrained(dir)`` / ``from_pretrained(dir)`` come from
    :class:`~dnwgraph.models.pretrained.PretrainedMixin`.

    Args:
        wiring (Wiring): the candidate wiring (kept as ``self.wiring``).
        stem (nn.Module, optional): ``[B, *]`` → ``[B, C, *S]``; ``None`` means the input is
            already ``[B, n_in, *S]``. (default: ``None``)
        num_classes (int, optional): classes of the head. (default: ``10``)
        readout (str, optional): ``"mean"``, ``"max"`` or ``"centre"``. (default: ``"mean"``)
        input_shape (sequence of int, optional): the per-sample input shape, checked once at
            the entry of :meth:`forward`. (default: ``None``, not checked)

    Raises:
        TypeError: ``wiring`` is not a :class:`~dnwgraph.Wiring`.
        ValueError: a bad ``num_classes``, ``readout`` or ``input_shape``.
    """

    input_nodes: Tensor
    output_nodes: Tensor
    stem_index: Tensor

    def __init__(
        self,
        wiring: Any,
        *,
        stem: nn.Module | None = None,
        num_classes: int = 10,
        readout: str = "mean",
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(wiring, Wiring):
            raise DNWGraphTypeError(
                f"'wiring' must be a Wiring (got {type(wiring).__name__}); build one with "
                "Wiring(edge_index) or Wiring.from_file(path)"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise DNWGraphError(f"'num_classes' must be a positive int (got {num_classes!r})")
        if input_shape is not None:
            input_shape = tuple(int(s) for s in input_shape)
            if not input_shape or min(input_shape) < 1:
                raise DNWGraphError(
                    f"'input_shape' must list positive sizes per sample (got {input_shape!r})"
                )
        self.wiring = wiring
        self.num_nodes = int(wiring.num_nodes)
        self.num_classes = num_classes
        self.input_shape = input_shape
        self.stem = stem if stem is not None else nn.Identity()
        self.register_buffer("input_nodes", wiring.input_nodes.clone().long().cpu())
        self.register_buffer("output_nodes", wiring.output_nodes.clone().long().cpu())
        self.register_buffer("stem_index", torch.arange(self.input_nodes.numel()))
        self.readout = Readout(readout)
        self.head = nn.Linear(self.output_nodes.numel(), num_classes)

    def _check_input(self, x: Tensor) -> None:
        check_batch(x, self.head.weight.dtype)
        if self.input_shape is not None and static_shape(x)[1:] != self.input_shape:
            expected = ", ".join(str(s) for s in ("B", *self.input_shape))
            raise DNWGraphError(f"'x' must have shape [{expected}] (got {tuple(x.shape)})")

    def initial_state(self, x: Tensor) -> Tensor:
        """Node-first initial features ``[N, B, *S]``: the stem output at the input nodes."""
        s = self._stem_channels(x)
        state = s.new_zeros(self.num_nodes, *s.shape[:1], *s.shape[2:])
        return state.index_copy_(0, self.input_nodes, s.transpose(0, 1))  # no copy of zeros

    def input_features(self, x: Tensor) -> Tensor:
        """The input nodes' initial features, node-first ``[n_in, B, *S]`` (contiguous), in
        the order of :attr:`input_nodes`."""
        return self._stem_channels(x).transpose(0, 1).contiguous()

    def _stem_channels(self, x: Tensor) -> Tensor:
        """The stem output ``[B, n_in, *S]``, channel ``i`` for input node ``input_nodes[i]``."""
        self._check_input(x)
        s = self.stem(x)
        # checks and choices that a trace need not record: shapes as ints
        n_in = static_shape(self.input_nodes)[0]
        channels = static_shape(s)[1:2]
        if not channels or channels[0] < n_in:
            raise DNWGraphError(
                f"the stem must return [B, C, *] with one channel per input node "
                f"(C >= {n_in}; got {tuple(s.shape)} for an input of shape {tuple(x.shape)})"
            )
        # no data-dependent branch in a compiled graph or a trace
        traced = torch.compiler.is_compiling() or torch.jit.is_tracing()
        if channels[0] != n_in or traced or not _is_identity(self.stem_index):
            s = s.index_select(1, self.stem_index)
        return s

    def read(self, state: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` from the features of the output nodes in ``state``."""
        return self.read_outputs(state.index_select(0, self.output_nodes))

    def read_outputs(self, outputs: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` from the output nodes' features ``[n_out, B, *S]``."""
        return self.head(self.readout(outputs))

    @property
    def wiring_convs(self) -> list[nn.Module]:
        """The learned wirings of this model (its :class:`~dnwgraph.WiringConv` modules)."""
        from dnwgraph.nn import WiringConv

        return [m for m in self.modules() if isinstance(m, WiringConv)]


@stem_builder
def cifar_stem(in_channels: int = 3, out_channels: int = 32) -> nn.Sequential:
    """The tiny classifiers' downsampling stem: 32 x 32 → 8 x 8 with ``out_channels`` channels.

    3 x 3 stride-2 convolution to ``out_channels // 2``, BatchNorm, ReLU, 3 x 3 stride-2
    depthwise convolution, 1 x 1 convolution to ``out_channels``, BatchNorm (as in the paper's
    code).

    Examples:
        >>> cifar_stem()(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 32, 8, 8])
    """
    half = out_channels // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, half, 3, stride=2, padding=1),
        nn.BatchNorm2d(half),
        nn.ReLU(),
        nn.Conv2d(half, half, 3, stride=2, padding=1, groups=half),
        nn.Conv2d(half, out_channels, 1),
        nn.BatchNorm2d(out_channels),
    )


@stem_builder
def signal_stem(out_channels: int = 32) -> nn.Sequential:
    """The same stem in 1-D for signals ``[B, L]`` (MNIST-1D): ``[B, L]`` → ``[B, C, L/4]``.

    Examples:
        >>> signal_stem()(torch.randn(2, 40)).shape
        torch.Size([2, 32, 10])
    """
    half = out_channels // 2
    return nn.Sequential(
        nn.Unflatten(1, (1, -1)),
        nn.Conv1d(1, half, 3, stride=2, padding=1),
        nn.BatchNorm1d(half),
        nn.ReLU(),
        nn.Conv1d(half, half, 3, stride=2, padding=1, groups=half),
        nn.Conv1d(half, out_channels, 1),
        nn.BatchNorm1d(out_channels),
    )
