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

Every preset takes ``num_classes=10, selection="dnw", ratio=<above>, impl="auto"`` and, as
further keywords, the selection's options (``seed`` for ``random``, ``mask`` for ``fixed``,
``drop_rate`` for ``td``/``reg_td``), the other fields of the wiring's
:class:`~dnwgraph.nn.WiringSpec` (``scope``, ``node_op_options``, ``fan_in``,
``grad_every``; :func:`preset_spec` builds it) and the model class's keywords that the preset
does not set (``norm``, the solver's); ``ratio`` is the edge budget (``int``: edges kept;
``float`` in (0, 1]: fraction of the candidates kept).  With a per-node budget (``reg_td``, or
``scope="per_node"``) an int ``ratio`` :math:`k` is turned into the same overall density
:math:`k / E`, applied to the candidates of every node.

CIFAR-10 (as in the paper's code): a downsampling stem to 32 channels at 8 x 8 feeds the 32
input nodes; nodes are InstanceNorm → GELU → 3 x 3 single-channel conv (static; the norms'
epsilon 1e-5, :data:`PRESET_NODE_OPS`) or GELU → conv → aggregate → InstanceNorm (recurrent;
epsilon 0.1); the 100 output nodes (the last 100 of 800) are read at
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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from dnwgraph.graph import Wiring, block_dag, complete, random_dag
from dnwgraph.models._graph import cifar_stem, signal_stem
from dnwgraph.models.continuous import ContinuousTimeNeuralGraph
from dnwgraph.models.discrete import DiscreteTimeNeuralGraph
from dnwgraph.models.registry import register_model
from dnwgraph.models.static import StaticNeuralGraph
from dnwgraph.nn.spec import WiringSpec
from dnwgraph.select.strategies import selection_options
from dnwgraph.typing import Ratio

TINY_NODES, TINY_INPUTS, TINY_OUTPUTS, TINY_RATIO = 800, 32, 100, 32_000
MNIST1D_NODES, MNIST1D_INPUTS, MNIST1D_OUTPUTS, MNIST1D_RATIO = 320, 32, 32, 2_048
MNIST1D_LENGTH = 40

M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class _Task:
    """What the presets of one dataset share: sizes, stem, node op, readout, input shape."""

    static_blocks: tuple[int, ...]  # block_dag sizes of the static wiring
    num_nodes: int  # recurrent wirings: complete graph with self loops
    inputs: int
    outputs: int
    stem: Callable[[], nn.Module]
    node_op: str
    readout: str
    input_shape: tuple[int, ...]


TINY = _Task(
    (32, 192, 192, 192, 92, 100), TINY_NODES, TINY_INPUTS, TINY_OUTPUTS,
    lambda: cifar_stem(3, TINY_INPUTS), "conv2d", "centre", (3, 32, 32),
)  # fmt: skip
MNIST1D = _Task(
    (32, 64, 64, 64, 64, 32), MNIST1D_NODES, MNIST1D_INPUTS, MNIST1D_OUTPUTS,
    lambda: signal_stem(MNIST1D_INPUTS), "conv1d", "max", (MNIST1D_LENGTH,),
)  # fmt: skip


def preset_spec(
    ratio: Ratio,
    keywords: Mapping[str, Any],
    node_op_defaults: Mapping[str, Any] | None = None,
    **fields: Any,
) -> tuple[WiringSpec, dict[str, Any]]:
    """The :class:`~dnwgraph.nn.WiringSpec` of a preset factory, from its flat keywords.

    ``fields`` are the spec fields the preset sets (``selection``, ``impl``, ``node_op``);
    ``keywords`` are the factory's further keywords (its ``**selection_options``): the spec
    fields a user may add (``scope``, ``node_op_options``, ``fan_in``, ``grad_every``) and the
    options of the selection go into the spec, the rest is returned for the model class
    (which refuses, by name, a keyword it does not take).  ``node_op_defaults`` are the
    preset's node-op options (:data:`PRESET_NODE_OPS`); the user's ``node_op_options`` are
    laid over them.

    Raises:
        ValueError: an unknown selection, or any error of :class:`~dnwgraph.nn.WiringSpec`.

    Examples:
        >>> spec, rest = preset_spec(64, {"seed": 1, "steps": 3}, selection="random")
        >>> spec.ratio, spec.selection_options, rest
        (64, {'seed': 1}, {'steps': 3})
    """
    wiring = {*_SPEC_KEYWORDS, *selection_options(fields.get("selection", "dnw"))}
    named = {k: v for k, v in keywords.items() if k in _SPEC_KEYWORDS}
    user = named.get("node_op_options")
    if node_op_defaults and (user is None or isinstance(user, Mapping)):  # else: spec refuses
        named["node_op_options"] = {**node_op_defaults, **(user or {})}
    options = {k: v for k, v in keywords.items() if k in wiring and k not in _SPEC_KEYWORDS}
    rest = {k: v for k, v in keywords.items() if k not in wiring}
    return WiringSpec(ratio, **fields, **named, selection_options=options), rest


#: The fields of a preset's spec that its users may set as keywords.
_SPEC_KEYWORDS = ("scope", "node_op_options", "fan_in", "grad_every")

#: The node-op options a preset sets, under its user's ``node_op_options``; a preset not
#: named takes :class:`~dnwgraph.nn.ChannelNodeOp`'s defaults (norm epsilon
#: :data:`~dnwgraph.nn.node_ops.NORM_EPS`).  On the real digits ``tiny_static`` is stronger,
#: with DNW and with the random graph, with the norms' reference epsilon (the one-choice
#: ablation in ``docs/results.md``, ``benchmarks/strongest_baseline.py``); a model saved
#: before 0.3.0 is rebuilt with the epsilon it had (:mod:`dnwgraph.models.migrations`).
PRESET_NODE_OPS: dict[str, dict[str, Any]] = {"tiny_static": {"eps": 1e-5}}


def _build(
    preset: str,
    setting: type[M],
    task: _Task,
    num_classes: int,
    ratio: Ratio,
    keywords: dict[str, Any],
    wiring: Wiring | None = None,
    **fields: Any,
) -> M:
    """Preset ``preset``: the task's wiring for ``setting`` (a neural graph class; or
    ``wiring``), its stem, node op (with the preset's :data:`PRESET_NODE_OPS`), readout and
    head; ``fields`` and ``keywords`` as :func:`preset_spec` takes them."""
    extra: dict[str, Any] = {}
    if wiring is None and setting is StaticNeuralGraph:
        wiring = block_dag(list(task.static_blocks))
    elif wiring is None:
        wiring = complete(
            task.num_nodes,
            self_loops=True,
            input_nodes=range(task.inputs),
            output_nodes=range(task.num_nodes - task.outputs, task.num_nodes),
        )
    if setting is DiscreteTimeNeuralGraph:
        extra["steps"] = 5
    spec, rest = preset_spec(
        ratio, keywords, PRESET_NODE_OPS.get(preset), node_op=task.node_op, **fields
    )
    return setting(
        wiring,
        _per_node(spec, wiring.num_edges),
        stem=task.stem(),
        num_classes=num_classes,
        readout=task.readout,
        input_shape=task.input_shape,
        **extra,
        **rest,
    )


@register_model("tiny_static")
def tiny_static(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = TINY_RATIO,
    impl: str = "auto",
    **selection_options: Any,
) -> StaticNeuralGraph:
    """The paper's static tiny classifier for CIFAR-10 (input ``[B, 3, 32, 32]``).

    Examples:
        >>> import torch
        >>> model = tiny_static()
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return _build(
        "tiny_static",
        StaticNeuralGraph,
        TINY,
        num_classes,
        ratio,
        selection_options,
        selection=selection,
        impl=impl,
    )


@register_model("tiny_discrete")
def tiny_discrete(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = TINY_RATIO,
    impl: str = "auto",
    **selection_options: Any,
) -> DiscreteTimeNeuralGraph:
    """The paper's discrete-time tiny classifier for CIFAR-10 (T = 5 steps)."""
    return _build(
        "tiny_discrete",
        DiscreteTimeNeuralGraph,
        TINY,
        num_classes,
        ratio,
        selection_options,
        selection=selection,
        impl=impl,
    )


@register_model("tiny_continuous")
def tiny_continuous(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = TINY_RATIO,
    impl: str = "auto",
    **selection_options: Any,
) -> ContinuousTimeNeuralGraph:
    """The paper's continuous-time tiny classifier for CIFAR-10 (dopri5, tolerances 1e-3).

    Solver options (``solver``, ``rtol``, ``atol``, ``step_size``, ``adjoint``) may be passed
    as keywords too."""
    return _build(
        "tiny_continuous",
        ContinuousTimeNeuralGraph,
        TINY,
        num_classes,
        ratio,
        selection_options,
        selection=selection,
        impl=impl,
    )


@register_model("mnist1d_static")
def mnist1d_static(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = MNIST1D_RATIO,
    impl: str = "auto",
    **selection_options: Any,
) -> StaticNeuralGraph:
    """Static neural graph for MNIST-1D (input ``[B, 40]``), 320 nodes, ~5k parameters.

    Examples:
        >>> import torch
        >>> mnist1d_static()(torch.randn(2, 40)).shape
        torch.Size([2, 10])
    """
    return _build(
        "mnist1d_static",
        StaticNeuralGraph,
        MNIST1D,
        num_classes,
        ratio,
        selection_options,
        selection=selection,
        impl=impl,
    )


#: RandWire's Watts-Strogatz graph WS(4, 0.75) of the ``mnist1d_randwire`` preset
RANDWIRE_NODES, RANDWIRE_RATIO = 256, 0.5


def randwire_wiring(num_nodes: int = RANDWIRE_NODES, seed: int = 0) -> Wiring:
    """A RandWire wiring (Xie et al. 2019, https://arxiv.org/abs/1904.01569) for MNIST-1D:
    a Watts-Strogatz DAG WS(4, 0.75) (:func:`~dnwgraph.random_dag`) between the stem's 32
    input nodes, each feeding every node without an in-edge (RandWire's input node, one per
    stem channel), and 32 output nodes, each fed by every node without an out-edge."""
    core = random_dag("ws", num_nodes, seed=seed, k=4, p=0.75)
    src, dst = core.edge_index + MNIST1D_INPUTS
    first, last = MNIST1D_INPUTS, MNIST1D_INPUTS + num_nodes
    inputs = torch.arange(MNIST1D_INPUTS)
    outputs = torch.arange(last, last + MNIST1D_OUTPUTS)
    sources = core.input_nodes + first
    sinks = core.output_nodes + first
    edges = [
        torch.stack([src, dst]),
        torch.cartesian_prod(inputs, sources).t(),
        torch.cartesian_prod(sinks, outputs).t(),
    ]
    return Wiring(
        torch.cat(edges, 1), last + MNIST1D_OUTPUTS, input_nodes=inputs, output_nodes=outputs
    )


@register_model("mnist1d_randwire")
def mnist1d_randwire(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = RANDWIRE_RATIO,
    impl: str = "auto",
    graph_seed: int = 0,
    **selection_options: Any,
) -> StaticNeuralGraph:
    """A RandWire-style static neural graph for MNIST-1D (input ``[B, 40]``): the wiring of
    :func:`randwire_wiring` (``graph_seed`` draws the graph; ``seed``, as in every preset,
    is the ``random`` selection's), MNIST-1D's stem, node op and readout; half of the
    candidates kept by default.

    Examples:
        >>> import torch
        >>> mnist1d_randwire()(torch.randn(2, 40)).shape
        torch.Size([2, 10])
    """
    return _build(
        "mnist1d_randwire",
        StaticNeuralGraph,
        MNIST1D,
        num_classes,
        ratio,
        selection_options,
        wiring=randwire_wiring(seed=graph_seed),
        selection=selection,
        impl=impl,
    )


@register_model("mnist1d_discrete")
def mnist1d_discrete(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = MNIST1D_RATIO,
    impl: str = "auto",
    **selection_options: Any,
) -> DiscreteTimeNeuralGraph:
    """Discrete-time neural graph for MNIST-1D (320 nodes, T = 5)."""
    return _build(
        "mnist1d_discrete",
        DiscreteTimeNeuralGraph,
        MNIST1D,
        num_classes,
        ratio,
        selection_options,
        selection=selection,
        impl=impl,
    )


@register_model("mnist1d_continuous")
def mnist1d_continuous(
    num_classes: int = 10,
    selection: str = "dnw",
    ratio: Ratio = MNIST1D_RATIO,
    impl: str = "auto",
    **selection_options: Any,
) -> ContinuousTimeNeuralGraph:
    """Continuous-time neural graph for MNIST-1D (320 nodes, dopri5 over [0, 1]).

    Solver options (``solver``, ``rtol``, ``atol``, ``step_size``, ``adjoint``) may be passed
    as keywords too."""
    return _build(
        "mnist1d_continuous",
        ContinuousTimeNeuralGraph,
        MNIST1D,
        num_classes,
        ratio,
        selection_options,
        selection=selection,
        impl=impl,
    )


def _per_node(spec: WiringSpec, num_edges: int) -> WiringSpec:
    """With a per-node budget, an int ``ratio`` :math:`k` becomes the density :math:`k / E`."""
    ratio = spec.ratio
    per_node = spec.selection == "reg_td" or spec.scope == "per_node"
    if (
        per_node
        and isinstance(ratio, int)
        and not isinstance(ratio, bool)
        and 0 < ratio <= num_edges
    ):
        return spec.replace(ratio=ratio / num_edges)
    return spec
