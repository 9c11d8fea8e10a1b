"""Message passing over learned wirings: the layers.

How the aggregation is computed (plans, backends, the fused chain, compile and trace
adapters) lives behind the kernel interface, :mod:`dnwgraph.nn.kernels`.
"""

from dnwgraph.nn.kernels import LinearPool
from dnwgraph.nn.levels import LevelExecutor
from dnwgraph.nn.node_ops import (
    ChannelNodeOp,
    NeuronNodeOp,
    NodeOp,
    concat_node_ops,
    create_node_op,
    list_node_ops,
    register_node_op,
    regroup_node_ops,
)
from dnwgraph.nn.spec import WiringSpec
from dnwgraph.nn.wiring_conv import WiringConv

__all__ = [
    "WiringConv",
    "LevelExecutor",
    "LinearPool",
    "WiringSpec",
    "NodeOp",
    "ChannelNodeOp",
    "NeuronNodeOp",
    "create_node_op",
    "list_node_ops",
    "register_node_op",
    "concat_node_ops",
    "regroup_node_ops",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
