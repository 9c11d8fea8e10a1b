r"""The discrete-time neural graph: a recurrent wiring unrolled for ``T`` steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from dnwgraph.errors import DNWGraphError
from dnwgraph.models._graph import NeuralGraphClassifier
from dnwgraph.nn.node_ops import ChannelNodeOp, create_node_op
from dnwgraph.nn.spec import WiringSpec, check_spec
from dnwgraph.nn.wiring_conv import WiringConv

#: Pre-aggregation defaults per node op: the paper's recurrent step puts the norm last.
_PRE_DEFAULTS: dict[str, dict[str, Any]] = {
    "conv1d": {"norm": "none", "order": ("act", "conv")},
    "conv2d": {"norm": "none", "order": ("act", "conv")},
}


def check_readout(readout: str, norm: str) -> None:
    """Refuse a mean readout of instance-normalised states (it is input-independent)."""
    if readout == "mean" and norm == "instance":
        raise DNWGraphError(
            "readout='mean' of instance-normalised node states is their shift beta whatever "
            "the input; use readout='max' or 'centre' (or another norm)"
        )


class GraphStep(nn.Module):
    r"""One synchronous update of every node of a (possibly cyclic) wiring:

    .. math::
        F(Z) = \mathrm{norm}\big(A_{\mathcal{A}} \cdot g(Z)\big)

    with :math:`g` the per-node op before the aggregation (GELU → single-channel conv by
    default) and :math:`\mathrm{norm}` a per-node InstanceNorm (or BatchNorm, or none).  One
    fused sparse aggregation per call; the selection and its sparse matrix are cached while the
    weights are unchanged, so the ``T`` steps (or ODE evaluations) of one forward share them.

    Args:
        wiring (Wiring): candidate wiring (cycles and self loops allowed).
        spec (WiringSpec): the learned wiring's parameters (budget, selection and its
            options, backend, initialisation) and the node op before the aggregation with its
            options; for ``conv1d``/``conv2d`` the node op's defaults here are
            ``norm="none", order=("act", "conv")``, and its ``eps`` is also the norm's.
        norm (str, optional): ``"instance"``, ``"batch"`` or ``"none"`` after the aggregation;
            must be ``"none"`` for vector nodes (``"neuron"``). (default: ``"instance"``)

    Shapes:
        - **input:** :math:`[N, B, *S]`
        - **output:** :math:`[N, B, *S]`

    Raises:
        ValueError: a norm on vector nodes.
        TypeError: a ``spec`` that is not a :class:`~dnwgraph.nn.WiringSpec`.

    Examples:
        >>> import torch
        >>> from dnwgraph import WiringSpec, complete
        >>> step = GraphStep(complete(4, self_loops=True), WiringSpec(6, node_op="conv1d"))
        >>> step(torch.randn(4, 2, 5)).shape
        torch.Size([4, 2, 5])
    """

    def __init__(self, wiring: Any, spec: WiringSpec, *, norm: str = "instance") -> None:
        super().__init__()
        self.spec = spec = check_spec(spec)
        node_op = spec.node_op
        n = int(wiring.num_nodes)
        opts = {**_PRE_DEFAULTS.get(node_op, {}), **spec.node_op_options}
        self.node_op = create_node_op(node_op, n, **opts)
        self.conv = WiringConv(wiring, spec.ratio, spec.selection, **spec.conv_kwargs())
        if norm == "none":
            self.norm: nn.Module = nn.Identity()
        elif isinstance(self.node_op, ChannelNodeOp):
            eps = self.node_op.config["eps"]  # one epsilon for every norm of the nodes
            self.norm = ChannelNodeOp(n, dim=self.node_op.dim, norm=norm, order=("norm",), eps=eps)
        else:
            raise DNWGraphError(
                f"'norm' must be 'none' for the node op {node_op!r} (got {norm!r}); "
                "a norm after the aggregation needs spatial nodes ('conv1d' or 'conv2d')"
            )

    def forward(self, z: Tensor) -> Tensor:
        return self.norm(self.conv(self.node_op(z)))


class DiscreteTimeNeuralGraph(NeuralGraphClassifier):
    r"""A discrete-time neural graph from *Discovering Neural Wirings* (Wortsman, Farhadi &
    Rastegari, NeurIPS 2019, https://arxiv.org/abs/1906.00586), section 2.2.

    The wiring may have cycles (e.g. :func:`~dnwgraph.complete`).  Every node is updated
    synchronously for ``T`` steps with shared weights (:class:`GraphStep`):

    .. math::
        Z(0) = [v \in \text{inputs}]\,\mathrm{stem}(x)_v, \qquad
        Z(t + 1) = \mathrm{norm}\big(A_{\mathcal{A}} \cdot \mathrm{conv}(\sigma(Z(t)))\big)

    with :math:`\sigma` the node activation (GELU by default), and the output nodes of
    :math:`Z(T)` are pooled and classified.  The selection is re-chosen
    once per forward pass (the weights do not change between steps).

    Args:
        wiring (Wiring): candidate wiring (cycles and self loops allowed).
        spec (WiringSpec): the learned wiring's parameters: edge budget ``ratio`` (``int``:
            edges kept; ``float`` in (0, 1]: fraction of the candidates kept), selection and
            its options, backend, initialisation, and the node op before the aggregation
            (see :class:`GraphStep`).
        steps (int, optional): :math:`T`. (default: ``5``, as in the paper)
        stem (nn.Module, optional): ``[B, *]`` → ``[B, n_in, *S]``; ``None``: identity.
        norm (str, optional): norm after the aggregation. (default: ``"instance"``)
        num_classes (int, optional): outputs of the head. (default: ``10``)
        readout (str, optional): ``"max"``, ``"centre"`` or ``"mean"``; ``"mean"`` is refused
            with ``norm="instance"`` (the mean of an instance-normalised map is its shift,
            whatever the input). (default: ``"max"``)
        input_shape (sequence of int, optional): per-sample input shape to check.

    Shapes:
        - **input:** :math:`[B, *]`
        - **output:** :math:`[B, \text{num\_classes}]`

    Raises:
        ValueError: a bad ``steps`` or any error of :class:`GraphStep`, or (in forward) an input
            of the wrong shape.

    Examples:
        >>> import torch
        >>> from dnwgraph import WiringSpec, complete
        >>> wiring = complete(6, input_nodes=[0, 1], output_nodes=[4, 5])
        >>> spec = WiringSpec(10, node_op="conv1d")
        >>> model = DiscreteTimeNeuralGraph(wiring, spec, steps=3)
        >>> model(torch.randn(2, 2, 7)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        wiring: Any,
        spec: WiringSpec,
        *,
        steps: int = 5,
        stem: nn.Module | None = None,
        norm: str = "instance",
        num_classes: int = 10,
        readout: str = "max",
        input_shape: Sequence[int] | None = None,
    ) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise DNWGraphError(f"'steps' must be a positive int (got {steps!r})")
        check_readout(readout, norm)
        super().__init__(
            wiring, stem=stem, num_classes=num_classes, readout=readout, input_shape=input_shape
        )
        self.steps = steps
        self.spec = check_spec(spec)
        self.step = GraphStep(wiring, self.spec, norm=norm)

    @property
    def conv(self) -> nn.Module:
        """The learned wiring (a :class:`~dnwgraph.WiringConv`)."""
        return self.step.conv

    def forward(self, x: Tensor) -> Tensor:
        z = self.initial_state(x)
        with self.step.conv.plan_cache.hold():  # the T steps see one state of the weights
            for _ in range(self.steps):
                z = self.step(z)
        return self.read(z)
