r"""The paper's tiny classifiers (CIFAR-10) and their MNIST-1D counterparts, as registered models.

============================  ==================================  ==========  =============
preset                        wiring (candidates)                 ratio       input
============================  ==================================  ==========  =============
``tiny_static``               block DAG [32, 192, 192, 192,       32,000      [B, 3, 32, 32]
                              92 | 100] (254,960)
``tiny_discrete``             complete(800) + self loops          32,000      [B, 3, 32, 32]
                              (640,000), T = 5
``tiny_continuous``           complete(800) + self loops          32,000      [B, 3, 32, 32]
                              (640,000), t in [0, 1], dopri5
``mnist1d_static``            block DAG [32, 64, 64, 64, 64, 32]  2,048       [B, 40]
                              (41,984)
``mnist1d_discrete``          complete(320) + self loops          2,048       [B, 40]
                              (102,400), T = 5
``mnist1d_continuous``        complete(320) + self loops          2,048       [B, 40]
                              (102,400), t in [0, 1], dopri5
============================  ==================================  ==========  =============

Every preset takes ``num_classes=10, selection="dnw", ratio=<above>, impl="sparse",
**selection_options`` (``seed`` for ``random``, ``mask`` for ``fixed``, ``drop_rate`` for
``td``/``reg_td``, ``scope``).  With a per-node budget (``reg_td``, or ``scope="per_node"``) an
int ``ratio`` :math:`k` is turned into the same overall density :math:`k / E`, applied to the
candidates of every node.

CIFAR-10 (as in the paper's code): a downsampling stem to 32 channels at 8 x 8 feeds the 32
input nodes; nodes are InstanceNorm → ReLU → 3 x 3 single-channel conv (static) or ReLU → conv
→ aggregate → InstanceNorm (recurrent); the 100 output nodes (the last 100 of 800) are read at
the centre (the 2 x 2 patch at rows/columns 2-3, :class:`~dnwgraph.models._graph.Readout`) and
classified by a linear layer.  In the reference static model the last block of 192 nodes holds
92 hidden nodes and the 100 output nodes, and those 100 also receive edges from each other
(including themselves); we split that block into 92 | 100 so the wiring stays a DAG and keep
every other candidate (254,960 candidates, 32,000 = 5 % of 800² selected).  The recurrent
models use all 800² ordered pairs (self loops included) as in the reference.

MNIST-1D: the same design in 1-D (a stem to 32 input nodes of length 10, InstanceNorm nodes
with 3-wide convolutions, 4 hidden blocks of 64, 32 output nodes max-pooled over their length;
320 nodes, 2,048 = 2 % of 320² edges).  Max pooling keeps the shift invariance that the randomly
shifted MNIST-1D digits need; a mean would be input-independent after the recurrent models'
final InstanceNorm.
"""

from __future__ import annotations

from typing import Any

from dnwgraph.graph import block_dag, complete
from dnwgraph.models._graph import cifar_stem, signal_stem
from dnwgraph.models.continuous import ContinuousTimeNeuralGraph
from dnwgraph.models.discrete import DiscreteTimeNeuralGraph
from dnwgraph.models.registry import register_model
from dnwgraph.models.static import StaticNeuralGraph
from dnwgraph.typing import Ratio

TINY_NODES, TINY_INPUTS, TINY_OUTPUTS, TINY_RATIO = 800, 32, 100, 32_000
MNIST1D_NODES, MNIST1D_INPUTS, MNIST1D_OUTPUTS, MNIST1D_RATIO = 320, 32, 32, 2_048
MNIST1D_LENGTH = 40


def _recurrent_wiring(num_nodes: int, inputs: int, outputs: int) -> Any:
    return complete(
        num_nodes,
        self_loops=True,
        input_nodes=range(inputs),
        output_nodes=range(num_nodes - outputs, num_nodes),
    )


@register_model("tiny_static")
def tiny_static(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = TINY_RATIO,
    impl: str = "sparse",
    **selection_options: Any,
) -> StaticNeuralGraph:
    """The paper's static tiny classifier for CIFAR-10 (input ``[B, 3, 32, 32]``).

    Example:
        >>> import torch
        >>> model = tiny_static()
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    wiring = block_dag([32, 192, 192, 192, 92, 100])
    return StaticNeuralGraph(
        wiring,
        _ratio(ratio, selection, wiring.num_edges, selection_options),
        selection,
        stem=cifar_stem(3, TINY_INPUTS),
        node_op="conv2d",
        num_classes=num_classes,
        readout="centre",
        input_shape=(3, 32, 32),
        impl=impl,
        **selection_options,
    )


@register_model("tiny_discrete")
def tiny_discrete(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = TINY_RATIO,
    impl: str = "sparse",
    **selection_options: Any,
) -> DiscreteTimeNeuralGraph:
    """The paper's discrete-time tiny classifier for CIFAR-10 (T = 5 steps)."""
    wiring = _recurrent_wiring(TINY_NODES, TINY_INPUTS, TINY_OUTPUTS)
    return DiscreteTimeNeuralGraph(
        wiring,
        _ratio(ratio, selection, wiring.num_edges, selection_options),
        selection,
        steps=5,
        stem=cifar_stem(3, TINY_INPUTS),
        node_op="conv2d",
        num_classes=num_classes,
        readout="centre",
        input_shape=(3, 32, 32),
        impl=impl,
        **selection_options,
    )


@register_model("tiny_continuous")
def tiny_continuous(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = TINY_RATIO,
    impl: str = "sparse",
    **selection_options: Any,
) -> ContinuousTimeNeuralGraph:
    """The paper's continuous-time tiny classifier for CIFAR-10 (dopri5, tolerances 1e-3).

    Solver options (``solver``, ``rtol``, ``atol``, ``step_size``, ``adjoint``) may be passed
    as keywords too."""
    ode, sel = _split_ode_options(selection_options)
    wiring = _recurrent_wiring(TINY_NODES, TINY_INPUTS, TINY_OUTPUTS)
    return ContinuousTimeNeuralGraph(
        wiring,
        _ratio(ratio, selection, wiring.num_edges, selection_options),
        selection,
        stem=cifar_stem(3, TINY_INPUTS),
        node_op="conv2d",
        num_classes=num_classes,
        readout="centre",
        input_shape=(3, 32, 32),
        impl=impl,
        **ode,
        **sel,
    )


@register_model("mnist1d_static")
def mnist1d_static(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = MNIST1D_RATIO,
    impl: str = "sparse",
    **selection_options: Any,
) -> StaticNeuralGraph:
    """Static neural graph for MNIST-1D (input ``[B, 40]``), 320 nodes, ~5k parameters.

    Example:
        >>> import torch
        >>> mnist1d_static()(torch.randn(2, 40)).shape
        torch.Size([2, 10])
    """
    wiring = block_dag([32, 64, 64, 64, 64, 32])
    return StaticNeuralGraph(
        wiring,
        _ratio(ratio, selection, wiring.num_edges, selection_options),
        selection,
        stem=signal_stem(MNIST1D_INPUTS),
        node_op="conv1d",
        num_classes=num_classes,
        readout="max",
        input_shape=(MNIST1D_LENGTH,),
        impl=impl,
        **selection_options,
    )


@register_model("mnist1d_discrete")
def mnist1d_discrete(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = MNIST1D_RATIO,
    impl: str = "sparse",
    **selection_options: Any,
) -> DiscreteTimeNeuralGraph:
    """Discrete-time neural graph for MNIST-1D (320 nodes, T = 5)."""
    wiring = _recurrent_wiring(MNIST1D_NODES, MNIST1D_INPUTS, MNIST1D_OUTPUTS)
    return DiscreteTimeNeuralGraph(
        wiring,
        _ratio(ratio, selection, wiring.num_edges, selection_options),
        selection,
        steps=5,
        stem=signal_stem(MNIST1D_INPUTS),
        node_op="conv1d",
        num_classes=num_classes,
        readout="max",
        input_shape=(MNIST1D_LENGTH,),
        impl=impl,
        **selection_options,
    )


@register_model("mnist1d_continuous")
def mnist1d_continuous(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = MNIST1D_RATIO,
    impl: str = "sparse",
    **selection_options: Any,
) -> ContinuousTimeNeuralGraph:
    """Continuous-time neural graph for MNIST-1D (320 nodes, dopri5 over [0, 1]).

    Solver options (``solver``, ``rtol``, ``atol``, ``step_size``, ``adjoint``) may be passed
    as keywords too."""
    ode, sel = _split_ode_options(selection_options)
    wiring = _recurrent_wiring(MNIST1D_NODES, MNIST1D_INPUTS, MNIST1D_OUTPUTS)
    return ContinuousTimeNeuralGraph(
        wiring,
        _ratio(ratio, selection, wiring.num_edges, selection_options),
        selection,
        stem=signal_stem(MNIST1D_INPUTS),
        node_op="conv1d",
        num_classes=num_classes,
        readout="max",
        input_shape=(MNIST1D_LENGTH,),
        impl=impl,
        **ode,
        **sel,
    )


def _ratio(ratio: Ratio, selection: str, num_edges: int, options: dict[str, Any]) -> Ratio:
    per_node = selection == "reg_td" or options.get("scope") == "per_node"
    if (
        per_node
        and isinstance(ratio, int)
        and not isinstance(ratio, bool)
        and 0 < ratio <= num_edges
    ):
        return ratio / num_edges
    return ratio


_ODE_OPTIONS = ("solver", "rtol", "atol", "step_size", "adjoint")


def _split_ode_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    ode = {k: v for k, v in options.items() if k in _ODE_OPTIONS}
    return ode, {k: v for k, v in options.items() if k not in _ODE_OPTIONS}
