"""Message passing over learned wirings."""

from dnwgraph.nn.aggregate import (
    AggregationPlan,
    BagMatrix,
    EdgeSet,
    sddmm,
    spmm,
    wiring_matmul,
)
from dnwgraph.nn.levels import LevelExecutor, LinearPool
from dnwgraph.nn.node_ops import (
    ChannelNodeOp,
    NeuronNodeOp,
    NodeOp,
    concat_node_ops,
    create_node_op,
    list_node_ops,
    register_node_op,
)
from dnwgraph.nn.plans import PlanCache, ValueKey
from dnwgraph.nn.spec import WiringSpec
from dnwgraph.nn.wiring_conv import WiringConv

__all__ = [
    "WiringConv",
    "wiring_matmul",
    "sddmm",
    "spmm",
    "BagMatrix",
    "AggregationPlan",
    "EdgeSet",
    "PlanCache",
    "ValueKey",
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
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
