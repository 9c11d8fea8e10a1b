"""Export, measure, compact and draw discovered wirings."""

from dnwgraph.analysis.export import save_wiring, to_networkx

__all__ = ["to_networkx", "save_wiring"]
