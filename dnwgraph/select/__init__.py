"""Edge selection: top-k budgets and the strategies that choose the edges used forward."""

from dnwgraph.select.dynamic import ScheduledSelection
from dnwgraph.select.methods import GMP, SET, SNIP, EdgePopup, PeriodicDNW, RigL
from dnwgraph.select.strategies import (
    Selection,
    SelectionHost,
    UnknownOptionError,
    create_selection,
    list_selections,
    register_selection,
    selection_options,
)
from dnwgraph.select.topk import graph_topk_mask, node_budget, resolve_k, topk_mask

__all__ = [
    "Selection",
    "SelectionHost",
    "UnknownOptionError",
    "ScheduledSelection",
    "PeriodicDNW",
    "RigL",
    "SET",
    "GMP",
    "SNIP",
    "EdgePopup",
    "create_selection",
    "list_selections",
    "register_selection",
    "selection_options",
    "resolve_k",
    "node_budget",
    "topk_mask",
    "graph_topk_mask",
]


def __dir__() -> list[str]:
    # the public API only, not the submodules imported so far
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
