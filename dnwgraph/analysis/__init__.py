"""Export, measure, compact and draw discovered wirings.

``to_networkx`` / ``to_data`` / ``save_wiring`` hand a learned wiring to other graph tools, the
metrics say what DNW found beyond chance, ``compact`` turns a trained model into a smaller
fixed-wiring one with identical outputs, and the plots draw the wiring and its training
(matplotlib, lazily).
"""

from dnwgraph.analysis.export import save_wiring, to_data, to_networkx
from dnwgraph.analysis.metrics import (
    GraphStats,
    WiringMetrics,
    average_clustering,
    average_path_length,
    churn_series,
    dead_nodes,
    depth,
    edge_churn,
    live_node_mask,
    model_cost,
    random_view,
    wiring_metrics,
)
from dnwgraph.analysis.plots import (
    animate_wiring,
    plot_adjacency,
    plot_churn,
    plot_degree_histogram,
    plot_run,
    plot_training_curves,
    plot_weight_histograms,
    plot_wiring,
)
from dnwgraph.analysis.report import analyze, load_source
from dnwgraph.models.compact import compact
from dnwgraph.runs.run import load_snapshot, load_snapshots
from dnwgraph.runs.run import metrics_columns as read_metrics_csv

__all__ = [
    "to_networkx",
    "to_data",
    "save_wiring",
    "compact",
    "wiring_metrics",
    "WiringMetrics",
    "GraphStats",
    "live_node_mask",
    "dead_nodes",
    "depth",
    "average_clustering",
    "average_path_length",
    "random_view",
    "model_cost",
    "edge_churn",
    "churn_series",
    "load_snapshot",
    "load_snapshots",
    "read_metrics_csv",
    "plot_wiring",
    "plot_adjacency",
    "plot_degree_histogram",
    "plot_training_curves",
    "plot_churn",
    "plot_weight_histograms",
    "animate_wiring",
    "plot_run",
    "analyze",
    "load_source",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
