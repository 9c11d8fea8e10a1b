"""Message passing over learned wirings."""

from dnwgraph.nn.aggregate import AggregationPlan, EdgeSet, sddmm, wiring_matmul
from dnwgraph.nn.wiring_conv import WiringConv

__all__ = ["WiringConv", "wiring_matmul", "sddmm", "AggregationPlan", "EdgeSet"]
